//! Reading one process from a proc root (`/proc`, or a fixture tree in tests).
//!
//! Everything here is defensive: the monitored workload controls process names, arguments and
//! environment, and any process can exit between two reads. Every read tolerates the process
//! vanishing (`ENOENT`, `ESRCH`) or being off limits (`EACCES`, `EPERM`): a missing `stat`
//! means the process is skipped, any other missing file leaves its field `None`. The text
//! parsers never panic and cap what they keep, so a 1 MiB command line costs at most
//! `max_cmdline_bytes` of memory and one bounded read. [`read_process`] re-reads `stat` at the
//! end and drops the result if the start time changed, so a process is never assembled from
//! two different processes that happened to share a recycled pid.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::access::{Access, Diagnosis, Facets, Owner, is_denied};
use crate::event::{FdKind, Process, StdFd, Timestamp};

/// The `PF_KTHREAD` bit in the `flags` field of `/proc/<pid>/stat`.
const PF_KTHREAD: u64 = 0x0020_0000;

/// The default allowlist of environment variable names kept in `Process::env`.
pub const DEFAULT_ENV_ALLOWLIST: &[&str] = &[
    "LD_PRELOAD",
    "LD_LIBRARY_PATH",
    "LD_AUDIT",
    "GLIBC_TUNABLES",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "http_proxy",
    "https_proxy",
    "ALL_PROXY",
    "NO_PROXY",
    "HOME",
    "PATH",
    "USER",
    "SHELL",
    "PWD",
    "AWS_EXECUTION_ENV",
    "ECS_CONTAINER_METADATA_URI_V4",
];

/// How many bytes of `/proc/<pid>/environ` are read at most, to find allowlisted keys.
pub const MAX_ENVIRON_BYTES: usize = 256 * 1024;

/// How many bytes of `/proc/<pid>/cgroup` are read at most.
const MAX_CGROUP_BYTES: usize = 16 * 1024;

/// The fields of `/proc/<pid>/stat` that TaskSentry uses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Stat {
    /// The process id (field 1).
    pub pid: i32,
    /// `comm`, lossily decoded (field 2, between the first `(` and the last `)`).
    pub comm: String,
    /// Process state letter (field 3): `R`, `S`, `D`, `Z`, ...
    pub state: char,
    /// Parent pid (field 4).
    pub ppid: i32,
    /// Process group (field 5).
    pub pgrp: i32,
    /// Session (field 6).
    pub session: i32,
    /// Controlling terminal (field 7).
    pub tty_nr: u32,
    /// Kernel flags (field 9).
    pub flags: u64,
    /// Number of threads (field 20).
    pub num_threads: u32,
    /// Start time in clock ticks after boot (field 22).
    pub starttime: u64,
    /// Addresses of the memory map that change on every exec (fields 26, 27, 28, 48, 49).
    /// All zero when the process has no memory map (zombie, kernel thread) or the reader is
    /// not allowed to see them.
    pub mm: [u64; 5],
}

impl Stat {
    /// Whether this is a kernel thread.
    pub fn is_kernel_thread(&self) -> bool {
        self.flags & PF_KTHREAD != 0
    }

    /// Whether the process is a zombie or dead.
    pub fn is_zombie(&self) -> bool {
        matches!(self.state, 'Z' | 'X' | 'x')
    }

    /// Whether the memory-map fingerprint is known.
    pub fn has_mm(&self) -> bool {
        self.mm.iter().any(|&v| v != 0)
    }

    /// Whether `self` (a later reading of the same process) shows a different image than
    /// `earlier`: a different `comm`, or a different memory map (every exec builds a new one;
    /// a fork copies its parent's), or a memory map where `earlier` showed none. The last
    /// case is an exec that was in progress at the earlier reading: the kernel installs the
    /// new, empty memory map and sets the new `comm` first, and fills the map's addresses
    /// (and the command line) while it loads the program.
    pub fn image_changed_since(&self, earlier: &Stat) -> bool {
        if self.is_zombie() || earlier.is_zombie() {
            return false;
        }
        if self.comm != earlier.comm {
            return true;
        }
        if self.is_kernel_thread() || earlier.is_kernel_thread() {
            return false;
        }
        match (earlier.has_mm(), self.has_mm()) {
            (true, true) => self.mm != earlier.mm,
            (false, true) => true,
            _ => false,
        }
    }
}

/// Parses the text of `/proc/<pid>/stat`. `None` when it is malformed.
pub fn parse_stat(bytes: &[u8]) -> Option<Stat> {
    let open = bytes.iter().position(|&b| b == b'(')?;
    let close = bytes.iter().rposition(|&b| b == b')')?;
    if close < open {
        return None;
    }
    let pid = std::str::from_utf8(&bytes[..open])
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let comm = String::from_utf8_lossy(&bytes[open + 1..close]).into_owned();
    let rest = std::str::from_utf8(bytes.get(close + 1..)?).ok()?;
    // `fields[0]` is field 3 of proc_pid_stat(5).
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    let field = |n: usize| fields.get(n - 3).copied();
    let num = |n: usize| field(n).and_then(|f| f.parse::<u64>().ok());
    let int = |n: usize| field(n).and_then(|f| f.parse::<i64>().ok());
    let state = field(3)?.chars().next()?;
    Some(Stat {
        pid,
        comm,
        state,
        ppid: i32::try_from(int(4)?).ok()?,
        pgrp: i32::try_from(int(5)?).ok()?,
        session: i32::try_from(int(6)?).ok()?,
        // The kernel prints tty_nr as a signed int; devices fit in 32 bits.
        tty_nr: u32::try_from(int(7)?).unwrap_or(0),
        flags: num(9)?,
        num_threads: u32::try_from(num(20)?).unwrap_or(u32::MAX),
        starttime: num(22)?,
        mm: [
            num(26).unwrap_or(0),
            num(27).unwrap_or(0),
            num(28).unwrap_or(0),
            num(48).unwrap_or(0),
            num(49).unwrap_or(0),
        ],
    })
}

/// The fields of `/proc/<pid>/status` that TaskSentry uses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Status {
    /// Real uid.
    pub uid: Option<u32>,
    /// Effective uid.
    pub euid: Option<u32>,
    /// Saved uid.
    pub suid: Option<u32>,
    /// Real gid.
    pub gid: Option<u32>,
    /// Effective gid.
    pub egid: Option<u32>,
    /// Saved gid.
    pub sgid: Option<u32>,
    /// Inheritable capabilities.
    pub cap_inh: Option<u64>,
    /// Permitted capabilities.
    pub cap_prm: Option<u64>,
    /// Effective capabilities.
    pub cap_eff: Option<u64>,
    /// Pid of the tracer, 0 when none.
    pub tracer_pid: Option<i32>,
    /// The pid in each nested PID namespace, outermost first.
    pub nspid: Vec<i32>,
    /// Number of threads.
    pub threads: Option<u32>,
}

/// Parses the text of `/proc/<pid>/status`. Unknown or malformed lines are ignored.
pub fn parse_status(text: &str) -> Status {
    let mut status = Status::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let mut values = value.split_ascii_whitespace();
        match key {
            "Uid" => {
                status.uid = values.next().and_then(|v| v.parse().ok());
                status.euid = values.next().and_then(|v| v.parse().ok());
                status.suid = values.next().and_then(|v| v.parse().ok());
            }
            "Gid" => {
                status.gid = values.next().and_then(|v| v.parse().ok());
                status.egid = values.next().and_then(|v| v.parse().ok());
                status.sgid = values.next().and_then(|v| v.parse().ok());
            }
            "CapInh" => status.cap_inh = parse_hex(values.next()),
            "CapPrm" => status.cap_prm = parse_hex(values.next()),
            "CapEff" => status.cap_eff = parse_hex(values.next()),
            "TracerPid" => status.tracer_pid = values.next().and_then(|v| v.parse().ok()),
            "NSpid" => status.nspid = values.filter_map(|v| v.parse().ok()).collect(),
            "Threads" => status.threads = values.next().and_then(|v| v.parse().ok()),
            _ => {}
        }
    }
    status
}

impl Status {
    /// The filesystem ids a reader must take to pass the kernel's ptrace read check on this
    /// process: its uid and gid when real, effective and saved agree.
    pub fn owner(&self) -> Option<Owner> {
        Owner::from_ids(
            [self.uid, self.euid, self.suid],
            [self.gid, self.egid, self.sgid],
        )
    }
}

fn parse_hex(value: Option<&str>) -> Option<u64> {
    value.and_then(|v| u64::from_str_radix(v, 16).ok())
}

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Cmdline {
    /// `argv[0]`, when the command line is not empty.
    pub argv0: Option<String>,
    /// `argv[1..]`.
    pub args: Vec<String>,
    /// The command line was longer than the cap and was cut.
    pub truncated: bool,
}

/// Parses NUL-separated `/proc/<pid>/cmdline` bytes; `truncated` says the read was capped.
/// Invalid UTF-8 becomes U+FFFD.
pub fn parse_cmdline(bytes: &[u8], truncated: bool) -> Cmdline {
    if bytes.is_empty() {
        return Cmdline {
            truncated,
            ..Cmdline::default()
        };
    }
    let body = match bytes.last() {
        Some(0) => &bytes[..bytes.len() - 1],
        _ => bytes,
    };
    let mut parts = body
        .split(|&b| b == 0)
        .map(|part| String::from_utf8_lossy(part).into_owned());
    let argv0 = parts.next();
    Cmdline {
        argv0,
        args: parts.collect(),
        truncated,
    }
}

/// Keeps the allowlisted `NAME=value` pairs of NUL-separated `environ` bytes, in order.
pub fn parse_environ(bytes: &[u8], allowlist: &[String]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for entry in bytes.split(|&b| b == 0) {
        let Some(eq) = entry.iter().position(|&b| b == b'=') else {
            continue;
        };
        let key = &entry[..eq];
        if allowlist.iter().any(|allowed| allowed.as_bytes() == key) {
            out.push((
                String::from_utf8_lossy(key).into_owned(),
                String::from_utf8_lossy(&entry[eq + 1..]).into_owned(),
            ));
        }
    }
    out
}

/// Parses `/proc/<pid>/loginuid`: `4294967295` (unset) becomes -1.
pub fn parse_loginuid(text: &str) -> Option<i64> {
    let value: u64 = text.trim().parse().ok()?;
    if value == u64::from(u32::MAX) {
        Some(-1)
    } else {
        i64::try_from(value).ok()
    }
}

/// Parses a namespace link target such as `mnt:[4026531841]`.
pub fn parse_ns_link(target: &str) -> Option<u64> {
    let start = target.find('[')?;
    let end = target.rfind(']')?;
    target.get(start + 1..end)?.parse().ok()
}

/// Splits a `readlink /proc/<pid>/exe` target into the path and the deleted and memfd flags.
pub fn parse_exe_link(target: &str) -> (String, bool, bool) {
    let memfd = target.starts_with("/memfd:");
    match target.strip_suffix(" (deleted)") {
        Some(path) => (path.to_string(), true, memfd),
        None => (target.to_string(), memfd, memfd),
    }
}

/// Classifies a standard fd from its link target and, when available, the file type of what it
/// points at (`stat` through the magic link).
pub fn classify_fd(target: &str, meta: Option<&std::fs::Metadata>) -> FdKind {
    classify_fd_mode(target, meta.map(|m| (m.mode(), m.rdev())))
}

/// [`classify_fd`] from the raw `st_mode` and `st_rdev` of a `stat` through the magic link
/// (for callers that use `fstatat` rather than `std::fs::metadata`).
pub fn classify_fd_mode(target: &str, mode_rdev: Option<(u32, u64)>) -> FdKind {
    if target.starts_with("pipe:[") {
        return FdKind::Pipe;
    }
    if target.starts_with("socket:[") {
        // IPv4/IPv6/Unix refinement needs the socket tables: `read_std_fd` asks
        // `sockets::refine_socket_fd`.
        return FdKind::Socket;
    }
    if target.starts_with("anon_inode:") {
        return FdKind::Anon;
    }
    let is_tty_path = target.starts_with("/dev/pts/")
        || target.starts_with("/dev/tty")
        || target == "/dev/console"
        || target == "/dev/ptmx";
    if let Some((mode, rdev)) = mode_rdev {
        return match mode & libc::S_IFMT {
            libc::S_IFDIR => FdKind::Directory,
            libc::S_IFIFO => FdKind::Pipe,
            libc::S_IFSOCK => FdKind::Socket,
            libc::S_IFCHR => {
                // Major numbers: 4 (tty), 5 (tty, console, ptmx), 136-143 (pts).
                let major = libc::major(rdev);
                if is_tty_path || major == 4 || major == 5 || (136..=143).contains(&major) {
                    FdKind::Tty
                } else {
                    FdKind::Device
                }
            }
            libc::S_IFBLK => FdKind::Device,
            _ => FdKind::File,
        };
    }
    if is_tty_path {
        FdKind::Tty
    } else if target.starts_with("/dev/") {
        FdKind::Device
    } else {
        FdKind::File
    }
}

/// Whether an I/O error means "the process is gone or off limits" (normal while scanning).
pub fn is_vanished(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::ENOENT | libc::ESRCH | libc::EACCES | libc::EPERM)
    ) || error.kind() == io::ErrorKind::NotFound
}

/// Reads at most `limit` bytes of a file into `buf` (cleared first). Returns whether the file
/// had more.
pub fn read_capped(path: &Path, buf: &mut Vec<u8>, limit: usize) -> io::Result<bool> {
    buf.clear();
    let file = File::open(path)?;
    let limit_plus_one = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    file.take(limit_plus_one).read_to_end(buf)?;
    if buf.len() > limit {
        buf.truncate(limit);
        Ok(true)
    } else {
        Ok(false)
    }
}

/// System facts needed to turn clock ticks into wall-clock times.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// Boot time, seconds since the epoch (`btime` in `/proc/stat`).
    pub btime: u64,
    /// Clock ticks per second (`_SC_CLK_TCK`).
    pub ticks_per_sec: u64,
}

impl Clock {
    /// Reads `btime` from `<proc_root>/stat`; falls back to 0 (times then mean "since boot").
    pub fn read(proc_root: &Path) -> Clock {
        let btime = std::fs::read_to_string(proc_root.join("stat"))
            .ok()
            .and_then(|text| {
                text.lines()
                    .find_map(|line| line.strip_prefix("btime "))
                    .and_then(|v| v.trim().parse().ok())
            })
            .unwrap_or(0);
        // SAFETY: sysconf has no memory-safety preconditions; it only reads a constant.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        Clock {
            btime,
            ticks_per_sec: u64::try_from(ticks).ok().filter(|&t| t > 0).unwrap_or(100),
        }
    }

    /// The wall-clock time of a start time in ticks after boot.
    pub fn start_time(&self, ticks: u64) -> Timestamp {
        let secs = ticks / self.ticks_per_sec;
        let frac = ticks % self.ticks_per_sec;
        let nanos = self
            .btime
            .saturating_add(secs)
            .saturating_mul(1_000_000_000)
            .saturating_add(frac * 1_000_000_000 / self.ticks_per_sec);
        Timestamp(nanos)
    }
}

/// What [`read_process`] needs to know besides the pid.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    /// Environment variable names to keep.
    pub env_allowlist: Vec<String>,
    /// Cap on the command-line bytes kept.
    pub max_cmdline_bytes: usize,
    /// How private entries (`exe`, `cwd`, `environ`, `fd`) of other users' processes are
    /// read: as the monitor, or as the process's owner where the monitor's capabilities do
    /// not pass the kernel's checks.
    pub access: Access,
}

/// Everything read about one process: the event form plus what the scanner needs.
#[derive(Debug, Clone)]
pub struct ProcRead {
    /// The event form (user and group names and ancestors are filled in later).
    pub process: Process,
    /// The `stat` reading the process was identified by.
    pub stat: Stat,
    /// `status` (uids, NSpid, ...).
    pub status: Status,
    /// Raw `/proc/<pid>/cgroup` text, `None` if unreadable.
    pub cgroup: Option<String>,
    /// Inode of the mount namespace.
    pub mnt_ns: Option<u64>,
    /// Device and inode of the executable, when it could be stat'ed.
    pub exe_id: Option<(u64, u64)>,
    /// Private entries the kernel refused to the monitor (not those that were simply gone).
    pub unreadable: Facets,
    /// Why, when something was refused.
    pub diagnosis: Option<Diagnosis>,
    /// False when the read may have caught the process in the middle of an exec: its
    /// command line was empty although it is neither a zombie nor a kernel thread (the new
    /// image has its name but not yet its arguments), or its `stat` shows another image at
    /// the end of the read than at the start (the fields mix two images). The caller reads
    /// it again before reporting it.
    pub settled: bool,
}

/// Reads the `stat` of one process. `None` if it vanished or is unreadable or malformed.
pub fn read_stat(proc_root: &Path, pid: i32, buf: &mut Vec<u8>) -> Option<Stat> {
    let path = pid_path(proc_root, pid, "stat");
    // One `read` returns the whole line (it is far below 4 KiB), saving the second read that
    // `read_to_end` makes to see the end of file: this is the per-scan hot path.
    let mut file = File::open(&path).ok()?;
    buf.clear();
    buf.resize(4096, 0);
    let n = file.read(buf).ok()?;
    buf.truncate(n);
    if n == 4096 {
        return None;
    }
    parse_stat(buf)
}

/// The cheap "identity" reads used to decide whether to read the rest: `stat`, `cgroup` and
/// the mount namespace.
#[derive(Debug, Clone)]
pub struct ProcIdentity {
    /// The `stat` reading.
    pub stat: Stat,
    /// Raw cgroup text.
    pub cgroup: Option<String>,
    /// Mount namespace inode.
    pub mnt_ns: Option<u64>,
    /// The owner of `/proc/<pid>` (its effective ids while dumpable, root otherwise); read
    /// only when the monitor may have to read as the owner.
    pub dir_owner: Option<Owner>,
    /// Whether the kernel refused the mount namespace link.
    pub ns_denied: bool,
}

/// Reads `cgroup` and the mount namespace of a process whose `stat` is known. The namespace
/// link is read as the process's owner when `access` says the monitor must.
pub fn read_identity(
    proc_root: &Path,
    stat: Stat,
    access: &Access,
    buf: &mut Vec<u8>,
) -> ProcIdentity {
    let pid = stat.pid;
    let cgroup = read_capped(&pid_path(proc_root, pid, "cgroup"), buf, MAX_CGROUP_BYTES)
        .ok()
        .map(|_| String::from_utf8_lossy(buf).into_owned());
    let dir_owner = if access.may_switch() {
        super::access::dir_owner(proc_root, pid)
    } else {
        None
    };
    let ns = access.as_owner(dir_owner, || {
        std::fs::read_link(pid_path(proc_root, pid, "ns/mnt"))
    });
    let ns_denied = ns.as_ref().is_err_and(is_denied);
    let mnt_ns = ns
        .ok()
        .and_then(|target| parse_ns_link(&target.to_string_lossy()));
    ProcIdentity {
        stat,
        cgroup,
        mnt_ns,
        dir_owner,
        ns_denied,
    }
}

/// Reads the rest of one process whose identity is known. Returns `None` when the process
/// vanished, or its pid was recycled, while it was being read.
pub fn read_process(
    proc_root: &Path,
    identity: ProcIdentity,
    clock: &Clock,
    options: &ReadOptions,
    buf: &mut Vec<u8>,
) -> Option<ProcRead> {
    let ProcIdentity {
        stat,
        cgroup,
        mnt_ns,
        dir_owner,
        ns_denied,
    } = identity;
    let pid = stat.pid;

    let status = match read_capped(&pid_path(proc_root, pid, "status"), buf, 64 * 1024) {
        Ok(_) => parse_status(&String::from_utf8_lossy(buf)),
        Err(_) => Status::default(),
    };

    let mut cmdline_empty = false;
    let cmdline = match read_capped(
        &pid_path(proc_root, pid, "cmdline"),
        buf,
        options.max_cmdline_bytes,
    ) {
        Ok(truncated) => {
            cmdline_empty = buf.is_empty();
            parse_cmdline(buf, truncated)
        }
        Err(_) => Cmdline::default(),
    };

    // The private entries, read as the process's owner where the monitor's own credentials
    // do not pass the kernel's checks (see `access`).
    let owner = status.owner();
    let private = options
        .access
        .as_owner(owner, || read_private(proc_root, pid, options, buf));
    let PrivateRead {
        exe,
        exe_meta,
        cwd,
        std_fds: [stdin, stdout, stderr],
        env,
        mut unreadable,
    } = private;
    if ns_denied {
        unreadable |= Facets::NS;
    }
    let (exepath, exe_deleted, exe_from_memfd) = match exe {
        Some(target) => {
            let (path, deleted, memfd) = parse_exe_link(&target);
            (Some(path), deleted, memfd)
        }
        None => (None, false, false),
    };
    let exe_id = exe_meta.as_ref().map(|m| (m.dev(), m.ino()));
    let exe_ctime = exe_meta
        .as_ref()
        .and_then(|m| meta_time(m.ctime(), m.ctime_nsec()));
    let exe_mtime = exe_meta
        .as_ref()
        .and_then(|m| meta_time(m.mtime(), m.mtime_nsec()));
    let diagnosis = (!unreadable.is_empty()).then(|| {
        Diagnosis::of(
            options.access.privileges(),
            dir_owner,
            [status.uid, status.euid, status.suid],
            [status.gid, status.egid, status.sgid],
            status.cap_prm,
            !unreadable.contains(Facets::EXE),
        )
    });

    let loginuid = std::fs::read_to_string(pid_path(proc_root, pid, "loginuid"))
        .ok()
        .as_deref()
        .and_then(parse_loginuid);

    // A process that exited (or whose pid was recycled) while we read it is dropped rather
    // than reported half-read.
    let again = read_stat(proc_root, pid, buf)?;
    if again.starttime != stat.starttime {
        return None;
    }
    // If the process exec'd between the first and the last read, the fields may mix two
    // images: the read is not settled. The first `stat` is kept on purpose: the scanner's next
    // check compares against it, sees the change and reads the process again.
    let no_arguments_yet = cmdline_empty && !again.is_zombie() && !again.is_kernel_thread();
    let settled = !(again.image_changed_since(&stat) || no_arguments_yet);
    let process = Process {
        pid,
        ppid: stat.ppid,
        start_ticks: stat.starttime,
        start_time: Some(clock.start_time(stat.starttime)),
        name: stat.comm.clone(),
        exe: cmdline.argv0,
        exepath,
        args: cmdline.args,
        args_truncated: cmdline.truncated,
        cwd,
        uid: status.uid,
        euid: status.euid,
        gid: status.gid,
        egid: status.egid,
        loginuid,
        cap_effective: status.cap_eff,
        cap_permitted: status.cap_prm,
        cap_inheritable: status.cap_inh,
        tracer_pid: status.tracer_pid,
        tty: Some(stat.tty_nr),
        sid: Some(stat.session),
        pgid: Some(stat.pgrp),
        threads: status.threads.or(Some(stat.num_threads)),
        stdin,
        stdout,
        stderr,
        env,
        exe_deleted,
        exe_from_memfd,
        exe_ctime,
        exe_mtime,
        ..Process::default()
    };
    Some(ProcRead {
        process,
        stat,
        status,
        cgroup,
        mnt_ns,
        exe_id,
        unreadable,
        diagnosis,
        settled,
    })
}

/// What [`read_private`] found.
struct PrivateRead {
    exe: Option<String>,
    exe_meta: Option<std::fs::Metadata>,
    cwd: Option<String>,
    std_fds: [Option<StdFd>; 3],
    env: Vec<(String, String)>,
    unreadable: Facets,
}

/// Reads the entries guarded by the ptrace check and the owner's file modes: `exe` (and the
/// executable's metadata), `cwd`, fds 0-2 and the allowlisted environment. Notes which of them
/// the kernel refused.
fn read_private(
    proc_root: &Path,
    pid: i32,
    options: &ReadOptions,
    buf: &mut Vec<u8>,
) -> PrivateRead {
    let mut unreadable = Facets::NONE;
    let mut link =
        |file: &str, facet: Facets| match std::fs::read_link(pid_path(proc_root, pid, file)) {
            Ok(target) => Some(target.to_string_lossy().into_owned()),
            Err(error) => {
                if is_denied(&error) {
                    unreadable |= facet;
                }
                None
            }
        };
    let exe = link("exe", Facets::EXE);
    let cwd = link("cwd", Facets::CWD);
    let exe_meta = exe
        .as_ref()
        .and_then(|_| std::fs::metadata(pid_path(proc_root, pid, "exe")).ok());
    let std_fds = [0, 1, 2].map(|fd| match read_std_fd(proc_root, pid, fd) {
        Ok(std_fd) => Some(std_fd),
        Err(denied) => {
            if denied {
                unreadable |= Facets::FD;
            }
            None
        }
    });
    let env = match read_capped(&pid_path(proc_root, pid, "environ"), buf, MAX_ENVIRON_BYTES) {
        Ok(_) => parse_environ(buf, &options.env_allowlist),
        Err(error) => {
            if is_denied(&error) {
                unreadable |= Facets::ENVIRON;
            }
            Vec::new()
        }
    };
    PrivateRead {
        exe,
        exe_meta,
        cwd,
        std_fds,
        env,
        unreadable,
    }
}

fn meta_time(secs: i64, nanos: i64) -> Option<Timestamp> {
    let secs = u64::try_from(secs).ok()?;
    let nanos = u64::try_from(nanos).ok()?;
    Some(Timestamp(
        secs.checked_mul(1_000_000_000)?.checked_add(nanos)?,
    ))
}

/// One standard descriptor; `Err(true)` when the kernel refused it, `Err(false)` on any
/// other failure.
fn read_std_fd(proc_root: &Path, pid: i32, fd: u8) -> Result<StdFd, bool> {
    let path = pid_path(proc_root, pid, &format!("fd/{fd}"));
    let target = match std::fs::read_link(&path) {
        Ok(target) => target.to_string_lossy().into_owned(),
        Err(error) if error.raw_os_error() == Some(libc::ENOENT) => {
            // The process exists but the descriptor is closed. (If the process is gone the
            // whole read is discarded by the final `stat` check.)
            return Ok(StdFd {
                kind: FdKind::None,
                target: None,
                peer: None,
            });
        }
        Err(error) => return Err(is_denied(&error)),
    };
    let needs_stat = target.starts_with('/');
    let meta = if needs_stat {
        std::fs::metadata(&path).ok()
    } else {
        None
    };
    let kind = classify_fd(&target, meta.as_ref());
    Ok(std_fd_of(proc_root, pid, kind, target))
}

/// The standard fd `target` of `pid` classified as `kind`; a socket is refined: a standard
/// fd that is a socket is rare and is the reverse-shell signal, so which family it is and who
/// is at the other end are looked up.
pub(crate) fn std_fd_of(proc_root: &Path, pid: i32, kind: FdKind, target: String) -> StdFd {
    let mut kind = kind;
    let mut peer = None;
    if kind == FdKind::Socket
        && let Some(inode) = super::sockets::socket_inode(&target)
        && let Some((refined, remote)) = super::sockets::refine_socket_fd(proc_root, pid, inode)
    {
        kind = refined;
        peer = remote;
    }
    StdFd {
        kind,
        target: Some(target),
        peer,
    }
}

/// `readlink` as a lossy string; `None` on any error.
pub fn read_link_string(path: &Path) -> Option<String> {
    std::fs::read_link(path)
        .ok()
        .map(|target| target.to_string_lossy().into_owned())
}

/// `<proc_root>/<pid>/<file>`.
pub fn pid_path(proc_root: &Path, pid: i32, file: &str) -> PathBuf {
    let mut path = proc_root.join(pid.to_string());
    path.push(file);
    path
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/collect/fixtures");

    fn fixture(dir: &str, file: &str) -> Vec<u8> {
        std::fs::read(format!("{FIXTURES}/{dir}/{file}")).unwrap()
    }

    #[test]
    fn stat_with_hostile_comm_is_parsed_by_the_last_paren() {
        // Captured from a python process that wrote `a) b (c) Z 1 2` to /proc/self/comm.
        let stat = parse_stat(&fixture("hostile", "stat")).unwrap();
        assert_eq!(stat.pid, 10209);
        assert_eq!(stat.comm, "a) b (c) Z 1 2");
        assert_eq!(stat.state, 'S');
        assert_eq!(stat.ppid, 10132);
        assert_eq!(stat.pgrp, 10132);
        assert_eq!(stat.session, 4902);
        assert_eq!(stat.tty_nr, 0);
        assert_eq!(stat.num_threads, 1);
        assert_eq!(stat.starttime, 63811);
        assert!(stat.has_mm());
        assert!(!stat.is_kernel_thread());
    }

    #[test]
    fn stat_with_newline_in_comm() {
        let stat = parse_stat(&fixture("newline", "stat")).unwrap();
        assert_eq!(stat.pid, 10290);
        assert_eq!(stat.comm, "x\ny) R 7");
        assert_eq!(stat.ppid, 10285);
        assert_eq!(stat.starttime, 64253);
    }

    #[test]
    fn kernel_thread_is_recognised() {
        let stat = parse_stat(&fixture("kthread", "stat")).unwrap();
        assert_eq!(stat.comm, "kthreadd");
        assert!(stat.is_kernel_thread());
        assert!(!stat.has_mm());
    }

    #[test]
    fn malformed_stat_is_rejected_not_panicking() {
        for bad in [
            &b""[..],
            b"123",
            b"123 (x",
            b"123 x) S",
            b") 1 (",
            b"12 (a) S 1 2 3",
            b"\xff\xfe (\xff) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20",
        ] {
            assert_eq!(parse_stat(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn exec_changes_the_fingerprint_and_fork_does_not() {
        let before = parse_stat(&fixture("hostile", "stat")).unwrap();
        let forked = before.clone();
        assert!(!forked.image_changed_since(&before));
        let mut execed = before.clone();
        execed.mm[3] += 4096;
        assert!(execed.image_changed_since(&before));
        let mut renamed = before.clone();
        renamed.comm = "sleep".into();
        assert!(renamed.image_changed_since(&before));
        let mut zombie = execed.clone();
        zombie.state = 'Z';
        zombie.mm = [0; 5];
        assert!(!zombie.image_changed_since(&before));
    }

    #[test]
    fn an_exec_caught_in_progress_is_a_change_once_the_map_is_filled() {
        // Mid-exec: the new comm is set and the new memory map has no addresses yet.
        let done = parse_stat(&fixture("hostile", "stat")).unwrap();
        let mut midway = done.clone();
        midway.mm = [0; 5];
        assert!(!midway.has_mm());
        assert!(done.image_changed_since(&midway), "the exec completed");
        // A process losing its map (exiting) is not a new image, nor is a kernel thread.
        assert!(!midway.image_changed_since(&done));
        let kthread = parse_stat(&fixture("kthread", "stat")).unwrap();
        let mut odd = kthread.clone();
        odd.mm = [1, 1, 0, 0, 0];
        assert!(!odd.image_changed_since(&kthread));
    }

    #[test]
    fn status_fields() {
        let status = parse_status(&String::from_utf8_lossy(&fixture("hostile", "status")));
        assert_eq!(status.uid, Some(0));
        assert_eq!(status.euid, Some(0));
        assert_eq!(status.gid, Some(0));
        assert_eq!(status.egid, Some(0));
        assert_eq!(status.cap_inh, Some(0));
        assert_eq!(status.cap_prm, Some(0x1fffeffffff));
        assert_eq!(status.cap_eff, Some(0x1fffeffffff));
        assert_eq!(status.tracer_pid, Some(0));
        assert_eq!(status.nspid, vec![10209]);
        assert_eq!(status.threads, Some(1));

        let nested = parse_status(
            "Uid:\t1000\t1001\t1001\t1001\nGid:\t50\t51\t51\t51\nNSpid:\t4242\t7\nTracerPid:\t99\n",
        );
        assert_eq!((nested.uid, nested.euid), (Some(1000), Some(1001)));
        assert_eq!((nested.gid, nested.egid), (Some(50), Some(51)));
        assert_eq!(nested.nspid, vec![4242, 7]);
        assert_eq!(nested.tracer_pid, Some(99));
        assert_eq!(parse_status("garbage\n:::\nUid:\tx\n").uid, None);
    }

    #[test]
    fn cmdline_with_newlines_and_invalid_utf8() {
        let cmdline = parse_cmdline(&fixture("hostile", "cmdline"), false);
        assert_eq!(
            cmdline.argv0.as_deref(),
            Some("/root/.pyenv/versions/3.11.7/bin/python3")
        );
        assert_eq!(
            cmdline.args,
            vec![
                "/tmp/hostile.py",
                "line1\nline2",
                "bad\u{fffd}\u{fffd}bytes"
            ]
        );
        assert!(!cmdline.truncated);
    }

    #[test]
    fn cmdline_edge_cases() {
        assert_eq!(parse_cmdline(b"", false), Cmdline::default());
        // Empty arguments are kept; only the final terminator is dropped.
        let c = parse_cmdline(b"sh\0\0-c\0", false);
        assert_eq!(c.argv0.as_deref(), Some("sh"));
        assert_eq!(c.args, vec!["", "-c"]);
        // A process that rewrote its argv without NULs (setproctitle style).
        let c = parse_cmdline(b"nginx: worker process", false);
        assert_eq!(c.argv0.as_deref(), Some("nginx: worker process"));
        assert!(c.args.is_empty());
    }

    #[test]
    fn huge_cmdline_is_capped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cmdline");
        let mut big = b"sh\0".to_vec();
        big.extend(std::iter::repeat_n(b'A', 1 << 20));
        big.push(0);
        std::fs::write(&path, &big).unwrap();
        let mut buf = Vec::new();
        let truncated = read_capped(&path, &mut buf, 64 * 1024).unwrap();
        assert!(truncated);
        assert_eq!(buf.len(), 64 * 1024);
        let c = parse_cmdline(&buf, truncated);
        assert!(c.truncated);
        assert_eq!(c.args.len(), 1);
        assert_eq!(c.args[0].len(), 64 * 1024 - 3);
    }

    #[test]
    fn environ_keeps_only_allowlisted_keys() {
        let allow: Vec<String> = DEFAULT_ENV_ALLOWLIST
            .iter()
            .map(|s| s.to_string())
            .collect();
        let env = parse_environ(&fixture("hostile", "environ"), &allow);
        assert_eq!(
            env,
            vec![
                (
                    "PATH".to_string(),
                    "/usr/local/bin:/usr/bin:/bin".to_string()
                ),
                ("HOME".to_string(), "/root".to_string()),
                ("LD_PRELOAD".to_string(), "/tmp/evil.so".to_string()),
                (
                    "AWS_EXECUTION_ENV".to_string(),
                    "AWS_ECS_FARGATE".to_string()
                ),
            ]
        );
        let custom = parse_environ(b"A=1\0EMPTY=\0B=2", &["EMPTY".to_string()]);
        assert_eq!(custom, vec![("EMPTY".to_string(), String::new())]);
    }

    #[test]
    fn loginuid_ns_and_exe_links() {
        assert_eq!(
            parse_loginuid(&String::from_utf8_lossy(&fixture("hostile", "loginuid"))),
            Some(-1)
        );
        assert_eq!(parse_loginuid("1000\n"), Some(1000));
        assert_eq!(parse_loginuid("x"), None);
        assert_eq!(parse_ns_link("mnt:[4026531841]"), Some(4026531841));
        assert_eq!(parse_ns_link("mnt:[]"), None);
        assert_eq!(
            parse_exe_link("/usr/bin/sleep (deleted)"),
            ("/usr/bin/sleep".to_string(), true, false)
        );
        assert_eq!(
            parse_exe_link("/memfd:payload (deleted)"),
            ("/memfd:payload".to_string(), true, true)
        );
        assert_eq!(
            parse_exe_link("/usr/bin/sleep"),
            ("/usr/bin/sleep".to_string(), false, false)
        );
    }

    #[test]
    fn fd_classification_by_target() {
        assert_eq!(classify_fd("pipe:[1234]", None), FdKind::Pipe);
        assert_eq!(classify_fd("socket:[99]", None), FdKind::Socket);
        assert_eq!(classify_fd("anon_inode:[eventfd]", None), FdKind::Anon);
        assert_eq!(classify_fd("/dev/pts/3", None), FdKind::Tty);
        assert_eq!(classify_fd("/dev/tty1", None), FdKind::Tty);
        assert_eq!(classify_fd("/dev/console", None), FdKind::Tty);
        assert_eq!(classify_fd("/dev/null", None), FdKind::Device);
        assert_eq!(classify_fd("/var/log/app.log", None), FdKind::File);
        let null = std::fs::metadata("/dev/null").unwrap();
        assert_eq!(classify_fd("/dev/null", Some(&null)), FdKind::Device);
        let dir = std::fs::metadata("/").unwrap();
        assert_eq!(classify_fd("/", Some(&dir)), FdKind::Directory);
    }

    #[test]
    fn clock_converts_ticks() {
        let clock = Clock {
            btime: 1_000,
            ticks_per_sec: 100,
        };
        assert_eq!(clock.start_time(250), Timestamp(1_002_500_000_000));
    }

    /// Builds a fixture proc root with one process from captured files.
    fn fixture_root(pid: i32, dir: &str) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        let pdir = root.path().join(pid.to_string());
        std::fs::create_dir_all(pdir.join("fd")).unwrap();
        for file in ["stat", "status", "cmdline", "environ", "cgroup", "loginuid"] {
            let src = format!("{FIXTURES}/{dir}/{file}");
            if Path::new(&src).exists() {
                std::fs::copy(&src, pdir.join(file)).unwrap();
            }
        }
        std::os::unix::fs::symlink("/bin/sh", pdir.join("exe")).unwrap();
        std::os::unix::fs::symlink("/", pdir.join("cwd")).unwrap();
        std::os::unix::fs::symlink("/dev/null", pdir.join("fd/0")).unwrap();
        std::os::unix::fs::symlink("pipe:[42]", pdir.join("fd/1")).unwrap();
        std::fs::create_dir_all(pdir.join("ns")).unwrap();
        std::os::unix::fs::symlink("mnt:[4026531841]", pdir.join("ns/mnt")).unwrap();
        root
    }

    #[test]
    fn read_process_from_a_fixture_root() {
        let root = fixture_root(10209, "hostile");
        let clock = Clock {
            btime: 1_700_000_000,
            ticks_per_sec: 100,
        };
        let options = ReadOptions {
            env_allowlist: vec!["LD_PRELOAD".into()],
            max_cmdline_bytes: 64 * 1024,
            access: crate::collect::access::Access::current(),
        };
        let mut buf = Vec::new();
        let stat = read_stat(root.path(), 10209, &mut buf).unwrap();
        let identity = read_identity(root.path(), stat, &options.access, &mut buf);
        assert_eq!(identity.mnt_ns, Some(4026531841));
        assert!(identity.cgroup.as_deref().unwrap().contains("/ecs/"));
        let read = read_process(root.path(), identity, &clock, &options, &mut buf).unwrap();
        let p = &read.process;
        assert_eq!(p.pid, 10209);
        assert_eq!(p.ppid, 10132);
        assert_eq!(p.name, "a) b (c) Z 1 2");
        assert_eq!(p.start_ticks, 63811);
        assert_eq!(p.start_time, Some(clock.start_time(63811)));
        assert_eq!(p.args[1], "line1\nline2");
        assert_eq!(p.exepath.as_deref(), Some("/bin/sh"));
        assert_eq!(p.cwd.as_deref(), Some("/"));
        assert_eq!(p.euid, Some(0));
        assert_eq!(p.loginuid, Some(-1));
        assert_eq!(p.cap_effective, Some(0x1fffeffffff));
        assert_eq!(p.env, vec![("LD_PRELOAD".into(), "/tmp/evil.so".into())]);
        assert_eq!(p.stdin.as_ref().unwrap().kind, FdKind::Device);
        assert_eq!(p.stdout.as_ref().unwrap().kind, FdKind::Pipe);
        assert_eq!(p.stderr.as_ref().unwrap().kind, FdKind::None);
        assert!(p.exe_mtime.is_some());
        // The event form is valid one-line JSON despite the hostile name and arguments.
        let mut event = crate::event::Event::new(
            crate::event::EventType::Execve,
            crate::event::Collector::Procscan,
        );
        event.proc = Some(Box::new(p.clone()));
        let line = event.to_json_line();
        assert!(!line.contains('\n'));
        let back: crate::event::Event = serde_json::from_str(&line).unwrap();
        assert_eq!(back.proc.unwrap().name, "a) b (c) Z 1 2");
    }

    #[test]
    fn process_that_vanishes_or_is_recycled_mid_read_is_dropped() {
        let root = fixture_root(10209, "hostile");
        let clock = Clock::read(root.path());
        let options = ReadOptions {
            env_allowlist: Vec::new(),
            max_cmdline_bytes: 1024,
            access: crate::collect::access::Access::current(),
        };
        let mut buf = Vec::new();
        let stat = read_stat(root.path(), 10209, &mut buf).unwrap();
        let identity = read_identity(root.path(), stat.clone(), &options.access, &mut buf);
        // Recycled: the pid now belongs to a process with another start time.
        let text = String::from_utf8(fixture("hostile", "stat")).unwrap();
        let recycled = text.replace(" 63811 ", " 99999 ");
        std::fs::write(root.path().join("10209/stat"), recycled).unwrap();
        assert!(read_process(root.path(), identity.clone(), &clock, &options, &mut buf).is_none());
        // Vanished.
        std::fs::remove_dir_all(root.path().join("10209")).unwrap();
        assert!(read_process(root.path(), identity, &clock, &options, &mut buf).is_none());
        assert!(read_stat(root.path(), 10209, &mut buf).is_none());
    }

    /// Sets the calling thread's effective capabilities to `effective` (a subset of its
    /// permitted set): a thread of the test binary then meets the kernel's checks exactly as
    /// a monitor with those capabilities would.
    fn set_thread_effective_caps(effective: u64) {
        #[repr(C)]
        struct Header {
            version: u32,
            pid: i32,
        }
        #[repr(C)]
        #[derive(Clone, Copy, Default)]
        struct Data {
            effective: u32,
            permitted: u32,
            inheritable: u32,
        }
        const VERSION_3: u32 = 0x2008_0522;
        let mut header = Header {
            version: VERSION_3,
            pid: 0,
        };
        let mut data = [Data::default(); 2];
        // SAFETY: capget with a version-3 header and a two-element data array, as the ABI
        // requires; both outlive the call.
        let rc = unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) };
        assert_eq!(rc, 0, "capget");
        data[0].effective = effective as u32;
        data[1].effective = (effective >> 32) as u32;
        // SAFETY: as above; capset changes only the calling thread's sets (pid 0).
        let rc = unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) };
        assert_eq!(rc, 0, "capset");
    }

    /// A real process of uid 1000, read by threads with a Fargate sidecar's capabilities:
    /// Docker's default set (no CAP_SYS_PTRACE) reads everything by switching its filesystem
    /// ids; a set that can neither pass the ptrace check nor switch sees nothing private and
    /// says why.
    #[test]
    fn another_users_process_is_read_in_full_with_fargates_default_capabilities() {
        use crate::collect::access::{Privileges, cap};
        use std::os::unix::process::CommandExt;
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let cwd = dir.path().join("private");
        std::fs::create_dir(&cwd).unwrap();
        std::os::unix::fs::chown(&cwd, Some(1000), Some(1000)).unwrap();
        std::fs::set_permissions(&cwd, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .unwrap();
        let mut child = std::process::Command::new("/bin/sleep")
            .arg("30")
            .current_dir(&cwd)
            .env_clear()
            .env("LD_PRELOAD", "/opt/hook.so")
            .uid(1000)
            .gid(1000)
            .stdin(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let pid = i32::try_from(child.id()).unwrap();
        // Wait for the exec (the child's comm becomes `sleep`).
        let proc_root = Path::new("/proc");
        let mut buf = Vec::new();
        for _ in 0..500 {
            if read_stat(proc_root, pid, &mut buf).is_some_and(|s| s.comm == "sleep") {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        let docker_default: u64 = 0xa80425fb;
        let read_with = |effective: u64| {
            std::thread::scope(|scope| {
                scope
                    .spawn(move || {
                        set_thread_effective_caps(effective);
                        let mut privileges = Privileges::all();
                        privileges.cap_eff = effective;
                        let options = ReadOptions {
                            env_allowlist: vec!["LD_PRELOAD".into()],
                            max_cmdline_bytes: 4096,
                            access: Access::with_privileges(privileges),
                        };
                        let mut buf = Vec::new();
                        let stat = read_stat(proc_root, pid, &mut buf).unwrap();
                        let identity = read_identity(proc_root, stat, &options.access, &mut buf);
                        let clock = Clock::read(proc_root);
                        read_process(proc_root, identity, &clock, &options, &mut buf).unwrap()
                    })
                    .join()
                    .unwrap()
            })
        };
        let full = read_with(docker_default);
        let blind = read_with(1 << cap::CHOWN);
        let _ = child.kill();
        let _ = child.wait();

        let p = &full.process;
        assert_eq!(full.unreadable, Facets::NONE);
        assert_eq!(p.exepath.as_deref(), Some("/usr/bin/sleep"));
        assert_eq!(p.cwd.as_deref(), cwd.to_str());
        assert_eq!(
            p.env,
            vec![("LD_PRELOAD".to_string(), "/opt/hook.so".to_string())]
        );
        assert_eq!(p.stdin.as_ref().map(|fd| fd.kind), Some(FdKind::Device));
        assert!(full.mnt_ns.is_some());

        let p = &blind.process;
        assert_eq!(
            blind.unreadable,
            Facets::EXE | Facets::CWD | Facets::ENVIRON | Facets::FD | Facets::NS
        );
        assert_eq!(blind.diagnosis, Some(Diagnosis::OtherUser));
        assert!(p.exepath.is_none() && p.cwd.is_none() && p.env.is_empty());
        assert!(p.stdin.is_none());
        // What needs no privilege is still there.
        assert_eq!(p.uid, Some(1000));
        assert_eq!(p.args, vec!["30".to_string()]);
    }
}
