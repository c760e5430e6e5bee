//! After an inotify queue overflow: every watch is re-added and the files changed since
//! shortly before the overflow are reported as `open` writes with `evt.arg.rescan=overflow`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::{FsWatcher, resolve};
use crate::event::{Collector, Event, EventType, Internal};

impl FsWatcher {
    /// Whether a rescan is due (after an overflow).
    pub(crate) fn rescan_needed(&self) -> bool {
        self.rescan_needed
    }

    /// Re-adds every watch and reports files changed since shortly before the last overflow.
    pub(crate) fn rescan(&mut self, out: &mut Vec<Event>) {
        self.rescan_needed = false;
        self.stats.rescans += 1;
        // Events already queued (and any pending halves) belong to before the rescan.
        self.flush_opens(Duration::ZERO, out);
        let since = self
            .last_clean_read
            .as_nanos()
            .saturating_sub(1_000_000_000);
        let ids: Vec<Arc<str>> = self.containers.keys().cloned().collect();
        for id in &ids {
            self.resolve_all(id, out);
        }
        // Directories whose changes are reported, per container.
        let mut dirs: Vec<(Arc<str>, String)> = self
            .wds
            .values()
            .flat_map(|e| {
                e.owners
                    .iter()
                    .filter(|o| !o.is_file && o.interest.content_appears())
                    .map(|o| (o.container.clone(), o.path.clone()))
            })
            .collect();
        dirs.sort();
        dirs.dedup();
        let mut reported: HashMap<Arc<str>, usize> = HashMap::new();
        let mut over_limit: HashMap<Arc<str>, u64> = HashMap::new();
        for (id, dir) in dirs {
            let Some(watched) = self.containers.get(&id) else {
                continue;
            };
            let Some(dir_fd) = resolve::open_in_root(&watched.root, &dir) else {
                continue;
            };
            let Ok(entries) = std::fs::read_dir(resolve::fd_path(&dir_fd)) else {
                continue;
            };
            let mut changed = Vec::new();
            for entry in entries.flatten().take(resolve::MAX_ENTRIES_PER_DIR) {
                let Ok(meta) = entry.metadata() else {
                    continue;
                };
                if !meta.is_file() {
                    continue;
                }
                let ctime = std::os::unix::fs::MetadataExt::ctime(&meta);
                let ctime_ns = u64::try_from(ctime)
                    .unwrap_or(0)
                    .saturating_mul(1_000_000_000);
                if ctime_ns >= since
                    && let Some(name) = entry.file_name().to_str()
                {
                    changed.push(resolve::join(&dir, name));
                }
            }
            for path in changed {
                let count = reported.entry(id.clone()).or_default();
                if *count >= self.config.rescan_report_limit {
                    *over_limit.entry(id.clone()).or_default() += 1;
                    continue;
                }
                *count += 1;
                self.record_drift(&id, &path);
                let mut event = self.build_event(EventType::Open, &id, &path, None, false, None);
                if let Some(fd) = event.fd.as_mut() {
                    fd.open_write = Some(true);
                    fd.open_read = Some(false);
                }
                event.evt.args.push(("rescan".into(), "overflow".into()));
                out.push(event);
            }
        }
        for (id, count) in over_limit {
            let mut event = Event::new(EventType::Tasksentry, Collector::Fswatch);
            event.container = self
                .containers
                .get(&id)
                .map(|w| Box::new(w.container.clone()));
            event.internal = Some(Box::new(Internal {
                kind: "inotify_rescan_truncated".into(),
                message: format!(
                    "after an inotify overflow, {count} more changed files in container {id} were not reported individually"
                ),
                count: Some(count),
            }));
            out.push(event);
        }
    }
}
