//! Supervision: `tasksentry run` is a small supervisor process that runs the real monitor
//! (the *worker*, the same binary) as its child, so that a monitor killed with SIGKILL (which
//! it cannot catch) comes back and says so.
//!
//! - The supervisor is the sidecar container's main process: ECS signals it. It blocks
//!   SIGTERM, SIGINT, SIGHUP and SIGCHLD and reads them from a `signalfd`, so it uses no
//!   threads and no async runtime. The worker is `/proc/self/exe` with the same arguments and
//!   [`WORKER_ENV`] set to the supervisor's pid.
//! - Forwarding keeps the sender: a SIGTERM, SIGINT or SIGHUP received by the supervisor is
//!   re-sent to the worker with `rt_sigqueueinfo` carrying the original sender's pid and uid
//!   and [`FORWARD_MARK`] as its value, so the worker's watchdog
//!   ([`super::watchdog`]) names the process that signalled the *supervisor*, exactly as if it
//!   had been signalled itself.
//! - Stop: after a SIGTERM or SIGINT the supervisor no longer restarts and exits with the
//!   worker's exit code (128 + signal if the worker died by a signal).
//! - Restart: when the worker ends without the supervisor having been asked to stop (killed
//!   by a signal, crashed, or stopped by a signal sent to it directly), the supervisor starts
//!   it again, the first time at once, then with a doubling delay (1 s up to 30 s), at most
//!   `max_restarts` times per [`RESTART_WINDOW`]; beyond that it gives up and exits 1. The new
//!   worker gets a [`RestartReport`] in [`REPORT_ENV`] and queues it as a `tasksentry` event
//!   (`monitor_killed` for a death by signal, `monitor_exited` otherwise) that the internal
//!   rules turn into an alert on every output. A worker that exits with the configuration
//!   error code (78) is not restarted: the configuration will not get better.
//! - Carry-over: the supervisor holds a memory file ([`super::carry`]) that every worker
//!   inherits and keeps up to date with what it reported, so the next worker does not report
//!   it again.
//! - The worker never outlives the supervisor: it is started with `PR_SET_PDEATHSIG` =
//!   SIGTERM. When the supervisor dies, the worker's watchdog recognises that signal (from the
//!   supervisor's pid, which is no longer its parent), reports `supervisor_lost` and stops
//!   cleanly, flushing its outputs (the container runtime would kill it anyway once the
//!   container's main process is gone).
//!
//! - Stops: a worker stopped by a signal (SIGSTOP, which it cannot catch, or SIGTSTP, SIGTTIN,
//!   SIGTTOU) is seen by the supervisor (`waitpid` with `WUNTRACED`) and resumed at once with
//!   a SIGCONT marked by [`CONTINUE_MARK`] and the stop signal, which the worker's watchdog
//!   reports as `monitor_stopped`. A stopped monitor is blind, and in trace mode every traced
//!   process would block at its next fork or exec until the monitor runs again. The worker
//!   in turn resumes a stopped supervisor ([`super::watchdog`], `supervisor_stopped`).
//!
//! Supervision is on by default and turned off with the `supervise` setting; `tasksentry run`
//! is then the monitor itself, as before.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, pthread_sigmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use super::carry::{CARRY_ENV, CarryMemory};
use crate::event::{Collector, Event, EventType, Internal};
use crate::exit;

/// Set in the worker's environment to the supervisor's pid; its presence makes `tasksentry
/// run` the worker.
pub(crate) const WORKER_ENV: &str = "TASKSENTRY_WORKER_OF";
/// Set by `tasksentry run` when it re-executes itself as the supervisor: the [`Handoff`] as
/// JSON.
pub(crate) const SUPERVISOR_ENV: &str = "TASKSENTRY_SUPERVISOR";
/// Set in a restarted worker's environment: the [`RestartReport`] as JSON.
pub(crate) const REPORT_ENV: &str = "TASKSENTRY_RESTART_REPORT";
/// The `sigval` integer of a signal the supervisor forwards (`ssi_int` in the worker).
pub(crate) const FORWARD_MARK: i32 = 0x5453_0001;
/// The `sigval` integer of the SIGCONT with which the supervisor resumes a stopped worker,
/// or-ed with the number of the signal that stopped it (low byte).
pub(crate) const CONTINUE_MARK: i32 = 0x5453_0100;
/// `si_code` of `sigqueue` signals.
pub(crate) const SI_QUEUE: i32 = -1;
/// `si_code` of `kill` signals (and of the parent-death signal).
pub(crate) const SI_USER: i32 = 0;
/// Restarts are counted over this window.
pub(crate) const RESTART_WINDOW: Duration = Duration::from_secs(600);
/// The longest delay between two restarts.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The supervisor could not run.
#[derive(Debug, thiserror::Error)]
pub enum SuperviseError {
    /// Blocking the signals or creating the signalfd failed.
    #[error("cannot set up signal handling for the supervisor: {0}")]
    Signals(nix::Error),
    /// The worker could not be started.
    #[error("cannot start the monitor worker {program}: {source}")]
    Spawn {
        /// The program.
        program: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// How a worker ended and what the supervisor did about it; given to the next worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestartReport {
    /// The pid of the worker that ended.
    pub pid: i32,
    /// The signal that killed it, if one did.
    pub signal: Option<i32>,
    /// Its exit code, if it exited.
    pub exit_code: Option<i32>,
    /// Whether it dumped core.
    pub core_dumped: bool,
    /// How long it had run, in milliseconds.
    pub uptime_ms: u64,
    /// How long the task went unmonitored (from its end to this start), in milliseconds.
    pub down_ms: u64,
    /// Restarts within the current window, this one included.
    pub restarts: u32,
    /// The most restarts allowed per window.
    pub max_restarts: u32,
    /// The window, in seconds.
    pub window_secs: u64,
    /// The supervisor's pid.
    pub supervisor_pid: i32,
}

impl RestartReport {
    /// The `tasksentry` event a restarted worker queues: `monitor_killed` or `monitor_exited`.
    pub fn event(&self) -> Event {
        let mut event = Event::new(EventType::Tasksentry, Collector::Monitor);
        let mut args = vec![
            ("pid".to_owned(), self.pid.to_string()),
            ("restarts".to_owned(), self.restarts.to_string()),
            ("max_restarts".to_owned(), self.max_restarts.to_string()),
            ("down_ms".to_owned(), self.down_ms.to_string()),
            ("uptime_ms".to_owned(), self.uptime_ms.to_string()),
            ("supervisor_pid".to_owned(), self.supervisor_pid.to_string()),
        ];
        let (kind, what) = match (self.signal, self.exit_code) {
            (Some(number), _) => {
                let name = signal_name(number);
                args.push(("signal".to_owned(), name.clone()));
                args.push(("signal_number".to_owned(), number.to_string()));
                let origin = if number == libc::SIGKILL {
                    " (SIGKILL comes from a process in the task, or from the kernel's OOM killer)"
                } else {
                    ""
                };
                (
                    "monitor_killed",
                    format!(
                        "was killed by {name} (signal {number}){}{origin}",
                        if self.core_dumped {
                            ", core dumped"
                        } else {
                            ""
                        }
                    ),
                )
            }
            (None, code) => {
                let code = code.unwrap_or(-1);
                args.push(("exit_code".to_owned(), code.to_string()));
                (
                    "monitor_exited",
                    format!("exited unexpectedly with status {code}"),
                )
            }
        };
        event.evt.args = args;
        event.internal = Some(Box::new(Internal {
            kind: kind.to_owned(),
            message: format!(
                "TaskSentry's monitor process (pid {}) {what} after {:.1} s; its supervisor (pid {}) restarted it {} ms later (restart {} of at most {} per {} s). What happened in the task meanwhile was not observed.",
                self.pid,
                self.uptime_ms as f64 / 1000.0,
                self.supervisor_pid,
                self.down_ms,
                self.restarts,
                self.max_restarts,
                self.window_secs
            ),
            count: Some(u64::from(self.restarts)),
        }));
        event
    }
}

/// `SIGKILL` for 9; `signal 64` for numbers without a name.
pub(crate) fn signal_name(number: i32) -> String {
    Signal::try_from(number).map_or_else(|_| format!("signal {number}"), |s| s.as_str().to_owned())
}

/// What a worker knows about its supervisor (from its environment).
#[derive(Debug, Clone, Default)]
pub struct WorkerContext {
    /// The supervisor's pid, when this process is a supervised worker.
    pub(crate) supervisor_pid: Option<i32>,
    /// Why this worker was started, when it replaces one that ended.
    pub(crate) restart: Option<RestartReport>,
}

impl WorkerContext {
    /// Reads [`WORKER_ENV`] and [`REPORT_ENV`]. A malformed report is logged and ignored.
    pub(crate) fn from_env() -> WorkerContext {
        let supervisor_pid = std::env::var(WORKER_ENV)
            .ok()
            .and_then(|v| v.trim().parse::<i32>().ok())
            .filter(|&pid| pid > 0);
        let restart = std::env::var(REPORT_ENV).ok().and_then(|text| {
            serde_json::from_str(&text)
                .map_err(|error| {
                    tracing::warn!(%error, "Ignoring a malformed restart report from the supervisor.");
                })
                .ok()
        });
        WorkerContext {
            supervisor_pid,
            restart,
        }
    }

    /// Whether this process is a worker started by a supervisor.
    pub fn is_worker() -> bool {
        std::env::var_os(WORKER_ENV).is_some()
    }
}

/// The supervisor's settings.
#[derive(Debug, Clone)]
pub struct SupervisorSettings {
    /// The worker program (this process's executable).
    pub(crate) program: PathBuf,
    /// The worker's `argv[0]`.
    pub(crate) arg0: OsString,
    /// The worker's arguments (those of `tasksentry run`).
    pub(crate) args: Vec<OsString>,
    /// Restarts allowed per [`RESTART_WINDOW`] (0: never restart).
    pub(crate) max_restarts: u32,
    /// The window over which restarts are counted.
    pub(crate) window: Duration,
    /// Delay before the second restart within the window; doubles for each further one.
    pub(crate) backoff: Duration,
}

impl SupervisorSettings {
    /// This process's image and arguments.
    pub fn from_current_process(max_restarts: u32) -> SupervisorSettings {
        let mut argv = std::env::args_os();
        let arg0 = argv.next().unwrap_or_else(|| OsString::from("tasksentry"));
        // The path, not `/proc/self/exe`: the worker's name (`comm`) comes from it, and the
        // sidecar's root file system is read-only, so the file cannot be swapped.
        let program = std::env::current_exe()
            .ok()
            .filter(|path| path.exists())
            .unwrap_or_else(|| PathBuf::from("/proc/self/exe"));
        SupervisorSettings {
            program,
            arg0,
            args: argv.collect(),
            max_restarts,
            window: RESTART_WINDOW,
            backoff: Duration::from_secs(1),
        }
    }
}

/// What the supervisor needs from the configuration, handed to a fresh image of the binary.
///
/// `tasksentry run` resolves and checks the whole configuration, then, to supervise, replaces
/// itself (`execve`, same pid, same arguments) with a new image of the same binary that starts
/// straight into [`run`] with these settings: the supervisor so never holds the pages and the
/// heap that parsing the command line, the configuration and the redaction patterns touched
/// (about 7 MiB of resident memory), which it would otherwise keep for the task's lifetime.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handoff {
    /// `max_restarts`.
    pub max_restarts: u32,
    /// The log filter (`log_level`).
    pub log_level: String,
    /// The log format.
    pub log_format: crate::config::LogFormat,
}

impl Handoff {
    /// The settings handed to this process, when it is the re-executed supervisor (and not a
    /// worker, which never gets [`SUPERVISOR_ENV`]).
    pub fn from_env() -> Option<Handoff> {
        if WorkerContext::is_worker() {
            return None;
        }
        let text = std::env::var(SUPERVISOR_ENV).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// The supervisor's settings.
    pub fn settings(&self) -> SupervisorSettings {
        SupervisorSettings::from_current_process(self.max_restarts)
    }

    /// Replaces this process with the supervisor. Returns only if that failed; the caller
    /// then supervises from this process.
    pub fn exec(&self) -> std::io::Error {
        let json = match serde_json::to_string(self) {
            Ok(json) => json,
            Err(error) => return std::io::Error::other(error),
        };
        let settings = SupervisorSettings::from_current_process(self.max_restarts);
        Command::new(&settings.program)
            .arg0(&settings.arg0)
            .args(&settings.args)
            .env(SUPERVISOR_ENV, json)
            .exec()
    }
}

/// Restart bookkeeping: when each restart happened, to bound them per window and to space
/// them out.
#[derive(Debug)]
pub(crate) struct RestartPolicy {
    max: u32,
    window: Duration,
    backoff: Duration,
    history: Vec<Instant>,
}

impl RestartPolicy {
    /// At most `max` restarts per `window`; the first restart of a window is immediate, the
    /// next ones wait `backoff`, doubling each time, up to [`MAX_BACKOFF`].
    pub fn new(max: u32, window: Duration, backoff: Duration) -> RestartPolicy {
        RestartPolicy {
            max,
            window,
            backoff,
            history: Vec::new(),
        }
    }

    /// Records a restart at `now`: `Some((delay, restarts in the window))`, or `None` when
    /// the bound is reached.
    pub(crate) fn next(&mut self, now: Instant) -> Option<(Duration, u32)> {
        self.history
            .retain(|&t| now.saturating_duration_since(t) < self.window);
        if self.history.len() as u64 >= u64::from(self.max) {
            return None;
        }
        let previous = self.history.len() as u32;
        let delay = match previous {
            0 => Duration::ZERO,
            n => self
                .backoff
                .saturating_mul(1u32 << (n - 1).min(16))
                .min(MAX_BACKOFF),
        };
        self.history.push(now);
        Some((delay, previous + 1))
    }
}

fn supervisor_signals() -> SigSet {
    let mut set = SigSet::empty();
    for signal in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGCHLD,
    ] {
        set.add(signal);
    }
    set
}

/// The kernel's `siginfo_t` for `rt_sigqueueinfo` with `si_code = SI_QUEUE` (the `_rt`
/// member: pid, uid, value), 128 bytes as the kernel copies them.
#[repr(C)]
struct QueueInfo {
    signo: i32,
    errno: i32,
    code: i32,
    // The union of the other fields is aligned to 8 bytes (64-bit targets: x86_64, aarch64).
    _align: i32,
    pid: i32,
    uid: u32,
    value: usize,
    _rest: [u8; 128 - 16 - 8 - std::mem::size_of::<usize>()],
}

#[cfg(target_pointer_width = "64")]
const _: () = assert!(std::mem::size_of::<QueueInfo>() == 128);

impl QueueInfo {
    fn new(signal: Signal, pid: i32, uid: u32, value: i32) -> QueueInfo {
        QueueInfo {
            signo: signal as i32,
            errno: 0,
            code: SI_QUEUE,
            _align: 0,
            pid,
            uid,
            value: value as u32 as usize,
            _rest: [0; 128 - 16 - 8 - std::mem::size_of::<usize>()],
        }
    }
}

/// Sends `signal` to `target` as if from `sender_pid`/`sender_uid`, marked as forwarded.
/// `rt_sigqueueinfo` with `SI_QUEUE` lets a process state the sender; the worker's watchdog
/// recognises [`FORWARD_MARK`].
pub(crate) fn forward_signal(
    target: i32,
    signal: Signal,
    sender_pid: i32,
    sender_uid: u32,
) -> bool {
    queue_signal(target, signal, sender_pid, sender_uid, FORWARD_MARK)
}

/// Resumes a stopped worker with a SIGCONT marked with [`CONTINUE_MARK`] and the signal that
/// stopped it, so that the worker can report the stop.
pub(crate) fn continue_worker(target: i32, stop_signal: Signal) -> bool {
    let me = std::process::id() as i32;
    let uid = nix::unistd::getuid().as_raw();
    queue_signal(
        target,
        Signal::SIGCONT,
        me,
        uid,
        CONTINUE_MARK | (stop_signal as i32 & 0xff),
    )
}

fn queue_signal(target: i32, signal: Signal, sender_pid: i32, sender_uid: u32, value: i32) -> bool {
    let info = QueueInfo::new(signal, sender_pid, sender_uid, value);
    // SAFETY: `info` is a fully initialised 128-byte siginfo with the layout the kernel reads
    // for SI_QUEUE (signo, errno, code, then pid, uid and the sigval at the union's start);
    // the kernel only reads it. The call has no other memory effects.
    let result = unsafe {
        libc::syscall(
            libc::SYS_rt_sigqueueinfo,
            target,
            signal as i32,
            std::ptr::addr_of!(info),
        )
    };
    if result == 0 {
        return true;
    }
    // Not allowed (another user namespace, a seccomp filter): a plain kill still stops it.
    nix::sys::signal::kill(Pid::from_raw(target), signal).is_ok()
}

/// The exit code a shell would report for a status.
fn exit_code_of(status: WaitStatus) -> Option<(Option<i32>, Option<i32>, bool)> {
    match status {
        WaitStatus::Exited(_, code) => Some((None, Some(code), false)),
        WaitStatus::Signaled(_, signal, core) => Some((Some(signal as i32), None, core)),
        _ => None,
    }
}

fn spawn_worker(
    settings: &SupervisorSettings,
    me: i32,
    report: Option<&RestartReport>,
    carry: Option<&CarryMemory>,
) -> Result<i32, SuperviseError> {
    let mut command = Command::new(&settings.program);
    command
        .arg0(&settings.arg0)
        .args(&settings.args)
        .env(WORKER_ENV, me.to_string())
        .env_remove(REPORT_ENV)
        .env_remove(SUPERVISOR_ENV)
        .env_remove(CARRY_ENV);
    if let Some(carry) = carry {
        command.env(CARRY_ENV, carry.raw().to_string());
    }
    if let Some(report) = report {
        if let Ok(json) = serde_json::to_string(report) {
            command.env(REPORT_ENV, json);
        }
    }
    // SAFETY: the closure runs in the forked child before exec and only makes
    // async-signal-safe system calls (prctl, getppid, _exit) on values copied in.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGTERM as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            // The supervisor died between fork and prctl: do not run unsupervised.
            if libc::getppid() != me {
                libc::_exit(i32::from(exit::FAILURE));
            }
            Ok(())
        });
    }
    let child = command.spawn().map_err(|source| SuperviseError::Spawn {
        program: settings.program.clone(),
        source,
    })?;
    // Reaped with waitpid below, never through `Child`.
    Ok(child.id() as i32)
}

/// Runs the supervisor until the worker ends after a stop signal, or restarts run out.
/// Returns the exit code for the process.
pub fn run(settings: SupervisorSettings) -> Result<u8, SuperviseError> {
    crate::memory::limit_arenas();
    let signals = supervisor_signals();
    pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&signals), None)
        .map_err(SuperviseError::Signals)?;
    let fd = SignalFd::with_flags(&signals, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .map_err(SuperviseError::Signals)?;
    let me = std::process::id() as i32;
    let mut policy = RestartPolicy::new(settings.max_restarts, settings.window, settings.backoff);
    // What each worker reported, for the one that replaces it; without it (memfd refused by
    // a seccomp profile) a restarted worker reports everything again, as it says.
    let carry = CarryMemory::create()
        .map_err(|error| {
            tracing::warn!(%error, "Restarted workers will report again what their predecessor reported.");
        })
        .ok();
    let mut worker = Some(spawn_worker(&settings, me, None, carry.as_ref())?);
    // The supervisor needs little from here on: what starting up freed goes back, and so do
    // the binary's pages it will not run again (crate::memory).
    crate::memory::trim();
    crate::memory::release_startup_pages();
    let mut started = Instant::now();
    tracing::info!(
        worker_pid = worker,
        "Supervisor started the monitor worker."
    );
    let mut stopping = false;
    let mut last_code = exit::OK;
    // Stops of the worker seen so far, and when one was last logged.
    let mut stops: u64 = 0;
    let mut last_stop_log: Option<Instant> = None;
    // A restart waiting for its delay: when, and the report to give.
    let mut pending: Option<(Instant, RestartReport, Instant)> = None;
    loop {
        let timeout = match &pending {
            Some((at, ..)) => {
                let wait = at.saturating_duration_since(Instant::now());
                PollTimeout::try_from(wait.as_millis().min(60_000) as i32)
                    .unwrap_or(PollTimeout::MAX)
            }
            None => PollTimeout::NONE,
        };
        let readable = {
            let mut fds = [PollFd::new(
                std::os::fd::AsFd::as_fd(&fd),
                PollFlags::POLLIN,
            )];
            matches!(poll(&mut fds, timeout), Ok(n) if n > 0)
        };
        if readable {
            while let Ok(Some(info)) = fd.read_signal() {
                let Ok(signal) = Signal::try_from(info.ssi_signo as i32) else {
                    continue;
                };
                match signal {
                    Signal::SIGCHLD => {}
                    Signal::SIGTERM | Signal::SIGINT | Signal::SIGHUP => {
                        if signal != Signal::SIGHUP {
                            stopping = true;
                        }
                        match worker {
                            Some(pid) => {
                                forward_signal(pid, signal, info.ssi_pid as i32, info.ssi_uid);
                            }
                            None if stopping => {
                                tracing::info!(
                                    signal = signal.as_str(),
                                    "Stopping while the monitor worker was down."
                                );
                                return Ok(last_code);
                            }
                            None => {}
                        }
                    }
                    _ => {}
                }
            }
        }
        // Reap every child: the worker, and any orphan if this is a namespace's init.
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG | WaitPidFlag::WUNTRACED)) {
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(WaitStatus::Stopped(pid, stop_signal)) => {
                    if Some(pid.as_raw()) != worker {
                        continue;
                    }
                    stops += 1;
                    // Rate-limited: anything in the task may send SIGSTOP in a loop; the
                    // worker reports every stop as an event (the alert pipeline aggregates).
                    if last_stop_log
                        .is_none_or(|at: Instant| at.elapsed() >= Duration::from_secs(10))
                    {
                        last_stop_log = Some(Instant::now());
                        tracing::warn!(
                            worker_pid = pid.as_raw(),
                            signal = stop_signal.as_str(),
                            stops,
                            "The monitor worker was stopped; resuming it."
                        );
                    }
                    if !continue_worker(pid.as_raw(), stop_signal) {
                        tracing::error!(
                            worker_pid = pid.as_raw(),
                            "Cannot resume the stopped monitor worker."
                        );
                    }
                }
                Ok(status) => {
                    if status.pid().map(Pid::as_raw) != worker {
                        continue;
                    }
                    let Some((signal, code, core_dumped)) = exit_code_of(status) else {
                        continue;
                    };
                    let dead = worker.take().unwrap_or_default();
                    last_code = match (signal, code) {
                        (Some(signal), _) => 128u8.saturating_add(signal as u8),
                        (None, Some(code)) => u8::try_from(code).unwrap_or(exit::FAILURE),
                        (None, None) => exit::FAILURE,
                    };
                    if stopping {
                        tracing::info!(
                            exit_code = last_code,
                            "The monitor worker stopped; the supervisor exits."
                        );
                        return Ok(last_code);
                    }
                    if code == Some(i32::from(exit::CONFIG)) {
                        tracing::error!(
                            "The monitor worker rejected its configuration; not restarting."
                        );
                        return Ok(exit::CONFIG);
                    }
                    let uptime = started.elapsed();
                    let died_at = Instant::now();
                    let Some((delay, restarts)) = policy.next(died_at) else {
                        tracing::error!(
                            worker_pid = dead,
                            signal = signal.map(signal_name),
                            exit_code = code,
                            max_restarts = settings.max_restarts,
                            window_secs = settings.window.as_secs(),
                            "The monitor worker ended too often; the supervisor gives up."
                        );
                        return Ok(exit::FAILURE);
                    };
                    tracing::warn!(
                        worker_pid = dead,
                        signal = signal.map(signal_name),
                        exit_code = code,
                        restarts,
                        delay_ms = delay.as_millis() as u64,
                        "The monitor worker ended unexpectedly; restarting it."
                    );
                    let report = RestartReport {
                        pid: dead,
                        signal,
                        exit_code: code,
                        core_dumped,
                        uptime_ms: uptime.as_millis() as u64,
                        down_ms: 0,
                        restarts,
                        max_restarts: settings.max_restarts,
                        window_secs: settings.window.as_secs(),
                        supervisor_pid: me,
                    };
                    pending = Some((died_at + delay, report, died_at));
                }
            }
        }
        if let Some((at, ..)) = &pending {
            if Instant::now() >= *at && !stopping {
                if let Some((_, mut report, died_at)) = pending.take() {
                    report.down_ms = died_at.elapsed().as_millis() as u64;
                    worker = Some(spawn_worker(&settings, me, Some(&report), carry.as_ref())?);
                    started = Instant::now();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restarts_are_bounded_per_window_and_spaced_out() {
        let mut policy = RestartPolicy::new(3, Duration::from_secs(60), Duration::from_millis(500));
        let t0 = Instant::now();
        assert_eq!(policy.next(t0), Some((Duration::ZERO, 1)));
        assert_eq!(
            policy.next(t0 + Duration::from_secs(1)),
            Some((Duration::from_millis(500), 2))
        );
        assert_eq!(
            policy.next(t0 + Duration::from_secs(2)),
            Some((Duration::from_secs(1), 3))
        );
        assert_eq!(policy.next(t0 + Duration::from_secs(3)), None);
        // Once the first restart has left the window, one more is allowed.
        assert_eq!(
            policy.next(t0 + Duration::from_millis(60_500)),
            Some((Duration::from_secs(1), 3))
        );
        let mut never = RestartPolicy::new(0, Duration::from_secs(60), Duration::from_secs(1));
        assert_eq!(never.next(t0), None);
        let mut many = RestartPolicy::new(100, Duration::from_secs(3600), Duration::from_secs(1));
        let delays: Vec<Duration> = (0..40)
            .map(|i| many.next(t0 + Duration::from_secs(i)).expect("allowed").0)
            .collect();
        assert_eq!(delays.iter().max(), Some(&MAX_BACKOFF));
    }

    #[test]
    fn a_kill_report_becomes_a_monitor_killed_event_naming_the_signal_and_pid() {
        let report = RestartReport {
            pid: 42,
            signal: Some(9),
            exit_code: None,
            core_dumped: false,
            uptime_ms: 12_300,
            down_ms: 3,
            restarts: 1,
            max_restarts: 5,
            window_secs: 600,
            supervisor_pid: 7,
        };
        let json = serde_json::to_string(&report).expect("json");
        assert_eq!(
            serde_json::from_str::<RestartReport>(&json).expect("back"),
            report
        );
        let event = report.event();
        let internal = event.internal.as_ref().expect("internal");
        assert_eq!(internal.kind, "monitor_killed");
        assert_eq!(internal.count, Some(1));
        assert_eq!(event.evt.arg("signal"), Some("SIGKILL"));
        assert_eq!(event.evt.arg("signal_number"), Some("9"));
        assert_eq!(event.evt.arg("pid"), Some("42"));
        assert!(internal.message.contains("pid 42"), "{}", internal.message);
        assert!(internal.message.contains("OOM"), "{}", internal.message);

        let crashed = RestartReport {
            signal: None,
            exit_code: Some(101),
            ..report
        }
        .event();
        assert_eq!(
            crashed.internal.as_ref().expect("internal").kind,
            "monitor_exited"
        );
        assert_eq!(crashed.evt.arg("exit_code"), Some("101"));
        assert_eq!(crashed.evt.arg("signal"), None);
    }

    #[test]
    fn a_forwarded_signal_carries_the_original_sender_and_the_mark() {
        // The same siginfo, sent to this thread (SIGUSR2 blocked in it and read through a
        // signalfd) as if from pid 4242 uid 1000: the receiver sees that sender and the mark.
        let mut set = SigSet::empty();
        set.add(Signal::SIGUSR2);
        pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), None).expect("block");
        let fd = SignalFd::with_flags(&set, SfdFlags::SFD_NONBLOCK).expect("signalfd");
        let info = QueueInfo::new(Signal::SIGUSR2, 4242, 1000, FORWARD_MARK);
        // SAFETY: a valid siginfo for SI_QUEUE, read by the kernel only.
        let result = unsafe {
            libc::syscall(
                libc::SYS_rt_tgsigqueueinfo,
                libc::getpid(),
                libc::gettid(),
                Signal::SIGUSR2 as i32,
                std::ptr::addr_of!(info),
            )
        };
        assert_eq!(result, 0, "{}", std::io::Error::last_os_error());
        let got = fd.read_signal().expect("read").expect("a signal");
        assert_eq!(got.ssi_signo, Signal::SIGUSR2 as u32);
        assert_eq!(got.ssi_pid, 4242);
        assert_eq!(got.ssi_uid, 1000);
        assert_eq!(got.ssi_code, SI_QUEUE);
        assert_eq!(got.ssi_int, FORWARD_MARK);
    }
}
