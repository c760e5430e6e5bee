//! The event model: what collectors observe and what rules are evaluated against.
//!
//! An [`Event`] is one observation with a Falco `evt.type` (see [`EventType`]), the process it
//! is attributed to (when known), the container that process lives in, and for socket and file
//! observations the file descriptor it concerns. The serde JSON form of an event is stable and
//! documented in `docs/events.md`: `tasksentry run --emit events` prints one event per line, and
//! `tasksentry rules test` replays such recordings.
//!
//! Every string here is valid UTF-8: collectors convert what they read from `/proc` lossily
//! (invalid bytes become U+FFFD), which is what Falco does in its JSON output too.
//!
//! A value that was not observed is `None` and is omitted from the JSON; rules treat it as
//! "not available" (every comparison on it is false), never as an empty string or zero.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Falco's event type vocabulary, restricted to what TaskSentry can observe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    /// A new process image: a new process, or an exec in an existing one.
    Execve,
    /// A new process that still runs its parent's image (a fork seen before, or without, an
    /// exec). If it later execs, an `execve` follows.
    Clone,
    /// A process is gone.
    Procexit,
    /// A new outbound TCP connection or UDP peer.
    Connect,
    /// A new inbound connection.
    Accept,
    /// A new listening socket.
    Listen,
    /// A raw or packet socket appeared.
    Socket,
    /// A file was opened (read or write).
    Open,
    /// A file was created.
    Creat,
    /// A file was deleted.
    Unlinkat,
    /// A file was renamed.
    Renameat,
    /// A file's attributes (mode) changed.
    Chmod,
    /// A directory was created.
    Mkdir,
    /// TaskSentry's own observations: visibility lost or degraded, processes missed, tamper,
    /// configuration reloaded.
    Tasksentry,
}

impl EventType {
    /// Every event type, in declaration order.
    pub const ALL: [EventType; 14] = [
        EventType::Execve,
        EventType::Clone,
        EventType::Procexit,
        EventType::Connect,
        EventType::Accept,
        EventType::Listen,
        EventType::Socket,
        EventType::Open,
        EventType::Creat,
        EventType::Unlinkat,
        EventType::Renameat,
        EventType::Chmod,
        EventType::Mkdir,
        EventType::Tasksentry,
    ];

    /// The Falco name of the event type, as `evt.type` renders it.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            EventType::Execve => "execve",
            EventType::Clone => "clone",
            EventType::Procexit => "procexit",
            EventType::Connect => "connect",
            EventType::Accept => "accept",
            EventType::Listen => "listen",
            EventType::Socket => "socket",
            EventType::Open => "open",
            EventType::Creat => "creat",
            EventType::Unlinkat => "unlinkat",
            EventType::Renameat => "renameat",
            EventType::Chmod => "chmod",
            EventType::Mkdir => "mkdir",
            EventType::Tasksentry => "tasksentry",
        }
    }

    /// Parses a Falco event type name that TaskSentry emits.
    pub(crate) fn from_name(name: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.as_str() == name)
    }

    /// A small dense index, for per-type tables.
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which part of TaskSentry produced an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Collector {
    /// The /proc polling collector.
    Procscan,
    /// The event-only ptrace collector.
    Tracer,
    /// The socket table collector.
    Sockets,
    /// The inotify file collector.
    Fswatch,
    /// The image collector (packages, vulnerabilities and credentials of the running images).
    Images,
    /// The monitor itself (health, configuration, tamper).
    Monitor,
}

impl Collector {
    /// The collector's name as it appears in JSON.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Collector::Procscan => "procscan",
            Collector::Tracer => "tracer",
            Collector::Sockets => "sockets",
            Collector::Fswatch => "fswatch",
            Collector::Images => "images",
            Collector::Monitor => "monitor",
        }
    }
}

/// A point in time, as nanoseconds since the Unix epoch. JSON form: RFC 3339 in UTC with nine
/// fractional digits, like Falco's `time` key (`2026-11-25T16:01:50.123456789Z`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// The current wall-clock time.
    pub fn now() -> Timestamp {
        Timestamp::from_system_time(SystemTime::now())
    }

    /// Converts a `SystemTime`; times before the epoch become the epoch.
    pub(crate) fn from_system_time(time: SystemTime) -> Timestamp {
        let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
        Timestamp(u64::try_from(since_epoch.as_nanos()).unwrap_or(u64::MAX))
    }

    /// Nanoseconds since the Unix epoch.
    pub(crate) fn as_nanos(self) -> u64 {
        self.0
    }

    /// Milliseconds since the Unix epoch (what CloudWatch Logs wants).
    pub fn as_millis(self) -> u64 {
        self.0 / 1_000_000
    }

    /// The same instant as a `SystemTime`.
    pub(crate) fn to_system_time(self) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(self.0)
    }

    /// Parses the RFC 3339 form this type serializes to (any offset-free `Z` form with up to
    /// nine fractional digits is accepted).
    pub fn parse_rfc3339(text: &str) -> Result<Timestamp, humantime::TimestampError> {
        humantime::parse_rfc3339(text).map(Timestamp::from_system_time)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}",
            humantime::format_rfc3339_nanos(self.to_system_time())
        )
    }
}

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Timestamp::parse_rfc3339(&text).map_err(serde::de::Error::custom)
    }
}

/// One observation. The parts are boxed so that an event is small (about 100 bytes) to move
/// through the bounded queues, whose slots are allocated up front.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// What was observed, time and origin.
    pub evt: EventMeta,
    /// The process the event is attributed to; `None` when it could not be attributed (for
    /// example a file event whose writer was not found).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proc: Option<Box<Process>>,
    /// The container of that process (or of the file or socket).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<Box<Container>>,
    /// The file or socket the event concerns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fd: Option<Box<Fd>>,
    /// Details of a `tasksentry` (internal) event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal: Option<Box<Internal>>,
}

impl Event {
    /// A new event of the given type, stamped now, with nothing attributed yet.
    pub fn new(evt_type: EventType, collector: Collector) -> Event {
        Event {
            evt: EventMeta {
                evt_type,
                time: Timestamp::now(),
                num: 0,
                collector,
                args: Vec::new(),
            },
            proc: None,
            container: None,
            fd: None,
            internal: None,
        }
    }

    /// The event's type.
    pub fn evt_type(&self) -> EventType {
        self.evt.evt_type
    }

    /// One JSON line (no trailing newline).
    pub fn to_json_line(&self) -> String {
        // Serializing this type cannot fail: every map key is a string and every value is
        // plain data.
        serde_json::to_string(self).unwrap_or_else(|error| {
            format!("{{\"evt\":{{\"type\":\"tasksentry\"}},\"serialization_error\":{error:?}}}")
        })
    }
}

/// The `evt.*` part of an event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventMeta {
    /// `evt.type`.
    #[serde(rename = "type")]
    pub evt_type: EventType,
    /// `evt.time`: when the observation was made.
    pub time: Timestamp,
    /// `evt.num`: a sequence number assigned by the pipeline (monotonic within one run).
    #[serde(default)]
    pub num: u64,
    /// The collector that made the observation.
    pub(crate) collector: Collector,
    /// `evt.arg.NAME` values, in the order the collector produced them (for example `mode`
    /// for `chmod`, `oldpath`/`newpath` for `renameat`, `domain` for `socket`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<(String, String)>,
}

impl EventMeta {
    /// The value of `evt.arg.NAME`, if the collector set it.
    pub(crate) fn arg(&self, name: &str) -> Option<&str> {
        self.args
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// What kind of object a file descriptor refers to, as TaskSentry classifies fds 0-2 and
/// event fds. Renders as Falco's `fd.type` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FdKind {
    /// A regular file.
    File,
    /// A directory.
    Directory,
    /// A terminal (a `/dev/pts/*` or `/dev/tty*` character device).
    Tty,
    /// A character or block device other than a terminal (e.g. `/dev/null`).
    Device,
    /// A pipe or FIFO.
    Pipe,
    /// An IPv4 socket.
    Ipv4,
    /// An IPv6 socket.
    Ipv6,
    /// A Unix domain socket.
    Unix,
    /// A socket of another family (netlink, packet, ...), or one not found in the tables.
    Socket,
    /// An anonymous inode (eventfd, epoll, memfd, ...).
    Anon,
    /// Closed or unreadable.
    None,
}

impl FdKind {
    /// The lowercase name used in JSON and in `proc.stdin_type` and friends.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            FdKind::File => "file",
            FdKind::Directory => "directory",
            FdKind::Tty => "tty",
            FdKind::Device => "device",
            FdKind::Pipe => "pipe",
            FdKind::Ipv4 => "ipv4",
            FdKind::Ipv6 => "ipv6",
            FdKind::Unix => "unix",
            FdKind::Socket => "socket",
            FdKind::Anon => "anon",
            FdKind::None => "none",
        }
    }

    /// Whether this is a network (IP) socket.
    pub(crate) fn is_ip_socket(self) -> bool {
        matches!(self, FdKind::Ipv4 | FdKind::Ipv6)
    }
}

/// One of a process's standard file descriptors (0, 1 or 2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StdFd {
    /// What the descriptor refers to.
    #[serde(rename = "type")]
    pub kind: FdKind,
    /// The link target as read from `/proc/<pid>/fd/N` (a path, `pipe:[123]`, `socket:[456]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// For IP sockets: the remote address as `ip:port`, when the socket tables know it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
}

/// An ancestor of a process (parent first), as far up as the container's first process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ancestor {
    /// Process id in the task's PID namespace.
    pub pid: i32,
    /// `comm` (at most 15 bytes).
    pub name: String,
    /// `argv[0]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exe: Option<String>,
    /// The resolved executable path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exepath: Option<String>,
    /// Arguments (without `argv[0]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
}

/// A process, as TaskSentry knows it at the time of the event.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Process {
    /// Process id in the task's PID namespace (`proc.pid`).
    pub pid: i32,
    /// Parent process id (`proc.ppid`); 0 for a container's first process on Fargate.
    pub ppid: i32,
    /// Start time in clock ticks since boot (field 22 of `/proc/<pid>/stat`); together with
    /// the pid it identifies a process even when pids are recycled.
    pub start_ticks: u64,
    /// Start time as a wall-clock time (`proc.start_ts`, used for `proc.duration`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Timestamp>,
    /// `comm`: the kernel's process name, at most 15 bytes (`proc.name`).
    pub name: String,
    /// `argv[0]` as given (`proc.exe`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exe: Option<String>,
    /// The resolved executable path, `readlink /proc/<pid>/exe` without a ` (deleted)`
    /// suffix (`proc.exepath`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exepath: Option<String>,
    /// Arguments without `argv[0]` (`proc.args` joins them with spaces).
    #[serde(default)]
    pub args: Vec<String>,
    /// The command line was longer than what TaskSentry keeps and was cut.
    #[serde(default, skip_serializing_if = "is_false")]
    pub args_truncated: bool,
    /// Working directory (`proc.cwd`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// Real user id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// Effective user id (`user.uid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub euid: Option<u32>,
    /// Real group id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
    /// Effective group id (`group.gid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egid: Option<u32>,
    /// Name of the effective user, from the container's own `/etc/passwd` (`user.name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Home directory of the effective user, from the container's `/etc/passwd`
    /// (`user.homedir`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_home: Option<String>,
    /// Login shell of the effective user (`user.shell`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_shell: Option<String>,
    /// Name of the effective group, from the container's `/etc/group` (`group.name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Audit login uid, -1 when unset (`user.loginuid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loginuid: Option<i64>,
    /// Effective capability mask (`thread.cap_effective` renders the names).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cap_effective: Option<u64>,
    /// Permitted capability mask (`thread.cap_permitted`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cap_permitted: Option<u64>,
    /// Inheritable capability mask (`thread.cap_inheritable`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cap_inheritable: Option<u64>,
    /// The pid of the process tracing this one, 0 when not traced (`proc.tracer_pid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracer_pid: Option<i32>,
    /// Controlling terminal device number, 0 when none (`proc.tty`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tty: Option<u32>,
    /// Session id (`proc.sid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<i32>,
    /// Process group id (`proc.vpgid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pgid: Option<i32>,
    /// Number of threads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<u32>,
    /// File descriptors 0, 1, 2 (`proc.stdin_type`, `proc.stdout_type`, `proc.stderr_type`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin: Option<StdFd>,
    /// See `stdin`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdout: Option<StdFd>,
    /// See `stdin`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stderr: Option<StdFd>,
    /// Environment variables whose names are on the allowlist, as `(name, value)` pairs
    /// (`proc.env`, `proc.env[NAME]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<(String, String)>,
    /// The executable file was deleted after the process started (or is a memfd).
    #[serde(default, skip_serializing_if = "is_false")]
    pub exe_deleted: bool,
    /// The executable is a memfd (`proc.is_exe_from_memfd`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub exe_from_memfd: bool,
    /// Inode change time of the executable (`proc.exe_ino.ctime`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exe_ctime: Option<Timestamp>,
    /// Modification time of the executable (`proc.exe_ino.mtime`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exe_mtime: Option<Timestamp>,
    /// The executable was created or written after its container started, as seen by the
    /// file collector (immune to forged timestamps) or by its ctime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exe_written_after_start: Option<bool>,
    /// Exit status for `procexit` events, when known (tracer mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Ancestors, parent first, up to the container's first process.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ancestors: Vec<Ancestor>,
}

impl Process {
    /// `proc.cmdline`: the name followed by the arguments, space separated (Falco's form).
    pub(crate) fn cmdline(&self) -> String {
        join_cmdline(&self.name, &self.args)
    }

    /// `proc.args`: the arguments joined with spaces.
    pub(crate) fn args_joined(&self) -> String {
        self.args.join(" ")
    }

    /// The value of an allowlisted environment variable.
    pub(crate) fn env_var(&self, name: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// Joins a name and arguments the way Falco's `proc.cmdline` does.
pub(crate) fn join_cmdline(name: &str, args: &[String]) -> String {
    let mut out =
        String::with_capacity(name.len() + args.iter().map(|a| a.len() + 1).sum::<usize>());
    out.push_str(name);
    for arg in args {
        out.push(' ');
        out.push_str(arg);
    }
    out
}

/// The ECS context of a container, from the task metadata endpoint (v4).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EcsContext {
    /// Cluster ARN (`ecs.cluster`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// Task ARN (`ecs.task_arn`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_arn: Option<String>,
    /// Task id, the last segment of the task ARN (`ecs.task_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
    /// Task definition family (`ecs.family`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    /// Task definition revision (`ecs.revision`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// Availability zone (`ecs.availability_zone`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability_zone: Option<String>,
    /// Launch type, `FARGATE` on Fargate (`ecs.launch_type`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch_type: Option<String>,
    /// Container ARN (`ecs.container_arn`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_arn: Option<String>,
}

/// A container of the task.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Container {
    /// `container.id`: the container's id from its cgroup path (on Fargate the
    /// `<task id>-<digits>` form); `host` for a process outside any container.
    pub id: String,
    /// `container.name`: the task-definition container name when ECS metadata knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `container.image`: the image reference when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// `container.image.digest`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_digest: Option<String>,
    /// The cgroup path the container was recognised by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<String>,
    /// Inode of the container's mount namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mnt_ns: Option<u64>,
    /// Pid of the container's first process (whose `/proc/<pid>/root` is the container root).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_pid: Option<i32>,
    /// When the container's first process started (`container.start_ts`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Timestamp>,
    /// ECS task and container metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ecs: Option<EcsContext>,
    /// The ports the task definition declares for this container (`portMappings`), as the
    /// ECS metadata reports them (`Ports`); `None` when unknown (outside ECS, or the endpoint
    /// does not list them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_mappings: Option<Vec<PortMapping>>,
}

/// A port a container declares in its task definition (`container.port_mappings`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortMapping {
    /// `containerPort`.
    pub port: u16,
    /// `tcp` or `udp`.
    pub protocol: String,
}

impl Container {
    /// Whether the container declares `port` for `protocol` (`None`: it is not known which
    /// ports the container declares).
    pub(crate) fn declares_port(&self, port: u16, protocol: &str) -> Option<bool> {
        self.port_mappings.as_ref().map(|ports| {
            ports
                .iter()
                .any(|mapping| mapping.port == port && mapping.protocol == protocol)
        })
    }
}

/// A file or socket (`fd.*`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fd {
    /// `fd.num`, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num: Option<i64>,
    /// What the descriptor refers to (`fd.type`, `fd.typechar`).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<FdKind>,
    /// `fd.name`: a file's absolute path inside its container, or for sockets
    /// `cip:cport->sip:sport`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// For renames: the old path (`evt.arg.oldpath`); `name` holds the new one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldname: Option<String>,
    /// `evt.is_open_read`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_read: Option<bool>,
    /// `evt.is_open_write`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_write: Option<bool>,
    /// File mode after the event (`chmod`, `creat`), when read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
    /// `fd.l4proto`: `tcp`, `udp`, `icmp`, `raw`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub l4proto: Option<String>,
    /// Client (connecting side) address, `fd.cip`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cip: Option<std::net::IpAddr>,
    /// `fd.cport`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cport: Option<u16>,
    /// Server (listening side) address, `fd.sip`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sip: Option<std::net::IpAddr>,
    /// `fd.sport`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sport: Option<u16>,
    /// Whether the local end is the client (so `fd.lip` = `fd.cip`) or the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_is_client: Option<bool>,
    /// Socket inode, when the event concerns a socket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inode: Option<u64>,
}

/// Details of a `tasksentry` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Internal {
    /// A stable kind, e.g. `processes_missed`, `inotify_overflow`, `watch_limit`,
    /// `collector_restarted`, `rules_reloaded`, `signal_received`.
    pub kind: String,
    /// A human-readable description.
    pub message: String,
    /// A count attached to the event (processes missed, alerts dropped, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
}

fn is_false(value: &bool) -> bool {
    !*value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_type_names_round_trip() {
        for evt_type in EventType::ALL {
            assert_eq!(EventType::from_name(evt_type.as_str()), Some(evt_type));
            let json = serde_json::to_string(&evt_type).expect("serialize");
            assert_eq!(json, format!("\"{}\"", evt_type.as_str()));
        }
        assert_eq!(EventType::from_name("openat2"), None);
    }

    #[test]
    fn timestamp_renders_like_falco_and_parses_back() {
        let ts = Timestamp(1_685_022_245_478_445_995);
        assert_eq!(ts.to_string(), "2023-05-25T13:44:05.478445995Z");
        assert_eq!(
            Timestamp::parse_rfc3339("2023-05-25T13:44:05.478445995Z").ok(),
            Some(ts)
        );
    }

    #[test]
    fn event_json_round_trips_and_omits_unknowns() {
        let mut event = Event::new(EventType::Execve, Collector::Procscan);
        event.evt.time = Timestamp(1_000_000_123);
        event.proc = Some(Box::new(Process {
            pid: 42,
            ppid: 7,
            start_ticks: 1234,
            name: "sle ep(x)\n".into(),
            exe: Some("sleep".into()),
            args: vec!["2".into(), "line\nbreak \u{fffd}".into()],
            ..Process::default()
        }));
        event.container = Some(Box::new(Container {
            id: "abc".into(),
            ..Container::default()
        }));
        let line = event.to_json_line();
        assert!(!line.contains('\n'), "one event per line: {line}");
        assert!(
            !line.contains("\"fd\""),
            "unknown parts are omitted: {line}"
        );
        let back: Event = serde_json::from_str(&line).expect("parse back");
        assert_eq!(back, event);
    }

    #[test]
    fn cmdline_joins_name_and_args() {
        let process = Process {
            name: "sh".into(),
            args: vec!["-c".into(), "echo hi".into()],
            ..Process::default()
        };
        assert_eq!(process.cmdline(), "sh -c echo hi");
        assert_eq!(process.args_joined(), "-c echo hi");
    }
}
