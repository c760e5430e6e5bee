//! The matchers that tests compile into at load time: string sets, globs, path tries (`pmatch`),
//! multi-substring searches and networks, with the hasher of the load-time sets.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::IpAddr;

/// A small, fast, non-cryptographic hasher (the Fx hash, 8 bytes at a time) for the load-time
/// string sets. The keys come from rule files, not from the monitored workload, so hash
/// flooding is not a concern; lookups hash event values, so speed matters.
#[derive(Default)]
pub(crate) struct Fnv(u64);

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
pub(crate) enum StrSet {
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
pub(crate) struct StrFilter([u64; 4]);

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
    pub(crate) fn may_contain(&self, s: &str) -> bool {
        let bit = Self::bit(s);
        self.0
            .get(bit / 64)
            .is_some_and(|w| w & (1 << (bit % 64)) != 0)
    }
}

impl StrSet {
    /// Sets up to this size are scanned linearly.
    pub(crate) const SMALL: usize = 6;

    /// Builds a set.
    pub(crate) fn new(items: impl IntoIterator<Item = Box<str>>) -> StrSet {
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
    pub(crate) fn contains(&self, s: &str) -> bool {
        match self {
            StrSet::Small(v) => v.iter().any(|x| x.len() == s.len() && **x == *s),
            StrSet::Hashed(h, filter) => filter.may_contain(s) && h.contains(s),
        }
    }

    /// The members.
    pub(crate) fn iter(&self) -> Box<dyn Iterator<Item = &Box<str>> + '_> {
        match self {
            StrSet::Small(v) => Box::new(v.iter()),
            StrSet::Hashed(h, _) => Box::new(h.iter()),
        }
    }
}

/// An IP network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `a.b.c.d/len`, an IPv6 CIDR, or a bare address (a host network).
    pub(crate) fn parse(text: &str) -> Option<Cidr> {
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
    pub(crate) fn contains(&self, ip: &IpAddr) -> bool {
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
pub(crate) struct Glob {
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
    pub(crate) fn new(pattern: &str, fold: bool) -> Glob {
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
    pub(crate) fn matches(&self, text: &str) -> bool {
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
pub(crate) struct PathTrie {
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
    pub(crate) fn insert(&mut self, path: &str) {
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
    pub(crate) fn matches(&self, path: &str) -> bool {
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
pub(crate) struct MultiContains {
    needles: Vec<Box<str>>,
    regex: Option<regex::Regex>,
}

impl MultiContains {
    /// Needle counts from which the single regex is used.
    const REGEX_FROM: usize = 4;

    /// Builds the matcher.
    pub(crate) fn new(mut needles: Vec<Box<str>>) -> MultiContains {
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
    pub(crate) fn needles(&self) -> &[Box<str>] {
        &self.needles
    }

    /// Whether `hay` contains any needle.
    #[inline]
    pub(crate) fn matches(&self, hay: &str) -> bool {
        match &self.regex {
            Some(r) => r.is_match(hay),
            None => self.needles.iter().any(|n| hay.contains(&**n)),
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
}
