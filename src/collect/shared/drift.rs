//! The drift registry: which files were created or written inside each container after it
//! started, as seen by the file collector.
//!
//! fswatch records every regular file it sees created, written or moved in below a watched
//! path, by its path inside the container and by its device and inode. procscan consults the
//! registry when it reads a new process image: an executable found here was written after its
//! container started, whatever its timestamps say (`touch -d` forges mtime, and an attacker
//! cannot rely on the registry being blind to it). Each container keeps at most `capacity`
//! files; the oldest record is forgotten first. [`drift_fact`] turns the registry and the
//! executable's times into `proc.exe_written_after_start`, for procscan and the tracer alike.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use crate::event::{Process, Timestamp};
use crate::procfs::HOST_ID;

/// Files written in each container after it started.
#[derive(Debug)]
pub struct DriftRegistry {
    capacity: usize,
    inner: Mutex<HashMap<String, ContainerDrift>>,
}

#[derive(Debug, Default)]
struct ContainerDrift {
    paths: HashSet<String>,
    inodes: HashSet<(u64, u64)>,
    order: VecDeque<(String, Option<(u64, u64)>)>,
}

impl Default for DriftRegistry {
    fn default() -> Self {
        DriftRegistry::new(DEFAULT_DRIFT_CAPACITY)
    }
}

/// Files remembered per container by default.
pub(crate) const DEFAULT_DRIFT_CAPACITY: usize = 4096;

impl DriftRegistry {
    /// An empty registry that keeps at most `capacity` files per container.
    pub(crate) fn new(capacity: usize) -> DriftRegistry {
        DriftRegistry {
            capacity: capacity.max(1),
            inner: Mutex::new(HashMap::new()),
        }
    }

    /// Remembers that `path` (absolute inside the container) was written; `inode` is its
    /// `(st_dev, st_ino)` when it could be stat'ed.
    pub(crate) fn record(&self, container: &str, path: &str, inode: Option<(u64, u64)>) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let drift = inner.entry(container.to_string()).or_default();
        let new_path = drift.paths.insert(path.to_string());
        let new_inode = inode.is_some_and(|id| drift.inodes.insert(id));
        if !new_path && !new_inode {
            return;
        }
        drift.order.push_back((path.to_string(), inode));
        while drift.order.len() > self.capacity {
            if let Some((old_path, old_inode)) = drift.order.pop_front() {
                // A path or inode recorded twice stays until its last record goes.
                if !drift.order.iter().any(|(p, _)| *p == old_path) {
                    drift.paths.remove(&old_path);
                }
                if let Some(id) = old_inode
                    && !drift.order.iter().any(|(_, i)| *i == Some(id))
                {
                    drift.inodes.remove(&id);
                }
            }
        }
    }

    /// Whether the executable at `path` (inside the container) or with this inode was written
    /// after the container started.
    pub(crate) fn contains(
        &self,
        container: &str,
        path: Option<&str>,
        inode: Option<(u64, u64)>,
    ) -> bool {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(drift) = inner.get(container) else {
            return false;
        };
        path.is_some_and(|p| drift.paths.contains(p))
            || inode.is_some_and(|id| drift.inodes.contains(&id))
    }

    /// Forgets a container that is gone.
    pub(crate) fn forget(&self, container: &str) {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(container);
    }

    /// Number of files remembered for a container.
    #[cfg(test)]
    pub(crate) fn len(&self, container: &str) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(container)
            .map_or(0, |d| d.order.len())
    }
}

/// Start times derive from the boot time in whole seconds (`btime`) plus clock ticks, so a
/// container's start time can be off by up to a second: an executable's ctime must be later
/// than the start by more than this to count as written after the start (the file collector
/// covers the first second).
pub(crate) const DRIFT_CLOCK_SLACK: Duration = Duration::from_secs(1);

/// `proc.exe_written_after_start`: true when the file collector saw the executable written in
/// this container (by path inside the container or by inode; immune to forged timestamps), or
/// when the executable's inode change time (which `touch -d` cannot set) is later than the
/// container's start (`container_start`, when known) plus [`DRIFT_CLOCK_SLACK`]; false when
/// neither holds and both times are known; unknown otherwise (and outside containers).
pub(crate) fn drift_fact(
    drift: Option<&DriftRegistry>,
    container_start: Option<Timestamp>,
    container_id: &str,
    process: &Process,
    exe_id: Option<(u64, u64)>,
) -> Option<bool> {
    if container_id == HOST_ID || process.exe_from_memfd {
        return None;
    }
    if let Some(drift) = drift
        && drift.contains(container_id, process.exepath.as_deref(), exe_id)
    {
        return Some(true);
    }
    let start = container_start?;
    let ctime = process.exe_ctime?;
    Some(
        ctime.as_nanos()
            > start
                .as_nanos()
                .saturating_add(DRIFT_CLOCK_SLACK.as_nanos() as u64),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_by_path_or_inode_and_forgets_the_oldest() {
        let registry = DriftRegistry::new(2);
        registry.record("c", "/tmp/a", Some((1, 10)));
        assert!(registry.contains("c", Some("/tmp/a"), None));
        assert!(
            registry.contains("c", Some("/elsewhere"), Some((1, 10))),
            "moved file"
        );
        assert!(!registry.contains("other", Some("/tmp/a"), Some((1, 10))));
        registry.record("c", "/tmp/b", None);
        registry.record("c", "/tmp/c", None);
        assert_eq!(registry.len("c"), 2);
        assert!(!registry.contains("c", Some("/tmp/a"), Some((1, 10))));
        assert!(registry.contains("c", Some("/tmp/c"), None));
        registry.forget("c");
        assert!(!registry.contains("c", Some("/tmp/c"), None));
    }
}
