//! Self-protection: the monitor reports what is done to it, as alerts through the normal
//! outputs, before it acts on it.
//!
//! - Signals: SIGTERM, SIGINT and SIGHUP are blocked in every thread ([`block_signals`], called
//!   before any thread starts) and read from a `signalfd` by the watchdog thread, which
//!   learns the sender's pid and uid (`ssi_pid`, `ssi_uid`). It looks the sender up (the
//!   collectors' process table first, then `/proc`) and queues a `tasksentry` event of kind
//!   `signal_received` whose `proc.*` and `container.*` describe the sender and whose
//!   `evt.arg.signal`, `evt.arg.sender_pid` and `evt.arg.sender_uid` say what came from whom;
//!   only then does it start the shutdown (SIGTERM, SIGINT) or the rules reload (SIGHUP). A
//!   signal from outside the task's PID namespace (ECS stopping the task) has sender pid 0.
//!   Under supervision ([`super::supervise`]) the supervisor forwards the signals it receives
//!   with the original sender's pid and uid (marked by `ssi_int`), so the sender named is the
//!   one that signalled the container's main process (`evt.arg.forwarded_by_pid` says it was
//!   forwarded); the parent-death SIGTERM from a vanished supervisor is reported as
//!   `supervisor_lost` instead, before the monitor stops.
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

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, pthread_sigmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use crate::collect::SharedTables;
use crate::event::{Collector, Container, Event, EventType, Internal, Process};
use crate::pipeline::Control;

/// The signals the watchdog handles.
pub const HANDLED: [Signal; 3] = [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP];

/// The watchdog could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TamperError {
    /// Blocking the handled signals failed.
    #[error("cannot block {signals:?}: {source}")]
    Mask {
        /// The signals.
        signals: [Signal; 3],
        /// Why.
        source: nix::Error,
    },
    /// Creating the signalfd failed.
    #[error("cannot create a signalfd: {0}")]
    SignalFd(nix::Error),
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
pub fn block_signals() -> Result<(), TamperError> {
    pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&handled_set()), None).map_err(|source| {
        TamperError::Mask {
            signals: HANDLED,
            source,
        }
    })
}

/// Who and what a process is, for a tamper report: from the collectors' tables when they
/// know the pid, else from `proc_root`. `None` when it is gone and unknown.
pub fn describe_process(
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
        if let Some((entry, container)) = snapshot.lookup_pid(pid) {
            let mut process = (*entry.process).clone();
            if let Some((now, _)) = &fresh
                && now.start_ticks == process.start_ticks
            {
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
    let stat = crate::collect::proc::parse_stat(&stat)?;
    let cmdline = std::fs::read(dir.join("cmdline")).unwrap_or_default();
    let cmdline = crate::collect::proc::parse_cmdline(&cmdline, false);
    let exepath = std::fs::read_link(dir.join("exe"))
        .ok()
        .map(|target| crate::collect::proc::parse_exe_link(&target.to_string_lossy()).0);
    let container = std::fs::read_to_string(dir.join("cgroup"))
        .ok()
        .and_then(|text| crate::collect::cgroup::parse_cgroup(&text).container_id)
        .map(|id| Container {
            id,
            name: None,
            image: None,
            image_digest: None,
            cgroup: None,
            mnt_ns: None,
            root_pid: None,
            start_time: None,
            ecs: None,
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
pub fn signal_event(
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
pub enum SignalOrigin {
    /// Sent to this process (`ssi_pid` is the sender).
    Direct,
    /// Forwarded by the supervisor with this pid (`ssi_pid` is the original sender).
    Forwarded(i32),
    /// The parent-death signal: the supervisor with this pid is gone.
    SupervisorDied(i32),
}

impl SignalOrigin {
    /// Classifies a signal given the supervisor's pid (if supervised).
    pub fn of(info: &nix::libc::signalfd_siginfo, supervisor: Option<i32>) -> SignalOrigin {
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

/// The `TracerPid` of a `status` file; `None` if unreadable.
pub fn tracer_pid(status: &Path) -> Option<i32> {
    let text = std::fs::read_to_string(status).ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix("TracerPid:"))
        .and_then(|value| value.trim().parse().ok())
}

/// The `monitor_traced` event for a tracer of the monitor.
pub fn traced_event(tracer: i32, proc_root: &Path, tables: Option<&SharedTables>) -> Event {
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
pub fn rules_fingerprint(paths: &[PathBuf]) -> Vec<(PathBuf, u64, Option<SystemTime>)> {
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
pub struct Watchdog {
    /// Where internal events go (the collectors' queue into the engine).
    pub events: SyncSender<Event>,
    /// Reload requests to the engine.
    pub control: Sender<Control>,
    /// Set on SIGTERM/SIGINT (after the event is queued); the watchdog also stops when it is
    /// set by someone else.
    pub shutdown: Arc<AtomicBool>,
    /// Called once with the signal's name when the monitor must stop.
    pub on_stop: Box<dyn FnOnce(&'static str) + Send>,
    /// The task's /proc.
    pub proc_root: PathBuf,
    /// The collectors' tables, to name senders.
    pub tables: Option<SharedTables>,
    /// Rule files and directories to watch (empty: none).
    pub rule_paths: Vec<PathBuf>,
    /// How often to check them (zero: never).
    pub rules_poll_interval: Duration,
    /// The supervisor's pid when this process is a supervised worker (see
    /// [`super::supervise`]): forwarded signals and its death are recognised, and a tracer
    /// of the supervisor is reported like a tracer of the monitor.
    pub supervisor: Option<i32>,
}

/// Starts the watchdog thread. [`block_signals`] must have run before any thread started.
pub fn spawn_watchdog(watchdog: Watchdog) -> Result<JoinHandle<()>, TamperError> {
    let fd = SignalFd::with_flags(
        &handled_set(),
        SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC,
    )
    .map_err(TamperError::SignalFd)?;
    std::thread::Builder::new()
        .name("watchdog".into())
        .spawn(move || run_watchdog(fd, watchdog))
        .map_err(TamperError::Thread)
}

fn run_watchdog(fd: SignalFd, watchdog: Watchdog) {
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
    while !shutdown.load(Ordering::Relaxed) {
        let readable = {
            let mut fds = [PollFd::new(
                std::os::fd::AsFd::as_fd(&fd),
                PollFlags::POLLIN,
            )];
            matches!(poll(&mut fds, PollTimeout::from(200u16)), Ok(n) if n > 0)
        };
        if readable {
            while let Ok(Some(info)) = fd.read_signal() {
                let Ok(signal) = Signal::try_from(info.ssi_signo as i32) else {
                    continue;
                };
                let pid = info.ssi_pid as i32;
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
            if let (Some(status), Some(supervisor)) = (&supervisor_status, supervisor) {
                if let Some(tracer) = tracer_pid(status) {
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
