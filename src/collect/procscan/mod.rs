//! The procscan collector: diffs `/proc` on every scan and reports new process images
//! (`execve`), exits (`procexit`) and processes it missed (`tasksentry`/`processes_missed`).
//!
//! [`ProcScanner`] is the single-threaded, testable core; [`spawn_procscan`] runs it on a
//! dedicated OS thread that scans every `interval` and, when `triggers` is on, right after an
//! inotify trigger fires (see [`triggers`]).
//!
//! Cost per scan: one `readdir` of the proc root. A process is read in full once, when it is
//! first seen. After that only its `stat` is re-read: on every scan while it is young
//! (`young_window`, to catch the exec that usually follows a fork), once per `recheck_period`
//! when older (spread over scans by pid), and whenever its pid falls in the range the kernel
//! allocated since the last scan (the only way its pid could have been recycled). An exec is
//! recognised from `stat` alone: a new `comm` or a new memory map (the addresses of code,
//! stack and arguments; every exec builds a new map, a fork copies its parent's). A process
//! first seen between its fork and its exec is therefore reported twice: once with its
//! parent's image, and again once it has exec'd.
//!
//! Quiet scans: when `ns_last_pid` has not moved since the last scan, no process (or thread)
//! was created, so there is nothing new to list: the scan re-checks the known processes that
//! are due (young, due for a recheck, unsettled) without reading the proc root, and a listing
//! runs at least every [`FULL_SCAN_EVERY`] to find exits. An idle task then costs one small
//! read per scan instead of a directory walk.
//!
//! Mid-exec reads: a read can catch a process after the kernel set its new name and empty
//! memory map but before it loaded the program (no arguments yet), or mix two images when the
//! exec happens during the read. Such a read is not settled ([`crate::collect::proc::ProcRead::settled`]):
//! it is repeated after short delays within the scan (at most `SETTLE_BUDGET` of waiting per
//! scan), and if still unsettled the process enters the table but its report waits for the
//! next scans (at most `MAX_DEFERRALS`); a process that exits first is reported as last read,
//! then its exit.
//!
//! Missed processes: `<proc_root>/sys/kernel/ns_last_pid` is the last pid the PID namespace
//! allocated. Every pid allocated since the previous scan (the range between the two readings,
//! wrapping at `pid_max` back to 300 as the kernel does) must be a process seen new in this
//! scan, a known process that exited, or something still in `/proc` (a live process or a live
//! thread: `/proc/<tid>` exists for threads although `readdir` does not list them); every other
//! pid in the range was a process or thread that started and ended between two scans. The count
//! is an approximation in both directions: a thread created and gone between scans counts as a
//! missed process (over-count), and more than `pid_max` allocations between two scans cannot be
//! seen (under-count). It is only meaningful when the monitor shares the PID namespace it scans,
//! which is the case on Fargate with `pidMode: task`. Processes that vanished while being read
//! are counted as missed too.
//!
//! Exclusions (never reported, but kept in the table so other collectors can drop their
//! events): kernel threads; with `exclude_self`, the monitor, its children and every process of
//! its container (same container id, or same mount namespace); with `exclude_pause`, pid 1 of
//! the namespace (the task's pause process) and every process of its container when pid 1 is in
//! a recognised container.
//!
//! Files: this one holds the scan itself (classifying the listed pids, exits, events);
//! `images.rs` reads new processes and execs until settled and reports their image,
//! `missed.rs` counts missed pids, `exclusion.rs` decides what is never reported, `roots.rs`
//! opens container roots (user names, exec triggers, visibility checks), `triggers.rs` holds
//! the inotify triggers and `run.rs` the thread.

mod exclusion;
mod images;
mod missed;
mod roots;
mod run;
mod triggers;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::warn;

use super::CollectError;
use super::access::Access;
use super::proc::{Clock, KeptFile, ReadOptions, list_pids, read_stat};
use super::shared::log_limit::LogLimit;
use super::shared::users::UserDbCache;
use super::shared::{
    DriftRegistry, ExecSignal, MemberInfo, ProcEntry, ProcKey, SharedTables, Tables, TracerLink,
};
use super::visibility::{Visibility, VisibilityCounts};
use crate::event::{Collector, Event, EventType, Internal};
use crate::procfs::{DEFAULT_ENV_ALLOWLIST, Stat, parse_cgroup};
use exclusion::{SelfInfo, read_self_info};
use images::Unsettled;
use missed::AllocRange;
use roots::RootHandle;
use triggers::Triggers;

pub use run::spawn_procscan;
pub(crate) use run::spawn_procscan_shared;

/// Settings of the procscan collector.
#[derive(Debug, Clone)]
pub struct ProcScanConfig {
    /// Where `/proc` is (tests use fixture trees).
    pub proc_root: PathBuf,
    /// Time between two periodic scans.
    pub interval: Duration,
    /// Environment variable names kept in `proc.env`.
    pub env_allowlist: Vec<String>,
    /// Scan immediately on inotify triggers (exec of binaries, loader opens).
    pub triggers: bool,
    /// How long exited processes stay in the table for late attribution.
    pub exited_grace: Duration,
    /// Cap on the command-line bytes kept per process.
    pub max_cmdline_bytes: usize,
    /// Exclude the monitor, its children and its own container. Tests that run in the host
    /// namespace turn this off to see their own children.
    pub exclude_self: bool,
    /// Exclude pid 1 (the task's pause process) and its container.
    pub exclude_pause: bool,
    /// A process is re-checked for an exec on every scan for this long after it was first seen.
    pub young_window: Duration,
    /// Older processes are re-checked for an exec in place this often.
    pub recheck_period: Duration,
    /// Minimum time between the end of one scan and a trigger-driven scan. The effective
    /// spacing is never less than the duration of the last scan, so triggers can use at most
    /// about half of one core.
    pub trigger_min_spacing: Duration,
    /// Time to wait after a trigger before scanning, so an exec that is still in progress (the
    /// binary is opened before the new image is committed) is seen complete.
    pub trigger_delay: Duration,
    /// Files the fswatch collector saw written in each container after it started; consulted
    /// for `proc.exe_written_after_start` (see `shared::drift::drift_fact`).
    pub drift: Option<Arc<DriftRegistry>>,
    /// In trace mode, the link to the tracer: new processes are handed to it to seize, and
    /// exec/exit events of the pids it holds are left to it (see `collect::tracer`).
    pub tracer: Option<TracerLink>,
    /// Raised whenever triggers fire, for other collectors that react to execs (the sockets
    /// collector polls soon after).
    pub exec_signal: Option<ExecSignal>,
    /// How other users' private `/proc` entries are read (as their owner where the monitor's
    /// capabilities do not pass the kernel's checks): the monitor's own by default.
    pub access: Access,
    /// Where the visibility counts the heartbeat publishes are kept.
    pub visibility: VisibilityCounts,
    /// How long a monitor in a container waits for an application container before it reports
    /// that it sees none (`pidMode` is not `task`).
    pub no_container_grace: Duration,
}

impl Default for ProcScanConfig {
    fn default() -> Self {
        ProcScanConfig {
            proc_root: PathBuf::from("/proc"),
            interval: Duration::from_millis(100),
            env_allowlist: DEFAULT_ENV_ALLOWLIST
                .iter()
                .map(|s| s.to_string())
                .collect(),
            triggers: true,
            exited_grace: Duration::from_secs(5),
            max_cmdline_bytes: 64 * 1024,
            exclude_self: true,
            exclude_pause: true,
            young_window: Duration::from_secs(2),
            recheck_period: Duration::from_secs(5),
            trigger_min_spacing: Duration::from_millis(1),
            trigger_delay: Duration::from_millis(1),
            drift: None,
            tracer: None,
            exec_signal: None,
            access: Access::current(),
            visibility: VisibilityCounts::default(),
            no_container_grace: super::visibility::NO_CONTAINER_GRACE,
        }
    }
}

/// The longest time between two listings of the proc root (a scan where no pid was allocated
/// re-checks the known processes without one): exits are found at least this often.
pub(crate) const FULL_SCAN_EVERY: Duration = Duration::from_secs(1);

/// Counters about the scanner's work.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanStats {
    /// Scans done.
    pub scans: u64,
    /// `execve` events for new processes.
    pub new_processes: u64,
    /// `execve` events for exec in place.
    pub execs: u64,
    /// `procexit` events.
    pub exits: u64,
    /// Processes counted missed.
    pub missed: u64,
    /// Full process reads.
    pub full_reads: u64,
    /// `stat` re-reads of known processes.
    pub stat_checks: u64,
    /// Duration of the last scan.
    pub last_scan: Duration,
    /// Re-reads of a process whose read was not settled (caught mid-exec), within a scan.
    pub settle_retries: u64,
    /// Reports put off to the next scan because the process was still not settled.
    pub deferred: u64,
    /// Scans that did not list the proc root because no pid was allocated since the last one.
    pub quiet_scans: u64,
}

/// Scanner bookkeeping for one process.
#[derive(Debug, Clone)]
struct Track {
    stat: Stat,
    first_seen: Instant,
    last_check: Instant,
    cgroup: String,
    mnt_ns: Option<u64>,
    /// Set while the report of the process is put off (see [`Unsettled`]).
    unsettled: Option<Unsettled>,
}

impl Track {
    /// Whether a scan at `now` re-reads the process whatever the pid allocation says: it is
    /// young (an exec usually follows a fork), due for its periodic recheck, or unsettled.
    fn due(&self, now: Instant, config: &ProcScanConfig) -> bool {
        now.saturating_duration_since(self.first_seen) < config.young_window
            || now.saturating_duration_since(self.last_check) >= config.recheck_period
            || self.unsettled.is_some()
    }
}

/// The procscan core. Single-threaded; call [`ProcScanner::scan`] repeatedly.
#[derive(Debug)]
pub struct ProcScanner {
    config: ProcScanConfig,
    options: ReadOptions,
    clock: Clock,
    tables: Tables,
    shared: SharedTables,
    dirty: bool,
    track: HashMap<ProcKey, Track>,
    users: UserDbCache,
    me: SelfInfo,
    pause_container: Option<String>,
    last_pid: Option<i32>,
    /// When the proc root was last listed.
    last_listing: Option<Instant>,
    /// `sys/kernel/ns_last_pid`, kept open, and its text.
    last_pid_file: KeptFile,
    last_pid_text: String,
    pid_max: i32,
    triggers: Option<Triggers>,
    watch_limit_reported: bool,
    buf: Vec<u8>,
    pids: Vec<i32>,
    seen: HashSet<i32>,
    stats: ScanStats,
    last_warning: LogLimit,
    /// Time this scan has waited for execs in progress (see [`images::SETTLE_BUDGET`]).
    settle_spent: Duration,
    /// What the monitor cannot read of each container.
    visibility: Visibility,
    /// Each container's root, opened once through its first process (as that process's owner
    /// where needed): user names and exec triggers are read through it.
    roots: HashMap<Arc<str>, RootHandle>,
}

impl ProcScanner {
    /// A scanner over `config.proc_root`. Fails if the proc root cannot be listed or (with
    /// `triggers`) if no inotify instance can be created.
    pub fn new(config: ProcScanConfig) -> Result<ProcScanner, CollectError> {
        let root = config.proc_root.clone();
        std::fs::read_dir(&root).map_err(|source| CollectError::ProcRoot {
            path: root.clone(),
            source,
        })?;
        let triggers = if config.triggers {
            let mut triggers =
                Triggers::new().map_err(|source| CollectError::Inotify { source })?;
            if let Some(signal) = &config.exec_signal {
                triggers.set_signal(signal.clone());
            }
            Some(triggers)
        } else {
            None
        };
        let me = if config.exclude_self {
            read_self_info(&root)
        } else {
            SelfInfo::default()
        };
        let pause_container = if config.exclude_pause {
            std::fs::read_to_string(root.join("1/cgroup"))
                .ok()
                .and_then(|text| parse_cgroup(&text).container_id)
        } else {
            None
        };
        // When the monitor shares pid 1's container it is not a sidecar of its own (a host,
        // or a plain container without a task around it): excluding "our container" or "the
        // pause container" would then hide everything, so only pid-based exclusions remain.
        let (me, pause_container) = if me.container.is_some() && me.container == pause_container {
            (
                SelfInfo {
                    container: None,
                    ..me
                },
                None,
            )
        } else {
            (me, pause_container)
        };
        let pid_max = std::fs::read_to_string(root.join("sys/kernel/pid_max"))
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(4_194_304);
        let mut visibility = Visibility::new(
            config.access,
            config.visibility.clone(),
            me.container.is_some(),
        );
        visibility.set_grace(config.no_container_grace);
        Ok(ProcScanner {
            options: ReadOptions {
                env_allowlist: config.env_allowlist.clone(),
                max_cmdline_bytes: config.max_cmdline_bytes,
                access: config.access,
            },
            visibility,
            roots: HashMap::new(),
            clock: Clock::read(&root),
            tables: Tables::default(),
            shared: SharedTables::default(),
            dirty: false,
            track: HashMap::new(),
            users: UserDbCache::new(Duration::from_secs(1)),
            me,
            pause_container,
            last_pid: None,
            last_listing: None,
            last_pid_file: KeptFile::new(config.proc_root.join("sys/kernel/ns_last_pid")),
            last_pid_text: String::new(),
            pid_max,
            triggers,
            watch_limit_reported: false,
            buf: Vec::with_capacity(8192),
            pids: Vec::new(),
            seen: HashSet::new(),
            stats: ScanStats::default(),
            last_warning: LogLimit::default(),
            settle_spent: Duration::ZERO,
            config,
        })
    }

    /// A handle other collectors use to read the tables (published after each scan that
    /// changed them).
    pub(crate) fn shared_tables(&self) -> SharedTables {
        self.shared.clone()
    }

    /// Counters.
    pub fn stats(&self) -> &ScanStats {
        &self.stats
    }

    /// The inotify trigger descriptor, when triggers are on.
    pub(crate) fn trigger_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.triggers.as_ref().map(Triggers::fd)
    }

    /// Reads pending trigger events without blocking; returns how many there were.
    pub(crate) fn drain_triggers(&mut self) -> usize {
        let Some(triggers) = self.triggers.as_mut() else {
            return 0;
        };
        match triggers.drain() {
            Ok(count) => count,
            Err(error) => {
                if self.last_warning.ready() {
                    warn!(%error, "reading inotify triggers failed");
                }
                // Treat as a trigger: a scan is the safe reaction.
                1
            }
        }
    }

    /// One scan: appends the events it produced to `out`.
    pub fn scan(&mut self, out: &mut Vec<Event>) {
        let now = Instant::now();
        self.settle_spent = Duration::ZERO;
        let root = self.config.proc_root.clone();
        self.last_pid_text.clear();
        let last_pid_now = self
            .last_pid_file
            .read_into(&mut self.last_pid_text)
            .ok()
            .and_then(|()| self.last_pid_text.trim().parse::<i32>().ok());
        // No pid allocated since the last scan (no process or thread created): nothing new
        // can be listed, so the known processes are re-checked without listing the proc root.
        // Exits are still found by a listing at least every FULL_SCAN_EVERY.
        let quiet = last_pid_now.is_some()
            && last_pid_now == self.last_pid
            && self
                .last_listing
                .is_some_and(|at| now.saturating_duration_since(at) < FULL_SCAN_EVERY);
        if quiet {
            // Only the known processes that are due can produce anything (no pid was
            // allocated, so none is new or recycled): they are picked from `track` by
            // `Track::due`, as below, without visiting the others' table entries.
            self.pids.clear();
            let (processes, config) = (&self.tables.processes, &self.config);
            self.pids.extend(
                self.track
                    .iter()
                    .filter(|(key, track)| {
                        track.due(now, config)
                            && processes.live_start(key.pid) == Some(key.start_ticks)
                    })
                    .map(|(key, _)| key.pid),
            );
            self.stats.quiet_scans += 1;
        } else if let Err(error) = list_pids(&root, &mut self.pids) {
            if self.last_warning.ready() {
                warn!(path = %root.display(), %error, "cannot list the proc root");
            }
            return;
        } else {
            self.last_listing = Some(now);
        }
        let alloc = match (self.last_pid, last_pid_now) {
            (Some(prev), Some(cur)) if prev != cur => AllocRange::new(prev, cur, self.pid_max),
            _ => AllocRange::empty(),
        };

        // 1. Classify every listed pid: new, known (maybe re-checked), recycled.
        let mut candidates: Vec<Stat> = Vec::new();
        let mut execs: Vec<(ProcKey, Stat)> = Vec::new();
        let mut exits: Vec<ProcKey> = Vec::new();
        self.seen.clear();
        for &pid in &self.pids {
            if !quiet {
                self.seen.insert(pid);
            }
            let Some(start) = self.tables.processes.live_start(pid) else {
                if let Some(stat) = read_stat(&root, pid, &mut self.buf) {
                    candidates.push(stat);
                }
                continue;
            };
            let key = ProcKey {
                pid,
                start_ticks: start,
            };
            let Some(track) = self.track.get_mut(&key) else {
                continue;
            };
            let unsettled = track.unsettled.is_some();
            if !(track.due(now, &self.config) || alloc.contains(pid)) {
                continue;
            }
            track.last_check = now;
            self.stats.stat_checks += 1;
            match read_stat(&root, pid, &mut self.buf) {
                // Gone (since the readdir, or since the last scan in a quiet one, which lists
                // nothing that could show it missing): its exit is reported now.
                // (An unreadable `stat` of a process that is still there is not an exit.)
                None => {
                    if std::fs::symlink_metadata(root.join(pid.to_string())).is_err() {
                        exits.push(key);
                    }
                }
                Some(stat) if stat.starttime != start => {
                    exits.push(key);
                    candidates.push(stat);
                }
                Some(stat) => {
                    let excluded = self
                        .tables
                        .processes
                        .get(&key)
                        .is_some_and(|e| e.excluded.is_some());
                    // A put-off report is read again whatever its stat shows.
                    if !excluded && (unsettled || stat.image_changed_since(&track.stat)) {
                        execs.push((key, stat));
                    }
                }
            }
        }
        if !quiet {
            for (key, _) in self.tables.processes.live() {
                if !self.seen.contains(&key.pid) {
                    exits.push(key);
                }
            }
        }

        // 2. Exits.
        let exited_pids: HashSet<i32> = exits.iter().map(|k| k.pid).collect();
        for key in exits {
            self.handle_exit(key, now, out);
        }

        // 3. Exec in place, before new processes: a child must see its parent's new image in
        // its ancestry (a shell that forked right after its own exec).
        for (key, stat) in execs {
            self.handle_exec(key, stat, now, out);
        }

        // 4. New processes, oldest first so parents are in the table before their children.
        candidates.sort_by_key(|s| (s.starttime, s.pid));
        let mut vanished = 0u64;
        let new_pids: HashSet<i32> = candidates.iter().map(|s| s.pid).collect();
        for stat in candidates {
            if !self.handle_new(stat, now, out) {
                vanished += 1;
            }
        }

        // 5. Missed processes.
        let missed = self.count_missed(&alloc, &new_pids, &exited_pids) + vanished;
        if last_pid_now.is_some() {
            self.last_pid = last_pid_now;
        }
        if missed > 0 {
            self.stats.missed += missed;
            let mut event = Event::new(EventType::Tasksentry, Collector::Procscan);
            event.internal = Some(Box::new(Internal {
                kind: "processes_missed".into(),
                message: format!(
                    "{missed} pids were allocated since the previous /proc scan to processes (or threads) that were gone before they could be read"
                ),
                count: Some(missed),
            }));
            out.push(event);
        }

        // 6. Housekeeping.
        if self.tables.processes.purge(now, self.config.exited_grace) > 0 {
            self.dirty = true;
        }
        for id in self.tables.containers.purge(now, self.config.exited_grace) {
            self.users.forget(&id);
            self.roots.remove(&*id);
            self.visibility.forget(&id);
            self.dirty = true;
        }
        self.sync_triggers(out);
        self.visibility.report(now, &self.tables.containers, out);
        if self.dirty {
            self.shared.publish(self.tables.clone());
            self.dirty = false;
        }
        self.stats.scans += 1;
        self.stats.last_scan = now.elapsed();
    }

    fn handle_exit(&mut self, key: ProcKey, now: Instant, out: &mut Vec<Event>) {
        let track = self.track.remove(&key);
        let Some(entry) = self.tables.processes.mark_exited(key, now).cloned() else {
            return;
        };
        self.dirty = true;
        // A report put off until the process settled: it exited first, so it is reported as
        // last read, before its exit (a process is never lost).
        if let Some(unsettled) = track.as_ref().and_then(|t| t.unsettled)
            && entry.excluded.is_none()
        {
            self.emit_image(key, unsettled.new, unsettled.owned, out);
        }
        if let Some(new_root) = self
            .tables
            .containers
            .remove_member(&entry.container_id, key, now)
            && let Some(root_track) = self.track.get(&new_root)
        {
            let start_time = self
                .tables
                .processes
                .get(&new_root)
                .and_then(|e| e.process.start_time);
            self.tables.containers.set_root_details(
                &entry.container_id,
                MemberInfo {
                    key: new_root,
                    cgroup: root_track.cgroup.clone(),
                    mnt_ns: root_track.mnt_ns,
                    start_time,
                },
            );
        }
        drop(track);
        let traced = self.config.tracer.as_ref().is_some_and(|link| {
            let covered = link.covers(key.pid);
            link.forget(key.pid);
            covered
        });
        if entry.excluded.is_none() && !traced {
            self.stats.exits += 1;
            out.push(self.event_for(EventType::Procexit, key, &entry));
        }
    }

    /// Whether the tracer reports this pid's exec and exit events (trace mode).
    fn traced(&self, pid: i32) -> bool {
        self.config
            .tracer
            .as_ref()
            .is_some_and(|link| link.covers(pid))
    }

    fn event_for(&self, evt_type: EventType, key: ProcKey, entry: &ProcEntry) -> Event {
        let mut event = Event::new(evt_type, Collector::Procscan);
        let mut process = (*entry.process).clone();
        process.ancestors = self.tables.processes.ancestors(&key);
        if let Some(link) = &self.config.tracer
            && process.tracer_pid.is_some_and(|t| link.is_tracer(t))
        {
            // Traced by this monitor's tracer (trace mode): reported as untraced, so that
            // `proc.tracer_pid` keeps meaning "someone else traces this process".
            process.tracer_pid = Some(0);
        }
        event.proc = Some(Box::new(process));
        event.container = self
            .tables
            .containers
            .get(&entry.container_id)
            .map(|c| Box::new(c.container.clone()));
        event
    }
}

// Test-only accessors, after every producer of internal events (a test reads the code above
// the first `cfg(test)` for their kinds).
#[cfg(test)]
impl ProcScanner {
    /// The process table as of the last scan.
    pub(crate) fn process_table(&self) -> &super::shared::table::ProcessTable {
        &self.tables.processes
    }

    /// The container table as of the last scan.
    pub(crate) fn container_table(&self) -> &super::shared::table::ContainerTable {
        &self.tables.containers
    }
}

#[cfg(test)]
mod tests_fixture;
#[cfg(test)]
mod tests_real;
