//! Self-protection: the monitor reports what is done to it, as alerts through the normal
//! outputs, before it acts on it.
//!
//! - Signals: SIGTERM, SIGINT and SIGHUP are blocked in every thread ([`block_signals`], called
//!   before any thread starts) and taken with `sigtimedwait` by the watchdog thread, which
//!   learns the sender's pid and uid (`si_pid`, `si_uid`, kept as a signalfd would give them:
//!   `ssi_pid`, `ssi_uid`). It looks the sender up (the collectors' process table first, then
//!   `/proc`) and queues a `tasksentry` event of kind `signal_received` whose `proc.*` and
//!   `container.*` describe the sender and whose `evt.arg.signal`, `evt.arg.sender_pid` and
//!   `evt.arg.sender_uid` say what came from whom; only then does it start the shutdown
//!   (SIGTERM, SIGINT) or the rules reload (SIGHUP). A signal from outside the task's PID
//!   namespace (ECS stopping the task) has sender pid 0. Under supervision
//!   ([`super::supervise`]) the supervisor forwards the signals it receives with the original
//!   sender's pid and uid (marked by `ssi_int`), so the sender named is the one that signalled
//!   the container's main process (`evt.arg.forwarded_by_pid` says it was forwarded); the
//!   parent-death SIGTERM from a vanished supervisor is reported as `supervisor_lost` instead,
//!   before the monitor stops.
//! - Stops: SIGSTOP cannot be caught, but the SIGCONT that resumes the monitor can be read.
//!   Under supervision the supervisor resumes a stopped worker at once with a marked SIGCONT
//!   naming the stop signal; unsupervised, a SIGCONT that arrives after the watchdog went
//!   more than [`STOP_GAP`] without running means the monitor was stopped, and whoever
//!   resumed it is named. Both are reported as `monitor_stopped` ([`stopped_event`]). Every
//!   second the worker also checks its supervisor's state and resumes a stopped supervisor
//!   (`supervisor_stopped`). Who sent the SIGSTOP is not knowable from user space.
//! - Tracing: every second the watchdog reads its own `TracerPid` (and its supervisor's); a
//!   new tracer is reported as `monitor_traced` with the tracer as `proc.*`.
//! - Rule changes: every `rules_poll_interval` it fingerprints the configured rule files and
//!   directories (names, sizes, modification times) and asks the engine for a reload when the
//!   fingerprint changes.
//!
//! The rules in `rules/tasksentry_internal_rules.yaml` turn these events into alerts, so their
//! priorities and outputs are tunable like any rule.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Sender, SyncSender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use nix::sys::signal::{SigSet, SigmaskHow, Signal, pthread_sigmask};

use crate::collect::SharedTables;
use crate::engine::Control;
use crate::event::{Collector, Container, Event, EventType, Internal, Process};

/// The signals the watchdog handles. SIGCONT is blocked too: blocking does not delay the
/// resumption of a stopped process, it only queues the SIGCONT (with its sender) for the
/// watchdog, which reports the stop.
pub(crate) const HANDLED: [Signal; 4] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGCONT,
];

/// How long one watchdog iteration waits for a signal. Signals end the wait at once; the
/// timeout only paces the once-a-second checks (tracers, the supervisor, rule files), so an
/// idle monitor's watchdog wakes twice a second.
const WAIT: Duration = Duration::from_millis(500);

/// A watchdog loop iteration takes at most about [`WAIT`]; a SIGCONT after a gap longer than
/// this between two iterations means the monitor was stopped.
pub(crate) const STOP_GAP: Duration = Duration::from_secs(1);

/// The watchdog could not be set up.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TamperError {
    /// Blocking the handled signals failed.
    #[error("cannot block {signals:?}: {source}")]
    Mask {
        /// The signals.
        signals: [Signal; 4],
        /// Why.
        source: nix::Error,
    },
    /// Starting the thread failed.
    #[error("cannot start the watchdog thread: {0}")]
    Thread(std::io::Error),
}

fn handled_set() -> SigSet {
    let mut set = SigSet::empty();
    for signal in HANDLED {
        set.add(signal);
    }
    set
}

/// Blocks the handled signals in the calling thread, and so in every thread it starts
/// afterwards; call it first thing, before any thread exists.
pub(crate) fn block_signals() -> Result<(), TamperError> {
    pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&handled_set()), None).map_err(|source| {
        TamperError::Mask {
            signals: HANDLED,
            source,
        }
    })
}

/// Who and what a process is, for a tamper report: from the collectors' tables when they
/// know the pid, else from `proc_root`. `None` when it is gone and unknown.
pub(crate) fn describe_process(
    pid: i32,
    proc_root: &Path,
    tables: Option<&SharedTables>,
) -> Option<(Process, Option<Container>)> {
    if pid <= 0 {
        return None;
    }
    // Read now: the tables may hold the process as it was before its latest exec (a fork of
    // `nsenter` that has since become `sh`), and the report must name what signalled.
    let fresh = read_process(pid, proc_root);
    if let Some(tables) = tables {
        let snapshot = tables.snapshot();
        if let Some((entry, container)) = snapshot.lookup_pid(pid)
            // An entry for an earlier process that had this pid is another process.
            && fresh
                .as_ref()
                .is_none_or(|(now, _)| now.start_ticks == entry.process.start_ticks)
        {
            let mut process = (*entry.process).clone();
            if let Some((now, _)) = &fresh {
                process.name.clone_from(&now.name);
                process.exe.clone_from(&now.exe);
                process.exepath.clone_from(&now.exepath);
                process.args.clone_from(&now.args);
            }
            return Some((process, container.map(|c| c.container.clone())));
        }
    }
    fresh
}

/// Reads the little a tamper report needs from `/proc/<pid>`.
fn read_process(pid: i32, proc_root: &Path) -> Option<(Process, Option<Container>)> {
    let dir = proc_root.join(pid.to_string());
    let stat = std::fs::read(dir.join("stat")).ok()?;
    let stat = crate::procfs::parse_stat(&stat)?;
    let cmdline = std::fs::read(dir.join("cmdline")).unwrap_or_default();
    let cmdline = crate::procfs::parse_cmdline(&cmdline, false);
    // Another user's `exe` is read as that user where the monitor lacks CAP_SYS_PTRACE (the
    // watchdog runs on its own thread; see `collect::access`).
    let access = crate::collect::access::Access::current();
    let owner = if access.may_switch() {
        crate::collect::access::dir_owner(proc_root, pid)
    } else {
        None
    };
    let exepath = access
        .as_owner(owner, || std::fs::read_link(dir.join("exe")))
        .ok()
        .map(|target| crate::procfs::parse_exe_link(&target.to_string_lossy()).0);
    let container = std::fs::read_to_string(dir.join("cgroup"))
        .ok()
        .and_then(|text| crate::procfs::parse_cgroup(&text).container_id)
        .map(|id| Container {
            id,
            ..Container::default()
        });
    let process = Process {
        pid,
        ppid: stat.ppid,
        start_ticks: stat.starttime,
        name: stat.comm.clone(),
        exe: cmdline.argv0,
        exepath,
        args: cmdline.args,
        ..Process::default()
    };
    Some((process, container))
}

/// The `signal_received` event for a signal from `pid`/`uid`.
pub(crate) fn signal_event(
    signal: Signal,
    pid: i32,
    uid: u32,
    proc_root: &Path,
    tables: Option<&SharedTables>,
) -> Event {
    let mut event = Event::new(EventType::Tasksentry, Collector::Monitor);
    event.evt.args = vec![
        ("signal".to_owned(), signal.as_str().to_owned()),
        ("sender_pid".to_owned(), pid.to_string()),
        ("sender_uid".to_owned(), uid.to_string()),
    ];
    let sender = describe_process(pid, proc_root, tables);
    let message = match (&sender, pid) {
        (_, 0) => format!(
            "TaskSentry received {} from outside the task's PID namespace (uid {uid})",
            signal.as_str()
        ),
        (Some((process, container)), _) => format!(
            "TaskSentry received {} from pid {pid} ({}: {}) uid {uid} in container {}",
            signal.as_str(),
            process.name,
            process.cmdline(),
            container.as_ref().map_or("<unknown>", |c| c.id.as_str())
        ),
        (None, _) => format!(
            "TaskSentry received {} from pid {pid} uid {uid}, which exited before it could be identified",
            signal.as_str()
        ),
    };
    if let Some((process, container)) = sender {
        event.proc = Some(Box::new(process));
        event.container = container.map(Box::new);
    }
    event.internal = Some(Box::new(Internal {
        kind: "signal_received".to_owned(),
        message,
        count: None,
    }));
    event
}

/// Where a signal read by the watchdog came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SignalOrigin {
    /// Sent to this process (`ssi_pid` is the sender).
    Direct,
    /// Forwarded by the supervisor with this pid (`ssi_pid` is the original sender).
    Forwarded(i32),
    /// The parent-death signal: the supervisor with this pid is gone.
    SupervisorDied(i32),
}

impl SignalOrigin {
    /// Classifies a signal given the supervisor's pid (if supervised).
    pub(crate) fn of(info: &nix::libc::signalfd_siginfo, supervisor: Option<i32>) -> SignalOrigin {
        let Some(supervisor) = supervisor else {
            return SignalOrigin::Direct;
        };
        if info.ssi_code == super::supervise::SI_QUEUE
            && info.ssi_int == super::supervise::FORWARD_MARK
        {
            return SignalOrigin::Forwarded(supervisor);
        }
        if info.ssi_signo == Signal::SIGTERM as u32
            && info.ssi_code == super::supervise::SI_USER
            && info.ssi_pid as i32 == supervisor
            && nix::unistd::getppid().as_raw() != supervisor
        {
            return SignalOrigin::SupervisorDied(supervisor);
        }
        SignalOrigin::Direct
    }
}

/// The `supervisor_lost` event: the supervisor died (the worker got its parent-death signal).
pub fn supervisor_lost_event(supervisor: i32) -> Event {
    let mut event = Event::new(EventType::Tasksentry, Collector::Monitor);
    event.evt.args = vec![
        ("supervisor_pid".to_owned(), supervisor.to_string()),
        ("signal".to_owned(), "SIGTERM".to_owned()),
    ];
    event.internal = Some(Box::new(Internal {
        kind: "supervisor_lost".to_owned(),
        message: format!(
            "TaskSentry's supervisor (pid {supervisor}) is gone (killed, or crashed); the monitor (pid {}) reports it and stops, as the container's main process has ended",
            std::process::id()
        ),
        count: None,
    }));
    event
}

/// How a stop of the monitor was noticed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopNotice {
    /// The supervisor (this pid) resumed it at once; the stop signal is known.
    BySupervisor {
        /// The supervisor's pid.
        supervisor: i32,
        /// The signal that stopped the worker.
        signal: i32,
    },
    /// Someone (`pid`, `uid`) resumed it after `stopped` without the watchdog running.
    Resumed {
        /// The sender of the SIGCONT.
        pid: i32,
        /// Its uid.
        uid: u32,
        /// How long the watchdog did not run.
        stopped: Duration,
    },
}

impl StopNotice {
    /// Classifies a SIGCONT read by the watchdog, `gap` after its previous iteration:
    /// `None` for a SIGCONT that resumed nothing.
    pub(crate) fn of(
        info: &nix::libc::signalfd_siginfo,
        supervisor: Option<i32>,
        gap: Duration,
    ) -> Option<StopNotice> {
        if let Some(supervisor) = supervisor
            && info.ssi_code == super::supervise::SI_QUEUE
            && info.ssi_pid as i32 == supervisor
            && info.ssi_int & !0xff == super::supervise::CONTINUE_MARK
        {
            return Some(StopNotice::BySupervisor {
                supervisor,
                signal: info.ssi_int & 0xff,
            });
        }
        (gap > STOP_GAP).then_some(StopNotice::Resumed {
            pid: info.ssi_pid as i32,
            uid: info.ssi_uid,
            stopped: gap,
        })
    }
}

/// The `monitor_stopped` event.
pub fn stopped_event(notice: StopNotice, proc_root: &Path, tables: Option<&SharedTables>) -> Event {
    let mut event = Event::new(EventType::Tasksentry, Collector::Monitor);
    let me = std::process::id();
    let message = match notice {
        StopNotice::BySupervisor { supervisor, signal } => {
            let name = super::supervise::signal_name(signal);
            event.evt.args = vec![
                ("signal".to_owned(), name.clone()),
                ("resumed_by_pid".to_owned(), supervisor.to_string()),
                ("supervisor_pid".to_owned(), supervisor.to_string()),
            ];
            format!(
                "TaskSentry's monitor process (pid {me}) was stopped by {name} (the sender of a stop signal cannot be known) and its supervisor (pid {supervisor}) resumed it at once; short-lived processes started meanwhile may have been missed"
            )
        }
        StopNotice::Resumed { pid, uid, stopped } => {
            event.evt.args = vec![
                ("signal".to_owned(), "unknown".to_owned()),
                ("resumed_by_pid".to_owned(), pid.to_string()),
                ("resumed_by_uid".to_owned(), uid.to_string()),
                ("stopped_ms".to_owned(), stopped.as_millis().to_string()),
            ];
            let resumer = describe_process(pid, proc_root, tables);
            let who = match (&resumer, pid) {
                (_, 0) => format!("from outside the task's PID namespace (uid {uid})"),
                (Some((process, _)), _) => {
                    format!(
                        "by pid {pid} ({}: {}) uid {uid}",
                        process.name,
                        process.cmdline()
                    )
                }
                (None, _) => format!("by pid {pid} uid {uid}, which has exited"),
            };
            if let Some((process, container)) = resumer {
                event.proc = Some(Box::new(process));
                event.container = container.map(Box::new);
            }
            format!(
                "TaskSentry's monitor process (pid {me}) did not run for {:.1} s (stopped) and was resumed {who}; what happened in the task meanwhile may have been missed",
                stopped.as_secs_f64()
            )
        }
    };
    event.internal = Some(Box::new(Internal {
        kind: "monitor_stopped".to_owned(),
        message,
        count: None,
    }));
    event
}

/// The `supervisor_stopped` event: the worker found its supervisor stopped and resumed it.
pub fn supervisor_stopped_event(supervisor: i32, resumed: bool) -> Event {
    let mut event = Event::new(EventType::Tasksentry, Collector::Monitor);
    event.evt.args = vec![
        ("supervisor_pid".to_owned(), supervisor.to_string()),
        ("resumed".to_owned(), resumed.to_string()),
    ];
    event.internal = Some(Box::new(Internal {
        kind: "supervisor_stopped".to_owned(),
        message: format!(
            "TaskSentry's supervisor (pid {supervisor}) was found stopped (the sender of a stop signal cannot be known); the monitor (pid {}) {}",
            std::process::id(),
            if resumed {
                "resumed it"
            } else {
                "could not resume it"
            }
        ),
        count: None,
    }));
    event
}

/// Whether the `status` file says the process is stopped by a signal (`State: T`; a
/// ptrace stop is `t` and is not ours to end).
pub(crate) fn is_stopped(status: &str) -> bool {
    status
        .lines()
        .find_map(|line| line.strip_prefix("State:"))
        .is_some_and(|state| state.trim_start().starts_with('T'))
}

/// The `TracerPid` of a `status` file; `None` if unreadable.
pub(crate) fn tracer_pid(status: &Path) -> Option<i32> {
    tracer_pid_in(&std::fs::read_to_string(status).ok()?)
}

/// The `TracerPid` of a `status` text.
fn tracer_pid_in(status: &str) -> Option<i32> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("TracerPid:"))
        .and_then(|value| value.trim().parse().ok())
}

/// The `monitor_traced` event for a tracer of the monitor.
pub(crate) fn traced_event(tracer: i32, proc_root: &Path, tables: Option<&SharedTables>) -> Event {
    let mut event = Event::new(EventType::Tasksentry, Collector::Monitor);
    event.evt.args = vec![("tracer_pid".to_owned(), tracer.to_string())];
    let sender = describe_process(tracer, proc_root, tables);
    let name = sender
        .as_ref()
        .map_or_else(|| "<gone>".to_owned(), |(p, _)| p.cmdline());
    if let Some((process, container)) = sender {
        event.proc = Some(Box::new(process));
        event.container = container.map(Box::new);
    }
    event.internal = Some(Box::new(Internal {
        kind: "monitor_traced".to_owned(),
        message: format!(
            "TaskSentry (pid {}) is being traced by pid {tracer} ({name})",
            std::process::id()
        ),
        count: None,
    }));
    event
}

/// A fingerprint of rule paths: every file's path, size and modification time (directories
/// expanded one level, as the loader reads them). Unreadable paths count as absent.
pub(crate) fn rules_fingerprint(paths: &[PathBuf]) -> Vec<(PathBuf, u64, Option<SystemTime>)> {
    let mut out = Vec::new();
    for path in paths {
        let Ok(metadata) = std::fs::metadata(path) else {
            out.push((path.clone(), u64::MAX, None));
            continue;
        };
        if metadata.is_dir() {
            if let Ok(entries) = std::fs::read_dir(path) {
                let mut files: Vec<_> = entries
                    .filter_map(|entry| entry.ok())
                    .filter_map(|entry| {
                        let metadata = entry.metadata().ok()?;
                        metadata
                            .is_file()
                            .then(|| (entry.path(), metadata.len(), metadata.modified().ok()))
                    })
                    .collect();
                files.sort();
                out.extend(files);
            }
        } else {
            out.push((path.clone(), metadata.len(), metadata.modified().ok()));
        }
    }
    out
}

/// What the watchdog thread needs.
pub(crate) struct Watchdog {
    /// Where internal events go (the collectors' queue into the engine).
    pub(crate) events: SyncSender<Event>,
    /// Reload requests to the engine.
    pub(crate) control: Sender<Control>,
    /// Set on SIGTERM/SIGINT (after the event is queued); the watchdog also stops when it is
    /// set by someone else.
    pub(crate) shutdown: Arc<AtomicBool>,
    /// Called once with the signal's name when the monitor must stop.
    pub(crate) on_stop: Box<dyn FnOnce(&'static str) + Send>,
    /// The task's /proc.
    pub(crate) proc_root: PathBuf,
    /// The collectors' tables, to name senders.
    pub(crate) tables: Option<SharedTables>,
    /// Rule files and directories to watch (empty: none).
    pub(crate) rule_paths: Vec<PathBuf>,
    /// How often to check them (zero: never).
    pub(crate) rules_poll_interval: Duration,
    /// The supervisor's pid when this process is a supervised worker (see
    /// [`super::supervise`]): forwarded signals and its death are recognised, and a tracer
    /// of the supervisor is reported like a tracer of the monitor.
    pub(crate) supervisor: Option<i32>,
}

/// Starts the watchdog thread. [`block_signals`] must have run before any thread started.
pub(crate) fn spawn_watchdog(watchdog: Watchdog) -> Result<JoinHandle<()>, TamperError> {
    std::thread::Builder::new()
        .name("watchdog".into())
        .spawn(move || run_watchdog(watchdog))
        .map_err(TamperError::Thread)
}

/// Waits at most `timeout` for one of the handled signals (blocked in every thread) and takes
/// it, with the fields a `signalfd` would give. `sigtimedwait` rather than a `signalfd`: the
/// kernel wakes every thread that polls a signalfd of the process on every signal sent to the
/// process, whatever the signalfd's mask, so the tracer's `SIGCHLD`s (several per traced fork)
/// would wake the watchdog each time; a thread in `sigtimedwait` is woken only by the signals
/// it waits for. `None` on a timeout (or an interruption).
fn take_signal(set: &SigSet, timeout: Duration) -> Option<nix::libc::signalfd_siginfo> {
    let timeout = nix::libc::timespec {
        tv_sec: timeout
            .as_secs()
            .try_into()
            .unwrap_or(nix::libc::time_t::MAX),
        tv_nsec: timeout.subsec_nanos().into(),
    };
    // SAFETY: an all-zero `siginfo_t` is a valid value of this plain C struct.
    let mut info: nix::libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: the set, the info and the timeout are valid for the duration of the call, and
    // the info is writable.
    let signo = unsafe { nix::libc::sigtimedwait(set.as_ref(), &mut info, &timeout) };
    if signo <= 0 {
        return None;
    }
    // SAFETY: signalfd_siginfo is plain integers; all zeroes is a valid value.
    let mut out: nix::libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
    out.ssi_signo = signo as u32;
    out.ssi_code = info.si_code;
    // SAFETY: the handled signals come from kill, tgkill, sigqueue or the kernel, whose
    // siginfo carries the sender's pid and uid and the queued value at these places (zero
    // when the kernel sent it); `info` was zeroed, so no byte read is uninitialised.
    let (pid, uid, value) = unsafe { (info.si_pid(), info.si_uid(), info.si_value()) };
    out.ssi_pid = pid as u32;
    out.ssi_uid = uid;
    // `si_int` as a signalfd gives it: the low 32 bits of the value (little-endian layout).
    out.ssi_int = value.sival_ptr as usize as i32;
    Some(out)
}

fn run_watchdog(watchdog: Watchdog) {
    let Watchdog {
        events,
        control,
        shutdown,
        on_stop,
        proc_root,
        tables,
        rule_paths,
        rules_poll_interval,
        supervisor,
    } = watchdog;
    let handled = handled_set();
    let mut on_stop = Some(on_stop);
    let self_status = PathBuf::from("/proc/self/status");
    let mut known_tracer = 0;
    let supervisor_status = supervisor.map(|pid| proc_root.join(pid.to_string()).join("status"));
    let mut known_supervisor_tracer = 0;
    let mut last_tracer_check = Instant::now() - Duration::from_secs(10);
    let poll_rules = !rules_poll_interval.is_zero() && !rule_paths.is_empty();
    let mut fingerprint = if poll_rules {
        rules_fingerprint(&rule_paths)
    } else {
        Vec::new()
    };
    let mut last_rules_check = Instant::now();
    // The start of the previous iteration: a stop of the process falls between it and now.
    let mut previous_top = Instant::now();
    while !shutdown.load(Ordering::Relaxed) {
        let top = Instant::now();
        let gap = top.saturating_duration_since(previous_top);
        previous_top = top;
        // The first signal is waited for (at most WAIT); the others already pending are
        // taken in the same iteration.
        let mut wait = WAIT;
        while let Some(info) = take_signal(&handled, wait) {
            wait = Duration::ZERO;
            {
                let Ok(signal) = Signal::try_from(info.ssi_signo as i32) else {
                    continue;
                };
                let pid = info.ssi_pid as i32;
                if signal == Signal::SIGCONT {
                    // The wait itself is part of this iteration: a stop during it shows in
                    // the time since the iteration began.
                    let gap = gap.max(top.elapsed());
                    if let Some(notice) = StopNotice::of(&info, supervisor, gap) {
                        let _ = events.send(stopped_event(notice, &proc_root, tables.as_ref()));
                    }
                    continue;
                }
                let origin = SignalOrigin::of(&info, supervisor);
                let event = match origin {
                    SignalOrigin::SupervisorDied(supervisor) => supervisor_lost_event(supervisor),
                    SignalOrigin::Forwarded(by) => {
                        let mut event =
                            signal_event(signal, pid, info.ssi_uid, &proc_root, tables.as_ref());
                        event
                            .evt
                            .args
                            .push(("forwarded_by_pid".to_owned(), by.to_string()));
                        event
                    }
                    SignalOrigin::Direct => {
                        signal_event(signal, pid, info.ssi_uid, &proc_root, tables.as_ref())
                    }
                };
                // A blocking send: the engine keeps draining, and this report must not be lost.
                let _ = events.send(event);
                match signal {
                    Signal::SIGHUP => {
                        let _ = control.send(Control::Reload {
                            reason: format!("SIGHUP from pid {pid}"),
                        });
                    }
                    _ => {
                        tracing::info!(signal = signal.as_str(), sender_pid = pid, "Stopping.");
                        shutdown.store(true, Ordering::Relaxed);
                        if let Some(stop) = on_stop.take() {
                            stop(signal.as_str());
                        }
                        return;
                    }
                }
            }
        }
        if last_tracer_check.elapsed() >= Duration::from_secs(1) {
            last_tracer_check = Instant::now();
            if let Some(tracer) = tracer_pid(&self_status) {
                if tracer != 0 && tracer != known_tracer {
                    tracing::warn!(tracer, "TaskSentry is being traced.");
                    let _ = events.send(traced_event(tracer, &proc_root, tables.as_ref()));
                }
                known_tracer = tracer;
            }
            // One read of the supervisor's status for both checks.
            if let (Some(status), Some(supervisor)) = (
                supervisor_status
                    .as_ref()
                    .and_then(|path| std::fs::read_to_string(path).ok()),
                supervisor,
            ) {
                if is_stopped(&status) {
                    let resumed = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(supervisor),
                        Signal::SIGCONT,
                    )
                    .is_ok();
                    tracing::warn!(supervisor, resumed, "TaskSentry's supervisor was stopped.");
                    let _ = events.send(supervisor_stopped_event(supervisor, resumed));
                }
                if let Some(tracer) = tracer_pid_in(&status) {
                    if tracer != 0 && tracer != known_supervisor_tracer {
                        tracing::warn!(
                            tracer,
                            supervisor,
                            "TaskSentry's supervisor is being traced."
                        );
                        let mut event = traced_event(tracer, &proc_root, tables.as_ref());
                        event
                            .evt
                            .args
                            .push(("traced_pid".to_owned(), supervisor.to_string()));
                        if let Some(internal) = event.internal.as_mut() {
                            internal.message = format!(
                                "TaskSentry's supervisor (pid {supervisor}) is being traced by pid {tracer}"
                            );
                        }
                        let _ = events.send(event);
                    }
                    known_supervisor_tracer = tracer;
                }
            }
        }
        if poll_rules && last_rules_check.elapsed() >= rules_poll_interval {
            last_rules_check = Instant::now();
            let now = rules_fingerprint(&rule_paths);
            if now != fingerprint {
                fingerprint = now;
                let _ = control.send(Control::Reload {
                    reason: "rule files changed".to_owned(),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_event_names_a_live_sender_from_proc() {
        let me = i32::try_from(std::process::id()).expect("pid fits");
        let event = signal_event(Signal::SIGTERM, me, 0, Path::new("/proc"), None);
        let internal = event.internal.as_ref().expect("internal");
        assert_eq!(internal.kind, "signal_received");
        assert_eq!(event.evt.arg("signal"), Some("SIGTERM"));
        assert_eq!(event.evt.arg("sender_pid"), Some(me.to_string().as_str()));
        let process = event.proc.as_ref().expect("the sender is described");
        assert_eq!(process.pid, me);
        assert!(
            internal.message.contains(&format!("pid {me}")),
            "{}",
            internal.message
        );
    }

    #[test]
    fn signal_from_outside_the_namespace_has_no_process() {
        let event = signal_event(Signal::SIGTERM, 0, 0, Path::new("/proc"), None);
        assert!(event.proc.is_none());
        assert!(
            event
                .internal
                .as_ref()
                .is_some_and(|i| i.message.contains("outside the task")),
        );
    }

    #[test]
    fn tracer_pid_is_read_from_status() {
        let dir = tempfile::tempdir().expect("tempdir");
        let status = dir.path().join("status");
        std::fs::write(&status, "Name:\tx\nTracerPid:\t4242\nUid:\t0\n").expect("write");
        assert_eq!(tracer_pid(&status), Some(4242));
        assert_eq!(tracer_pid(Path::new("/proc/self/status")), Some(0));
        assert_eq!(tracer_pid(&dir.path().join("missing")), None);
    }

    fn siginfo(code: i32, pid: u32, value: i32) -> nix::libc::signalfd_siginfo {
        // SAFETY: signalfd_siginfo is plain integers; all zeroes is a valid value.
        let mut info: nix::libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
        info.ssi_signo = Signal::SIGCONT as u32;
        info.ssi_code = code;
        info.ssi_pid = pid;
        info.ssi_int = value;
        info
    }

    #[test]
    fn a_sigcont_is_a_stop_only_when_marked_by_the_supervisor_or_after_a_gap() {
        let mark = super::super::supervise::CONTINUE_MARK | 19;
        let queued = super::super::supervise::SI_QUEUE;
        let short = Duration::from_millis(150);
        assert_eq!(
            StopNotice::of(&siginfo(queued, 77, mark), Some(77), short),
            Some(StopNotice::BySupervisor {
                supervisor: 77,
                signal: 19
            })
        );
        // The mark from another process, or without supervision, is not the supervisor's.
        assert_eq!(
            StopNotice::of(&siginfo(queued, 78, mark), Some(77), short),
            None
        );
        assert_eq!(
            StopNotice::of(&siginfo(queued, 77, mark), None, short),
            None
        );
        // A SIGCONT to a running monitor resumed nothing.
        assert_eq!(StopNotice::of(&siginfo(0, 55, 0), Some(77), short), None);
        let long = Duration::from_millis(4200);
        assert_eq!(
            StopNotice::of(&siginfo(0, 55, 0), None, long),
            Some(StopNotice::Resumed {
                pid: 55,
                uid: 0,
                stopped: long
            })
        );
    }

    #[test]
    fn stop_events_name_the_signal_and_the_resumer() {
        let event = stopped_event(
            StopNotice::BySupervisor {
                supervisor: 77,
                signal: 20,
            },
            Path::new("/proc"),
            None,
        );
        let internal = event.internal.as_ref().expect("internal");
        assert_eq!(internal.kind, "monitor_stopped");
        assert!(internal.message.contains("SIGTSTP"), "{}", internal.message);
        assert!(
            event
                .evt
                .args
                .contains(&("signal".to_owned(), "SIGTSTP".to_owned()))
        );
        let me = i32::try_from(std::process::id()).expect("pid fits");
        let event = stopped_event(
            StopNotice::Resumed {
                pid: me,
                uid: 0,
                stopped: Duration::from_millis(2500),
            },
            Path::new("/proc"),
            None,
        );
        assert_eq!(
            event.proc.as_ref().map(|p| p.pid),
            Some(me),
            "the resumer is named"
        );
        assert!(
            event
                .evt
                .args
                .contains(&("stopped_ms".to_owned(), "2500".to_owned()))
        );
        let message = &event.internal.as_ref().expect("internal").message;
        assert!(message.contains("2.5 s"), "{message}");
    }

    #[test]
    fn stopped_state_is_read_from_status() {
        assert!(is_stopped("Name:\tx\nState:\tT (stopped)\nTracerPid:\t0\n"));
        assert!(!is_stopped("Name:\tx\nState:\tt (tracing stop)\n"));
        assert!(!is_stopped("Name:\tx\nState:\tS (sleeping)\n"));
        assert!(!is_stopped("garbage\n\u{fffd}"));
    }

    #[test]
    fn fingerprint_changes_when_a_rules_file_changes() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("a.yaml"), "- list: x\n  items: []\n").expect("write");
        let paths = vec![dir.path().to_owned()];
        let before = rules_fingerprint(&paths);
        assert_eq!(before.len(), 1);
        std::fs::write(dir.path().join("a.yaml"), "- list: x\n  items: [a, b]\n").expect("write");
        assert_ne!(rules_fingerprint(&paths), before);
    }
}
