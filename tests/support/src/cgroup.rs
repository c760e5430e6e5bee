//! Fargate-like cgroups in the cgroup v1 `cpu` and `pids` hierarchies.
//!
//! On Fargate platform version 1.4 every container's cgroup path is
//! `/ecs/<32-hex task id>/<32-hex task id>-<digits>` on every v1 controller line. The harness
//! reproduces that in the two hierarchies it owns (`cpu` and `pids`) and leaves every other
//! hierarchy alone. Processes join a cgroup between fork and exec, by writing `0` (meaning
//! "the writer") to `cgroup.procs`, so that nothing they start can escape it.

use std::ffi::CString;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// The v1 hierarchies the harness places tasks in.
pub(crate) const HIERARCHIES: [&str; 2] = ["/sys/fs/cgroup/cpu", "/sys/fs/cgroup/pids"];

/// Fails with a clear message when a hierarchy the harness needs is not mounted.
pub(crate) fn check_hierarchies() -> Result<()> {
    for hierarchy in HIERARCHIES {
        if !Path::new(hierarchy).join("cgroup.procs").exists() {
            bail!(
                "the emulated task needs the cgroup v1 hierarchy {hierarchy} (mounted with \
                 its controller); it is not mounted on this machine"
            );
        }
    }
    Ok(())
}

/// One cgroup, present under the same relative path in every hierarchy of [`HIERARCHIES`].
#[derive(Debug, Clone)]
pub(crate) struct Cgroup {
    /// The path relative to each hierarchy's root, as `/proc/<pid>/cgroup` shows it.
    pub(crate) path: String,
}

impl Cgroup {
    /// Creates the cgroup (and missing parents) in every hierarchy.
    pub(crate) fn create(path: String) -> Result<Cgroup> {
        for dir in Self::dirs_of(&path) {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("creating cgroup directory {}", dir.display()))?;
        }
        Ok(Cgroup { path })
    }

    fn dirs_of(path: &str) -> Vec<PathBuf> {
        HIERARCHIES
            .iter()
            .map(|hierarchy| Path::new(hierarchy).join(path.trim_start_matches('/')))
            .collect()
    }

    /// The directories of this cgroup, one per hierarchy.
    fn dirs(&self) -> Vec<PathBuf> {
        Self::dirs_of(&self.path)
    }

    /// Makes `command`'s process join this cgroup before it execs. With `die_with_parent`, the
    /// process also gets SIGKILL when the thread that spawned it exits, so that a test process
    /// that dies without running destructors does not leave a task behind.
    pub(crate) fn join_on_exec(&self, command: &mut Command, die_with_parent: bool) {
        let files: Vec<CString> = self
            .dirs()
            .iter()
            .filter_map(|dir| {
                CString::new(
                    dir.join("cgroup.procs")
                        .into_os_string()
                        .into_encoded_bytes(),
                )
                .ok()
            })
            .collect();
        // SAFETY: the closure runs in the forked child before exec. It only calls
        // async-signal-safe system calls (open, write, close, prctl) on C strings prepared
        // before the fork, and does not allocate (`last_os_error` builds an error from errno
        // without allocating).
        unsafe {
            command.pre_exec(move || {
                for file in &files {
                    let fd = libc::open(file.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                    if fd < 0 {
                        return Err(io::Error::last_os_error());
                    }
                    let written = libc::write(fd, b"0".as_ptr().cast(), 1);
                    let error = io::Error::last_os_error();
                    libc::close(fd);
                    if written != 1 {
                        return Err(error);
                    }
                }
                if die_with_parent && libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }

    /// Removes the cgroup's directories, retrying briefly while exiting processes leave it.
    pub(crate) fn remove(&self) -> Result<()> {
        for dir in self.dirs() {
            remove_dir_retrying(&dir)?;
        }
        Ok(())
    }
}

/// `rmdir` with retries: a cgroup stays busy for a moment after its last process exited.
pub(crate) fn remove_dir_retrying(dir: &Path) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(error) if Instant::now() >= deadline => {
                let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
                bail!(
                    "removing cgroup {}: {error}; processes still in it: [{}]",
                    dir.display(),
                    procs.split_whitespace().collect::<Vec<_>>().join(" ")
                );
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}
