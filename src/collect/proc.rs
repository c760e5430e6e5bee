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
//!
//! The files are parsed by [`crate::procfs`]; what is read becomes the event's [`Process`] in
//! one place, `build_process`, for procscan's reads here and the tracer's at exec stops alike.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::access::{Access, Diagnosis, Facets, Owner, is_denied};
use crate::event::{FdKind, Process, StdFd, Timestamp};
use crate::procfs::{
    Cmdline, Stat, Status, classify_fd, parse_boot_time, parse_cmdline, parse_environ,
    parse_exe_link, parse_loginuid, parse_ns_link, parse_stat, parse_status,
};

/// How many bytes of `/proc/<pid>/environ` are read at most, to find allowlisted keys.
pub(crate) const MAX_ENVIRON_BYTES: usize = 256 * 1024;

/// How many bytes of `/proc/<pid>/cgroup` are read at most.
pub(crate) const MAX_CGROUP_BYTES: usize = 16 * 1024;

/// Reads at most `limit` bytes of a file into `buf` (cleared first). Returns whether the file
/// had more.
pub(crate) fn read_capped(path: &Path, buf: &mut Vec<u8>, limit: usize) -> io::Result<bool> {
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
    pub(crate) btime: u64,
    /// Clock ticks per second (`_SC_CLK_TCK`).
    pub(crate) ticks_per_sec: u64,
}

impl Clock {
    /// Reads `btime` from `<proc_root>/stat`; falls back to 0 (times then mean "since boot").
    pub fn read(proc_root: &Path) -> Clock {
        let btime = std::fs::read_to_string(proc_root.join("stat"))
            .ok()
            .and_then(|text| parse_boot_time(&text))
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
    let owner = Owner::from_ids(
        [status.uid, status.euid, status.suid],
        [status.gid, status.egid, status.sgid],
    );
    let private = options
        .access
        .as_owner(owner, || read_private(proc_root, pid, options, buf));
    let PrivateRead {
        exe,
        exe_meta,
        cwd,
        std_fds,
        env,
        mut unreadable,
    } = private;
    if ns_denied {
        unreadable |= Facets::NS;
    }
    let exe_id = exe_meta.as_ref().map(|m| (m.dev(), m.ino()));
    let exe_times = exe_meta.as_ref().map_or((None, None), |m| {
        (
            file_time(m.ctime(), m.ctime_nsec()),
            file_time(m.mtime(), m.mtime_nsec()),
        )
    });
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
    let process = build_process(
        clock,
        &stat,
        &status,
        ImageFiles {
            cmdline,
            exe,
            exe_times,
            cwd,
            std_fds,
            env,
        },
        loginuid,
    );
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

/// What was read of a process's image besides `stat` and `status`, as [`build_process`] takes
/// it.
#[derive(Debug, Clone, Default)]
pub(crate) struct ImageFiles {
    /// The command line.
    pub(crate) cmdline: Cmdline,
    /// The `exe` link target, unparsed.
    pub(crate) exe: Option<String>,
    /// `(ctime, mtime)` of the executable.
    pub(crate) exe_times: (Option<Timestamp>, Option<Timestamp>),
    /// The `cwd` link target.
    pub(crate) cwd: Option<String>,
    /// Descriptors 0, 1 and 2.
    pub(crate) std_fds: [Option<StdFd>; 3],
    /// The allowlisted environment.
    pub(crate) env: Vec<(String, String)>,
}

/// The event form of a process from what was read of it (user and group names, ancestors and
/// the drift fact are the caller's to add). `stat` is the reading the process is identified by:
/// its name, parent, start time, terminal, session and group as of that reading.
pub(crate) fn build_process(
    clock: &Clock,
    stat: &Stat,
    status: &Status,
    image: ImageFiles,
    loginuid: Option<i64>,
) -> Process {
    let ImageFiles {
        cmdline,
        exe,
        exe_times: (exe_ctime, exe_mtime),
        cwd,
        std_fds: [stdin, stdout, stderr],
        env,
    } = image;
    let (exepath, exe_deleted, exe_from_memfd) = match exe {
        Some(target) => {
            let (path, deleted, memfd) = parse_exe_link(&target);
            (Some(path), deleted, memfd)
        }
        None => (None, false, false),
    };
    Process {
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
        ..bare_process(clock, stat)
    }
}

/// A process known only from its `stat`: pid, parent, start time and name (an excluded
/// process, or one that could not be read further).
pub(crate) fn bare_process(clock: &Clock, stat: &Stat) -> Process {
    Process {
        pid: stat.pid,
        ppid: stat.ppid,
        start_ticks: stat.starttime,
        start_time: Some(clock.start_time(stat.starttime)),
        name: stat.comm.clone(),
        ..Process::default()
    }
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

/// A file time (`st_ctime`/`st_mtime` and their nanoseconds) as a timestamp; `None` before the
/// epoch or out of range.
pub(crate) fn file_time(secs: i64, nanos: i64) -> Option<Timestamp> {
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
        && let Some(inode) = crate::procfs::socket_inode(&target)
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
pub(crate) fn read_link_string(path: &Path) -> Option<String> {
    std::fs::read_link(path)
        .ok()
        .map(|target| target.to_string_lossy().into_owned())
}

/// `<proc_root>/<pid>/<file>`.
pub(crate) fn pid_path(proc_root: &Path, pid: i32, file: &str) -> PathBuf {
    let mut path = proc_root.join(pid.to_string());
    path.push(file);
    path
}

/// Replaces `pids` with the numeric entries of the proc root (its processes; threads are not
/// listed).
pub(crate) fn list_pids(proc_root: &Path, pids: &mut Vec<i32>) -> io::Result<()> {
    pids.clear();
    for entry in std::fs::read_dir(proc_root)?.flatten() {
        if let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<i32>().ok())
            && pid > 0
        {
            pids.push(pid);
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::procfs::{fixture, fixture_path};

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
            let src = fixture_path(dir, file);
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

/// A small `/proc` file read again and again (`ns_last_pid`, `net/sockstat`, `net/snmp`):
/// opened once and re-read from offset 0 with `pread`, which `/proc` answers with fresh
/// content, so each read costs one system call instead of a path walk, an open and a close.
/// A failed read drops the descriptor and the next read opens the file again.
#[derive(Debug)]
pub(crate) struct KeptFile {
    path: PathBuf,
    file: Option<File>,
    buf: Vec<u8>,
}

impl KeptFile {
    /// A reader of `path` (opened at the first read).
    pub(crate) fn new(path: PathBuf) -> KeptFile {
        KeptFile {
            path,
            file: None,
            buf: Vec::new(),
        }
    }

    /// Appends the file's current content to `text` (lossily decoded).
    pub(crate) fn read_into(&mut self, text: &mut String) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        if self.file.is_none() {
            self.file = Some(File::open(&self.path)?);
        }
        let Some(file) = &self.file else {
            return Err(io::ErrorKind::NotFound.into());
        };
        self.buf.clear();
        let mut chunk = [0u8; 4096];
        let result = loop {
            match file.read_at(&mut chunk, self.buf.len() as u64) {
                Ok(0) => break Ok(()),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => break Err(error),
            }
            // Small files only: a runaway file is cut, never read forever.
            if self.buf.len() >= 1 << 20 {
                break Ok(());
            }
        };
        match result {
            Ok(()) => {
                text.push_str(&String::from_utf8_lossy(&self.buf));
                Ok(())
            }
            Err(error) => {
                self.file = None;
                Err(error)
            }
        }
    }
}
