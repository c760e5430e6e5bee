//! Extraction: the value of a field in an event. Strings are borrowed from the event wherever
//! the field is a plain string in it, so the common fields never allocate.

use std::borrow::Cow;
use std::net::IpAddr;

use super::catalogue::{FieldId, FieldType};
use crate::event::{Ancestor, Event, FdKind, Process};

/// A field argument after resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FieldArg {
    /// No argument.
    None,
    /// `[N]`.
    Index(usize),
    /// `[KEY]` (also the argument name of `evt.arg.NAME`).
    Key(Box<str>),
}

/// An extracted value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Val<'a> {
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
    pub(crate) fn to_text(&self) -> String {
        match self {
            Val::Str(s) => s.to_string(),
            Val::Int(n) => n.to_string(),
            Val::Bool(b) => b.to_string(),
            Val::Ip(ip) => ip.to_string(),
        }
    }

    /// The value as typed JSON.
    pub(crate) fn to_json(&self) -> serde_json::Value {
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
pub(crate) struct FieldRef {
    /// The catalogue row.
    pub(crate) id: FieldId,
    /// The argument.
    pub(crate) arg: FieldArg,
    /// Value type.
    pub(crate) ty: FieldType,
}

impl FieldRef {
    /// Whether, in a condition, the reference stands for "any of several values" (ancestor
    /// fields without an index).
    pub(crate) fn is_any_ancestor(&self) -> bool {
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
    pub(crate) fn either_pair(&self) -> Option<(FieldId, FieldId)> {
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

/// Nanoseconds from `start` to the event (`proc.duration`, `container.duration`).
fn since(start: crate::event::Timestamp, ev: &Event) -> Val<'static> {
    Val::Int(
        i64::try_from(ev.evt.time.as_nanos().saturating_sub(start.as_nanos())).unwrap_or(i64::MAX),
    )
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
pub(crate) fn has_named_caps(mask: u64) -> bool {
    const KNOWN: u64 = u64::MAX >> (64 - CAP_NAMES.len());
    mask & KNOWN != 0
}

/// Decodes a capability mask into space-separated `CAP_*` names (Falco's rendering).
pub(crate) fn decode_caps(mask: u64) -> String {
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
pub(crate) fn split_image(image: &str) -> (&str, Option<&str>, Option<&str>) {
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
#[inline]
pub(crate) fn typechar(kind: FdKind) -> &'static str {
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

#[inline]
pub(crate) fn is_file_like(kind: Option<FdKind>) -> bool {
    matches!(
        kind,
        None | Some(FdKind::File | FdKind::Directory | FdKind::Tty | FdKind::Device)
    )
}

/// Directory part of a path, Falco style (`/etc/passwd` → `/etc`, `/x` → `/`).
pub(crate) fn dirname(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) => "/",
        Some(i) => &path[..i],
        None => path,
    }
}

/// File-name part of a path (`/etc/passwd` → `passwd`, `/etc/` → ``).
pub(crate) fn basename(path: &str) -> &str {
    match path.rfind('/') {
        Some(i) => &path[i + 1..],
        None => path,
    }
}

/// The `index`-th ancestor (1 = the parent).
#[inline]
/// The pid of the event's container's first process (`Container::root_pid`), when known.
fn container_root_pid(ev: &Event) -> Option<i32> {
    ev.container.as_ref().and_then(|c| c.root_pid)
}

pub(crate) fn ancestor(p: &Process, index: usize) -> Option<&Ancestor> {
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
pub(crate) fn any_ancestor(
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
pub(crate) const EVT_DIR: &str = "<";

/// Extracts a field's value from an event; `None` when the event does not provide it.
pub(crate) fn extract<'a>(field: &FieldRef, ev: &'a Event) -> Option<Val<'a>> {
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
        F::ProcDuration => p.and_then(|p| p.start_time).map(|start| since(start, ev)),
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
        F::ProcIsContainerEntrypoint => p.and_then(|p| {
            container_root_pid(ev).map(|root| Val::Bool(p.ppid == 0 && p.pid == root))
        }),
        F::ProcIsParentContainerEntrypoint => p.and_then(|p| {
            container_root_pid(ev).map(|root| Val::Bool(p.ppid > 0 && p.ppid == root))
        }),
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
        F::ContainerEntrypointPid => container_root_pid(ev).and_then(int),
        F::ContainerDuration => ev
            .container
            .as_ref()
            .and_then(|c| c.start_time)
            .map(|start| since(start, ev)),
        F::ContainerStartTs => ev
            .container
            .as_ref()
            .and_then(|c| c.start_time)
            .and_then(time),
        F::ContainerPortMappings => ev
            .container
            .as_ref()
            .and_then(|c| c.port_mappings.as_ref())
            .map(|ports| {
                let text = ports
                    .iter()
                    .map(|p| format!("{}/{}", p.port, p.protocol))
                    .collect::<Vec<_>>()
                    .join(",");
                Val::Str(Cow::Owned(text))
            }),
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
        F::FdSportDeclared => {
            let fd = fd?;
            let (port, proto) = (fd.sport?, fd.l4proto.as_deref()?);
            ev.container
                .as_ref()
                .and_then(|c| c.declares_port(port, proto))
                .map(Val::Bool)
        }
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
        F::ImageDigest => image_arg(ev, "image.digest", false),
        F::ImageDigestSource => image_arg(ev, "image.digest_source", false),
        F::VulnId => image_arg(ev, "vuln.id", false),
        F::VulnAliases => image_arg(ev, "vuln.aliases", false),
        F::VulnSeverity => image_arg(ev, "vuln.severity", false),
        F::VulnCvss => image_arg(ev, "vuln.cvss", false),
        F::VulnEcosystem => image_arg(ev, "vuln.ecosystem", false),
        F::VulnPackage => image_arg(ev, "vuln.package", false),
        F::VulnVersion => image_arg(ev, "vuln.version", false),
        F::VulnFixedVersion => image_arg(ev, "vuln.fixed_version", false),
        F::VulnPurl => image_arg(ev, "vuln.purl", false),
        F::VulnLocation => image_arg(ev, "vuln.location", false),
        F::VulnInUse => image_arg(ev, "vuln.in_use", false),
        F::VulnInUseReason => image_arg(ev, "vuln.in_use_reason", false),
        F::SecretKind => image_arg(ev, "secret.kind", false),
        F::SecretFingerprint => image_arg(ev, "secret.fingerprint", false),
        F::SecretPath => image_arg(ev, "secret.path", false),
        F::SecretLine => image_arg(ev, "secret.line", true),
        F::SecretVariable => image_arg(ev, "secret.variable", false),
    }
}

/// A detail of an image collector event (`image.*`, `vuln.*`, `secret.*`): the `evt.args` entry
/// of that name on a `tasksentry` event, as text or as a number.
fn image_arg<'a>(ev: &'a Event, name: &str, number: bool) -> Option<Val<'a>> {
    ev.internal.as_ref()?;
    let value = ev.evt.arg(name)?;
    if number {
        value.parse::<i64>().ok().map(Val::Int)
    } else {
        Some(Val::Str(Cow::Borrowed(value)))
    }
}

/// Extracts a field for output rendering: like [`extract`], with the "either end" fields
/// rendered as the server side (Falco prints `fd.ip`/`fd.port` that way).
pub(crate) fn extract_for_output<'a>(field: &FieldRef, ev: &'a Event) -> Option<Val<'a>> {
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
}
