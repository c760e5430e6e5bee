//! The emulated Fargate task: Linux namespaces and cgroups that reproduce, on one machine
//! without Docker or AWS, what a Fargate task with `pidMode: task` looks like from inside.
//!
//! - [`EmulatedTask::new`] creates the task: a new PID namespace and network namespace whose
//!   PID 1 is a reaper that does nothing else (like Fargate's pause process), `lo` up with the
//!   addresses 198.51.100.1/24, 169.254.169.254/32 and 169.254.170.2/32, and the task cgroup
//!   `/ecs/<32-hex task id>` in the v1 `cpu` and `pids` hierarchies.
//! - [`EmulatedTask::add_container`] adds a container: its own mount namespace and busybox
//!   root file system (reached by `pivot_root`), `/proc` of the task's PID namespace, optional
//!   read-only bind mounts of host files, the cgroup `/ecs/<task id>/<task id>-<digits>`, and
//!   a first process whose parent is outside the namespace (ppid 0), as on Fargate. Like a
//!   container runtime, the harness gives every process of the container (the first one and
//!   those run in it later, as `docker exec` and ECS Exec do) the container's capability set
//!   (default: Docker's, which Fargate grants; see [`crate::caps`]) and runs the first process
//!   as the image's user ([`crate::ContainerSpec::user`], default root).
//! - [`EmulatedTask::start_monitor`] runs the real `tasksentry` binary as a sidecar: in the
//!   task's PID and network namespaces, in its own mount namespace with `/proc` remounted and
//!   in its own container cgroup, as root with every capability of the test process or with a
//!   given capability set ([`crate::MonitorSpec::capabilities`]); its stdout is collected line
//!   by line ([`crate::Monitor`]).
//!
//! Dropping the task (after its last [`crate::Container`] and [`crate::Monitor`] handle) kills
//! its PID 1, which kills every process of the namespace, then removes its cgroups and
//! temporary files. Mounts live only in the namespaces that die with the task, so nothing needs
//! unmounting on the host. Every id is random, so tests can build tasks in parallel.
//!
//! The harness needs root; without it [`EmulatedTask::new`] fails with a message saying so.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::cgroup::{self, Cgroup};
use crate::{Container, ContainerSpec, Monitor, MonitorSpec, programs, random_hex};

/// The search path given to every process the harness starts (Docker's default).
pub const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Addresses of the task's network namespace, all on `lo`: a documentation range for "remote"
/// peers, the instance metadata address and the ECS task metadata/credentials address.
pub const TASK_ADDRESSES: [&str; 3] = ["198.51.100.1/24", "169.254.169.254/32", "169.254.170.2/32"];

/// A random container id suffix: ten digits, like Fargate's `<task id>-1053176469`.
fn container_digits() -> String {
    let hex = random_hex(8);
    let value = u64::from_str_radix(&hex, 16).unwrap_or(0);
    format!("{}", 1_000_000_000 + value % 9_000_000_000)
}

/// The pid of `host_pid` in the innermost PID namespace it belongs to (`NSpid`'s last field).
pub fn ns_pid_of(host_pid: i32) -> Option<i32> {
    let status = std::fs::read_to_string(format!("/proc/{host_pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("NSpid:"))?;
    line.split_whitespace().last()?.parse().ok()
}

/// The `TracerPid` of a host process (0 when nothing traces it).
pub fn tracer_pid(host_pid: i32) -> Option<i32> {
    let status = std::fs::read_to_string(format!("/proc/{host_pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("TracerPid:"))
        .and_then(|v| v.trim().parse().ok())
}

/// The children of a single-threaded host process.
pub fn children_of(host_pid: u32) -> Vec<i32> {
    std::fs::read_to_string(format!("/proc/{host_pid}/task/{host_pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Waits until `child` (a process that forks exactly once, like `nsenter --pid` or
/// `unshare --fork`) has a child, and returns that child's host pid. Fails if `child` exits
/// first or nothing appears within `timeout`.
pub(crate) fn wait_for_grandchild(child: &mut Child, what: &str, timeout: Duration) -> Result<i32> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(&pid) = children_of(child.id()).first() {
            return Ok(pid);
        }
        if let Some(status) = child.try_wait()? {
            bail!("{what}: the launcher exited ({status}) before its child could be found");
        }
        if Instant::now() >= deadline {
            bail!("{what}: no child process appeared within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A host process, killed and reaped when this is dropped.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `command` with its stdout piped and waits for its first line, which must be
/// `ready`: for peers (listeners, servers, often from [`EmulatedTask::netns_command`]) that
/// print it once they listen. `what` names them in failures.
pub fn spawn_ready(command: &mut Command, what: &str) -> KillOnDrop {
    let mut child = command
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("starting {what}: {error}"));
    let stdout = child.stdout.take().expect("piped stdout");
    let child = KillOnDrop(child);
    let mut ready = String::new();
    BufReader::new(stdout)
        .read_line(&mut ready)
        .unwrap_or_else(|error| panic!("reading the stdout of {what}: {error}"));
    assert_eq!(ready.trim(), "ready", "{what} started");
    child
}

/// Fails with a clear message unless the harness can work here.
fn check_environment() -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!(
            "the emulated task needs root (it creates PID, network and mount namespaces, \
             mounts and cgroups); run the integration tests as root"
        );
    }
    cgroup::check_hierarchies()?;
    for tool in ["unshare", "nsenter", "ip", "mount", "pivot_root", "setpriv"] {
        let found = PATH
            .split(':')
            .any(|dir| Path::new(dir).join(tool).exists());
        if !found {
            bail!("the emulated task needs `{tool}` (util-linux / iproute2) in {PATH}");
        }
    }
    if !Path::new("/bin/busybox").exists() {
        bail!("the emulated task needs a static /bin/busybox (Debian package busybox-static)");
    }
    Ok(())
}

/// State shared by a task and every handle into it; tearing it down ends the task.
pub(crate) struct TaskInner {
    task_id: String,
    dir: Option<tempfile::TempDir>,
    /// `unshare --fork`, the parent (outside the namespace) of the pause process.
    launcher: Mutex<Option<Child>>,
    pause_host_pid: i32,
    /// Cgroups to remove at teardown, in creation order (removed in reverse).
    cgroups: Mutex<Vec<Cgroup>>,
    /// Host-side launchers (`nsenter`) of long-lived processes, reaped at teardown.
    pub(crate) launchers: Mutex<Vec<Child>>,
}

impl TaskInner {
    /// `nsenter` into the task's PID and network namespaces, then `unshare` a private mount
    /// namespace: the start of every container's and the monitor's command line.
    pub(crate) fn enter_command(&self) -> Command {
        let mut command = Command::new("nsenter");
        command
            .arg(format!("--target={}", self.pause_host_pid))
            .args([
                "--pid",
                "--net",
                "--",
                "unshare",
                "--mount",
                "--propagation=private",
                "--",
            ]);
        command
    }

    pub(crate) fn dir(&self) -> &Path {
        self.dir
            .as_ref()
            .map(|d| d.path())
            .unwrap_or(Path::new("/nonexistent"))
    }

    /// Creates a new container-like cgroup `/ecs/<task>/<task>-<digits>`; returns it and its
    /// container id (`<task>-<digits>`).
    pub(crate) fn new_container_cgroup(&self) -> Result<(Cgroup, String)> {
        let id = format!("{}-{}", self.task_id, container_digits());
        let cgroup = Cgroup::create(format!("/ecs/{}/{id}", self.task_id))?;
        lock(&self.cgroups).push(cgroup.clone());
        Ok((cgroup, id))
    }

    fn teardown(&mut self) -> Result<()> {
        let mut problems = Vec::new();
        if let Some(mut launcher) = lock(&self.launcher).take() {
            // When the init of a PID namespace exits, every process in it is killed. The
            // pause process exits on SIGTERM; SIGKILL is the fallback (and makes `unshare`
            // complain on stderr, which is why it is not the first choice).
            let pause = nix::unistd::Pid::from_raw(self.pause_host_pid);
            if self.pause_host_pid > 0 {
                let _ = nix::sys::signal::kill(pause, nix::sys::signal::Signal::SIGTERM);
                if !exits_within(&mut launcher, Duration::from_secs(2)) {
                    let _ = nix::sys::signal::kill(pause, nix::sys::signal::Signal::SIGKILL);
                }
            } else {
                // The pause process dies with its launcher (`unshare --kill-child`).
                let _ = launcher.kill();
            }
            if let Err(error) = wait_with_timeout(&mut launcher, Duration::from_secs(10)) {
                problems.push(format!("task launcher: {error}"));
            }
        }
        for mut launcher in lock(&self.launchers).drain(..) {
            if let Err(error) = wait_with_timeout(&mut launcher, Duration::from_secs(10)) {
                problems.push(format!("process launcher: {error}"));
            }
        }
        for cgroup in lock(&self.cgroups).drain(..).rev() {
            if let Err(error) = cgroup.remove() {
                problems.push(format!("{error:#}"));
            }
        }
        for hierarchy in cgroup::HIERARCHIES {
            let dir = Path::new(hierarchy).join("ecs").join(&self.task_id);
            if let Err(error) = cgroup::remove_dir_retrying(&dir) {
                problems.push(format!("{error:#}"));
            }
        }
        // The `/ecs` directory is shared by all tasks of all tests and is left in place.
        if let Some(dir) = self.dir.take() {
            let path = dir.path().to_path_buf();
            if let Err(error) = dir.close() {
                problems.push(format!("removing {}: {error}", path.display()));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            bail!(
                "tearing down task {}: {}",
                self.task_id,
                problems.join("; ")
            )
        }
    }
}

impl Drop for TaskInner {
    fn drop(&mut self) {
        if let Err(error) = self.teardown() {
            eprintln!("emulated task: {error:#}");
        }
    }
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Whether `child` exits within `timeout` (it is left running otherwise).
fn exits_within(child: &mut Child, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => return true,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(2)),
            _ => return false,
        }
    }
}

/// Waits for a child, SIGKILLing it if it has not exited after `timeout`.
pub(crate) fn wait_with_timeout(
    child: &mut Child,
    timeout: Duration,
) -> Result<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let status = child.wait()?;
            bail!(
                "pid {} did not exit within {timeout:?}; killed ({status})",
                child.id()
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// An emulated Fargate task (see the module documentation).
pub struct EmulatedTask {
    inner: Arc<TaskInner>,
}

impl EmulatedTask {
    /// Creates the task: PID and network namespaces with a pause process as PID 1, `lo` up
    /// with [`TASK_ADDRESSES`], and the task's cgroup.
    pub fn new() -> Result<EmulatedTask> {
        check_environment()?;
        let pause = programs::program("pause")?;
        let task_id = random_hex(16);
        let dir = tempfile::Builder::new()
            .prefix(&format!("tasksentry-task-{}-", &task_id[..8]))
            .tempdir()
            .context("creating the task's temporary directory")?;
        let mut inner = TaskInner {
            task_id,
            dir: Some(dir),
            launcher: Mutex::new(None),
            pause_host_pid: 0,
            cgroups: Mutex::new(Vec::new()),
            launchers: Mutex::new(Vec::new()),
        };
        // Fargate runs its pause process as a container of the task (`aws-fargate-pause`), so
        // it gets a container cgroup of its own.
        let (pause_cgroup, _) = inner.new_container_cgroup()?;
        let mut command = Command::new("unshare");
        command
            .args(["--pid", "--net", "--fork", "--kill-child", "--"])
            .arg(&pause)
            .env_clear()
            .env("PATH", PATH)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        pause_cgroup.join_on_exec(&mut command, true);
        let mut launcher = command.spawn().context("starting `unshare` for the task")?;
        let found = wait_for_grandchild(&mut launcher, "pause process", Duration::from_secs(10));
        *lock(&inner.launcher) = Some(launcher);
        inner.pause_host_pid = found?;
        let task = EmulatedTask {
            inner: Arc::new(inner),
        };
        task.wait_for_exe(task.inner.pause_host_pid, &pause)?;
        task.setup_network()?;
        Ok(task)
    }

    fn wait_for_exe(&self, host_pid: i32, exe: &Path) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::fs::read_link(format!("/proc/{host_pid}/exe"))
            .ok()
            .as_deref()
            != Some(exe)
        {
            if Instant::now() >= deadline {
                bail!("pid {host_pid} did not exec {} within 10 s", exe.display());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }

    fn setup_network(&self) -> Result<()> {
        let mut script = String::from("set -e; ip link set lo up");
        for address in TASK_ADDRESSES {
            script.push_str(&format!("; ip addr add {address} dev lo"));
        }
        let output = self
            .netns_command("/bin/sh")
            .args(["-c", &script])
            .output()
            .context("configuring the task's network namespace")?;
        if !output.status.success() {
            bail!(
                "configuring the task's network namespace failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(())
    }

    /// The 32-hex task id (the `/ecs/<task id>` cgroup segment).
    pub fn task_id(&self) -> &str {
        &self.inner.task_id
    }

    /// The task's cgroup path, `/ecs/<task id>`.
    pub fn cgroup_path(&self) -> String {
        format!("/ecs/{}", self.inner.task_id)
    }

    /// The host pid of the task's PID 1 (the pause process).
    pub fn pause_host_pid(&self) -> i32 {
        self.inner.pause_host_pid
    }

    /// The task's temporary directory on the host (container roots live below it).
    pub fn dir(&self) -> &Path {
        self.inner.dir()
    }

    /// `/proc/<pause>/ns/<kind>` for the task's namespaces (`pid`, `net`).
    pub fn ns_path(&self, kind: &str) -> PathBuf {
        PathBuf::from(format!("/proc/{}/ns/{kind}", self.inner.pause_host_pid))
    }

    /// A command that runs `program` from the host's file system inside the task's network
    /// namespace only (host PID and mount namespaces): for peers such as a fake metadata
    /// server or an "attacker" listener on 198.51.100.1.
    pub fn netns_command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new("nsenter");
        command
            .arg(format!("--target={}", self.inner.pause_host_pid))
            .args(["--net", "--"])
            .arg(program);
        command
    }

    /// Adds a container with the default spec (busybox root, `root` and `appuser` (1000)).
    pub fn add_container(&self, name: &str) -> Result<Container> {
        self.add_container_with(name, ContainerSpec::default())
    }

    /// Adds a container built from `spec`.
    pub fn add_container_with(&self, name: &str, spec: ContainerSpec) -> Result<Container> {
        Container::start(Arc::clone(&self.inner), name, spec)
    }

    /// Starts the real `tasksentry` binary as the task's monitor sidecar with `args`.
    pub fn start_monitor<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Result<Monitor> {
        self.start_monitor_with(MonitorSpec::new(args))
    }

    /// Starts a monitor sidecar described by `spec`.
    pub fn start_monitor_with(&self, spec: MonitorSpec) -> Result<Monitor> {
        Monitor::start(Arc::clone(&self.inner), spec)
    }

    /// Starts the monitor with `args` (beginning with `run`) plus `--record` to
    /// `<task dir>/recording.ndjson`, and waits until the recording shows `container`: the
    /// monitor has read the task. Returns the monitor and the recording's path.
    pub fn start_monitor_recording(
        &self,
        args: &[&str],
        container: &Container,
        timeout: Duration,
    ) -> Result<(Monitor, PathBuf)> {
        self.start_monitor_recording_with(MonitorSpec::new(args), container, timeout)
    }

    /// [`EmulatedTask::start_monitor_recording`] for the monitor described by `spec`.
    pub fn start_monitor_recording_with(
        &self,
        spec: MonitorSpec,
        container: &Container,
        timeout: Duration,
    ) -> Result<(Monitor, PathBuf)> {
        let recording = self.dir().join("recording.ndjson");
        let recording_arg = recording
            .to_str()
            .context("the task directory is not UTF-8")?;
        let mon = self.start_monitor_with(spec.with_args(&["--record", recording_arg]))?;
        let deadline = Instant::now() + timeout;
        while !std::fs::read_to_string(&recording)
            .unwrap_or_default()
            .contains(container.id())
        {
            if Instant::now() >= deadline {
                bail!(
                    "the monitor never recorded the task (container {}) within {timeout:?}; stderr:\n{}",
                    container.id(),
                    mon.stderr_so_far()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok((mon, recording))
    }
}
