//! The compiled form of a condition and its evaluation against an event.
//!
//! Everything that can be decided at load time is: right-hand values are parsed into the
//! field's type, `in` sets are hashed, `pmatch` paths are put in a component trie, globs and
//! regexes are compiled ([`matchers`]). Evaluation never parses text and never allocates for
//! the common string fields, which are read through direct accessors ([`access`]) from the
//! per-event context ([`ctx`]). A field that an event does not provide makes every check
//! false; `not` inverts afterwards.

pub(crate) mod access;
pub(crate) mod ctx;
pub(crate) mod matchers;

use std::net::IpAddr;

use crate::event::Event;

pub(crate) use access::{DirectAccessor, StrAccessor};
pub(crate) use ctx::EvalCtx;
pub(crate) use matchers::{Cidr, Fnv, Glob, MultiContains, PathTrie, StrSet};

use super::fields::{self, FieldId, FieldRef, Val, apply_transformers};
use super::optimize::needles::NeedleTest;
use super::syntax::ast::{Modifier, Op, Transformer};

/// How the left-hand side produces values.
#[derive(Debug)]
pub(crate) enum LhsMode {
    /// One value (or none).
    Single,
    /// Any ancestor (ancestor fields without an index).
    AnyAncestor,
    /// Either end of a connection (`fd.ip`, `fd.net`, `fd.port`).
    Either(FieldId, FieldId),
}

/// A compiled left-hand side.
#[derive(Debug)]
pub(crate) struct Lhs {
    /// The field.
    pub(crate) field: FieldRef,
    /// Transformers, innermost first.
    pub(crate) transformers: Vec<Transformer>,
    /// How values are produced.
    pub(crate) mode: LhsMode,
    /// Direct accessor for plain string fields (fast path).
    pub(crate) fast: Option<StrAccessor>,
    /// Direct accessor for plain number and boolean fields, and a few string fields with an
    /// argument (fast path).
    pub(crate) fast_direct: Option<DirectAccessor>,
}

/// A compiled predicate on one value.
#[derive(Debug)]
pub(crate) enum Test {
    /// `exists`.
    Exists,
    /// String `=`.
    StrEq(Box<str>),
    /// String `!=`.
    StrNe(Box<str>),
    /// String ordering (`<`, `<=`, `>`, `>=`), byte-wise.
    StrOrd(Op, Box<str>),
    /// `contains`.
    Contains(Box<str>),
    /// `icontains` (needle lower-cased).
    IContains(Box<str>),
    /// `startswith`.
    StartsWith(Box<str>),
    /// `endswith`.
    EndsWith(Box<str>),
    /// `glob`.
    Glob(Glob),
    /// `iglob`.
    IGlob(Glob),
    /// `regex` (anchored).
    Regex(regex::Regex),
    /// `in` / `intersects` on strings.
    StrIn(StrSet),
    /// `pmatch`.
    Pmatch(PathTrie),
    /// A string operator with a list modifier.
    Modified(Modifier, Vec<Test>),
    /// `contains` any of several substrings: `contains anyof (...)`, and `or`s of `contains`
    /// on the same field merged at load time.
    AnyContains(MultiContains),
    /// Numeric comparison.
    Num(Op, i64),
    /// Numeric `in` (sorted).
    NumIn(Vec<i64>),
    /// Boolean `=`/`!=` (`true` = equality).
    Bool(bool, bool),
    /// Boolean `in`.
    BoolIn(Vec<bool>),
    /// IP `=`/`!=`.
    Ip(bool, IpAddr),
    /// IP `in`.
    IpIn(Vec<IpAddr>),
    /// Network membership (`true` = inside any, `false` = inside none).
    Net(bool, Vec<Cidr>),
    /// Comparison with another field.
    Field(Op, Box<Lhs>),
    /// `contains` (any of some needles) on `proc.cmdline`, answered from one search per
    /// event for all such tests of the rule set (see [`needles`](super::optimize::needles)).
    Needles(NeedleTest),
}

/// A compiled condition.
#[derive(Debug)]
pub(crate) enum Node {
    /// A constant (from `evt.num=0`).
    Const(bool),
    /// `evt.type` is one of a set of types (a bit mask over [`crate::event::EventType`]).
    TypeIn(u32),
    /// Conjunction.
    And(Box<[Node]>),
    /// Disjunction.
    Or(Box<[Node]>),
    /// Negation.
    Not(Box<Node>),
    /// A field check.
    Check(Box<(Lhs, Test)>),
    /// A sub-condition that occurs more than once in the rule set (the same macro expanded in
    /// several rules, e.g. `container.id != host`), evaluated at most once per event: its
    /// result is kept in the event's context under the slot number (see [`memo`](super::optimize::memo)).
    Memo(u32, Box<Node>),
}

impl Node {
    /// Evaluates the condition with a per-event context.
    pub(crate) fn eval(&self, cx: &EvalCtx<'_>) -> bool {
        match self {
            Node::Const(b) => *b,
            Node::TypeIn(mask) => mask & (1 << cx.ev.evt.evt_type.index()) != 0,
            Node::And(items) => items.iter().all(|n| n.eval_child(cx)),
            Node::Or(items) => items.iter().any(|n| n.eval_child(cx)),
            Node::Not(inner) => !inner.eval_child(cx),
            Node::Check(check) => eval_check(&check.0, &check.1, cx),
            Node::Memo(slot, inner) => match cx.memo_get(*slot) {
                Some(known) => known,
                None => {
                    let result = inner.eval(cx);
                    cx.memo_set(*slot, result);
                    result
                }
            },
        }
    }

    /// [`Node::eval`] for an operand: a memoised sub-condition already computed for the event
    /// (the most common operand an event meets) is read without a call.
    #[inline(always)]
    fn eval_child(&self, cx: &EvalCtx<'_>) -> bool {
        if let Node::Memo(slot, _) = self
            && let Some(known) = cx.memo_get(*slot)
        {
            return known;
        }
        self.eval(cx)
    }

    /// Evaluates the condition without reading or filling the per-event memo (every shared
    /// sub-condition is recomputed): the reference that memoised evaluation must agree with.
    /// The per-event needle search is bypassed too: converted tests run their original test.
    #[cfg(test)]
    pub(crate) fn eval_uncached(&self, cx: &EvalCtx<'_>) -> bool {
        let before = cx.set_bypass(true);
        let result = self.eval_uncached_inner(cx);
        cx.set_bypass(before);
        result
    }

    #[cfg(test)]
    fn eval_uncached_inner(&self, cx: &EvalCtx<'_>) -> bool {
        match self {
            Node::And(items) => items.iter().all(|n| n.eval_uncached_inner(cx)),
            Node::Or(items) => items.iter().any(|n| n.eval_uncached_inner(cx)),
            Node::Not(inner) => !inner.eval_uncached_inner(cx),
            Node::Memo(_, inner) => inner.eval_uncached_inner(cx),
            Node::Const(_) | Node::TypeIn(_) | Node::Check(_) => self.eval(cx),
        }
    }
}

impl Lhs {
    /// Extracts the (transformed) value of a single-valued side.
    pub(crate) fn value<'c>(&self, cx: &'c EvalCtx<'_>) -> Option<Val<'c>> {
        let v = ctx::extract_ctx(&self.field, cx)?;
        if self.transformers.is_empty() {
            Some(v)
        } else {
            apply_transformers(v, &self.transformers)
        }
    }
}

/// A converted `contains` on `proc.cmdline` (only plain `proc.cmdline` checks are converted:
/// no process, no value, false).
#[inline(never)]
fn eval_needles(lhs: &Lhs, n: &NeedleTest, cx: &EvalCtx<'_>) -> bool {
    if cx.bypass() {
        return lhs.value(cx).is_some_and(|v| n.original.test(&v, cx));
    }
    n.on_event(cx).unwrap_or(false)
}

/// A field check. The common case, a string field with a direct accessor, stays inline in
/// [`Node::eval`]; everything else is in [`eval_check_slow`], so that the recursive `eval`
/// keeps a small stack frame (its prologue and epilogue run for every node of every rule).
#[inline]
fn eval_check(lhs: &Lhs, test: &Test, cx: &EvalCtx<'_>) -> bool {
    if let Some(fast) = lhs.fast {
        if let Test::Needles(n) = test {
            return eval_needles(lhs, n, cx);
        }
        return match fast(cx) {
            Some(s) => test.test_str(s, cx),
            None => false,
        };
    }
    eval_check_slow(lhs, test, cx)
}

/// [`eval_check`] for fields without a direct string accessor (numbers, booleans, built
/// strings, capabilities, ancestors, either end of a connection).
#[inline(never)]
fn eval_check_slow(lhs: &Lhs, test: &Test, cx: &EvalCtx<'_>) -> bool {
    match lhs.fast_direct {
        Some(DirectAccessor::Int(get)) => {
            return get(cx).is_some_and(|v| test.test_int(v, cx));
        }
        Some(DirectAccessor::Bool(get)) => {
            return get(cx).is_some_and(|v| test.test_bool(v, cx));
        }
        Some(DirectAccessor::Str) => {
            if let Some(v) = access::direct_str(&lhs.field, cx) {
                return v.is_some_and(|v| test.test_str(v, cx));
            }
        }
        None => {}
    }
    // Capability fields have no fast accessor.
    if let Some(b) = cap_test_on_mask(lhs, test, cx) {
        return b;
    }
    match &lhs.mode {
        LhsMode::Single => match lhs.value(cx) {
            Some(v) => test.test(&v, cx),
            None => false,
        },
        LhsMode::AnyAncestor
            if lhs.field.id == FieldId::ProcAname && lhs.transformers.is_empty() =>
        {
            cx.ev
                .proc
                .as_ref()
                .is_some_and(|p| p.ancestors.iter().any(|a| test.test_str(&a.name, cx)))
        }
        LhsMode::AnyAncestor => fields::any_ancestor(&lhs.field, cx.ev, &mut |v| match v
            .and_then(|v| apply_transformers(v, &lhs.transformers))
        {
            Some(v) => test.test(&v, cx),
            None => false,
        }),
        LhsMode::Either(a, b) => [*a, *b].iter().any(|id| {
            let f = FieldRef {
                id: *id,
                arg: fields::FieldArg::None,
                ty: lhs.field.ty,
            };
            match fields::extract(&f, cx.ev).and_then(|v| apply_transformers(v, &lhs.transformers))
            {
                Some(v) => test.test(&v, cx),
                None => false,
            }
        }),
    }
}

/// Capability tests that the mask answers without decoding it into names: `exists` (the mask
/// is known) and `=`/`!=` the empty string (no known capability set, as
/// [`fields::decode_caps`] prints nothing for exactly those masks). `None` for every other
/// test, which goes through the decoded names.
#[inline]
fn cap_test_on_mask(lhs: &Lhs, test: &Test, cx: &EvalCtx<'_>) -> Option<bool> {
    let read: fn(&crate::event::Process) -> Option<u64> = match lhs.field.id {
        FieldId::ThreadCapEffective => |p| p.cap_effective,
        FieldId::ThreadCapPermitted => |p| p.cap_permitted,
        FieldId::ThreadCapInheritable => |p| p.cap_inheritable,
        _ => return None,
    };
    if !lhs.transformers.is_empty() || !matches!(lhs.mode, LhsMode::Single) {
        return None;
    }
    let mask = cx.ev.proc.as_deref().and_then(read);
    match test {
        Test::Exists => Some(mask.is_some()),
        Test::StrEq(s) if s.is_empty() => Some(mask.is_some_and(|m| !fields::has_named_caps(m))),
        Test::StrNe(s) if s.is_empty() => Some(mask.is_some_and(fields::has_named_caps)),
        _ => None,
    }
}

fn ord_holds(op: Op, ord: std::cmp::Ordering) -> bool {
    use std::cmp::Ordering::*;
    match op {
        Op::Eq => ord == Equal,
        Op::Ne => ord != Equal,
        Op::Lt => ord == Less,
        Op::Le => ord != Greater,
        Op::Gt => ord == Greater,
        Op::Ge => ord != Less,
        _ => false,
    }
}

fn contains_ignore_ascii_case(hay: &str, lower_needle: &str) -> bool {
    let h = hay.as_bytes();
    let n = lower_needle.as_bytes();
    if n.is_empty() {
        return true;
    }
    if n.len() > h.len() {
        return false;
    }
    h.windows(n.len())
        .any(|w| w.iter().zip(n).all(|(a, b)| a.to_ascii_lowercase() == *b))
}

impl Test {
    /// The result of the test on a value known at load time, for tests that do not read the
    /// event (`None` for comparisons with another field).
    pub(crate) fn on_constant_str(&self, v: &str) -> Option<bool> {
        Some(match self {
            Test::Field(..) => return None,
            Test::Modified(m, tests) => {
                let mut n = 0;
                for t in tests {
                    if t.on_constant_str(v)? {
                        n += 1;
                    }
                }
                match m {
                    Modifier::AnyOf => n >= 1,
                    Modifier::OneOf => n == 1,
                    Modifier::AllOf => n == tests.len(),
                }
            }
            Test::Exists
            | Test::StrEq(_)
            | Test::StrNe(_)
            | Test::StrOrd(..)
            | Test::Contains(_)
            | Test::IContains(_)
            | Test::StartsWith(_)
            | Test::EndsWith(_)
            | Test::Glob(_)
            | Test::IGlob(_)
            | Test::Regex(_)
            | Test::StrIn(_)
            | Test::Pmatch(_)
            | Test::AnyContains(_)
            | Test::Needles(_) => {
                // String tests other than the two above never read the event.
                let ev = Event {
                    evt: crate::event::EventMeta {
                        evt_type: crate::event::EventType::Tasksentry,
                        time: crate::event::Timestamp(0),
                        num: 0,
                        collector: crate::event::Collector::Monitor,
                        args: Vec::new(),
                    },
                    proc: None,
                    container: None,
                    fd: None,
                    internal: None,
                };
                self.test_str(v, &EvalCtx::new(&ev))
            }
            _ => return None,
        })
    }

    fn test_str(&self, v: &str, cx: &EvalCtx<'_>) -> bool {
        match self {
            Test::Exists => true,
            Test::StrEq(s) => **s == *v,
            Test::StrNe(s) => **s != *v,
            Test::StrOrd(op, s) => ord_holds(*op, v.as_bytes().cmp(s.as_bytes())),
            Test::Contains(s) => v.contains(&**s),
            Test::IContains(s) => contains_ignore_ascii_case(v, s),
            Test::StartsWith(s) => v.starts_with(&**s),
            Test::EndsWith(s) => v.ends_with(&**s),
            Test::Glob(g) | Test::IGlob(g) => g.matches(v),
            Test::Regex(r) => r.is_match(v),
            Test::StrIn(set) => set.contains(v),
            Test::Pmatch(trie) => trie.matches(v),
            Test::AnyContains(m) => m.matches(v),
            Test::Needles(n) if cx.bypass() => n.original.test_str(v, cx),
            Test::Needles(n) => n.on_value(v, cx),
            Test::Modified(Modifier::AnyOf, tests) => tests.iter().any(|t| t.test_str(v, cx)),
            Test::Modified(..) | Test::Field(..) => {
                self.test(&Val::Str(std::borrow::Cow::Borrowed(v)), cx)
            }
            _ => false,
        }
    }

    /// [`Test::test`] on `Val::Int(v)`, without building the value for the usual tests.
    #[inline]
    fn test_int(&self, v: i64, cx: &EvalCtx<'_>) -> bool {
        match self {
            Test::Exists => true,
            Test::Num(op, n) => ord_holds(*op, v.cmp(n)),
            Test::NumIn(set) => set.binary_search(&v).is_ok(),
            _ => self.test(&Val::Int(v), cx),
        }
    }

    /// [`Test::test`] on `Val::Bool(v)`, without building the value for the usual tests.
    #[inline]
    fn test_bool(&self, v: bool, cx: &EvalCtx<'_>) -> bool {
        match self {
            Test::Exists => true,
            Test::Bool(eq, b) => (v == *b) == *eq,
            Test::BoolIn(set) => set.contains(&v),
            _ => self.test(&Val::Bool(v), cx),
        }
    }

    fn test(&self, v: &Val<'_>, cx: &EvalCtx<'_>) -> bool {
        if let Val::Str(s) = v
            && !matches!(self, Test::Modified(..) | Test::Field(..))
        {
            return self.test_str(s, cx);
        }
        match (self, v) {
            (Test::Exists, _) => true,
            (Test::StrEq(s), Val::Str(v)) => **s == **v,
            (Test::StrNe(s), Val::Str(v)) => **s != **v,
            (Test::StrOrd(op, s), Val::Str(v)) => ord_holds(*op, v.as_bytes().cmp(s.as_bytes())),
            (Test::Contains(s), Val::Str(v)) => v.contains(&**s),
            (Test::IContains(s), Val::Str(v)) => contains_ignore_ascii_case(v, s),
            (Test::StartsWith(s), Val::Str(v)) => v.starts_with(&**s),
            (Test::EndsWith(s), Val::Str(v)) => v.ends_with(&**s),
            (Test::Glob(g), Val::Str(v)) => g.matches(v),
            (Test::IGlob(g), Val::Str(v)) => g.matches(v),
            (Test::Regex(r), Val::Str(v)) => r.is_match(v),
            (Test::StrIn(set), Val::Str(v)) => set.contains(v),
            (Test::Pmatch(trie), Val::Str(v)) => trie.matches(v),
            (Test::AnyContains(m), Val::Str(v)) => m.matches(v),
            (Test::Modified(Modifier::AnyOf, tests), v) => tests.iter().any(|t| t.test(v, cx)),
            (Test::Modified(m, tests), v) => {
                let n = tests.iter().filter(|t| t.test(v, cx)).count();
                match m {
                    Modifier::AnyOf => n >= 1,
                    Modifier::OneOf => n == 1,
                    Modifier::AllOf => n == tests.len(),
                }
            }
            (Test::Num(op, n), Val::Int(v)) => ord_holds(*op, v.cmp(n)),
            (Test::NumIn(set), Val::Int(v)) => set.binary_search(v).is_ok(),
            (Test::Bool(eq, b), Val::Bool(v)) => (*v == *b) == *eq,
            (Test::BoolIn(set), Val::Bool(v)) => set.contains(v),
            (Test::Ip(eq, ip), Val::Ip(v)) => (*v == *ip) == *eq,
            (Test::IpIn(set), Val::Ip(v)) => set.contains(v),
            (Test::Net(inside, nets), Val::Ip(v)) => nets.iter().any(|n| n.contains(v)) == *inside,
            (Test::Field(op, other), v) => {
                let Some(o) = other.value(cx) else {
                    return false;
                };
                match (v, &o) {
                    (Val::Str(a), Val::Str(b)) => match op {
                        Op::Contains => a.contains(&**b),
                        Op::IContains => contains_ignore_ascii_case(a, &b.to_ascii_lowercase()),
                        Op::StartsWith => a.starts_with(&**b),
                        Op::EndsWith => a.ends_with(&**b),
                        Op::Glob => Glob::new(b, false).matches(a),
                        Op::IGlob => Glob::new(b, true).matches(a),
                        Op::In | Op::Intersects => a == b,
                        _ => ord_holds(*op, a.as_bytes().cmp(b.as_bytes())),
                    },
                    (Val::Int(a), Val::Int(b)) => match op {
                        Op::In | Op::Intersects => a == b,
                        _ => ord_holds(*op, a.cmp(b)),
                    },
                    (Val::Bool(a), Val::Bool(b)) => ord_holds(*op, a.cmp(b)),
                    (Val::Ip(a), Val::Ip(b)) => ord_holds(*op, a.cmp(b)),
                    _ => false,
                }
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The capability tests answered from the mask agree with testing the decoded names.
    #[test]
    fn capability_tests_on_the_mask_agree_with_the_decoded_names() {
        use crate::event::{Collector, EventType, Process};
        let ids = [
            FieldId::ThreadCapEffective,
            FieldId::ThreadCapPermitted,
            FieldId::ThreadCapInheritable,
        ];
        let masks = [
            None,
            Some(0),
            Some(1 << 21),
            Some((1 << 21) | (1 << 50)),
            Some(1 << 50),
            Some(1 << 40),
            Some(1 << 41),
            Some(u64::MAX),
        ];
        let mut checked = 0;
        for id in ids {
            for mask in masks {
                for with_proc in [true, false] {
                    let mut ev = Event::new(EventType::Execve, Collector::Procscan);
                    if with_proc {
                        ev.proc = Some(Box::new(Process {
                            cap_effective: mask,
                            cap_permitted: mask,
                            cap_inheritable: mask,
                            ..Process::default()
                        }));
                    }
                    let cx = EvalCtx::new(&ev);
                    for test in [Test::Exists, Test::StrEq("".into()), Test::StrNe("".into())] {
                        let lhs = Lhs {
                            field: FieldRef {
                                id,
                                arg: fields::FieldArg::None,
                                ty: fields::FieldType::String,
                            },
                            transformers: Vec::new(),
                            mode: LhsMode::Single,
                            fast: None,
                            fast_direct: None,
                        };
                        let decoded = lhs.value(&cx).is_some_and(|v| test.test(&v, &cx));
                        assert_eq!(
                            cap_test_on_mask(&lhs, &test, &cx),
                            Some(decoded),
                            "{id:?} {mask:?} {test:?} proc={with_proc}"
                        );
                        assert_eq!(eval_check(&lhs, &test, &cx), decoded);
                        checked += 1;
                    }
                }
            }
        }
        assert_eq!(checked, 3 * 8 * 2 * 3);
    }
}
