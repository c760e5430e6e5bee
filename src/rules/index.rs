//! The candidate index: per event type, the rules that can match it, in rule order; within a
//! type, rules keyed by a string value their condition requires (e.g. `proc.name in (...)`), so
//! that only the rules whose key the event carries are evaluated.

use super::CompiledRule;
use super::compile::ALL_TYPES;
use super::eval::{EvalCtx, Fnv, LhsMode, Node, StrAccessor, Test};
use super::fields::{FieldId, FieldRef};
use crate::event::EventType;
use crate::priority::Priority;

/// Which rules are evaluated for an event, per event type (rules disabled or below the minimum
/// priority are left out).
#[derive(Default)]
pub(crate) struct Index {
    /// Per event type: indices of candidate rules (type-specific and all-type), in order.
    pub(crate) by_type: Vec<Vec<u32>>,
    /// Per event type: type-specific rules only.
    pub(crate) specific: Vec<Vec<u32>>,
    /// Rules that apply to every type.
    pub(crate) all_types: Vec<u32>,
    /// `by_type`, keyed.
    pub(crate) by_type_keyed: Vec<Candidates>,
    /// `specific`, keyed.
    pub(crate) specific_keyed: Vec<Candidates>,
    /// `all_types`, keyed.
    pub(crate) all_types_keyed: Candidates,
}

impl Index {
    /// The index of the enabled rules at least as severe as `min_priority`.
    pub(crate) fn new(rules: &[CompiledRule], min_priority: Priority) -> Index {
        let n = EventType::ALL.len();
        let mut ix = Index {
            by_type: vec![Vec::new(); n],
            specific: vec![Vec::new(); n],
            all_types: Vec::new(),
            by_type_keyed: (0..n).map(|_| Candidates::default()).collect(),
            specific_keyed: (0..n).map(|_| Candidates::default()).collect(),
            all_types_keyed: Candidates::default(),
        };
        for (i, rule) in rules.iter().enumerate() {
            if !rule.info.enabled || rule.info.priority < min_priority {
                continue;
            }
            let idx = u32::try_from(i).unwrap_or(u32::MAX);
            let key = rule_key(&rule.cond);
            let all = rule.types == ALL_TYPES;
            if all {
                ix.all_types.push(idx);
                ix.all_types_keyed.push(idx, key.clone());
            }
            for t in EventType::ALL {
                if rule.types & (1 << t.index()) != 0 {
                    ix.by_type[t.index()].push(idx);
                    ix.by_type_keyed[t.index()].push(idx, key.clone());
                    if !all {
                        ix.specific[t.index()].push(idx);
                        ix.specific_keyed[t.index()].push(idx, key.clone());
                    }
                }
            }
        }
        ix
    }
}

/// Hash map from a field value to the rules that require it.
type KeyMap = std::collections::HashMap<Box<str>, Vec<u32>, std::hash::BuildHasherDefault<Fnv>>;

/// Candidate rules for one event type (or for all types), in rule order.
///
/// A rule whose condition can only hold when a plain string field equals one of a few
/// values (a top-level `proc.name in (...)`, also through macros and through an `or` whose
/// every branch requires it) is *keyed*: it is listed under each of those values, and only
/// considered when the event's value is one of them. A field that is absent fails such a test,
/// so the rule is then skipped too. Keyed rules still evaluate their whole condition.
#[derive(Default)]
pub(crate) struct Candidates {
    /// Rules without a key.
    unkeyed: Vec<u32>,
    /// Per keyed field: its accessor and the map from values to rules.
    keyed: Vec<(FieldRef, StrAccessor, KeyMap)>,
}

impl Candidates {
    /// The most rules a lookup gathers on the stack before falling back to a scan of all.
    const MAX_HITS: usize = 64;

    fn push(&mut self, idx: u32, key: Option<RuleKey>) {
        let Some((field, accessor, values)) = key else {
            self.unkeyed.push(idx);
            return;
        };
        let at = match self.keyed.iter().position(|(f, _, _)| *f == field) {
            Some(at) => at,
            None => {
                self.keyed.push((field, accessor, KeyMap::default()));
                self.keyed.len() - 1
            }
        };
        for v in values {
            let list = self.keyed[at].2.entry(v).or_default();
            if list.last() != Some(&idx) {
                list.push(idx);
            }
        }
    }

    /// Calls `f` with every candidate for the event, in rule order, until it returns true.
    #[inline]
    pub(crate) fn each(&self, cx: &EvalCtx<'_>, all: &[u32], mut f: impl FnMut(u32) -> bool) {
        if self.keyed.is_empty() {
            for &i in &self.unkeyed {
                if f(i) {
                    return;
                }
            }
            return;
        }
        let mut hits = [0u32; Self::MAX_HITS];
        let mut n = 0;
        for (_, accessor, map) in &self.keyed {
            let Some(list) = accessor(cx).and_then(|v| map.get(v)) else {
                continue;
            };
            if n + list.len() > Self::MAX_HITS {
                // Too many to order on the stack: scan every rule of the type instead.
                for &i in all {
                    if f(i) {
                        return;
                    }
                }
                return;
            }
            hits[n..n + list.len()].copy_from_slice(list);
            n += list.len();
        }
        let hits = &mut hits[..n];
        hits.sort_unstable();
        // Merge the two ordered lists (a rule is in one of them only).
        let (mut a, mut b) = (0, 0);
        let unkeyed = &self.unkeyed;
        while a < unkeyed.len() || b < hits.len() {
            let take_a = b >= hits.len() || (a < unkeyed.len() && unkeyed[a] < hits[b]);
            let i = if take_a {
                a += 1;
                unkeyed[a - 1]
            } else {
                b += 1;
                hits[b - 1]
            };
            if f(i) {
                return;
            }
        }
    }
}

/// A rule's key: the field, its accessor and the values one of which it requires.
type RuleKey = (FieldRef, StrAccessor, Vec<Box<str>>);

/// The values of a plain string field that `node` requires (see [`Candidates`]).
fn required_values(node: &Node, field: &FieldRef) -> Option<Vec<Box<str>>> {
    match node {
        Node::Check(c) => {
            let (lhs, test) = &**c;
            if lhs.field != *field
                || !lhs.transformers.is_empty()
                || !matches!(lhs.mode, LhsMode::Single)
                || lhs.fast.is_none()
            {
                return None;
            }
            match test {
                Test::StrEq(s) => Some(vec![s.clone()]),
                Test::StrIn(set) => Some(set.iter().cloned().collect()),
                _ => None,
            }
        }
        Node::Memo(_, inner) => required_values(inner, field),
        Node::And(items) => items.iter().find_map(|n| required_values(n, field)),
        Node::Or(items) => {
            let mut all = Vec::new();
            for n in items.iter() {
                all.extend(required_values(n, field)?);
            }
            Some(all)
        }
        _ => None,
    }
}

/// Plain string fields tested with `=`/`in` at the top level of a condition (candidates for a
/// key), `proc.name` first.
fn key_candidates(node: &Node, out: &mut Vec<(FieldRef, StrAccessor)>) {
    match node {
        Node::Check(c) => {
            let (lhs, test) = &**c;
            if let Some(fast) = lhs.fast
                && lhs.transformers.is_empty()
                && matches!(lhs.mode, LhsMode::Single)
                && matches!(test, Test::StrEq(_) | Test::StrIn(_))
                && !out.iter().any(|(f, _)| *f == lhs.field)
            {
                out.push((lhs.field.clone(), fast));
            }
        }
        Node::And(items) | Node::Or(items) => {
            for n in items.iter() {
                key_candidates(n, out);
            }
        }
        Node::Memo(_, inner) => key_candidates(inner, out),
        _ => {}
    }
}

/// The key of a rule's condition, if it has one (at most [`Candidates::MAX_HITS`] values are
/// not a limit: a key with many values just makes a longer map).
fn rule_key(node: &Node) -> Option<RuleKey> {
    let mut fields_seen = Vec::new();
    key_candidates(node, &mut fields_seen);
    fields_seen.sort_by_key(|(f, _)| f.id != FieldId::ProcName);
    fields_seen
        .into_iter()
        .find_map(|(f, acc)| required_values(node, &f).map(|v| (f, acc, v)))
}
