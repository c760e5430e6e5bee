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
//! Cost to the tracee (see `scripts/bench-tracer`): every stop is two context switches the
//! tracee waits for, so the thread keeps the stopped time short. A fork or signal stop is
//! resumed right after `waitpid` (and `PTRACE_GETEVENTMSG` for a fork); so is the first stop of
//! a new child, even when it arrives before its parent's fork event (nothing is read about it
//! before resuming it; see [`Tracer::classify`]). At an exec stop only what a process that
//! exits at once would take with it is read while it is frozen (see [`frozen`]: `stat`, the
//! command line and environment from its memory, `exe`, `cwd`, descriptors 0-2, through one
//! `/proc/<pid>` descriptor); it is resumed, and `status` is read right after, before anything
//! is reaped.
//! Everything else (user names, container lookups, ancestry, building events) is queued and
//! done between stops: pending stops are reaped and resumed before each piece of that work.
//! Events are handed to the engine in batches, at most [`FLUSH_INTERVAL`] late, so the engine
//! is woken once per batch rather than per event; after a quiet spell (no batch handed over
//! for that long) a batch without a withdrawable `clone` goes out at once. A
//! fork that execs before its `clone` event was handed over is reported by its `execve` alone
//! (the `clone` is withdrawn): that halves the events of a fork-exec loop.
//!
//! Events leave through the same bounded queue as procscan's, with `try_send`; drops are
//! counted and reported as `tasksentry`/`events_dropped`.

use super::fswatch::DriftRegistry;
use super::sender::DropCountingSender;
use std::collections::{HashMap, HashSet, VecDeque};
use std::io;
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::ptrace::{self, Options};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, pthread_sigmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::unistd::Pid;
use tracing::{debug, warn};

use super::cgroup::{HOST_ID, parse_cgroup};
use super::proc::{Clock, DEFAULT_ENV_ALLOWLIST, parse_status, read_stat};
use super::table::{MAX_ANCESTORS, SharedTables};
use super::users::UserDbCache;
use crate::event::{Ancestor, Collector, Event, EventType, Internal, Process, Timestamp};

mod frozen;
use frozen::{Frozen, FrozenReader, Memory, exe_fields};

/// How long an exited pid stays known as "handled by the tracer", so that procscan, which may
/// notice the exit up to a scan interval later, does not report it again.
const EXITED_GRACE: Duration = Duration::from_secs(10);

/// The poll timeout: the safety net if `SIGCHLD` is not blocked everywhere, and how often
/// shutdown is checked.
const POLL_TIMEOUT_MS: u16 = 100;

/// How long events wait in the tracer at most before they are handed to the engine: handing
/// them over in batches wakes the engine once per batch rather than once per event.
const FLUSH_INTERVAL: Duration = Duration::from_millis(20);

/// A batch this large is handed over at once.
const MAX_BATCH: usize = 512;

/// The ptrace options: event stops only, and never `EXITKILL`. Not `TRACEEXIT` either: the exit
/// status comes with the `waitpid` status of the reaped tracee, and an exit stop would only
/// add a stop (two context switches) to every process's life.
fn trace_options() -> Options {
    Options::PTRACE_O_TRACEFORK
        | Options::PTRACE_O_TRACEVFORK
        | Options::PTRACE_O_TRACECLONE
        | Options::PTRACE_O_TRACEEXEC
}

/// What the tracer says about one pid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Held {
    /// Traced now.
    Live,
    /// Was traced, exited at this time (its `procexit` was reported by the tracer).
    Exited(Instant),
    /// Could not be seized (traced by someone else, or not permitted): procscan covers it.
    Refused,
}

#[derive(Debug)]
struct LinkInner {
    /// The monitor's pid as seen in the proc root (the `TracerPid` of its tracees).
    tracer_pid: std::sync::atomic::AtomicI32,
    held: Mutex<HashMap<i32, Held>>,
    requests: Mutex<Vec<(i32, SeenImage)>>,
    wake: OwnedFd,
}

/// The image procscan saw a process run when it asked for it to be seized: if the process
/// runs another one once seized, it exec'd in between, unseen by the tracer and too late for
/// procscan's report, and the tracer reports that exec.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeenImage {
    /// `comm`.
    pub name: String,
    /// `(device, inode)` of the executable, when known.
    pub exe_id: Option<(u64, u64)>,
}

impl SeenImage {
    /// Whether a process read as `name` running `exe_id` runs another image than this one.
    fn differs(&self, name: &str, exe_id: Option<(u64, u64)>) -> bool {
        self.name != name || (self.exe_id.is_some() && exe_id.is_some() && self.exe_id != exe_id)
    }
}

/// The link between procscan and the tracer: seize requests one way, "which pids does the
/// tracer hold" the other. Cheap to clone.
#[derive(Debug, Clone)]
pub struct TracerLink {
    inner: Arc<LinkInner>,
}

impl TracerLink {
    /// A new link (creates the wake-up `eventfd`).
    pub fn new() -> io::Result<TracerLink> {
        // SAFETY: `eventfd` takes no pointers; a non-negative return is a new descriptor that
        // nothing else owns, so `OwnedFd` may take it.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: see above: `fd` is a fresh, valid descriptor owned by nobody else.
        let wake = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(TracerLink {
            inner: Arc::new(LinkInner {
                tracer_pid: std::sync::atomic::AtomicI32::new(0),
                held: Mutex::new(HashMap::new()),
                requests: Mutex::new(Vec::new()),
                wake,
            }),
        })
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<i32, Held>> {
        self.inner
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Asks the tracer to seize `pid` (all of its threads), unless it already holds it or
    /// could not seize it before.
    pub fn request_seize(&self, pid: i32, seen: SeenImage) {
        if self.held().contains_key(&pid) {
            return;
        }
        self.inner
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((pid, seen));
        let one: u64 = 1;
        // A full counter (impossible in practice) or any other error only delays the seize to
        // the tracer's next periodic wake-up.
        let _ = nix::unistd::write(self.inner.wake.as_fd(), &one.to_ne_bytes());
    }

    /// Whether the tracer reports exec and exit events of `pid` (it holds it now, or held it
    /// until it exited moments ago), so that procscan must not report them too.
    pub fn covers(&self, pid: i32) -> bool {
        matches!(
            self.held().get(&pid),
            Some(Held::Live) | Some(Held::Exited(_))
        )
    }

    /// Procscan saw `pid` go: the tracer's record of it is no longer needed (unless it is
    /// traced now, which means the pid was already reused by a traced process).
    pub fn forget(&self, pid: i32) {
        let mut held = self.held();
        if held.get(&pid).is_some_and(|h| *h != Held::Live) {
            held.remove(&pid);
        }
    }

    /// Whether the tracer holds `pid` right now.
    pub fn holds(&self, pid: i32) -> bool {
        self.held().get(&pid) == Some(&Held::Live)
    }

    /// Whether a process with this `TracerPid` is traced by the monitor: a child of a held
    /// process that the tracer has not registered yet (its fork event is still queued).
    pub fn is_tracer(&self, tracer_pid: i32) -> bool {
        tracer_pid != 0 && tracer_pid == self.inner.tracer_pid.load(Ordering::Relaxed)
    }

    /// The pids the tracer holds now.
    pub fn live_pids(&self) -> Vec<i32> {
        self.held()
            .iter()
            .filter(|(_, h)| **h == Held::Live)
            .map(|(p, _)| *p)
            .collect()
    }

    fn set(&self, pid: i32, state: Held) {
        self.held().insert(pid, state);
    }

    /// Withdraws a "held" mark made for a thread taken for a process.
    fn unset(&self, pid: i32) {
        let mut held = self.held();
        if held.get(&pid) == Some(&Held::Live) {
            held.remove(&pid);
        }
    }

    fn take_requests(&self) -> Vec<(i32, SeenImage)> {
        let mut buf = [0u8; 8];
        let _ = nix::unistd::read(self.inner.wake.as_fd(), &mut buf);
        std::mem::take(
            &mut *self
                .inner
                .requests
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    fn purge(&self, now: Instant) {
        self.held().retain(|_, h| match h {
            Held::Exited(at) => now.saturating_duration_since(*at) < EXITED_GRACE,
            _ => true,
        });
    }
}

/// Settings of the tracer.
#[derive(Debug, Clone)]
pub struct TracerConfig {
    /// Where `/proc` is.
    pub proc_root: PathBuf,
    /// Environment variable names kept in `proc.env`.
    pub env_allowlist: Vec<String>,
    /// Cap on the command-line bytes kept per process.
    pub max_cmdline_bytes: usize,
    /// What the file collector saw written, for `proc.exe_written_after_start` (as procscan).
    pub drift: Option<Arc<DriftRegistry>>,
    /// Raised after each exec (once the tracee runs again) so the sockets collector polls soon.
    pub exec_signal: Option<super::triggers::ExecSignal>,
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
pub fn block_sigchld() -> nix::Result<()> {
    let mut set = SigSet::empty();
    set.add(Signal::SIGCHLD);
    pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), None)
}

/// Why tracing is not possible here (for `--mode auto`), or `Ok` when it should work: the
/// monitor has `CAP_SYS_PTRACE` in its effective set and Yama does not forbid attaching.
pub fn trace_possible(proc_root: &Path) -> Result<(), String> {
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
pub fn spawn_tracer(
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
    let self_ns_pid = super::proc::read_link_string(&config.proc_root.join("self"))
        .and_then(|t| t.parse().ok())
        .unwrap_or(self_pid);
    link.inner.tracer_pid.store(self_ns_pid, Ordering::Relaxed);
    std::thread::Builder::new()
        .name("tracer".into())
        .spawn(move || {
            // Tracees show the tracing *thread* in their TracerPid, so the link must know this
            // thread's id in the proc root's namespace (`thread-self` is `<pid>/task/<tid>`).
            let self_tid = super::proc::read_link_string(&config.proc_root.join("thread-self"))
                .and_then(|t| t.rsplit('/').next().and_then(|tid| tid.parse().ok()))
                .unwrap_or(self_ns_pid);
            link.inner.tracer_pid.store(self_tid, Ordering::Relaxed);
            let mut tracer = Tracer {
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
                self_pids: [self_pid, self_ns_pid, self_tid],
                buf: Vec::with_capacity(8192),
                work: VecDeque::new(),
                batch: Vec::new(),
                batch_since: None,
                last_flush: Instant::now(),
                clone_slots: HashMap::new(),
                sender: DropCountingSender::new(tx, Collector::Tracer),
                closed: false,
                last_warning: None,
            };
            tracer.run(&shutdown);
        })
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
    exec_signal: Option<super::triggers::ExecSignal>,
    buf: Vec<u8>,
    frozen: FrozenReader,
    work: VecDeque<Work>,
    /// Events waiting to be handed to the engine (`None`: a cancelled `clone`).
    batch: Vec<Option<Event>>,
    /// When the oldest event in `batch` was added.
    batch_since: Option<Instant>,
    /// When a batch was last handed over.
    last_flush: Instant,
    /// Index in `batch` of the `clone` event of a child that has not exec'd yet.
    clone_slots: HashMap<i32, usize>,
    sender: DropCountingSender,
    /// The engine is gone.
    closed: bool,
    last_warning: Option<Instant>,
}

/// A decoded `waitpid` status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    /// Stopped with this signal and ptrace event (0: a signal-delivery stop).
    Stopped { sig: i32, event: i32 },
    /// Exited with this code.
    Exited(i32),
    /// Killed by this signal.
    Signaled(i32),
}

fn decode(status: i32) -> Option<Status> {
    if libc::WIFSTOPPED(status) {
        Some(Status::Stopped {
            sig: libc::WSTOPSIG(status),
            event: (status >> 16) & 0xff,
        })
    } else if libc::WIFEXITED(status) {
        Some(Status::Exited(libc::WEXITSTATUS(status)))
    } else if libc::WIFSIGNALED(status) {
        Some(Status::Signaled(libc::WTERMSIG(status)))
    } else {
        None
    }
}

/// `waitpid(-1, __WALL | WNOHANG)` with the raw status: `Ok(None)` when nothing is pending.
fn wait_any() -> Result<Option<(i32, i32)>, Errno> {
    let mut status: libc::c_int = 0;
    // SAFETY: `status` is a valid, writable `c_int` for the duration of the call.
    let pid = unsafe { libc::waitpid(-1, &mut status, libc::__WALL | libc::WNOHANG) };
    match pid {
        0 => Ok(None),
        p if p > 0 => Ok(Some((p, status))),
        _ => Err(Errno::last()),
    }
}

/// `PTRACE_CONT` with a raw signal number (0: none), so that any signal, real-time ones
/// included, is re-injected exactly.
fn cont_raw(pid: i32, sig: i32) -> Result<(), Errno> {
    // SAFETY: PTRACE_CONT takes no pointers: `addr` is ignored and `data` is the signal number.
    let rc = unsafe {
        libc::ptrace(
            libc::PTRACE_CONT,
            pid,
            std::ptr::null_mut::<libc::c_void>(),
            sig as libc::c_long as *mut libc::c_void,
        )
    };
    if rc < 0 { Err(Errno::last()) } else { Ok(()) }
}

/// Resumes a stopped tracee with `sig` (0: none). A tracee that vanished meanwhile (killed by
/// `SIGKILL`) is not an error.
fn resume(pid: i32, sig: i32) {
    if let Err(error) = cont_raw(pid, sig)
        && error != Errno::ESRCH
    {
        debug!(pid, %error, "PTRACE_CONT failed");
    }
}

/// `PTRACE_LISTEN` (nix has no wrapper): the tracee stays in its group-stop, as it would
/// untraced, but the tracer is notified when it is continued or killed.
fn listen(pid: i32) -> Result<(), Errno> {
    // SAFETY: PTRACE_LISTEN takes no pointers: `addr` and `data` are ignored.
    let rc = unsafe {
        libc::ptrace(
            libc::PTRACE_LISTEN,
            pid,
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_void>(),
        )
    };
    if rc < 0 { Err(Errno::last()) } else { Ok(()) }
}

fn is_stop_signal(sig: i32) -> bool {
    sig == libc::SIGSTOP || sig == libc::SIGTSTP || sig == libc::SIGTTIN || sig == libc::SIGTTOU
}

/// A process's exit status as a shell would show it: the exit code, or 128 + the signal.
fn shell_status(status: Status) -> Option<i32> {
    match status {
        Status::Exited(code) => Some(code),
        Status::Signaled(sig) => Some(128 + sig),
        Status::Stopped { .. } => None,
    }
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
                let wake = self.link.inner.wake.as_fd();
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
            // Due: the oldest event waited FLUSH_INTERVAL, or the batch is full, or nothing
            // was handed over for FLUSH_INTERVAL and no `clone` in the batch may still be
            // withdrawn by its exec (a lone exec after a quiet spell goes out at once).
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

    /// Until the batch is due, else the safety-net period (ms).
    fn poll_timeout(&self) -> u16 {
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

    /// Handles every pending status: the hot path. Stops are resumed at once; what can wait
    /// is queued in `work`.
    fn reap(&mut self) {
        loop {
            match wait_any() {
                Ok(Some((pid, raw))) => {
                    if let Some(status) = decode(raw) {
                        self.handle(pid, status);
                    }
                }
                Ok(None) | Err(Errno::ECHILD) => return,
                Err(Errno::EINTR) => continue,
                Err(error) => {
                    if self.rate_limit() {
                        warn!(%error, "waitpid failed in the tracer");
                    }
                    return;
                }
            }
        }
    }

    fn rate_limit(&mut self) -> bool {
        let now = Instant::now();
        if self
            .last_warning
            .is_some_and(|at| now.saturating_duration_since(at) < Duration::from_secs(60))
        {
            return false;
        }
        self.last_warning = Some(now);
        true
    }

    fn handle(&mut self, pid: i32, status: Status) {
        match status {
            Status::Stopped { sig, event } => {
                if let std::collections::hash_map::Entry::Vacant(entry) = self.tracees.entry(pid) {
                    // A new child can report its first stop before its parent's fork event.
                    // Taken for a process of its own until that event or `classify` (after
                    // this round of stops: nothing is read from /proc before resuming it) says
                    // otherwise.
                    entry.insert(Tracee { tgid: pid });
                    self.unclassified.insert(pid, false);
                    // Held from now on: procscan must not report its exec, which can only
                    // happen after this stop is resumed.
                    self.link.set(pid, Held::Live);
                }
                match event {
                    0 => resume(pid, sig),
                    libc::PTRACE_EVENT_EXEC => self.on_exec_stop(pid),
                    libc::PTRACE_EVENT_FORK
                    | libc::PTRACE_EVENT_VFORK
                    | libc::PTRACE_EVENT_CLONE => {
                        let child = ptrace::getevent(Pid::from_raw(pid))
                            .ok()
                            .and_then(|c| i32::try_from(c).ok());
                        resume(pid, 0);
                        if let Some(child) = child {
                            self.on_new_child(pid, child, event);
                        }
                    }
                    libc::PTRACE_EVENT_STOP if is_stop_signal(sig) => {
                        // A group-stop: stay stopped, as without a tracer, until SIGCONT.
                        if let Err(error) = listen(pid)
                            && error != Errno::ESRCH
                        {
                            debug!(pid, %error, "PTRACE_LISTEN failed");
                        }
                    }
                    // The first stop of an auto-attached child, and anything else.
                    _ => resume(pid, 0),
                }
            }
            Status::Exited(_) | Status::Signaled(_) => {
                let Some(tracee) = self.tracees.remove(&pid) else {
                    return;
                };
                self.unclassified.remove(&pid);
                if tracee.tgid == pid {
                    self.idents.remove(&pid);
                    self.multithreaded.remove(&pid);
                    self.work.push_back(Work::Exit {
                        pid,
                        exit_code: shell_status(status),
                        time: Timestamp::now(),
                    });
                }
            }
        }
    }

    /// A fork, vfork or clone stop of `parent` (already resumed) that created `child`.
    fn on_new_child(&mut self, parent: i32, child: i32, event: i32) {
        let parent_tgid = self.tracees.get(&parent).map_or(parent, |t| t.tgid);
        if self.unclassified.remove(&child).is_some() && event == libc::PTRACE_EVENT_CLONE {
            // Its first stop came first and took it for a process.
            self.link.unset(child);
        }
        if event == libc::PTRACE_EVENT_CLONE {
            // A thread (clone without a new process's exit signal).
            self.tracees.insert(child, Tracee { tgid: parent_tgid });
            self.multithreaded.insert(parent_tgid);
            return;
        }
        self.tracees.insert(child, Tracee { tgid: child });
        if let Some(ident) = self.idents.get(&parent_tgid).cloned() {
            self.idents.entry(child).or_insert(ident);
        }
        self.work.push_back(Work::Fork {
            parent_tgid,
            child,
            time: Timestamp::now(),
        });
    }

    /// The exec stop: read what must be read while the process is frozen, resume it, and
    /// leave the rest for later.
    fn on_exec_stop(&mut self, pid: i32) {
        // After an exec by a non-leader thread the process continues under the leader's pid;
        // the execing thread's former id is gone. Only a process that has had threads can
        // have that (one `ptrace` call saved on every other exec).
        if self.multithreaded.contains(&pid)
            && let Ok(former) = ptrace::getevent(Pid::from_raw(pid))
            && let Ok(former) = i32::try_from(former)
            && former != pid
        {
            self.tracees.remove(&former);
        }
        self.tracees.insert(pid, Tracee { tgid: pid });
        self.unclassified.remove(&pid);
        let time = Timestamp::now();
        let known = self.idents.get(&pid).cloned();
        // While frozen: only what the process would take with it if it exited at once.
        let dir = self.frozen.open(pid);
        let read = dir.as_ref().and_then(|dir| {
            self.frozen
                .read_frozen(dir, Memory::Exec, known.is_none(), known.is_none())
        });
        resume(pid, 0);
        // Resumed: the rest, before anything else is reaped (see `frozen`).
        let (Some(dir), Some(mut read)) = (dir, read) else {
            return;
        };
        self.frozen.read_resumed(&dir, &mut read);
        drop(dir);
        self.queue_exec(pid, known, read, time);
    }

    /// Everything queued by the hot path, in order: bookkeeping and events.
    fn do_work(&mut self) {
        while let Some(work) = self.work.pop_front() {
            // Stops that arrived meanwhile are resumed before each piece of work: a tracee
            // never waits for the enrichment of events.
            self.reap();
            match work {
                Work::Fork {
                    parent_tgid,
                    child,
                    time,
                } => self.on_fork(parent_tgid, child, time),
                Work::Exec {
                    pid,
                    read,
                    ident,
                    time,
                } => self.on_exec(pid, *read, ident, time),
                Work::Exit {
                    pid,
                    exit_code,
                    time,
                } => self.on_process_exit(pid, exit_code, time),
            }
        }
    }

    fn push_event(&mut self, event: Event) -> usize {
        if self.batch_since.is_none() {
            self.batch_since = Some(Instant::now());
        }
        self.batch.push(Some(event));
        self.batch.len() - 1
    }

    /// Hands the batch to the engine.
    fn flush_batch(&mut self) {
        self.clone_slots.clear();
        if self.batch_since.take().is_some() {
            self.last_flush = Instant::now();
        }
        for event in std::mem::take(&mut self.batch).into_iter().flatten() {
            if !self.sender.send(event) {
                self.closed = true;
                return;
            }
        }
    }

    fn on_fork(&mut self, parent_tgid: i32, child: i32, time: Timestamp) {
        self.link.set(child, Held::Live);
        if self.procs.contains_key(&child) {
            // The child's own stops can be reported before its parent's fork event: it has
            // already exec'd and been reported with its new image.
            return;
        }
        // Readers of the tables learn that the child may be about to exec (see
        // `ExecImages::forked_recently`).
        self.tables.exec_images().record_fork(child, Instant::now());
        let Some(parent) = self.procs.get(&parent_tgid).cloned() else {
            return;
        };
        // The child runs its parent's image until it execs.
        let known = Known {
            process: parent.process.clone(),
            pid: child,
            ppid: parent_tgid,
            container_id: parent.container_id.clone(),
        };
        self.procs.insert(child, known.clone());
        // A `clone` event, withdrawn if the child execs before the batch is handed over: a
        // fork that execs at once is reported by its `execve` alone.
        let mut event = self.event_for(EventType::Clone, &known, None);
        event.evt.time = time;
        let slot = self.push_event(event);
        self.clone_slots.insert(child, slot);
    }

    fn on_exec(&mut self, pid: i32, read: Frozen, ident: Ident, time: Timestamp) {
        if let Some(slot) = self.clone_slots.remove(&pid)
            && let Some(entry) = self.batch.get_mut(slot)
        {
            *entry = None;
        }
        let (exepath, exe_deleted, exe_from_memfd) = exe_fields(read.exe.as_deref());
        let stat = read.stat;
        let status = read.status;
        let [stdin, stdout, stderr] = read.fds;
        let mut process = Process {
            pid,
            ppid: stat.ppid,
            start_ticks: stat.starttime,
            start_time: Some(self.clock.start_time(stat.starttime)),
            name: stat.comm,
            exe: read.cmdline.argv0,
            exepath,
            args: read.cmdline.args,
            args_truncated: read.cmdline.truncated,
            cwd: read.cwd,
            uid: status.uid,
            euid: status.euid,
            gid: status.gid,
            egid: status.egid,
            loginuid: ident.loginuid,
            cap_effective: status.cap_eff,
            cap_permitted: status.cap_prm,
            cap_inheritable: status.cap_inh,
            // Being traced by this monitor is not a fact about the process: 0, as untraced.
            tracer_pid: status
                .tracer_pid
                .map(|t| if self.is_self(t) { 0 } else { t }),
            // As of the exec: `stat` is read while frozen.
            tty: Some(stat.tty_nr),
            sid: Some(stat.session),
            pgid: Some(stat.pgrp),
            threads: status.threads.or(Some(stat.num_threads)),
            stdin,
            stdout,
            stderr,
            env: read.env,
            exe_deleted,
            exe_from_memfd,
            exe_ctime: read.exe_times.0,
            exe_mtime: read.exe_times.1,
            ..Process::default()
        };
        let snapshot = self.tables.snapshot();
        let container_id = snapshot
            .containers
            .iter()
            .find(|(id, _)| ***id == *ident.container_id)
            .map_or(ident.container_id, |(id, _)| id.clone());
        if let Some(root) = snapshot
            .containers
            .root_path(&container_id, &self.proc_root)
        {
            let resolved = self.users.resolve(
                &container_id,
                &root,
                process.euid,
                process.egid,
                Instant::now(),
            );
            process.user = resolved.user;
            process.user_home = resolved.home;
            process.user_shell = resolved.shell;
            process.group = resolved.group;
        }
        process.exe_written_after_start = super::procscan::drift_fact(
            self.drift.as_deref(),
            snapshot
                .containers
                .get(&container_id)
                .and_then(|c| c.container.start_time),
            &container_id,
            &process,
            read.exe_id,
        );
        // Computed once: the exec event carries them, and so does the overlay's image (for a
        // process procscan has not read yet).
        process.ancestors = self.ancestors(process.ppid, &container_id, &snapshot);
        let known = Known {
            ppid: process.ppid,
            pid,
            process: Arc::new(process),
            container_id,
        };
        // The new image is in the shared overlay before the exec is announced, so the
        // sockets collector's exec-driven poll names the connections of this process after it
        // (procscan's table may still hold the fork of the parent until its next scan, or not
        // hold this pid at all yet).
        self.tables
            .exec_images()
            .record_exec(known.process.clone(), known.container_id.clone());
        if let Some(signal) = &self.exec_signal {
            signal.raise();
        }
        self.procs.insert(pid, known.clone());
        self.link.set(pid, Held::Live);
        let mut event = self.event_for(EventType::Execve, &known, None);
        event.evt.time = time;
        self.push_event(event);
    }

    fn on_process_exit(&mut self, pid: i32, exit_code: Option<i32>, time: Timestamp) {
        let now = Instant::now();
        self.link.set(pid, Held::Exited(now));
        self.tables.exec_images().record_exit(pid, now);
        let known = match self.procs.remove(&pid) {
            Some(known) => known,
            None => {
                // Never read (seized but unknown to procscan's snapshot): nothing to attribute.
                let snapshot = self.tables.snapshot();
                let Some((_, entry)) = snapshot.processes.lookup_pid(pid) else {
                    return;
                };
                Known {
                    process: entry.process.clone(),
                    pid: entry.process.pid,
                    ppid: entry.process.ppid,
                    container_id: entry.container_id.clone(),
                }
            }
        };
        let mut event = self.event_for(EventType::Procexit, &known, exit_code);
        event.evt.time = time;
        self.push_event(event);
    }

    /// New tracees whose first stop came before their parent's fork or clone event (which
    /// normally follows in the same or the next round of stops and settles it) and are still
    /// unexplained a round later: their thread group, read from `/proc` now that they run.
    /// Another thread's is fixed; its provisional "held" mark as a process is removed.
    fn classify(&mut self) {
        if self.unclassified.is_empty() {
            return;
        }
        let mut due = Vec::new();
        self.unclassified.retain(|tid, aged| {
            if *aged {
                due.push(*tid);
                false
            } else {
                *aged = true;
                true
            }
        });
        for tid in due {
            if !self.tracees.contains_key(&tid) {
                continue;
            }
            if let Some(tgid) = self.read_tgid(tid)
                && tgid != tid
            {
                self.tracees.insert(tid, Tracee { tgid });
                self.multithreaded.insert(tgid);
                self.link.unset(tid);
            }
        }
    }

    fn read_tgid(&self, tid: i32) -> Option<i32> {
        let text = std::fs::read_to_string(self.proc_root.join(format!("{tid}/status"))).ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix("Tgid:"))
            .and_then(|v| v.trim().parse().ok())
    }

    fn is_self(&self, pid: i32) -> bool {
        self.self_pids.contains(&pid)
    }

    /// Seizes every thread of `pid`. Threads started while the list is walked are attached by
    /// the kernel if their creator was already seized; the list is re-read until stable.
    fn seize_process(&mut self, pid: i32, seen: &SeenImage) {
        if pid <= 1 || self.is_self(pid) || self.tracees.contains_key(&pid) {
            return;
        }
        let task_dir = self.proc_root.join(format!("{pid}/task"));
        let mut seized_any = false;
        for _round in 0..8 {
            let Ok(entries) = std::fs::read_dir(&task_dir) else {
                break;
            };
            let tids: Vec<i32> = entries
                .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .filter(|tid| !self.tracees.contains_key(tid))
                .collect();
            if tids.is_empty() {
                break;
            }
            for tid in tids {
                match ptrace::seize(Pid::from_raw(tid), trace_options()) {
                    Ok(()) => {
                        self.tracees.insert(tid, Tracee { tgid: pid });
                        if tid != pid {
                            self.multithreaded.insert(pid);
                        }
                        seized_any = true;
                    }
                    Err(Errno::ESRCH) => {}
                    Err(Errno::EPERM) if !seized_any => {
                        self.refuse(pid, Errno::EPERM);
                        return;
                    }
                    Err(error) => {
                        if self.rate_limit() {
                            warn!(pid, tid, %error, "cannot seize a thread");
                        }
                    }
                }
            }
        }
        if seized_any {
            self.link.set(pid, Held::Live);
            let snapshot = self.tables.snapshot();
            if let Some((_, entry)) = snapshot.processes.lookup_pid(pid) {
                self.idents.insert(
                    pid,
                    Ident {
                        container_id: entry.container_id.clone(),
                        loginuid: entry.process.loginuid,
                    },
                );
                self.procs.insert(
                    pid,
                    Known {
                        process: entry.process.clone(),
                        pid,
                        ppid: entry.process.ppid,
                        container_id: entry.container_id.clone(),
                    },
                );
            }
            self.check_seen_image(pid, seen);
        }
    }

    /// The identity of `pid` (container, login uid): known, or from `read` (which then
    /// holds its cgroup and loginuid) and remembered.
    fn ident_for(&mut self, pid: i32, known: Option<Ident>, read: &mut Frozen) -> Ident {
        if let Some(ident) = known {
            return ident;
        }
        let container_id = read
            .cgroup
            .take()
            .as_deref()
            .map(parse_cgroup)
            .and_then(|c| c.container_id)
            .unwrap_or_else(|| HOST_ID.to_string());
        let ident = Ident {
            container_id: Arc::from(container_id.as_str()),
            loginuid: read.loginuid,
        };
        self.idents.insert(pid, ident.clone());
        ident
    }

    /// A process seized on procscan's request that no longer runs the image procscan saw
    /// exec'd between procscan's read and the seize: neither collector saw that exec, so it is
    /// reported now, from a read of the running process (its later execs stop as usual).
    fn check_seen_image(&mut self, pid: i32, seen: &SeenImage) {
        let known = self.idents.get(&pid).cloned();
        let Some(dir) = self.frozen.open(pid) else {
            return;
        };
        let Some(mut read) =
            self.frozen
                .read_frozen(&dir, Memory::Files, known.is_none(), known.is_none())
        else {
            return;
        };
        if !seen.differs(&read.stat.comm, read.exe_id) {
            return;
        }
        self.frozen.read_resumed(&dir, &mut read);
        drop(dir);
        self.queue_exec(pid, known, read, Timestamp::now());
    }

    /// Queues the report of an exec read into `read` (enrichment happens between stops).
    fn queue_exec(&mut self, pid: i32, known: Option<Ident>, mut read: Frozen, time: Timestamp) {
        let ident = self.ident_for(pid, known, &mut read);
        self.work.push_back(Work::Exec {
            pid,
            read: Box::new(read),
            ident,
            time,
        });
    }

    /// Seizing failed: procscan keeps covering the process. A process traced by someone else
    /// (a debugger in the container) is reported once as a `tracer_conflict`.
    fn refuse(&mut self, pid: i32, error: Errno) {
        let status = std::fs::read_to_string(self.proc_root.join(format!("{pid}/status")))
            .map(|t| parse_status(&t))
            .unwrap_or_default();
        let tracer = status.tracer_pid.unwrap_or(0);
        if self.is_self(tracer) {
            // Already ours (attached at fork; its stop is still queued).
            return;
        }
        self.link.set(pid, Held::Refused);
        if !self.conflicts.insert(pid) {
            return;
        }
        let message = if tracer != 0 {
            format!(
                "process {pid} is already traced by process {tracer}; it cannot be traced by tasksentry and is watched by polling /proc only"
            )
        } else {
            format!("process {pid} cannot be traced ({error}); it is watched by polling /proc only")
        };
        let mut event = Event::new(EventType::Tasksentry, Collector::Tracer);
        event.internal = Some(Box::new(Internal {
            kind: "tracer_conflict".into(),
            message,
            count: None,
        }));
        if let Some((_, entry)) = self.tables.snapshot().processes.lookup_pid(pid) {
            let mut process = (*entry.process).clone();
            process.ancestors.clear();
            event.proc = Some(Box::new(process));
        } else if let Some(stat) = read_stat(&self.proc_root, pid, &mut self.buf) {
            event.proc = Some(Box::new(Process {
                pid,
                ppid: stat.ppid,
                start_ticks: stat.starttime,
                start_time: Some(self.clock.start_time(stat.starttime)),
                name: stat.comm,
                tracer_pid: Some(tracer),
                ..Process::default()
            }));
        }
        self.sender.send(event);
    }

    /// An event about `known`; `exit_code` for a `procexit`.
    fn event_for(&self, evt_type: EventType, known: &Known, exit_code: Option<i32>) -> Event {
        let mut event = Event::new(evt_type, Collector::Tracer);
        let snapshot = self.tables.snapshot();
        let mut process = (*known.process).clone();
        if process.pid != known.pid {
            // A forked child still running its parent's image.
            process.pid = known.pid;
            process.ppid = known.ppid;
            process.start_ticks = 0;
            process.start_time = None;
            process.threads = Some(1);
        }
        process.exit_code = exit_code;
        // An exec image carries its ancestors as of the exec (see `on_exec`).
        if evt_type != EventType::Execve || process.pid != known.pid {
            process.ancestors = self.ancestors(known.ppid, &known.container_id, &snapshot);
        }
        event.proc = Some(Box::new(process));
        event.container = snapshot
            .containers
            .get(&known.container_id)
            .map(|c| Box::new(c.container.clone()));
        event
    }

    /// Ancestors, parent first, from what the tracer read itself and else procscan's table;
    /// the walk stops at pid 1, at another container and at excluded processes, as procscan's.
    fn ancestors(
        &self,
        mut ppid: i32,
        container_id: &str,
        snapshot: &super::table::Tables,
    ) -> Vec<Ancestor> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        while out.len() < MAX_ANCESTORS && ppid > 1 && seen.insert(ppid) {
            let (parent, pid, next, parent_container) = if let Some(known) = self.procs.get(&ppid) {
                (
                    known.process.clone(),
                    known.pid,
                    known.ppid,
                    known.container_id.clone(),
                )
            } else if let Some((_, entry)) = snapshot.processes.lookup_pid(ppid) {
                if entry.excluded.is_some() {
                    break;
                }
                (
                    entry.process.clone(),
                    entry.process.pid,
                    entry.process.ppid,
                    entry.container_id.clone(),
                )
            } else {
                break;
            };
            if *parent_container != *container_id {
                break;
            }
            // As procscan's: past the parent, arguments are capped.
            let args = if out.is_empty() {
                parent.args.clone()
            } else {
                super::table::capped_args(&parent.args, super::table::ANCESTOR_ARGS_BYTES)
            };
            out.push(Ancestor {
                pid,
                name: parent.name.clone(),
                exe: parent.exe.clone(),
                exepath: parent.exepath.clone(),
                args,
            });
            ppid = next;
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn statuses_decode_exactly() {
        // Stopped by SIGRTMIN+3 (a signal nix's enum does not know) at no event.
        let rt = libc::SIGRTMIN() + 3;
        assert_eq!(
            decode((rt << 8) | 0x7f),
            Some(Status::Stopped { sig: rt, event: 0 })
        );
        assert_eq!(
            decode((libc::PTRACE_EVENT_EXEC << 16) | (libc::SIGTRAP << 8) | 0x7f),
            Some(Status::Stopped {
                sig: libc::SIGTRAP,
                event: libc::PTRACE_EVENT_EXEC
            })
        );
        assert_eq!(decode(3 << 8), Some(Status::Exited(3)));
        assert_eq!(decode(libc::SIGKILL), Some(Status::Signaled(libc::SIGKILL)));
        assert_eq!(shell_status(Status::Signaled(15)), Some(143));
        assert_eq!(shell_status(Status::Exited(7)), Some(7));
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

    #[test]
    fn a_seized_process_runs_another_image_when_its_name_or_executable_changed() {
        let seen = SeenImage {
            name: "nsenter".into(),
            exe_id: Some((8, 100)),
        };
        assert!(!seen.differs("nsenter", Some((8, 100))));
        assert!(
            !seen.differs("nsenter", None),
            "an unreadable exe is no evidence"
        );
        assert!(seen.differs("sleeper", Some((8, 100))));
        assert!(
            seen.differs("nsenter", Some((8, 101))),
            "same name, other file"
        );
        let unknown = SeenImage {
            name: "sh".into(),
            exe_id: None,
        };
        assert!(!unknown.differs("sh", Some((8, 5))));
    }

    #[test]
    fn link_tracks_requests_and_coverage() {
        let link = TracerLink::new().unwrap();
        link.request_seize(42, SeenImage::default());
        assert_eq!(link.take_requests(), vec![(42, SeenImage::default())]);
        assert!(!link.covers(42));
        link.set(42, Held::Live);
        link.request_seize(42, SeenImage::default());
        assert!(
            link.take_requests().is_empty(),
            "held pids are not requested"
        );
        assert!(link.covers(42));
        link.set(42, Held::Exited(Instant::now()));
        assert!(link.covers(42), "a just-exited pid stays covered");
        link.forget(42);
        assert!(!link.covers(42));
        link.set(7, Held::Refused);
        assert!(!link.covers(7), "refused pids are procscan's");
    }
}
