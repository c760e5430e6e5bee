//! Table tests: each chain is strictly increasing (taken from each tool's own documentation and
//! test suites: Debian policy and dpkg's t/version tests, apk-tools' test/version.data, PEP
//! 440's examples, semver.org §11, Maven's ComparableVersionTest), so every pair (i < j) of a
//! chain is a case, checked both ways; each equality row is a case too.

use std::cmp::Ordering::{self, Equal, Greater, Less};

use super::*;

fn check_chain(name: &str, chain: &[&str], cmp: impl Fn(&str, &str) -> Option<Ordering>) -> usize {
    let mut cases = 0;
    for (i, a) in chain.iter().enumerate() {
        assert_eq!(cmp(a, a), Some(Equal), "{name}: {a} == {a}");
        for b in &chain[i + 1..] {
            assert_eq!(cmp(a, b), Some(Less), "{name}: {a} < {b}");
            assert_eq!(cmp(b, a), Some(Greater), "{name}: {b} > {a}");
            cases += 1;
        }
    }
    cases
}

fn check_equal(name: &str, pairs: &[(&str, &str)], cmp: impl Fn(&str, &str) -> Option<Ordering>) {
    for (a, b) in pairs {
        assert_eq!(cmp(a, b), Some(Equal), "{name}: {a} == {b}");
        assert_eq!(cmp(b, a), Some(Equal), "{name}: {b} == {a}");
    }
}

#[test]
fn dpkg_orders_as_dpkg() {
    let cmp = |a: &str, b: &str| Some(dpkg(a, b));
    let mut cases = check_chain(
        "dpkg",
        &[
            "0.9",
            "1.0~~",
            "1.0~~a",
            "1.0~",
            "1.0~rc1",
            "1.0~rc2",
            "1.0",
            "1.0-0.1",
            "1.0-1~bpo1",
            "1.0-1",
            "1.0-1+b1",
            "1.0-1.1",
            "1.0-2",
            "1.0-10",
            "1.0a",
            "1.0a-1",
            "1.0+dfsg",
            "1.0.1",
            "1.1",
            "1.10",
            "2.0",
            "1:0.1",
            "1:1.0",
            "2:0.1",
        ],
        cmp,
    );
    // Debian security updates: a backport to stable sorts below the release it came from.
    cases += check_chain(
        "dpkg openssl",
        &[
            "3.0.11-1~deb12u1",
            "3.0.11-1~deb12u2",
            "3.0.11-1",
            "3.0.13-1~deb12u1",
            "3.0.14-1~deb12u2",
            "3.0.15-1~deb12u1",
        ],
        cmp,
    );
    check_equal(
        "dpkg",
        &[
            ("1.0", "1.0-0"),
            ("0:1.0", "1.0"),
            ("1.0-001", "1.0-1"),
            ("01.0", "1.0"),
            ("1.2.13.dfsg-1", "0:1.2.13.dfsg-1"),
        ],
        cmp,
    );
    assert!(cases >= 50, "{cases}");
}

#[test]
fn apk_orders_as_apk_tools() {
    let mut cases = check_chain(
        "apk",
        &[
            "0.1",
            "1.0_alpha",
            "1.0_alpha1",
            "1.0_alpha2",
            "1.0_beta",
            "1.0_beta1",
            "1.0_pre1",
            "1.0_rc1",
            "1.0_rc2",
            "1.0",
            "1.0-r1",
            "1.0-r10",
            "1.0_p1",
            "1.0_p2",
            "1.0a",
            "1.0b",
            "1.0.1",
            "1.01.1",
            "1.1",
            "1.2.3",
            "1.10",
            "2",
        ],
        apk,
    );
    cases += check_chain(
        "apk zlib",
        &[
            "1.2.11-r3",
            "1.2.12-r0",
            "1.2.12-r3",
            "1.2.13-r0",
            "1.3-r0",
            "1.3.1-r0",
        ],
        apk,
    );
    check_equal("apk", &[("1.0-r0", "1.0-r0"), ("1.0_rc1", "1.0_rc1")], apk);
    assert_eq!(apk("1.0-r", "1.0"), None);
    assert_eq!(apk("1.0 junk", "1.0"), None);
    assert!(cases >= 50, "{cases}");
}

#[test]
fn pep440_orders_as_pep_440() {
    let cases = check_chain(
        "pep440",
        &[
            "0.9",
            "1.0.dev456",
            "1.0a1",
            "1.0a2.dev456",
            "1.0a12.dev456",
            "1.0a12",
            "1.0b1.dev456",
            "1.0b2",
            "1.0b2.post345.dev456",
            "1.0b2.post345",
            "1.0rc1.dev456",
            "1.0rc1",
            "1.0",
            "1.0+abc.5",
            "1.0+abc.7",
            "1.0+5",
            "1.0.post456.dev34",
            "1.0.post456",
            "1.0.15",
            "1.1.dev1",
            "1.1",
            "2.31.0",
            "1!0.1",
        ],
        pep440,
    );
    check_equal(
        "pep440",
        &[
            ("1.0", "1.0.0"),
            ("1.0RC1", "1.0rc1"),
            ("1.0alpha1", "1.0a1"),
            ("1.0-post1", "1.0.post1"),
            ("v1.0", "1.0"),
            ("1.0c1", "1.0rc1"),
        ],
        pep440,
    );
    assert_eq!(pep440("not a version", "1.0"), None);
    assert!(cases >= 50, "{cases}");
}

#[test]
fn semver_orders_as_semver_org() {
    let cases = check_chain(
        "semver",
        &[
            "0.0.1",
            "0.1.0",
            "0.17.0",
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-alpha.beta",
            "1.0.0-beta",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0",
            "1.0.1",
            "1.2.0",
            "1.10.0",
            "2.0.0-0",
            "2.0.0",
            "4.17.21",
            "10.0.0",
        ],
        semver,
    );
    check_equal(
        "semver",
        &[
            ("1.0.0+build.5", "1.0.0"),
            ("v1.6.0", "1.6.0"),
            ("v2.0.0+incompatible", "2.0.0"),
            ("1.2", "1.2.0"),
        ],
        semver,
    );
    assert_eq!(semver("1.2.x", "1.2.0"), None);
    assert_eq!(semver("1.2.3.4", "1.2.0"), None);
    assert!(cases >= 50, "{cases}");
}

#[test]
fn maven_orders_as_comparable_version() {
    let cmp = |a: &str, b: &str| Some(maven(a, b));
    // ComparableVersionTest's VERSIONS_QUALIFIER and VERSIONS_NUMBER.
    let mut cases = check_chain(
        "maven qualifiers",
        &[
            "1-alpha2snapshot",
            "1-alpha2",
            "1-alpha-123",
            "1-beta-2",
            "1-beta123",
            "1-m2",
            "1-m11",
            "1-rc",
            "1-cr2",
            "1-rc123",
            "1-SNAPSHOT",
            "1",
            "1-sp",
            "1-sp2",
            "1-sp123",
            "1-abc",
            "1-def",
            "1-pom-1",
            "1-1-snapshot",
            "1-1",
            "1-2",
            "1-123",
        ],
        cmp,
    );
    cases += check_chain(
        "maven numbers",
        &[
            "2.0", "2.0.a", "2-1", "2.0.2", "2.0.123", "2.1.0", "2.1-a", "2.1b", "2.1-c", "2.1-1",
            "2.1.0.1", "2.2", "2.123", "11.a2", "11.a11", "11.b2", "11.b11", "11.m2", "11.m11",
            "11", "11.a", "11b", "11c", "11m",
        ],
        cmp,
    );
    check_equal(
        "maven",
        &[
            ("1", "1.0"),
            ("1", "1.0.0"),
            ("1-ga", "1"),
            ("1-final", "1"),
            ("1-release", "1"),
            ("1cr1", "1rc1"),
            ("1a1", "1-alpha-1"),
            ("1.0-SNAPSHOT", "1-snapshot"),
            ("2.15.2", "2.15.2.0"),
        ],
        cmp,
    );
    assert!(cases >= 50, "{cases}");
}

#[test]
fn no_input_panics() {
    for a in [
        "",
        "-",
        ":",
        "~",
        "..",
        "_",
        "-r",
        "1:",
        ":1",
        "1.-",
        "\u{fffd}",
        "9999999999999999999999999999999999999",
    ] {
        for b in ["1.0", ""] {
            for ecosystem in [
                Ecosystem::Debian,
                Ecosystem::Alpine,
                Ecosystem::PyPI,
                Ecosystem::Npm,
                Ecosystem::Maven,
                Ecosystem::Go,
                Ecosystem::CratesIo,
                Ecosystem::Rpm,
            ] {
                let _ = compare(ecosystem, a, b);
            }
        }
    }
}

/// rpm: a chain from rpm's own test suite and Fedora's packaging guidelines (tilde
/// pre-releases, caret snapshots, epochs, leading zeros, letters against digits), each case
/// also checked against rpm itself (`rpm.vercmp` of rpm's Lua interpreter) when this machine
/// has rpm (scripts/test installs it).
const RPM_CHAIN: &[&str] = &[
    "1.0~rc1-1",
    "1.0~rc1-2",
    "1.0~rc2-1",
    "1.0-1",
    "1.0-1.el9",
    "1.0-1.el9_1",
    "1.0-2",
    "1.0^20240101git1-1",
    "1.0^20240102git1-1",
    "1.0a-1",
    "1.0.1-1",
    "1.01.2-1",
    "1.2-1",
    "1.10-1",
    "1.010.1-1",
    "2.0-0.1.beta",
    "2.0-1",
    "2.0.0-1",
    "10-1",
    "1:0.1-1",
    "1:1.0-1",
    "2:0.0.1-1",
];

const RPM_EQUAL: &[(&str, &str)] = &[
    ("1.0-1", "0:1.0-1"),
    ("1.01-1", "1.1-1"),
    ("1.0-1", "1_0-1"),
    ("1..0-1", "1.0-1"),
    ("2.0.1a-1", "2.0.1a-1"),
];

#[test]
fn rpm_versions_order_as_rpm_orders_them() {
    let cases = check_chain("rpm", RPM_CHAIN, |a, b| Some(rpm_evr(a, b)));
    check_equal("rpm", RPM_EQUAL, |a, b| Some(rpm_evr(a, b)));
    assert!(cases + RPM_EQUAL.len() >= 50, "{cases}");
    // rpmvercmp itself, on rpm's test-suite pairs.
    for (a, b, want) in [
        ("1.0", "1.0", Equal),
        ("1.0", "2.0", Less),
        ("2.0.1", "2.0.1a", Less),
        ("5.5p1", "5.5p2", Less),
        ("5.5p10", "5.5p1", Greater),
        ("10xyz", "10.1xyz", Less),
        ("xyz10", "xyz10.1", Less),
        ("a", "b", Less),
        ("1.0a", "1.0", Greater),
        ("6.0.rc1", "6.0", Greater),
        ("10b2", "10a1", Greater),
        ("1b.fc17", "1.fc17", Less),
        ("1.0~rc1", "1.0~rc1~git123", Greater),
        ("1.0^", "1.0", Greater),
        ("1.0^git1", "1.0~git1", Greater),
        ("1.0^git1~pre", "1.0^git1", Less),
    ] {
        assert_eq!(rpmvercmp(a, b), want, "rpmvercmp({a}, {b})");
    }
    // The second implementation: rpm's own comparison, every pair of the chain and the
    // equality rows, in one `rpm --eval`.
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    for (i, a) in RPM_CHAIN.iter().enumerate() {
        for b in &RPM_CHAIN[i..] {
            pairs.push((a, b));
            pairs.push((b, a));
        }
    }
    pairs.extend(RPM_EQUAL.iter().copied());
    let lua: String = pairs
        .iter()
        .map(|(a, b)| format!("print(rpm.vercmp('{a}', '{b}') .. ',')\n"))
        .collect();
    let output = match std::process::Command::new("rpm")
        .arg("--eval")
        .arg(format!("%{{lua:\n{lua}}}"))
        .output()
    {
        Ok(output) => output,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            panic!(
                "rpm is not installed: it is the second implementation here (scripts/test installs it)"
            )
        }
        Err(error) => panic!("rpm: {error}"),
    };
    let text = String::from_utf8_lossy(&output.stdout);
    let theirs: Vec<&str> = text
        .split(',')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(theirs.len(), pairs.len(), "{text}");
    for ((a, b), theirs) in pairs.iter().zip(theirs) {
        let ours = match rpm_evr(a, b) {
            Less => "-1",
            Equal => "0",
            Greater => "1",
        };
        assert_eq!(ours, theirs, "rpm.vercmp({a}, {b})");
    }
}
