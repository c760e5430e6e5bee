//! The Dockerfile passes hadolint (installed by `scripts/hadolint`), and has the properties the
//! packaging promises: a multi-stage build of the stripped `dist` profile, cross-compiled on the
//! builder's own platform for amd64 and arm64, exact base image versions, a distroless final
//! image whose entrypoint is the binary and whose default command is `run`, as uid 0 without a
//! shell.
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
        .replace("ENTRYPOINT [\"/tasksentry\"]", "ENTRYPOINT /tasksentry");
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
        text.contains("cargo build --profile dist --locked"),
        "the stripped dist profile, Cargo.lock authoritative"
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
    // The binary is the entrypoint and `run` the default command: `docker run IMAGE` runs the
    // sidecar, `docker run IMAGE rules test ...` (docs/service-owners.md) runs that subcommand.
    assert_eq!(
        runtime.lines().rfind(|l| l.starts_with("ENTRYPOINT")),
        Some("ENTRYPOINT [\"/tasksentry\"]")
    );
    assert_eq!(
        runtime.lines().rfind(|l| l.starts_with("CMD")),
        Some("CMD [\"run\"]")
    );
    let service_owners = std::fs::read_to_string(repo().join("docs/service-owners.md")).unwrap();
    assert!(
        service_owners.contains("rules test"),
        "the documented use of other subcommands"
    );
}

#[test]
fn the_build_stage_cross_compiles_on_the_build_platform_for_both_architectures() {
    let text = dockerfile();
    let build_from = text
        .lines()
        .find(|l| l.starts_with("FROM ") && l.ends_with(" AS build"))
        .unwrap();
    assert!(
        build_from.starts_with("FROM --platform=$BUILDPLATFORM "),
        "the build stage runs natively on the builder, not emulated: {build_from}"
    );
    let runtime_from = text
        .lines()
        .find(|l| l.starts_with("FROM ") && l.ends_with(" AS runtime"))
        .unwrap();
    assert!(
        !runtime_from.contains("--platform"),
        "the runtime stage is the target platform's: {runtime_from}"
    );
    let build = text
        .split(" AS build")
        .nth(1)
        .unwrap()
        .split(" AS runtime")
        .next()
        .unwrap();
    assert!(build.contains("ARG TARGETARCH"));
    // TARGETARCH -> Rust target, and the cross linker for each (the ECS examples run on both).
    for (arch, triple, gcc, package) in [
        (
            "arm64",
            "aarch64-unknown-linux-gnu",
            "aarch64-linux-gnu-gcc",
            "gcc-aarch64-linux-gnu=",
        ),
        (
            "amd64",
            "x86_64-unknown-linux-gnu",
            "x86_64-linux-gnu-gcc",
            "gcc-x86-64-linux-gnu=",
        ),
    ] {
        assert!(
            build.contains(&format!("{arch}) echo {triple} > /rust-target")),
            "{arch} -> {triple}"
        );
        let env = triple.replace('-', "_");
        assert!(
            build.contains(&format!("CARGO_TARGET_{}_LINKER={gcc}", env.to_uppercase())),
            "{triple} links with {gcc}"
        );
        assert!(
            build.contains(&format!("CC_{env}={gcc}")),
            "ring compiles with {gcc}"
        );
        assert!(
            build.contains(package),
            "{package} installed (pinned) when cross-compiling"
        );
    }
    assert!(build.contains("rustup target add \"$(cat /rust-target)\""));
    assert!(build.contains("--target \"$(cat /rust-target)\""));
    assert!(build.contains("target/$(cat /rust-target)/dist/tasksentry"));
    // The worker example is ARM64: the image must be buildable for it.
    let worker =
        std::fs::read_to_string(repo().join("task-definitions/worker-python-with-tasksentry.json"))
            .unwrap();
    assert!(worker.contains("\"cpuArchitecture\": \"ARM64\""));
}

#[test]
fn the_dist_profile_is_the_release_build_stripped() {
    let manifest: String = std::fs::read_to_string(repo().join("Cargo.toml")).unwrap();
    let section = manifest
        .split("[profile.dist]")
        .nth(1)
        .expect("a [profile.dist] section")
        .split("\n[")
        .next()
        .unwrap();
    let setting = |key: &str| {
        section
            .lines()
            .find_map(|l| l.trim().strip_prefix(key)?.trim().strip_prefix('='))
            .map(|v| v.trim().to_owned())
    };
    assert_eq!(setting("inherits").as_deref(), Some("\"release\""));
    assert_eq!(setting("strip").as_deref(), Some("true"));
    assert_eq!(setting("debug").as_deref(), Some("false"));
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
        "bench",
        "tests",
    ] {
        assert!(!entries.contains(&kept), "{kept} must not be ignored");
    }
}
