//! `tasksentry sbom --root DIR` on a container root built here: a Debian package database (and
//! distroless `status.d/`), an apk database, Python site-packages, a node_modules tree, a jar
//! with a nested jar, and a Go binary. The components must be exactly the table written by hand
//! from these fixtures (neither Syft nor Trivy installs from the registries here). rpm
//! databases are built by rpm itself, which is then the second implementation.

use std::collections::BTreeSet;
use std::fs;
use std::io::{Cursor, Write};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use std::process::Command;

fn write(root: &Path, path: &str, content: impl AsRef<[u8]>) {
    let path = root.join(path.trim_start_matches('/'));
    fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    fs::write(path, content).expect("write");
}

/// A zip archive of `(name, bytes, deflated)` entries, as `jar` writes them.
fn jar(entries: &[(&str, &[u8], bool)]) -> Vec<u8> {
    use zip::write::SimpleFileOptions;
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, bytes, deflated) in entries {
        let method = if *deflated {
            zip::CompressionMethod::Deflated
        } else {
            zip::CompressionMethod::Stored
        };
        writer
            .start_file(
                *name,
                SimpleFileOptions::default().compression_method(method),
            )
            .expect("entry");
        writer.write_all(bytes).expect("write entry");
    }
    writer.finish().expect("finish").into_inner()
}

/// The `.go.buildinfo` section as the Go 1.18+ linker writes it (Go's `debug/buildinfo`):
/// the 14-byte magic, pointer size, flags (2: strings inline), padding to 32 bytes, then the
/// Go version and the module information as length-prefixed (uvarint) strings, the module
/// information between its two 16-byte sentinels.
fn go_buildinfo(go_version: &str, modinfo: &str) -> Vec<u8> {
    const START: [u8; 16] = [
        0x30, 0x77, 0xaf, 0x0c, 0x92, 0x74, 0x08, 0x02, 0x41, 0xe1, 0xc1, 0x07, 0xe6, 0xd6, 0x18,
        0xe6,
    ];
    const END: [u8; 16] = [
        0xf9, 0x32, 0x43, 0x31, 0x86, 0x18, 0x20, 0x72, 0x00, 0x82, 0x42, 0x10, 0x41, 0x16, 0xd8,
        0xf2,
    ];
    let mut out = b"\xff Go buildinf:".to_vec();
    out.extend([8, 2]);
    out.resize(32, 0);
    let mut string = |bytes: &[u8]| {
        let mut len = bytes.len();
        while len >= 0x80 {
            out.push((len as u8) | 0x80);
            len >>= 7;
        }
        out.push(len as u8);
        out.extend(bytes);
    };
    string(go_version.as_bytes());
    let mut framed = START.to_vec();
    framed.extend(modinfo.as_bytes());
    framed.extend(END);
    string(&framed);
    out
}

/// A little-endian ELF64 file whose only sections are `.go.buildinfo` and the section names.
fn elf_with_section(name: &str, data: &[u8]) -> Vec<u8> {
    let names = format!("\0{name}\0.shstrtab\0");
    let data_offset = 64u64;
    let names_offset = data_offset + data.len() as u64;
    let table_offset = (names_offset + names.len() as u64).next_multiple_of(8);
    let mut out = vec![0u8; 64];
    out[..4].copy_from_slice(b"\x7fELF");
    out[4] = 2; // 64-bit
    out[5] = 1; // little-endian
    out[6] = 1; // version
    out[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    out[18..20].copy_from_slice(&62u16.to_le_bytes()); // x86-64
    out[0x28..0x30].copy_from_slice(&table_offset.to_le_bytes());
    out[0x34..0x36].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
    out[0x3A..0x3C].copy_from_slice(&64u16.to_le_bytes()); // e_shentsize
    out[0x3C..0x3E].copy_from_slice(&3u16.to_le_bytes()); // e_shnum
    out[0x3E..0x40].copy_from_slice(&2u16.to_le_bytes()); // e_shstrndx
    out.extend(data);
    out.extend(names.as_bytes());
    out.resize(table_offset as usize, 0);
    let header = |name: u32, kind: u32, offset: u64, size: u64| {
        let mut h = vec![0u8; 64];
        h[0..4].copy_from_slice(&name.to_le_bytes());
        h[4..8].copy_from_slice(&kind.to_le_bytes());
        h[24..32].copy_from_slice(&offset.to_le_bytes());
        h[32..40].copy_from_slice(&size.to_le_bytes());
        h
    };
    out.extend(header(0, 0, 0, 0));
    out.extend(header(1, 1, data_offset, data.len() as u64)); // PROGBITS
    out.extend(header(
        name.len() as u32 + 2,
        3, // STRTAB
        names_offset,
        names.len() as u64,
    ));
    out
}

fn pom(group: &str, artifact: &str, version: &str) -> String {
    format!(
        "#Created by Apache Maven 3.9.5\nversion={version}\ngroupId={group}\nartifactId={artifact}\n"
    )
}

/// Builds the fixture container root.
fn fixture_root(root: &Path) {
    write(
        root,
        "/etc/os-release",
        "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n",
    );
    write(
        root,
        "/var/lib/dpkg/status",
        "Package: libssl3\nStatus: install ok installed\nPriority: optional\nArchitecture: amd64\n\
Multi-Arch: same\nSource: openssl\nVersion: 3.0.11-1~deb12u2\nDescription: Secure Sockets Layer toolkit\n \
 - shared libraries\n\n\
Package: zlib1g\nStatus: install ok installed\nArchitecture: amd64\nSource: zlib\nVersion: 1:1.2.13.dfsg-1\n\n\
Package: libpcre3\nStatus: deinstall ok config-files\nArchitecture: amd64\nVersion: 2:8.39-15\n\n\
Package: bash\nStatus: install ok installed\nArchitecture: amd64\nVersion: 5.2.15-2+b2\n",
    );
    write(
        root,
        "/var/lib/dpkg/info/libssl3:amd64.list",
        "/.\n/usr\n/usr/lib/x86_64-linux-gnu/libssl.so.3\n/usr/lib/x86_64-linux-gnu/libcrypto.so.3\n",
    );
    write(
        root,
        "/var/lib/dpkg/status.d/tzdata",
        "Package: tzdata\nVersion: 2024a-0+deb12u1\nArchitecture: all\n",
    );
    write(
        root,
        "/var/lib/dpkg/status.d/tzdata.md5sums",
        "abc  usr/share/zoneinfo/UTC\n",
    );
    write(
        root,
        "/lib/apk/db/installed",
        "C:Q1abc=\nP:zlib\nV:1.2.12-r1\nA:x86_64\nS:53000\nT:A compression library\no:zlib\nF:lib\nR:libz.so.1.3.1\n\n\
C:Q1def=\nP:libcrypto3\nV:3.1.4-r5\nA:x86_64\no:openssl\nF:usr/lib\nR:libcrypto.so.3\n",
    );
    let site = "/usr/local/lib/python3.11/site-packages";
    write(
        root,
        &format!("{site}/requests-2.31.0.dist-info/METADATA"),
        "Metadata-Version: 2.1\nName: requests\nVersion: 2.31.0\nSummary: Python HTTP for Humans.\n\nLong: description: here\n",
    );
    write(
        root,
        &format!("{site}/requests-2.31.0.dist-info/RECORD"),
        "requests/__init__.py,sha256=abc,4924\nrequests-2.31.0.dist-info/RECORD,,\n",
    );
    write(
        root,
        &format!("{site}/PyYAML-6.0.1.dist-info/METADATA"),
        "Metadata-Version: 2.1\nName: PyYAML\nVersion: 6.0.1\n",
    );
    write(
        root,
        &format!("{site}/urllib3-2.0.0a1.dist-info/METADATA"),
        "Metadata-Version: 2.1\nName: urllib3\nVersion: 2.0.0a1\n",
    );
    write(
        root,
        "/usr/lib/python3/dist-packages/six-1.16.0.egg-info/PKG-INFO",
        "Metadata-Version: 1.2\nName: six\nVersion: 1.16.0\n",
    );
    // Not under site-packages: a source tree's metadata, not an installed distribution.
    write(
        root,
        "/src/pkg/foo-1.0.dist-info/METADATA",
        "Name: foo\nVersion: 1.0\n",
    );
    write(
        root,
        "/app/package.json",
        r#"{"name":"app","version":"1.0.0"}"#,
    );
    write(
        root,
        "/app/node_modules/express/package.json",
        r#"{"name":"express","version":"4.18.2","dependencies":{"debug":"2.6.9"}}"#,
    );
    write(
        root,
        "/app/node_modules/express/node_modules/debug/package.json",
        r#"{"name":"debug","version":"2.6.9"}"#,
    );
    write(
        root,
        "/app/node_modules/debug/package.json",
        r#"{"name":"debug","version":"4.3.4"}"#,
    );
    write(
        root,
        "/app/node_modules/@babel/core/package.json",
        r#"{"name":"@babel/core","version":"7.23.2"}"#,
    );
    // A stub without name or version, and a file that is not JSON: no component, no panic.
    write(
        root,
        "/app/node_modules/stub/package.json",
        r#"{"private":true}"#,
    );
    write(root, "/app/node_modules/broken/package.json", "{\"name\":");
    // A link out of the tree is not followed (the walk never follows links).
    symlink("/", root.join("app/node_modules/escape")).expect("symlink");
    let nested = jar(&[
        ("META-INF/MANIFEST.MF", b"Manifest-Version: 1.0\n", true),
        (
            "META-INF/maven/com.fasterxml.jackson.core/jackson-databind/pom.properties",
            pom("com.fasterxml.jackson.core", "jackson-databind", "2.15.2").as_bytes(),
            true,
        ),
    ]);
    write(
        root,
        "/app/app.jar",
        jar(&[
            ("META-INF/MANIFEST.MF", b"Manifest-Version: 1.0\n", true),
            (
                "META-INF/maven/com.example/demo/pom.properties",
                pom("com.example", "demo", "0.0.1-SNAPSHOT").as_bytes(),
                true,
            ),
            ("BOOT-INF/lib/jackson-databind-2.15.2.jar", &nested, false),
        ]),
    );
    write(root, "/app/broken.jar", b"PK\x03\x04 not really a zip");
    let modinfo = "path\texample.com/server\n\
mod\texample.com/server\t(devel)\t\n\
dep\tgithub.com/google/uuid\tv1.6.0\th1:NIvaJDMOsjHA8n1jAhLSgzrAzy1Hgr+hNrb57e+94F0=\n\
dep\tgolang.org/x/net\tv0.17.0\n\
=>\tgolang.org/x/net\tv0.23.0\th1:7mQhYUHrZsSzCJxl/nEKkP4GqDh2hqMDiGOwaxqTYNk=\n\
build\t-compiler=gc\nbuild\tGOOS=linux\n";
    let binary = elf_with_section(".go.buildinfo", &go_buildinfo("go1.21.5", modinfo));
    write(root, "/usr/local/bin/server", &binary);
    fs::set_permissions(
        root.join("usr/local/bin/server"),
        fs::Permissions::from_mode(0o755),
    )
    .expect("chmod");
    // A Rust binary built with `cargo auditable`: zlib-compressed JSON in `.dep-v0`.
    let audit = r#"{"packages":[
        {"name":"rustapp","version":"0.1.0","source":"local","root":true,"dependencies":[1,2,3]},
        {"name":"serde","version":"1.0.193","source":"crates.io"},
        {"name":"time","version":"0.3.20","source":"crates.io","kind":"runtime"},
        {"name":"cc","version":"1.0.83","source":"crates.io","kind":"build"}]}"#;
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(audit.as_bytes()).expect("compress");
    let compressed = encoder.finish().expect("compress");
    write(
        root,
        "/usr/local/bin/rustapp",
        elf_with_section(".dep-v0", &compressed),
    );
    fs::set_permissions(
        root.join("usr/local/bin/rustapp"),
        fs::Permissions::from_mode(0o755),
    )
    .expect("chmod");
    // The same bytes without the execute bit are not opened.
    write(root, "/usr/share/doc/server.bin", &binary);
    // Kernel views are not walked.
    write(
        root,
        "/proc/1/root/node_modules/ghost/package.json",
        r#"{"name":"ghost","version":"1.0.0"}"#,
    );
}

/// Every component the fixture holds, written by hand: (purl, location).
const EXPECTED: &[(&str, &str)] = &[
    (
        "pkg:deb/debian/bash@5.2.15-2%2Bb2?arch=amd64&distro=debian-12",
        "/var/lib/dpkg/status",
    ),
    (
        "pkg:deb/debian/libssl3@3.0.11-1~deb12u2?arch=amd64&distro=debian-12&upstream=openssl",
        "/var/lib/dpkg/status",
    ),
    (
        "pkg:deb/debian/tzdata@2024a-0%2Bdeb12u1?arch=all&distro=debian-12",
        "/var/lib/dpkg/status.d/tzdata",
    ),
    (
        "pkg:deb/debian/zlib1g@1%3A1.2.13.dfsg-1?arch=amd64&distro=debian-12&upstream=zlib",
        "/var/lib/dpkg/status",
    ),
    (
        "pkg:apk/alpine/libcrypto3@3.1.4-r5?arch=x86_64",
        "/lib/apk/db/installed",
    ),
    (
        "pkg:apk/alpine/zlib@1.2.12-r1?arch=x86_64",
        "/lib/apk/db/installed",
    ),
    (
        "pkg:pypi/pyyaml@6.0.1",
        "/usr/local/lib/python3.11/site-packages/PyYAML-6.0.1.dist-info/METADATA",
    ),
    (
        "pkg:pypi/requests@2.31.0",
        "/usr/local/lib/python3.11/site-packages/requests-2.31.0.dist-info/METADATA",
    ),
    (
        "pkg:pypi/urllib3@2.0.0a1",
        "/usr/local/lib/python3.11/site-packages/urllib3-2.0.0a1.dist-info/METADATA",
    ),
    (
        "pkg:pypi/six@1.16.0",
        "/usr/lib/python3/dist-packages/six-1.16.0.egg-info/PKG-INFO",
    ),
    (
        "pkg:npm/%40babel/core@7.23.2",
        "/app/node_modules/@babel/core/package.json",
    ),
    (
        "pkg:npm/debug@2.6.9",
        "/app/node_modules/express/node_modules/debug/package.json",
    ),
    (
        "pkg:npm/debug@4.3.4",
        "/app/node_modules/debug/package.json",
    ),
    (
        "pkg:npm/express@4.18.2",
        "/app/node_modules/express/package.json",
    ),
    (
        "pkg:maven/com.example/demo@0.0.1-SNAPSHOT",
        "/app/app.jar!/META-INF/maven/com.example/demo/pom.properties",
    ),
    (
        "pkg:maven/com.fasterxml.jackson.core/jackson-databind@2.15.2",
        "/app/app.jar!/BOOT-INF/lib/jackson-databind-2.15.2.jar!/META-INF/maven/com.fasterxml.jackson.core/jackson-databind/pom.properties",
    ),
    (
        "pkg:golang/example.com/server@%28devel%29",
        "/usr/local/bin/server",
    ),
    (
        "pkg:golang/github.com/google/uuid@v1.6.0",
        "/usr/local/bin/server",
    ),
    (
        "pkg:golang/golang.org/x/net@v0.23.0",
        "/usr/local/bin/server",
    ),
    ("pkg:golang/stdlib@v1.21.5", "/usr/local/bin/server"),
    // `cc` is a build dependency: not in the binary.
    ("pkg:cargo/rustapp@0.1.0", "/usr/local/bin/rustapp"),
    ("pkg:cargo/serde@1.0.193", "/usr/local/bin/rustapp"),
    ("pkg:cargo/time@0.3.20", "/usr/local/bin/rustapp"),
];

fn sbom(root: &Path, extra: &[&str]) -> (serde_json::Value, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_tasksentry"))
        .arg("sbom")
        .arg("--root")
        .arg(root)
        .args(extra)
        .output()
        .expect("runs");
    assert!(output.status.success(), "sbom failed: {output:?}");
    let stdout = String::from_utf8(output.stdout).expect("utf-8");
    let json = serde_json::from_str(&stdout).expect("JSON");
    (
        json,
        stdout,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn property<'v>(value: &'v serde_json::Value, name: &str) -> Vec<&'v str> {
    value["properties"]
        .as_array()
        .map(|props| {
            props
                .iter()
                .filter(|p| p["name"] == name)
                .filter_map(|p| p["value"].as_str())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn the_fixture_root_gives_exactly_the_expected_components() {
    let dir = tempfile::tempdir().expect("tempdir");
    fixture_root(dir.path());
    let (json, first, _) = sbom(dir.path(), &[]);
    assert_eq!(json["bomFormat"], "CycloneDX");
    assert_eq!(json["specVersion"], "1.5");
    let components = json["components"].as_array().expect("components");
    let mut found: Vec<(String, String)> = components
        .iter()
        .map(|c| {
            (
                c["purl"].as_str().expect("purl").to_owned(),
                property(c, "tasksentry:location")[0].to_owned(),
            )
        })
        .collect();
    found.sort();
    let mut expected: Vec<(String, String)> = EXPECTED
        .iter()
        .map(|(p, l)| ((*p).to_owned(), (*l).to_owned()))
        .collect();
    expected.sort();
    assert_eq!(found, expected);

    // bom-refs are unique; the jar that is not a zip and the broken JSON are noted, not fatal.
    let mut refs: Vec<&str> = components
        .iter()
        .filter_map(|c| c["bom-ref"].as_str())
        .collect();
    refs.sort();
    refs.dedup();
    assert_eq!(refs.len(), components.len());
    let notes = property(&json["metadata"], "tasksentry:note");
    assert!(
        notes.iter().any(|n| n.starts_with("/app/broken.jar")),
        "{notes:?}"
    );
    assert!(
        notes
            .iter()
            .any(|n| n.starts_with("/app/node_modules/broken/package.json"))
    );

    // Source packages (what Debian's and Alpine's advisories name) and owned files.
    let libssl = components
        .iter()
        .find(|c| c["name"] == "libssl3")
        .expect("libssl3");
    assert_eq!(property(libssl, "tasksentry:source_name"), ["openssl"]);
    assert_eq!(property(libssl, "tasksentry:files"), ["3"]);
    let babel = components
        .iter()
        .find(|c| c["name"] == "core")
        .expect("@babel/core");
    assert_eq!(babel["group"], "@babel");

    // Deterministic: a second pass prints the same bytes.
    let (_, second, _) = sbom(dir.path(), &[]);
    assert_eq!(first, second);
}

#[test]
fn the_budget_bounds_the_pass_and_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    fixture_root(dir.path());
    let (json, _, stderr) = sbom(dir.path(), &["--max-files", "10"]);
    assert_eq!(
        property(&json["metadata"], "tasksentry:truncated"),
        ["files"]
    );
    let read: u64 = property(&json["metadata"], "tasksentry:entries_read")[0]
        .parse()
        .expect("number");
    assert!(read <= 10, "{read} entries read");
    assert!(stderr.contains("budget ran out"), "{stderr}");

    let (json, _, _) = sbom(dir.path(), &["--max-bytes", "300"]);
    assert_eq!(
        property(&json["metadata"], "tasksentry:truncated"),
        ["bytes"]
    );
    let bytes: u64 = property(&json["metadata"], "tasksentry:bytes_read")[0]
        .parse()
        .expect("number");
    assert!(bytes <= 300, "{bytes} bytes read");
}

#[test]
fn a_root_that_is_not_a_directory_is_a_usage_error() {
    let output = Command::new(env!("CARGO_BIN_EXE_tasksentry"))
        .args(["sbom", "--root", "/nonexistent/root"])
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(2));
}

/// What `--vulndb tests/data/osv` must find in the fixture root: (component purl, advisory,
/// fixed version). Not found, and rightly so: DSA-5532-1 (libssl3 is at its fixed version
/// `3.0.11-1~deb12u2`, a `~` version), DEBIAN-CVE-2022-37434 (zlib1g `1:1.2.13.dfsg-1`, epoch 1,
/// above `1:1.2.11.dfsg-4.1`), GHSA-v845-jxx5-vc9f (urllib3 `2.0.0a1` is a pre-release of
/// 2.0.0, below the second range's `introduced` and above the first's `fixed`),
/// GHSA-gxpj-cx7g-858c (debug `2.6.9` is a fixed version, `4.3.4` above `4.3.1`), GO-2024-2687
/// for golang.org/x/net (`v0.17.0` was replaced by `v0.23.0`, the fixed version),
/// GHSA-57j2-w4cx-62h2 (jackson-databind 2.15.2 is above both ranges).
const EXPECTED_VULNS: &[(&str, &str, Option<&str>)] = &[
    (
        "pkg:deb/debian/libssl3@3.0.11-1~deb12u2?arch=amd64&distro=debian-12&upstream=openssl",
        "DSA-5764-1",
        Some("3.0.14-1~deb12u2"),
    ),
    (
        "pkg:apk/alpine/zlib@1.2.12-r1?arch=x86_64",
        "ALPINE-CVE-2022-37434",
        Some("1.2.12-r2"),
    ),
    (
        "pkg:pypi/requests@2.31.0",
        "GHSA-9wx4-h78v-vm56",
        Some("2.32.0"),
    ),
    (
        "pkg:npm/express@4.18.2",
        "GHSA-rv95-896h-c2vc",
        Some("4.19.2"),
    ),
    ("pkg:golang/stdlib@v1.21.5", "GO-2024-2687", Some("1.21.9")),
    (
        "pkg:maven/com.example/demo@0.0.1-SNAPSHOT",
        "TASKSENTRY-TEST-1",
        None,
    ),
];

#[test]
fn the_osv_fixture_database_finds_exactly_the_vulnerable_components() {
    let dir = tempfile::tempdir().expect("tempdir");
    fixture_root(dir.path());
    let db = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/osv");
    let (json, _, stderr) = sbom(dir.path(), &["--vulndb", db.to_str().expect("utf-8")]);
    assert!(stderr.is_empty(), "{stderr}");
    let components = json["components"].as_array().expect("components");
    let purl_of = |bom_ref: &str| -> String {
        components
            .iter()
            .find(|c| c["bom-ref"] == bom_ref)
            .and_then(|c| c["purl"].as_str())
            .expect("affects a listed component")
            .to_owned()
    };
    let vulns = json["vulnerabilities"].as_array().expect("vulnerabilities");
    let mut found: Vec<(String, String, Option<String>)> = vulns
        .iter()
        .map(|v| {
            let affects = &v["affects"][0];
            let fixed = property(v, "tasksentry:fixed_version")
                .first()
                .map(|f| (*f).to_owned());
            (
                purl_of(affects["ref"].as_str().expect("ref")),
                v["id"].as_str().expect("id").to_owned(),
                fixed,
            )
        })
        .collect();
    found.sort();
    let mut expected: Vec<(String, String, Option<String>)> = EXPECTED_VULNS
        .iter()
        .map(|(p, id, f)| ((*p).to_owned(), (*id).to_owned(), f.map(str::to_owned)))
        .collect();
    expected.sort();
    assert_eq!(found, expected);

    // Aliases and CVSS from the record: express's 6.1 (medium), computed from its vector.
    let express = vulns
        .iter()
        .find(|v| v["id"] == "GHSA-rv95-896h-c2vc")
        .expect("express");
    assert_eq!(express["references"][0]["id"], "CVE-2024-29041");
    assert_eq!(express["ratings"][0]["score"], 6.1);
    assert_eq!(express["ratings"][0]["severity"], "medium");
    let openssl = vulns
        .iter()
        .find(|v| v["id"] == "DSA-5764-1")
        .expect("openssl");
    assert_eq!(openssl["references"].as_array().map(Vec::len), Some(4));
    assert_eq!(
        openssl["affects"][0]["versions"][1]["version"],
        "3.0.14-1~deb12u2"
    );
}

/// A second implementation for dpkg: on a Debian-based test machine, the packages read from
/// its own `/var/lib/dpkg` are exactly those `dpkg-query` lists as installed.
#[test]
fn dpkg_packages_are_those_dpkg_query_lists() {
    use tasksentry::image::{Inventory, Limits, Root, os};
    let Ok(output) = Command::new("dpkg-query")
        .args(["-W", "-f", "${db:Status-Abbrev}\t${Package}\t${Version}\n"])
        .output()
    else {
        eprintln!("no dpkg-query on this machine: nothing to compare with");
        return;
    };
    let mut theirs: Vec<(String, String)> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let mut fields = line.split('\t');
            let status = fields.next()?;
            // The second letter is the current state: `i` installed (`ii`, or `hi` when held).
            (status.as_bytes().get(1) == Some(&b'i'))
                .then(|| Some((fields.next()?.to_owned(), fields.next()?.to_owned())))
                .flatten()
        })
        .collect();
    theirs.sort();
    let root = Root::new("/", Limits::default());
    let mut inventory = Inventory::default();
    os::dpkg(&root, &mut inventory);
    let mut ours: Vec<(String, String)> = inventory
        .components
        .iter()
        .map(|c| (c.name.clone(), c.version.clone()))
        .collect();
    ours.sort();
    assert!(!theirs.is_empty());
    assert_eq!(ours, theirs);
}

/// "In use": this test process maps the fixture's libssl.so.3 (owned by libssl3 per its dpkg
/// `.list`); with `--pid` it, libssl3's vulnerability is in use, with the pid and the path as
/// evidence, while the other vulnerable packages (not mapped by anything) are present only.
#[test]
fn a_mapped_vulnerable_library_is_in_use_and_an_unmapped_one_is_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    fixture_root(dir.path());
    let library = dir.path().join("usr/lib/x86_64-linux-gnu/libssl.so.3");
    write(
        dir.path(),
        "/usr/lib/x86_64-linux-gnu/libssl.so.3",
        vec![0x7fu8; 8192],
    );
    let file = fs::File::open(&library).expect("open");
    use std::os::fd::AsRawFd;
    // SAFETY: a private read-only mapping of a file this test owns, never written to and
    // unmapped below, after the command has run; the pointer is not dereferenced.
    let mapped = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            8192,
            libc::PROT_READ,
            libc::MAP_PRIVATE,
            file.as_raw_fd(),
            0,
        )
    };
    assert_ne!(mapped, libc::MAP_FAILED);
    let db = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/osv");
    let pid = std::process::id().to_string();
    let (json, _, _) = sbom(
        dir.path(),
        &["--vulndb", db.to_str().expect("utf-8"), "--pid", &pid],
    );
    // SAFETY: the mapping made above, of that length, not used after this.
    unsafe { libc::munmap(mapped, 8192) };
    let vulns = json["vulnerabilities"].as_array().expect("vulnerabilities");
    let in_use = |id: &str| -> (Vec<String>, Vec<String>) {
        let v = vulns.iter().find(|v| v["id"] == id).expect(id);
        (
            property(v, "tasksentry:in_use")
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            property(v, "tasksentry:in_use_evidence")
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
        )
    };
    assert_eq!(
        in_use("DSA-5764-1"),
        (
            vec!["true".to_owned()],
            vec![format!(
                "pid {pid} maps or runs /usr/lib/x86_64-linux-gnu/libssl.so.3"
            )]
        )
    );
    assert_eq!(
        in_use("ALPINE-CVE-2022-37434"),
        (vec!["false".to_owned()], vec![])
    );
    assert_eq!(
        in_use("GHSA-rv95-896h-c2vc"),
        (vec!["false".to_owned()], vec![])
    );
    // Without --pid nothing is claimed either way.
    let (json, _, _) = sbom(dir.path(), &["--vulndb", db.to_str().expect("utf-8")]);
    assert!(
        json["vulnerabilities"]
            .as_array()
            .expect("vulnerabilities")
            .iter()
            .all(|v| property(v, "tasksentry:in_use").is_empty())
    );
}

/// The same records as a zip (osv.dev's `all.zip` form) give the same vulnerabilities.
#[test]
fn a_zip_of_osv_records_is_read_like_the_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    fixture_root(dir.path());
    let db = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/osv");
    let mut records: Vec<(String, Vec<u8>)> = fs::read_dir(&db)
        .expect("osv dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            (
                p.file_name().expect("name").to_string_lossy().into_owned(),
                fs::read(&p).expect("read"),
            )
        })
        .collect();
    records.sort();
    let entries: Vec<(&str, &[u8], bool)> = records
        .iter()
        .map(|(name, bytes)| (name.as_str(), bytes.as_slice(), true))
        .collect();
    let zip_path = dir.path().join("all.zip");
    fs::write(&zip_path, jar(&entries)).expect("write zip");
    let (from_dir, _, _) = sbom(dir.path(), &["--vulndb", db.to_str().expect("utf-8")]);
    let (from_zip, _, stderr) = sbom(dir.path(), &["--vulndb", zip_path.to_str().expect("utf-8")]);
    assert!(stderr.is_empty(), "{stderr}");
    assert_eq!(
        from_zip["vulnerabilities"].as_array().map(Vec::len),
        Some(EXPECTED_VULNS.len())
    );
    assert_eq!(from_zip["vulnerabilities"], from_dir["vulnerabilities"]);
}

/// Fixture packages for the upstream OSV records in `tests/data/osv-upstream` (copied
/// unchanged from a published package, see its README): each record's boundaries from both
/// sides, in an Alpine 3.8 root (`alpine_minor`) with Python, npm and Maven packages.
fn upstream_fixture_root(root: &Path, alpine_minor: &str) {
    write(
        root,
        "/etc/os-release",
        format!("NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID={alpine_minor}.1\n"),
    );
    write(
        root,
        "/lib/apk/db/installed",
        "C:Q1aaa=\nP:libcrypto1.0\nV:1.0.2p-r0\nA:x86_64\no:openssl\nF:lib\nR:libcrypto.so.1.0.0\n\n\
C:Q1bbb=\nP:libssl1.0\nV:1.0.2q-r0\nA:x86_64\no:openssl\nF:lib\nR:libssl.so.1.0.0\n",
    );
    let metadata = |dir: &str, name: &str, version: &str| {
        write(
            root,
            &format!("{dir}/{name}-{version}.dist-info/METADATA"),
            format!("Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"),
        );
    };
    let system = "/usr/lib/python3.6/site-packages";
    metadata(system, "requests", "2.30.0");
    metadata(system, "gradio", "4.36.1");
    metadata(system, "Products.PluggableAuthService", "2.6.0");
    let venv = "/app/venv/lib/python3.6/site-packages";
    metadata(venv, "requests", "2.2.1");
    metadata(venv, "gradio", "4.36.0");
    metadata(venv, "Products.PluggableAuthService", "2.6.1");
    metadata(
        "/opt/tool/lib/python3.6/site-packages",
        "requests",
        "2.31.0",
    );
    let npm = |path: &str, name: &str, version: &str| {
        write(
            root,
            &format!("/app/{path}/package.json"),
            format!(r#"{{"name":"{name}","version":"{version}"}}"#),
        );
    };
    npm("node_modules/jquery", "jquery", "2.2.4");
    npm("node_modules/a/node_modules/jquery", "jquery", "3.0.0");
    npm("node_modules/b/node_modules/jquery", "jquery", "2.1.0");
    npm("node_modules/mixin-deep", "mixin-deep", "1.3.1");
    npm(
        "node_modules/a/node_modules/mixin-deep",
        "mixin-deep",
        "2.0.0",
    );
    npm(
        "node_modules/b/node_modules/mixin-deep",
        "mixin-deep",
        "1.3.2",
    );
    npm("node_modules/i18next", "i18next", "1.10.2");
    npm("node_modules/a", "a", "1.0.0");
    npm("node_modules/b", "b", "1.0.0");
    let pom_entry = |group: &str, artifact: &str, version: &str| {
        (
            format!("META-INF/maven/{group}/{artifact}/pom.properties"),
            pom(group, artifact, version),
        )
    };
    for (file, group, artifact, version) in [
        (
            "xwiki-a.jar",
            "org.xwiki.commons",
            "xwiki-commons-core",
            "12.6.6",
        ),
        (
            "xwiki-b.jar",
            "org.xwiki.commons",
            "xwiki-commons-core",
            "12.8",
        ),
        (
            "xwiki-c.jar",
            "org.xwiki.commons",
            "xwiki-commons-core",
            "12.10.1",
        ),
        (
            "akka-a.jar",
            "com.typesafe.akka",
            "akka-actor_2.12",
            "2.5.15",
        ),
        (
            "akka-b.jar",
            "com.typesafe.akka",
            "akka-actor_2.11",
            "2.5.16",
        ),
    ] {
        let (name, properties) = pom_entry(group, artifact, version);
        write(
            root,
            &format!("/app/lib/{file}"),
            jar(&[(name.as_str(), properties.as_bytes(), true)]),
        );
    }
}

/// The vulnerabilities an SBOM lists, as (purl, advisory, fixed version), sorted.
fn found_vulns(json: &serde_json::Value) -> Vec<(String, String, Option<String>)> {
    let components = json["components"].as_array().expect("components");
    let mut found: Vec<_> = json["vulnerabilities"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|v| {
            let bom_ref = &v["affects"][0]["ref"];
            let purl = components
                .iter()
                .find(|c| c["bom-ref"] == *bom_ref)
                .and_then(|c| c["purl"].as_str())
                .expect("affects a listed component");
            (
                purl.to_owned(),
                v["id"].as_str().expect("id").to_owned(),
                property(v, "tasksentry:fixed_version")
                    .first()
                    .map(|f| (*f).to_owned()),
            )
        })
        .collect();
    found.sort();
    found
}

/// Records as OSV publishes them (not transcribed): an Alpine record listing one range per
/// release (and an `affected` entry without a package, which must be skipped), PyPI records
/// with an explicit `versions` list (with GIT ranges, which are not versions) and with a
/// name to normalise (`Products.PluggableAuthService`, `Gradio`), npm records whose events
/// interleave two ranges in one list (`mixin-deep`) or start at a pre-release (`jquery`
/// from `2.1.1-0`), Maven records with three ranges and with two packages.
#[test]
fn upstream_osv_records_find_exactly_the_affected_versions() {
    let db = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/osv-upstream");
    let db = db.to_str().expect("utf-8");
    let dir = tempfile::tempdir().expect("tempdir");
    upstream_fixture_root(dir.path(), "3.8");
    let (json, _, stderr) = sbom(dir.path(), &["--vulndb", db]);
    assert!(stderr.is_empty(), "{stderr}");
    let expected: Vec<(String, String, Option<String>)> = [
        (
            "pkg:apk/alpine/libcrypto1.0@1.0.2p-r0?arch=x86_64&distro=3.8.1",
            "CVE-2018-5407",
            Some("1.0.2q-r0"),
        ),
        (
            "pkg:maven/com.typesafe.akka/akka-actor_2.12@2.5.15",
            "GHSA-mr95-9rr4-668f",
            Some("2.5.16"),
        ),
        (
            "pkg:maven/org.xwiki.commons/xwiki-commons-core@12.10.1",
            "GHSA-76mp-659p-rw65",
            Some("12.10.2"),
        ),
        (
            "pkg:maven/org.xwiki.commons/xwiki-commons-core@12.6.6",
            "GHSA-76mp-659p-rw65",
            Some("12.6.7"),
        ),
        (
            "pkg:npm/i18next@1.10.2",
            "GHSA-f89g-whpf-6q9m",
            Some("1.10.3"),
        ),
        ("pkg:npm/jquery@2.2.4", "GHSA-mhpp-875w-9cpv", Some("3.0.0")),
        (
            "pkg:npm/mixin-deep@1.3.1",
            "GHSA-fhjf-83wg-r2j9",
            Some("1.3.2"),
        ),
        (
            "pkg:npm/mixin-deep@2.0.0",
            "GHSA-fhjf-83wg-r2j9",
            Some("2.0.1"),
        ),
        ("pkg:pypi/gradio@4.36.1", "GHSA-9v2f-6vcg-3hgv", None),
        (
            "pkg:pypi/products-pluggableauthservice@2.6.0",
            "GHSA-p44j-xrqg-4xrr",
            Some("2.6.1"),
        ),
        ("pkg:pypi/requests@2.30.0", "PYSEC-2023-74", Some("2.31.0")),
    ]
    .iter()
    .map(|(p, id, f)| ((*p).to_owned(), (*id).to_owned(), f.map(str::to_owned)))
    .collect();
    assert_eq!(found_vulns(&json), expected);
    let requests = json["vulnerabilities"]
        .as_array()
        .expect("vulnerabilities")
        .iter()
        .find(|v| v["id"] == "PYSEC-2023-74")
        .expect("requests");
    let aliases: Vec<&str> = requests["references"]
        .as_array()
        .expect("aliases")
        .iter()
        .filter_map(|r| r["id"].as_str())
        .collect();
    assert_eq!(aliases, ["CVE-2023-32681", "GHSA-j8r2-6x86-q33q"]);

    // The same packages in an Alpine 3.9 image: the openssl record lists releases up to 3.8
    // only; the language packages are matched as before.
    let dir = tempfile::tempdir().expect("tempdir");
    upstream_fixture_root(dir.path(), "3.9");
    let (json, _, _) = sbom(dir.path(), &["--vulndb", db]);
    let on_3_9: Vec<_> = expected
        .iter()
        .filter(|(_, id, _)| id != "CVE-2018-5407")
        .cloned()
        .collect();
    assert_eq!(found_vulns(&json), on_3_9);
}

// ---------------------------------------------------------------------------------------------
// rpm: packages built here with `rpmbuild` and recorded in a container root's
// `var/lib/rpm/rpmdb.sqlite` by rpm itself (`rpm --root ... -i --justdb`), then read by
// TaskSentry's own SQLite file-format reader. The second implementation is rpm: the packages,
// versions and files must be exactly what `rpm -qa` and `rpm -ql` list.

/// Builds a binary rpm from `spec` in `work`; returns its path.
fn rpmbuild(work: &Path, name: &str, spec: &str) -> std::path::PathBuf {
    let spec_path = work.join(format!("{name}.spec"));
    fs::write(&spec_path, spec).expect("spec");
    let output = Command::new("rpmbuild")
        .args(["-bb", "--quiet", "--target", "x86_64"])
        .arg("--define")
        .arg(format!("_topdir {}", work.join("top").display()))
        .arg("--define")
        .arg(format!("_rpmdir {}", work.join("out").display()))
        .arg(&spec_path)
        .output()
        .expect("rpmbuild runs (scripts/test installs rpm)");
    assert!(output.status.success(), "rpmbuild {name}: {output:?}");
    let mut found = Vec::new();
    for arch in fs::read_dir(work.join("out")).expect("out") {
        for rpm in fs::read_dir(arch.expect("arch").path()).expect("arch dir") {
            let path = rpm.expect("rpm").path();
            if path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&format!("{name}-")))
            {
                found.push(path);
            }
        }
    }
    assert_eq!(found.len(), 1, "{found:?}");
    found.remove(0)
}

fn spec(
    name: &str,
    epoch: Option<u32>,
    version: &str,
    release: &str,
    arch: &str,
    files: &[String],
) -> String {
    let mut install = String::new();
    for file in files {
        let dir = Path::new(file).parent().expect("dir").display().to_string();
        install.push_str(&format!(
            "mkdir -p %{{buildroot}}{dir}\necho x > %{{buildroot}}{file}\n"
        ));
    }
    let epoch = epoch.map(|e| format!("Epoch: {e}\n")).unwrap_or_default();
    format!(
        "Name: {name}\nVersion: {version}\nRelease: {release}\n{epoch}Summary: fixture\nLicense: MIT\n\
BuildArch: {arch}\n%global debug_package %{{nil}}\n%description\nfixture\n%install\n{install}%files\n{}\n",
        files.join("\n")
    )
}

fn rpm_query(root: &Path, args: &[&str]) -> String {
    let output = Command::new("rpm")
        .arg("--root")
        .arg(root)
        .args(["--dbpath", "/var/lib/rpm"])
        .args(args)
        .output()
        .expect("rpm");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).expect("utf-8")
}

/// A root with five packages recorded by rpm: an epoch, a tilde pre-release, noarch, and one
/// with 400 long file names (its header spills over several SQLite overflow pages).
fn rpm_root(work: &Path, root: &Path, os_release: &str) {
    let many: Vec<String> = (0..400)
        .map(|i| {
            format!("/usr/share/fixture-data/some/rather/deep/directory/file-number-{i:04}.dat")
        })
        .collect();
    let packages = [
        (
            "openssl-libs",
            Some(1),
            "3.0.7",
            "24.el9",
            "x86_64",
            vec![
                "/usr/lib64/libssl.so.3".to_owned(),
                "/usr/lib64/libcrypto.so.3".to_owned(),
            ],
        ),
        (
            "bash",
            None,
            "5.1.8",
            "6.el9_1",
            "x86_64",
            vec!["/usr/bin/bash".to_owned()],
        ),
        (
            "python3-pip-wheel",
            None,
            "21.2.3",
            "7.el9",
            "noarch",
            vec!["/usr/share/python-wheels/pip.whl".to_owned()],
        ),
        (
            "tzdata",
            None,
            "2024a~rc1",
            "1.el9",
            "noarch",
            vec!["/usr/share/zoneinfo/UTC".to_owned()],
        ),
        ("fixture-data", None, "1.0", "1", "noarch", many),
    ];
    let mut rpms = Vec::new();
    for (name, epoch, version, release, arch, files) in &packages {
        rpms.push(rpmbuild(
            work,
            name,
            &spec(name, *epoch, version, release, arch, files),
        ));
    }
    fs::create_dir_all(root.join("etc")).expect("etc");
    fs::write(root.join("etc/os-release"), os_release).expect("os-release");
    let status = Command::new("rpm")
        .arg("--root")
        .arg(root)
        .args(["--dbpath", "/var/lib/rpm", "--initdb"])
        .status()
        .expect("rpm --initdb");
    assert!(status.success());
    let output = Command::new("rpm")
        .arg("--root")
        .arg(root)
        .args([
            "--dbpath",
            "/var/lib/rpm",
            "-i",
            "--justdb",
            "--nodeps",
            "--ignorearch",
            "--ignoreos",
            "--nosignature",
        ])
        .args(&rpms)
        .output()
        .expect("rpm -i");
    assert!(output.status.success(), "{output:?}");
    assert!(root.join("var/lib/rpm/rpmdb.sqlite").is_file());
}

#[test]
fn rpm_packages_are_exactly_those_rpm_lists() {
    let work = tempfile::tempdir().expect("tempdir");
    let root = tempfile::tempdir().expect("tempdir");
    rpm_root(
        work.path(),
        root.path(),
        "NAME=\"AlmaLinux\"\nID=\"almalinux\"\nVERSION_ID=\"9.3\"\n",
    );
    // TaskSentry's reading, through the library (files are not part of the SBOM).
    let inventory = tasksentry::image::inventory(&tasksentry::image::Root::new(
        root.path(),
        tasksentry::image::Limits::default(),
    ));
    assert!(inventory.notes.is_empty(), "{:?}", inventory.notes);
    let rpms: Vec<&tasksentry::image::Component> = inventory
        .components
        .iter()
        .filter(|c| c.ecosystem == tasksentry::image::Ecosystem::Rpm)
        .collect();
    // What rpm lists, as (name, [epoch:]version-release, arch).
    let theirs: BTreeSet<(String, String, String)> = rpm_query(
        root.path(),
        &[
            "-qa",
            "--qf",
            "%{NAME} %|EPOCH?{%{EPOCH}:}|%{VERSION}-%{RELEASE} %{ARCH}\\n",
        ],
    )
    .lines()
    .map(|line| {
        let mut parts = line.split(' ');
        let mut next = || parts.next().expect("field").to_owned();
        (next(), next(), next())
    })
    .collect();
    assert_eq!(theirs.len(), 5, "{theirs:?}");
    let ours: BTreeSet<(String, String, String)> = rpms
        .iter()
        .map(|c| {
            (
                c.name.clone(),
                c.version.clone(),
                c.arch.clone().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(ours, theirs);
    // Files, for "in use": exactly `rpm -ql`, also for the header spread over overflow pages.
    for name in ["openssl-libs", "fixture-data"] {
        let listed: BTreeSet<String> = rpm_query(root.path(), &["-ql", name])
            .lines()
            .map(str::to_owned)
            .collect();
        let component = rpms.iter().find(|c| c.name == name).expect(name);
        let files: BTreeSet<String> = component.files.iter().cloned().collect();
        assert_eq!(files, listed, "{name}");
    }
    assert_eq!(
        rpms.iter()
            .find(|c| c.name == "fixture-data")
            .map(|c| c.files.len()),
        Some(400)
    );
    // The SBOM names them with their package URLs and source packages.
    let (json, _, _) = sbom(root.path(), &[]);
    let openssl = json["components"]
        .as_array()
        .expect("components")
        .iter()
        .find(|c| c["name"] == "openssl-libs")
        .expect("openssl-libs");
    assert_eq!(
        openssl["purl"],
        "pkg:rpm/almalinux/openssl-libs@3.0.7-24.el9?arch=x86_64&distro=almalinux-9.3&epoch=1"
    );
    assert_eq!(
        property(openssl, "tasksentry:ecosystem").first().copied(),
        Some("rpm")
    );
    assert_eq!(
        property(openssl, "tasksentry:source_name").first().copied(),
        Some("openssl-libs")
    );
}

#[test]
fn rpm_advisories_apply_to_their_own_distribution_and_release_only() {
    let work = tempfile::tempdir().expect("tempdir");
    let db = tempfile::tempdir().expect("tempdir");
    // A record in AlmaLinux's OSV form (synthetic: no original could be fetched here).
    fs::write(
        db.path().join("TASKSENTRY-TEST-RPM-1.json"),
        r#"{"schema_version":"1.6.0","id":"TASKSENTRY-TEST-RPM-1","aliases":["CVE-2023-0286"],
"summary":"Synthetic test record in AlmaLinux's form","affected":[
{"package":{"ecosystem":"AlmaLinux:9","name":"openssl-libs"},
 "ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"1:3.0.7-25.el9"}]}]},
{"package":{"ecosystem":"AlmaLinux:9","name":"tzdata"},
 "ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"2024a~rc1-1.el9"}]}]},
{"package":{"ecosystem":"AlmaLinux:9","name":"bash"},
 "ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"5.1.8-6.el9_1"}]}]}]}"#,
    )
    .expect("record");
    let db = db.path().to_str().expect("utf-8");
    let found = |os_release: &str| -> Vec<(String, String)> {
        let root = tempfile::tempdir().expect("tempdir");
        rpm_root(work.path(), root.path(), os_release);
        let _ = fs::remove_dir_all(work.path().join("out"));
        let (json, _, _) = sbom(root.path(), &["--vulndb", db]);
        let components = json["components"].as_array().expect("components").clone();
        json["vulnerabilities"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|v| {
                let component = components
                    .iter()
                    .find(|c| c["bom-ref"] == v["affects"][0]["ref"])
                    .expect("component");
                (
                    component["name"].as_str().expect("name").to_owned(),
                    property(v, "tasksentry:fixed_version")
                        .first()
                        .copied()
                        .unwrap_or("")
                        .to_owned(),
                )
            })
            .collect()
    };
    // openssl-libs 1:3.0.7-24.el9 is below the fix; tzdata and bash are at it.
    assert_eq!(
        found("ID=\"almalinux\"\nVERSION_ID=\"9.3\"\n"),
        [("openssl-libs".to_owned(), "1:3.0.7-25.el9".to_owned())]
    );
    // Another release, another rpm distribution: not theirs.
    assert!(found("ID=\"almalinux\"\nVERSION_ID=\"8.9\"\n").is_empty());
    assert!(found("ID=\"amzn\"\nVERSION_ID=\"2023\"\n").is_empty());
}
