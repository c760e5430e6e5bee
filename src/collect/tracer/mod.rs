//! The tracer collector (`--mode trace`): an event-only ptrace tracer that sees every exec,
//! fork and exit of the processes it holds, with the process frozen at the exec.
//!
//! Processes are attached with `PTRACE_SEIZE` and the options `TRACEFORK | TRACEVFORK |
//! TRACECLONE | TRACEEXEC`, and never with syscall stops: a tracee stops only at those events,
//! at signal delivery and at group-stops; its exit is learnt when it is reaped. New children are attached by the kernel
//! at fork, before they run, so nothing a traced process starts can escape. Procscan keeps
//! running and hands the tracer every new process it finds (containers that start later,
//! processes that existed at start) through a [`TracerLink`]; the tracer seizes all of its
//! threads. The same link tells procscan which pids the tracer holds, so that procscan drops
//! its own `execve`/`procexit` events for them and nothing is reported twice.
//!
//! Fail-open, exact: `PTRACE_O_EXITKILL` is never set, so if the monitor dies the kernel
//! detaches every tracee and it runs on. A signal-delivery stop is resumed with the very same
//! signal number (real-time signals included: statuses are decoded from the raw `waitpid`
//! value, not through an enum of known signals). A group-stop (`PTRACE_EVENT_STOP` with a stop
//! signal) is resumed with `PTRACE_LISTEN`, which leaves the tracee stopped, as without a
//! tracer, until a `SIGCONT`; job control therefore behaves as usual.
//!
//! Threading and wake-ups: a tracee can only be driven by the thread that attached it, so one
//! dedicated OS thread makes every ptrace call. It sleeps in `poll` on two descriptors: a
//! `signalfd` for `SIGCHLD` (the kernel sends it to the tracer's process for every ptrace stop
//! and exit) and an `eventfd` that [`TracerLink::request_seize`] writes to. Both are level
//! triggered, so a wake-up can never be lost between a check and the sleep (the race a
//! `waitpid` interrupted by a signal would have). After a wake-up the thread reaps every
//! pending status with `waitpid(-1, __WALL | WNOHANG)` until none is left, so coalesced
//! `SIGCHLD`s are harmless. For the `signalfd` to receive `SIGCHLD`, the signal must be blocked
//! in every thread of the monitor: [`block_sigchld`] does that on the main thread before any
//! other thread exists (new threads inherit the mask). As a safety net, in case some thread does
//! not block it, the poll also times out every 100 ms and reaps anyway.
//!
//! Cost to the tracee (see `bench/tracer`): every stop is two context switches the
//! tracee waits for, so the thread keeps the stopped time short. A fork or signal stop is
//! resumed right after `waitpid` (and `PTRACE_GETEVENTMSG` for a fork); so is the first stop of
//! a new child, even when it arrives before its parent's fork event (nothing is read about it
//! before resuming it; see [`Tracer::classify`]). At an exec stop only what the rules need
//! about the exec itself is read while it is frozen (see [`frozen`]: the command line, from
//! the top of its stack found with its stack pointer, the `exe` link and the identity of the
//! file, through one `/proc/<pid>` descriptor); it is resumed, and `stat`, the environment,
//! descriptors 0-2, `cwd` and `status` are read right after, before anything is reaped.
//! Everything else (user names, container lookups, ancestry, building events) is queued and
//! done between stops: pending stops are reaped and resumed between pieces of that work (every
//! 30 µs of it at most).
//! The queue of that work is bounded ([`MAX_WORK`]): when it is full, stops are left pending
//! (the tracees wait) until the work is done.
//! Events are handed to the engine in batches, at most [`FLUSH_INTERVAL`] late (also while
//! stops keep coming: the batch is looked at between pieces of work), so the engine
//! is woken once per batch rather than per event; after a quiet spell (no batch handed over
//! for that long) a batch without a withdrawable `clone` goes out at once. A
//! fork that execs before its `clone` event was handed over is reported by its `execve` alone
//! (the `clone` is withdrawn): that halves the events of a fork-exec loop.
//!
//! Events leave through the same bounded queue as procscan's, with `try_send`; drops are
//! counted and reported as `tasksentry`/`events_dropped`.
//!
//! Files: this one holds the thread's loop and batching; `stops.rs` the hot path (statuses,
//! seizing), `frozen.rs` the reads at an exec stop, `stack.rs` the layout of the stack there, `work.rs` what is done between stops,
//! `ptrace.rs` the raw ptrace calls; the link to procscan is `shared/tracer_link.rs`.

mod frozen;
mod ptrace;
mod stack;
mod stops;
mod work;

use std::collections::{HashMap, HashSet, VecDeque};
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::SyncSender;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, pthread_sigmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use tracing::warn;

use super::proc::{Clock, read_link_string};
use super::sender::DropCountingSender;
use super::shared::log_limit::LogLimit;
use super::shared::tracer_link::EXITED_GRACE;
use super::shared::users::UserDbCache;
use super::shared::{DriftRegistry, ExecSignal, SharedTables, TracerLink};
use crate::event::{Collector, Event, Process, Timestamp};
use crate::procfs::{DEFAULT_ENV_ALLOWLIST, parse_status};
use frozen::{Frozen, FrozenReader};

/// The poll timeout: the safety net if `SIGCHLD` is not blocked everywhere, and how often
/// shutdown is checked.
const POLL_TIMEOUT_MS: u16 = 100;

/// How long events wait in the tracer at most before they are handed to the engine: handing
/// them over in batches wakes the engine once per batch rather than once per event.
const FLUSH_INTERVAL: Duration = Duration::from_millis(20);

/// A batch this large is handed over at once.
const MAX_BATCH: usize = 512;

/// Most pieces of work (see [`Work`]) queued behind the stops. When the tracees stop faster
/// than the tracer can finish their work (a sustained exec rate above what this thread gets of
/// the CPU), no more stops are reaped until the queue is below this again: the tracees wait
/// in their stops, as they would for a slower tracer, instead of the queue (and the events it
/// will become) growing without bound. About 2 MiB and a few tens of milliseconds of work.
const MAX_WORK: usize = 1024;

/// Longest run of work before the loop takes seize requests, purges and flushes again.
const WORK_SLICE: Duration = Duration::from_millis(10);

/// Settings of the tracer.
#[derive(Debug, Clone)]
pub(crate) struct TracerConfig {
    /// Where `/proc` is.
    pub proc_root: PathBuf,
    /// Environment variable names kept in `proc.env`.
    pub env_allowlist: Vec<String>,
    /// Cap on the command-line bytes kept per process.
    pub max_cmdline_bytes: usize,
    /// What the file collector saw written, for `proc.exe_written_after_start` (as procscan).
    pub drift: Option<Arc<DriftRegistry>>,
    /// Raised after each exec (once the tracee runs again) so the sockets collector polls soon.
    pub(crate) exec_signal: Option<ExecSignal>,
}

impl Default for TracerConfig {
    fn default() -> Self {
        TracerConfig {
            proc_root: PathBuf::from("/proc"),
            env_allowlist: DEFAULT_ENV_ALLOWLIST
                .iter()
                .map(|s| s.to_string())
                .collect(),
            max_cmdline_bytes: 64 * 1024,
            drift: None,
            exec_signal: None,
        }
    }
}

/// Blocks `SIGCHLD` in the calling thread, and so in every thread it starts afterwards. Call it
/// on the main thread before any other thread is started (see the module documentation).
pub(crate) fn block_sigchld() -> nix::Result<()> {
    let mut set = SigSet::empty();
    set.add(Signal::SIGCHLD);
    pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), None)
}

/// Why tracing is not possible here (for `--mode auto`), or `Ok` when it should work: the
/// monitor has `CAP_SYS_PTRACE` in its effective set and Yama does not forbid attaching.
pub(crate) fn trace_possible(proc_root: &Path) -> Result<(), String> {
    let status = std::fs::read_to_string(proc_root.join("self/status"))
        .map_err(|error| format!("cannot read {}/self/status: {error}", proc_root.display()))?;
    let caps = parse_status(&status).cap_eff.unwrap_or(0);
    const CAP_SYS_PTRACE: u32 = 19;
    if caps & (1 << CAP_SYS_PTRACE) == 0 {
        return Err("the monitor lacks the SYS_PTRACE capability".into());
    }
    if let Ok(scope) = std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope")
        && scope.trim() == "3"
    {
        return Err("kernel.yama.ptrace_scope is 3 (no process may attach)".into());
    }
    Ok(())
}

/// Starts the tracer thread. `link` must be the one given to procscan; `tables` are procscan's
/// shared tables (for container attribution and ancestry). Call [`block_sigchld`] first.
pub(crate) fn spawn_tracer(
    config: TracerConfig,
    link: TracerLink,
    tables: SharedTables,
    tx: SyncSender<Event>,
    shutdown: Arc<AtomicBool>,
) -> io::Result<JoinHandle<()>> {
    let clock = Clock::read(&config.proc_root);
    let self_pid = i32::try_from(std::process::id()).unwrap_or(-1);
    // The monitor's pid as seen in the proc root (it differs when the proc root is another
    // PID namespace's).
    let self_ns_pid = read_link_string(&config.proc_root.join("self"))
        .and_then(|t| t.parse().ok())
        .unwrap_or(self_pid);
    link.set_tracer_pid(self_ns_pid);
    std::thread::Builder::new()
        .name("tracer".into())
        .spawn(move || {
            // Tracees show the tracing *thread* in their TracerPid, so the link must know this
            // thread's id in the proc root's namespace (`thread-self` is `<pid>/task/<tid>`).
            let self_tid = read_link_string(&config.proc_root.join("thread-self"))
                .and_then(|t| t.rsplit('/').next().and_then(|tid| tid.parse().ok()))
                .unwrap_or(self_ns_pid);
            link.set_tracer_pid(self_tid);
            let mut tracer = Tracer::new(
                config,
                link,
                tables,
                DropCountingSender::new(tx, Collector::Tracer),
                [self_pid, self_ns_pid, self_tid],
                clock,
            );
            tracer.run(&shutdown);
        })
}

impl Tracer {
    /// A tracer with nothing traced yet (`spawn_tracer` runs it on its own thread).
    fn new(
        config: TracerConfig,
        link: TracerLink,
        tables: SharedTables,
        sender: DropCountingSender,
        self_pids: [i32; 3],
        clock: Clock,
    ) -> Tracer {
        Tracer {
            frozen: FrozenReader::new(
                config.proc_root.clone(),
                config.env_allowlist.clone(),
                config.max_cmdline_bytes,
            ),
            drift: config.drift,
            exec_signal: config.exec_signal,
            proc_root: config.proc_root,
            clock,
            link,
            tables,
            users: UserDbCache::new(Duration::from_secs(1)),
            tracees: HashMap::new(),
            unclassified: HashMap::new(),
            multithreaded: HashSet::new(),
            idents: HashMap::new(),
            procs: HashMap::new(),
            conflicts: HashSet::new(),
            self_pids,
            buf: Vec::with_capacity(8192),
            work: VecDeque::new(),
            batch: Vec::new(),
            batch_since: None,
            last_flush: Instant::now(),
            last_reap: Instant::now(),
            clone_slots: HashMap::new(),
            sender,
            closed: false,
            last_warning: LogLimit::default(),
        }
    }
}

/// One traced thread.
#[derive(Debug, Clone, Copy)]
struct Tracee {
    /// Its thread group (process) id.
    tgid: i32,
}

/// What the tracer knows about one traced process, for clone events, ancestry and its exit.
/// A process that forked but has not exec'd shares its parent's `process` (the same image);
/// its own pid and parent are `pid` and `ppid`.
#[derive(Debug, Clone)]
struct Known {
    process: Arc<Process>,
    pid: i32,
    ppid: i32,
    container_id: Arc<str>,
}

/// What the exec stop needs to know about a process without reading `/proc`: its container
/// and login uid, both inherited at fork. Kept up to date on the hot path (at each fork and
/// exec stop), while [`Known`] is filled in after the tracee has been resumed.
#[derive(Debug, Clone)]
struct Ident {
    container_id: Arc<str>,
    loginuid: Option<i64>,
}

/// Work left for after the tracees are resumed, in the order of the stops.
#[derive(Debug)]
enum Work {
    /// A traced process forked (fork or vfork) `child`.
    Fork {
        parent_tgid: i32,
        child: i32,
        time: Timestamp,
    },
    /// A process exec'd; read at its exec stop.
    Exec {
        pid: i32,
        read: Box<Frozen>,
        ident: Ident,
        time: Timestamp,
    },
    /// A traced process is gone (reaped).
    Exit {
        pid: i32,
        exit_code: Option<i32>,
        time: Timestamp,
    },
}

/// One place in the batch of events waiting to be handed to the engine.
#[derive(Debug)]
enum Slot {
    Event(Event),
    /// A `clone` event, built when the batch is handed over unless withdrawn before.
    Clone(Box<PendingClone>),
    /// A `clone` withdrawn because the child exec'd.
    Withdrawn,
}

/// A `clone` event not built yet: the child (running its parent's image), its ancestors at the
/// fork, and the time of the fork.
#[derive(Debug)]
struct PendingClone {
    known: Known,
    chain: Vec<(Arc<Process>, i32)>,
    time: Timestamp,
}

/// The tracer thread's state.
struct Tracer {
    proc_root: PathBuf,
    clock: Clock,
    link: TracerLink,
    tables: SharedTables,
    users: UserDbCache,
    tracees: HashMap<i32, Tracee>,
    /// New tracees taken for processes on their first stop, not yet confirmed, and whether a
    /// round of stops has passed since (see [`Tracer::classify`]).
    unclassified: HashMap<i32, bool>,
    /// Processes that have (or had) more than one thread: only their exec stops can come from
    /// a non-leader thread.
    multithreaded: HashSet<i32>,
    idents: HashMap<i32, Ident>,
    procs: HashMap<i32, Known>,
    conflicts: HashSet<i32>,
    self_pids: [i32; 3],
    /// The file collector's drift registry (see [`TracerConfig::drift`]).
    drift: Option<Arc<DriftRegistry>>,
    /// See [`TracerConfig::exec_signal`].
    exec_signal: Option<ExecSignal>,
    buf: Vec<u8>,
    frozen: FrozenReader,
    work: VecDeque<Work>,
    /// Events waiting to be handed to the engine.
    batch: Vec<Slot>,
    /// When the oldest event in `batch` was added.
    batch_since: Option<Instant>,
    /// When a batch was last handed over.
    last_flush: Instant,
    /// When pending stops were last reaped.
    last_reap: Instant,
    /// Index in `batch` of the `clone` event of a child that has not exec'd yet.
    clone_slots: HashMap<i32, usize>,
    sender: DropCountingSender,
    /// The engine is gone.
    closed: bool,
    last_warning: LogLimit,
}

impl Tracer {
    fn run(&mut self, shutdown: &AtomicBool) {
        let mut mask = SigSet::empty();
        mask.add(Signal::SIGCHLD);
        // Block here too: harmless if the main thread already did, and needed for the signalfd
        // if it did not (then the timeout is the fallback).
        let _ = pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&mask), None);
        let sigfd = match SignalFd::with_flags(
            &mask,
            SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC,
        ) {
            Ok(fd) => Some(fd),
            Err(error) => {
                warn!(%error, "cannot create a signalfd for SIGCHLD; the tracer polls every 100 ms");
                None
            }
        };
        let mut last_purge = Instant::now();
        while !shutdown.load(Ordering::Relaxed) && !self.closed {
            let timeout = self.poll_timeout();
            let (requests, sigchld) = {
                let wake = self.link.wake_fd();
                let fds = &mut [
                    PollFd::new(wake, PollFlags::POLLIN),
                    PollFd::new(
                        sigfd.as_ref().map_or(wake, |s| s.as_fd()),
                        PollFlags::POLLIN,
                    ),
                ];
                let n = if sigfd.is_some() { 2 } else { 1 };
                let _ = nix::poll::poll(&mut fds[..n], PollTimeout::from(timeout));
                let ready = |fd: &PollFd| fd.revents().is_some_and(|r| !r.is_empty());
                (ready(&fds[0]), n == 2 && ready(&fds[1]))
            };
            if sigchld && let Some(sigfd) = &sigfd {
                // `SIGCHLD` is a standard signal: however many stops happened, at most one is
                // pending, so one read clears it.
                let _ = sigfd.read_signal();
            }
            if requests {
                for (pid, seen) in self.link.take_requests() {
                    self.seize_process(pid, &seen);
                }
            }
            self.reap();
            self.classify();
            self.do_work();
            let now = Instant::now();
            self.flush_if_due(now);
            if self.closed {
                return;
            }
            if now.saturating_duration_since(last_purge) >= Duration::from_secs(1) {
                self.link.purge(now);
                self.tables.exec_images().purge(now, EXITED_GRACE);
                last_purge = now;
            }
            if !self.sender.flush() {
                return;
            }
        }
        self.flush_batch();
    }

    /// Hands the batch over when it is due: the oldest event waited [`FLUSH_INTERVAL`], or
    /// the batch is full, or nothing was handed over for that long and no `clone` in the batch
    /// may still be withdrawn by its exec (a lone exec after a quiet spell goes out at once).
    fn flush_if_due(&mut self, now: Instant) {
        if self
            .batch_since
            .is_some_and(|since| now.saturating_duration_since(since) >= FLUSH_INTERVAL)
            || self.batch.len() >= MAX_BATCH
            || (self.batch_since.is_some()
                && self.clone_slots.is_empty()
                && now.saturating_duration_since(self.last_flush) >= FLUSH_INTERVAL)
        {
            self.flush_batch();
        }
    }

    /// Until the batch is due, else the safety-net period (ms); 0 while work is left over from
    /// a full slice (see [`WORK_SLICE`]).
    fn poll_timeout(&self) -> u16 {
        if !self.work.is_empty() {
            return 0;
        }
        match self.batch_since {
            Some(since) => {
                let due = FLUSH_INTERVAL.saturating_sub(since.elapsed());
                u16::try_from(due.as_millis())
                    .unwrap_or(POLL_TIMEOUT_MS)
                    .clamp(1, POLL_TIMEOUT_MS)
            }
            None => POLL_TIMEOUT_MS,
        }
    }

    fn push_event(&mut self, event: Event) -> usize {
        self.push_slot(Slot::Event(event))
    }

    fn push_slot(&mut self, slot: Slot) -> usize {
        if self.batch_since.is_none() {
            self.batch_since = Some(Instant::now());
        }
        self.batch.push(slot);
        self.batch.len() - 1
    }

    /// Hands the batch to the engine.
    fn flush_batch(&mut self) {
        self.clone_slots.clear();
        if self.batch_since.take().is_some() {
            self.last_flush = Instant::now();
        }
        for slot in std::mem::take(&mut self.batch) {
            let event = match slot {
                Slot::Event(event) => event,
                Slot::Clone(pending) => self.clone_event(*pending),
                Slot::Withdrawn => continue,
            };
            if !self.sender.send(event) {
                self.closed = true;
                return;
            }
        }
    }

    /// Whether `pid` is the monitor (its pid in either namespace, or the tracing thread).
    fn is_self(&self, pid: i32) -> bool {
        self.self_pids.contains(&pid)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::event::EventType;

    fn tracer() -> (Tracer, std::sync::mpsc::Receiver<Event>) {
        let (tx, rx) = std::sync::mpsc::sync_channel(1024);
        let config = TracerConfig::default();
        let clock = Clock::read(&config.proc_root);
        let tracer = Tracer::new(
            config,
            TracerLink::new().unwrap(),
            SharedTables::default(),
            DropCountingSender::new(tx, Collector::Tracer),
            [-1; 3],
            clock,
        );
        (tracer, rx)
    }

    fn queue_exits(tracer: &mut Tracer, count: i32) {
        for pid in 0..count {
            tracer.work.push_back(Work::Exit {
                // Pids no process has: each piece is bookkeeping only.
                pid: 10_000_000 + pid,
                exit_code: Some(0),
                time: Timestamp::now(),
            });
        }
    }

    /// While stops keep coming, the work queue may never be empty: the batch must still go
    /// out when it is due, and the loop must get its turn (seize requests, purges).
    #[test]
    fn a_due_batch_goes_out_while_work_is_left_and_work_yields_after_a_slice() {
        let (mut tracer, rx) = tracer();
        for _ in 0..3 {
            tracer.push_event(Event::new(EventType::Execve, Collector::Tracer));
        }
        tracer.batch_since = Some(Instant::now() - FLUSH_INTERVAL * 2);
        // Far more than a slice's worth of work.
        queue_exits(&mut tracer, 2_000_000);
        let started = Instant::now();
        tracer.do_work();
        let took = started.elapsed();
        assert_eq!(rx.try_iter().count(), 3, "the due batch was handed over");
        assert!(tracer.batch.is_empty());
        assert!(
            !tracer.work.is_empty(),
            "the slice ended with work left ({took:?})"
        );
        assert!(took >= WORK_SLICE);
    }

    /// A full work queue leaves stops pending: the tracees wait, the queue does not grow.
    #[test]
    fn a_full_work_queue_leaves_statuses_pending_until_it_has_room() {
        let (mut tracer, _rx) = tracer();
        let child = std::process::Command::new("true").spawn().unwrap();
        let pid = i32::try_from(child.id()).unwrap();
        let state = || {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit_once(')')
                        .and_then(|(_, rest)| rest.trim_start().chars().next())
                })
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while state() != Some('Z') {
            assert!(Instant::now() < deadline, "the child never exited");
            std::thread::sleep(Duration::from_millis(5));
        }
        queue_exits(&mut tracer, i32::try_from(MAX_WORK).unwrap());
        tracer.reap();
        assert_eq!(state(), Some('Z'), "its status was left pending");
        assert_eq!(tracer.work.len(), MAX_WORK);
        tracer.work.clear();
        tracer.reap();
        assert_eq!(state(), None, "with room, its status was taken");
        drop(child);
    }

    #[test]
    fn mode_setting_defaults_to_poll_and_layers() {
        use crate::config::{Config, FileConfig, Mode, Overrides};
        let config = Config::layer(Overrides::default(), FileConfig::default()).unwrap();
        assert_eq!(config.mode, Mode::Poll);
        let file = FileConfig::parse("mode: auto\n").unwrap();
        let config = Config::layer(Overrides::default(), file.clone()).unwrap();
        assert_eq!(config.mode, Mode::Auto);
        let flag = Overrides {
            mode: Some(Mode::Trace),
            ..Overrides::default()
        };
        assert_eq!(Config::layer(flag, file).unwrap().mode, Mode::Trace);
        assert!(FileConfig::parse("mode: strace\n").is_err());
    }
}
