//! Small C programs under `tests/programs/`, compiled on demand with `cc -static -O2`.
//!
//! Static binaries need nothing from a container's root file system, so they can be copied
//! into a busybox root and exec'd there. Builds are cached by source content in a directory
//! shared by all test processes (`<cache>/<name>-<source hash>/<name>`, so that a program run
//! from the cache has its own name as its process name); a build writes a private file and
//! renames it into place, so parallel tests never see a half-written binary.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The directory holding the C sources.
fn source_dir() -> PathBuf {
    crate::repo_path("tests/programs")
}

/// The cache: `<target dir>/tmp/programs-by-name`, Cargo's `CARGO_TARGET_TMPDIR` (the earlier
/// flat layout, `programs/<name>-<hash>` files, may still be in a developer's target
/// directory, where its files would block these directories).
fn cache_dir() -> Result<PathBuf> {
    let profile = crate::profile_dir()?;
    let target = profile.parent().unwrap_or(&profile);
    Ok(target.join("tmp/programs-by-name"))
}

/// Returns the path of the static binary built from `tests/programs/<name>.c`, building it
/// first when the cache has no build of the current source.
pub fn program(name: &str) -> Result<PathBuf> {
    let source = source_dir().join(format!("{name}.c"));
    let text = std::fs::read(&source)
        .with_context(|| format!("reading test program source {}", source.display()))?;
    let mut hasher = DefaultHasher::new();
    text.hash(&mut hasher);
    let dir = cache_dir()?.join(format!("{name}-{:016x}", hasher.finish()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let out = dir.join(name);
    if out.exists() {
        return Ok(out);
    }
    let tmp = dir.join(format!(
        ".{name}-{}-{}.tmp",
        std::process::id(),
        crate::random_hex(4)
    ));
    let output = Command::new("cc")
        .args(["-static", "-O2", "-Wall", "-o"])
        .arg(&tmp)
        .arg(&source)
        .output()
        .context("running cc (is a C compiler with static glibc installed?)")?;
    if !output.status.success() {
        let _ = std::fs::remove_file(&tmp);
        bail!(
            "cc -static failed for {}: {}\n{}",
            source.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    std::fs::rename(&tmp, &out).with_context(|| format!("installing {}", out.display()))?;
    Ok(out)
}
