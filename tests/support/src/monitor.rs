//! The monitor sidecar: the real `tasksentry` binary run inside an emulated task.
//!
//! It runs in the task's PID and network namespaces, in a mount namespace of its own where
//! `/proc` is remounted for the task's PID namespace (it sees the other containers only
//! through `/proc`), and in its own container cgroup, as uid 0 with every capability of the
//! test process, or with exactly a given set ([`MonitorSpec::capabilities`]: applied by
//! util-linux `setpriv` after `/proc` is mounted, as bounding set with the inheritable and
//! ambient sets cleared, so that the monitor's exec makes it the permitted and effective set
//! too, which is what a uid-0 container process gets from its runtime). Its stdout is read line by line by a
//! background thread; tests wait for events with predicates on the parsed JSON and get every
//! line seen so far (and the monitor's stderr) in the failure message.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::task::{
    PATH, TaskInner, children_of, lock, ns_pid_of, wait_for_grandchild, wait_with_timeout,
};
use crate::{CapSet, Container, proc_args, unique_duration};

/// The stderr kept for diagnostics (the tail beyond this is dropped from the front).
const STDERR_KEEP: usize = 256 * 1024;

/// How to start a monitor.
#[derive(Debug, Clone)]
pub struct MonitorSpec {
    /// The binary; default: the `TASKSENTRY_BIN` environment variable when set (to test
    /// another build, such as a release binary), else the crate's `tasksentry` as Cargo built
    /// it for the running tests or benches (nextest names it; otherwise it is in the Cargo
    /// profile directory of the running executable).
    pub program: Option<PathBuf>,
    /// Command-line arguments.
    pub args: Vec<OsString>,
    /// Environment variables added to `PATH` and `RUST_LOG` (default `info`).
    pub env: Vec<(String, String)>,
    /// The capability set of the monitor (supervisor and worker: bounding, permitted and
    /// effective), like a task definition's `linuxParameters.capabilities` for the sidecar
    /// (see [`crate::TaskDefinition::sidecar_caps`]); `None`: every capability of the
    /// test process.
    pub capabilities: Option<CapSet>,
}

impl MonitorSpec {
    /// The default binary with `args`.
    pub fn new<S: AsRef<OsStr>>(args: &[S]) -> MonitorSpec {
        MonitorSpec {
            program: None,
            args: args.iter().map(|a| a.as_ref().to_os_string()).collect(),
            env: Vec::new(),
            capabilities: None,
        }
    }

    /// Runs the monitor with exactly the capability set `capabilities`.
    pub fn with_capabilities(mut self, capabilities: CapSet) -> MonitorSpec {
        self.capabilities = Some(capabilities);
        self
    }

    /// Appends `args` to the command line.
    pub fn with_args<S: AsRef<OsStr>>(mut self, args: &[S]) -> MonitorSpec {
        self.args
            .extend(args.iter().map(|a| a.as_ref().to_os_string()));
        self
    }

    /// Adds the environment variable `key=value`.
    pub fn with_env(mut self, key: &str, value: impl Into<String>) -> MonitorSpec {
        self.env.push((key.to_owned(), value.into()));
        self
    }

    fn program(&self) -> Result<PathBuf> {
        if let Some(program) = &self.program {
            return Ok(program.clone());
        }
        if let Some(program) = std::env::var_os("TASKSENTRY_BIN") {
            return Ok(PathBuf::from(program));
        }
        MonitorSpec::default_program()
    }

    /// The `tasksentry` binary Cargo built along with the running test or bench: nextest names
    /// it (`NEXTEST_BIN_EXE_tasksentry`); otherwise it is in the Cargo profile directory of the
    /// running executable, where Cargo builds a package's binaries before its integration
    /// tests and benches (`CARGO_BIN_EXE_tasksentry` names the same file, but only to the
    /// compiler of a test of the root package, not to this library).
    fn default_program() -> Result<PathBuf> {
        if let Some(program) = std::env::var_os("NEXTEST_BIN_EXE_tasksentry") {
            return Ok(PathBuf::from(program));
        }
        let program = crate::profile_dir()?.join("tasksentry");
        if !program.exists() {
            bail!(
                "no monitor binary at {} (build it with `cargo build`, or set \
                 MonitorSpec::program or TASKSENTRY_BIN)",
                program.display()
            );
        }
        Ok(program)
    }
}

#[derive(Default)]
struct Lines {
    lines: Vec<String>,
    /// When each line arrived (wall clock, comparable with timestamps taken in the task).
    arrived: Vec<SystemTime>,
    /// Indexes of lines that were not valid UTF-8 (stored lossily).
    not_utf8: Vec<usize>,
    eof: bool,
}

struct Shared {
    stdout: Mutex<Lines>,
    changed: Condvar,
    stderr: Mutex<Vec<u8>>,
    /// Set when stderr reached its end.
    stderr_eof: std::sync::atomic::AtomicBool,
}

/// A running monitor. Dropping it kills the monitor.
pub struct Monitor {
    /// Keeps the task (its namespaces and cgroups) alive as long as this handle.
    _task: Arc<TaskInner>,
    launcher: Child,
    host_pid: i32,
    pid: i32,
    container_id: String,
    cgroup_path: String,
    shared: Arc<Shared>,
    exit: Option<ExitStatus>,
}

/// A predicate was not satisfied in time; carries what the monitor printed for the failure
/// message.
pub struct WaitError {
    /// How long was waited.
    pub waited: Duration,
    /// Every stdout line seen so far.
    pub lines: Vec<String>,
    /// The monitor's stderr so far.
    pub stderr: String,
    /// Whether the monitor's stdout was closed (it exited).
    pub eof: bool,
}

impl fmt::Display for WaitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOW: usize = 60;
        writeln!(
            f,
            "no matching monitor event within {:?}{}; {} stdout lines seen{}",
            self.waited,
            if self.eof {
                " (the monitor's stdout is closed: it exited)"
            } else {
                ""
            },
            self.lines.len(),
            if self.lines.len() > SHOW {
                format!(", the last {SHOW}:")
            } else {
                ":".into()
            }
        )?;
        for line in self
            .lines
            .iter()
            .skip(self.lines.len().saturating_sub(SHOW))
        {
            let shown: String = line.chars().take(1500).collect();
            writeln!(
                f,
                "  {shown}{}",
                if shown.len() < line.len() {
                    " [...]"
                } else {
                    ""
                }
            )?;
        }
        let tail: String = {
            let chars: Vec<char> = self.stderr.chars().collect();
            chars[chars.len().saturating_sub(6000)..].iter().collect()
        };
        write!(f, "monitor stderr (tail):\n{tail}")
    }
}

impl fmt::Debug for WaitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for WaitError {}

impl Monitor {
    pub(crate) fn start(task: Arc<TaskInner>, spec: MonitorSpec) -> Result<Monitor> {
        let program = spec.program()?;
        if !program.exists() {
            bail!("monitor binary {} does not exist", program.display());
        }
        let (cgroup, container_id) = task.new_container_cgroup()?;
        let mut command = task.enter_command();
        command.args([
            "/bin/sh",
            "-c",
            "mount -t proc -o nosuid,nodev,noexec proc /proc && exec \"$@\"",
            "monitor-setup",
        ]);
        if let Some(capabilities) = spec.capabilities {
            command
                .arg("setpriv")
                .arg(format!(
                    "--bounding-set={}",
                    capabilities.setpriv_bounding_set()
                ))
                .args(["--inh-caps=-all", "--ambient-caps=-all", "--"]);
        }
        command
            .arg(&program)
            .args(&spec.args)
            .env_clear()
            .env("PATH", PATH)
            .env("RUST_LOG", "info");
        for (key, value) in &spec.env {
            command.env(key, value);
        }
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cgroup.join_on_exec(&mut command, false);
        let mut launcher = command
            .spawn()
            .with_context(|| format!("starting the monitor {}", program.display()))?;
        let shared = Arc::new(Shared {
            stdout: Mutex::new(Lines::default()),
            changed: Condvar::new(),
            stderr: Mutex::new(Vec::new()),
            stderr_eof: std::sync::atomic::AtomicBool::new(false),
        });
        if let Some(stdout) = launcher.stdout.take() {
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || read_lines(stdout, &shared));
        }
        if let Some(stderr) = launcher.stderr.take() {
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || read_stderr(stderr, &shared));
        }
        let host_pid = match wait_for_grandchild(&mut launcher, "monitor", Duration::from_secs(10))
        {
            Ok(pid) => pid,
            Err(error) => {
                let _ = launcher.kill();
                let _ = launcher.wait();
                let stderr = String::from_utf8_lossy(&lock(&shared.stderr)).into_owned();
                bail!("{error:#}; monitor stderr:\n{stderr}");
            }
        };
        let Some(pid) = ns_pid_of(host_pid) else {
            let _ = launcher.wait();
            let stderr = String::from_utf8_lossy(&lock(&shared.stderr)).into_owned();
            bail!("the monitor exited at once; stderr:\n{stderr}");
        };
        Ok(Monitor {
            _task: task,
            launcher,
            host_pid,
            pid,
            container_id,
            cgroup_path: cgroup.path,
            shared,
            exit: None,
        })
    }

    /// The monitor's pid in the task's PID namespace.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The monitor's host pid.
    pub fn host_pid(&self) -> i32 {
        self.host_pid
    }

    /// The host pid of the process that does the monitoring: the supervisor's worker child
    /// when `tasksentry run` supervises (its default), else the monitor process itself. Use it
    /// to act on the monitoring itself (SIGSTOP to starve it); signals that ECS would send go
    /// to [`Monitor::host_pid`], the container's main process.
    pub fn worker_host_pid(&self) -> i32 {
        match children_of(u32::try_from(self.host_pid).unwrap_or(0))[..] {
            [worker] => worker,
            _ => self.host_pid,
        }
    }

    /// The monitor container's id (`<task id>-<digits>`).
    pub fn container_id(&self) -> &str {
        &self.container_id
    }

    /// The monitor container's cgroup path.
    pub fn cgroup_path(&self) -> &str {
        &self.cgroup_path
    }

    /// Every stdout line so far.
    pub fn lines_so_far(&self) -> Vec<String> {
        lock(&self.shared.stdout).lines.clone()
    }

    /// Every stdout line so far with the wall-clock time it arrived (for latency
    /// measurements: the time is taken as soon as the line is read).
    pub fn lines_with_arrival(&self) -> Vec<(SystemTime, String)> {
        let lines = lock(&self.shared.stdout);
        lines
            .arrived
            .iter()
            .copied()
            .zip(lines.lines.iter().cloned())
            .collect()
    }

    /// The number of stdout lines so far (a cursor for [`Monitor::wait_for_after`]).
    pub fn line_count(&self) -> usize {
        lock(&self.shared.stdout).lines.len()
    }

    /// Indexes of stdout lines that were not valid UTF-8.
    pub fn non_utf8_lines(&self) -> Vec<usize> {
        lock(&self.shared.stdout).not_utf8.clone()
    }

    /// Every stdout line so far that parses as JSON, parsed.
    pub fn events(&self) -> Vec<Value> {
        lock(&self.shared.stdout)
            .lines
            .iter()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    /// The monitor's stderr so far (lossy).
    pub fn stderr_so_far(&self) -> String {
        String::from_utf8_lossy(&lock(&self.shared.stderr)).into_owned()
    }

    /// Waits until a stdout line parses as JSON and satisfies `predicate`, and returns it.
    pub fn wait_for(
        &self,
        predicate: impl FnMut(&Value) -> bool,
        timeout: Duration,
    ) -> Result<Value, WaitError> {
        self.wait_for_after(0, predicate, timeout)
    }

    /// Like [`Monitor::wait_for`], considering only lines from index `start` on.
    pub fn wait_for_after(
        &self,
        start: usize,
        mut predicate: impl FnMut(&Value) -> bool,
        timeout: Duration,
    ) -> Result<Value, WaitError> {
        let begin = Instant::now();
        let deadline = begin + timeout;
        let mut next = start;
        let mut guard = lock(&self.shared.stdout);
        loop {
            while next < guard.lines.len() {
                if let Ok(value) = serde_json::from_str::<Value>(&guard.lines[next]) {
                    if predicate(&value) {
                        return Ok(value);
                    }
                }
                next += 1;
            }
            let now = Instant::now();
            if now >= deadline || guard.eof {
                return Err(WaitError {
                    waited: now - begin,
                    lines: guard.lines.clone(),
                    stderr: String::from_utf8_lossy(&lock(&self.shared.stderr)).into_owned(),
                    eof: guard.eof,
                });
            }
            guard = self
                .shared
                .changed
                .wait_timeout(guard, deadline - now)
                .map(|(guard, _)| guard)
                .unwrap_or_else(|poisoned| poisoned.into_inner().0);
        }
    }

    /// Waits until the monitor reports the exec of a probe in `container`: `/bin/sleep` for a
    /// [`unique_duration`], run as `uid`, again until one is seen (a monitor may take the
    /// processes of its first scan as already known, and its watches may not be in place
    /// yet). Fails after `timeout`, or at once when the monitor exits.
    pub fn wait_until_monitoring(
        &self,
        container: &Container,
        uid: u32,
        timeout: Duration,
    ) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let duration = unique_duration(600);
            let mut probe = container.spawn_as(uid, &["/bin/sleep", &duration])?;
            let seen = self.wait_for(
                |e| e["evt"]["type"] == "execve" && proc_args(e) == [duration.as_str()],
                Duration::from_secs(2),
            );
            let _ = probe.kill();
            match seen {
                Ok(_) => return Ok(()),
                Err(error) if error.eof || Instant::now() >= deadline => {
                    bail!("the monitor never reported a probe process: {error}")
                }
                Err(_) => {}
            }
        }
    }

    /// Every line that is not a JSON object, with its index; empty when all are.
    pub fn non_json_lines(&self) -> Vec<(usize, String)> {
        lock(&self.shared.stdout)
            .lines
            .iter()
            .enumerate()
            .filter(|(_, line)| {
                !matches!(serde_json::from_str::<Value>(line), Ok(Value::Object(_)))
            })
            .map(|(i, line)| (i, line.clone()))
            .collect()
    }

    /// Whether the monitor process is still running.
    pub fn is_running(&mut self) -> bool {
        if self.exit.is_some() {
            return false;
        }
        match self.launcher.try_wait() {
            Ok(Some(status)) => {
                self.exit = Some(status);
                false
            }
            Ok(None) => true,
            Err(_) => false,
        }
    }

    /// Sends SIGTERM (the stop signal ECS sends first).
    pub fn terminate(&self) -> Result<()> {
        self.signal(nix::sys::signal::Signal::SIGTERM)
    }

    /// Sends SIGKILL and waits for the monitor to exit.
    pub fn kill(&mut self) -> Result<ExitStatus> {
        if self.exit.is_none() {
            let _ = self.signal(nix::sys::signal::Signal::SIGKILL);
        }
        self.wait_exit(Duration::from_secs(10))
    }

    /// Sends `signal` to the monitor process.
    pub fn signal(&self, signal: nix::sys::signal::Signal) -> Result<()> {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.host_pid), signal)
            .with_context(|| format!("signalling the monitor (host pid {})", self.host_pid))
    }

    /// Waits for the monitor to exit (SIGKILLing it after `timeout`) and returns its status
    /// as its launcher reports it (the monitor's exit code, or its signal).
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus> {
        if let Some(status) = self.exit {
            return Ok(status);
        }
        let status = wait_with_timeout(&mut self.launcher, timeout)?;
        self.exit = Some(status);
        // Let the reader threads drain what is left in the pipes.
        let deadline = Instant::now() + Duration::from_secs(2);
        while !(lock(&self.shared.stdout).eof
            && self
                .shared
                .stderr_eof
                .load(std::sync::atomic::Ordering::Acquire))
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(status)
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

fn read_lines(stdout: impl Read, shared: &Shared) {
    let mut reader = BufReader::new(stdout);
    let mut buffer = Vec::new();
    loop {
        buffer.clear();
        match reader.read_until(b'\n', &mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                if buffer.last() == Some(&b'\n') {
                    buffer.pop();
                }
                let arrived = SystemTime::now();
                let mut lines = lock(&shared.stdout);
                let line = match String::from_utf8(std::mem::take(&mut buffer)) {
                    Ok(line) => line,
                    Err(error) => {
                        let index = lines.lines.len();
                        lines.not_utf8.push(index);
                        String::from_utf8_lossy(error.as_bytes()).into_owned()
                    }
                };
                lines.lines.push(line);
                lines.arrived.push(arrived);
                drop(lines);
                shared.changed.notify_all();
            }
        }
    }
    lock(&shared.stdout).eof = true;
    shared.changed.notify_all();
}

fn read_stderr(mut stderr: impl Read, shared: &Shared) {
    let mut chunk = [0u8; 8192];
    loop {
        match stderr.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let mut kept = lock(&shared.stderr);
                kept.extend_from_slice(&chunk[..n]);
                if kept.len() > STDERR_KEEP {
                    let excess = kept.len() - STDERR_KEEP;
                    kept.drain(..excess);
                }
            }
        }
    }
    shared
        .stderr_eof
        .store(true, std::sync::atomic::Ordering::Release);
}
