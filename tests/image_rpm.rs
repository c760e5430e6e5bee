//! rpm packages in `tasksentry sbom`: packages built here with `rpmbuild` and recorded in a
//! container root's `var/lib/rpm/rpmdb.sqlite` by rpm itself (`rpm --root ... -i --justdb`),
//! then read by TaskSentry's own SQLite file-format reader. The second implementation is rpm:
//! the packages, versions and files must be exactly what `rpm -qa` and `rpm -ql` list.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::process::Command;

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

fn sbom(root: &Path, extra: &[&str]) -> serde_json::Value {
    let output = Command::new(env!("CARGO_BIN_EXE_tasksentry"))
        .arg("sbom")
        .arg("--root")
        .arg(root)
        .args(extra)
        .output()
        .expect("runs");
    assert!(output.status.success(), "sbom failed: {output:?}");
    serde_json::from_slice(&output.stdout).expect("JSON")
}

fn property<'v>(value: &'v serde_json::Value, name: &str) -> Option<&'v str> {
    value["properties"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == name)?["value"]
        .as_str()
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
    let json = sbom(root.path(), &[]);
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
    assert_eq!(property(openssl, "tasksentry:ecosystem"), Some("rpm"));
    assert_eq!(
        property(openssl, "tasksentry:source_name"),
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
        let json = sbom(root.path(), &["--vulndb", db]);
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
