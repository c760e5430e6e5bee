//! Shared sub-conditions, evaluated at most once per event.
//!
//! Falco's rules and ours are built from the same macros (`spawned_process`, `container`,
//! `open_read`, ...), so after macro expansion the same checks occur in many rules. [`share`]
//! finds every compiled sub-condition that occurs more than once across the rule set
//! (structurally identical nodes, found by hash-consing), gives each a memo slot and wraps it
//! in [`Node::Memo`]: the first rule that needs it for an event evaluates it, the others read
//! the result from the event's [`EvalCtx`](crate::rules::eval::EvalCtx). Inside an `and`/`or`,
//! shared cheap checks are moved first: after their first evaluation for an event they cost a
//! bit test, and a false one ends the conjunction before any unshared work. Conditions are
//! pure functions of the event (a missing field is just `false`), so neither remembering a
//! result nor reordering operands changes what a rule matches.

use std::collections::HashMap;

use crate::rules::eval::ctx::MEMO_SLOTS;
use crate::rules::eval::{LhsMode, Node, Test};
use crate::rules::fields::FieldId;

/// Structural identities of sub-conditions, their occurrence counts and memo slots.
#[derive(Default)]
struct Sharing {
    /// Canonical text of a node (children by identity) → identity.
    ids: HashMap<String, u32>,
    /// Occurrences per identity.
    counts: Vec<u32>,
    /// Memo slot per shared identity.
    slots: HashMap<u32, u32>,
}

impl Sharing {
    fn intern(&mut self, key: String) -> u32 {
        let next = u32::try_from(self.ids.len()).unwrap_or(u32::MAX);
        let id = *self.ids.entry(key).or_insert(next);
        if id == next {
            self.counts.push(0);
        }
        id
    }

    /// The identity of a node (children first), without changing anything.
    fn identity(&mut self, node: &Node) -> u32 {
        let key = match node {
            Node::Const(b) => format!("K{b}"),
            Node::TypeIn(mask) => format!("T{mask}"),
            Node::Check(check) => format!("C{check:?}"),
            Node::And(items) | Node::Or(items) => {
                let kids: Vec<u32> = items.iter().map(|n| self.identity(n)).collect();
                let tag = if matches!(node, Node::And(_)) {
                    'A'
                } else {
                    'O'
                };
                format!("{tag}{kids:?}")
            }
            Node::Not(inner) => format!("N{}", self.identity(inner)),
            Node::Memo(_, inner) => return self.identity(inner),
        };
        self.intern(key)
    }

    /// Counts the occurrences of every sub-condition of `node` (itself included).
    fn count(&mut self, node: &Node) {
        match node {
            Node::And(items) | Node::Or(items) => items.iter().for_each(|n| self.count(n)),
            Node::Not(inner) | Node::Memo(_, inner) => self.count(inner),
            Node::Const(_) | Node::TypeIn(_) | Node::Check(_) => {}
        }
        let id = self.identity(node);
        if let Some(c) = self.counts.get_mut(id as usize) {
            *c += 1;
        }
    }

    /// Rebuilds `node` with its shared sub-conditions memoised; returns it and its identity.
    fn rebuild(&mut self, node: Node) -> (Node, u32) {
        let (node, id) = match node {
            Node::And(items) => {
                let (kids, id) = self.rebuild_all(items, 'A');
                (Node::And(kids), id)
            }
            Node::Or(items) => {
                let (kids, id) = self.rebuild_all(items, 'O');
                (Node::Or(kids), id)
            }
            Node::Not(inner) => {
                let (inner, inner_id) = self.rebuild(*inner);
                let id = self.intern(format!("N{inner_id}"));
                (Node::Not(Box::new(inner)), id)
            }
            Node::Memo(_, inner) => return self.rebuild(*inner),
            leaf => {
                let id = self.identity(&leaf);
                (leaf, id)
            }
        };
        if matches!(node, Node::Const(_) | Node::TypeIn(_))
            || self.counts.get(id as usize).is_none_or(|c| *c < 2)
        {
            return (node, id);
        }
        let next = u32::try_from(self.slots.len()).unwrap_or(u32::MAX);
        let slot = *self.slots.entry(id).or_insert(next);
        if slot as usize >= MEMO_SLOTS {
            return (node, id);
        }
        (Node::Memo(slot, Box::new(node)), id)
    }

    fn rebuild_all(&mut self, items: Box<[Node]>, tag: char) -> (Box<[Node]>, u32) {
        let mut kids = Vec::with_capacity(items.len());
        let mut ids = Vec::with_capacity(items.len());
        for n in items.into_vec() {
            let (n, id) = self.rebuild(n);
            kids.push(n);
            ids.push(id);
        }
        let id = self.intern(format!("{tag}{ids:?}"));
        // Stable: otherwise the cheap-and-selective order of `simplify` is kept.
        kids.sort_by_key(|n| u8::from(!is_cheap_shared(n)));
        (kids.into_boxed_slice(), id)
    }
}

/// A memoised check whose first evaluation is cheap (no command line to build, no regex, no
/// substring search), worth moving to the front of an `and`/`or`.
fn is_cheap_shared(node: &Node) -> bool {
    let Node::Memo(_, inner) = node else {
        return false;
    };
    let Node::Check(check) = &**inner else {
        return false;
    };
    let (lhs, test) = &**check;
    let built = matches!(
        lhs.field.id,
        FieldId::ProcCmdline
            | FieldId::ProcArgs
            | FieldId::ProcEnv
            | FieldId::ProcPcmdline
            | FieldId::ProcAcmdline
            | FieldId::ThreadCapEffective
            | FieldId::ThreadCapPermitted
            | FieldId::ThreadCapInheritable
    );
    !built
        && lhs.transformers.is_empty()
        && matches!(lhs.mode, LhsMode::Single)
        && matches!(
            test,
            Test::Exists
                | Test::StrEq(_)
                | Test::StrNe(_)
                | Test::StrIn(_)
                | Test::StartsWith(_)
                | Test::EndsWith(_)
                | Test::Num(..)
                | Test::NumIn(_)
                | Test::Bool(..)
                | Test::BoolIn(_)
                | Test::Ip(..)
                | Test::IpIn(_)
        )
}

/// Memoises the sub-conditions the given conditions share (see the module documentation);
/// returns the number of memo slots used.
pub(crate) fn share(conds: &mut [&mut Node]) -> usize {
    let mut sharing = Sharing::default();
    for cond in conds.iter() {
        sharing.count(cond);
    }
    for cond in conds.iter_mut() {
        let node = std::mem::replace(&mut **cond, Node::Const(false));
        **cond = sharing.rebuild(node).0;
    }
    sharing.slots.len().min(MEMO_SLOTS)
}
