//! Best-effort attribution of file events to processes.
//!
//! inotify does not say who touched a file. When an event arrives, the collector looks for a
//! process of the same container holding a descriptor on that path: it reads
//! `/proc/<pid>/fd` of all the container's live processes at once into an index (path ->
//! processes), and reuses the index for events arriving within `refresh`; a path missing from
//! an older index triggers a rebuild, at most once per `refresh`, so a burst of events costs
//! one pass over the container's descriptors per period. When several processes hold the path
//! (a shell and the children that inherited its descriptor), the oldest one is chosen: it is
//! usually the one that opened it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::collect::shared::{ProcKey, Tables};

/// Most descriptors read per process.
const MAX_FDS_PER_PROCESS: usize = 4096;

#[derive(Debug)]
struct Index {
    built: Instant,
    by_path: HashMap<String, Vec<ProcKey>>,
}

/// Per-container descriptor indexes.
#[derive(Debug, Default)]
pub(crate) struct Attributor {
    indexes: HashMap<String, Index>,
    /// Index rebuilds done (for the benchmark and tests).
    pub(crate) rebuilds: u64,
}

impl Attributor {
    /// The process of `container` holding `path`, if one is found.
    pub(crate) fn find(
        &mut self,
        tables: &Tables,
        proc_root: &Path,
        container: &str,
        path: &str,
        refresh: Duration,
        max_processes: usize,
    ) -> Option<ProcKey> {
        let now = Instant::now();
        let stale = self
            .indexes
            .get(container)
            .is_none_or(|index| now.saturating_duration_since(index.built) >= refresh);
        let found = self
            .indexes
            .get(container)
            .and_then(|index| pick(tables, index.by_path.get(path)?));
        if found.is_some() || !stale {
            return found;
        }
        let index = build(tables, proc_root, container, max_processes);
        self.rebuilds += 1;
        let found = index.by_path.get(path).and_then(|keys| pick(tables, keys));
        self.indexes.insert(container.to_string(), index);
        found
    }

    /// Forgets a container.
    pub(crate) fn forget(&mut self, container: &str) {
        self.indexes.remove(container);
    }
}

fn pick(tables: &Tables, keys: &[ProcKey]) -> Option<ProcKey> {
    keys.iter()
        .filter(|key| tables.processes.get(key).is_some())
        .min_by_key(|key| key.start_ticks)
        .copied()
}

fn build(tables: &Tables, proc_root: &Path, container: &str, max_processes: usize) -> Index {
    let mut by_path: HashMap<String, Vec<ProcKey>> = HashMap::new();
    let members = tables
        .processes
        .live()
        .filter(|(_, entry)| entry.excluded.is_none() && &*entry.container_id == container)
        .take(max_processes);
    let access = crate::collect::access::Access::current();
    for (key, _) in members {
        let dir = proc_root.join(key.pid.to_string()).join("fd");
        // Another user's descriptor links are read as that user where the monitor lacks
        // CAP_SYS_PTRACE (see `collect::access`).
        let owner = if access.may_switch() {
            crate::collect::access::dir_owner(proc_root, key.pid)
        } else {
            None
        };
        let links: Vec<PathBuf> = access.as_owner(owner, || {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                return Vec::new();
            };
            entries
                .flatten()
                .take(MAX_FDS_PER_PROCESS)
                .filter_map(|entry| std::fs::read_link(entry.path()).ok())
                .collect()
        });
        for target in links {
            let Some(target) = target.to_str() else {
                continue;
            };
            if !target.starts_with('/') || target.ends_with(" (deleted)") {
                continue;
            }
            let keys = by_path.entry(target.to_string()).or_default();
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
    }
    Index {
        built: Instant::now(),
        by_path,
    }
}
