//! One substring search per event for every `contains` on `proc.cmdline`.
//!
//! Falco's rules test the command line with many `contains` / `contains anyof (...)` checks
//! spread over different rules (crypto miners, cloud credentials, reverse shells, ...); each
//! used to scan the command line again. [`index`] gathers the needles of all of them into one
//! Aho-Corasick automaton (a DFA) when the rule set is built, and turns each such test into a
//! [`NeedleTest`]: the set of needle numbers it looks for. The first test an event reaches
//! runs the automaton once over the command line, recording which needles occur anywhere in
//! it (a bit set kept in the event's [`EvalCtx`]); that test and every later one are then a
//! bit-set intersection. The command line is fed to the automaton piece by piece (name, then
//! a space and each argument, exactly the bytes [`crate::event::join_cmdline`] would join), so
//! it does not have to be built at all unless another kind of test needs it.
//!
//! A value contains one of a test's needles exactly when one of those needles occurs in it,
//! which is what the bit set records, so results do not change. Needles past
//! [`NEEDLE_BITS`] (and empty needles, which every value contains) keep their plain test.

use std::sync::Arc;

use aho_corasick::automaton::Automaton;
use aho_corasick::{Anchored, MatchKind};

use super::eval::{LhsMode, Node, Test};
use super::fields::{EvalCtx, FieldArg, FieldId};
use crate::event::Process;

/// Words of the per-event needle bit set.
pub const NEEDLE_WORDS: usize = 4;

/// The most needles one rule set's automaton holds.
pub const NEEDLE_BITS: usize = NEEDLE_WORDS * 64;

/// Which needles occur in a value (bit `i` = needle `i`).
pub type NeedleBits = [u64; NEEDLE_WORDS];

/// The automaton over every converted needle of a rule set.
pub struct NeedleIndex {
    dfa: aho_corasick::dfa::DFA,
}

impl std::fmt::Debug for NeedleIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NeedleIndex")
            .field("needles", &self.dfa.patterns_len())
            .finish()
    }
}

impl NeedleIndex {
    /// Feeds `bytes` to the automaton from state `sid`, recording every needle that ends in
    /// them; returns the state after the last byte.
    fn feed(
        &self,
        mut sid: aho_corasick::automaton::StateID,
        bytes: &[u8],
        hits: &mut NeedleBits,
    ) -> aho_corasick::automaton::StateID {
        for &b in bytes {
            sid = self.dfa.next_state(Anchored::No, sid, b);
            if self.dfa.is_special(sid) && self.dfa.is_match(sid) {
                for i in 0..self.dfa.match_len(sid) {
                    let p = self.dfa.match_pattern(sid, i).as_usize();
                    if let Some(w) = hits.get_mut(p / 64) {
                        *w |= 1 << (p % 64);
                    }
                }
            }
        }
        sid
    }

    /// The needles that occur in a process's command line (`name arg1 arg2 ...`), without
    /// building it.
    pub fn scan_cmdline(&self, p: &Process) -> NeedleBits {
        let mut hits = [0; NEEDLE_WORDS];
        let Ok(mut sid) = self.dfa.start_state(Anchored::No) else {
            return hits;
        };
        sid = self.feed(sid, p.name.as_bytes(), &mut hits);
        for arg in &p.args {
            sid = self.feed(sid, b" ", &mut hits);
            sid = self.feed(sid, arg.as_bytes(), &mut hits);
        }
        hits
    }

    /// The needles that occur in `text`.
    pub fn scan(&self, text: &str) -> NeedleBits {
        let mut hits = [0; NEEDLE_WORDS];
        if let Ok(sid) = self.dfa.start_state(Anchored::No) {
            self.feed(sid, text.as_bytes(), &mut hits);
        }
        hits
    }
}

/// A `contains` test on `proc.cmdline` answered from the per-event needle bit set.
#[derive(Debug)]
pub struct NeedleTest {
    /// The automaton of the rule set.
    pub index: Arc<NeedleIndex>,
    /// The needles this test looks for.
    pub mask: NeedleBits,
    /// The test it replaces: the reference for [`Node::eval_uncached`].
    pub original: Box<Test>,
}

impl NeedleTest {
    /// Whether one of the needles occurs in the command line whose hits are `hits`.
    #[inline]
    pub fn holds(&self, hits: &NeedleBits) -> bool {
        self.mask.iter().zip(hits).any(|(m, h)| m & h != 0)
    }

    /// The test on the event's command line (`None` without a process), scanning it once per
    /// event.
    pub fn on_event(&self, cx: &EvalCtx<'_>) -> Option<bool> {
        let p = cx.ev.proc.as_deref()?;
        Some(self.holds(&cx.cmdline_needles(&self.index, || self.index.scan_cmdline(p))))
    }

    /// The test on `v`, the command line itself (when it is tested inside a list of tests).
    pub fn on_value(&self, v: &str, cx: &EvalCtx<'_>) -> bool {
        self.holds(&cx.cmdline_needles(&self.index, || self.index.scan(v)))
    }
}

/// The needles of a test that can be converted (all non-empty).
fn needles_of(test: &Test) -> Option<Vec<&str>> {
    let v: Vec<&str> = match test {
        Test::Contains(s) => vec![&**s],
        Test::AnyContains(m) => m.needles().iter().map(|n| &**n).collect(),
        _ => return None,
    };
    (!v.is_empty() && v.iter().all(|n| !n.is_empty())).then_some(v)
}

/// Calls `f` on every test of a plain `proc.cmdline` check (and the tests inside its lists).
fn each_cmdline_test(node: &mut Node, f: &mut dyn FnMut(&mut Test)) {
    match node {
        Node::And(items) | Node::Or(items) => {
            items.iter_mut().for_each(|n| each_cmdline_test(n, f));
        }
        Node::Not(inner) | Node::Memo(_, inner) => each_cmdline_test(inner, f),
        Node::Check(check) => {
            let (lhs, test) = &mut **check;
            if lhs.field.id == FieldId::ProcCmdline
                && lhs.field.arg == FieldArg::None
                && lhs.transformers.is_empty()
                && matches!(lhs.mode, LhsMode::Single)
            {
                each_test(test, f);
            }
        }
        Node::Const(_) | Node::TypeIn(_) => {}
    }
}

fn each_test(test: &mut Test, f: &mut dyn FnMut(&mut Test)) {
    if let Test::Modified(_, tests) = test {
        tests.iter_mut().for_each(|t| each_test(t, f));
    } else {
        f(test);
    }
}

/// Converts the `contains` tests on `proc.cmdline` of the given conditions (see the module
/// documentation); returns the number of needles in the automaton.
pub fn index(conds: &mut [&mut Node]) -> usize {
    // Number the needles, in order of first use, up to the limit.
    let mut ids: std::collections::HashMap<Box<str>, usize> = std::collections::HashMap::new();
    let mut order: Vec<Box<str>> = Vec::new();
    for cond in conds.iter_mut() {
        each_cmdline_test(cond, &mut |t| {
            let Some(needles) = needles_of(t) else {
                return;
            };
            let new = needles.iter().filter(|n| !ids.contains_key(**n)).count();
            if order.len() + new > NEEDLE_BITS {
                return;
            }
            for n in needles {
                if !ids.contains_key(n) {
                    ids.insert(n.into(), order.len());
                    order.push(n.into());
                }
            }
        });
    }
    if order.is_empty() {
        return 0;
    }
    let Ok(dfa) = aho_corasick::dfa::DFA::builder()
        .match_kind(MatchKind::Standard)
        .prefilter(false)
        .build(order.iter().map(|n| n.as_bytes()))
    else {
        return 0;
    };
    let index = Arc::new(NeedleIndex { dfa });
    for cond in conds.iter_mut() {
        each_cmdline_test(cond, &mut |t| {
            let Some(needles) = needles_of(t) else {
                return;
            };
            let mut mask = [0u64; NEEDLE_WORDS];
            for n in needles {
                let Some(&i) = ids.get(n) else {
                    return;
                };
                if let Some(w) = mask.get_mut(i / 64) {
                    *w |= 1 << (i % 64);
                }
            }
            let original = std::mem::replace(t, Test::Exists);
            *t = Test::Needles(NeedleTest {
                index: Arc::clone(&index),
                mask,
                original: Box::new(original),
            });
        });
    }
    order.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index_of(needles: &[&str]) -> NeedleIndex {
        NeedleIndex {
            dfa: aho_corasick::dfa::DFA::builder()
                .match_kind(MatchKind::Standard)
                .prefilter(false)
                .build(needles)
                .expect("dfa"),
        }
    }

    /// Overlapping needles, needles spanning the space between name and argument, and needles
    /// that are suffixes of others are all reported, the same as searching each alone in the
    /// joined command line.
    #[test]
    fn scan_reports_every_needle_the_joined_command_line_contains() {
        let needles = [
            "-c",
            "--concurrency",
            "sh -c",
            "c i",
            " ",
            "id",
            "d",
            "bash -i",
            "é",
            "x y z",
            "zz",
            "-c id",
            "nc -e",
        ];
        let idx = index_of(&needles);
        for (name, args) in [
            ("sh", &["-c", "id"][..]),
            ("worker", &["--queue", "orders", "--concurrency", "4"][..]),
            ("bash", &["-i"][..]),
            ("café", &[][..]),
            ("x", &["y", "z"][..]),
            ("", &[""][..]),
            ("nc", &["-e", "/bin/sh"][..]),
        ] {
            let p = Process {
                name: name.into(),
                args: args.iter().map(|a| (*a).to_string()).collect(),
                ..Process::default()
            };
            let joined = p.cmdline();
            let hits = idx.scan_cmdline(&p);
            assert_eq!(hits, idx.scan(&joined), "{joined}");
            for (i, n) in needles.iter().enumerate() {
                assert_eq!(
                    hits[i / 64] & (1 << (i % 64)) != 0,
                    joined.contains(n),
                    "{n:?} in {joined:?}"
                );
            }
        }
    }
}
