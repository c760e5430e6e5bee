//! Containers of an emulated task: a mount namespace and busybox root per container, in the
//! task's PID and network namespaces, with a Fargate-like cgroup.
//!
//! A container is started by `nsenter --pid --net` into the task (the fork puts the child in
//! the task's PID namespace while its parent stays outside, so the container's first process
//! has ppid 0, as on Fargate), then `unshare --mount`, a setup script that mounts `/proc`, a
//! few device nodes, a `devpts` instance at `/dev/pts` and the read-only host binds, and
//! `pivot_root` into the container's root.
//! The setup ends by exec'ing `ctrexec` (`tests/programs/ctrexec.c`, from the old root), which
//! does what runc's init does last: detaches the old root, applies the container's capability
//! set (bounding set; inheritable and ambient cleared) and the image's user, and execs the
//! entrypoint.
//!
//! Commands run in a container the way `docker exec` (and ECS Exec) does: `ctrexec --target`
//! joins the cgroup (before its exec), the PID, mount and network namespaces, the root and
//! working directory of the container's first process, forks into the PID namespace (the
//! command has ppid 0 there, its parent `ctrexec` staying outside, as `nsenter` did), applies
//! the container's capability set and the requested user, and execs the command: one transient
//! image (the fork of `ctrexec`) before the command's own, and `ctrexec` exits like the
//! command (same code, or same signal).

use std::ffi::OsStr;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Component, Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::cgroup::Cgroup;
use crate::task::{PATH, TaskInner, lock, wait_for_grandchild};
use crate::{CapSet, ns_pid_of, programs};

/// A user of a container's `/etc/passwd` (and a group of the same name and id in
/// `/etc/group`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Login name.
    pub name: String,
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Home directory (created in the container root).
    pub home: String,
    /// Login shell.
    pub shell: String,
}

impl User {
    /// A user with a group of the same name and id, home `/home/<name>` and shell `/bin/sh`.
    pub fn new(name: &str, uid: u32) -> User {
        User {
            name: name.to_string(),
            uid,
            gid: uid,
            home: format!("/home/{name}"),
            shell: "/bin/sh".to_string(),
        }
    }

    /// The root user.
    pub fn root() -> User {
        User {
            name: "root".to_string(),
            uid: 0,
            gid: 0,
            home: "/root".to_string(),
            shell: "/bin/sh".to_string(),
        }
    }
}

/// How to build a container.
#[derive(Debug, Clone)]
pub struct ContainerSpec {
    /// Host paths bind-mounted read-only at the same path in the container. Symlinks on the
    /// way (for example `/usr/bin/python3 -> python3.11`, or `/lib -> usr/lib`) are recreated
    /// as symlinks and their targets bound, unless the container root already has something
    /// at the symlink's place.
    pub host_binds: Vec<PathBuf>,
    /// The users of `/etc/passwd` (default: `root` and `appuser` with uid 1000).
    pub users: Vec<User>,
    /// The container's first process (default: `sleep 2147483647`). It must keep running:
    /// commands are run in the namespaces of this process.
    pub entrypoint: Vec<String>,
    /// Extra environment variables for every process of the container, added to `PATH`,
    /// `HOME` and the variables Fargate injects (`AWS_EXECUTION_ENV`, `AWS_REGION`,
    /// `AWS_DEFAULT_REGION`, `ECS_CONTAINER_METADATA_URI`, `ECS_CONTAINER_METADATA_URI_V4`).
    pub env: Vec<(String, String)>,
    /// The uid the first process runs as, like an image's `USER` (default 0, root). It must be
    /// one of `users` (or 0); the gid is that user's, `HOME` that user's home, and a non-root
    /// user's home is made mode 0700 and owned by it, as `useradd -m` images have it.
    pub user: u32,
    /// The container's capability set, applied to every process of the container: the first
    /// process and every command run in it (default: Docker's default set, what a Fargate
    /// container gets unless its task definition changes it). A root process gets it as
    /// bounding, permitted and effective set; a non-root one as bounding set only.
    pub capabilities: CapSet,
}

impl Default for ContainerSpec {
    fn default() -> Self {
        ContainerSpec {
            host_binds: Vec::new(),
            users: vec![User::root(), User::new("appuser", 1000)],
            entrypoint: vec!["sleep".to_string(), "2147483647".to_string()],
            env: Vec::new(),
            user: 0,
            capabilities: CapSet::docker_default(),
        }
    }
}

impl ContainerSpec {
    /// The default spec with the given users (`root` is added when missing).
    pub fn with_users(users: Vec<User>) -> ContainerSpec {
        let mut spec = ContainerSpec {
            users,
            ..ContainerSpec::default()
        };
        if !spec.users.iter().any(|u| u.uid == 0) {
            spec.users.insert(0, User::root());
        }
        spec
    }

    /// Runs the first process as `user` (added to `users` when no user has its uid), like an
    /// image with `USER <name>`.
    pub fn with_user(mut self, user: User) -> ContainerSpec {
        self.user = user.uid;
        if !self.users.iter().any(|u| u.uid == user.uid) {
            self.users.push(user);
        }
        self
    }

    /// Gives the container the capability set `capabilities` instead of Docker's default.
    pub fn with_capabilities(mut self, capabilities: CapSet) -> ContainerSpec {
        self.capabilities = capabilities;
        self
    }

    /// Adds the host's `/usr/bin/python3` and what it needs (its standard library, the shared
    /// libraries and the dynamic loader) as read-only binds.
    pub fn with_host_python(mut self) -> Result<ContainerSpec> {
        let python = Path::new("/usr/bin/python3");
        let real = std::fs::canonicalize(python)
            .context("the host has no /usr/bin/python3 to bind into a container")?;
        let version = real
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("python3")
            .to_string();
        let stdlib = Path::new("/usr/lib").join(&version);
        for path in [
            python,
            stdlib.as_path(),
            Path::new("/lib/x86_64-linux-gnu"),
            Path::new("/lib64/ld-linux-x86-64.so.2"),
        ] {
            if !path.exists() {
                bail!(
                    "with_host_python: {} does not exist on the host",
                    path.display()
                );
            }
            self.host_binds.push(path.to_path_buf());
        }
        Ok(self)
    }
}

/// A container of an emulated task.
pub struct Container {
    /// Keeps the task (its namespaces and cgroups) alive as long as this handle.
    _task: Arc<TaskInner>,
    name: String,
    id: String,
    cgroup: Cgroup,
    root: PathBuf,
    users: Vec<User>,
    /// The user of the first process.
    user: User,
    capabilities: CapSet,
    /// The host path of the `ctrexec` helper.
    ctrexec: PathBuf,
    env: Vec<(String, String)>,
    first_host_pid: i32,
    first_pid: i32,
}

/// The setup script run (by the host's `/bin/sh`) in the container's new mount namespace:
/// `$1` is the root, `$2` the host path of `ctrexec`, `$3` its user and capability options
/// (split on spaces), then host paths to bind read-only up to `--`, then the entrypoint.
const SETUP_SCRIPT: &str = r#"set -eu
root=$1; ctrexec=$2; options=$3; shift 3
mount --bind "$root" "$root"
mount -t proc -o nosuid,nodev,noexec proc "$root/proc"
for dev in null zero random urandom; do mount --bind "/dev/$dev" "$root/dev/$dev"; done
mount -t devpts -o nosuid,noexec,newinstance,ptmxmode=0666,mode=0620 devpts "$root/dev/pts"
while [ "$1" != "--" ]; do
  mount --bind "$1" "$root$1"
  mount -o remount,bind,ro "$root$1"
  shift
done
shift
cd "$root"
mkdir -p .oldroot
pivot_root . .oldroot
exec "/.oldroot$ctrexec" --detach=/.oldroot $options -- "$@"
"#;

impl Container {
    pub(crate) fn start(
        task: Arc<TaskInner>,
        name: &str,
        spec: ContainerSpec,
    ) -> Result<Container> {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            bail!("container name {name:?}: use letters, digits, '-' and '_'");
        }
        if spec.entrypoint.is_empty() {
            bail!("container {name}: the entrypoint is empty");
        }
        let user = if spec.user == 0 {
            spec.users
                .iter()
                .find(|u| u.uid == 0)
                .cloned()
                .unwrap_or_else(User::root)
        } else {
            spec.users
                .iter()
                .find(|u| u.uid == spec.user)
                .cloned()
                .with_context(|| {
                    format!(
                        "container {name}: the user {} is not one of its users",
                        spec.user
                    )
                })?
        };
        let ctrexec = programs::program("ctrexec")?;
        let (cgroup, id) = task.new_container_cgroup()?;
        let base = task.dir().join(format!("{name}-{}", &id[33..]));
        let root = base.join("root");
        let binds =
            build_root(&root, &spec).with_context(|| format!("building the root of {name}"))?;

        let mut env = vec![
            ("PATH".to_string(), PATH.to_string()),
            ("HOME".to_string(), user.home.clone()),
            (
                "AWS_EXECUTION_ENV".to_string(),
                "AWS_ECS_FARGATE".to_string(),
            ),
            ("AWS_REGION".to_string(), "eu-west-1".to_string()),
            ("AWS_DEFAULT_REGION".to_string(), "eu-west-1".to_string()),
            (
                "ECS_CONTAINER_METADATA_URI".to_string(),
                format!("http://169.254.170.2/v3/{id}"),
            ),
            (
                "ECS_CONTAINER_METADATA_URI_V4".to_string(),
                format!("http://169.254.170.2/v4/{id}"),
            ),
        ];
        env.extend(spec.env.iter().cloned());

        let log_path = base.join("container.log");
        let log = std::fs::File::create(&log_path)
            .with_context(|| format!("creating {}", log_path.display()))?;
        let options = format!(
            "--uid={} --gid={} --caps={:x}",
            user.uid, user.gid, spec.capabilities.0
        );
        let mut command = task.enter_command();
        command
            .args(["/bin/sh", "-c", SETUP_SCRIPT, "container-setup"])
            .arg(&root)
            .arg(&ctrexec)
            .arg(&options)
            .args(&binds)
            .arg("--")
            .args(&spec.entrypoint)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        cgroup.join_on_exec(&mut command, false);
        let mut launcher = command
            .spawn()
            .with_context(|| format!("starting container {name}"))?;
        let found = wait_for_grandchild(&mut launcher, name, Duration::from_secs(10));
        lock(&task.launchers).push(launcher);
        let first_host_pid = found?;

        // The container is ready once its first process runs the entrypoint.
        let wanted: Vec<u8> = spec
            .entrypoint
            .iter()
            .flat_map(|arg| arg.bytes().chain([0u8]))
            .collect();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let cmdline = std::fs::read(format!("/proc/{first_host_pid}/cmdline")).ok();
            if cmdline.as_deref() == Some(&wanted[..]) {
                break;
            }
            if cmdline.is_none() || Instant::now() >= deadline {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                bail!(
                    "container {name} did not start its entrypoint {:?} (first process {}); \
                     setup output:\n{log}",
                    spec.entrypoint,
                    if cmdline.is_none() {
                        "gone"
                    } else {
                        "still in setup after 10 s"
                    }
                );
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let first_pid = ns_pid_of(first_host_pid)
            .with_context(|| format!("reading the task pid of container {name}'s first process"))?;
        Ok(Container {
            _task: task,
            name: name.to_string(),
            id,
            cgroup,
            root,
            users: spec.users,
            user,
            capabilities: spec.capabilities,
            ctrexec,
            env,
            first_host_pid,
            first_pid,
        })
    }

    /// The name given to [`crate::EmulatedTask::add_container`].
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The container id as Fargate's cgroup path shows it: `<task id>-<digits>`.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The container's cgroup path, `/ecs/<task id>/<task id>-<digits>`.
    pub fn cgroup_path(&self) -> &str {
        &self.cgroup.path
    }

    /// The container's root directory, as seen from the host. Files written here appear in
    /// the container.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The pid of the container's first process in the task's PID namespace.
    pub fn first_pid(&self) -> i32 {
        self.first_pid
    }

    /// The host pid of the container's first process.
    pub fn first_host_pid(&self) -> i32 {
        self.first_host_pid
    }

    /// The container's users.
    pub fn users(&self) -> &[User] {
        &self.users
    }

    /// The user of the container's first process (the image's `USER`).
    pub fn user(&self) -> &User {
        &self.user
    }

    /// The container's capability set (see [`ContainerSpec::capabilities`]).
    pub fn capabilities(&self) -> CapSet {
        self.capabilities
    }

    /// Copies a host file into the container (mode 0755), creating parent directories.
    pub fn install(&self, host_path: &Path, container_path: &str) -> Result<()> {
        let target = self.host_path(container_path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::copy(host_path, &target).with_context(|| {
            format!(
                "copying {} into {}:{container_path}",
                host_path.display(),
                self.name
            )
        })?;
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755))?;
        Ok(())
    }

    /// Installs a `/bin/sh` script with `body` as `/usr/local/bin/<name>` (mode 0755), so
    /// that the process it runs is named `name`; returns its path in the container.
    pub fn install_script(&self, name: &str, body: &str) -> Result<String> {
        let path = format!("/usr/local/bin/{name}");
        let target = self.host_path(&path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&target, format!("#!/bin/sh\n{body}\n"))
            .with_context(|| format!("writing the script {}:{path}", self.name))?;
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755))?;
        Ok(path)
    }

    /// Builds `tests/programs/<name>.c` (static) and installs it as `/usr/local/bin/<name>`.
    pub fn install_program(&self, name: &str) -> Result<String> {
        let binary = programs::program(name)?;
        let path = format!("/usr/local/bin/{name}");
        self.install(&binary, &path)?;
        Ok(path)
    }

    /// The host path of a path inside the container's root.
    pub fn host_path(&self, container_path: &str) -> PathBuf {
        self.root.join(container_path.trim_start_matches('/'))
    }

    /// A command that runs `args` in the container as user `uid` (whose group and home come
    /// from the container's users, or are `uid` and `/`), with the container's environment and
    /// capability set, the first process's working directory (`/`), and stdio left to the
    /// caller. Its process (`ctrexec`) stays on the host; the command itself is its only
    /// child, with ppid 0 in the task's PID namespace.
    pub fn command<S: AsRef<OsStr>>(&self, uid: u32, args: &[S]) -> Command {
        let mut command = Command::new(&self.ctrexec);
        let user = self.users.iter().find(|u| u.uid == uid);
        let gid = user.map_or(uid, |u| u.gid);
        let home = user.map_or_else(|| "/".to_string(), |u| u.home.clone());
        command.args([
            format!("--target={}", self.first_host_pid),
            format!("--uid={uid}"),
            format!("--gid={gid}"),
            format!("--caps={:x}", self.capabilities.0),
        ]);
        let mut env = self.env.clone();
        env.retain(|(k, _)| k != "HOME");
        env.push(("HOME".to_string(), home));
        command
            .arg("--")
            .args(args)
            .env_clear()
            .envs(env)
            .stdin(Stdio::null());
        self.cgroup.join_on_exec(&mut command, false);
        command
    }

    /// Starts `args` as root in the container; see [`Container::spawn_as`].
    pub fn spawn<S: AsRef<OsStr>>(&self, args: &[S]) -> Result<ContainerProcess> {
        self.spawn_as(0, args)
    }

    /// Starts `args` as user `uid` in the container, with stdout and stderr discarded, and
    /// returns once its pid is known. Fails if the process exits before its pid could be read
    /// (use [`Container::run`] for short commands).
    pub fn spawn_as<S: AsRef<OsStr>>(&self, uid: u32, args: &[S]) -> Result<ContainerProcess> {
        let mut command = self.command(uid, args);
        command.stdout(Stdio::null()).stderr(Stdio::null());
        self.spawn_command(command)
    }

    /// Starts a command made by [`Container::command`] and returns once its pid is known.
    pub fn spawn_command(&self, mut command: Command) -> Result<ContainerProcess> {
        let mut launcher = command
            .spawn()
            .with_context(|| format!("starting a command in container {}", self.name))?;
        let host_pid = match wait_for_grandchild(&mut launcher, &self.name, Duration::from_secs(10))
        {
            Ok(pid) => pid,
            Err(error) => {
                let _ = launcher.kill();
                let _ = launcher.wait();
                return Err(error);
            }
        };
        let pid = ns_pid_of(host_pid);
        let Some(pid) = pid else {
            let _ = launcher.wait();
            bail!(
                "the process started in container {} exited before its pid was read",
                self.name
            );
        };
        Ok(ContainerProcess {
            launcher: Some(launcher),
            host_pid,
            pid,
            status: None,
        })
    }

    /// Runs `args` as root in the container to completion, capturing stdout and stderr.
    pub fn run<S: AsRef<OsStr>>(&self, args: &[S]) -> Result<Output> {
        self.run_as(0, args)
    }

    /// Runs `args` as user `uid` to completion, capturing stdout and stderr.
    pub fn run_as<S: AsRef<OsStr>>(&self, uid: u32, args: &[S]) -> Result<Output> {
        self.command(uid, args)
            .output()
            .with_context(|| format!("running a command in container {}", self.name))
    }

    /// Runs `args` as root and returns its stdout; fails (with its stderr) unless it exits 0.
    pub fn run_ok<S: AsRef<OsStr>>(&self, args: &[S]) -> Result<String> {
        let output = self.run(args)?;
        if !output.status.success() {
            bail!(
                "{:?} in container {} failed ({}): {}{}",
                args.iter()
                    .map(|a| a.as_ref().to_string_lossy())
                    .collect::<Vec<_>>(),
                self.name,
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }
}

/// A process started in a container. Dropping the handle kills the process if it still runs.
pub struct ContainerProcess {
    launcher: Option<Child>,
    host_pid: i32,
    pid: i32,
    status: Option<ExitStatus>,
}

impl ContainerProcess {
    /// The pid in the task's PID namespace (what the monitor reports).
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The pid on the host.
    pub fn host_pid(&self) -> i32 {
        self.host_pid
    }

    /// Sends `signal` to the process.
    pub fn signal(&self, signal: nix::sys::signal::Signal) -> Result<()> {
        if self.status.is_some() {
            bail!("pid {} already exited", self.pid);
        }
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.host_pid), signal)
            .with_context(|| format!("signalling task pid {}", self.pid))
    }

    /// Kills the process (SIGKILL) and waits for it.
    pub fn kill(&mut self) -> Result<ExitStatus> {
        if self.status.is_none() {
            let _ = self.signal(nix::sys::signal::Signal::SIGKILL);
        }
        self.wait()
    }

    /// Waits for the process to exit. The status is the launcher's, which mirrors the
    /// process's exit code or signal.
    pub fn wait(&mut self) -> Result<ExitStatus> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        let Some(launcher) = self.launcher.as_mut() else {
            bail!("pid {} has no launcher", self.pid);
        };
        let status = launcher.wait()?;
        self.status = Some(status);
        Ok(status)
    }

    /// Whether the process has exited, without blocking.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        if let Some(status) = self.status {
            return Ok(Some(status));
        }
        let Some(launcher) = self.launcher.as_mut() else {
            return Ok(None);
        };
        let status = launcher.try_wait()?;
        self.status = status;
        Ok(status)
    }
}

impl Drop for ContainerProcess {
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = self.kill();
        }
    }
}

/// Creates the container's root file system under `root` and returns the host paths to bind
/// (each at the same path inside the root).
fn build_root(root: &Path, spec: &ContainerSpec) -> Result<Vec<PathBuf>> {
    for dir in [
        "bin",
        "sbin",
        "usr/bin",
        "usr/sbin",
        "usr/local/bin",
        "etc",
        "proc",
        "dev",
        "tmp",
        "var/tmp",
        "root",
        "home",
    ] {
        std::fs::create_dir_all(root.join(dir))?;
    }
    std::fs::set_permissions(root.join("tmp"), std::fs::Permissions::from_mode(0o1777))?;
    std::fs::set_permissions(
        root.join("var/tmp"),
        std::fs::Permissions::from_mode(0o1777),
    )?;
    std::fs::set_permissions(root.join("root"), std::fs::Permissions::from_mode(0o700))?;
    for dev in ["null", "zero", "random", "urandom"] {
        std::fs::write(root.join("dev").join(dev), b"")?;
    }
    // A terminal multiplexer of the container's own, as runtimes mount it (containerd's
    // default spec: devpts at /dev/pts, `newinstance`, `ptmxmode=0666`): the container
    // itself cannot mount it without CAP_SYS_ADMIN.
    std::fs::create_dir_all(root.join("dev/pts"))?;
    symlink("pts/ptmx", root.join("dev/ptmx"))?;

    std::fs::copy("/bin/busybox", root.join("bin/busybox")).context("copying /bin/busybox")?;
    std::fs::set_permissions(
        root.join("bin/busybox"),
        std::fs::Permissions::from_mode(0o755),
    )?;
    for applet in busybox_applets()? {
        if applet != "busybox" {
            symlink("busybox", root.join("bin").join(&applet))?;
        }
    }

    let mut passwd = String::new();
    let mut group = String::new();
    for user in &spec.users {
        passwd.push_str(&format!(
            "{}:x:{}:{}:{}:{}:{}\n",
            user.name, user.uid, user.gid, user.name, user.home, user.shell
        ));
        group.push_str(&format!("{}:x:{}:\n", user.name, user.gid));
        let home = root.join(user.home.trim_start_matches('/'));
        std::fs::create_dir_all(&home)?;
        std::os::unix::fs::chown(&home, Some(user.uid), Some(user.gid))?;
        if user.uid == spec.user && user.uid != 0 {
            // The image's user: a home only it can enter, as `useradd -m` makes it.
            std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700))?;
        }
    }
    std::fs::write(root.join("etc/passwd"), passwd)?;
    std::fs::write(root.join("etc/group"), group)?;
    std::fs::write(root.join("etc/hosts"), "127.0.0.1 localhost\n")?;

    let mut binds = Vec::new();
    for path in &spec.host_binds {
        if !path.is_absolute() {
            bail!("host bind {}: the path must be absolute", path.display());
        }
        let real = recreate_symlinks(root, path, 0)?;
        let inside = root.join(real.strip_prefix("/").unwrap_or(&real));
        if real.is_dir() {
            std::fs::create_dir_all(&inside)?;
        } else {
            if let Some(parent) = inside.parent() {
                std::fs::create_dir_all(parent)?;
            }
            if !inside.exists() {
                std::fs::write(&inside, b"")?;
            }
        }
        binds.push(real);
    }
    Ok(binds)
}

/// Resolves `path` on the host component by component; every symlink met is recreated in
/// `root` (unless `root` already has something there) and followed. Returns the real path.
fn recreate_symlinks(root: &Path, path: &Path, depth: usize) -> Result<PathBuf> {
    if depth > 40 {
        bail!("too many levels of symlinks resolving {}", path.display());
    }
    let mut real = PathBuf::from("/");
    for component in path.components() {
        match component {
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => {
                real.pop();
            }
            Component::Normal(name) => {
                let candidate = real.join(name);
                let meta = std::fs::symlink_metadata(&candidate)
                    .with_context(|| format!("host bind: {}", candidate.display()))?;
                if meta.file_type().is_symlink() {
                    let target = std::fs::read_link(&candidate)?;
                    let inside = root.join(candidate.strip_prefix("/").unwrap_or(&candidate));
                    if std::fs::symlink_metadata(&inside).is_err() {
                        if let Some(parent) = inside.parent() {
                            std::fs::create_dir_all(parent)?;
                        }
                        symlink(&target, &inside)?;
                    }
                    let absolute = if target.is_absolute() {
                        target
                    } else {
                        real.join(target)
                    };
                    real = recreate_symlinks(root, &absolute, depth + 1)?;
                } else {
                    real = candidate;
                }
            }
        }
    }
    Ok(real)
}

/// The applet names of the host's `/bin/busybox`.
fn busybox_applets() -> Result<Vec<String>> {
    let output = Command::new("/bin/busybox")
        .arg("--list")
        .output()
        .context("running /bin/busybox --list")?;
    if !output.status.success() {
        bail!("/bin/busybox --list failed: {}", output.status);
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::trim)
        .filter(|name| !name.is_empty() && !name.contains('/'))
        .map(str::to_string)
        .collect())
}
