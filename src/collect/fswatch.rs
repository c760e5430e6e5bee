//! The fswatch collector: inotify watches inside every container's file system.
//!
//! For every container in procscan's [`ContainerTable`](super::ContainerTable) (not the
//! monitor's own, not the pause container), the collector opens the container root
//! `/proc/<root_pid>/root` once and places the watch set of [`FsWatchConfig::groups`] below it,
//! resolving every path inside that root (see [`resolve`]). Watches follow new subdirectories
//! of recursive specs, and a pattern whose path does not exist yet (`/root/.ssh`,
//! `/var/spool/cron`) gets a creation watch on its deepest existing parent so it is picked up
//! when it appears. Containers that go lose their watches.
//!
//! Events (`evt.type`, `fd.name` inside the container, `container`): `creat`, `mkdir`,
//! `unlinkat`, `renameat` (`IN_MOVED_FROM`/`IN_MOVED_TO` paired by cookie; an unpaired half
//! is a move into or out of the watched tree), `chmod` (`IN_ATTRIB`, the new mode read from
//! the file and rendered in `evt.arg.mode` the way Falco does: `04755(S_ISUID|S_IRUSR|...)`),
//! and `open` for content reads and writes, coalesced per path over `coalesce_window` so that
//! one write is one event. A process holding the path open in the same container is attached
//! when found (see [`attribution`]); otherwise `proc` is absent.
//!
//! Limits: the per-user watch count (`max_user_watches`) cannot be raised on Fargate. The
//! collector keeps within a budget and, when it is exhausted, drops whole groups by priority
//! (lowest first) and reports it as `tasksentry`/`watch_limit`. A queue overflow is reported as
//! `tasksentry`/`inotify_overflow` and followed by a rescan: watches are re-added and files
//! changed since shortly before the overflow are reported as `open` writes with
//! `evt.arg.rescan=overflow`.
//!
//! Drift: every regular file created, written or moved in below a watched path is recorded in
//! the shared [`DriftRegistry`] so that procscan can mark a later exec of it with
//! `proc.exe_written_after_start`.

pub mod attribution;
pub mod config;
pub mod drift;
pub mod resolve;

use super::sender::DropCountingSender;
use std::collections::{HashMap, HashSet};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::SyncSender;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};
use tracing::{info, warn};

pub use attribution::Attributor;
pub use config::{
    FsWatchConfig, Interest, UserWatch, WatchGroup, WatchSetError, WatchSpec, build_groups,
    default_groups,
};
pub use drift::DriftRegistry;

use super::cgroup::HOST_ID;
use super::table::{ExecImages, ProcKey, SharedTables, Tables};
use crate::event::{Collector, Container, Event, EventType, Fd, FdKind, Internal, Timestamp};

/// Errors starting the fswatch collector.
#[derive(Debug, thiserror::Error)]
pub enum FsWatchError {
    /// No inotify instance could be created (`max_user_instances` reached, for example).
    #[error("cannot create an inotify instance for file watches: {source}")]
    Inotify {
        /// The underlying error.
        source: io::Error,
    },
}

/// Why a watch could not be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AddError {
    /// The path does not exist (or is not reachable) in the container.
    Missing,
    /// The watch budget or the kernel's per-user limit is exhausted.
    Limit,
    /// The group was dropped because of the limit.
    Degraded,
}

/// One user of a watch descriptor: a container, the path it was reached by, and why.
#[derive(Debug, Clone)]
struct Owner {
    container: Arc<str>,
    path: String,
    is_file: bool,
    group: usize,
    depth: u32,
    interest: Interest,
    /// Watched only to notice a missing part of a pattern appearing.
    pending: bool,
}

impl Owner {
    fn kernel_mask(&self) -> WatchMask {
        let mut mask = self.interest.mask();
        if self.pending || self.depth > 0 {
            mask |= WatchMask::CREATE | WatchMask::MOVED_TO;
        }
        mask
    }
}

/// How one container sees a watched directory or file.
struct View {
    container: Arc<str>,
    path: String,
    is_file: bool,
    interest: Interest,
    trees: Vec<(usize, u32, Interest)>,
}

#[derive(Debug)]
struct WatchEntry {
    inode: (u64, u64),
    owners: Vec<Owner>,
}

struct Watched {
    root: OwnedFd,
    /// Device and inode of the root when it was opened: a container's first process can
    /// appear (in the container's cgroup) before it has switched to the container's root
    /// (`pivot_root` in runc's init or the test harness), so the root is re-checked.
    root_id: (u64, u64),
    container: Container,
    /// Groups of this container that could not be fully watched, already reported.
    limited: HashSet<usize>,
}

#[derive(Debug)]
struct PendingOpen {
    first: Instant,
    read: bool,
    write: bool,
    proc: Option<ProcKey>,
}

#[derive(Debug)]
struct PendingMove {
    at: Instant,
    container: Arc<str>,
    path: String,
    is_dir: bool,
    changes: bool,
}

/// Counters about the collector's work.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FsWatchStats {
    /// Raw inotify events read.
    pub raw_events: u64,
    /// Events produced.
    pub events: u64,
    /// Queue overflows seen.
    pub overflows: u64,
    /// Rescans done.
    pub rescans: u64,
    /// Watches that could not be added because of the limit.
    pub limited_watches: u64,
}

/// The fswatch core. Single-threaded; feed it containers and call [`FsWatcher::poll`].
pub struct FsWatcher {
    config: FsWatchConfig,
    inotify: Inotify,
    buf: Vec<u8>,
    budget: usize,
    containers: HashMap<Arc<str>, Watched>,
    wds: HashMap<WatchDescriptor, WatchEntry>,
    by_inode: HashMap<(u64, u64), WatchDescriptor>,
    degraded: Vec<bool>,
    moves: HashMap<u32, PendingMove>,
    opens: HashMap<(Arc<str>, String), PendingOpen>,
    attributor: Attributor,
    drift: Arc<DriftRegistry>,
    tables: Option<SharedTables>,
    /// When the last read that drained the queue without an overflow started: events lost
    /// to a later overflow happened after it.
    last_clean_read: Timestamp,
    rescan_needed: bool,
    stats: FsWatchStats,
    last_warning: Option<Instant>,
}

impl std::fmt::Debug for FsWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FsWatcher")
            .field("containers", &self.containers.len())
            .field("watches", &self.wds.len())
            .field("budget", &self.budget)
            .field("stats", &self.stats)
            .finish()
    }
}

/// The most pending coalesced opens before they are flushed early.
const MAX_PENDING_OPENS: usize = 16_384;

/// How long the first half of a rename waits for its second half.
const MOVE_PAIR_WINDOW: Duration = Duration::from_millis(50);

/// Reads `/proc/sys/fs/inotify/max_user_watches` under the proc root.
pub fn max_user_watches(proc_root: &Path) -> Option<usize> {
    std::fs::read_to_string(proc_root.join("sys/fs/inotify/max_user_watches"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

impl FsWatcher {
    /// A new collector core. `tables` (procscan's shared tables) is used for process
    /// attribution; `drift` receives written files.
    pub fn new(
        config: FsWatchConfig,
        tables: Option<SharedTables>,
        drift: Arc<DriftRegistry>,
    ) -> Result<FsWatcher, FsWatchError> {
        let inotify = Inotify::init().map_err(|source| FsWatchError::Inotify { source })?;
        let budget = config.max_watches.unwrap_or_else(|| {
            max_user_watches(&config.proc_root)
                .or_else(|| max_user_watches(Path::new("/proc")))
                .map_or(4096, |max| max / 2)
        });
        Ok(FsWatcher {
            degraded: vec![false; config.groups.len()],
            config,
            inotify,
            buf: vec![0; 256 * 1024],
            budget,
            containers: HashMap::new(),
            wds: HashMap::new(),
            by_inode: HashMap::new(),
            moves: HashMap::new(),
            opens: HashMap::new(),
            attributor: Attributor::default(),
            drift,
            tables,
            last_clean_read: Timestamp::now(),
            rescan_needed: false,
            stats: FsWatchStats::default(),
            last_warning: None,
        })
    }

    /// The inotify descriptor, to poll on.
    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.inotify.as_fd()
    }

    /// Number of watch descriptors held.
    pub fn watch_count(&self) -> usize {
        self.wds.len()
    }

    /// The watch budget.
    pub fn budget(&self) -> usize {
        self.budget
    }

    /// Counters.
    pub fn stats(&self) -> &FsWatchStats {
        &self.stats
    }

    /// Ids of watched containers.
    pub fn watched_containers(&self) -> Vec<String> {
        self.containers.keys().map(|k| k.to_string()).collect()
    }

    /// Watches per group name that cover `container` (a watch shared by groups counts for
    /// each).
    pub fn watches_by_group(&self, container: &str) -> Vec<(String, usize)> {
        let mut counts = vec![0usize; self.config.groups.len()];
        for entry in self.wds.values() {
            let mut seen = HashSet::new();
            for owner in &entry.owners {
                if &*owner.container == container && seen.insert(owner.group) {
                    counts[owner.group] += 1;
                }
            }
        }
        self.config
            .groups
            .iter()
            .zip(counts)
            .map(|(g, n)| (g.name.clone(), n))
            .collect()
    }

    /// Starts watching a container whose root directory is `root` (normally
    /// `<proc_root>/<root_pid>/root`). Events about limits go to `out`.
    pub fn add_container(
        &mut self,
        container: Container,
        root: &Path,
        out: &mut Vec<Event>,
    ) -> io::Result<()> {
        let root_fd = resolve::open_root(root)?;
        self.add_container_fd(container, root_fd, out)
    }

    /// Starts watching a container whose root directory is already open (`O_PATH`).
    pub fn add_container_fd(
        &mut self,
        container: Container,
        root_fd: std::os::fd::OwnedFd,
        out: &mut Vec<Event>,
    ) -> io::Result<()> {
        let root_id = resolve::fstat(&root_fd)
            .map(|st| (st.st_dev, st.st_ino))
            .unwrap_or_default();
        let id: Arc<str> = Arc::from(container.id.as_str());
        self.containers.insert(
            id.clone(),
            Watched {
                root: root_fd,
                root_id,
                container,
                limited: HashSet::new(),
            },
        );
        let before = self.wds.len();
        self.resolve_all(&id, out);
        info!(
            container = %id,
            watches = self.wds.len() - before,
            total = self.wds.len(),
            budget = self.budget,
            "File watches placed."
        );
        Ok(())
    }

    /// Stops watching a container.
    pub fn remove_container(&mut self, id: &str) {
        if self.containers.remove(id).is_none() {
            return;
        }
        let mut unused = Vec::new();
        for (wd, entry) in &mut self.wds {
            entry.owners.retain(|o| &*o.container != id);
            if entry.owners.is_empty() {
                unused.push(wd.clone());
            }
        }
        for wd in unused {
            self.drop_wd(wd);
        }
        self.opens.retain(|(c, _), _| &**c != id);
        self.moves.retain(|_, m| &*m.container != id);
        self.attributor.forget(id);
        self.drift.forget(id);
    }

    fn drop_wd(&mut self, wd: WatchDescriptor) {
        if let Some(entry) = self.wds.remove(&wd) {
            self.by_inode.remove(&entry.inode);
        }
        // The inode may already be gone (IN_IGNORED): then this fails, which is fine.
        let _ = self.inotify.watches().remove(wd);
    }

    /// Resolves every spec of every non-degraded group for a container.
    fn resolve_all(&mut self, id: &Arc<str>, out: &mut Vec<Event>) {
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
    fn resolve_spec(
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
    fn add_tree(
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
        if rate_ok(&mut self.last_warning) {
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
    fn report_lost_roots(&mut self, lost: &[Owner], out: &mut Vec<Event>) {
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
            if rate_ok(&mut self.last_warning) {
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

    /// Reads every pending inotify event without blocking and turns them into events.
    pub fn read_events(&mut self, out: &mut Vec<Event>) -> io::Result<usize> {
        // Everything that happened before this call is in the queue; if the queue turns out
        // not to have overflowed, nothing before this instant was lost.
        let started = Timestamp::now();
        let mut overflowed = false;
        let mut count = 0;
        loop {
            let mut raw = Vec::new();
            match self.inotify.read_events(&mut self.buf) {
                Ok(events) => {
                    for event in events {
                        raw.push((
                            event.wd.clone(),
                            event.mask,
                            event.cookie,
                            event.name.and_then(|n| n.to_str()).map(str::to_string),
                        ));
                    }
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                Err(error) => return Err(error),
            }
            if raw.is_empty() {
                break;
            }
            count += raw.len();
            self.stats.raw_events += raw.len() as u64;
            let mut overflow = false;
            for (wd, mask, cookie, name) in raw {
                if mask.contains(EventMask::Q_OVERFLOW) {
                    overflow = true;
                    continue;
                }
                self.handle_raw(&wd, mask, cookie, name.as_deref(), out);
            }
            if overflow {
                overflowed = true;
                self.stats.overflows += 1;
                self.rescan_needed = true;
                let mut event = Event::new(EventType::Tasksentry, Collector::Fswatch);
                event.internal = Some(Box::new(Internal {
                    kind: "inotify_overflow".into(),
                    message: "the inotify event queue overflowed: file events were lost; the watched trees are rescanned".into(),
                    count: Some(self.stats.overflows),
                }));
                out.push(event);
            }
        }
        if !overflowed && !self.rescan_needed {
            self.last_clean_read = started;
        }
        Ok(count)
    }

    fn handle_raw(
        &mut self,
        wd: &WatchDescriptor,
        mask: EventMask,
        cookie: u32,
        name: Option<&str>,
        out: &mut Vec<Event>,
    ) {
        if mask.contains(EventMask::IGNORED) {
            // The kernel dropped the watch: the file or directory is gone (or was replaced).
            let lost: Vec<Owner> = self
                .wds
                .get(wd)
                .map(|e| e.owners.clone())
                .unwrap_or_default();
            if let Some(entry) = self.wds.remove(wd) {
                self.by_inode.remove(&entry.inode);
            }
            // A replaced file (`passwd` renames a new /etc/shadow over the old one) gets
            // watched again.
            let containers: HashSet<Arc<str>> = lost.iter().map(|o| o.container.clone()).collect();
            for id in &containers {
                self.resolve_all(id, out);
            }
            self.report_lost_roots(&lost, out);
            return;
        }
        let Some(entry) = self.wds.get(wd) else {
            return;
        };
        // One view per container: the first owner's path, the union of interests, and the
        // recursive trees the directory belongs to (to follow new subdirectories).
        let mut views: Vec<View> = Vec::new();
        for owner in &entry.owners {
            let tree = (owner.depth > 0).then_some((owner.group, owner.depth, owner.interest));
            match views.iter_mut().find(|v| v.container == owner.container) {
                Some(view) => {
                    view.interest = view.interest.union(owner.interest);
                    view.trees.extend(tree);
                }
                None => views.push(View {
                    container: owner.container.clone(),
                    path: owner.path.clone(),
                    is_file: owner.is_file,
                    interest: owner.interest,
                    trees: tree.into_iter().collect(),
                }),
            }
        }
        for view in views {
            let path = match (view.is_file, name) {
                (true, _) => view.path.clone(),
                (false, Some(name)) => resolve::join(&view.path, name),
                // Events about a watched directory itself are not reported.
                (false, None) => continue,
            };
            let is_dir = mask.contains(EventMask::ISDIR);
            self.handle_path(
                &view.container,
                &path,
                is_dir,
                mask,
                cookie,
                view.interest,
                &view.trees,
                out,
            );
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn handle_path(
        &mut self,
        id: &Arc<str>,
        path: &str,
        is_dir: bool,
        mask: EventMask,
        cookie: u32,
        interest: Interest,
        trees: &[(usize, u32, Interest)],
        out: &mut Vec<Event>,
    ) {
        if mask.contains(EventMask::CREATE) {
            if interest.create {
                let kind = if is_dir {
                    EventType::Mkdir
                } else {
                    EventType::Creat
                };
                let event = self.file_event(kind, id, path, None, is_dir);
                out.push(event);
            }
            self.appeared(id, path, is_dir, interest, trees, out);
        }
        if mask.contains(EventMask::MOVED_FROM) {
            self.flush_open(id, path, out);
            self.moves.insert(
                cookie,
                PendingMove {
                    at: Instant::now(),
                    container: id.clone(),
                    path: path.to_string(),
                    is_dir,
                    changes: interest.moves,
                },
            );
        }
        if mask.contains(EventMask::MOVED_TO) {
            let from = self.moves.remove(&cookie).filter(|m| m.container == *id);
            if interest.moves || from.as_ref().is_some_and(|m| m.changes) {
                let old = from.map(|m| m.path);
                let event = self.file_event(EventType::Renameat, id, path, old, is_dir);
                out.push(event);
            }
            self.appeared(id, path, is_dir, interest, trees, out);
        }
        if mask.contains(EventMask::DELETE) {
            self.flush_open(id, path, out);
            if interest.delete {
                let event = self.file_event(EventType::Unlinkat, id, path, None, is_dir);
                out.push(event);
            }
        }
        if mask.contains(EventMask::ATTRIB) && interest.attrib && !is_dir {
            let event = self.file_event(EventType::Chmod, id, path, None, false);
            out.push(event);
        }
        let write = interest.writes && mask.intersects(EventMask::MODIFY | EventMask::CLOSE_WRITE);
        let read = interest.reads && mask.intersects(EventMask::ACCESS | EventMask::CLOSE_NOWRITE);
        if (write || read) && !is_dir {
            let key = (id.clone(), path.to_string());
            if !self.opens.contains_key(&key) {
                if write {
                    self.record_drift(id, path);
                }
                let proc = self.attribute(id, path);
                self.opens.insert(
                    key.clone(),
                    PendingOpen {
                        first: Instant::now(),
                        read: false,
                        write: false,
                        proc,
                    },
                );
            }
            if let Some(pending) = self.opens.get_mut(&key) {
                pending.read |= read;
                pending.write |= write;
            }
            if self.opens.len() > MAX_PENDING_OPENS {
                self.flush_opens(Duration::ZERO, out);
            }
        }
    }

    /// A file or directory appeared at `path` (created or moved in): record drift, follow
    /// directories of recursive trees, and resolve patterns that lead through it.
    fn appeared(
        &mut self,
        id: &Arc<str>,
        path: &str,
        is_dir: bool,
        interest: Interest,
        trees: &[(usize, u32, Interest)],
        out: &mut Vec<Event>,
    ) {
        if !is_dir {
            if interest.content_appears() {
                self.record_drift(id, path);
            }
        } else {
            for &(group, depth, tree_interest) in trees {
                self.add_tree(
                    id,
                    path,
                    group,
                    depth.saturating_sub(1),
                    tree_interest,
                    true,
                    out,
                );
            }
        }
        let mut touched = Vec::new();
        for (g, group) in self.config.groups.iter().enumerate() {
            for (s, spec) in group.specs.iter().enumerate() {
                if resolve::is_on_pattern_path(&spec.pattern, path) {
                    touched.push((g, s));
                }
            }
        }
        for (g, s) in touched {
            self.resolve_spec(id, g, s, true, out);
        }
    }

    fn record_drift(&self, id: &str, path: &str) {
        let inode = self.containers.get(id).and_then(|w| {
            let fd = resolve::open_in_root(&w.root, path)?;
            let st = resolve::fstat(&fd)?;
            (st.st_mode & libc::S_IFMT == libc::S_IFREG).then_some((st.st_dev, st.st_ino))
        });
        self.drift.record(id, path, inode);
    }

    fn attribute(&mut self, id: &str, path: &str) -> Option<ProcKey> {
        if !self.config.attribution {
            return None;
        }
        let tables = self.tables.as_ref()?.snapshot();
        self.attributor.find(
            &tables,
            &self.config.proc_root,
            id,
            path,
            self.config.attribution_refresh,
            self.config.attribution_max_processes,
        )
    }

    /// Builds a file event (attributing it when a process is found).
    fn file_event(
        &mut self,
        kind: EventType,
        id: &Arc<str>,
        path: &str,
        oldname: Option<String>,
        is_dir: bool,
    ) -> Event {
        let proc = self.attribute(id, path);
        self.build_event(kind, id, path, oldname, is_dir, proc)
    }

    fn build_event(
        &mut self,
        kind: EventType,
        id: &Arc<str>,
        path: &str,
        oldname: Option<String>,
        is_dir: bool,
        proc: Option<ProcKey>,
    ) -> Event {
        self.stats.events += 1;
        let mut event = Event::new(kind, Collector::Fswatch);
        let mut fd = Fd {
            kind: Some(if is_dir {
                FdKind::Directory
            } else {
                FdKind::File
            }),
            name: Some(path.to_string()),
            ..Fd::default()
        };
        let watched = self.containers.get(&**id);
        event.container = watched.map(|w| Box::new(w.container.clone()));
        match kind {
            EventType::Creat | EventType::Chmod | EventType::Mkdir => {
                let mode = watched.and_then(|w| {
                    let fd = resolve::open_in_root(&w.root, path)?;
                    resolve::fstat(&fd).map(|st| st.st_mode)
                });
                if let Some(mode) = mode {
                    fd.mode = Some(mode);
                    event.evt.args.push(("mode".into(), render_mode(mode)));
                }
                if kind != EventType::Mkdir {
                    event.evt.args.push(("path".into(), path.to_string()));
                }
            }
            EventType::Renameat => {
                let old = oldname.clone().unwrap_or_default();
                event.evt.args.push(("oldpath".into(), old));
                event.evt.args.push(("newpath".into(), path.to_string()));
                fd.oldname = oldname;
            }
            EventType::Unlinkat => {
                event.evt.args.push(("name".into(), path.to_string()));
            }
            _ => {}
        }
        event.fd = Some(Box::new(fd));
        if let (Some(key), Some(tables)) = (proc, self.tables.as_ref()) {
            attach_process(
                &mut event,
                &tables.snapshot(),
                key,
                Some(&tables.exec_images()),
            );
        }
        event
    }

    fn flush_open(&mut self, id: &Arc<str>, path: &str, out: &mut Vec<Event>) {
        let key = (id.clone(), path.to_string());
        if let Some(pending) = self.opens.remove(&key) {
            out.push(self.open_event(id, path, pending));
        }
    }

    fn open_event(&mut self, id: &Arc<str>, path: &str, pending: PendingOpen) -> Event {
        let mut event = self.build_event(EventType::Open, id, path, None, false, pending.proc);
        if let Some(fd) = event.fd.as_mut() {
            fd.open_read = Some(pending.read);
            fd.open_write = Some(pending.write);
        }
        if pending.write {
            // The size after the write tells an append from a truncation.
            let size = self.containers.get(&**id).and_then(|w| {
                let fd = resolve::open_in_root(&w.root, path)?;
                resolve::fstat(&fd).map(|st| st.st_size)
            });
            if let Some(size) = size {
                event.evt.args.push(("size".into(), size.to_string()));
            }
        }
        event
    }

    /// Emits coalesced opens older than `age`, and unpaired renames older than the pairing
    /// window (moves out of the watched trees).
    pub fn flush_opens(&mut self, age: Duration, out: &mut Vec<Event>) {
        let now = Instant::now();
        let due: Vec<(Arc<str>, String)> = self
            .opens
            .iter()
            .filter(|(_, p)| now.saturating_duration_since(p.first) >= age)
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            if let Some(pending) = self.opens.remove(&key) {
                let event = self.open_event(&key.0, &key.1, pending);
                out.push(event);
            }
        }
        let expired: Vec<u32> = self
            .moves
            .iter()
            .filter(|(_, m)| {
                age.is_zero() || now.saturating_duration_since(m.at) >= MOVE_PAIR_WINDOW
            })
            .map(|(c, _)| *c)
            .collect();
        for cookie in expired {
            if let Some(m) = self.moves.remove(&cookie)
                && m.changes
            {
                let mut event = self.build_event(
                    EventType::Renameat,
                    &m.container,
                    &m.path,
                    Some(m.path.clone()),
                    m.is_dir,
                    None,
                );
                // Moved out of the watched trees: the new name is unknown.
                event.evt.args.retain(|(k, _)| k != "newpath");
                out.push(event);
            }
        }
    }

    /// Emits whatever is due: coalesced opens past the window, unpaired renames.
    pub fn flush_due(&mut self, out: &mut Vec<Event>) {
        let window = self.config.coalesce_window;
        self.flush_opens(window, out);
    }

    /// Whether a rescan is due (after an overflow).
    pub fn rescan_needed(&self) -> bool {
        self.rescan_needed
    }

    /// Re-adds every watch and reports files changed since shortly before the last overflow.
    pub fn rescan(&mut self, out: &mut Vec<Event>) {
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

    /// Brings the watched containers in line with the container table: new containers get
    /// watches, gone ones lose them.
    pub fn sync_containers(&mut self, tables: &Tables, out: &mut Vec<Event>) {
        let mut live = HashSet::new();
        let self_root = std::fs::metadata("/proc/self/root")
            .ok()
            .map(|m| (m.dev(), m.ino()));
        for (id, entry) in tables.containers.iter() {
            if entry.excluded.is_some() || entry.gone_at.is_some() || &**id == HOST_ID {
                continue;
            }
            let Some(root_pid) = entry.container.root_pid else {
                continue;
            };
            live.insert(id.clone());
            // Opened through the container's first process, as its owner where the monitor
            // lacks CAP_SYS_PTRACE (see `collect::access`); below it, the monitor's own
            // credentials apply.
            let opened = crate::collect::access::Access::current()
                .open_root(&self.config.proc_root, root_pid);
            let now_id = opened
                .as_ref()
                .ok()
                .and_then(resolve::fstat)
                .map(|st| (st.st_dev, st.st_ino));
            if now_id.is_some() && now_id == self_root {
                // Still in the monitor's own root: not yet in its container root.
                continue;
            }
            if let Some(watched) = self.containers.get_mut(id) {
                watched.container = entry.container.clone();
                if now_id.is_none_or(|now_id| now_id == watched.root_id) {
                    continue;
                }
                // The container switched roots after it was first seen: watch the new one.
                self.remove_container(id);
            }
            let added =
                opened.and_then(|fd| self.add_container_fd(entry.container.clone(), fd, out));
            if let Err(error) = added
                && rate_ok(&mut self.last_warning)
            {
                warn!(container = %id, root_pid, %error, "Cannot open a container root for file watches.");
            }
        }
        let gone: Vec<Arc<str>> = self
            .containers
            .keys()
            .filter(|id| !live.contains(*id))
            .cloned()
            .collect();
        for id in gone {
            self.remove_container(&id);
        }
    }
}

/// Attaches the process `key` (with its ancestors) when it is known and not excluded.
/// Names the process `key` in `event`: as the tracer saw it exec when it did since procscan read
/// it (`images`, trace mode: a shell's fork that became `cp` is `cp`), else as the table has it.
/// Excluded processes are not named.
fn attach_process(event: &mut Event, tables: &Tables, key: ProcKey, images: Option<&ExecImages>) {
    if tables
        .processes
        .get(&key)
        .is_none_or(|entry| entry.excluded.is_some())
    {
        return;
    }
    event.proc = tables.processes.view(key, images).map(Box::new);
}

/// Falco's rendering of a mode argument: octal, then the set bits by name
/// (`0104755(S_ISUID|S_IRUSR|S_IWUSR|S_IXUSR|...)` minus the file-type bits).
pub fn render_mode(mode: u32) -> String {
    const BITS: [(u32, &str); 12] = [
        (0o4000, "S_ISUID"),
        (0o2000, "S_ISGID"),
        (0o1000, "S_ISVTX"),
        (0o400, "S_IRUSR"),
        (0o200, "S_IWUSR"),
        (0o100, "S_IXUSR"),
        (0o040, "S_IRGRP"),
        (0o020, "S_IWGRP"),
        (0o010, "S_IXGRP"),
        (0o004, "S_IROTH"),
        (0o002, "S_IWOTH"),
        (0o001, "S_IXOTH"),
    ];
    let perm = mode & 0o7777;
    let names: Vec<&str> = BITS
        .iter()
        .filter(|(bit, _)| perm & bit != 0)
        .map(|(_, name)| *name)
        .collect();
    format!("{perm:#o}({})", names.join("|")).replacen("0o", "0", 1)
}

/// True at most once a minute per limiter.
fn rate_ok(last: &mut Option<Instant>) -> bool {
    let now = Instant::now();
    if last.is_some_and(|at| now.saturating_duration_since(at) < Duration::from_secs(60)) {
        return false;
    }
    *last = Some(now);
    true
}

/// Starts the fswatch collector on its own OS thread, following the containers of `tables`.
/// Events go to `tx` with `try_send` (drops are counted and reported as
/// `tasksentry`/`events_dropped`). The thread ends when `shutdown` is set or the receiver is
/// dropped.
pub fn spawn_fswatch(
    config: FsWatchConfig,
    tables: SharedTables,
    drift: Arc<DriftRegistry>,
    tx: SyncSender<Event>,
    shutdown: Arc<AtomicBool>,
) -> Result<JoinHandle<()>, FsWatchError> {
    let watcher = FsWatcher::new(config, Some(tables.clone()), drift)?;
    std::thread::Builder::new()
        .name("fswatch".into())
        .spawn(move || run_loop(watcher, tables, tx, shutdown))
        .map_err(|source| FsWatchError::Inotify { source })
}

fn run_loop(
    mut watcher: FsWatcher,
    tables: SharedTables,
    tx: SyncSender<Event>,
    shutdown: Arc<AtomicBool>,
) {
    let mut sender = DropCountingSender::new(tx, Collector::Fswatch);
    let mut out = Vec::new();
    let mut next_sync = Instant::now();
    let tick = (watcher.config.coalesce_window / 4)
        .clamp(Duration::from_millis(5), Duration::from_millis(50));
    while !shutdown.load(Ordering::Relaxed) {
        let now = Instant::now();
        if now >= next_sync {
            watcher.sync_containers(&tables.snapshot(), &mut out);
            next_sync = Instant::now() + watcher.config.container_poll;
        }
        let millis = u16::try_from(tick.as_millis().max(1)).unwrap_or(u16::MAX);
        let readable = {
            let mut fds = [nix::poll::PollFd::new(
                watcher.fd(),
                nix::poll::PollFlags::POLLIN,
            )];
            matches!(nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(millis)), Ok(n) if n > 0)
        };
        if readable
            && let Err(error) = watcher.read_events(&mut out)
            && rate_ok(&mut watcher.last_warning)
        {
            warn!(%error, "Reading inotify events failed.");
        }
        if watcher.rescan_needed() {
            watcher.rescan(&mut out);
        }
        watcher.flush_due(&mut out);
        for event in out.drain(..) {
            if !sender.send(event) {
                return;
            }
        }
        if !sender.flush() {
            return;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
