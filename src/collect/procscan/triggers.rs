//! inotify triggers: an exec somewhere in the task makes the scanner look at `/proc` at once
//! instead of at the next poll.
//!
//! For every monitored container, through its root `/proc/<root_pid>/root`, the scanner
//! watches with `IN_OPEN`: the loader cache `/etc/ld.so.cache`, the dynamic loaders
//! (`ld-linux*`, `ld-musl*`, `ld64.so*` found in `/lib`, `/lib64`, `/usr/lib`, `/usr/lib64`
//! and their multiarch directories) and the PATH directories (`/bin`, `/usr/bin`, `/sbin`,
//! `/usr/sbin`, `/usr/local/bin`, `/usr/local/sbin`). Verified on this kernel: `execve` of
//! `/usr/bin/true` reports `IN_OPEN` with name `true` on a watch of the directory `/usr/bin`
//! (the kernel opens the binary), then `IN_OPEN` on the loader and on `ld.so.cache`; a static
//! binary reports only the directory event. `IN_ACCESS` adds one event per read of those files
//! and nothing new, so it is not used. The directory event comes before the exec is
//! committed, which is why the scanner waits a little (`trigger_delay`) before scanning and
//! why young processes are re-checked on later scans anyway.
//!
//! inotify watches inodes: several containers sharing a file share one watch descriptor, so
//! descriptors are reference-counted per container. The per-user watch limit cannot be raised
//! on Fargate; when it is hit the scanner reports it once and keeps polling.
//!
//! Other collectors can follow the triggers through an [`ExecSignal`]: the scanner raises it
//! whenever it drains trigger events.

use std::collections::{HashMap, HashSet};
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;
use std::sync::Arc;

use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};

use crate::collect::shared::ExecSignal;

/// PATH directories watched in every container (relative to its root).
pub(crate) const PATH_DIRS: &[&str] = &[
    "bin",
    "usr/bin",
    "sbin",
    "usr/sbin",
    "usr/local/bin",
    "usr/local/sbin",
];

/// Directories searched for dynamic loaders (relative to a container root).
pub(crate) const LOADER_DIRS: &[&str] = &[
    "lib",
    "lib64",
    "usr/lib",
    "usr/lib64",
    "lib/x86_64-linux-gnu",
    "usr/lib/x86_64-linux-gnu",
    "lib/aarch64-linux-gnu",
    "usr/lib/aarch64-linux-gnu",
];

/// Whether a file name in a library directory is a dynamic loader.
pub(crate) fn is_loader_name(name: &str) -> bool {
    (name.starts_with("ld-linux") || name.starts_with("ld-musl") || name.starts_with("ld64.so"))
        && name.contains(".so")
}

/// The paths (relative to a container root) to watch: the loader cache, the loaders found,
/// and the PATH directories.
pub(crate) fn watch_paths(root: &Path) -> Vec<std::path::PathBuf> {
    let mut paths = vec![root.join("etc/ld.so.cache")];
    for dir in LOADER_DIRS {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for entry in entries.flatten().take(10_000) {
            if is_loader_name(&entry.file_name().to_string_lossy()) {
                paths.push(entry.path());
            }
        }
    }
    paths.extend(PATH_DIRS.iter().map(|dir| root.join(dir)));
    paths
}

/// Outcome of adding a container's watches.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct AddOutcome {
    /// Watches that now cover this container (shared ones included).
    pub watches: usize,
    /// The per-user watch limit was hit (`ENOSPC`).
    pub(crate) limit_hit: bool,
}

/// The trigger inotify instance and its watches.
#[derive(Debug)]
pub(crate) struct Triggers {
    inotify: Inotify,
    owners: HashMap<WatchDescriptor, HashSet<Arc<str>>>,
    by_container: HashMap<Arc<str>, Vec<WatchDescriptor>>,
    buf: Vec<u8>,
    signal: Option<ExecSignal>,
}

impl Triggers {
    /// A new inotify instance (non-blocking, close-on-exec).
    pub(crate) fn new() -> io::Result<Triggers> {
        Ok(Triggers {
            inotify: Inotify::init()?,
            owners: HashMap::new(),
            by_container: HashMap::new(),
            buf: vec![0; 16 * 1024],
            signal: None,
        })
    }

    /// Raises `signal` whenever [`Triggers::drain`] reads events (or fails to read them).
    pub(crate) fn set_signal(&mut self, signal: ExecSignal) {
        self.signal = Some(signal);
    }

    /// The inotify descriptor, to poll on.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.inotify.as_fd()
    }

    /// Whether a container has watches.
    pub(crate) fn is_watched(&self, id: &str) -> bool {
        self.by_container.contains_key(id)
    }

    /// Ids of containers with watches.
    pub(crate) fn watched(&self) -> impl Iterator<Item = &Arc<str>> {
        self.by_container.keys()
    }

    /// Number of distinct watch descriptors.
    #[cfg(test)]
    pub(crate) fn watch_count(&self) -> usize {
        self.owners.len()
    }

    /// Adds the watches for a container whose root is `root` (`/proc/<root_pid>/root`).
    pub(crate) fn add_container(&mut self, id: Arc<str>, root: &Path) -> AddOutcome {
        let mut outcome = AddOutcome::default();
        let mut wds = Vec::new();
        for path in watch_paths(root) {
            match self.inotify.watches().add(&path, WatchMask::OPEN) {
                Ok(wd) => {
                    if self
                        .owners
                        .entry(wd.clone())
                        .or_default()
                        .insert(id.clone())
                    {
                        wds.push(wd);
                    }
                }
                Err(error) if error.raw_os_error() == Some(libc::ENOSPC) => {
                    outcome.limit_hit = true;
                    break;
                }
                // Missing paths are normal (not every image has every directory).
                Err(_) => {}
            }
        }
        outcome.watches = wds.len();
        self.by_container.entry(id).or_default().extend(wds);
        outcome
    }

    /// Drops a container's watches (a watch shared with another container stays).
    pub(crate) fn remove_container(&mut self, id: &str) {
        let Some(wds) = self.by_container.remove(id) else {
            return;
        };
        for wd in wds {
            let Some(owners) = self.owners.get_mut(&wd) else {
                continue;
            };
            owners.remove(id);
            if owners.is_empty() {
                self.owners.remove(&wd);
                // The inode may already be gone (IN_IGNORED), which makes this fail: fine.
                let _ = self.inotify.watches().remove(wd);
            }
        }
    }

    /// Reads every pending event without blocking. Returns how many were read (an overflow
    /// counts as one: the scan that follows covers whatever was lost). Raises the
    /// [`ExecSignal`], if any, when there were events or the read failed.
    pub(crate) fn drain(&mut self) -> io::Result<usize> {
        let result = self.drain_events();
        if let Some(signal) = &self.signal
            && !matches!(result, Ok(0))
        {
            signal.raise();
        }
        result
    }

    fn drain_events(&mut self) -> io::Result<usize> {
        let mut count = 0;
        loop {
            let events = match self.inotify.read_events(&mut self.buf) {
                Ok(events) => events,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Ok(count),
                Err(error) => return Err(error),
            };
            let mut ignored = Vec::new();
            for event in events {
                count += 1;
                if event.mask.contains(EventMask::IGNORED) {
                    ignored.push(event.wd.clone());
                }
            }
            for wd in ignored {
                // The kernel dropped the watch (file deleted, filesystem unmounted).
                if let Some(owners) = self.owners.remove(&wd) {
                    for owner in owners {
                        if let Some(list) = self.by_container.get_mut(&owner) {
                            list.retain(|w| *w != wd);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn loader_names() {
        for name in [
            "ld-linux-x86-64.so.2",
            "ld-musl-x86_64.so.1",
            "ld-linux-aarch64.so.1",
            "ld64.so.2",
        ] {
            assert!(is_loader_name(name), "{name}");
        }
        for name in ["libc.so.6", "ld.so.conf", "ldconfig", "ld-linux"] {
            assert!(!is_loader_name(name), "{name}");
        }
    }

    #[test]
    fn exec_in_a_watched_container_root_triggers() {
        // A fake container root with a bin directory and a loader cache.
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("bin")).unwrap();
        std::fs::create_dir_all(root.path().join("etc")).unwrap();
        std::fs::create_dir_all(root.path().join("lib")).unwrap();
        std::fs::write(root.path().join("etc/ld.so.cache"), b"cache").unwrap();
        std::fs::write(root.path().join("lib/ld-musl-x86_64.so.1"), b"elf").unwrap();
        std::fs::copy("/bin/true", root.path().join("bin/true")).unwrap();
        let mut triggers = Triggers::new().unwrap();
        let outcome = triggers.add_container(Arc::from("c1"), root.path());
        assert_eq!(outcome.watches, 3, "{outcome:?}");
        assert_eq!(triggers.drain().unwrap(), 0);

        let status = std::process::Command::new(root.path().join("bin/true"))
            .status()
            .unwrap();
        assert!(status.success());
        assert!(triggers.drain().unwrap() >= 1, "exec must trigger");

        // Opening the loader cache (what every dynamic exec does) triggers too.
        std::fs::read(root.path().join("etc/ld.so.cache")).unwrap();
        assert!(triggers.drain().unwrap() >= 1);

        // A second container sharing the same inodes shares the watches.
        triggers.add_container(Arc::from("c2"), root.path());
        assert_eq!(triggers.watch_count(), 3);
        triggers.remove_container("c1");
        assert_eq!(triggers.watch_count(), 3, "still used by c2");
        triggers.remove_container("c2");
        assert_eq!(triggers.watch_count(), 0);
        std::fs::read(root.path().join("etc/ld.so.cache")).unwrap();
        // Removing watches queues IN_IGNORED events but no more opens.
        let _ = triggers.drain().unwrap();
        std::fs::read(root.path().join("etc/ld.so.cache")).unwrap();
        assert_eq!(triggers.drain().unwrap(), 0);
    }
}
