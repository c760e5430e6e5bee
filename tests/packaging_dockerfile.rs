//! The Dockerfile passes hadolint (installed by `scripts/hadolint`), and has the properties the
//! packaging promises: a multi-stage build with the CI cargo command, exact base image versions,
//! a distroless final image running `/tasksentry run` as uid 0 without a shell.
//!
//! The first run installs hadolint from PyPI into `target/hadolint-venv` (the repository's
//! `scripts/test` can do that before the tests); later runs reuse it.

#![allow(clippy::unwrap_used)] // Tests may unwrap: a failure is a test failure.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn hadolint(args: &[&Path]) -> Output {
    Command::new(repo().join("scripts/hadolint"))
        .args(args)
        .current_dir(repo())
        .output()
        .expect("scripts/hadolint runs")
}

fn dockerfile() -> String {
    std::fs::read_to_string(repo().join("Dockerfile")).unwrap()
}

#[test]
fn dockerfile_passes_hadolint() {
    let output = hadolint(&[]);
    assert!(
        output.status.success(),
        "hadolint found problems:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn hadolint_rejects_a_broken_copy() {
    // The lint step must be able to fail: a copy with an unpinned base, an unpinned apt-get
    // and a shell-form entrypoint is rejected under the repository's configuration.
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("Dockerfile");
    let text = dockerfile()
        .replace(
            "FROM ${RUNTIME_IMAGE} AS runtime",
            "FROM debian:latest AS runtime\nRUN apt-get update && apt-get install -y curl",
        )
        .replace(
            "ENTRYPOINT [\"/tasksentry\", \"run\"]",
            "ENTRYPOINT /tasksentry run",
        );
    std::fs::write(&broken, text).unwrap();
    let output = hadolint(&[&broken]);
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "{report}");
    for rule in ["DL3007", "DL3008", "DL3025"] {
        assert!(report.contains(rule), "{rule} missing from:\n{report}");
    }
}

#[test]
fn dockerfile_builds_like_ci_and_runs_the_monitor_as_root_without_a_shell() {
    let text = dockerfile();
    let from_lines: Vec<&str> = text.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(from_lines.len(), 2, "multi-stage: build and runtime");
    assert!(
        text.contains("cargo build --release --locked"),
        "CI's cargo command"
    );

    // Exact base versions by default (digests are pinned through the build arguments).
    let arg = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("ARG {name}=")))
            .unwrap_or_else(|| panic!("ARG {name} with a default"))
            .to_owned()
    };
    let rust = arg("RUST_IMAGE");
    let version = rust
        .split(':')
        .nth(1)
        .and_then(|tag| tag.split('-').next())
        .unwrap();
    assert_eq!(
        version.split('.').count(),
        3,
        "exact Rust release in {rust}"
    );
    assert!(arg("RUNTIME_IMAGE").starts_with("gcr.io/distroless/cc-debian12"));
    assert!(
        rust.contains("bookworm"),
        "build on the runtime's Debian release (glibc) : {rust}"
    );

    // The runtime stage: the binary, root, exec-form entrypoint (no shell in the image).
    let runtime = text.split("FROM ${RUNTIME_IMAGE}").nth(1).unwrap();
    assert!(runtime.contains("COPY --from=build /out/tasksentry /tasksentry"));
    assert!(!runtime.contains("RUN "), "no RUN in a shell-less image");
    let user = runtime
        .lines()
        .filter_map(|l| l.strip_prefix("USER "))
        .next_back()
        .unwrap();
    assert!(user == "0" || user.starts_with("0:"), "{user}");
    assert_eq!(
        runtime.lines().rfind(|l| l.starts_with("ENTRYPOINT")),
        Some("ENTRYPOINT [\"/tasksentry\", \"run\"]")
    );
}

#[test]
fn dockerignore_keeps_build_output_and_git_out_of_the_context() {
    let ignore = std::fs::read_to_string(repo().join(".dockerignore")).unwrap();
    let entries: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    for needed in ["target/", ".git/"] {
        assert!(entries.contains(&needed), "{needed} in .dockerignore");
    }
    // Everything cargo reads must stay in the context.
    for kept in [
        "Cargo.toml",
        "Cargo.lock",
        "src",
        "src/",
        "rules",
        "rules/",
        "benches",
        "tests",
    ] {
        assert!(!entries.contains(&kept), "{kept} must not be ignored");
    }
}
