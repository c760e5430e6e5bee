//! The field catalogue: every field TaskSentry provides to conditions and outputs, and how each
//! one is extracted from an [`Event`].
//!
//! [`catalogue`] is the single table (name, type, argument, description, which events provide
//! the field) that `tasksentry fields` prints and that the rule compiler resolves names
//! against. [`UNPROVIDED_FIELDS`] lists Falco fields that the default Falco rule files use but
//! that TaskSentry cannot observe: a rule whose condition uses one of them is skipped with a
//! warning rather than rejected. Extraction borrows strings from the event wherever the field
//! is a plain string in it, so the common fields never allocate.

use std::borrow::Cow;
use std::net::IpAddr;

use crate::event::{Ancestor, Event, FdKind, Process};

/// The type of a field's value, which decides how a right-hand value is parsed at load time and
/// which operators apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// Text.
    String,
    /// A signed integer.
    Int,
    /// `true` or `false`.
    Bool,
    /// An IPv4 or IPv6 address.
    Ip,
    /// A filter-only network check: the right-hand side is a CIDR (or an address) and `=` means
    /// "the address is inside the network".
    IpNet,
    /// A TCP/UDP port; the right-hand side may be a number or a well-known service name.
    Port,
    /// An absolute time in nanoseconds since the epoch.
    AbsTime,
    /// A duration in nanoseconds.
    RelTime,
}

impl FieldType {
    /// The name shown in the catalogue.
    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::String => "string",
            FieldType::Int => "int",
            FieldType::Bool => "bool",
            FieldType::Ip => "ipaddr",
            FieldType::IpNet => "ipnet",
            FieldType::Port => "port",
            FieldType::AbsTime => "abstime",
            FieldType::RelTime => "reltime",
        }
    }

    /// Whether values of this type compare as numbers.
    pub fn is_numeric(self) -> bool {
        matches!(
            self,
            FieldType::Int | FieldType::Port | FieldType::AbsTime | FieldType::RelTime
        )
    }
}

/// Which argument a field takes between brackets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgKind {
    /// No argument.
    None,
    /// An optional integer index (`proc.aname[2]`); without it the field has a field-specific
    /// meaning (for ancestors: any ancestor).
    OptionalIndex,
    /// An optional key (`proc.env[HOME]`); without it the whole collection.
    OptionalKey,
}

/// Which events carry a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provides {
    /// Every event.
    All,
    /// Events attributed to a process.
    Process,
    /// Events attributed to a process whose parent (or ancestors) is known.
    Ancestors,
    /// Events with a container (or `host`).
    Container,
    /// Events whose container has ECS metadata.
    Ecs,
    /// File events (`open`, `creat`, `unlinkat`, `renameat`, `chmod`, `mkdir`) and fds.
    File,
    /// Socket events (`connect`, `accept`, `listen`, `socket`).
    Network,
    /// `open` events.
    Open,
    /// `tasksentry` internal events.
    Internal,
    /// Events whose collector set the named argument.
    Args,
}

impl Provides {
    /// A short description of the events that provide the field.
    pub fn as_str(self) -> &'static str {
        match self {
            Provides::All => "all events",
            Provides::Process => "events attributed to a process",
            Provides::Ancestors => "events attributed to a process with known ancestors",
            Provides::Container => "all events (`host` outside containers)",
            Provides::Ecs => "events in a container with ECS metadata",
            Provides::File => "open, creat, unlinkat, renameat, chmod, mkdir",
            Provides::Network => "connect, accept, listen, socket",
            Provides::Open => "open",
            Provides::Internal => "tasksentry",
            Provides::Args => "events whose collector set the argument",
        }
    }
}

/// Identifies a field the engine can extract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum FieldId {
    EvtType,
    EvtTime,
    EvtNum,
    EvtRes,
    EvtRawres,
    EvtDir,
    EvtIsOpenRead,
    EvtIsOpenWrite,
    EvtArg,
    EvtSource,
    ProcPid,
    ProcPpid,
    ProcVpid,
    ProcName,
    ProcExe,
    ProcExepath,
    ProcCmdline,
    ProcArgs,
    ProcCwd,
    ProcTty,
    ProcSid,
    ProcVpgid,
    ProcIsVpgidLeader,
    ProcSname,
    ProcPname,
    ProcPcmdline,
    ProcPexe,
    ProcPexepath,
    ProcAname,
    ProcApid,
    ProcAexe,
    ProcAexepath,
    ProcAcmdline,
    ProcEnv,
    ProcDuration,
    ProcStartTs,
    ProcIsExeFromMemfd,
    ProcIsExeDeleted,
    ProcExeInoCtime,
    ProcExeInoMtime,
    ProcExeInoCtimeDurationProcStart,
    ProcExeWrittenAfterStart,
    ProcTracerPid,
    ProcStdinType,
    ProcStdoutType,
    ProcStderrType,
    ThreadCapEffective,
    ThreadCapPermitted,
    ThreadCapInheritable,
    UserUid,
    UserName,
    UserHomedir,
    UserShell,
    UserLoginuid,
    UserLoginname,
    GroupGid,
    GroupName,
    ContainerId,
    ContainerName,
    ContainerImage,
    ContainerImageRepository,
    ContainerImageTag,
    ContainerImageDigest,
    ContainerStartTs,
    ContainerPrivileged,
    FdNum,
    FdType,
    FdTypechar,
    FdName,
    FdDirectory,
    FdFilename,
    FdL4proto,
    FdSip,
    FdSport,
    FdCip,
    FdCport,
    FdLip,
    FdLport,
    FdRip,
    FdRport,
    FdSockfamily,
    FdIp,
    FdPort,
    FdNet,
    FdSnet,
    FdCnet,
    FdRnet,
    FdLnet,
    FdConnected,
    EcsCluster,
    EcsTaskArn,
    EcsTaskId,
    EcsFamily,
    EcsRevision,
    EcsAvailabilityZone,
    EcsLaunchType,
    EcsContainerArn,
    TsKind,
    TsMessage,
    TsCount,
}

/// One row of the catalogue.
#[derive(Debug, Clone, Copy)]
pub struct FieldDef {
    /// The field name as written in rules (`evt.arg.*` stands for any `evt.arg.NAME`).
    pub name: &'static str,
    /// Extraction identity.
    pub id: FieldId,
    /// Value type.
    pub ty: FieldType,
    /// Argument accepted between brackets.
    pub arg: ArgKind,
    /// Which events provide it.
    pub provides: Provides,
    /// One-line description.
    pub desc: &'static str,
}

macro_rules! f {
    ($name:literal, $id:ident, $ty:ident, $arg:ident, $prov:ident, $desc:literal) => {
        FieldDef {
            name: $name,
            id: FieldId::$id,
            ty: FieldType::$ty,
            arg: ArgKind::$arg,
            provides: Provides::$prov,
            desc: $desc,
        }
    };
}

static CATALOGUE: &[FieldDef] = &[
    f!(
        "evt.type",
        EvtType,
        String,
        None,
        All,
        "Event type (execve, open, connect, ..., tasksentry)."
    ),
    f!(
        "evt.time",
        EvtTime,
        AbsTime,
        None,
        All,
        "Event time in nanoseconds since the epoch."
    ),
    f!(
        "evt.num",
        EvtNum,
        Int,
        None,
        All,
        "Event sequence number; `evt.num=0` is treated as statically false (the never_true idiom)."
    ),
    f!(
        "evt.res",
        EvtRes,
        String,
        None,
        All,
        "Result of the observed action: always SUCCESS (only completed actions are observed)."
    ),
    f!(
        "evt.rawres",
        EvtRawres,
        Int,
        None,
        All,
        "Raw result: always 0."
    ),
    f!(
        "evt.dir",
        EvtDir,
        String,
        None,
        All,
        "Event direction: always `<` (exit)."
    ),
    f!(
        "evt.is_open_read",
        EvtIsOpenRead,
        Bool,
        None,
        Open,
        "The file was opened for reading."
    ),
    f!(
        "evt.is_open_write",
        EvtIsOpenWrite,
        Bool,
        None,
        Open,
        "The file was opened (or modified) for writing."
    ),
    f!(
        "evt.arg.*",
        EvtArg,
        String,
        None,
        Args,
        "A named event argument set by the collector (e.g. evt.arg.mode, evt.arg.oldpath, evt.arg.domain)."
    ),
    f!(
        "evt.source",
        EvtSource,
        String,
        None,
        All,
        "Event source: always `syscall`."
    ),
    f!(
        "proc.pid",
        ProcPid,
        Int,
        None,
        Process,
        "Process id in the task's PID namespace."
    ),
    f!(
        "proc.ppid",
        ProcPpid,
        Int,
        None,
        Process,
        "Parent process id (0 for a container's first process)."
    ),
    f!(
        "proc.vpid",
        ProcVpid,
        Int,
        None,
        Process,
        "Process id as seen inside its PID namespace (the task namespace: equals proc.pid)."
    ),
    f!(
        "proc.name",
        ProcName,
        String,
        None,
        Process,
        "Process name (comm, at most 15 bytes)."
    ),
    f!(
        "proc.exe",
        ProcExe,
        String,
        None,
        Process,
        "argv[0] as given."
    ),
    f!(
        "proc.exepath",
        ProcExepath,
        String,
        None,
        Process,
        "Resolved executable path."
    ),
    f!(
        "proc.cmdline",
        ProcCmdline,
        String,
        None,
        Process,
        "Name followed by the arguments, space separated."
    ),
    f!(
        "proc.args",
        ProcArgs,
        String,
        OptionalIndex,
        Process,
        "Arguments without argv[0], space separated; proc.args[N] is the N-th argument (0-based)."
    ),
    f!(
        "proc.cwd",
        ProcCwd,
        String,
        None,
        Process,
        "Working directory."
    ),
    f!(
        "proc.tty",
        ProcTty,
        Int,
        None,
        Process,
        "Controlling terminal device number, 0 when none."
    ),
    f!("proc.sid", ProcSid, Int, None, Process, "Session id."),
    f!(
        "proc.vpgid",
        ProcVpgid,
        Int,
        None,
        Process,
        "Process group id."
    ),
    f!(
        "proc.is_vpgid_leader",
        ProcIsVpgidLeader,
        Bool,
        None,
        Process,
        "The process leads its process group."
    ),
    f!(
        "proc.sname",
        ProcSname,
        String,
        None,
        Ancestors,
        "Name of the session leader (self or a known ancestor)."
    ),
    f!(
        "proc.pname",
        ProcPname,
        String,
        None,
        Ancestors,
        "Parent's process name."
    ),
    f!(
        "proc.pcmdline",
        ProcPcmdline,
        String,
        None,
        Ancestors,
        "Parent's command line."
    ),
    f!(
        "proc.pexe",
        ProcPexe,
        String,
        None,
        Ancestors,
        "Parent's argv[0]."
    ),
    f!(
        "proc.pexepath",
        ProcPexepath,
        String,
        None,
        Ancestors,
        "Parent's executable path."
    ),
    f!(
        "proc.aname",
        ProcAname,
        String,
        OptionalIndex,
        Ancestors,
        "Name of the N-th ancestor ([0] self, [1] parent); without an index, any ancestor (in conditions) or all of them (in outputs)."
    ),
    f!(
        "proc.apid",
        ProcApid,
        Int,
        OptionalIndex,
        Ancestors,
        "Pid of the N-th ancestor; without an index, any ancestor."
    ),
    f!(
        "proc.aexe",
        ProcAexe,
        String,
        OptionalIndex,
        Ancestors,
        "argv[0] of the N-th ancestor; without an index, any ancestor."
    ),
    f!(
        "proc.aexepath",
        ProcAexepath,
        String,
        OptionalIndex,
        Ancestors,
        "Executable path of the N-th ancestor; without an index, any ancestor."
    ),
    f!(
        "proc.acmdline",
        ProcAcmdline,
        String,
        OptionalIndex,
        Ancestors,
        "Command line of the N-th ancestor; without an index, any ancestor."
    ),
    f!(
        "proc.env",
        ProcEnv,
        String,
        OptionalKey,
        Process,
        "Allowlisted environment as `K=V K=V`; proc.env[NAME] is one variable."
    ),
    f!(
        "proc.duration",
        ProcDuration,
        RelTime,
        None,
        Process,
        "Nanoseconds between process start and the event."
    ),
    f!(
        "proc.start_ts",
        ProcStartTs,
        AbsTime,
        None,
        Process,
        "Process start time (ns since the epoch)."
    ),
    f!(
        "proc.is_exe_from_memfd",
        ProcIsExeFromMemfd,
        Bool,
        None,
        Process,
        "The executable is a memfd."
    ),
    f!(
        "proc.is_exe_deleted",
        ProcIsExeDeleted,
        Bool,
        None,
        Process,
        "The executable file was deleted after the process started (TaskSentry)."
    ),
    f!(
        "proc.exe_ino.ctime",
        ProcExeInoCtime,
        AbsTime,
        None,
        Process,
        "Inode change time of the executable."
    ),
    f!(
        "proc.exe_ino.mtime",
        ProcExeInoMtime,
        AbsTime,
        None,
        Process,
        "Modification time of the executable."
    ),
    f!(
        "proc.exe_ino.ctime_duration_proc_start",
        ProcExeInoCtimeDurationProcStart,
        RelTime,
        None,
        Process,
        "Nanoseconds between the executable's ctime and the process start."
    ),
    f!(
        "proc.exe_written_after_start",
        ProcExeWrittenAfterStart,
        Bool,
        None,
        Process,
        "The executable was written after its container started (drift)."
    ),
    f!(
        "proc.tracer_pid",
        ProcTracerPid,
        Int,
        None,
        Process,
        "Pid of the process tracing this one, 0 when not traced."
    ),
    f!(
        "proc.stdin_type",
        ProcStdinType,
        String,
        None,
        Process,
        "What fd 0 refers to: file, directory, tty, device, pipe, ipv4, ipv6, unix, socket, anon, none."
    ),
    f!(
        "proc.stdout_type",
        ProcStdoutType,
        String,
        None,
        Process,
        "What fd 1 refers to (see proc.stdin_type)."
    ),
    f!(
        "proc.stderr_type",
        ProcStderrType,
        String,
        None,
        Process,
        "What fd 2 refers to (see proc.stdin_type)."
    ),
    f!(
        "thread.cap_effective",
        ThreadCapEffective,
        String,
        None,
        Process,
        "Effective capabilities as space-separated CAP_* names."
    ),
    f!(
        "thread.cap_permitted",
        ThreadCapPermitted,
        String,
        None,
        Process,
        "Permitted capabilities as space-separated CAP_* names."
    ),
    f!(
        "thread.cap_inheritable",
        ThreadCapInheritable,
        String,
        None,
        Process,
        "Inheritable capabilities as space-separated CAP_* names."
    ),
    f!(
        "user.uid",
        UserUid,
        Int,
        None,
        Process,
        "Effective user id."
    ),
    f!(
        "user.name",
        UserName,
        String,
        None,
        Process,
        "Effective user name, from the container's /etc/passwd."
    ),
    f!(
        "user.homedir",
        UserHomedir,
        String,
        None,
        Process,
        "Home directory of the effective user."
    ),
    f!(
        "user.shell",
        UserShell,
        String,
        None,
        Process,
        "Login shell of the effective user."
    ),
    f!(
        "user.loginuid",
        UserLoginuid,
        Int,
        None,
        Process,
        "Audit login uid, -1 when unset."
    ),
    f!(
        "user.loginname",
        UserLoginname,
        String,
        None,
        Process,
        "Name of the login user (known when it is the effective user)."
    ),
    f!(
        "group.gid",
        GroupGid,
        Int,
        None,
        Process,
        "Effective group id."
    ),
    f!(
        "group.name",
        GroupName,
        String,
        None,
        Process,
        "Effective group name, from the container's /etc/group."
    ),
    f!(
        "container.id",
        ContainerId,
        String,
        None,
        Container,
        "Container id (`host` outside containers)."
    ),
    f!(
        "container.name",
        ContainerName,
        String,
        None,
        Container,
        "Container name from ECS metadata (`host` outside containers)."
    ),
    f!(
        "container.image",
        ContainerImage,
        String,
        None,
        Container,
        "Image reference."
    ),
    f!(
        "container.image.repository",
        ContainerImageRepository,
        String,
        None,
        Container,
        "Image repository (the reference without tag and digest)."
    ),
    f!(
        "container.image.tag",
        ContainerImageTag,
        String,
        None,
        Container,
        "Image tag."
    ),
    f!(
        "container.image.digest",
        ContainerImageDigest,
        String,
        None,
        Container,
        "Image digest."
    ),
    f!(
        "container.start_ts",
        ContainerStartTs,
        AbsTime,
        None,
        Container,
        "Container start time (ns since the epoch)."
    ),
    f!(
        "container.privileged",
        ContainerPrivileged,
        Bool,
        None,
        Container,
        "Privileged container: always false (Fargate has none)."
    ),
    f!("fd.num", FdNum, Int, None, File, "File descriptor number."),
    f!(
        "fd.type",
        FdType,
        String,
        None,
        File,
        "file, directory, tty, device, pipe, ipv4, ipv6, unix, socket, anon, none."
    ),
    f!(
        "fd.typechar",
        FdTypechar,
        String,
        None,
        File,
        "One-letter fd type: f (file, tty, device), d, 4, 6, u, p, o."
    ),
    f!(
        "fd.name",
        FdName,
        String,
        None,
        File,
        "File path inside the container, or `cip:cport->sip:sport` for sockets."
    ),
    f!(
        "fd.directory",
        FdDirectory,
        String,
        None,
        File,
        "Directory part of a file fd's path."
    ),
    f!(
        "fd.filename",
        FdFilename,
        String,
        None,
        File,
        "File name part of a file fd's path."
    ),
    f!(
        "fd.l4proto",
        FdL4proto,
        String,
        None,
        Network,
        "tcp, udp, icmp or raw."
    ),
    f!("fd.sip", FdSip, Ip, None, Network, "Server IP address."),
    f!("fd.sport", FdSport, Port, None, Network, "Server port."),
    f!("fd.cip", FdCip, Ip, None, Network, "Client IP address."),
    f!("fd.cport", FdCport, Port, None, Network, "Client port."),
    f!("fd.lip", FdLip, Ip, None, Network, "Local IP address."),
    f!("fd.lport", FdLport, Port, None, Network, "Local port."),
    f!("fd.rip", FdRip, Ip, None, Network, "Remote IP address."),
    f!("fd.rport", FdRport, Port, None, Network, "Remote port."),
    f!(
        "fd.sockfamily",
        FdSockfamily,
        String,
        None,
        Network,
        "ip or unix."
    ),
    f!(
        "fd.ip",
        FdIp,
        Ip,
        None,
        Network,
        "Matches the client or the server IP (filter only)."
    ),
    f!(
        "fd.port",
        FdPort,
        Port,
        None,
        Network,
        "Matches the client or the server port (filter only)."
    ),
    f!(
        "fd.net",
        FdNet,
        IpNet,
        None,
        Network,
        "Client or server IP inside a CIDR (filter only)."
    ),
    f!(
        "fd.snet",
        FdSnet,
        IpNet,
        None,
        Network,
        "Server IP inside a CIDR (filter only)."
    ),
    f!(
        "fd.cnet",
        FdCnet,
        IpNet,
        None,
        Network,
        "Client IP inside a CIDR (filter only)."
    ),
    f!(
        "fd.rnet",
        FdRnet,
        IpNet,
        None,
        Network,
        "Remote IP inside a CIDR (filter only)."
    ),
    f!(
        "fd.lnet",
        FdLnet,
        IpNet,
        None,
        Network,
        "Local IP inside a CIDR (filter only)."
    ),
    f!(
        "fd.connected",
        FdConnected,
        Bool,
        None,
        Network,
        "The socket has a peer (connect and accept events)."
    ),
    f!(
        "ecs.cluster",
        EcsCluster,
        String,
        None,
        Ecs,
        "ECS cluster ARN."
    ),
    f!(
        "ecs.task_arn",
        EcsTaskArn,
        String,
        None,
        Ecs,
        "ECS task ARN."
    ),
    f!("ecs.task_id", EcsTaskId, String, None, Ecs, "ECS task id."),
    f!(
        "ecs.family",
        EcsFamily,
        String,
        None,
        Ecs,
        "Task definition family."
    ),
    f!(
        "ecs.revision",
        EcsRevision,
        String,
        None,
        Ecs,
        "Task definition revision."
    ),
    f!(
        "ecs.availability_zone",
        EcsAvailabilityZone,
        String,
        None,
        Ecs,
        "Availability zone."
    ),
    f!(
        "ecs.launch_type",
        EcsLaunchType,
        String,
        None,
        Ecs,
        "Launch type (FARGATE)."
    ),
    f!(
        "ecs.container_arn",
        EcsContainerArn,
        String,
        None,
        Ecs,
        "ECS container ARN."
    ),
    f!(
        "tasksentry.kind",
        TsKind,
        String,
        None,
        Internal,
        "Kind of internal event (processes_missed, inotify_overflow, ...)."
    ),
    f!(
        "tasksentry.message",
        TsMessage,
        String,
        None,
        Internal,
        "Human-readable description of an internal event."
    ),
    f!(
        "tasksentry.count",
        TsCount,
        Int,
        None,
        Internal,
        "Count attached to an internal event."
    ),
];

/// The name of a catalogue row (the first, for ids with aliases).
pub fn name_of(id: FieldId) -> Option<&'static str> {
    CATALOGUE
        .iter()
        .find(|def| def.id == id)
        .map(|def| def.name)
}

/// Every field TaskSentry provides.
pub fn catalogue() -> &'static [FieldDef] {
    CATALOGUE
}

/// Falco fields used by the Falco rule files that TaskSentry does not provide. A rule whose
/// condition uses one is skipped (an error in strict mode); in outputs they render as `<NA>`.
/// Entries ending in `*` are prefixes.
pub const UNPROVIDED_FIELDS: &[&str] = &[
    "k8s.*",
    "k8smeta.*",
    "container.mount*",
    "container.label*",
    "container.info",
    "container.image.id",
    "container.type",
    "container.healthcheck",
    "container.liveness_probe",
    "container.readiness_probe",
    "fd.types",
    "fd.nameraw",
    "fd.name_changed",
    "fd.sip.name",
    "fd.cip.name",
    "fd.rip.name",
    "fd.lip.name",
    "fd.ino",
    "fd.dev",
    "fd.uid",
    "fd.containername",
    "fd.containerdirectory",
    "fd.is_server",
    "evt.buffer",
    "evt.hostname",
    "evt.is_open_exec",
    "evt.args",
    "evt.arg",
    "evt.rawarg.*",
    "evt.category",
    "evt.latency",
    "evt.cpu",
    "evt.info",
    "evt.failed",
    "proc.is_exe_upper_layer",
    "proc.is_exe_writable",
    "proc.is_exe_lower_layer",
    "proc.is_sid_leader",
    "proc.vpgid.name",
    "proc.vpgid.exe",
    "proc.vpgid.exepath",
    "proc.ppid.duration",
    "proc.pid.ts",
    "proc.ppid.ts",
    "proc.exe_ino",
    "proc.fdopencount",
    "proc.nthreads",
    "proc.aenv",
    "proc.loginshellid",
    "proc.is_container_healthcheck",
    "proc.is_container_liveness_probe",
    "proc.is_container_readiness_probe",
    "thread.tid",
    "thread.vtid",
    "fs.path.*",
    "user.loginuid.name",
];

/// Looks a field name up in the catalogue (`evt.arg.NAME` resolves to the `evt.arg.*` row).
pub fn lookup(name: &str) -> Option<&'static FieldDef> {
    if let Some(rest) = name.strip_prefix("evt.arg.")
        && !rest.is_empty()
    {
        return CATALOGUE.iter().find(|f| f.id == FieldId::EvtArg);
    }
    CATALOGUE.iter().find(|f| f.name == name)
}

/// Whether `name` is a Falco field TaskSentry knows of but does not provide.
pub fn is_unprovided(name: &str) -> bool {
    UNPROVIDED_FIELDS
        .iter()
        .any(|entry| match entry.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => *entry == name,
        })
}

/// A field argument after resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldArg {
    /// No argument.
    None,
    /// `[N]`.
    Index(usize),
    /// `[KEY]` (also the argument name of `evt.arg.NAME`).
    Key(Box<str>),
}

/// An extracted value.
#[derive(Debug, Clone, PartialEq)]
pub enum Val<'a> {
    /// Text (borrowed from the event when possible).
    Str(Cow<'a, str>),
    /// A number (integers, ports, times).
    Int(i64),
    /// A boolean.
    Bool(bool),
    /// An IP address.
    Ip(IpAddr),
}

impl Val<'_> {
    /// Renders the value as output text.
    pub fn to_text(&self) -> String {
        match self {
            Val::Str(s) => s.to_string(),
            Val::Int(n) => n.to_string(),
            Val::Bool(b) => b.to_string(),
            Val::Ip(ip) => ip.to_string(),
        }
    }

    /// The value as typed JSON.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Val::Str(s) => serde_json::Value::String(s.to_string()),
            Val::Int(n) => serde_json::Value::from(*n),
            Val::Bool(b) => serde_json::Value::Bool(*b),
            Val::Ip(ip) => serde_json::Value::String(ip.to_string()),
        }
    }
}

/// A resolved field reference: what to extract and with which argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRef {
    /// The catalogue row.
    pub id: FieldId,
    /// The argument.
    pub arg: FieldArg,
    /// Value type.
    pub ty: FieldType,
}

impl FieldRef {
    /// Whether, in a condition, the reference stands for "any of several values" (ancestor
    /// fields without an index).
    pub fn is_any_ancestor(&self) -> bool {
        matches!(
            self.id,
            FieldId::ProcAname
                | FieldId::ProcApid
                | FieldId::ProcAexe
                | FieldId::ProcAexepath
                | FieldId::ProcAcmdline
        ) && self.arg == FieldArg::None
    }

    /// For fields that match either end of a connection (`fd.ip`, `fd.port`, `fd.net`), the
    /// two concrete fields; a check is true if it holds for either.
    pub fn either_pair(&self) -> Option<(FieldId, FieldId)> {
        match self.id {
            FieldId::FdIp | FieldId::FdNet => Some((FieldId::FdCip, FieldId::FdSip)),
            FieldId::FdPort => Some((FieldId::FdCport, FieldId::FdSport)),
            _ => None,
        }
    }
}

fn s(value: &str) -> Option<Val<'_>> {
    Some(Val::Str(Cow::Borrowed(value)))
}

fn os(value: &Option<String>) -> Option<Val<'_>> {
    value.as_deref().map(|v| Val::Str(Cow::Borrowed(v)))
}

fn int<T: Into<i64>>(value: T) -> Option<Val<'static>> {
    Some(Val::Int(value.into()))
}

fn time(ts: crate::event::Timestamp) -> Option<Val<'static>> {
    Some(Val::Int(i64::try_from(ts.as_nanos()).unwrap_or(i64::MAX)))
}

/// The Linux capability names by bit number.
const CAP_NAMES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Whether [`decode_caps`] names at least one capability of `mask` (it is not empty).
pub fn has_named_caps(mask: u64) -> bool {
    const KNOWN: u64 = u64::MAX >> (64 - CAP_NAMES.len());
    mask & KNOWN != 0
}

/// Decodes a capability mask into space-separated `CAP_*` names (Falco's rendering).
pub fn decode_caps(mask: u64) -> String {
    let mut out = String::new();
    for (bit, name) in CAP_NAMES.iter().enumerate() {
        if mask & (1u64 << bit) != 0 {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(name);
        }
    }
    out
}

/// Splits an image reference into (repository, tag, digest).
pub fn split_image(image: &str) -> (&str, Option<&str>, Option<&str>) {
    let (rest, digest) = match image.split_once('@') {
        Some((rest, digest)) => (rest, Some(digest)),
        None => (image, None),
    };
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    match rest[last_slash..].rfind(':') {
        Some(colon) => {
            let at = last_slash + colon;
            (&rest[..at], Some(&rest[at + 1..]), digest)
        }
        None => (rest, None, digest),
    }
}

/// `fd.typechar` of a descriptor kind.
fn typechar(kind: FdKind) -> &'static str {
    match kind {
        FdKind::File | FdKind::Tty | FdKind::Device => "f",
        FdKind::Directory => "d",
        FdKind::Ipv4 => "4",
        FdKind::Ipv6 => "6",
        FdKind::Unix => "u",
        FdKind::Pipe => "p",
        FdKind::Socket | FdKind::Anon | FdKind::None => "o",
    }
}

fn is_file_like(kind: Option<FdKind>) -> bool {
    matches!(
        kind,
        None | Some(FdKind::File | FdKind::Directory | FdKind::Tty | FdKind::Device)
    )
}

/// Directory part of a path, Falco style (`/etc/passwd` → `/etc`, `/x` → `/`).
pub fn dirname(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) => "/",
        Some(i) => &path[..i],
        None => path,
    }
}

/// File-name part of a path (`/etc/passwd` → `passwd`, `/etc/` → ``).
pub fn basename(path: &str) -> &str {
    match path.rfind('/') {
        Some(i) => &path[i + 1..],
        None => path,
    }
}

fn ancestor(p: &Process, index: usize) -> Option<&Ancestor> {
    index.checked_sub(1).and_then(|i| p.ancestors.get(i))
}

fn ancestor_value<'a>(id: FieldId, a: &'a Ancestor) -> Option<Val<'a>> {
    match id {
        FieldId::ProcAname => s(&a.name),
        FieldId::ProcApid => int(a.pid),
        FieldId::ProcAexe => os(&a.exe),
        FieldId::ProcAexepath => os(&a.exepath),
        FieldId::ProcAcmdline => Some(Val::Str(Cow::Owned(crate::event::join_cmdline(
            &a.name, &a.args,
        )))),
        _ => None,
    }
}

fn self_as_ancestor_value(id: FieldId, p: &Process) -> Option<Val<'_>> {
    match id {
        FieldId::ProcAname => s(&p.name),
        FieldId::ProcApid => int(p.pid),
        FieldId::ProcAexe => os(&p.exe),
        FieldId::ProcAexepath => os(&p.exepath),
        FieldId::ProcAcmdline => Some(Val::Str(Cow::Owned(p.cmdline()))),
        _ => None,
    }
}

/// Calls `f` for each value of a multi-valued reference (ancestors without an index) and
/// returns whether `f` returned true for any of them.
pub fn any_ancestor(
    field: &FieldRef,
    event: &Event,
    f: &mut dyn FnMut(Option<Val<'_>>) -> bool,
) -> bool {
    let Some(p) = event.proc.as_ref() else {
        return false;
    };
    p.ancestors.iter().any(|a| f(ancestor_value(field.id, a)))
}

/// `evt.dir` of every event: TaskSentry reports completed calls (Falco's exit direction).
pub const EVT_DIR: &str = "<";

/// Extracts a field's value from an event; `None` when the event does not provide it.
pub fn extract<'a>(field: &FieldRef, ev: &'a Event) -> Option<Val<'a>> {
    use FieldId as F;
    let p = ev.proc.as_ref();
    let fd = ev.fd.as_ref();
    let ecs = ev.container.as_ref().and_then(|c| c.ecs.as_ref());
    match field.id {
        F::EvtType => s(ev.evt.evt_type.as_str()),
        F::EvtTime => time(ev.evt.time),
        F::EvtNum => Some(Val::Int(i64::try_from(ev.evt.num).unwrap_or(i64::MAX))),
        F::EvtRes => s("SUCCESS"),
        F::EvtRawres => int(0),
        F::EvtDir => s(EVT_DIR),
        F::EvtIsOpenRead => fd.and_then(|f| f.open_read).map(Val::Bool),
        F::EvtIsOpenWrite => fd.and_then(|f| f.open_write).map(Val::Bool),
        F::EvtArg => {
            let FieldArg::Key(name) = &field.arg else {
                return None;
            };
            if let Some(v) = ev.evt.arg(name) {
                return s(v);
            }
            match &**name {
                "oldpath" => fd.and_then(|f| os(&f.oldname)),
                "newpath" if fd.is_some_and(|f| f.oldname.is_some()) => {
                    fd.and_then(|f| os(&f.name))
                }
                _ => None,
            }
        }
        F::EvtSource => s("syscall"),
        F::ProcPid | F::ProcVpid => p.and_then(|p| int(p.pid)),
        F::ProcPpid => p.and_then(|p| int(p.ppid)),
        F::ProcName => p.and_then(|p| s(&p.name)),
        F::ProcExe => p.and_then(|p| os(&p.exe)),
        F::ProcExepath => p.and_then(|p| os(&p.exepath)),
        F::ProcCmdline => p.map(|p| Val::Str(Cow::Owned(p.cmdline()))),
        F::ProcArgs => p.and_then(|p| match &field.arg {
            FieldArg::Index(i) => p.args.get(*i).map(|a| Val::Str(Cow::Borrowed(a))),
            _ => match p.args.as_slice() {
                [] => s(""),
                [one] => s(one),
                _ => Some(Val::Str(Cow::Owned(p.args_joined()))),
            },
        }),
        F::ProcCwd => p.and_then(|p| os(&p.cwd)),
        F::ProcTty => p.and_then(|p| p.tty).and_then(int),
        F::ProcSid => p.and_then(|p| p.sid).and_then(int),
        F::ProcVpgid => p.and_then(|p| p.pgid).and_then(int),
        F::ProcIsVpgidLeader => p.and_then(|p| p.pgid.map(|g| Val::Bool(g == p.pid))),
        F::ProcSname => p.and_then(|p| {
            let sid = p.sid?;
            if sid == p.pid {
                return s(&p.name);
            }
            p.ancestors
                .iter()
                .find(|a| a.pid == sid)
                .map(|a| Val::Str(Cow::Borrowed(&a.name)))
        }),
        F::ProcPname => p.and_then(|p| ancestor(p, 1)).and_then(|a| s(&a.name)),
        F::ProcPcmdline => p
            .and_then(|p| ancestor(p, 1))
            .map(|a| Val::Str(Cow::Owned(crate::event::join_cmdline(&a.name, &a.args)))),
        F::ProcPexe => p.and_then(|p| ancestor(p, 1)).and_then(|a| os(&a.exe)),
        F::ProcPexepath => p.and_then(|p| ancestor(p, 1)).and_then(|a| os(&a.exepath)),
        F::ProcAname | F::ProcApid | F::ProcAexe | F::ProcAexepath | F::ProcAcmdline => {
            let p = p?;
            match &field.arg {
                FieldArg::Index(0) => self_as_ancestor_value(field.id, p),
                FieldArg::Index(i) => ancestor(p, *i).and_then(|a| ancestor_value(field.id, a)),
                _ => {
                    // Output form without an index: every ancestor, space separated (for
                    // proc.apid, the parent's pid, as Falco prints it).
                    if field.id == F::ProcApid {
                        return ancestor(p, 1).and_then(|a| int(a.pid));
                    }
                    if p.ancestors.is_empty() {
                        return None;
                    }
                    let parts: Vec<String> = p
                        .ancestors
                        .iter()
                        .filter_map(|a| ancestor_value(field.id, a).map(|v| v.to_text()))
                        .collect();
                    Some(Val::Str(Cow::Owned(parts.join(" "))))
                }
            }
        }
        F::ProcEnv => p.and_then(|p| match &field.arg {
            FieldArg::Key(k) => p.env_var(k).map(|v| Val::Str(Cow::Borrowed(v))),
            _ => {
                let parts: Vec<String> = p.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
                Some(Val::Str(Cow::Owned(parts.join(" "))))
            }
        }),
        F::ProcDuration => p.and_then(|p| p.start_time).map(|start| {
            Val::Int(
                i64::try_from(ev.evt.time.as_nanos().saturating_sub(start.as_nanos()))
                    .unwrap_or(i64::MAX),
            )
        }),
        F::ProcStartTs => p.and_then(|p| p.start_time).and_then(time),
        F::ProcIsExeFromMemfd => p.map(|p| Val::Bool(p.exe_from_memfd)),
        F::ProcIsExeDeleted => p.map(|p| Val::Bool(p.exe_deleted)),
        F::ProcExeInoCtime => p.and_then(|p| p.exe_ctime).and_then(time),
        F::ProcExeInoMtime => p.and_then(|p| p.exe_mtime).and_then(time),
        F::ProcExeInoCtimeDurationProcStart => p.and_then(|p| {
            let start = p.start_time?.as_nanos();
            let ctime = p.exe_ctime?.as_nanos();
            Some(Val::Int(
                i64::try_from(start.saturating_sub(ctime)).unwrap_or(i64::MAX),
            ))
        }),
        F::ProcExeWrittenAfterStart => p.and_then(|p| p.exe_written_after_start).map(Val::Bool),
        F::ProcTracerPid => p.and_then(|p| p.tracer_pid).and_then(int),
        F::ProcStdinType => p
            .and_then(|p| p.stdin.as_ref())
            .and_then(|f| s(f.kind.as_str())),
        F::ProcStdoutType => p
            .and_then(|p| p.stdout.as_ref())
            .and_then(|f| s(f.kind.as_str())),
        F::ProcStderrType => p
            .and_then(|p| p.stderr.as_ref())
            .and_then(|f| s(f.kind.as_str())),
        F::ThreadCapEffective => p
            .and_then(|p| p.cap_effective)
            .map(|m| Val::Str(Cow::Owned(decode_caps(m)))),
        F::ThreadCapPermitted => p
            .and_then(|p| p.cap_permitted)
            .map(|m| Val::Str(Cow::Owned(decode_caps(m)))),
        F::ThreadCapInheritable => p
            .and_then(|p| p.cap_inheritable)
            .map(|m| Val::Str(Cow::Owned(decode_caps(m)))),
        F::UserUid => p.and_then(|p| p.euid).and_then(int),
        F::UserName => p.and_then(|p| os(&p.user)),
        F::UserHomedir => p.and_then(|p| os(&p.user_home)),
        F::UserShell => p.and_then(|p| os(&p.user_shell)),
        F::UserLoginuid => p.and_then(|p| p.loginuid).and_then(int),
        F::UserLoginname => p.and_then(|p| {
            let login = p.loginuid?;
            if p.euid.map(i64::from) == Some(login) {
                os(&p.user)
            } else {
                None
            }
        }),
        F::GroupGid => p.and_then(|p| p.egid).and_then(int),
        F::GroupName => p.and_then(|p| os(&p.group)),
        F::ContainerId => match ev.container.as_ref() {
            Some(c) => s(&c.id),
            None => s("host"),
        },
        F::ContainerName => match ev.container.as_ref() {
            Some(c) if c.id == "host" => s("host"),
            Some(c) => os(&c.name),
            None => s("host"),
        },
        F::ContainerImage => ev.container.as_ref().and_then(|c| os(&c.image)),
        F::ContainerImageRepository => ev
            .container
            .as_ref()
            .and_then(|c| c.image.as_deref())
            .map(|i| Val::Str(Cow::Borrowed(split_image(i).0))),
        F::ContainerImageTag => ev
            .container
            .as_ref()
            .and_then(|c| c.image.as_deref())
            .and_then(|i| split_image(i).1)
            .map(|t| Val::Str(Cow::Borrowed(t))),
        F::ContainerImageDigest => ev.container.as_ref().and_then(|c| {
            c.image_digest
                .as_deref()
                .or_else(|| c.image.as_deref().and_then(|i| split_image(i).2))
                .map(|d| Val::Str(Cow::Borrowed(d)))
        }),
        F::ContainerStartTs => ev
            .container
            .as_ref()
            .and_then(|c| c.start_time)
            .and_then(time),
        F::ContainerPrivileged => Some(Val::Bool(false)),
        F::FdNum => fd.and_then(|f| f.num).map(Val::Int),
        F::FdType => fd
            .and_then(|f| f.kind)
            .map(|k| Val::Str(Cow::Borrowed(k.as_str()))),
        F::FdTypechar => fd
            .and_then(|f| f.kind)
            .map(|k| Val::Str(Cow::Borrowed(typechar(k)))),
        F::FdName => fd.and_then(|f| os(&f.name)),
        F::FdDirectory => fd
            .filter(|f| is_file_like(f.kind))
            .and_then(|f| f.name.as_deref())
            .map(|n| Val::Str(Cow::Borrowed(dirname(n)))),
        F::FdFilename => fd
            .filter(|f| is_file_like(f.kind))
            .and_then(|f| f.name.as_deref())
            .map(|n| Val::Str(Cow::Borrowed(basename(n)))),
        F::FdL4proto => fd.and_then(|f| os(&f.l4proto)),
        F::FdSip | F::FdSnet => fd.and_then(|f| f.sip).map(Val::Ip),
        F::FdCip | F::FdCnet => fd.and_then(|f| f.cip).map(Val::Ip),
        F::FdSport => fd.and_then(|f| f.sport).and_then(int),
        F::FdCport => fd.and_then(|f| f.cport).and_then(int),
        F::FdLip | F::FdLnet => fd
            .and_then(|f| if f.local_is_client? { f.cip } else { f.sip })
            .map(Val::Ip),
        F::FdRip | F::FdRnet => fd
            .and_then(|f| if f.local_is_client? { f.sip } else { f.cip })
            .map(Val::Ip),
        F::FdLport => fd
            .and_then(|f| if f.local_is_client? { f.cport } else { f.sport })
            .and_then(int),
        F::FdRport => fd
            .and_then(|f| if f.local_is_client? { f.sport } else { f.cport })
            .and_then(int),
        F::FdSockfamily => fd.and_then(|f| f.kind).and_then(|k| match k {
            FdKind::Ipv4 | FdKind::Ipv6 => s("ip"),
            FdKind::Unix => s("unix"),
            _ => None,
        }),
        F::FdIp | F::FdNet | F::FdPort => None,
        F::FdConnected => fd.and_then(|f| {
            if !f.kind?.is_ip_socket() && f.kind != Some(FdKind::Unix) {
                return None;
            }
            Some(Val::Bool(match ev.evt.evt_type {
                crate::event::EventType::Connect | crate::event::EventType::Accept => true,
                crate::event::EventType::Listen => false,
                _ => f.cip.is_some() && f.sip.is_some() && f.cport.is_some(),
            }))
        }),
        F::EcsCluster => ecs.and_then(|e| os(&e.cluster)),
        F::EcsTaskArn => ecs.and_then(|e| os(&e.task_arn)),
        F::EcsTaskId => ecs.and_then(|e| os(&e.task_id)),
        F::EcsFamily => ecs.and_then(|e| os(&e.family)),
        F::EcsRevision => ecs.and_then(|e| os(&e.revision)),
        F::EcsAvailabilityZone => ecs.and_then(|e| os(&e.availability_zone)),
        F::EcsLaunchType => ecs.and_then(|e| os(&e.launch_type)),
        F::EcsContainerArn => ecs.and_then(|e| os(&e.container_arn)),
        F::TsKind => ev.internal.as_ref().and_then(|i| s(&i.kind)),
        F::TsMessage => ev.internal.as_ref().and_then(|i| s(&i.message)),
        F::TsCount => ev
            .internal
            .as_ref()
            .and_then(|i| i.count)
            .map(|c| Val::Int(i64::try_from(c).unwrap_or(i64::MAX))),
    }
}

/// Words of the per-event memo bit sets (see [`EvalCtx::memo_get`]).
const MEMO_WORDS: usize = 8;

/// Number of memo slots a context has: sub-conditions given a higher slot number are simply
/// evaluated each time.
pub const MEMO_SLOTS: usize = MEMO_WORDS * 64;

/// Per-event evaluation context: the event plus lazily computed values of the fields that
/// need building (command lines, capability names, the environment, where `fd.name`'s last
/// `/` is), so that each is built at most once per event however many rules test it, and the
/// results of shared sub-conditions ([`super::eval::Node::Memo`]).
pub struct EvalCtx<'e> {
    /// The event.
    pub ev: &'e Event,
    cmdline: std::cell::OnceCell<String>,
    args: std::cell::OnceCell<String>,
    pcmdline: std::cell::OnceCell<Option<String>>,
    env: std::cell::OnceCell<String>,
    caps: [std::cell::OnceCell<Option<String>>; 3],
    /// Byte position of the last `/` in `fd.name` (`None` inside: no slash).
    fd_slash: std::cell::OnceCell<Option<usize>>,
    /// Memo slots already computed (one bit each).
    memo_known: [std::cell::Cell<u64>; MEMO_WORDS],
    /// Their results.
    memo_value: [std::cell::Cell<u64>; MEMO_WORDS],
    /// Which needles of a [`super::needles::NeedleIndex`] (identified by its address) occur
    /// in the command line.
    needles: std::cell::OnceCell<(usize, super::needles::NeedleBits)>,
    /// Set while evaluating without caches ([`super::eval::Node::eval_uncached`]).
    bypass: std::cell::Cell<bool>,
}

impl<'e> EvalCtx<'e> {
    /// A context for one event.
    pub fn new(ev: &'e Event) -> EvalCtx<'e> {
        EvalCtx {
            ev,
            cmdline: std::cell::OnceCell::new(),
            args: std::cell::OnceCell::new(),
            pcmdline: std::cell::OnceCell::new(),
            env: std::cell::OnceCell::new(),
            caps: Default::default(),
            fd_slash: std::cell::OnceCell::new(),
            memo_known: Default::default(),
            memo_value: Default::default(),
            needles: std::cell::OnceCell::new(),
            bypass: std::cell::Cell::new(false),
        }
    }

    /// The needles of `index` that occur in the command line: `scan` runs once per event
    /// (and again only if a second index is used with the same context).
    #[inline]
    pub fn cmdline_needles(
        &self,
        index: &super::needles::NeedleIndex,
        scan: impl Fn() -> super::needles::NeedleBits,
    ) -> super::needles::NeedleBits {
        let id = std::ptr::from_ref(index) as usize;
        let (owner, hits) = *self.needles.get_or_init(|| (id, scan()));
        if owner == id { hits } else { scan() }
    }

    /// Whether caches are bypassed (the reference evaluation); returns the previous setting.
    pub fn set_bypass(&self, on: bool) -> bool {
        self.bypass.replace(on)
    }

    /// Whether caches are bypassed.
    #[inline]
    pub fn bypass(&self) -> bool {
        self.bypass.get()
    }

    /// The remembered result of the sub-condition in memo `slot` for this event, if it was
    /// computed (by [`EvalCtx::memo_set`]). Conditions are pure functions of the event, so
    /// every rule sharing the slot gets the same answer it would have computed itself.
    #[inline]
    pub fn memo_get(&self, slot: u32) -> Option<bool> {
        let word = (slot / 64) as usize;
        let bit = 1u64 << (slot % 64);
        let known = self.memo_known.get(word)?;
        if known.get() & bit == 0 {
            return None;
        }
        Some(
            self.memo_value
                .get(word)
                .is_some_and(|v| v.get() & bit != 0),
        )
    }

    /// Remembers the result of memo `slot` (slots past [`MEMO_SLOTS`] are not remembered).
    #[inline]
    pub fn memo_set(&self, slot: u32, result: bool) {
        let word = (slot / 64) as usize;
        let bit = 1u64 << (slot % 64);
        let (Some(known), Some(value)) = (self.memo_known.get(word), self.memo_value.get(word))
        else {
            return;
        };
        known.set(known.get() | bit);
        if result {
            value.set(value.get() | bit);
        }
    }

    /// `fd.name` of a file-like descriptor, with the position of its last `/` (found once per
    /// event: `fd.directory` and `fd.filename` are tested by many rules).
    fn fd_path(&self) -> Option<(&'e str, Option<usize>)> {
        let name = self
            .ev
            .fd
            .as_ref()
            .filter(|f| is_file_like(f.kind))
            .and_then(|f| f.name.as_deref())?;
        let slash = *self
            .fd_slash
            .get_or_init(|| name.bytes().rposition(|b| b == b'/'));
        Some((name, slash))
    }
}

/// Extracts a field through the per-event cache.
pub fn extract_ctx<'c>(field: &FieldRef, cx: &'c EvalCtx<'_>) -> Option<Val<'c>> {
    let p = cx.ev.proc.as_ref();
    let cached = |cell: &'c std::cell::OnceCell<String>, f: &dyn Fn(&Process) -> String| {
        p.map(|p| Val::Str(Cow::Borrowed(cell.get_or_init(|| f(p)).as_str())))
    };
    match (field.id, &field.arg) {
        (FieldId::ProcCmdline, _) => cached(&cx.cmdline, &|p| p.cmdline()),
        (FieldId::ProcArgs, FieldArg::None) if p.is_some_and(|p| p.args.len() > 1) => {
            cached(&cx.args, &|p| p.args_joined())
        }
        // An empty environment (the usual case for the processes a workload starts with a
        // clean environment, and whenever it could not be read) needs no string built.
        (FieldId::ProcEnv, FieldArg::None) if p.is_some_and(|p| p.env.is_empty()) => {
            Some(Val::Str(Cow::Borrowed("")))
        }
        (FieldId::ProcEnv, FieldArg::None) => cached(&cx.env, &|p| {
            let parts: Vec<String> = p.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
            parts.join(" ")
        }),
        (FieldId::ProcPcmdline, _) => cx
            .pcmdline
            .get_or_init(|| {
                p.and_then(|p| ancestor(p, 1))
                    .map(|a| crate::event::join_cmdline(&a.name, &a.args))
            })
            .as_deref()
            .map(|s| Val::Str(Cow::Borrowed(s))),
        (
            FieldId::ThreadCapEffective
            | FieldId::ThreadCapPermitted
            | FieldId::ThreadCapInheritable,
            _,
        ) => {
            let (i, mask) = match field.id {
                FieldId::ThreadCapEffective => (0, p.and_then(|p| p.cap_effective)),
                FieldId::ThreadCapPermitted => (1, p.and_then(|p| p.cap_permitted)),
                _ => (2, p.and_then(|p| p.cap_inheritable)),
            };
            cx.caps[i]
                .get_or_init(|| mask.map(decode_caps))
                .as_deref()
                .map(|s| Val::Str(Cow::Borrowed(s)))
        }
        _ => extract(field, cx.ev),
    }
}

/// A direct accessor for a string field that can be borrowed from the event (or the per-event
/// cache): the evaluator's fast path, with no `Val` wrapping.
pub type StrAccessor = for<'c, 'e> fn(&'c EvalCtx<'e>) -> Option<&'c str>;

fn proc_of<'c>(cx: &'c EvalCtx<'_>) -> Option<&'c Process> {
    cx.ev.proc.as_deref()
}

/// The fast accessor for a field, when it has one (string fields without argument that are
/// stored as such in the event).
pub fn str_accessor(field: &FieldRef) -> Option<StrAccessor> {
    use FieldId as F;
    if field.arg != FieldArg::None {
        return None;
    }
    Some(match field.id {
        F::ProcName => |cx| proc_of(cx).map(|p| p.name.as_str()),
        F::ProcExe => |cx| proc_of(cx).and_then(|p| p.exe.as_deref()),
        F::ProcExepath => |cx| proc_of(cx).and_then(|p| p.exepath.as_deref()),
        F::ProcCwd => |cx| proc_of(cx).and_then(|p| p.cwd.as_deref()),
        F::ProcPname => |cx| {
            proc_of(cx)
                .and_then(|p| p.ancestors.first())
                .map(|a| a.name.as_str())
        },
        F::ProcPexe => |cx| {
            proc_of(cx)
                .and_then(|p| p.ancestors.first())
                .and_then(|a| a.exe.as_deref())
        },
        F::ProcPexepath => |cx| {
            proc_of(cx)
                .and_then(|p| p.ancestors.first())
                .and_then(|a| a.exepath.as_deref())
        },
        F::ProcCmdline => |cx| proc_of(cx).map(|p| cx.cmdline.get_or_init(|| p.cmdline()).as_str()),
        F::UserName => |cx| proc_of(cx).and_then(|p| p.user.as_deref()),
        F::GroupName => |cx| proc_of(cx).and_then(|p| p.group.as_deref()),
        F::ContainerId => |cx| Some(cx.ev.container.as_ref().map_or("host", |c| c.id.as_str())),
        F::ContainerImage => |cx| cx.ev.container.as_ref().and_then(|c| c.image.as_deref()),
        F::ContainerImageRepository => |cx| {
            cx.ev
                .container
                .as_ref()
                .and_then(|c| c.image.as_deref())
                .map(|i| split_image(i).0)
        },
        F::FdName => |cx| cx.ev.fd.as_ref().and_then(|f| f.name.as_deref()),
        // Same results as `dirname`/`basename` (a `/` byte is always a char boundary).
        F::FdDirectory => |cx| {
            cx.fd_path().map(|(name, slash)| match slash {
                Some(0) => "/",
                Some(i) => name.get(..i).unwrap_or_else(|| dirname(name)),
                None => name,
            })
        },
        F::FdFilename => |cx| {
            cx.fd_path().map(|(name, slash)| match slash {
                Some(i) => name.get(i + 1..).unwrap_or_else(|| basename(name)),
                None => name,
            })
        },
        F::FdL4proto => |cx| cx.ev.fd.as_ref().and_then(|f| f.l4proto.as_deref()),
        _ => return None,
    })
}

/// A direct accessor for a number or boolean field: the evaluator's fast path for those, with
/// no `Val` built and no dispatch through [`extract_ctx`] and [`extract`]. Each returns
/// exactly what [`extract`] returns for the field (a test checks every one).
#[derive(Clone, Copy)]
pub enum DirectAccessor {
    /// An integer field.
    Int(for<'c, 'e> fn(&'c EvalCtx<'e>) -> Option<i64>),
    /// A boolean field.
    Bool(for<'c, 'e> fn(&'c EvalCtx<'e>) -> Option<bool>),
    /// A string field read by [`direct_str`].
    Str,
}

impl std::fmt::Debug for DirectAccessor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The accessor follows from the field, which is printed next to it.
        f.write_str(match self {
            DirectAccessor::Int(_) => "Int",
            DirectAccessor::Bool(_) => "Bool",
            DirectAccessor::Str => "Str",
        })
    }
}

/// The fast accessor for a number or boolean field without argument, when it has one (the
/// process fields rules test most: ids, terminal, user, executable flags), or for a string
/// field that [`direct_str`] reads.
pub fn direct_accessor(field: &FieldRef) -> Option<DirectAccessor> {
    use DirectAccessor::{Bool, Int};
    use FieldId as F;
    match (field.id, &field.arg) {
        (F::ProcEnv, FieldArg::Key(_))
        | (F::ProcAname, FieldArg::Index(_))
        | (F::FdTypechar, FieldArg::None) => {
            return Some(DirectAccessor::Str);
        }
        (_, FieldArg::None) => {}
        _ => return None,
    }
    Some(match field.id {
        F::ProcPid | F::ProcVpid => Int(|cx| proc_of(cx).map(|p| i64::from(p.pid))),
        F::ProcPpid => Int(|cx| proc_of(cx).map(|p| i64::from(p.ppid))),
        F::ProcTty => Int(|cx| proc_of(cx).and_then(|p| p.tty).map(i64::from)),
        F::ProcSid => Int(|cx| proc_of(cx).and_then(|p| p.sid).map(i64::from)),
        F::ProcVpgid => Int(|cx| proc_of(cx).and_then(|p| p.pgid).map(i64::from)),
        F::ProcTracerPid => Int(|cx| proc_of(cx).and_then(|p| p.tracer_pid).map(i64::from)),
        F::UserUid => Int(|cx| proc_of(cx).and_then(|p| p.euid).map(i64::from)),
        F::UserLoginuid => Int(|cx| proc_of(cx).and_then(|p| p.loginuid)),
        F::GroupGid => Int(|cx| proc_of(cx).and_then(|p| p.egid).map(i64::from)),
        F::ProcIsExeFromMemfd => Bool(|cx| proc_of(cx).map(|p| p.exe_from_memfd)),
        F::ProcIsExeDeleted => Bool(|cx| proc_of(cx).map(|p| p.exe_deleted)),
        F::ProcExeWrittenAfterStart => {
            Bool(|cx| proc_of(cx).and_then(|p| p.exe_written_after_start))
        }
        F::ProcIsVpgidLeader => Bool(|cx| proc_of(cx).and_then(|p| p.pgid.map(|g| g == p.pid))),
        F::EvtIsOpenRead => Bool(|cx| cx.ev.fd.as_ref().and_then(|f| f.open_read)),
        F::EvtIsOpenWrite => Bool(|cx| cx.ev.fd.as_ref().and_then(|f| f.open_write)),
        _ => return None,
    })
}

/// The value of a string field that is not a plain [`str_accessor`] field: `proc.env[NAME]`,
/// `proc.aname[N]` (`N` = 0 is the process itself) and `fd.typechar` (which is kept out of
/// [`str_accessor`] so that it does not become a rule key for the candidate index). `None`
/// for every other field; `Some(None)` when the event lacks the value. The same as [`extract`], without
/// its dispatch (a test checks it).
#[inline]
pub fn direct_str<'c>(field: &FieldRef, cx: &'c EvalCtx<'_>) -> Option<Option<&'c str>> {
    match (field.id, &field.arg) {
        (FieldId::ProcEnv, FieldArg::Key(k)) => Some(proc_of(cx).and_then(|p| p.env_var(k))),
        (FieldId::ProcAname, FieldArg::Index(0)) => Some(proc_of(cx).map(|p| p.name.as_str())),
        (FieldId::ProcAname, FieldArg::Index(i)) => Some(
            proc_of(cx)
                .and_then(|p| ancestor(p, *i))
                .map(|a| a.name.as_str()),
        ),
        (FieldId::FdTypechar, FieldArg::None) => {
            Some(cx.ev.fd.as_ref().and_then(|f| f.kind).map(typechar))
        }
        _ => None,
    }
}

/// Extracts a field for output rendering: like [`extract`], with the "either end" fields
/// rendered as the server side (Falco prints `fd.ip`/`fd.port` that way).
pub fn extract_for_output<'a>(field: &FieldRef, ev: &'a Event) -> Option<Val<'a>> {
    if let Some((_, server)) = field.either_pair() {
        let server = FieldRef {
            id: server,
            arg: FieldArg::None,
            ty: field.ty,
        };
        return extract(&server, ev);
    }
    extract(field, ev)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_decode_in_bit_order() {
        assert_eq!(decode_caps(0), "");
        assert_eq!(decode_caps((1 << 21) | 1), "CAP_CHOWN CAP_SYS_ADMIN");
    }

    #[test]
    fn image_split() {
        assert_eq!(
            split_image("public.ecr.aws/nginx/nginx:1.27@sha256:ab"),
            (
                "public.ecr.aws/nginx/nginx",
                Some("1.27"),
                Some("sha256:ab")
            )
        );
        assert_eq!(
            split_image("localhost:5000/app"),
            ("localhost:5000/app", None, None)
        );
    }

    #[test]
    fn every_catalogue_name_resolves_to_itself() {
        for def in catalogue() {
            if def.name == "evt.arg.*" {
                continue;
            }
            assert_eq!(lookup(def.name).map(|d| d.id), Some(def.id), "{}", def.name);
            assert!(
                !is_unprovided(def.name),
                "{} both provided and unprovided",
                def.name
            );
        }
    }

    /// Every direct accessor returns what `extract` returns, on events with and without a
    /// process or descriptor and with every optional value present or absent.
    #[test]
    fn direct_accessors_agree_with_extract() {
        use crate::event::{Collector, Event, EventType, Fd, Process};
        let full = Process {
            pid: 42,
            ppid: -1,
            tty: Some(u32::MAX),
            sid: Some(42),
            pgid: Some(42),
            tracer_pid: Some(7),
            euid: Some(u32::MAX),
            loginuid: Some(-1),
            egid: Some(0),
            exe_from_memfd: true,
            exe_deleted: true,
            exe_written_after_start: Some(false),
            ..Process::default()
        };
        let other_group = Process {
            pgid: Some(41),
            exe_written_after_start: Some(true),
            ..full.clone()
        };
        let mut events = Vec::new();
        for proc in [
            None,
            Some(Process::default()),
            Some(full),
            Some(other_group),
        ] {
            for fd in [
                None,
                Some(Fd::default()),
                Some(Fd {
                    open_read: Some(true),
                    open_write: Some(false),
                    ..Fd::default()
                }),
            ] {
                let mut ev = Event::new(EventType::Open, Collector::Fswatch);
                ev.proc = proc.clone().map(Box::new);
                ev.fd = fd.map(Box::new);
                events.push(ev);
            }
        }
        let mut with_accessor = 0;
        for def in catalogue() {
            let field = FieldRef {
                id: def.id,
                arg: FieldArg::None,
                ty: def.ty,
            };
            let Some(get) = direct_accessor(&field) else {
                continue;
            };
            with_accessor += 1;
            for ev in &events {
                let cx = EvalCtx::new(ev);
                let fast = match get {
                    DirectAccessor::Int(f) => f(&cx).map(Val::Int),
                    DirectAccessor::Bool(f) => f(&cx).map(Val::Bool),
                    DirectAccessor::Str => continue,
                };
                assert_eq!(fast, extract(&field, ev), "{}", def.name);
            }
        }
        assert!(with_accessor >= 14, "{with_accessor}");
    }

    /// Every string accessor (the evaluator's fast path) returns what `extract_ctx` returns,
    /// with and without a process, container and descriptor of each kind.
    #[test]
    fn str_accessors_agree_with_extract_ctx() {
        use crate::event::{Collector, Container, Event, EventType, Fd, Process};
        let mut events = Vec::new();
        let kinds = [
            None,
            Some(FdKind::File),
            Some(FdKind::Directory),
            Some(FdKind::Ipv4),
            Some(FdKind::Unix),
            Some(FdKind::Pipe),
            Some(FdKind::Anon),
        ];
        for with_proc in [false, true] {
            for kind in kinds {
                for name in [None, Some("/etc/shadow"), Some("noslash"), Some("/")] {
                    let mut ev = Event::new(EventType::Open, Collector::Fswatch);
                    if with_proc {
                        ev.proc = Some(Box::new(Process {
                            name: "sh".into(),
                            exe: Some("/bin/sh".into()),
                            args: vec!["-c".into(), "id".into()],
                            user: Some("root".into()),
                            ..Process::default()
                        }));
                        ev.container = Some(Box::new(Container {
                            id: "abc".into(),
                            image: Some("repo/img:1".into()),
                            ..Container::default()
                        }));
                    }
                    ev.fd = Some(Box::new(Fd {
                        kind,
                        name: name.map(String::from),
                        l4proto: Some("tcp".into()),
                        ..Fd::default()
                    }));
                    events.push(ev);
                }
            }
        }
        let mut with_accessor = 0;
        for def in catalogue() {
            let field = FieldRef {
                id: def.id,
                arg: FieldArg::None,
                ty: def.ty,
            };
            let Some(get) = str_accessor(&field) else {
                continue;
            };
            with_accessor += 1;
            for ev in &events {
                let cx = EvalCtx::new(ev);
                let want = extract_ctx(&field, &cx).map(|v| v.to_text());
                assert_eq!(get(&cx).map(String::from), want, "{}", def.name);
            }
        }
        assert!(with_accessor >= 17, "{with_accessor}");
    }

    /// `direct_str` returns what `extract` returns for the fields it covers.
    #[test]
    fn direct_str_agrees_with_extract() {
        use crate::event::{Ancestor, Collector, Event, EventType, Process};
        let anc = |name: &str| Ancestor {
            pid: 1,
            name: name.into(),
            exe: None,
            exepath: None,
            args: Vec::new(),
        };
        let procs = [
            None,
            Some(Process::default()),
            Some(Process {
                name: "worker".into(),
                env: vec![
                    ("LD_PRELOAD".into(), "/x.so".into()),
                    ("EMPTY".into(), String::new()),
                    ("LD_PRELOAD".into(), "second".into()),
                ],
                ancestors: vec![anc("node"), anc(""), anc("tini")],
                ..Process::default()
            }),
        ];
        let fields = [
            (FieldId::ProcEnv, FieldArg::Key("LD_PRELOAD".into())),
            (FieldId::ProcEnv, FieldArg::Key("EMPTY".into())),
            (FieldId::ProcEnv, FieldArg::Key("MISSING".into())),
            (FieldId::ProcAname, FieldArg::Index(0)),
            (FieldId::ProcAname, FieldArg::Index(1)),
            (FieldId::ProcAname, FieldArg::Index(2)),
            (FieldId::ProcAname, FieldArg::Index(3)),
            (FieldId::ProcAname, FieldArg::Index(4)),
        ];
        for proc in procs {
            let mut ev = Event::new(EventType::Execve, Collector::Procscan);
            ev.proc = proc.map(Box::new);
            let cx = EvalCtx::new(&ev);
            for (id, arg) in &fields {
                let field = FieldRef {
                    id: *id,
                    arg: arg.clone(),
                    ty: FieldType::String,
                };
                assert!(matches!(direct_accessor(&field), Some(DirectAccessor::Str)));
                let want = extract(&field, &ev);
                let got = direct_str(&field, &cx).expect("covered");
                assert_eq!(
                    got.map(|s| Val::Str(Cow::Borrowed(s))),
                    want,
                    "{id:?} {arg:?}"
                );
            }
        }
        let other = FieldRef {
            id: FieldId::ProcName,
            arg: FieldArg::None,
            ty: FieldType::String,
        };
        let ev = Event::new(EventType::Execve, Collector::Procscan);
        assert!(direct_str(&other, &EvalCtx::new(&ev)).is_none());
        let typechar = FieldRef {
            id: FieldId::FdTypechar,
            arg: FieldArg::None,
            ty: FieldType::String,
        };
        assert!(matches!(
            direct_accessor(&typechar),
            Some(DirectAccessor::Str)
        ));
        assert!(str_accessor(&typechar).is_none());
        let kinds = [
            FdKind::File,
            FdKind::Directory,
            FdKind::Ipv4,
            FdKind::Ipv6,
            FdKind::Unix,
            FdKind::Pipe,
            FdKind::Socket,
            FdKind::Tty,
            FdKind::Device,
            FdKind::Anon,
            FdKind::None,
        ];
        let fds = [None, Some(None)]
            .into_iter()
            .chain(kinds.into_iter().map(|k| Some(Some(k))));
        for fd in fds {
            let mut ev = Event::new(EventType::Open, Collector::Fswatch);
            ev.fd = fd.map(|kind| {
                Box::new(crate::event::Fd {
                    kind,
                    ..crate::event::Fd::default()
                })
            });
            let cx = EvalCtx::new(&ev);
            let got = direct_str(&typechar, &cx).expect("covered");
            assert_eq!(
                got.map(|s| Val::Str(Cow::Borrowed(s))),
                extract(&typechar, &ev),
                "{fd:?}"
            );
        }
    }
}
