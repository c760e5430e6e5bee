//! Version ordering, one per ecosystem, as its package manager orders versions:
//! dpkg (Debian policy §5.6.12), apk (apk-tools' `version.c`), PEP 440 (the `pep440_rs`
//! crate, uv's implementation), semver 2.0 (npm, Go modules with their `v`, crates.io) and
//! Maven (`ComparableVersion`), rpm (`rpmvercmp`). Each returns `None` for a version it cannot parse; no input
//! panics.

use std::cmp::Ordering;
use std::str::FromStr;

use super::Ecosystem;

/// Compares two versions of `ecosystem`.
pub fn compare(ecosystem: Ecosystem, a: &str, b: &str) -> Option<Ordering> {
    match ecosystem {
        Ecosystem::Debian => Some(dpkg(a, b)),
        Ecosystem::Alpine => apk(a, b),
        Ecosystem::PyPI => pep440(a, b),
        Ecosystem::Npm | Ecosystem::Go | Ecosystem::CratesIo => semver(a, b),
        Ecosystem::Maven => Some(maven(a, b)),
        Ecosystem::Rpm => Some(rpm_evr(a, b)),
    }
}

// ---------------------------------------------------------------------------------------------
// rpm

/// rpm's order of `[epoch:]version[-release]`: epochs numerically (none is 0), then version
/// and release each with [`rpmvercmp`].
pub fn rpm_evr(a: &str, b: &str) -> Ordering {
    let split = |v: &str| -> (u64, String, String) {
        let v = v.trim();
        let (epoch, rest) = match v.split_once(':') {
            Some((e, rest)) if !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit()) => {
                (e.parse().unwrap_or(u64::MAX), rest)
            }
            _ => (0, v),
        };
        match rest.rsplit_once('-') {
            Some((version, release)) => (epoch, version.to_owned(), release.to_owned()),
            None => (epoch, rest.to_owned(), String::new()),
        }
    };
    let (ea, va, ra) = split(a);
    let (eb, vb, rb) = split(b);
    ea.cmp(&eb)
        .then_with(|| rpmvercmp(&va, &vb))
        // A missing release is older than any (as rpm's own `rpm.vercmp` orders them).
        .then_with(|| rpmvercmp(&ra, &rb))
}

/// rpm's `rpmvercmp`: runs of digits (numerically, longer wins after leading zeros) and of
/// letters (byte order) compared in turn, other characters separating them; `~` sorts before
/// anything, even the end (pre-releases), `^` after the end but before anything else
/// (snapshots); a numeric run beats a letter run; otherwise the one with more left wins.
pub fn rpmvercmp(a: &str, b: &str) -> Ordering {
    if a == b {
        return Ordering::Equal;
    }
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    let separator = |c: u8| !c.is_ascii_alphanumeric() && c != b'~' && c != b'^';
    while i < a.len() || j < b.len() {
        while i < a.len() && separator(a[i]) {
            i += 1;
        }
        while j < b.len() && separator(b[j]) {
            j += 1;
        }
        let (x, y) = (a.get(i).copied(), b.get(j).copied());
        if x == Some(b'~') || y == Some(b'~') {
            if x != Some(b'~') {
                return Ordering::Greater;
            }
            if y != Some(b'~') {
                return Ordering::Less;
            }
            i += 1;
            j += 1;
            continue;
        }
        if x == Some(b'^') || y == Some(b'^') {
            if x.is_none() {
                return Ordering::Less;
            }
            if y.is_none() {
                return Ordering::Greater;
            }
            if x != Some(b'^') {
                return Ordering::Greater;
            }
            if y != Some(b'^') {
                return Ordering::Less;
            }
            i += 1;
            j += 1;
            continue;
        }
        let (Some(x), Some(_)) = (x, y) else {
            break;
        };
        let numeric = x.is_ascii_digit();
        let run = |s: &[u8], start: usize| -> usize {
            let mut end = start;
            while end < s.len()
                && (if numeric {
                    s[end].is_ascii_digit()
                } else {
                    s[end].is_ascii_alphabetic()
                })
            {
                end += 1;
            }
            end
        };
        let (ei, ej) = (run(a, i), run(b, j));
        if ej == j {
            // One numeric, the other alphabetic: numeric is newer.
            return if numeric {
                Ordering::Greater
            } else {
                Ordering::Less
            };
        }
        let (mut sa, mut sb) = (&a[i..ei], &b[j..ej]);
        if numeric {
            while sa.first() == Some(&b'0') {
                sa = &sa[1..];
            }
            while sb.first() == Some(&b'0') {
                sb = &sb[1..];
            }
            match sa.len().cmp(&sb.len()) {
                Ordering::Equal => {}
                other => return other,
            }
        }
        match sa.cmp(sb) {
            Ordering::Equal => {}
            other => return other,
        }
        i = ei;
        j = ej;
    }
    match (i >= a.len(), j >= b.len()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        _ => Ordering::Greater,
    }
}

// ---------------------------------------------------------------------------------------------
// dpkg

/// dpkg's order: `[epoch:]upstream[-revision]`, epochs numerically, then upstream and
/// revision each by alternating non-digit runs (letters before other characters, `~` before
/// everything, even the end) and digit runs (numerically).
pub fn dpkg(a: &str, b: &str) -> Ordering {
    let (ea, ua, ra) = dpkg_split(a);
    let (eb, ub, rb) = dpkg_split(b);
    digits_cmp(ea, eb)
        .then_with(|| verrevcmp(ua, ub))
        .then_with(|| verrevcmp(ra, rb))
}

fn dpkg_split(version: &str) -> (&str, &str, &str) {
    let version = version.trim();
    let (epoch, rest) = match version.split_once(':') {
        Some((epoch, rest)) if epoch.bytes().all(|b| b.is_ascii_digit()) => (epoch, rest),
        _ => ("0", version),
    };
    match rest.rsplit_once('-') {
        Some((upstream, revision)) => (epoch, upstream, revision),
        None => (epoch, rest, ""),
    }
}

fn dpkg_order(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(b'~') => -1,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(c) => i32::from(c) + 256,
    }
}

fn verrevcmp(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        while (i < a.len() && !a[i].is_ascii_digit()) || (j < b.len() && !b[j].is_ascii_digit()) {
            let ac = dpkg_order(a.get(i).copied().filter(|c| !c.is_ascii_digit()));
            let bc = dpkg_order(b.get(j).copied().filter(|c| !c.is_ascii_digit()));
            if ac != bc {
                return ac.cmp(&bc);
            }
            if i < a.len() && !a[i].is_ascii_digit() {
                i += 1;
            }
            if j < b.len() && !b[j].is_ascii_digit() {
                j += 1;
            }
        }
        let start_a = i;
        while i < a.len() && a[i].is_ascii_digit() {
            i += 1;
        }
        let start_b = j;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        let order = digits_cmp(
            std::str::from_utf8(&a[start_a..i]).unwrap_or("0"),
            std::str::from_utf8(&b[start_b..j]).unwrap_or("0"),
        );
        if order != Ordering::Equal {
            return order;
        }
    }
    Ordering::Equal
}

/// Two runs of ASCII digits compared as numbers of any length (empty is 0).
fn digits_cmp(a: &str, b: &str) -> Ordering {
    let a = a.trim_start_matches('0');
    let b = b.trim_start_matches('0');
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

// ---------------------------------------------------------------------------------------------
// apk

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum ApkKind {
    Digit = 1,
    Letter = 2,
    Suffix = 3,
    SuffixNo = 4,
    Revision = 5,
    End = 6,
}

/// apk-tools' tokens: numbers (after a dot, leading zeros count as a fraction: `1.01 < 1.1`),
/// one letter, `_suffix` (alpha < beta < pre < rc < none < cvs < svn < git < hg < p) with its
/// number, `-rN`.
fn apk_tokens(version: &str) -> Option<Vec<(ApkKind, i128)>> {
    const PRE: &[&str] = &["alpha", "beta", "pre", "rc"];
    const POST: &[&str] = &["cvs", "svn", "git", "hg", "p"];
    let s = version.trim().as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let mut after_dot = false;
    let number = |i: &mut usize| -> Option<i128> {
        let start = *i;
        while *i < s.len() && s[*i].is_ascii_digit() {
            *i += 1;
        }
        if *i == start || *i - start > 30 {
            return None;
        }
        std::str::from_utf8(&s[start..*i]).ok()?.parse().ok()
    };
    while i < s.len() {
        let c = s[i];
        if c.is_ascii_digit() {
            if after_dot && c == b'0' {
                let start = i;
                while i < s.len() && s[i] == b'0' {
                    i += 1;
                }
                out.push((ApkKind::Digit, -((i - start) as i128)));
                if i < s.len() && s[i].is_ascii_digit() {
                    out.push((ApkKind::Digit, number(&mut i)?));
                }
            } else {
                out.push((ApkKind::Digit, number(&mut i)?));
            }
            after_dot = false;
        } else if c == b'.' {
            i += 1;
            after_dot = true;
        } else if c.is_ascii_lowercase() {
            out.push((ApkKind::Letter, i128::from(c)));
            i += 1;
        } else if c == b'_' {
            i += 1;
            let start = i;
            while i < s.len() && s[i].is_ascii_lowercase() {
                i += 1;
            }
            let word = std::str::from_utf8(&s[start..i]).ok()?;
            let value = if let Some(p) = PRE.iter().position(|w| *w == word) {
                p as i128 - PRE.len() as i128
            } else {
                POST.iter().position(|w| *w == word)? as i128 + 1
            };
            out.push((ApkKind::Suffix, value));
            if i < s.len() && s[i].is_ascii_digit() {
                out.push((ApkKind::SuffixNo, number(&mut i)?));
            }
        } else if c == b'-' && s.get(i + 1) == Some(&b'r') {
            i += 2;
            out.push((ApkKind::Revision, number(&mut i)?));
            if i != s.len() {
                return None;
            }
        } else {
            return None;
        }
    }
    Some(out)
}

/// apk's order, or `None` when either version is not valid for apk.
pub fn apk(a: &str, b: &str) -> Option<Ordering> {
    let (ta, tb) = (apk_tokens(a)?, apk_tokens(b)?);
    let mut i = 0;
    loop {
        let (ka, va) = ta.get(i).copied().unwrap_or((ApkKind::End, 0));
        let (kb, vb) = tb.get(i).copied().unwrap_or((ApkKind::End, 0));
        if ka == ApkKind::End && kb == ApkKind::End {
            return Some(Ordering::Equal);
        }
        if ka != kb {
            // The longer version is greater unless it goes on with a pre-release suffix;
            // otherwise the kind that sorts later in apk's token order is the smaller version.
            if ka == ApkKind::Suffix && va < 0 {
                return Some(Ordering::Less);
            }
            if kb == ApkKind::Suffix && vb < 0 {
                return Some(Ordering::Greater);
            }
            return Some(kb.cmp(&ka));
        }
        if va != vb {
            return Some(va.cmp(&vb));
        }
        i += 1;
    }
}

// ---------------------------------------------------------------------------------------------
// PEP 440

/// PEP 440's order (epochs, pre-, post- and dev-releases, local versions).
pub fn pep440(a: &str, b: &str) -> Option<Ordering> {
    let a = pep440_rs::Version::from_str(a.trim()).ok()?;
    let b = pep440_rs::Version::from_str(b.trim()).ok()?;
    Some(a.cmp(&b))
}

// ---------------------------------------------------------------------------------------------
// semver

/// Semantic Versioning 2.0's precedence, with a leading `v` (Go), missing minor or patch
/// (`1.2` is `1.2.0`) and build metadata ignored (Go's `+incompatible` too).
pub fn semver(a: &str, b: &str) -> Option<Ordering> {
    let (ra, pa) = semver_parse(a)?;
    let (rb, pb) = semver_parse(b)?;
    Some(
        ra.cmp(&rb)
            .then_with(|| match (pa.is_empty(), pb.is_empty()) {
                (true, true) => Ordering::Equal,
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                (false, false) => {
                    for (x, y) in pa.iter().zip(&pb) {
                        let order = match (x.parse::<u64>(), y.parse::<u64>()) {
                            (Ok(x), Ok(y)) => x.cmp(&y),
                            (Ok(_), Err(_)) => Ordering::Less,
                            (Err(_), Ok(_)) => Ordering::Greater,
                            (Err(_), Err(_)) => x.cmp(y),
                        };
                        if order != Ordering::Equal {
                            return order;
                        }
                    }
                    pa.len().cmp(&pb.len())
                }
            }),
    )
}

fn semver_parse(version: &str) -> Option<([u64; 3], Vec<&str>)> {
    let version = version.trim();
    let version = version.strip_prefix('v').unwrap_or(version);
    let version = version.split_once('+').map_or(version, |(v, _)| v);
    let (release, pre) = match version.split_once('-') {
        Some((release, pre)) => (release, pre.split('.').collect()),
        None => (version, Vec::new()),
    };
    let mut parts = [0u64; 3];
    for (count, part) in release.split('.').enumerate() {
        if count == 3 || part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        parts[count] = part.parse().ok()?;
    }
    Some((parts, pre))
}

// ---------------------------------------------------------------------------------------------
// Maven

#[derive(Debug, Clone)]
enum MavenItem {
    Int(String),
    Str(String),
    List(Vec<MavenItem>),
}

const MAVEN_QUALIFIERS: &[&str] = &["alpha", "beta", "milestone", "rc", "snapshot", "", "sp"];
const MAVEN_RELEASE: &str = "5";

fn maven_qualifier(value: &str) -> String {
    match MAVEN_QUALIFIERS.iter().position(|q| *q == value) {
        Some(index) => index.to_string(),
        None => format!("{}-{value}", MAVEN_QUALIFIERS.len()),
    }
}

fn maven_string(value: &str, followed_by_digit: bool) -> MavenItem {
    let value = match value {
        "a" if followed_by_digit => "alpha",
        "b" if followed_by_digit => "beta",
        "m" if followed_by_digit => "milestone",
        "ga" | "final" | "release" => "",
        "cr" => "rc",
        other => other,
    };
    MavenItem::Str(value.to_owned())
}

fn maven_item(is_digit: bool, text: &str) -> MavenItem {
    if is_digit {
        MavenItem::Int(text.trim_start_matches('0').to_owned())
    } else {
        maven_string(text, false)
    }
}

impl MavenItem {
    fn is_null(&self) -> bool {
        match self {
            MavenItem::Int(v) => v.is_empty(),
            MavenItem::Str(v) => maven_qualifier(v) == MAVEN_RELEASE,
            MavenItem::List(items) => items.is_empty(),
        }
    }

    /// Compared with an absent item (the shorter version's end).
    fn cmp_null(&self) -> Ordering {
        match self {
            MavenItem::Int(v) if v.is_empty() => Ordering::Equal,
            MavenItem::Int(_) => Ordering::Greater,
            MavenItem::Str(v) => maven_qualifier(v).as_str().cmp(MAVEN_RELEASE),
            MavenItem::List(items) => items.first().map_or(Ordering::Equal, MavenItem::cmp_null),
        }
    }

    fn cmp_item(&self, other: &MavenItem) -> Ordering {
        use MavenItem::{Int, List, Str};
        match (self, other) {
            (Int(a), Int(b)) => digits_cmp(a, b),
            (Int(_), _) => Ordering::Greater,
            (Str(_), Int(_)) => Ordering::Less,
            (Str(a), Str(b)) => maven_qualifier(a).cmp(&maven_qualifier(b)),
            (Str(_), List(_)) => Ordering::Less,
            (List(_), Int(_)) => Ordering::Less,
            (List(_), Str(_)) => Ordering::Greater,
            (List(a), List(b)) => {
                for i in 0..a.len().max(b.len()) {
                    let order = match (a.get(i), b.get(i)) {
                        (Some(x), Some(y)) => x.cmp_item(y),
                        (Some(x), None) => x.cmp_null(),
                        (None, Some(y)) => y.cmp_null().reverse(),
                        (None, None) => Ordering::Equal,
                    };
                    if order != Ordering::Equal {
                        return order;
                    }
                }
                Ordering::Equal
            }
        }
    }
}

/// Maven's `ComparableVersion`: items split at `.`, `-` and digit/letter changes, a `-` or a
/// change opening a sub-list; qualifiers alpha < beta < milestone < rc = cr < snapshot < (release
/// = ga = final) < sp < any other (alphabetically); trailing zeros and release qualifiers
/// dropped.
pub fn maven(a: &str, b: &str) -> Ordering {
    maven_parse(a).cmp_item(&maven_parse(b))
}

fn maven_parse(version: &str) -> MavenItem {
    let version = version.trim().to_lowercase();
    // Lists as a stack of (items) with the path from the top; each pushed list is appended to
    // its parent when the stack is unwound.
    let mut stack: Vec<Vec<MavenItem>> = vec![Vec::new()];
    let chars: Vec<char> = version.chars().collect();
    let mut is_digit = false;
    let mut start = 0;
    let sub = |from: usize, to: usize| -> String { chars[from..to].iter().collect() };
    for (i, &c) in chars.iter().enumerate() {
        let top = stack.len() - 1;
        if c == '.' || c == '-' {
            let item = if i == start {
                MavenItem::Int(String::new())
            } else {
                maven_item(is_digit, &sub(start, i))
            };
            stack[top].push(item);
            start = i + 1;
            if c == '-' {
                stack.push(Vec::new());
            }
        } else if c.is_ascii_digit() {
            if !is_digit && i > start {
                stack[top].push(maven_string(&sub(start, i), true));
                start = i;
                stack.push(Vec::new());
            }
            is_digit = true;
        } else {
            if is_digit && i > start {
                stack[top].push(maven_item(true, &sub(start, i)));
                start = i;
                stack.push(Vec::new());
            }
            is_digit = false;
        }
    }
    if chars.len() > start {
        let top = stack.len() - 1;
        stack[top].push(maven_item(is_digit, &sub(start, chars.len())));
    }
    // Unwind: normalise each list and append it to its parent.
    let mut child: Option<Vec<MavenItem>> = None;
    while let Some(mut list) = stack.pop() {
        if let Some(child) = child.take() {
            list.push(MavenItem::List(child));
        }
        normalize(&mut list);
        child = Some(list);
    }
    MavenItem::List(child.unwrap_or_default())
}

/// Drops null items (0, release qualifiers, empty lists) at the end or before a qualifier
/// (Maven 3.9: `2.0.a` is `2.a`).
fn normalize(list: &mut Vec<MavenItem>) {
    let mut i = list.len();
    while i > 0 {
        i -= 1;
        if !list[i].is_null() {
            continue;
        }
        let drop = match list.get(i + 1) {
            None => true,
            Some(MavenItem::Str(_)) => true,
            Some(MavenItem::List(items)) => matches!(items.first(), Some(MavenItem::Str(_))),
            Some(MavenItem::Int(_)) => false,
        };
        if drop {
            list.remove(i);
        }
    }
}

#[cfg(test)]
mod tests;
