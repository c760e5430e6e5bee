//! What a container image holds: an inventory of its packages read from a container root
//! (`docs/images.md`). Pure and synchronous (no tokio): every file is read through [`Root`],
//! which keeps paths inside the root and counts a budget of files and bytes, so tests run it on
//! fixture directories and the sidecar on `/proc/<pid>/root`. Hostile content never panics:
//! parsers skip what they cannot read.
//!
//! - OS packages: [`os`] (dpkg `status` and distroless `status.d/`, apk `installed`), [`rpm`]
//!   (rpm's sqlite database, read with the file-format reader of [`sqlite`]);
//! - language packages found by one walk of the tree: [`python`] (`*.dist-info`, `*.egg-info`
//!   under `site-packages`/`dist-packages`), [`node`] (`node_modules/**/package.json`),
//!   [`java`] (`pom.properties` in jars, nested jars too), [`golang`] (Go build info in ELF
//!   executables), [`rust`] (`cargo auditable` dependency lists in ELF executables);
//! - [`cyclonedx`] renders an inventory as a CycloneDX 1.5 JSON SBOM.

pub mod cyclonedx;
pub mod golang;
pub mod inuse;
pub mod java;
pub mod node;
pub mod os;
pub mod osv;
pub mod python;
pub mod report;
pub mod root;
pub mod rpm;
pub mod rust;
pub mod secrets;
pub mod sqlite;
pub mod version;

pub use root::{Limits, ReadError, Root};

/// The package ecosystems an inventory knows, named as OSV names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Ecosystem {
    /// dpkg packages (Debian, Ubuntu).
    Debian,
    /// apk packages (Alpine, Wolfi).
    Alpine,
    /// Python distributions.
    PyPI,
    /// npm packages.
    Npm,
    /// Maven artefacts.
    Maven,
    /// Go modules (and the Go standard library, as `stdlib`).
    Go,
    /// Rust crates (from binaries built with `cargo auditable`).
    CratesIo,
    /// rpm packages (Red Hat and its rebuilds, Fedora, Amazon Linux).
    Rpm,
}

impl Ecosystem {
    /// The OSV ecosystem name (without a release suffix such as `Debian:12`).
    pub fn osv_name(self) -> &'static str {
        match self {
            Ecosystem::Debian => "Debian",
            Ecosystem::Alpine => "Alpine",
            Ecosystem::PyPI => "PyPI",
            Ecosystem::Npm => "npm",
            Ecosystem::Maven => "Maven",
            Ecosystem::Go => "Go",
            Ecosystem::CratesIo => "crates.io",
            // OSV has one ecosystem per rpm distribution (`Red Hat`, `AlmaLinux`, `Rocky
            // Linux`); the package manager names the inventory's.
            Ecosystem::Rpm => "rpm",
        }
    }

    /// The package-URL type.
    pub fn purl_type(self) -> &'static str {
        match self {
            Ecosystem::Debian => "deb",
            Ecosystem::Alpine => "apk",
            Ecosystem::PyPI => "pypi",
            Ecosystem::Npm => "npm",
            Ecosystem::Maven => "maven",
            Ecosystem::Go => "golang",
            Ecosystem::CratesIo => "cargo",
            Ecosystem::Rpm => "rpm",
        }
    }
}

/// One installed package.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Component {
    /// Its ecosystem.
    pub ecosystem: Ecosystem,
    /// Maven group id, npm scope (with its `@`); `None` elsewhere.
    pub group: Option<String>,
    /// The name as the package database spells it (a Go module path, an npm name without
    /// its scope, a Python distribution name as its METADATA says it).
    pub name: String,
    /// The version as installed.
    pub version: String,
    /// The package URL.
    pub purl: String,
    /// Where it was found, as a path inside the container (`!/` separates a path inside an
    /// archive): the package database, the metadata directory or the binary.
    pub location: String,
    /// The source package and its version, for dpkg (`Source:`), apk (`o:`) and rpm
    /// (`SOURCERPM`) packages: Debian's and Alpine's advisories name source packages (rpm
    /// distributions' name binary ones).
    pub source: Option<(String, String)>,
    /// Architecture, for OS packages.
    pub arch: Option<String>,
    /// The files the package owns, as paths inside the container, where its database says
    /// (dpkg `info/*.list`, apk `R:` lines, Python `RECORD`); empty when unknown.
    pub files: Vec<String>,
}

/// The distribution an OS package database belongs to, from `etc/os-release`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Distro {
    /// `ID` (`debian`, `ubuntu`, `alpine`, ...).
    pub id: Option<String>,
    /// `VERSION_ID` (`12`, `3.19.1`).
    pub version_id: Option<String>,
}

/// Everything one pass found.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    /// The distribution, when `etc/os-release` names one.
    pub distro: Distro,
    /// The components, sorted (ecosystem, group, name, version, location).
    pub components: Vec<Component>,
    /// What could not be read and why (files above their caps, corrupt archives, the budget
    /// running out), in the order met; capped at [`MAX_NOTES`].
    pub notes: Vec<String>,
    /// The budget that ran out, if one did: the inventory is then incomplete.
    pub truncated: Option<&'static str>,
    /// Directory entries looked at and bytes read.
    pub used: (u64, u64),
}

/// Notes kept per pass; further ones are counted in the last.
pub const MAX_NOTES: usize = 100;

impl Inventory {
    pub(crate) fn note(&mut self, note: impl Into<String>) {
        if self.notes.len() < MAX_NOTES {
            self.notes.push(note.into());
        }
    }
}

/// Reads the inventory of the container root `root`: OS package databases first (at fixed
/// paths), then one walk of the tree for language packages, within the root's budget.
pub fn inventory(root: &Root) -> Inventory {
    let mut inv = Inventory {
        distro: os::distro(root),
        ..Inventory::default()
    };
    os::dpkg(root, &mut inv);
    os::apk(root, &mut inv);
    rpm::rpm(root, &mut inv);
    walk(root, &mut inv);
    inv.components.sort();
    inv.components.dedup();
    inv.truncated = root.exhausted();
    inv.used = root.used();
    inv
}

/// Top-level directories never walked: kernel views and device nodes, not image content.
const SKIP_TOP: &[&str] = &["proc", "sys", "dev"];

/// One depth-first walk of the root, in name order, never following links; each entry is
/// handed to the ecosystem that recognises it.
fn walk(root: &Root, inv: &mut Inventory) {
    walk_tree(root, |dir, name, path, is_dir| {
        if is_dir {
            if python::is_metadata_dir(dir, name) {
                python::read_dir(root, path, inv);
                return false;
            }
            return true;
        }
        if node::is_manifest(dir, name) {
            node::read(root, path, inv);
        } else if python::is_metadata_file(dir, name) {
            python::read_file(root, path, inv);
        } else if java::is_archive(name) {
            java::read(root, path, inv);
        } else {
            golang::maybe_read(root, path, inv);
        }
        false
    });
}

/// Calls `visit` with the path (inside the root) of every regular file, walking as
/// [`inventory`] does.
pub(crate) fn walk_files(root: &Root, mut visit: impl FnMut(&str)) {
    walk_tree(root, |_, _, path, is_dir| {
        if !is_dir {
            visit(path);
        }
        is_dir
    });
}

/// The walk: depth first, entries in name order, directories and regular files only (links,
/// devices, FIFOs and sockets are never followed or opened), `/proc`, `/sys` and `/dev` skipped,
/// down to the root's depth limit, until a budget runs out. `visit(dir, name, path, is_dir)`
/// returns whether to descend into a directory.
fn walk_tree(root: &Root, mut visit: impl FnMut(&str, &str, &str, bool) -> bool) {
    // (inner path, depth)
    let mut stack: Vec<(String, usize)> = vec![(String::new(), 0)];
    while let Some((dir, depth)) = stack.pop() {
        let entries = root.list_host(&root.host(&dir));
        let mut subdirs = Vec::new();
        for (name, kind) in entries {
            if depth == 0 && SKIP_TOP.contains(&name.as_str()) {
                continue;
            }
            let path = format!("{dir}/{name}");
            if kind.is_dir() {
                if visit(&dir, &name, &path, true) && depth + 1 < root.limits().max_depth {
                    subdirs.push((path, depth + 1));
                }
            } else if kind.is_file() {
                visit(&dir, &name, &path, false);
            }
        }
        if root.exhausted().is_some() {
            break;
        }
        subdirs.reverse();
        stack.extend(subdirs);
    }
}

/// Runs every parser of this module that reads image content on `data` (as a Go build info
/// section, a dpkg control file, core metadata, a RECORD, a pom.properties, a zip archive,
/// `/proc/PID/maps`, an OSV record, a CVSS vector, versions, text scanned for secrets), for the
/// fuzz target `image_parsers` and the no-panic tests; returns how many items they found.
#[doc(hidden)]
pub fn parse_everything(data: &[u8]) -> usize {
    let text = String::from_utf8_lossy(data);
    let mut found = 0;
    found += golang::parse_buildinfo(data).map_or(0, |info| info.components("/fuzz").len());
    found += os::control_paragraphs(&text).len();
    found += python::parse_metadata(&text).map_or(0, |_| 1);
    found += python::parse_record(&text).len();
    found += java::parse_pom_properties(&text).map_or(0, |_| 1);
    let root = Root::new(
        "/nonexistent",
        Limits {
            max_bytes: 64 << 20,
            max_archive_bytes: 16 << 20,
            ..Limits::default()
        },
    );
    let mut inv = Inventory::default();
    java::read_bytes(&root, data.to_vec(), "/fuzz.jar", &mut inv);
    found += inv.components.len();
    found += inuse::maps_paths(&text).len();
    found += secrets::scan_text("/app/.env", &text).len();
    found += secrets::scan_text("/root/.docker/config.json", &text).len();
    found += osv::cvss3_base_score(&text).map_or(0, |_| 1);
    let mut lines = text.lines();
    let (a, b) = (lines.next().unwrap_or(""), lines.next().unwrap_or(""));
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
        found += usize::from(version::compare(ecosystem, a, b).is_some());
    }
    found += rpm::parse_header(data).map_or(0, |p| p.files.len());
    found += rpm::read_sqlite(data.to_vec().into_boxed_slice()).map_or(0, |p| p.len());
    if let Ok(record) = serde_json::from_slice::<serde_json::Value>(data) {
        let mut db = osv::VulnDb::default();
        db.add(&record);
        let component = Component {
            ecosystem: Ecosystem::Npm,
            group: None,
            name: a.to_owned(),
            version: b.to_owned(),
            purl: String::new(),
            location: String::new(),
            source: None,
            arch: None,
            files: Vec::new(),
        };
        found += db.matches(&[component], &Distro::default()).len();
    }
    found
}

/// Percent-encodes a package-URL segment: everything but ASCII letters, digits and `.-_~`.
pub(crate) fn purl_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b".-_~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// `pkg:TYPE/NAMESPACE/NAME@VERSION?QUALIFIERS`, each part encoded, namespace segments
/// separately, qualifiers sorted by key and empty ones left out (the purl spec's canonical form).
pub(crate) fn purl(
    ecosystem: Ecosystem,
    namespace: Option<&str>,
    name: &str,
    version: &str,
    qualifiers: &[(&str, Option<&str>)],
) -> String {
    let mut out = format!("pkg:{}/", ecosystem.purl_type());
    if let Some(namespace) = namespace.filter(|n| !n.is_empty()) {
        for segment in namespace.split('/').filter(|s| !s.is_empty()) {
            out.push_str(&purl_encode(segment));
            out.push('/');
        }
    }
    out.push_str(&purl_encode(name));
    if !version.is_empty() {
        out.push('@');
        out.push_str(&purl_encode(version));
    }
    let mut qualifiers: Vec<_> = qualifiers
        .iter()
        .filter_map(|(k, v)| v.filter(|v| !v.is_empty()).map(|v| (*k, v)))
        .collect();
    qualifiers.sort();
    for (i, (key, value)) in qualifiers.iter().enumerate() {
        out.push(if i == 0 { '?' } else { '&' });
        out.push_str(key);
        out.push('=');
        out.push_str(&purl_encode(value));
    }
    out
}

/// Lossy UTF-8 of a file's bytes.
pub(crate) fn text(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Valid inputs to mutate: a Go build info section, a jar, an OSV record, a dpkg status.
    fn seeds() -> Vec<Vec<u8>> {
        let mut buildinfo = b"\xff Go buildinf:\x08\x02".to_vec();
        buildinfo.resize(32, 0);
        let modinfo = "0123456789abcdefpath\tx\nmod\tx\t(devel)\t\ndep\ty/z\tv1.0.0\th1:x\n=>\ty/w\tv1.1.0\t\n0123456789abcdef";
        buildinfo.extend([8]);
        buildinfo.extend(b"go1.22.1");
        buildinfo.push(modinfo.len() as u8);
        buildinfo.extend(modinfo.as_bytes());
        let mut jar = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let deflated = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        jar.start_file("META-INF/maven/g/a/pom.properties", deflated)
            .expect("entry");
        std::io::Write::write_all(&mut jar, b"groupId=g\nartifactId=a\nversion=1.0\n")
            .expect("write");
        let jar = jar.finish().expect("finish").into_inner();
        let osv = br#"{"id":"X-1","aliases":["CVE-1"],"affected":[{"package":{"ecosystem":"npm","name":"a"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"1.0.0"},{"last_affected":"2.0.0"},{"limit":"3.0.0"}]}],"versions":["0.5.0"]}],"severity":[{"type":"CVSS_V3","score":"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}]}"#.to_vec();
        let status =
            b"Package: a\nStatus: install ok installed\nVersion: 1:1.0~rc1-1\nSource: b (2.0)\n\n"
                .to_vec();
        vec![buildinfo, jar, osv, status]
    }

    #[test]
    fn the_seeds_parse() {
        for seed in seeds() {
            assert!(parse_everything(&seed) > 0);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// No parser of image content panics on bytes derived from valid inputs (flipped,
        /// truncated) or on arbitrary bytes.
        #[test]
        fn no_parser_panics(
            seed in 0usize..4,
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..8),
            cut in any::<usize>(),
            noise in proptest::collection::vec(any::<u8>(), 0..512),
        ) {
            let mut data = seeds()[seed].clone();
            for (at, byte) in flips {
                let len = data.len();
                data[at % len] = byte;
            }
            data.truncate(cut % (data.len() + 1));
            parse_everything(&data);
            parse_everything(&noise);
        }
    }

    #[test]
    fn purls_are_canonical() {
        assert_eq!(
            purl(
                Ecosystem::Debian,
                Some("debian"),
                "libssl3",
                "1:3.0.11-1~deb12u2",
                &[("distro", Some("debian-12")), ("arch", Some("amd64"))]
            ),
            "pkg:deb/debian/libssl3@1%3A3.0.11-1~deb12u2?arch=amd64&distro=debian-12"
        );
        assert_eq!(
            purl(Ecosystem::Npm, Some("@babel"), "core", "7.0.0", &[]),
            "pkg:npm/%40babel/core@7.0.0"
        );
        assert_eq!(
            purl(
                Ecosystem::Go,
                Some("github.com/google"),
                "uuid",
                "v1.6.0",
                &[]
            ),
            "pkg:golang/github.com/google/uuid@v1.6.0"
        );
    }
}
