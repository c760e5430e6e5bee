//! The tracer collector (`--mode trace`): an event-only ptrace tracer that sees every exec,
//! fork and exit of the processes it holds, with the process frozen at the exec.
//!
//! Processes are attached with `PTRACE_SEIZE` and the options `TRACEFORK | TRACEVFORK |
//! TRACECLONE | TRACEEXEC | TRACEEXIT`, and never with syscall stops: a tracee stops only at
//! those events, at signal delivery and at group-stops. New children are attached by the kernel
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
//! Events leave through the same bounded queue as procscan's, with `try_send`; drops are
//! counted and reported as `tasksentry`/`events_dropped`.

use super::sender::DropCountingSender;
use std::collections::{HashMap, HashSet};
use std::io;
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::ptrace::{self, Options};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, pthread_sigmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::unistd::Pid;
use tracing::{debug, warn};

use super::cgroup::{HOST_ID, parse_cgroup};
use super::proc::{
    Clock, DEFAULT_ENV_ALLOWLIST, ReadOptions, parse_status, read_identity, read_process, read_stat,
};
use super::table::{MAX_ANCESTORS, SharedTables};
use super::users::UserDbCache;
use crate::event::{Ancestor, Collector, Event, EventType, Internal, Process};

/// How long an exited pid stays known as "handled by the tracer", so that procscan, which may
/// notice the exit up to a scan interval later, does not report it again.
const EXITED_GRACE: Duration = Duration::from_secs(10);

/// The poll timeout: the safety net if `SIGCHLD` is not blocked everywhere, and how often
/// shutdown is checked.
const POLL_TIMEOUT_MS: u16 = 100;

/// The ptrace options: event stops only, and never `EXITKILL`.
fn trace_options() -> Options {
    Options::PTRACE_O_TRACEFORK
        | Options::PTRACE_O_TRACEVFORK
        | Options::PTRACE_O_TRACECLONE
        | Options::PTRACE_O_TRACEEXEC
        | Options::PTRACE_O_TRACEEXIT
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
    requests: Mutex<Vec<i32>>,
    wake: OwnedFd,
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
    pub fn request_seize(&self, pid: i32) {
        if self.held().contains_key(&pid) {
            return;
        }
        self.inner
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(pid);
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

    fn take_requests(&self) -> Vec<i32> {
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
            let mut tracer = Tracer {
                options: ReadOptions {
                    env_allowlist: config.env_allowlist.clone(),
                    max_cmdline_bytes: config.max_cmdline_bytes,
                },
                proc_root: config.proc_root,
                clock,
                link,
                tables,
                users: UserDbCache::new(Duration::from_secs(1)),
                tracees: HashMap::new(),
                procs: HashMap::new(),
                conflicts: HashSet::new(),
                self_pids: [self_pid, self_ns_pid],
                buf: Vec::with_capacity(8192),
                sender: DropCountingSender::new(tx, Collector::Tracer),
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

/// What the tracer knows about one traced process, for clone events and ancestry.
#[derive(Debug, Clone)]
struct Known {
    process: Arc<Process>,
    container_id: Arc<str>,
}

struct Tracer {
    proc_root: PathBuf,
    options: ReadOptions,
    clock: Clock,
    link: TracerLink,
    tables: SharedTables,
    users: UserDbCache,
    tracees: HashMap<i32, Tracee>,
    procs: HashMap<i32, Known>,
    conflicts: HashSet<i32>,
    self_pids: [i32; 2],
    buf: Vec<u8>,
    sender: DropCountingSender,
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
        while !shutdown.load(Ordering::Relaxed) {
            {
                let wake = self.link.inner.wake.as_fd();
                let mut fds = vec![nix::poll::PollFd::new(wake, nix::poll::PollFlags::POLLIN)];
                if let Some(sigfd) = &sigfd {
                    fds.push(nix::poll::PollFd::new(
                        sigfd.as_fd(),
                        nix::poll::PollFlags::POLLIN,
                    ));
                }
                let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(POLL_TIMEOUT_MS));
            }
            if let Some(sigfd) = &sigfd {
                while let Ok(Some(_)) = sigfd.read_signal() {}
            }
            for pid in self.link.take_requests() {
                self.seize_process(pid);
            }
            self.reap();
            let now = Instant::now();
            if now.saturating_duration_since(last_purge) >= Duration::from_secs(1) {
                self.link.purge(now);
                last_purge = now;
            }
            if !self.sender.flush() {
                return;
            }
        }
    }

    /// Handles every pending status.
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
                if !self.tracees.contains_key(&pid) {
                    // A new child can report its first stop before its parent's fork event.
                    let tgid = self.read_tgid(pid).unwrap_or(pid);
                    self.tracees.insert(pid, Tracee { tgid });
                    if tgid == pid {
                        // Held from now on: procscan must not report its exec, which can only
                        // happen after this stop is resumed.
                        self.link.set(pid, Held::Live);
                    }
                }
                let resume_sig = match event {
                    0 => sig,
                    libc::PTRACE_EVENT_EXEC => {
                        self.on_exec(pid);
                        0
                    }
                    libc::PTRACE_EVENT_FORK
                    | libc::PTRACE_EVENT_VFORK
                    | libc::PTRACE_EVENT_CLONE => {
                        self.on_new_child(pid, event);
                        0
                    }
                    libc::PTRACE_EVENT_STOP if is_stop_signal(sig) => {
                        // A group-stop: stay stopped, as without a tracer, until SIGCONT.
                        if let Err(error) = listen(pid)
                            && error != Errno::ESRCH
                        {
                            debug!(pid, %error, "PTRACE_LISTEN failed");
                        }
                        return;
                    }
                    // PTRACE_EVENT_EXIT (the exit status comes with the final wait status),
                    // the first stop of an auto-attached child, and anything else.
                    _ => 0,
                };
                if let Err(error) = cont_raw(pid, resume_sig)
                    && error != Errno::ESRCH
                {
                    debug!(pid, %error, "PTRACE_CONT failed");
                }
            }
            Status::Exited(_) | Status::Signaled(_) => {
                let Some(tracee) = self.tracees.remove(&pid) else {
                    return;
                };
                if tracee.tgid == pid {
                    self.on_process_exit(pid, shell_status(status));
                }
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
    fn seize_process(&mut self, pid: i32) {
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
                self.procs.insert(
                    pid,
                    Known {
                        process: entry.process.clone(),
                        container_id: entry.container_id.clone(),
                    },
                );
            }
        }
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

    fn on_new_child(&mut self, parent: i32, event: i32) {
        let Ok(child) = ptrace::getevent(Pid::from_raw(parent)) else {
            return;
        };
        let Ok(child) = i32::try_from(child) else {
            return;
        };
        let parent_tgid = self.tracees.get(&parent).map_or(parent, |t| t.tgid);
        if event == libc::PTRACE_EVENT_CLONE {
            // A thread (clone without a new process's exit signal).
            self.tracees.insert(child, Tracee { tgid: parent_tgid });
            return;
        }
        self.tracees.insert(child, Tracee { tgid: child });
        self.link.set(child, Held::Live);
        // The child runs its parent's image until it execs: that is a `clone` event, built from
        // what is known of the parent without reading /proc.
        if self.procs.contains_key(&child) {
            // The child's own stops can be reported before its parent's fork event: it has
            // already exec'd and been reported with its new image.
            return;
        }
        let Some(known) = self.procs.get(&parent_tgid).cloned() else {
            return;
        };
        let mut process = (*known.process).clone();
        process.pid = child;
        process.ppid = parent_tgid;
        process.start_ticks = 0;
        process.start_time = None;
        process.threads = Some(1);
        process.exit_code = None;
        let process = Arc::new(process);
        self.procs.insert(
            child,
            Known {
                process: process.clone(),
                container_id: known.container_id.clone(),
            },
        );
        let event = self.event_for(EventType::Clone, &process, &known.container_id);
        self.sender.send(event);
    }

    fn on_exec(&mut self, pid: i32) {
        // After an exec by a non-leader thread the process continues under the leader's pid;
        // the execing thread's former id is gone.
        if let Ok(former) = ptrace::getevent(Pid::from_raw(pid))
            && let Ok(former) = i32::try_from(former)
            && former != pid
        {
            self.tracees.remove(&former);
        }
        self.tracees.insert(pid, Tracee { tgid: pid });
        let Some(stat) = read_stat(&self.proc_root, pid, &mut self.buf) else {
            return;
        };
        let identity = read_identity(&self.proc_root, stat, &mut self.buf);
        let container_id = identity
            .cgroup
            .as_deref()
            .map(parse_cgroup)
            .and_then(|c| c.container_id)
            .unwrap_or_else(|| HOST_ID.to_string());
        let Some(read) = read_process(
            &self.proc_root,
            identity,
            &self.clock,
            &self.options,
            &mut self.buf,
        ) else {
            return;
        };
        let mut process = read.process;
        let snapshot = self.tables.snapshot();
        let container_id: Arc<str> = snapshot
            .containers
            .iter()
            .find(|(id, _)| ***id == *container_id)
            .map(|(id, _)| id.clone())
            .unwrap_or_else(|| Arc::from(container_id.as_str()));
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
        let process = Arc::new(process);
        self.procs.insert(
            pid,
            Known {
                process: process.clone(),
                container_id: container_id.clone(),
            },
        );
        self.link.set(pid, Held::Live);
        let event = self.event_for(EventType::Execve, &process, &container_id);
        self.sender.send(event);
    }

    fn on_process_exit(&mut self, pid: i32, exit_code: Option<i32>) {
        self.link.set(pid, Held::Exited(Instant::now()));
        let Some(known) = self.procs.remove(&pid) else {
            // Never read (seized but unknown to procscan's snapshot): nothing to attribute.
            let snapshot = self.tables.snapshot();
            let Some((_, entry)) = snapshot.processes.lookup_pid(pid) else {
                return;
            };
            let mut process = (*entry.process).clone();
            process.exit_code = exit_code;
            let event = self.event_for(EventType::Procexit, &process, &entry.container_id);
            self.sender.send(event);
            return;
        };
        let mut process = (*known.process).clone();
        process.exit_code = exit_code;
        let event = self.event_for(EventType::Procexit, &process, &known.container_id);
        self.sender.send(event);
    }

    fn event_for(&self, evt_type: EventType, process: &Process, container_id: &str) -> Event {
        let mut event = Event::new(evt_type, Collector::Tracer);
        let snapshot = self.tables.snapshot();
        let mut process = process.clone();
        process.ancestors = self.ancestors(&process, container_id, &snapshot);
        event.proc = Some(Box::new(process));
        event.container = snapshot
            .containers
            .get(container_id)
            .map(|c| Box::new(c.container.clone()));
        event
    }

    /// Ancestors, parent first, from what the tracer read itself and else procscan's table;
    /// the walk stops at pid 1, at another container and at excluded processes, as procscan's.
    fn ancestors(
        &self,
        process: &Process,
        container_id: &str,
        snapshot: &super::table::Tables,
    ) -> Vec<Ancestor> {
        let mut out = Vec::new();
        let mut ppid = process.ppid;
        let mut seen = HashSet::new();
        while out.len() < MAX_ANCESTORS && ppid > 1 && seen.insert(ppid) {
            let (parent, parent_container) = if let Some(known) = self.procs.get(&ppid) {
                (known.process.clone(), known.container_id.clone())
            } else if let Some((_, entry)) = snapshot.processes.lookup_pid(ppid) {
                if entry.excluded.is_some() {
                    break;
                }
                (entry.process.clone(), entry.container_id.clone())
            } else {
                break;
            };
            if *parent_container != *container_id {
                break;
            }
            out.push(Ancestor {
                pid: parent.pid,
                name: parent.name.clone(),
                exe: parent.exe.clone(),
                exepath: parent.exepath.clone(),
                args: parent.args.clone(),
            });
            ppid = parent.ppid;
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
    fn link_tracks_requests_and_coverage() {
        let link = TracerLink::new().unwrap();
        link.request_seize(42);
        assert_eq!(link.take_requests(), vec![42]);
        assert!(!link.covers(42));
        link.set(42, Held::Live);
        link.request_seize(42);
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
