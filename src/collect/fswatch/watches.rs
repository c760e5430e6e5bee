//! The watch set: resolving each group's specs in a container root, following trees, sharing
//! one watch descriptor between the containers and groups that reach the same inode, and
//! keeping within the watch budget by dropping whole groups, lowest priority first.

use std::collections::HashSet;
use std::sync::Arc;

use inotify::{WatchDescriptor, WatchMask};
use tracing::warn;

use super::config::{self, Interest};
use super::{FsWatcher, resolve};
use crate::event::{Collector, Event, EventType, Internal};

/// Why a watch could not be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AddError {
    /// The path does not exist (or is not reachable) in the container.
    Missing,
    /// The watch budget or the kernel's per-user limit is exhausted.
    Limit,
    /// The group was dropped because of the limit.
    Degraded,
}

/// One user of a watch descriptor: a container, the path it was reached by, and why.
#[derive(Debug, Clone)]
pub(super) struct Owner {
    pub(super) container: Arc<str>,
    pub(super) path: String,
    pub(super) is_file: bool,
    pub(super) group: usize,
    pub(super) depth: u32,
    pub(super) interest: Interest,
    /// Watched only to notice a missing part of a pattern appearing.
    pub(super) pending: bool,
}

impl Owner {
    pub(super) fn kernel_mask(&self) -> WatchMask {
        let mut mask = self.interest.mask();
        if self.pending || self.depth > 0 {
            mask |= WatchMask::CREATE | WatchMask::MOVED_TO;
        }
        mask
    }
}

/// One inotify watch and who uses it.
#[derive(Debug)]
pub(super) struct WatchEntry {
    pub(super) inode: (u64, u64),
    pub(super) owners: Vec<Owner>,
}

impl FsWatcher {
    pub(super) fn drop_wd(&mut self, wd: WatchDescriptor) {
        if let Some(entry) = self.wds.remove(&wd) {
            self.by_inode.remove(&entry.inode);
        }
        // The inode may already be gone (IN_IGNORED): then this fails, which is fine.
        let _ = self.inotify.watches().remove(wd);
    }

    /// Resolves every spec of every non-degraded group for a container.
    pub(super) fn resolve_all(&mut self, id: &Arc<str>, out: &mut Vec<Event>) {
        let mut order: Vec<usize> = (0..self.config.groups.len()).collect();
        order.sort_by_key(|&g| std::cmp::Reverse(self.config.groups[g].priority));
        for g in order {
            for s in 0..self.config.groups[g].specs.len() {
                self.resolve_spec(id, g, s, false, out);
            }
        }
    }

    /// Resolves one spec for a container: watches its matches (and their trees) and the
    /// pending parents of missing parts. With `fresh`, content found in newly watched
    /// directories is reported as created (it appeared while nothing watched it).
    pub(super) fn resolve_spec(
        &mut self,
        id: &Arc<str>,
        group: usize,
        spec: usize,
        fresh: bool,
        out: &mut Vec<Event>,
    ) {
        if self.degraded[group] {
            return;
        }
        let Some(watched) = self.containers.get(id) else {
            return;
        };
        let spec_def = self.config.groups[group].specs[spec].clone();
        let expansion = resolve::expand(&watched.root, &spec_def.pattern);
        for path in expansion.pending {
            let owner = Owner {
                container: id.clone(),
                path,
                is_file: false,
                group,
                depth: 0,
                interest: Interest::default(),
                pending: true,
            };
            if self.add_owner(owner, out) == Err(AddError::Limit) {
                return;
            }
        }
        for path in expansion.matches {
            let added = self.add_tree(
                id,
                &path,
                group,
                spec_def.depth,
                spec_def.interest,
                fresh,
                out,
            );
            if !added {
                return;
            }
        }
    }

    /// Watches `path` and its subdirectories down to `depth`. Returns false when the limit
    /// stopped it.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn add_tree(
        &mut self,
        id: &Arc<str>,
        path: &str,
        group: usize,
        depth: u32,
        interest: Interest,
        fresh: bool,
        out: &mut Vec<Event>,
    ) -> bool {
        let owner = Owner {
            container: id.clone(),
            path: path.to_string(),
            is_file: false,
            group,
            depth,
            interest,
            pending: false,
        };
        match self.add_owner(owner, out) {
            Ok(true) => {}
            Ok(false) => return true,
            Err(AddError::Limit) | Err(AddError::Degraded) => return false,
            Err(AddError::Missing) => return true,
        }
        // Content of a directory that appeared unwatched was created (and written) while
        // nothing watched it: it is reported as created, or as written for a watch that only
        // asks for writes.
        let report_fresh = fresh && (interest.create || interest.writes);
        let needs_listing = depth > 0 || report_fresh;
        if !needs_listing {
            return true;
        }
        let Some(watched) = self.containers.get(id) else {
            return true;
        };
        let entries = resolve::list_dir(&watched.root, path);
        for (name, is_dir) in entries {
            let child = resolve::join(path, &name);
            if report_fresh && !is_dir {
                self.record_drift(id, &child);
            }
            if report_fresh && interest.create {
                let kind = if is_dir {
                    EventType::Mkdir
                } else {
                    EventType::Creat
                };
                let event = self.file_event(kind, id, &child, None, is_dir);
                out.push(event);
            } else if report_fresh && !is_dir {
                let mut event = self.file_event(EventType::Open, id, &child, None, false);
                if let Some(fd) = event.fd.as_mut() {
                    fd.open_write = Some(true);
                    fd.open_read = Some(false);
                }
                out.push(event);
            }
            if is_dir
                && depth > 0
                && !self.add_tree(id, &child, group, depth - 1, interest, fresh, out)
            {
                return false;
            }
        }
        true
    }

    /// Adds one owner to the watch of its path. Returns whether the owner is new for a
    /// directory (so its tree should be walked); `Ok(false)` for a file or a known owner.
    fn add_owner(&mut self, owner: Owner, out: &mut Vec<Event>) -> Result<bool, AddError> {
        if self.degraded[owner.group] {
            return Err(AddError::Degraded);
        }
        let Some(watched) = self.containers.get(&owner.container) else {
            return Err(AddError::Missing);
        };
        let fd = resolve::open_in_root(&watched.root, &owner.path).ok_or(AddError::Missing)?;
        let stat = resolve::fstat(&fd).ok_or(AddError::Missing)?;
        let inode = (stat.st_dev, stat.st_ino);
        let is_dir = resolve::is_dir_mode(stat.st_mode);
        let mut owner = owner;
        if !is_dir {
            if owner.pending {
                return Err(AddError::Missing);
            }
            owner.is_file = true;
            owner.depth = 0;
        }
        if let Some(wd) = self.by_inode.get(&inode).cloned()
            && let Some(entry) = self.wds.get(&wd)
        {
            let known = entry.owners.iter().any(|o| {
                o.container == owner.container
                    && o.group == owner.group
                    && o.pending == owner.pending
                    && o.depth >= owner.depth
            });
            if known {
                return Ok(false);
            }
            let mask = owner.kernel_mask() | WatchMask::MASK_ADD | WatchMask::EXCL_UNLINK;
            if self
                .inotify
                .watches()
                .add(resolve::fd_path(&fd), mask)
                .is_err()
            {
                return Err(AddError::Missing);
            }
            // A path reached through another name (a symlinked directory) keeps the first
            // name for this container's events.
            if let Some(first) = entry.owners.iter().find(|o| o.container == owner.container) {
                owner.path = first.path.clone();
            }
            if let Some(entry) = self.wds.get_mut(&wd) {
                entry.owners.push(owner);
            }
            return Ok(is_dir);
        }
        loop {
            if self.wds.len() < self.budget {
                let mask = owner.kernel_mask() | WatchMask::MASK_ADD | WatchMask::EXCL_UNLINK;
                match self.inotify.watches().add(resolve::fd_path(&fd), mask) {
                    Ok(wd) => {
                        self.by_inode.insert(inode, wd.clone());
                        self.wds.insert(
                            wd,
                            WatchEntry {
                                inode,
                                owners: vec![owner],
                            },
                        );
                        return Ok(is_dir);
                    }
                    Err(error) if error.raw_os_error() == Some(libc::ENOSPC) => {}
                    Err(_) => return Err(AddError::Missing),
                }
            }
            // Out of watches: drop the lowest-priority group below this one, if any.
            if !self.degrade_below(self.config.groups[owner.group].priority, out) {
                self.stats.limited_watches += 1;
                self.report_limited(&owner.container, owner.group, out);
                return Err(AddError::Limit);
            }
        }
    }

    /// Drops the lowest-priority group (with watches) whose priority is below `priority`.
    fn degrade_below(&mut self, priority: u8, out: &mut Vec<Event>) -> bool {
        let mut in_use = vec![false; self.config.groups.len()];
        for entry in self.wds.values() {
            for owner in &entry.owners {
                in_use[owner.group] = true;
            }
        }
        let victim = (0..self.config.groups.len())
            .filter(|&g| {
                !self.degraded[g] && in_use[g] && self.config.groups[g].priority < priority
            })
            .min_by_key(|&g| self.config.groups[g].priority);
        let Some(victim) = victim else {
            return false;
        };
        self.degraded[victim] = true;
        let mut unused = Vec::new();
        let mut dropped = 0u64;
        for (wd, entry) in &mut self.wds {
            let before = entry.owners.len();
            entry.owners.retain(|o| o.group != victim);
            if entry.owners.len() != before && entry.owners.is_empty() {
                unused.push(wd.clone());
                dropped += 1;
            }
        }
        for wd in unused {
            self.drop_wd(wd);
        }
        let name = self.config.groups[victim].name.clone();
        let paths = config::describe_specs(&self.config.groups[victim]);
        if self.last_warning.ready() {
            warn!(group = %name, dropped, budget = self.budget, "inotify watch limit reached; dropping a watch group.");
        }
        let mut event = Event::new(EventType::Tasksentry, Collector::Fswatch);
        event.internal = Some(Box::new(Internal {
            kind: "watch_limit".into(),
            message: format!(
                "inotify watch limit reached (budget {}): the watch group {name} ({paths}) is no longer watched in any container ({dropped} watches removed) to make room for higher-priority groups",
                self.budget
            ),
            count: Some(dropped),
        }));
        out.push(event);
        true
    }

    /// Reports `watch_lost` for each watch root among `lost` (the owners of a watch the
    /// kernel dropped) that is still not watched after re-resolving: a watched directory or
    /// file itself was deleted or unmounted, not an entry below a watched tree (whose parent
    /// still watches it) and not a file replaced by a rename (watched again at once).
    pub(super) fn report_lost_roots(&mut self, lost: &[Owner], out: &mut Vec<Event>) {
        let mut reported = HashSet::new();
        for owner in lost.iter().filter(|o| !o.pending) {
            let Some(watched) = self.containers.get(&owner.container) else {
                continue;
            };
            let watched_again = self.wds.values().any(|entry| {
                entry
                    .owners
                    .iter()
                    .any(|o| !o.pending && o.container == owner.container && o.path == owner.path)
            });
            let parent = match owner.path.rfind('/') {
                Some(0) => "/".to_string(),
                Some(i) => owner.path[..i].to_string(),
                None => continue,
            };
            let below_watched_tree = self.wds.values().any(|entry| {
                entry.owners.iter().any(|o| {
                    !o.pending
                        && o.container == owner.container
                        && o.group == owner.group
                        && o.depth > 0
                        && o.path == parent
                })
            });
            if watched_again
                || below_watched_tree
                || !reported.insert((owner.container.clone(), owner.path.clone()))
            {
                continue;
            }
            let group = self.config.groups[owner.group].name.clone();
            if self.last_warning.ready() {
                warn!(container = %owner.container, path = %owner.path, group = %group, "A watched path disappeared; its watch is lost.");
            }
            let mut event = Event::new(EventType::Tasksentry, Collector::Fswatch);
            event.container = Some(Box::new(watched.container.clone()));
            event.evt.args = vec![
                ("path".to_owned(), owner.path.clone()),
                ("group".to_owned(), group.clone()),
                ("collector".to_owned(), "fswatch".to_owned()),
            ];
            event.internal = Some(Box::new(Internal {
                kind: "watch_lost".into(),
                message: format!(
                    "the watched path {} (group {group}) of container {} was deleted or unmounted: its inotify watch is gone; it is watched again if it reappears",
                    owner.path, owner.container
                ),
                count: Some(1),
            }));
            out.push(event);
        }
    }

    fn report_limited(&mut self, id: &Arc<str>, group: usize, out: &mut Vec<Event>) {
        let name = self.config.groups[group].name.clone();
        let paths = config::describe_specs(&self.config.groups[group]);
        let Some(watched) = self.containers.get_mut(id) else {
            return;
        };
        if !watched.limited.insert(group) {
            return;
        }
        let mut event = Event::new(EventType::Tasksentry, Collector::Fswatch);
        event.container = Some(Box::new(watched.container.clone()));
        event.internal = Some(Box::new(Internal {
            kind: "watch_limit".into(),
            message: format!(
                "inotify watch limit reached (budget {}): the watch group {name} ({paths}) is not fully watched in container {id}",
                self.budget
            ),
            count: None,
        }));
        out.push(event);
    }
}
