//! Rewrites of one compiled condition that do not change what it matches: constants folded,
//! negations and nesting flattened, operands ordered cheap and selective first, string tests
//! of an `or` on one field merged, and `evt.type` tests the type index guarantees dropped.

use crate::rules::compile::TypeSet;
use crate::rules::eval::{LhsMode, MultiContains, Node, StrSet, Test};
use crate::rules::syntax::ast::Modifier;

/// Evaluation order within an `and`/`or`: cheap, selective tests first.
pub(crate) fn rank_in_and(n: &Node) -> u8 {
    match n {
        Node::Const(_) | Node::TypeIn(_) => 0,
        Node::Check(c) => match &c.1 {
            Test::StrEq(_)
            | Test::StrIn(_)
            | Test::StartsWith(_)
            | Test::Pmatch(_)
            | Test::EndsWith(_) => 1,
            Test::Contains(_)
            | Test::IContains(_)
            | Test::Glob(_)
            | Test::IGlob(_)
            | Test::Num(..)
            | Test::NumIn(_)
            | Test::AnyContains(_)
            | Test::Bool(..) => 2,
            _ => 3,
        },
        Node::Or(_) => 4,
        Node::And(_) => 4,
        Node::Not(_) => 5,
        Node::Memo(_, inner) => rank_in_and(inner),
    }
}

/// Simplifies a compiled condition without changing its meaning: constants are folded (the
/// `never_true` hooks disappear), double negations removed, nested and/or flattened, and the
/// children of `and`/`or` are ordered cheap-and-selective first. Evaluation has no side
/// effects and a missing field is just `false`, so the order of operands cannot change a
/// result.
pub(crate) fn simplify(node: Node) -> Node {
    match node {
        Node::Not(inner) => match simplify(*inner) {
            Node::Const(b) => Node::Const(!b),
            Node::Not(x) => *x,
            other => Node::Not(Box::new(other)),
        },
        Node::And(items) => {
            let mut out = Vec::with_capacity(items.len());
            for n in items.into_vec() {
                match simplify(n) {
                    Node::Const(true) => {}
                    Node::Const(false) => return Node::Const(false),
                    Node::And(inner) => out.extend(inner.into_vec()),
                    other => out.push(other),
                }
            }
            out.sort_by_key(rank_in_and);
            match out.len() {
                0 => Node::Const(true),
                1 => out.pop().unwrap_or(Node::Const(true)),
                _ => Node::And(out.into_boxed_slice()),
            }
        }
        Node::Or(items) => {
            let mut out = Vec::with_capacity(items.len());
            for n in items.into_vec() {
                match simplify(n) {
                    Node::Const(false) => {}
                    Node::Const(true) => return Node::Const(true),
                    Node::Or(inner) => out.extend(inner.into_vec()),
                    other => out.push(other),
                }
            }
            let mut out = merge_or_leaves(out);
            out.sort_by_key(rank_in_and);
            match out.len() {
                0 => Node::Const(false),
                1 => out.pop().unwrap_or(Node::Const(false)),
                _ => Node::Or(out.into_boxed_slice()),
            }
        }
        other => other,
    }
}

/// Whether an `or` operand is a string test on a single-valued field, which can be merged
/// with the other such operands on the same field.
fn mergeable(node: &Node) -> bool {
    let Node::Check(check) = node else {
        return false;
    };
    matches!(check.0.mode, LhsMode::Single)
        && matches!(
            check.1,
            Test::StrEq(_)
                | Test::StrIn(_)
                | Test::Contains(_)
                | Test::AnyContains(_)
                | Test::IContains(_)
                | Test::StartsWith(_)
                | Test::EndsWith(_)
                | Test::Glob(_)
                | Test::IGlob(_)
                | Test::Regex(_)
                | Test::Pmatch(_)
                | Test::Modified(Modifier::AnyOf, _)
        )
}

/// The string tests of an `or` on one field, being merged.
struct OrGroup {
    /// Index of the group's node in the output.
    at: usize,
    /// Values of `=` / `in`.
    eq: Vec<Box<str>>,
    /// Needles of `contains`.
    contains: Vec<Box<str>>,
    /// Every other test.
    others: Vec<Test>,
    /// The first test, kept as is when the group has only one operand.
    first: Option<Test>,
    /// Number of operands.
    count: usize,
}

impl OrGroup {
    fn add(&mut self, test: Test) {
        self.count += 1;
        if self.count == 1 {
            self.first = Some(test);
            return;
        }
        if let Some(first) = self.first.take() {
            self.absorb(first);
        }
        self.absorb(test);
    }

    fn absorb(&mut self, test: Test) {
        match test {
            Test::StrEq(s) => self.eq.push(s),
            Test::StrIn(set) => self.eq.extend(set.iter().cloned()),
            Test::Contains(s) => self.contains.push(s),
            Test::AnyContains(m) => self.contains.extend(m.needles().iter().cloned()),
            Test::Modified(Modifier::AnyOf, tests) => {
                for t in tests {
                    self.absorb(t);
                }
            }
            other => self.others.push(other),
        }
    }

    fn finish(self) -> Test {
        if let Some(first) = self.first {
            return first;
        }
        let mut parts = Vec::with_capacity(self.others.len() + 2);
        if !self.eq.is_empty() {
            parts.push(Test::StrIn(StrSet::new(self.eq)));
        }
        if !self.contains.is_empty() {
            parts.push(Test::AnyContains(MultiContains::new(self.contains)));
        }
        parts.extend(self.others);
        if parts.len() == 1 {
            parts
                .pop()
                .unwrap_or(Test::Modified(Modifier::AnyOf, Vec::new()))
        } else {
            Test::Modified(Modifier::AnyOf, parts)
        }
    }
}

/// Merges the operands of an `or` that are string tests on the same single-valued field into
/// one test on a value extracted once: `=`/`in` into one set, `contains` into one
/// multi-substring search, the rest into one "any of" list. A value passes one of several
/// tests exactly when one of the separate checks holds, and an absent value fails all of
/// them as it fails the merged one.
fn merge_or_leaves(items: Vec<Node>) -> Vec<Node> {
    let mut groups: Vec<OrGroup> = Vec::new();
    let mut out: Vec<Node> = Vec::with_capacity(items.len());
    for node in items {
        if !mergeable(&node) {
            out.push(node);
            continue;
        }
        let Node::Check(check) = node else {
            continue;
        };
        let (lhs, test) = *check;
        let found = groups.iter().position(|g| {
            matches!(&out[g.at], Node::Check(c)
                if c.0.field == lhs.field && c.0.transformers == lhs.transformers)
        });
        let g = match found {
            Some(g) => g,
            None => {
                groups.push(OrGroup {
                    at: out.len(),
                    eq: Vec::new(),
                    contains: Vec::new(),
                    others: Vec::new(),
                    first: None,
                    count: 0,
                });
                // The test is a placeholder until the group is finished.
                out.push(Node::Check(Box::new((lhs, Test::Exists))));
                groups.len() - 1
            }
        };
        groups[g].add(test);
    }
    for g in groups {
        let at = g.at;
        let test = g.finish();
        if let Node::Check(c) = &mut out[at] {
            c.1 = test;
        }
    }
    out
}

/// Drops top-level `evt.type` tests that the event-type index already guarantees (a rule is
/// only evaluated for events of its types).
pub(crate) fn hoist_types(node: Node, types: TypeSet) -> Node {
    let implied = |n: &Node| matches!(n, Node::TypeIn(mask) if types & !mask == 0);
    match node {
        n if implied(&n) => Node::Const(true),
        Node::And(items) => {
            let mut out: Vec<Node> = items
                .into_vec()
                .into_iter()
                .filter(|n| !implied(n))
                .collect();
            match out.len() {
                0 => Node::Const(true),
                1 => out.pop().unwrap_or(Node::Const(true)),
                _ => Node::And(out.into_boxed_slice()),
            }
        }
        other => other,
    }
}
