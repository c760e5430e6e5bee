//! The procscan collector: diffs `/proc` on every scan and reports new process images
//! (`execve`), exits (`procexit`) and processes it missed (`tasksentry`/`processes_missed`).
//!
//! [`ProcScanner`] is the single-threaded, testable core; [`spawn_procscan`] runs it on a
//! dedicated OS thread that scans every `interval` and, when `triggers` is on, right after an
//! inotify trigger fires (see [`super::triggers`]).
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
//! Mid-exec reads: a read can catch a process after the kernel set its new name and empty
//! memory map but before it loaded the program (no arguments yet), or mix two images when the
//! exec happens during the read. Such a read is not settled ([`super::proc::ProcRead::settled`]):
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

use super::sender::DropCountingSender;
use std::collections::{HashMap, HashSet};
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::SyncSender;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing::warn;

use super::CollectError;
use super::access::{Access, Diagnosis};
use super::cgroup::{CgroupInfo, HOST_ID, parse_cgroup};
use super::fswatch::DriftRegistry;
use super::proc::{
    Clock, DEFAULT_ENV_ALLOWLIST, ProcIdentity, ProcRead, ReadOptions, Stat, parse_ns_link,
    read_identity, read_link_string, read_process, read_stat,
};
use super::table::{
    ContainerTable, Exclusion, MemberInfo, ProcEntry, ProcKey, ProcessTable, SharedTables, Tables,
};
use super::triggers::Triggers;
use super::users::UserDbCache;
use super::visibility::{Visibility, VisibilityCounts};
use crate::event::{Collector, Event, EventType, Internal, Process};

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
    /// for `proc.exe_written_after_start` (see [`ProcScanner::drift_fact`]).
    pub drift: Option<Arc<DriftRegistry>>,
    /// In trace mode, the link to the tracer: new processes are handed to it to seize, and
    /// exec/exit events of the pids it holds are left to it (see [`super::tracer`]).
    pub tracer: Option<super::tracer::TracerLink>,
    /// Raised whenever triggers fire, for other collectors that react to execs (the sockets
    /// collector polls soon after).
    pub exec_signal: Option<super::triggers::ExecSignal>,
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

/// Start times derive from the boot time in whole seconds (`btime`) plus clock ticks, so a
/// container's start time can be off by up to a second: an executable's ctime must be later
/// than the start by more than this to count as written after the start (the file collector
/// covers the first second).
pub const DRIFT_CLOCK_SLACK: Duration = Duration::from_secs(1);

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
}

/// Delays before re-reading a process caught in the middle of an exec, within one scan.
const SETTLE_DELAYS: [Duration; 3] = [
    Duration::from_micros(200),
    Duration::from_millis(1),
    Duration::from_millis(3),
];

/// Most time one scan spends waiting for execs in progress to complete; past it, unsettled
/// processes are put off to the next scan without waiting (a storm of execs cannot stall the
/// scanner).
const SETTLE_BUDGET: Duration = Duration::from_millis(10);

/// Scans a report is put off at most while the process stays unsettled; it is then reported
/// as read (a process whose command line really is empty).
const MAX_DEFERRALS: u8 = 3;

/// A process whose last read was not settled and whose report is put off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Unsettled {
    /// Reported as a new process (`execve` or `clone`) once settled, else as an exec in place.
    new: bool,
    /// Procscan reports it even if the tracer holds the process by then (see
    /// [`ProcScanner::emit_image`]).
    owned: bool,
    /// Scans it has been put off so far.
    deferrals: u8,
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

/// What the monitor knows about itself, for exclusion.
#[derive(Debug, Clone, Default)]
struct SelfInfo {
    pid: Option<i32>,
    container: Option<String>,
    mnt_ns: Option<u64>,
}

/// Pids the kernel allocated between two readings of `ns_last_pid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct AllocRange {
    /// Half-open ranges `[start, end)`.
    parts: [(i32, i32); 2],
}

/// After wrapping, the kernel allocates from here (`RESERVED_PIDS`).
const RESERVED_PIDS: i32 = 300;

/// Past this many pids in one range, missed processes are estimated instead of probed.
const MAX_MISSED_PROBES: usize = 8192;

impl AllocRange {
    fn empty() -> AllocRange {
        AllocRange {
            parts: [(0, 0), (0, 0)],
        }
    }

    fn new(prev: i32, cur: i32, pid_max: i32) -> AllocRange {
        if cur >= prev {
            AllocRange {
                parts: [(prev + 1, cur + 1), (0, 0)],
            }
        } else {
            let low = if pid_max > RESERVED_PIDS {
                RESERVED_PIDS
            } else {
                1
            };
            AllocRange {
                parts: [(prev + 1, pid_max), (low, cur + 1)],
            }
        }
    }

    fn contains(&self, pid: i32) -> bool {
        self.parts.iter().any(|&(s, e)| pid >= s && pid < e)
    }

    fn len(&self) -> usize {
        self.parts
            .iter()
            .map(|&(s, e)| usize::try_from(e - s).unwrap_or(0))
            .sum()
    }

    fn iter(&self) -> impl Iterator<Item = i32> + '_ {
        self.parts.iter().flat_map(|&(s, e)| s..e)
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
    track: std::collections::HashMap<ProcKey, Track>,
    users: UserDbCache,
    me: SelfInfo,
    pause_container: Option<String>,
    last_pid: Option<i32>,
    pid_max: i32,
    triggers: Option<Triggers>,
    watch_limit_reported: bool,
    buf: Vec<u8>,
    pids: Vec<i32>,
    seen: HashSet<i32>,
    stats: ScanStats,
    last_warning: Option<Instant>,
    /// Time this scan has waited for execs in progress (see [`SETTLE_BUDGET`]).
    settle_spent: Duration,
    /// What the monitor cannot read of each container.
    visibility: Visibility,
    /// Each container's root, opened once through its first process (as that process's owner
    /// where needed): user names and exec triggers are read through it.
    roots: HashMap<Arc<str>, RootHandle>,
}

/// An opened container root.
#[derive(Debug)]
struct RootHandle {
    /// The first process it was opened through.
    pid: i32,
    /// Keeps the descriptor `path` names open.
    _fd: OwnedFd,
    /// `/proc/self/fd/<n>`.
    path: PathBuf,
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
            track: std::collections::HashMap::new(),
            users: UserDbCache::new(Duration::from_secs(1)),
            me,
            pause_container,
            last_pid: None,
            pid_max,
            triggers,
            watch_limit_reported: false,
            buf: Vec::with_capacity(8192),
            pids: Vec::new(),
            seen: HashSet::new(),
            stats: ScanStats::default(),
            last_warning: None,
            settle_spent: Duration::ZERO,
            config,
        })
    }

    /// The process table as of the last scan.
    pub fn process_table(&self) -> &ProcessTable {
        &self.tables.processes
    }

    /// The container table as of the last scan.
    pub fn container_table(&self) -> &ContainerTable {
        &self.tables.containers
    }

    /// A handle other collectors use to read the tables (published after each scan that
    /// changed them).
    pub fn shared_tables(&self) -> SharedTables {
        self.shared.clone()
    }

    /// Counters.
    pub fn stats(&self) -> &ScanStats {
        &self.stats
    }

    /// The configuration.
    pub fn config(&self) -> &ProcScanConfig {
        &self.config
    }

    /// The inotify trigger descriptor, when triggers are on.
    pub fn trigger_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.triggers.as_ref().map(Triggers::fd)
    }

    /// Reads pending trigger events without blocking; returns how many there were.
    pub fn drain_triggers(&mut self) -> usize {
        let Some(triggers) = self.triggers.as_mut() else {
            return 0;
        };
        match triggers.drain() {
            Ok(count) => count,
            Err(error) => {
                if rate_limit(&mut self.last_warning) {
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
        let last_pid_now = std::fs::read_to_string(root.join("sys/kernel/ns_last_pid"))
            .ok()
            .and_then(|t| t.trim().parse::<i32>().ok());
        if let Err(error) = list_pids(&root, &mut self.pids) {
            if rate_limit(&mut self.last_warning) {
                warn!(path = %root.display(), %error, "cannot list the proc root");
            }
            return;
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
            self.seen.insert(pid);
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
            let young = now.saturating_duration_since(track.first_seen) < self.config.young_window;
            let due = now.saturating_duration_since(track.last_check) >= self.config.recheck_period;
            let unsettled = track.unsettled.is_some();
            if !(young || due || unsettled || alloc.contains(pid)) {
                continue;
            }
            track.last_check = now;
            self.stats.stat_checks += 1;
            match read_stat(&root, pid, &mut self.buf) {
                // Vanished since the readdir: the next scan sees it gone.
                None => {}
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
        for (key, _) in self.tables.processes.live() {
            if !self.seen.contains(&key.pid) {
                exits.push(key);
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

    /// Handles a pid not in the table. Returns false when the process vanished before it
    /// could be read.
    fn handle_new(&mut self, stat: Stat, now: Instant, out: &mut Vec<Event>) -> bool {
        let root = self.config.proc_root.clone();
        let key = ProcKey {
            pid: stat.pid,
            start_ticks: stat.starttime,
        };
        if self.tables.processes.get(&key).is_some() {
            // Already known under this key (a recycled-looking reading of the same process).
            return true;
        }
        if stat.is_kernel_thread() {
            let id = self.tables.containers.intern(HOST_ID, None);
            self.insert_minimal(
                key,
                &stat,
                id,
                Exclusion::KernelThread,
                false,
                now,
                String::new(),
                None,
            );
            return true;
        }
        let identity = read_identity(&root, stat, &self.options.access, &mut self.buf);
        let cgroup = identity
            .cgroup
            .as_deref()
            .map(parse_cgroup)
            .unwrap_or_else(|| CgroupInfo {
                container_id: None,
                path: "/".into(),
            });
        let container_id = cgroup
            .container_id
            .clone()
            .unwrap_or_else(|| HOST_ID.to_string());
        let (exclusion, container_level) = self.exclusion_for(&identity, &container_id);
        let id = self
            .tables
            .containers
            .intern(&container_id, exclusion.filter(|_| container_level));
        if let Some(exclusion) = exclusion {
            let stat = identity.stat.clone();
            self.insert_minimal(
                key,
                &stat,
                id,
                exclusion,
                container_level,
                now,
                cgroup.path,
                identity.mnt_ns,
            );
            return true;
        }
        let Some(read) = self.read_settled(identity) else {
            return false;
        };
        let settled = read.settled;
        self.visibility.note_process(
            &id,
            key.pid,
            &read.process.name,
            read.process.uid,
            read.unreadable,
            read.diagnosis,
        );
        let mut process = read.process;
        self.tables.containers.add_member(
            &id,
            MemberInfo {
                key,
                cgroup: cgroup.path.clone(),
                mnt_ns: read.mnt_ns,
                start_time: process.start_time,
            },
        );
        self.resolve_users(&id, &mut process, now);
        process.exe_written_after_start = self.drift_fact(&id, &process, read.exe_id);
        let entry = ProcEntry {
            process: Arc::new(process),
            container_id: id,
            excluded: None,
            exited_at: None,
        };
        self.tables.processes.insert(key, entry.clone());
        // Whether the tracer held this pid before procscan asked for it (below). A process
        // seized on procscan's request (the tracer thread may do it before procscan is done
        // with it) is already running its image: only procscan can report that exec.
        let traced_before = self.traced(key.pid);
        self.track.insert(
            key,
            Track {
                stat: read.stat,
                first_seen: now,
                last_check: now,
                cgroup: cgroup.path,
                mnt_ns: read.mnt_ns,
                unsettled: (!settled).then_some(Unsettled {
                    new: true,
                    owned: !traced_before,
                    deferrals: 1,
                }),
            },
        );
        self.dirty = true;
        if let Some(link) = &self.config.tracer {
            // A child of a traced process was attached by the kernel at fork (its TracerPid is
            // the monitor's): the tracer reports it. A child forked before its parent was
            // seized is not, and is handed to the tracer like anything else.
            if link.holds(entry.process.ppid)
                && entry
                    .process
                    .tracer_pid
                    .is_some_and(|tracer| link.is_tracer(tracer))
            {
                return true;
            }
            link.request_seize(
                key.pid,
                super::tracer::SeenImage {
                    name: entry.process.name.clone(),
                    exe_id: read.exe_id,
                },
            );
        }
        if !settled {
            // Caught in the middle of an exec: reported once read again (next scan).
            self.stats.deferred += 1;
            return true;
        }
        self.emit_image(key, true, !traced_before, out);
        true
    }

    /// Reports the process `key` as the table holds it: as a new process (`new`) or an exec
    /// in place. Nothing when the tracer reports it: it does when it holds the process,
    /// unless procscan `owned` the report (a first sight of a process that the tracer seized
    /// only on procscan's request, after its exec).
    fn emit_image(&mut self, key: ProcKey, new: bool, owned: bool, out: &mut Vec<Event>) {
        if !owned && self.traced(key.pid) {
            return;
        }
        let Some(entry) = self.tables.processes.get(&key).cloned() else {
            return;
        };
        let evt_type = if new {
            self.stats.new_processes += 1;
            // A child that still runs exactly its parent's image has only forked (so far):
            // that is a `clone`, not an `execve`. Its exec, if it comes, is caught by the
            // young-process re-checks and reported as `execve` then.
            let fork_copy = self
                .tables
                .processes
                .parent(&key)
                .is_some_and(|(_, parent)| same_image(&parent.process, &entry.process));
            if fork_copy {
                EventType::Clone
            } else {
                EventType::Execve
            }
        } else {
            self.stats.execs += 1;
            EventType::Execve
        };
        out.push(self.event_for(evt_type, key, &entry));
    }

    /// Reads a process in full. A read that is not settled (the process was caught in the
    /// middle of an exec, see [`super::proc::ProcRead::settled`]) is repeated after short
    /// delays ([`SETTLE_DELAYS`], within the scan's [`SETTLE_BUDGET`]); the last read is
    /// returned, settled or not. `None` when the process vanished before a first complete
    /// read.
    fn read_settled(&mut self, identity: ProcIdentity) -> Option<ProcRead> {
        let root = self.config.proc_root.clone();
        let (cgroup, mnt_ns, dir_owner, ns_denied) = (
            identity.cgroup.clone(),
            identity.mnt_ns,
            identity.dir_owner,
            identity.ns_denied,
        );
        let pid = identity.stat.pid;
        let mut read = read_process(&root, identity, &self.clock, &self.options, &mut self.buf)?;
        self.stats.full_reads += 1;
        for delay in SETTLE_DELAYS {
            if read.settled || self.settle_spent + delay > SETTLE_BUDGET {
                break;
            }
            std::thread::sleep(delay);
            self.settle_spent += delay;
            self.stats.settle_retries += 1;
            // Gone or recycled meanwhile: the last read stands (its exit is seen next scan).
            let Some(stat) = read_stat(&root, pid, &mut self.buf) else {
                break;
            };
            if stat.starttime != read.stat.starttime {
                break;
            }
            let identity = ProcIdentity {
                stat,
                cgroup: cgroup.clone(),
                mnt_ns,
                dir_owner,
                ns_denied,
            };
            match read_process(&root, identity, &self.clock, &self.options, &mut self.buf) {
                Some(again) => {
                    self.stats.full_reads += 1;
                    read = again;
                }
                None => break,
            }
        }
        Some(read)
    }

    #[allow(clippy::too_many_arguments)]
    fn insert_minimal(
        &mut self,
        key: ProcKey,
        stat: &Stat,
        id: Arc<str>,
        exclusion: Exclusion,
        container_level: bool,
        now: Instant,
        cgroup: String,
        mnt_ns: Option<u64>,
    ) {
        let process = Process {
            pid: key.pid,
            ppid: stat.ppid,
            start_ticks: key.start_ticks,
            start_time: Some(self.clock.start_time(key.start_ticks)),
            name: stat.comm.clone(),
            ..Process::default()
        };
        // A process excluded on its own (pid 1, the monitor on a host) is not a member: it
        // must not become the root process its container's files are reached through.
        if container_level {
            self.tables.containers.add_member(
                &id,
                MemberInfo {
                    key,
                    cgroup: cgroup.clone(),
                    mnt_ns,
                    start_time: process.start_time,
                },
            );
        }
        self.tables.processes.insert(
            key,
            ProcEntry {
                process: Arc::new(process),
                container_id: id,
                excluded: Some(exclusion),
                exited_at: None,
            },
        );
        // Excluded processes are still re-checked for pid reuse, with a spread-out schedule.
        let offset = Duration::from_millis(u64::from(key.pid.unsigned_abs()) % 1000);
        self.track.insert(
            key,
            Track {
                stat: stat.clone(),
                first_seen: now.checked_sub(self.config.young_window).unwrap_or(now),
                last_check: now.checked_sub(offset).unwrap_or(now),
                cgroup,
                mnt_ns,
                unsettled: None,
            },
        );
        self.dirty = true;
    }

    fn handle_exec(&mut self, key: ProcKey, stat: Stat, now: Instant, out: &mut Vec<Event>) {
        let root = self.config.proc_root.clone();
        let Some(entry) = self.tables.processes.get(&key).cloned() else {
            return;
        };
        let prior = self.track.get(&key).and_then(|t| t.unsettled);
        let identity = read_identity(&root, stat, &self.options.access, &mut self.buf);
        let Some(read) = self.read_settled(identity) else {
            return;
        };
        if read.stat.starttime != key.start_ticks {
            return;
        }
        let settled = read.settled;
        self.visibility.note_process(
            &entry.container_id,
            key.pid,
            &read.process.name,
            read.process.uid,
            read.unreadable,
            read.diagnosis,
        );
        let mut process = read.process;
        self.resolve_users(&entry.container_id, &mut process, now);
        process.exe_written_after_start =
            self.drift_fact(&entry.container_id, &process, read.exe_id);
        self.tables.processes.update_process(key, Arc::new(process));
        let new = prior.is_some_and(|u| u.new);
        let owned = prior.is_some_and(|u| u.owned);
        let deferrals = prior.map_or(0, |u| u.deferrals);
        let put_off = !settled && deferrals < MAX_DEFERRALS;
        if let Some(track) = self.track.get_mut(&key) {
            track.stat = read.stat;
            track.unsettled = put_off.then_some(Unsettled {
                new,
                owned,
                deferrals: deferrals + 1,
            });
        }
        self.dirty = true;
        if put_off {
            // Still in the middle of an exec: reported once read again.
            if !self.traced(key.pid) {
                self.stats.deferred += 1;
            }
            return;
        }
        self.emit_image(key, new, owned, out);
    }

    /// `proc.exe_written_after_start`: true when the file collector saw the executable
    /// written in this container (by path inside the container or by inode; immune to forged
    /// timestamps), or when the executable's inode change time (which `touch -d` cannot set)
    /// is later than the container's start plus [`DRIFT_CLOCK_SLACK`]; false when neither
    /// holds and both times are known; unknown otherwise (and outside containers).
    pub fn drift_fact(
        &self,
        container_id: &str,
        process: &Process,
        exe_id: Option<(u64, u64)>,
    ) -> Option<bool> {
        let start = self
            .tables
            .containers
            .get(container_id)
            .and_then(|c| c.container.start_time);
        drift_fact(
            self.config.drift.as_deref(),
            start,
            container_id,
            process,
            exe_id,
        )
    }

    /// Whether the tracer reports this pid's exec and exit events (trace mode).
    fn traced(&self, pid: i32) -> bool {
        self.config
            .tracer
            .as_ref()
            .is_some_and(|link| link.covers(pid))
    }

    /// Whether a new process is excluded, and whether the exclusion covers its whole container.
    fn exclusion_for(
        &self,
        identity: &ProcIdentity,
        container_id: &str,
    ) -> (Option<Exclusion>, bool) {
        let pid = identity.stat.pid;
        if self.config.exclude_pause {
            if let Some(pause) = &self.pause_container
                && pause == container_id
            {
                return (Some(Exclusion::Pause), true);
            }
            if pid == 1 {
                return (Some(Exclusion::Pause), false);
            }
        }
        if self.config.exclude_self {
            if let Some(mine) = &self.me.container
                && mine == container_id
            {
                return (Some(Exclusion::Monitor), true);
            }
            if self.me.pid == Some(pid)
                || (self.me.mnt_ns.is_some() && identity.mnt_ns == self.me.mnt_ns)
            {
                return (Some(Exclusion::Monitor), false);
            }
            let ppid = identity.stat.ppid;
            if let Some(start) = self.tables.processes.live_start(ppid)
                && let Some(parent) = self.tables.processes.get(&ProcKey {
                    pid: ppid,
                    start_ticks: start,
                })
                && parent.excluded == Some(Exclusion::Monitor)
            {
                return (Some(Exclusion::Monitor), false);
            }
        }
        (None, false)
    }

    /// The path through which container `id`'s root is reached (`/proc/self/fd/<n>` of a
    /// descriptor opened through its first process), opening it on first use or when the
    /// first process changed. The first opening of each container also checks what the
    /// monitor can see there (see [`Visibility::note_root`]). `None` while the container has no
    /// first process, or its first process is still in the monitor's own root (in setup).
    fn root_of(&mut self, id: &str) -> Option<PathBuf> {
        let (key, entry) = self.tables.containers.get_key_value(id)?;
        let pid = entry.container.root_pid?;
        if let Some(handle) = self.roots.get(id)
            && handle.pid == pid
        {
            return Some(handle.path.clone());
        }
        let key = key.clone();
        let opened = self.options.access.open_root(&self.config.proc_root, pid);
        // A container process still in the monitor's own root is in its setup, before it
        // moved into its container root (the emulated tasks' containers; on Fargate roots never
        // coincide). Host processes do share it.
        if let Ok(fd) = &opened
            && id != HOST_ID
            && super::visibility::is_own_root(fd)
        {
            return None;
        }
        if !self.visibility.root_checked(id) {
            let diagnosis = opened.as_ref().err().map(|_| self.root_diagnosis(pid));
            self.visibility.note_root(&key, opened.as_ref(), diagnosis);
        }
        let fd = opened.ok()?;
        // A new descriptor may reuse the number of the one it replaces: the user databases
        // cached under the old path are dropped.
        self.users.forget(id);
        let path = super::visibility::fd_path(&fd);
        self.roots.insert(
            key,
            RootHandle {
                pid,
                _fd: fd,
                path: path.clone(),
            },
        );
        Some(path)
    }

    /// Why the root of a container whose first process is `pid` was refused.
    fn root_diagnosis(&self, pid: i32) -> Diagnosis {
        let entry = self.tables.processes.live_start(pid).and_then(|start| {
            self.tables.processes.get(&ProcKey {
                pid,
                start_ticks: start,
            })
        });
        let process = entry.map(|e| &e.process);
        Diagnosis::of(
            self.options.access.privileges(),
            super::access::dir_owner(&self.config.proc_root, pid),
            [
                process.and_then(|p| p.uid),
                process.and_then(|p| p.euid),
                process.and_then(|p| p.euid),
            ],
            [
                process.and_then(|p| p.gid),
                process.and_then(|p| p.egid),
                process.and_then(|p| p.egid),
            ],
            process.and_then(|p| p.cap_permitted),
            false,
        )
    }

    fn resolve_users(&mut self, container_id: &str, process: &mut Process, now: Instant) {
        let Some(root) = self.root_of(container_id) else {
            return;
        };
        let resolved = self
            .users
            .resolve(container_id, &root, process.euid, process.egid, now);
        process.user = resolved.user;
        process.user_home = resolved.home;
        process.user_shell = resolved.shell;
        process.group = resolved.group;
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

    fn count_missed(
        &self,
        alloc: &AllocRange,
        new_pids: &HashSet<i32>,
        exited_pids: &HashSet<i32>,
    ) -> u64 {
        let len = alloc.len();
        if len == 0 {
            return 0;
        }
        if len > MAX_MISSED_PROBES {
            // Too many to probe one by one: estimate from what was seen.
            let seen = new_pids.len() + exited_pids.len();
            return u64::try_from(len.saturating_sub(seen)).unwrap_or(u64::MAX);
        }
        let mut missed = 0;
        for pid in alloc.iter() {
            if new_pids.contains(&pid) || exited_pids.contains(&pid) {
                continue;
            }
            // In trace mode, a pid the tracer saw is not missed.
            if self.config.tracer.as_ref().is_some_and(|l| l.covers(pid)) {
                continue;
            }
            if self.config.proc_root.join(pid.to_string()).exists() {
                continue;
            }
            missed += 1;
        }
        missed
    }

    fn sync_triggers(&mut self, out: &mut Vec<Event>) {
        let Some(triggers) = self.triggers.as_mut() else {
            return;
        };
        let gone: Vec<Arc<str>> = triggers
            .watched()
            .filter(|id| {
                self.tables
                    .containers
                    .get(id)
                    .is_none_or(|c| c.gone_at.is_some())
            })
            .cloned()
            .collect();
        for id in gone {
            triggers.remove_container(&id);
        }
        if self.watch_limit_reported {
            return;
        }
        let wanted: Vec<Arc<str>> = self
            .tables
            .containers
            .iter()
            .filter(|(id, entry)| {
                entry.excluded.is_none() && entry.gone_at.is_none() && !triggers.is_watched(id)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in wanted {
            let Some(root) = self.root_of(&id) else {
                continue;
            };
            let Some(triggers) = self.triggers.as_mut() else {
                return;
            };
            let outcome = triggers.add_container(id.clone(), &root);
            if outcome.limit_hit {
                self.watch_limit_reported = true;
                warn!(container = %id, "inotify watch limit reached; exec triggers degraded to polling");
                let mut event = Event::new(EventType::Tasksentry, Collector::Procscan);
                event.internal = Some(Box::new(Internal {
                    kind: "watch_limit".into(),
                    message: format!(
                        "the inotify watch limit was reached while adding exec triggers for container {id}; new processes there are found by polling only"
                    ),
                    count: None,
                }));
                out.push(event);
                break;
            }
        }
    }
}

fn read_self_info(root: &Path) -> SelfInfo {
    let pid = read_link_string(&root.join("self")).and_then(|t| t.parse().ok());
    let cgroup = std::fs::read_to_string(root.join("self/cgroup"))
        .ok()
        .map(|text| parse_cgroup(&text));
    let mnt_ns = read_link_string(&root.join("self/ns/mnt"))
        .as_deref()
        .and_then(parse_ns_link);
    let init_mnt_ns = read_link_string(&root.join("1/ns/mnt"))
        .as_deref()
        .and_then(parse_ns_link);
    // The monitor is a sidecar of its own when it has a mount namespace of its own (pid 1,
    // the task's pause process, is known to be elsewhere) or an ECS container cgroup. Anywhere
    // else (a developer's host, a plain container it shares with everything) excluding "our
    // container" or "our mount namespace" would hide every process, so only the monitor's
    // own pid and descendants are excluded.
    let own_mnt_ns = match (mnt_ns, init_mnt_ns) {
        (Some(mine), Some(init)) if mine != init => Some(mine),
        _ => None,
    };
    let ecs_cgroup = cgroup
        .as_ref()
        .is_some_and(|info| info.path.contains("/ecs/"));
    let container = cgroup
        .and_then(|info| info.container_id)
        .filter(|_| ecs_cgroup || own_mnt_ns.is_some());
    SelfInfo {
        pid,
        container,
        mnt_ns: own_mnt_ns,
    }
}

/// Whether two processes run the same program with the same command line (a fork copy).
fn same_image(parent: &Process, child: &Process) -> bool {
    parent.name == child.name
        && parent.exepath == child.exepath
        && parent.exe == child.exe
        && parent.args == child.args
        && parent.exe_deleted == child.exe_deleted
}

/// Lists the numeric entries of the proc root.
fn list_pids(root: &Path, pids: &mut Vec<i32>) -> io::Result<()> {
    pids.clear();
    for entry in std::fs::read_dir(root)? {
        let Ok(entry) = entry else {
            continue;
        };
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        if let Ok(pid) = name.parse::<i32>()
            && pid > 0
        {
            pids.push(pid);
        }
    }
    Ok(())
}

/// True at most once a minute per limiter.
fn rate_limit(last: &mut Option<Instant>) -> bool {
    let now = Instant::now();
    if last.is_some_and(|at| now.saturating_duration_since(at) < Duration::from_secs(60)) {
        return false;
    }
    *last = Some(now);
    true
}

/// Starts the procscan collector on its own OS thread. Events go to `tx` with `try_send`: the
/// scanner never blocks on a full queue; it counts what it drops and reports the count as a
/// `tasksentry`/`events_dropped` event as soon as there is room. The thread ends when
/// `shutdown` is set or the receiver is dropped.
pub fn spawn_procscan(
    config: ProcScanConfig,
    tx: SyncSender<Event>,
    shutdown: Arc<AtomicBool>,
) -> io::Result<JoinHandle<()>> {
    spawn_procscan_shared(config, tx, shutdown).map(|(handle, _)| handle)
}

/// Like [`spawn_procscan`], and also returns the handle other collectors read the process and
/// container tables through.
pub fn spawn_procscan_shared(
    config: ProcScanConfig,
    tx: SyncSender<Event>,
    shutdown: Arc<AtomicBool>,
) -> io::Result<(JoinHandle<()>, SharedTables)> {
    let scanner = ProcScanner::new(config).map_err(io::Error::other)?;
    let shared = scanner.shared_tables();
    let handle = std::thread::Builder::new()
        .name("procscan".into())
        .spawn(move || run_loop(scanner, tx, shutdown))?;
    Ok((handle, shared))
}

/// The collector thread: periodic scans plus trigger-driven scans, spaced so that a storm of
/// triggers (a fork bomb) cannot keep the thread busy more than about half the time.
fn run_loop(mut scanner: ProcScanner, tx: SyncSender<Event>, shutdown: Arc<AtomicBool>) {
    let interval = scanner.config.interval.max(Duration::from_millis(1));
    let delay = scanner.config.trigger_delay;
    let min_spacing = scanner.config.trigger_min_spacing;
    let mut sender = DropCountingSender::new(tx, Collector::Procscan);
    let mut out = Vec::new();
    let mut next_tick = Instant::now();
    let mut trigger_at: Option<Instant> = None;
    let mut earliest_trigger_scan = Instant::now();
    while !shutdown.load(Ordering::Relaxed) {
        let now = Instant::now();
        let due = trigger_at.map_or(next_tick, |t| t.min(next_tick));
        if now < due {
            // Wake at least every 200 ms to notice shutdown.
            let wait = (due - now).min(Duration::from_millis(200));
            if wait_for_trigger(&scanner, wait) && scanner.drain_triggers() > 0 {
                let at = (Instant::now() + delay).max(earliest_trigger_scan);
                trigger_at = Some(trigger_at.map_or(at, |t| t.min(at)));
            }
            continue;
        }
        // Triggers that arrived meanwhile are covered by this scan.
        scanner.drain_triggers();
        trigger_at = None;
        let started = Instant::now();
        scanner.scan(&mut out);
        let finished = Instant::now();
        earliest_trigger_scan = finished + min_spacing.max(finished - started);
        next_tick = finished + interval;
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

/// Waits up to `wait` for the trigger descriptor to become readable (or just sleeps when
/// triggers are off). Returns whether it is readable.
fn wait_for_trigger(scanner: &ProcScanner, wait: Duration) -> bool {
    let Some(fd) = scanner.trigger_fd() else {
        std::thread::sleep(wait);
        return false;
    };
    let millis = u16::try_from(wait.as_millis().max(1)).unwrap_or(u16::MAX);
    let mut fds = [nix::poll::PollFd::new(fd, nix::poll::PollFlags::POLLIN)];
    match nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(millis)) {
        Ok(n) => n > 0,
        Err(_) => false,
    }
}

/// The drift fact (see [`ProcScanner::drift_fact`]) from its inputs, shared with the tracer:
/// `container_start` is the container's start time when known.
pub(crate) fn drift_fact(
    drift: Option<&DriftRegistry>,
    container_start: Option<crate::event::Timestamp>,
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
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn alloc_range_plain_and_wrapped() {
        let r = AllocRange::new(100, 105, 32768);
        assert_eq!(r.len(), 5);
        assert!(!r.contains(100));
        assert!(r.contains(101) && r.contains(105));
        assert_eq!(r.iter().collect::<Vec<_>>(), vec![101, 102, 103, 104, 105]);
        let w = AllocRange::new(32765, 302, 32768);
        assert_eq!(
            w.iter().collect::<Vec<_>>(),
            vec![32766, 32767, 300, 301, 302]
        );
        assert!(!w.contains(5));
        assert_eq!(AllocRange::empty().len(), 0);
    }
}
