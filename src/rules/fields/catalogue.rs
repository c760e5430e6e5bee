//! The field catalogue: every field TaskSentry provides to conditions and outputs, as data.
//!
//! [`catalogue`] is the single table (name, type, argument, description, which events provide
//! the field) that `tasksentry fields` prints and that the rule compiler resolves names
//! against. [`UNPROVIDED_FIELDS`] lists Falco fields that the default Falco rule files use but
//! that TaskSentry cannot observe: a rule whose condition uses one of them is skipped with a
//! warning rather than rejected. How a field's value is read from an event is in
//! `extract`.

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
    pub(crate) fn is_numeric(self) -> bool {
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
    ProcIsContainerEntrypoint,
    ProcIsParentContainerEntrypoint,
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
    ContainerDuration,
    ContainerEntrypointPid,
    ContainerPortMappings,
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
    FdSportDeclared,
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
    ImageDigest,
    ImageDigestSource,
    VulnId,
    VulnAliases,
    VulnSeverity,
    VulnCvss,
    VulnEcosystem,
    VulnPackage,
    VulnVersion,
    VulnFixedVersion,
    VulnPurl,
    VulnLocation,
    VulnInUse,
    VulnInUseReason,
    SecretKind,
    SecretFingerprint,
    SecretPath,
    SecretLine,
    SecretVariable,
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
        "proc.is_container_entrypoint",
        ProcIsContainerEntrypoint,
        Bool,
        None,
        Process,
        "The process is its container's first process (the entrypoint: ppid 0 and the container's root pid), not a later process whose parent is also outside the task, such as an ECS Exec session (TaskSentry)."
    ),
    f!(
        "proc.is_parent_container_entrypoint",
        ProcIsParentContainerEntrypoint,
        Bool,
        None,
        Process,
        "The parent is its container's first process (for example the `sh -c` of a shell-form CMD or ENTRYPOINT starting the app) (TaskSentry)."
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
        "container.duration",
        ContainerDuration,
        RelTime,
        None,
        Container,
        "Nanoseconds between the container's start (`container.start_ts`) and the event."
    ),
    f!(
        "container.entrypoint_pid",
        ContainerEntrypointPid,
        Int,
        None,
        Container,
        "Pid of the container's first process, its entrypoint (compare with `proc.apid[N]` through `val()`) (TaskSentry)."
    ),
    f!(
        "container.port_mappings",
        ContainerPortMappings,
        String,
        None,
        Container,
        "The ports the task definition declares for the container (`portMappings`, from the ECS metadata), as `8080/tcp,8125/udp`; empty when it declares none, unavailable when the metadata does not say (TaskSentry)."
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
    f!(
        "fd.sport_declared",
        FdSportDeclared,
        Bool,
        None,
        Network,
        "Whether the server port and protocol (`fd.sport`, `fd.l4proto`) are among the container's declared `portMappings` (`container.port_mappings`); unavailable when those are not known (TaskSentry)."
    ),
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
    f!(
        "image.digest",
        ImageDigest,
        String,
        None,
        Internal,
        "The digest of the image an image finding is about: ECS's image digest, else `content:sha256:…` of its package databases (image_vulnerability, image_secret, image_sbom, image_inventory)."
    ),
    f!(
        "image.digest_source",
        ImageDigestSource,
        String,
        None,
        Internal,
        "Where `image.digest` came from: `ecs` or `content`."
    ),
    f!(
        "vuln.id",
        VulnId,
        String,
        None,
        Internal,
        "The OSV advisory id of an image_vulnerability (DSA-5764-1, GHSA-…, GO-…)."
    ),
    f!(
        "vuln.aliases",
        VulnAliases,
        String,
        None,
        Internal,
        "The advisory's aliases (CVE and GHSA ids), comma-separated."
    ),
    f!(
        "vuln.severity",
        VulnSeverity,
        String,
        None,
        Internal,
        "critical, high, medium, low or none (CVSS v3 base score of the record), else the database's label, else unknown."
    ),
    f!(
        "vuln.cvss",
        VulnCvss,
        String,
        None,
        Internal,
        "The CVSS v3 base score computed from the record's vector (e.g. 9.8); absent without a vector."
    ),
    f!(
        "vuln.ecosystem",
        VulnEcosystem,
        String,
        None,
        Internal,
        "The package's ecosystem as OSV names it (Debian, Alpine, PyPI, npm, Maven, Go, crates.io)."
    ),
    f!(
        "vuln.package",
        VulnPackage,
        String,
        None,
        Internal,
        "The vulnerable package (Maven `group:artifact`, npm `@scope/name`)."
    ),
    f!(
        "vuln.version",
        VulnVersion,
        String,
        None,
        Internal,
        "The installed version."
    ),
    f!(
        "vuln.fixed_version",
        VulnFixedVersion,
        String,
        None,
        Internal,
        "The smallest fixed version above the installed one; empty when the advisory has none."
    ),
    f!(
        "vuln.purl",
        VulnPurl,
        String,
        None,
        Internal,
        "The package URL of the installed package."
    ),
    f!(
        "vuln.location",
        VulnLocation,
        String,
        None,
        Internal,
        "Where the package was found in the image (its database, metadata directory, jar or binary)."
    ),
    f!(
        "vuln.in_use",
        VulnInUse,
        String,
        None,
        Internal,
        "yes (a running process of the image maps or runs one of the package's files), no (every process was read, none does) or unknown (say why in vuln.in_use_reason)."
    ),
    f!(
        "vuln.in_use_reason",
        VulnInUseReason,
        String,
        None,
        Internal,
        "The evidence for vuln.in_use (pid and path) or why it is unknown."
    ),
    f!(
        "secret.kind",
        SecretKind,
        String,
        None,
        Internal,
        "The kind of credential of an image_secret or env_secret (aws_credentials, private_key, github_token, ...)."
    ),
    f!(
        "secret.fingerprint",
        SecretFingerprint,
        String,
        None,
        Internal,
        "sha256: and 16 hex digits of the SHA-256 of the credential: the same secret has the same fingerprint; never the value."
    ),
    f!(
        "secret.path",
        SecretPath,
        String,
        None,
        Internal,
        "The file of an image_secret, as a path inside the container."
    ),
    f!(
        "secret.line",
        SecretLine,
        Int,
        None,
        Internal,
        "The line of an image_secret in its file."
    ),
    f!(
        "secret.variable",
        SecretVariable,
        String,
        None,
        Internal,
        "The environment variable of an env_secret."
    ),
];

/// The name of a catalogue row (the first, for ids with aliases).
pub(crate) fn name_of(id: FieldId) -> Option<&'static str> {
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
pub(crate) fn lookup(name: &str) -> Option<&'static FieldDef> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
