//! The fswatch collector: inotify watches inside every container's file system.
//!
//! For every container in procscan's container table (not the
//! monitor's own, not the pause container), the collector opens the container root
//! `/proc/<root_pid>/root` once and places the watch set of [`FsWatchConfig::groups`] below it,
//! resolving every path inside that root (see `resolve.rs`). Watches follow new subdirectories
//! of recursive specs, and a pattern whose path does not exist yet (`/root/.ssh`,
//! `/var/spool/cron`) gets a creation watch on its deepest existing parent so it is picked up
//! when it appears. Containers that go lose their watches. The thread follows procscan's tables
//! as they are published ([`SharedTables::subscribe`]: at most one sync per `container_poll`),
//! and syncs at least every second for a root that changed without an exec; an idle watcher
//! sleeps in `poll` (waking at most every 500 ms, to see a stop).
//!
//! Events (`evt.type`, `fd.name` inside the container, `container`): `creat`, `mkdir`,
//! `unlinkat`, `renameat` (`IN_MOVED_FROM`/`IN_MOVED_TO` paired by cookie; an unpaired half
//! is a move into or out of the watched tree), `chmod` (`IN_ATTRIB`, the new mode read from
//! the file and rendered in `evt.arg.mode` the way Falco does: `04755(S_ISUID|S_IRUSR|...)`),
//! and `open` for content reads and writes, coalesced per path over `coalesce_window` so that
//! one write is one event. A process holding the path open in the same container is attached
//! when found (see `attribution.rs`); otherwise `proc` is absent.
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
//!
//! Files: this one holds the watcher, its containers and its thread; `watches.rs` builds the
//! watch set within the budget, `events.rs` turns inotify events into file events,
//! `rescan.rs` recovers from overflows, `config.rs` holds the watch groups and settings,
//! `resolve.rs` resolves paths inside a container root, `attribution.rs` finds the process.

pub(crate) mod attribution;
pub(crate) mod config;
mod events;
mod rescan;
pub(crate) mod resolve;
mod watches;

use std::collections::{HashMap, HashSet};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::SyncSender;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use inotify::{Inotify, WatchDescriptor};
use tracing::{info, warn};

use super::access::Access;
use super::sender::DropCountingSender;
use super::shared::log_limit::LogLimit;
use super::shared::table::Published;
use super::shared::{SharedTables, Tables};
use super::visibility::is_own_root;
use crate::event::{Collector, Container, Event, Timestamp};
use crate::procfs::HOST_ID;
use events::{PendingMove, PendingOpen};
use watches::WatchEntry;

pub use super::shared::DriftRegistry;
pub(crate) use attribution::Attributor;
pub use config::FsWatchConfig;
pub(crate) use config::{UserWatch, WatchGroup, WatchSetError, build_groups, default_groups};

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

/// A watched container.
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
    pub(crate) limited_watches: u64,
}

/// The fswatch core. Single-threaded; feed it containers and call [`FsWatcher::read_events`].
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
    last_warning: LogLimit,
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
            last_warning: LogLimit::default(),
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
    pub(crate) fn add_container_fd(
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
    pub(crate) fn remove_container(&mut self, id: &str) {
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

    /// Brings the watched containers in line with the container table: new containers get
    /// watches, gone ones lose them.
    pub(crate) fn sync_containers(&mut self, tables: &Tables, out: &mut Vec<Event>) {
        let mut live = HashSet::new();
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
            let opened = Access::current().open_root(&self.config.proc_root, root_pid);
            if opened.as_ref().is_ok_and(is_own_root) {
                // Still in the monitor's own root: not yet in its container root.
                continue;
            }
            let now_id = opened
                .as_ref()
                .ok()
                .and_then(resolve::fstat)
                .map(|st| (st.st_dev, st.st_ino));
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
                && self.last_warning.ready()
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

/// Starts the fswatch collector on its own OS thread, following the containers of `tables`.
/// Events go to `tx` with `try_send` (drops are counted and reported as
/// `tasksentry`/`events_dropped`). The thread ends when `shutdown` is set or the receiver is
/// dropped.
pub(crate) fn spawn_fswatch(
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

/// The longest time between two container syncs while procscan's tables do not change.
const FULL_SYNC_EVERY: Duration = Duration::from_secs(1);

/// The longest sleep of the loop: how soon it sees `shutdown`.
const MAX_SLEEP: Duration = Duration::from_millis(500);

fn run_loop(
    mut watcher: FsWatcher,
    tables: SharedTables,
    tx: SyncSender<Event>,
    shutdown: Arc<AtomicBool>,
) {
    let mut sender = DropCountingSender::new(tx, Collector::Fswatch);
    let mut out = Vec::new();
    // Told of each snapshot procscan publishes, the loop syncs at once and otherwise sleeps;
    // without the subscription it looks for a new snapshot every `container_poll`.
    let mut published = match tables.subscribe() {
        Ok(published) => Some(published),
        Err(error) => {
            warn!(%error, "cannot subscribe to procscan's tables; looking for changes every container_poll");
            None
        }
    };
    let mut next_sync = Instant::now();
    let mut next_full_sync = Instant::now();
    let mut last_sync = Instant::now();
    let mut synced: Option<Arc<Tables>> = None;
    while !shutdown.load(Ordering::Relaxed) {
        let now = Instant::now();
        if now >= next_sync {
            // The containers change only with procscan's tables, which it republishes only
            // when something changed; a root switch without any exec is caught by the sync
            // that runs at least every FULL_SYNC_EVERY.
            let snapshot = tables.snapshot();
            if now >= next_full_sync || !synced.as_ref().is_some_and(|s| Arc::ptr_eq(s, &snapshot))
            {
                watcher.sync_containers(&snapshot, &mut out);
                last_sync = Instant::now();
                next_full_sync = last_sync + FULL_SYNC_EVERY;
                synced = Some(snapshot);
            }
            next_sync = if published.is_some() {
                next_full_sync
            } else {
                Instant::now() + watcher.config.container_poll
            };
        }
        // Sleep until the next container sync or pending flush, whichever is first (an idle
        // watcher wakes only for the full syncs), or until inotify has events or procscan
        // published new tables.
        let until = watcher
            .next_due()
            .map_or(next_sync, |due| due.min(next_sync));
        let wait = until
            .saturating_duration_since(Instant::now())
            .min(MAX_SLEEP);
        let millis = u16::try_from(wait.as_micros().div_ceil(1000).max(1)).unwrap_or(u16::MAX);
        let (readable, republished) = {
            let inotify = nix::poll::PollFd::new(watcher.fd(), nix::poll::PollFlags::POLLIN);
            let mut fds = match &published {
                Some(p) => vec![
                    inotify,
                    nix::poll::PollFd::new(p.fd(), nix::poll::PollFlags::POLLIN),
                ],
                None => vec![inotify],
            };
            let ready = matches!(nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(millis)), Ok(n) if n > 0);
            let is_ready = |fd: Option<&nix::poll::PollFd>| {
                ready
                    && fd
                        .and_then(|fd| fd.revents())
                        .is_some_and(|r| !r.is_empty())
            };
            (is_ready(fds.first()), is_ready(fds.get(1)))
        };
        // At most one sync per `container_poll`, however often procscan publishes.
        if republished && published.as_mut().is_some_and(Published::take) {
            next_sync = next_sync.min(last_sync + watcher.config.container_poll);
        }
        if readable
            && let Err(error) = watcher.read_events(&mut out)
            && watcher.last_warning.ready()
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
