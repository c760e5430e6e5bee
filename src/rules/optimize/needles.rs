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

use aho_corasick::automaton::{Automaton, StateID};
use aho_corasick::{Anchored, MatchKind};

use crate::event::Process;
use crate::rules::eval::{EvalCtx, LhsMode, Node, Test};
use crate::rules::fields::{FieldArg, FieldId};

/// Words of the per-event needle bit set.
pub(crate) const NEEDLE_WORDS: usize = 4;

/// The most needles one rule set's automaton holds.
pub(crate) const NEEDLE_BITS: usize = NEEDLE_WORDS * 64;

/// Which needles occur in a value (bit `i` = needle `i`).
pub(crate) type NeedleBits = [u64; NEEDLE_WORDS];

/// The automaton over every converted needle of a rule set, as a dense transition table.
///
/// It is built from aho-corasick's DFA (which does the Aho-Corasick construction) by visiting
/// every state reachable from its unanchored start state, and renumbered so that the scan is
/// one table load per byte: bytes are mapped to equivalence classes (bytes whose transitions
/// are the same from every state share one), a state's number is premultiplied by the row
/// stride (a power of two), and the states where needles end come last, so "does a needle end
/// here" is one comparison. The aho-corasick DFA's own `next_state` goes through its generic
/// API and costs several times more per byte.
pub(crate) struct NeedleIndex {
    /// Byte → equivalence class (column of the table).
    classes: [u8; 256],
    /// Row stride as a shift: a state's premultiplied number is its index << `stride2`.
    stride2: u32,
    /// `trans[sid + class]` = the next state (premultiplied); `sid` is premultiplied.
    trans: Box<[u32]>,
    /// The start state (premultiplied).
    start: u32,
    /// States (premultiplied) from this one on are those where needles end.
    match_from: u32,
    /// Per match state, in order from `match_from`: the needles that end there.
    matches: Box<[NeedleBits]>,
    /// Number of needles.
    needles: usize,
}

impl std::fmt::Debug for NeedleIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NeedleIndex")
            .field("needles", &self.needles)
            .field("states", &(self.trans.len() >> self.stride2))
            .finish()
    }
}

impl NeedleIndex {
    /// Builds the index of `needles` (needle `i` is bit `i`; at most [`NEEDLE_BITS`] of them,
    /// all non-empty); `None` if the automaton cannot be built.
    pub(crate) fn new<N: AsRef<[u8]>>(needles: &[N]) -> Option<NeedleIndex> {
        if needles.is_empty()
            || needles.len() > NEEDLE_BITS
            || needles.iter().any(|n| n.as_ref().is_empty())
        {
            return None;
        }
        let dfa = aho_corasick::dfa::DFA::builder()
            .match_kind(MatchKind::Standard)
            .prefilter(false)
            .build(needles)
            .ok()?;
        let start = dfa.start_state(Anchored::No).ok()?;
        // Every reachable state, in discovery order, with its full row.
        let mut order: Vec<StateID> = Vec::new();
        // aho-corasick's state id → its position in `order`.
        let mut number: Vec<Option<usize>> = Vec::new();
        let mut numbered = |sid: StateID, order: &mut Vec<StateID>| {
            let i = sid.as_usize();
            if number.len() <= i {
                number.resize(i + 1, None);
            }
            *number[i].get_or_insert_with(|| {
                order.push(sid);
                order.len() - 1
            })
        };
        numbered(start, &mut order);
        let mut rows: Vec<[usize; 256]> = Vec::new();
        let mut at = 0;
        while at < order.len() {
            let sid = order[at];
            let mut row = [0usize; 256];
            for (b, next) in (0..=255u8).zip(row.iter_mut()) {
                *next = numbered(dfa.next_state(Anchored::No, sid, b), &mut order);
            }
            rows.push(row);
            at += 1;
        }
        // The needles ending in each state.
        let ends: Vec<NeedleBits> = order
            .iter()
            .map(|&sid| {
                let mut bits = [0u64; NEEDLE_WORDS];
                if dfa.is_match(sid) {
                    for i in 0..dfa.match_len(sid) {
                        let p = dfa.match_pattern(sid, i).as_usize();
                        if let Some(w) = bits.get_mut(p / 64) {
                            *w |= 1 << (p % 64);
                        }
                    }
                }
                bits
            })
            .collect();
        // Byte classes: bytes with the same column.
        let mut classes = [0u8; 256];
        let mut columns: std::collections::HashMap<Vec<usize>, u8> =
            std::collections::HashMap::new();
        for b in 0..256 {
            let column: Vec<usize> = rows.iter().map(|r| r[b]).collect();
            let next = u8::try_from(columns.len()).ok()?;
            classes[b] = *columns.entry(column).or_insert(next);
        }
        let stride2 = usize::BITS - (columns.len() - 1).leading_zeros();
        // New numbers: states where no needle ends first, then the others.
        let quiet = ends.iter().filter(|e| **e == [0; NEEDLE_WORDS]).count();
        let mut renum = vec![0usize; order.len()];
        let (mut q, mut m) = (0, quiet);
        for (old, e) in ends.iter().enumerate() {
            if *e == [0; NEEDLE_WORDS] {
                renum[old] = q;
                q += 1;
            } else {
                renum[old] = m;
                m += 1;
            }
        }
        let premul = |state: usize| u32::try_from(state << stride2).ok();
        premul(order.len())?;
        let mut trans = vec![0u32; order.len() << stride2];
        let mut matches = vec![[0u64; NEEDLE_WORDS]; order.len() - quiet];
        for (old, row) in rows.iter().enumerate() {
            let new = renum[old];
            for b in 0..256 {
                trans[(new << stride2) + usize::from(classes[b])] = premul(renum[row[b]])?;
            }
            if new >= quiet {
                matches[new - quiet] = ends[old];
            }
        }
        Some(NeedleIndex {
            classes,
            stride2,
            trans: trans.into_boxed_slice(),
            start: premul(renum[0])?,
            match_from: premul(quiet)?,
            matches: matches.into_boxed_slice(),
            needles: needles.len(),
        })
    }

    /// Number of needles.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.needles
    }

    /// Feeds `bytes` to the automaton from state `sid`, recording every needle that ends in
    /// them; returns the state after the last byte.
    #[inline]
    fn feed(&self, mut sid: u32, bytes: &[u8], hits: &mut NeedleBits) -> u32 {
        for &b in bytes {
            let at = sid as usize + usize::from(self.classes[usize::from(b)]);
            // Every entry is a state of the table (built so), so the fallback never happens.
            sid = self.trans.get(at).copied().unwrap_or(self.start);
            if sid >= self.match_from {
                self.record(sid, hits);
            }
        }
        sid
    }

    /// Adds the needles ending in match state `sid` to `hits`.
    #[cold]
    fn record(&self, sid: u32, hits: &mut NeedleBits) {
        if let Some(ends) = self
            .matches
            .get(((sid - self.match_from) >> self.stride2) as usize)
        {
            for (h, e) in hits.iter_mut().zip(ends) {
                *h |= e;
            }
        }
    }

    /// The needles that occur in a process's command line (`name arg1 arg2 ...`), without
    /// building it.
    pub(crate) fn scan_cmdline(&self, p: &Process) -> NeedleBits {
        let mut hits = [0; NEEDLE_WORDS];
        let mut sid = self.feed(self.start, p.name.as_bytes(), &mut hits);
        for arg in &p.args {
            sid = self.feed(sid, b" ", &mut hits);
            sid = self.feed(sid, arg.as_bytes(), &mut hits);
        }
        hits
    }

    /// The needles that occur in `text`.
    pub(crate) fn scan(&self, text: &str) -> NeedleBits {
        let mut hits = [0; NEEDLE_WORDS];
        self.feed(self.start, text.as_bytes(), &mut hits);
        hits
    }
}

/// A `contains` test on `proc.cmdline` answered from the per-event needle bit set.
#[derive(Debug)]
pub(crate) struct NeedleTest {
    /// The automaton of the rule set.
    pub(crate) index: Arc<NeedleIndex>,
    /// The needles this test looks for.
    pub(crate) mask: NeedleBits,
    /// The test it replaces: the reference for `Node::eval_uncached` (in tests).
    pub(crate) original: Box<Test>,
}

impl NeedleTest {
    /// Whether one of the needles occurs in the command line whose hits are `hits`.
    #[inline]
    pub(crate) fn holds(&self, hits: &NeedleBits) -> bool {
        self.mask.iter().zip(hits).any(|(m, h)| m & h != 0)
    }

    /// The test on the event's command line (`None` without a process), scanning it once per
    /// event.
    pub(crate) fn on_event(&self, cx: &EvalCtx<'_>) -> Option<bool> {
        let p = cx.ev.proc.as_deref()?;
        Some(self.holds(&cx.cmdline_needles(&self.index, || self.index.scan_cmdline(p))))
    }

    /// The test on `v`, the command line itself (when it is tested inside a list of tests).
    pub(crate) fn on_value(&self, v: &str, cx: &EvalCtx<'_>) -> bool {
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
pub(crate) fn index(conds: &mut [&mut Node]) -> usize {
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
    let Some(index) = NeedleIndex::new(&order.iter().map(|n| n.as_bytes()).collect::<Vec<_>>())
    else {
        return 0;
    };
    let index = Arc::new(index);
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
        NeedleIndex::new(needles).expect("index")
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

    /// Which needles occur in `hay`, by plain substring search.
    fn by_contains(needles: &[String], hay: &str) -> NeedleBits {
        let mut bits = [0u64; NEEDLE_WORDS];
        for (i, n) in needles.iter().enumerate() {
            if hay.contains(n.as_str()) {
                bits[i / 64] |= 1 << (i % 64);
            }
        }
        bits
    }

    /// Which needles occur in `hay`, by aho-corasick's own overlapping search.
    fn by_aho_corasick(needles: &[String], hay: &str) -> NeedleBits {
        let ac = aho_corasick::AhoCorasick::builder()
            .match_kind(MatchKind::Standard)
            .build(needles)
            .expect("aho-corasick");
        let mut bits = [0u64; NEEDLE_WORDS];
        for m in ac.find_overlapping_iter(hay) {
            let i = m.pattern().as_usize();
            bits[i / 64] |= 1 << (i % 64);
        }
        bits
    }

    /// The table agrees with `str::contains` and with aho-corasick on adversarial sets: needles
    /// that are prefixes, suffixes and infixes of each other, repeated bytes, multi-byte and
    /// replacement characters (what lossy decoding of invalid UTF-8 leaves), control bytes,
    /// and the full [`NEEDLE_BITS`] needles (so matches land in every word of the bit set).
    #[test]
    fn table_agrees_with_contains_on_adversarial_needles() {
        let mut needles: Vec<String> = [
            "a",
            "aa",
            "aaa",
            "aaaa",
            "ab",
            "abab",
            "bab",
            "b",
            "ba",
            "abc",
            "bc",
            "c",
            "\u{fffd}",
            "\u{fffd}\u{fffd}",
            "é",
            "ée",
            "e",
            "日本",
            "本語",
            "\u{0}",
            "\n",
            " -c",
            "-c ",
            "--",
            "\u{7f}",
            "ÿ",
            "\u{10ffff}",
        ]
        .iter()
        .map(|s| (*s).to_string())
        .collect();
        let mut k = 0u32;
        while needles.len() < NEEDLE_BITS {
            needles.push(format!("n{k:x}x"));
            k += 1;
        }
        let idx = NeedleIndex::new(&needles).expect("index");
        assert_eq!(idx.len(), NEEDLE_BITS);
        let invalid = String::from_utf8_lossy(b"ab\xffc\xc3(\xe6\x97\xa5\xf0\x90\x80").into_owned();
        let hays = [
            String::new(),
            "a".into(),
            "aaaaaaaaab".into(),
            "abababab".into(),
            "xyzabcxyz".into(),
            "café éé".into(),
            "日本語".into(),
            "\u{0}\n\u{7f}ÿ\u{10ffff}".into(),
            "sh -c -- ls".into(),
            "n0x n1fx nffx nfex".into(),
            "n10xn11xn12x".into(),
            invalid.clone(),
            invalid.repeat(3),
        ];
        for hay in &hays {
            let want = by_contains(&needles, hay);
            assert_eq!(idx.scan(hay), want, "{hay:?}");
            assert_eq!(by_aho_corasick(&needles, hay), want, "{hay:?}");
        }
        // Every word of the bit set is reached.
        let all: String = needles.concat();
        assert_eq!(idx.scan(&all), [u64::MAX; NEEDLE_WORDS]);
    }

    /// Sets that cannot be indexed are refused rather than mis-indexed.
    #[test]
    fn refuses_empty_and_oversized_needle_sets() {
        assert!(NeedleIndex::new::<&str>(&[]).is_none());
        assert!(NeedleIndex::new(&["a", ""]).is_none());
        let many: Vec<String> = (0..=NEEDLE_BITS).map(|i| format!("{i}")).collect();
        assert!(NeedleIndex::new(&many).is_none());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 300, ..Default::default() })]

        /// On random needles and texts over a small alphabet (so that needles overlap and
        /// occur often), including multi-byte characters, the table finds exactly the needles
        /// `str::contains` finds, in the whole text and in a command line fed piece by piece.
        #[test]
        fn table_agrees_with_contains_on_random_input(
            needles in proptest::collection::vec("[ab é\u{fffd}-]{1,5}", 1..40),
            name in "[ab é\u{fffd}-]{0,8}",
            args in proptest::collection::vec("[ab é\u{fffd}-]{0,8}", 0..5),
        ) {
            let idx = NeedleIndex::new(&needles).expect("index");
            let p = Process { name, args, ..Process::default() };
            let joined = p.cmdline();
            let want = by_contains(&needles, &joined);
            proptest::prop_assert_eq!(idx.scan(&joined), want);
            proptest::prop_assert_eq!(idx.scan_cmdline(&p), want);
        }
    }
}
