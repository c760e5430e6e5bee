//! The compiled form of a condition and its evaluation against an event.
//!
//! Everything that can be decided at load time is: right-hand values are parsed into the
//! field's type, `in` sets are hashed, `pmatch` paths are put in a component trie, globs and
//! regexes are compiled. Evaluation never parses text and never allocates for the common
//! string fields. A field that an event does not provide makes every check false (spec §2.9);
//! `not` inverts afterwards.

use std::borrow::Cow;
use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::IpAddr;

use crate::event::Event;

use super::condition::{Modifier, Op, Transformer};
use super::fields::{self, EvalCtx, FieldId, FieldRef, Val};

/// A small, fast, non-cryptographic hasher (the Fx hash, 8 bytes at a time) for the load-time
/// string sets. The keys come from rule files, not from the monitored workload, so hash
/// flooding is not a concern; lookups hash event values, so speed matters.
#[derive(Default)]
pub struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        let mut h = self.0;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut buf = [0u8; 8];
            buf.copy_from_slice(c);
            h = (h.rotate_left(5) ^ u64::from_le_bytes(buf)).wrapping_mul(K);
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut buf = [0u8; 8];
            buf[..rest.len()].copy_from_slice(rest);
            h = (h.rotate_left(5) ^ u64::from_le_bytes(buf)).wrapping_mul(K);
        }
        self.0 = h;
    }
    fn write_u8(&mut self, i: u8) {
        self.0 = (self.0.rotate_left(5) ^ u64::from(i)).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

/// A set of strings: small sets are scanned (length first), larger ones hashed with [`Fnv`]
/// behind a filter that rejects most non-members without hashing.
#[derive(Debug)]
pub enum StrSet {
    /// Up to [`StrSet::SMALL`] strings.
    Small(Vec<Box<str>>),
    /// A hash set, and a [`StrFilter`] of its members.
    Hashed(HashSet<Box<str>, BuildHasherDefault<Fnv>>, StrFilter),
}

/// A 256-bit filter over a set of strings, keyed by a string's length and its first and last
/// bytes: a string whose bit is clear is not in the set (a set bit proves nothing). Most
/// values an event carries (a process name, an image, a path) differ from every member of a
/// list in one of those, so they are rejected in a few instructions.
#[derive(Debug, Default)]
pub struct StrFilter([u64; 4]);

impl StrFilter {
    #[inline]
    fn bit(s: &str) -> usize {
        let b = s.as_bytes();
        let first = b.first().copied().unwrap_or(0);
        let last = b.last().copied().unwrap_or(0);
        // Only the low bits of the length matter; the truncation is intended.
        let len = b.len() as u8;
        usize::from(first ^ last.rotate_left(3) ^ len.wrapping_mul(29))
    }

    fn insert(&mut self, s: &str) {
        let bit = Self::bit(s);
        if let Some(w) = self.0.get_mut(bit / 64) {
            *w |= 1 << (bit % 64);
        }
    }

    /// Whether `s` may be in the set.
    #[inline]
    pub fn may_contain(&self, s: &str) -> bool {
        let bit = Self::bit(s);
        self.0
            .get(bit / 64)
            .is_some_and(|w| w & (1 << (bit % 64)) != 0)
    }
}

impl StrSet {
    /// Sets up to this size are scanned linearly.
    pub const SMALL: usize = 6;

    /// Builds a set.
    pub fn new(items: impl IntoIterator<Item = Box<str>>) -> StrSet {
        let mut v: Vec<Box<str>> = items.into_iter().collect();
        v.sort();
        v.dedup();
        if v.len() <= Self::SMALL {
            StrSet::Small(v)
        } else {
            let mut filter = StrFilter::default();
            for s in &v {
                filter.insert(s);
            }
            StrSet::Hashed(v.into_iter().collect(), filter)
        }
    }

    /// Membership.
    #[inline]
    pub fn contains(&self, s: &str) -> bool {
        match self {
            StrSet::Small(v) => v.iter().any(|x| x.len() == s.len() && **x == *s),
            StrSet::Hashed(h, filter) => filter.may_contain(s) && h.contains(s),
        }
    }

    /// The members.
    pub fn iter(&self) -> Box<dyn Iterator<Item = &Box<str>> + '_> {
        match self {
            StrSet::Small(v) => Box::new(v.iter()),
            StrSet::Hashed(h, _) => Box::new(h.iter()),
        }
    }
}

/// An IP network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `a.b.c.d/len`, an IPv6 CIDR, or a bare address (a host network).
    pub fn parse(text: &str) -> Option<Cidr> {
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().ok()?, Some(p.parse::<u8>().ok()?)),
            None => (text.parse::<IpAddr>().ok()?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        if prefix > max {
            return None;
        }
        Some(Cidr { addr, prefix })
    }

    /// Whether `ip` is inside the network (IPv4-mapped IPv6 addresses match IPv4 networks).
    pub fn contains(&self, ip: &IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => mask_eq(
                u128::from(u32::from(net)),
                u128::from(u32::from(*ip)),
                32,
                self.prefix,
            ),
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                mask_eq(u128::from(net), u128::from(*ip), 128, self.prefix)
            }
            (IpAddr::V4(net), IpAddr::V6(ip)) => match ip.to_ipv4_mapped() {
                Some(ip) => mask_eq(
                    u128::from(u32::from(net)),
                    u128::from(u32::from(ip)),
                    32,
                    self.prefix,
                ),
                None => false,
            },
            (IpAddr::V6(_), IpAddr::V4(_)) => false,
        }
    }
}

fn mask_eq(a: u128, b: u128, bits: u32, prefix: u8) -> bool {
    let prefix = u32::from(prefix);
    if prefix == 0 {
        return true;
    }
    let shift = bits - prefix;
    (a >> shift) == (b >> shift)
}

/// A compiled shell wildcard pattern (fnmatch without flags: `*` crosses `/`), matched on
/// bytes like fnmatch in the C locale, without allocating.
#[derive(Debug, Clone)]
pub struct Glob {
    tokens: Vec<GlobTok>,
    fold: bool,
}

#[derive(Debug, Clone)]
enum GlobTok {
    Byte(u8),
    Any,
    Star,
    Class {
        negated: bool,
        ranges: Vec<(u8, u8)>,
    },
}

impl Glob {
    /// Compiles a pattern; `fold` makes it ASCII case-insensitive (for `iglob`).
    pub fn new(pattern: &str, fold: bool) -> Glob {
        let lowered;
        let chars: &[u8] = if fold {
            lowered = pattern.to_ascii_lowercase();
            lowered.as_bytes()
        } else {
            pattern.as_bytes()
        };
        let mut tokens = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            match chars[i] {
                b'*' => {
                    if !matches!(tokens.last(), Some(GlobTok::Star)) {
                        tokens.push(GlobTok::Star);
                    }
                }
                b'?' => tokens.push(GlobTok::Any),
                b'\\' if i + 1 < chars.len() => {
                    i += 1;
                    tokens.push(GlobTok::Byte(chars[i]));
                }
                b'[' => {
                    // Find the closing bracket; a `]` right after `[` or `[!` is literal.
                    let mut j = i + 1;
                    let negated = matches!(chars.get(j), Some(b'!' | b'^'));
                    if negated {
                        j += 1;
                    }
                    let first = j;
                    let mut ranges = Vec::new();
                    let mut closed = false;
                    while j < chars.len() {
                        if chars[j] == b']' && j > first {
                            closed = true;
                            break;
                        }
                        let lo = chars[j];
                        if chars.get(j + 1) == Some(&b'-')
                            && chars.get(j + 2).is_some_and(|c| *c != b']')
                        {
                            ranges.push((lo, chars[j + 2]));
                            j += 3;
                        } else {
                            ranges.push((lo, lo));
                            j += 1;
                        }
                    }
                    if closed {
                        tokens.push(GlobTok::Class { negated, ranges });
                        i = j;
                    } else {
                        tokens.push(GlobTok::Byte(b'['));
                    }
                }
                c => tokens.push(GlobTok::Byte(c)),
            }
            i += 1;
        }
        Glob { tokens, fold }
    }

    /// Whether the whole of `text` matches.
    pub fn matches(&self, text: &str) -> bool {
        let t = text.as_bytes();
        let p = &self.tokens;
        let fold = self.fold;
        let at = |i: usize| {
            if fold {
                t[i].to_ascii_lowercase()
            } else {
                t[i]
            }
        };
        let (mut ti, mut pi) = (0usize, 0usize);
        let mut star: Option<(usize, usize)> = None;
        while ti < t.len() {
            if pi < p.len() {
                let c = at(ti);
                match &p[pi] {
                    GlobTok::Star => {
                        star = Some((pi, ti));
                        pi += 1;
                        continue;
                    }
                    GlobTok::Any => {
                        ti += 1;
                        pi += 1;
                        continue;
                    }
                    GlobTok::Byte(b) if *b == c => {
                        ti += 1;
                        pi += 1;
                        continue;
                    }
                    GlobTok::Class { negated, ranges }
                        if ranges.iter().any(|(lo, hi)| *lo <= c && c <= *hi) != *negated =>
                    {
                        ti += 1;
                        pi += 1;
                        continue;
                    }
                    _ => {}
                }
            }
            match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            }
        }
        p[pi..].iter().all(|t| matches!(t, GlobTok::Star))
    }
}

fn has_glob_chars(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// A trie over path components for `pmatch`.
#[derive(Debug, Default)]
pub struct PathTrie {
    terminal: bool,
    /// Literal components, sorted by name: scanned when few (the usual case, a handful of
    /// directories), binary-searched otherwise; no hashing of the event's path.
    children: Vec<(Box<str>, PathTrie)>,
    globs: Vec<(Glob, PathTrie)>,
}

impl PathTrie {
    /// Child counts up to which the literal components are scanned.
    const SCAN_UP_TO: usize = 8;

    /// Adds a path prefix.
    pub fn insert(&mut self, path: &str) {
        let mut node = self;
        for comp in path.split('/').filter(|c| !c.is_empty()) {
            node = if has_glob_chars(comp) {
                let idx = node.globs.len();
                node.globs
                    .push((Glob::new(comp, false), PathTrie::default()));
                &mut node.globs[idx].1
            } else {
                let idx = match node.children.binary_search_by(|(k, _)| (**k).cmp(comp)) {
                    Ok(i) => i,
                    Err(i) => {
                        node.children.insert(i, (comp.into(), PathTrie::default()));
                        i
                    }
                };
                &mut node.children[idx].1
            };
        }
        node.terminal = true;
    }

    /// Whether some inserted path is a component-wise prefix of `path`.
    pub fn matches(&self, path: &str) -> bool {
        self.matches_from(path)
    }

    /// The child for a literal component.
    #[inline]
    fn child(&self, comp: &str) -> Option<&PathTrie> {
        if self.children.len() <= Self::SCAN_UP_TO {
            self.children
                .iter()
                .find(|(k, _)| {
                    // Length and first byte before comparing: directory names in one list
                    // often have the same length (`/tmp`, `/var`, `/dev`, `/run`).
                    k.len() == comp.len()
                        && k.as_bytes().first() == comp.as_bytes().first()
                        && **k == *comp
                })
                .map(|(_, c)| c)
        } else {
            self.children
                .binary_search_by(|(k, _)| (**k).cmp(comp))
                .ok()
                .and_then(|i| self.children.get(i))
                .map(|(_, c)| c)
        }
    }

    /// `rest` is the path still to match; its components are split off one at a time, so
    /// matching never allocates.
    fn matches_from(&self, rest: &str) -> bool {
        if self.terminal {
            return true;
        }
        // Components are short: a byte loop beats the general substring searchers here (and
        // `/` is ASCII, so every cut is on a char boundary).
        let bytes = rest.as_bytes();
        let from = bytes.iter().position(|&b| b != b'/').unwrap_or(bytes.len());
        let Some(rest) = rest.get(from..).filter(|r| !r.is_empty()) else {
            return false;
        };
        let (first, rest) = match rest.as_bytes().iter().position(|&b| b == b'/') {
            Some(i) => (
                rest.get(..i).unwrap_or(rest),
                rest.get(i + 1..).unwrap_or(""),
            ),
            None => (rest, ""),
        };
        if let Some(child) = self.child(first)
            && child.matches_from(rest)
        {
            return true;
        }
        self.globs
            .iter()
            .any(|(g, child)| g.matches(first) && child.matches_from(rest))
    }
}

/// Substring search for several needles at once. With a few needles each is searched in
/// turn; with more, one unanchored regex of the escaped alternatives (the regex crate runs it
/// as a multi-substring search) finds any of them in one pass.
#[derive(Debug)]
pub struct MultiContains {
    needles: Vec<Box<str>>,
    regex: Option<regex::Regex>,
}

impl MultiContains {
    /// Needle counts from which the single regex is used.
    const REGEX_FROM: usize = 4;

    /// Builds the matcher.
    pub fn new(mut needles: Vec<Box<str>>) -> MultiContains {
        needles.sort();
        needles.dedup();
        let regex = if needles.len() >= Self::REGEX_FROM && needles.iter().all(|n| !n.is_empty()) {
            let alternation: Vec<String> = needles.iter().map(|n| regex::escape(n)).collect();
            // If the regex cannot be built (size limit), the needles are searched one by one.
            regex::RegexBuilder::new(&alternation.join("|"))
                .size_limit(1 << 22)
                .build()
                .ok()
        } else {
            None
        };
        MultiContains { needles, regex }
    }

    /// The needles (sorted, deduplicated).
    pub fn needles(&self) -> &[Box<str>] {
        &self.needles
    }

    /// Whether `hay` contains any needle.
    #[inline]
    pub fn matches(&self, hay: &str) -> bool {
        match &self.regex {
            Some(r) => r.is_match(hay),
            None => self.needles.iter().any(|n| hay.contains(&**n)),
        }
    }
}

/// How the left-hand side produces values.
#[derive(Debug)]
pub enum LhsMode {
    /// One value (or none).
    Single,
    /// Any ancestor (ancestor fields without an index).
    AnyAncestor,
    /// Either end of a connection (`fd.ip`, `fd.net`, `fd.port`).
    Either(FieldId, FieldId),
}

/// A compiled left-hand side.
#[derive(Debug)]
pub struct Lhs {
    /// The field.
    pub field: FieldRef,
    /// Transformers, innermost first.
    pub transformers: Vec<Transformer>,
    /// How values are produced.
    pub mode: LhsMode,
    /// Direct accessor for plain string fields (fast path).
    pub fast: Option<fields::StrAccessor>,
    /// Direct accessor for plain number and boolean fields, and a few string fields with an
    /// argument (fast path).
    pub fast_direct: Option<fields::DirectAccessor>,
}

/// A compiled predicate on one value.
#[derive(Debug)]
pub enum Test {
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
    /// event for all such tests of the rule set (see [`super::needles`]).
    Needles(super::needles::NeedleTest),
}

/// A compiled condition.
#[derive(Debug)]
pub enum Node {
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
    /// result is kept in the event's context under the slot number (see [`super::memo`]).
    Memo(u32, Box<Node>),
}

impl Node {
    /// Evaluates the condition against an event.
    pub fn eval_event(&self, ev: &Event) -> bool {
        self.eval(&EvalCtx::new(ev))
    }

    /// Evaluates the condition with a per-event context.
    pub fn eval(&self, cx: &EvalCtx<'_>) -> bool {
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
    pub fn eval_uncached(&self, cx: &EvalCtx<'_>) -> bool {
        let before = cx.set_bypass(true);
        let result = self.eval_uncached_inner(cx);
        cx.set_bypass(before);
        result
    }

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

/// Applies transformers to a value; `None` when one fails (e.g. invalid base64).
pub fn apply_transformers<'a>(v: Val<'a>, transformers: &[Transformer]) -> Option<Val<'a>> {
    let mut v = v;
    for t in transformers {
        v = match (t, v) {
            (Transformer::ToLower, Val::Str(s)) => Val::Str(Cow::Owned(s.to_ascii_lowercase())),
            (Transformer::ToUpper, Val::Str(s)) => Val::Str(Cow::Owned(s.to_ascii_uppercase())),
            (Transformer::Basename, Val::Str(s)) => {
                Val::Str(Cow::Owned(fields::basename(&s).to_string()))
            }
            (Transformer::B64, Val::Str(s)) => Val::Str(Cow::Owned(b64_decode(&s)?)),
            (Transformer::Len, Val::Str(s)) => {
                Val::Int(i64::try_from(s.chars().count()).unwrap_or(i64::MAX))
            }
            _ => return None,
        };
    }
    Some(v)
}

/// Decodes standard base64 (with or without padding); `None` when invalid.
pub fn b64_decode(text: &str) -> Option<String> {
    fn val(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        })
    }
    let trimmed = text.trim_end_matches('=');
    if text.len() - trimmed.len() > 2 {
        return None;
    }
    let mut out = Vec::with_capacity(trimmed.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0u32;
    for c in trimmed.bytes() {
        acc = (acc << 6) | val(c)?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xff) as u8);
        }
    }
    if bits >= 6 {
        return None;
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

impl Lhs {
    /// Extracts the (transformed) value of a single-valued side.
    pub fn value<'c>(&self, cx: &'c EvalCtx<'_>) -> Option<Val<'c>> {
        let v = fields::extract_ctx(&self.field, cx)?;
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
fn eval_needles(lhs: &Lhs, n: &super::needles::NeedleTest, cx: &EvalCtx<'_>) -> bool {
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
        Some(fields::DirectAccessor::Int(get)) => {
            return get(cx).is_some_and(|v| test.test_int(v, cx));
        }
        Some(fields::DirectAccessor::Bool(get)) => {
            return get(cx).is_some_and(|v| test.test_bool(v, cx));
        }
        Some(fields::DirectAccessor::Str) => {
            if let Some(v) = fields::direct_str(&lhs.field, cx) {
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
    pub fn on_constant_str(&self, v: &str) -> Option<bool> {
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

    #[test]
    fn glob_crosses_slashes_like_fnmatch() {
        let g = Glob::new("/home/*/.ssh/*", false);
        assert!(g.matches("/home/a/.ssh/id"));
        assert!(g.matches("/home/a/b/.ssh/id"));
        assert!(!g.matches("/root/.ssh/id"));
        assert!(Glob::new("a[!b]c", false).matches("axc"));
        assert!(!Glob::new("a[!b]c", false).matches("abc"));
        assert!(Glob::new("a?c", false).matches("abc"));
        assert!(Glob::new(r"a\*", false).matches("a*"));
        assert!(!Glob::new(r"a\*", false).matches("ab"));
    }

    #[test]
    fn pmatch_by_component() {
        let mut t = PathTrie::default();
        t.insert("/var/run");
        t.insert("/opt/*/bin");
        assert!(t.matches("/var/run/docker.sock"));
        assert!(t.matches("/var/run"));
        assert!(!t.matches("/var/runx"));
        assert!(t.matches("/opt/x/bin/y"));
        assert!(!t.matches("/opt/x/lib"));
        assert!(t.matches("//var///run/"));
        assert!(!t.matches("/var"));
        assert!(!t.matches(""));
        let mut root = PathTrie::default();
        root.insert("/");
        assert!(root.matches("/anything"));
    }

    /// The reference for `pmatch`: some prefix's components equal (or glob-match) the
    /// path's first components.
    fn pmatch_reference(prefixes: &[String], path: &str) -> bool {
        let comps: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
        prefixes.iter().any(|p| {
            let pc: Vec<&str> = p.split('/').filter(|c| !c.is_empty()).collect();
            pc.len() <= comps.len()
                && pc.iter().zip(&comps).all(|(p, c)| {
                    if has_glob_chars(p) {
                        Glob::new(p, false).matches(c)
                    } else {
                        p == c
                    }
                })
        })
    }

    /// Tries with few children (scanned) and many (binary-searched) agree with the reference,
    /// on paths with repeated, leading and trailing slashes and non-ASCII components.
    #[test]
    fn pmatch_agrees_with_component_prefix_reference() {
        let few: Vec<String> = ["/tmp", "/var/tmp", "/dev/shm", "/opt/*/bin", "/é/ü"]
            .iter()
            .map(|s| (*s).to_string())
            .collect();
        let mut many = few.clone();
        many.extend((0..40).map(|i| format!("/d{i}/sub{}", i % 3)));
        many.push("/usr/local/lib".into());
        many.push("/".into());
        let paths = [
            "/usr/local/bin/worker",
            "/tmp",
            "/tmp/",
            "//tmp//x",
            "/tmpx/y",
            "/var/tmp/a",
            "/var",
            "/dev/shm",
            "/opt/a/bin/x",
            "/opt/a/lib",
            "/é/ü/x",
            "/é/u",
            "/d7/sub1/x",
            "/d7/sub2",
            "/d39/sub0",
            "/usr/local/lib/x",
            "",
            "/",
            "relative/tmp",
            "tmp/x",
        ];
        for set in [&few[..], &many[..many.len() - 1], &many[..]] {
            let mut t = PathTrie::default();
            for p in set {
                t.insert(p);
            }
            for path in paths {
                assert_eq!(
                    t.matches(path),
                    pmatch_reference(set, path),
                    "{path:?} in {} prefixes",
                    set.len()
                );
            }
        }
    }

    /// Hashed sets (behind their filter) and small sets agree with a plain scan of the
    /// members, for members, near misses (same length, same first or last byte), the empty
    /// string and non-ASCII strings.
    #[test]
    fn str_set_agrees_with_scanning_its_members() {
        let members: Vec<String> = [
            "",
            "a",
            "sh",
            "bash",
            "zsh",
            "worker",
            "nginx",
            "café",
            "日本",
            "x".repeat(300).as_str(),
        ]
        .iter()
        .map(|s| (*s).to_string())
        .chain((0..60).map(|i| format!("bin{i}")))
        .collect();
        let probes: Vec<String> = members
            .iter()
            .flat_map(|m| {
                [
                    m.clone(),
                    format!("{m}x"),
                    format!("x{m}"),
                    m.chars().skip(1).collect(),
                    m.to_uppercase(),
                ]
            })
            .chain(["workers", "worke", "wonker", "cafe", "日", &"x".repeat(299)].map(String::from))
            .collect();
        for n in [0, 3, StrSet::SMALL, StrSet::SMALL + 1, 20, members.len()] {
            let set = StrSet::new(members.iter().take(n).map(|m| Box::<str>::from(m.as_str())));
            assert_eq!(matches!(set, StrSet::Hashed(..)), n > StrSet::SMALL);
            for p in &probes {
                let want = members.iter().take(n).any(|m| m == p);
                assert_eq!(set.contains(p), want, "{p:?} in the first {n}");
            }
        }
    }

    #[test]
    fn multi_contains_escapes_and_agrees_with_one_by_one() {
        let needles = ["a.b", "(x", "c+", "[", "\\d", "é", "zz"];
        let m = MultiContains::new(needles.iter().map(|n| Box::<str>::from(*n)).collect());
        assert!(m.regex.is_some());
        for hay in [
            "a.b", "axb", "f(x", "c", "cc+", "[", "\\d", "7", "café", "cafe", "", "zz",
        ] {
            let want = needles.iter().any(|n| hay.contains(n));
            assert_eq!(m.matches(hay), want, "{hay}");
        }
        let empty = MultiContains::new(vec!["".into(), "a".into(), "b".into(), "c".into()]);
        assert!(empty.matches(""));
    }

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

    #[test]
    fn cidr() {
        let c = Cidr::parse("10.0.0.0/8").expect("cidr");
        assert!(c.contains(&"10.1.2.3".parse().expect("ip")));
        assert!(!c.contains(&"11.1.2.3".parse().expect("ip")));
        assert!(
            Cidr::parse("0.0.0.0/0")
                .expect("cidr")
                .contains(&"1.2.3.4".parse().expect("ip"))
        );
        assert!(Cidr::parse("10.0.0.0/33").is_none());
    }

    #[test]
    fn base64() {
        assert_eq!(b64_decode("aGVsbG8=").as_deref(), Some("hello"));
        assert_eq!(b64_decode("aGVsbG8").as_deref(), Some("hello"));
        assert_eq!(b64_decode("a$"), None);
    }
}
