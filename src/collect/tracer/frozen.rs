//! What the tracer reads about a process at its exec stop, split in two so that the traced
//! process waits as little as possible: the part that must be read while it is frozen, and the
//! part that can be read right after it is resumed.
//!
//! Every read goes through one `/proc/<pid>` directory descriptor opened per exec stop
//! ([`ProcDir`]): each file costs one `openat`, one `read` into a buffer kept for the tracer's
//! lifetime (procfs returns the whole file in one `read` when the buffer is large enough; a
//! short read is its end) and one `close`; each link one `readlinkat` into a reused buffer.
//!
//! - **Frozen** ([`FrozenReader::read_frozen`], before `PTRACE_CONT`): what a process that
//!   exits at once would take with it, since a zombie has no memory, no descriptors and no
//!   working directory: `comm`, `cmdline`, the `exe` link and the `stat` of what it points at
//!   (the drift identity: device, inode, ctime, mtime), the `cwd` link, descriptors 0-2 (link
//!   and file type) and `environ`. `comm` is read here, not with `stat`, because the name must
//!   be the one of this image even if the process execs again at once.
//! - **Resumed** ([`FrozenReader::read_resumed`], right after `PTRACE_CONT` and before the
//!   tracer reaps anything): `stat` (parent, start time, terminal, session, group) and
//!   `status` (uids, gids, capabilities, tracer, threads), the two most expensive files of
//!   `/proc` to generate. Both stay readable while the process runs and after it exits: a
//!   traced zombie is visible to its tracer only, so it cannot be reaped by its parent before
//!   the tracer has read it. What the process did in the few microseconds since it was resumed
//!   is what they show (a privilege drop right after exec shows as dropped). If it has exec'd
//!   again meanwhile (its `exe` link no longer the one read while frozen: it is then stopped at
//!   its next exec stop, which only this thread can resume), the values belong to the next
//!   image and are dropped as not observed ([`Frozen::crossed_exec`]).
//!
//! Left out on purpose, because the tracer knows them otherwise: the cgroup (a process stays in
//! its parent's container; it is read only for a process whose container is unknown), the
//! login uid (inherited at fork, unchanged by exec; likewise read only when unknown), the mount
//! namespace, and the second `stat` that procscan uses to detect a recycled pid (a tracee's pid
//! cannot be recycled before its tracer has reaped it). Everything that is not a `/proc` read
//! (user names, container lookups, ancestry, building the event) happens later, between stops.

use std::ffi::CStr;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use nix::errno::Errno;
use nix::fcntl::{OFlag, openat};
use nix::sys::stat::{FileStat, Mode, fstatat};
use nix::unistd::read;

use crate::collect::proc::{
    Cmdline, MAX_ENVIRON_BYTES, Stat, Status, classify_fd_mode, parse_cmdline, parse_environ,
    parse_exe_link, parse_loginuid, parse_stat, parse_status,
};
use crate::event::{FdKind, StdFd, Timestamp};

/// How many bytes of `/proc/<pid>/cgroup` are read at most.
const MAX_CGROUP_BYTES: usize = 16 * 1024;
/// How many bytes of `stat` or `status` are read at most (both are far smaller).
const MAX_SMALL_BYTES: usize = 8 * 1024;
/// Link targets longer than this are cut (`PATH_MAX`; procfs links are never longer).
const MAX_LINK_BYTES: usize = 4096;

/// One process as read at its exec stop.
#[derive(Debug, Clone, Default)]
pub(super) struct Frozen {
    /// The name of the image (`comm`), read while frozen.
    pub comm: Option<String>,
    /// Read after resuming; its `comm` is replaced by the frozen one.
    pub stat: Stat,
    /// Read after resuming; all `None` when [`Frozen::crossed_exec`].
    pub status: Status,
    pub cmdline: Cmdline,
    /// `exe` link target, unparsed.
    pub exe: Option<String>,
    /// `(ctime, mtime)` of the executable.
    pub exe_times: (Option<Timestamp>, Option<Timestamp>),
    /// `(device, inode)` of the executable, for the drift registry.
    pub exe_id: Option<(u64, u64)>,
    pub cwd: Option<String>,
    pub fds: [Option<StdFd>; 3],
    pub env: Vec<(String, String)>,
    /// Raw cgroup text, read only when asked.
    pub cgroup: Option<String>,
    /// Read only when asked.
    pub loginuid: Option<i64>,
    /// The process had exec'd again by the time `stat` and `status` were read: their mutable
    /// values (credentials, terminal, session, group, threads) describe the next image and must
    /// not be reported for this one.
    pub crossed_exec: bool,
}

/// `/proc/<pid>` of one process, open for the duration of one exec stop.
pub(super) struct ProcDir {
    fd: OwnedFd,
    pid: i32,
}

/// The reader, with its buffers.
pub(super) struct FrozenReader {
    proc_root: PathBuf,
    env_allowlist: Vec<String>,
    max_cmdline_bytes: usize,
    /// Sized once to the largest cap + 1 and never shrunk or cleared: only `[..n]` after a
    /// read of `n` bytes is meaningful.
    buf: Vec<u8>,
    /// For link targets, likewise.
    link: Vec<u8>,
    /// `<proc_root>/<pid>`, rebuilt per process.
    path: PathBuf,
}

impl FrozenReader {
    pub(super) fn new(
        proc_root: PathBuf,
        env_allowlist: Vec<String>,
        max_cmdline_bytes: usize,
    ) -> FrozenReader {
        let size = max_cmdline_bytes
            .max(MAX_ENVIRON_BYTES)
            .max(MAX_CGROUP_BYTES)
            .saturating_add(1);
        FrozenReader {
            proc_root,
            env_allowlist,
            max_cmdline_bytes,
            buf: vec![0; size],
            link: vec![0; MAX_LINK_BYTES + 1],
            path: PathBuf::new(),
        }
    }

    /// Opens `/proc/<pid>` (an `O_PATH` descriptor: no file is opened, only the directory is
    /// looked up once). `None` when the process is gone.
    pub(super) fn open(&mut self, pid: i32) -> Option<ProcDir> {
        self.path.clear();
        self.path.push(&self.proc_root);
        self.path.push(itoa(pid, &mut [0u8; 12]));
        let file = File::options()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
            .open(&self.path)
            .ok()?;
        Some(ProcDir {
            fd: OwnedFd::from(file),
            pid,
        })
    }

    /// Reads at most `limit` bytes of `name` in `dir` with one `read`. Returns the byte count
    /// and whether the file had more.
    fn read_file(&mut self, dir: &ProcDir, name: &CStr, limit: usize) -> Option<(usize, bool)> {
        let limit = limit.min(self.buf.len() - 1);
        let fd = openat(
            dir.fd.as_fd(),
            name,
            OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .ok()?;
        let mut total = 0;
        // One read normally; more only if the kernel returned a short read of a file that may
        // have more (a regular file in a test fixture does not, procfs does not).
        loop {
            match read(fd.as_fd(), &mut self.buf[total..=limit]) {
                Ok(0) => break,
                Ok(n) => {
                    total += n;
                    if total > limit || n < 4096 {
                        break;
                    }
                }
                Err(Errno::EINTR) => {}
                Err(_) => return None,
            }
        }
        Some((total.min(limit), total > limit))
    }

    /// `readlinkat(dir, name)` into the reused buffer; `Err` with the errno.
    fn read_link(&mut self, dir: &ProcDir, name: &CStr) -> Result<String, Errno> {
        // SAFETY: `name` is NUL-terminated, the directory descriptor is open for the duration
        // of the call, and `self.link` is a writable buffer of the length passed.
        let n = unsafe {
            libc::readlinkat(
                dir.fd.as_raw_fd(),
                name.as_ptr(),
                self.link.as_mut_ptr().cast(),
                self.link.len(),
            )
        };
        let n = usize::try_from(n).map_err(|_| Errno::last())?;
        let n = n.min(MAX_LINK_BYTES);
        Ok(String::from_utf8_lossy(&self.link[..n]).into_owned())
    }

    /// The part read while the process is frozen at its exec stop (see the module
    /// documentation), with the cgroup and login uid when asked (a zombie's cgroup no longer
    /// names its container). `None` when it is gone.
    pub(super) fn read_frozen(
        &mut self,
        dir: &ProcDir,
        with_cgroup: bool,
        with_loginuid: bool,
    ) -> Option<Frozen> {
        let mut out = Frozen::default();
        let (n, _) = self.read_file(dir, c"comm", 256)?;
        let comm = self.buf[..n].strip_suffix(b"\n").unwrap_or(&self.buf[..n]);
        out.comm = Some(String::from_utf8_lossy(comm).into_owned());
        if let Some((n, truncated)) = self.read_file(dir, c"cmdline", self.max_cmdline_bytes) {
            out.cmdline = parse_cmdline(&self.buf[..n], truncated);
        }
        out.exe = self.read_link(dir, c"exe").ok();
        if out.exe.is_some()
            && let Ok(meta) = fstatat(dir.fd.as_fd(), c"exe", nix::fcntl::AtFlags::empty())
        {
            out.exe_id = Some((meta.st_dev, meta.st_ino));
            out.exe_times = (
                meta_time(meta.st_ctime, meta.st_ctime_nsec),
                meta_time(meta.st_mtime, meta.st_mtime_nsec),
            );
        }
        out.cwd = self.read_link(dir, c"cwd").ok();
        const NAMES: [&CStr; 3] = [c"fd/0", c"fd/1", c"fd/2"];
        // Descriptors 0-2 mostly point at one and the same file (a terminal, /dev/null): the
        // file type read through one of them stands for the others with the same target.
        let mut seen: Option<(String, Option<FileStat>)> = None;
        for (slot, name) in out.fds.iter_mut().zip(NAMES) {
            *slot = self.std_fd(dir, name, &mut seen);
        }
        if let Some((n, _)) = self.read_file(dir, c"environ", MAX_ENVIRON_BYTES) {
            out.env = parse_environ(&self.buf[..n], &self.env_allowlist);
        }
        if with_cgroup && let Some((n, _)) = self.read_file(dir, c"cgroup", MAX_CGROUP_BYTES) {
            out.cgroup = Some(String::from_utf8_lossy(&self.buf[..n]).into_owned());
        }
        if with_loginuid && let Some((n, _)) = self.read_file(dir, c"loginuid", 64) {
            out.loginuid = parse_loginuid(&String::from_utf8_lossy(&self.buf[..n]));
        }
        Some(out)
    }

    /// The part read once the process runs again, before its exit can be reaped: `stat` and
    /// `status`. Returns false when `stat` is unreadable (the process is gone).
    pub(super) fn read_resumed(&mut self, dir: &ProcDir, out: &mut Frozen) -> bool {
        let Some((n, _)) = self.read_file(dir, c"stat", MAX_SMALL_BYTES) else {
            return false;
        };
        let Some(mut stat) = parse_stat(&self.buf[..n]) else {
            return false;
        };
        if let Some((n, _)) = self.read_file(dir, c"status", MAX_SMALL_BYTES) {
            out.status = parse_status(&String::from_utf8_lossy(&self.buf[..n]));
        }
        // Exec'd again since it was frozen? Then it now shows another image (a zombie has no
        // `exe` link, and cannot have exec'd again unobserved).
        if let Some(frozen_exe) = &out.exe
            && let Ok(now) = self.read_link(dir, c"exe")
            && now != *frozen_exe
        {
            out.crossed_exec = true;
            out.status = Status::default();
        }
        if let Some(comm) = &out.comm {
            stat.comm.clone_from(comm);
        }
        out.stat = stat;
        true
    }

    /// Reads `pid` whole (frozen and resumed parts back to back, as when the process need not
    /// be resumed in between). `None` when it is gone.
    #[cfg(test)]
    pub(super) fn read(
        &mut self,
        pid: i32,
        with_cgroup: bool,
        with_loginuid: bool,
    ) -> Option<Frozen> {
        let dir = self.open(pid)?;
        let mut out = self.read_frozen(&dir, with_cgroup, with_loginuid)?;
        self.read_resumed(&dir, &mut out).then_some(out)
    }

    fn std_fd(
        &mut self,
        dir: &ProcDir,
        name: &CStr,
        seen: &mut Option<(String, Option<FileStat>)>,
    ) -> Option<StdFd> {
        let target = match self.read_link(dir, name) {
            Ok(target) => target,
            Err(Errno::ENOENT) => {
                return Some(StdFd {
                    kind: FdKind::None,
                    target: None,
                    peer: None,
                });
            }
            Err(_) => return None,
        };
        let meta = if !target.starts_with('/') {
            None
        } else if let Some((_, meta)) = seen.as_ref().filter(|(t, _)| *t == target) {
            *meta
        } else {
            let meta = fstatat(dir.fd.as_fd(), name, nix::fcntl::AtFlags::empty()).ok();
            *seen = Some((target.clone(), meta));
            meta
        };
        let kind = classify_fd_mode(&target, meta.map(|m| (m.st_mode, m.st_rdev)));
        Some(crate::collect::proc::std_fd_of(
            &self.proc_root,
            dir.pid,
            kind,
            target,
        ))
    }
}

/// `pid` in decimal, without allocating.
fn itoa(pid: i32, buf: &mut [u8; 12]) -> &str {
    let mut n = pid.unsigned_abs();
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if pid < 0 {
        i -= 1;
        buf[i] = b'-';
    }
    // Only ASCII digits and '-' were written.
    std::str::from_utf8(&buf[i..]).unwrap_or("0")
}

fn meta_time(secs: i64, nanos: i64) -> Option<Timestamp> {
    let secs = u64::try_from(secs).ok()?;
    let nanos = u64::try_from(nanos).ok()?;
    Some(Timestamp(
        secs.checked_mul(1_000_000_000)?.checked_add(nanos)?,
    ))
}

/// Splits the raw `exe` target as procscan does.
pub(super) fn exe_fields(exe: Option<&str>) -> (Option<String>, bool, bool) {
    match exe {
        Some(target) => {
            let (path, deleted, memfd) = parse_exe_link(target);
            (Some(path), deleted, memfd)
        }
        None => (None, false, false),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn reads_this_process_like_procscan_does() {
        let mut reader =
            FrozenReader::new(PathBuf::from("/proc"), vec!["PATH".to_string()], 64 * 1024);
        let pid = i32::try_from(std::process::id()).unwrap();
        let frozen = reader.read(pid, true, true).unwrap();
        let root = Path::new("/proc");
        let mut buf = Vec::new();
        let stat = crate::collect::proc::read_stat(root, pid, &mut buf).unwrap();
        assert_eq!(frozen.stat.starttime, stat.starttime);
        assert_eq!(frozen.stat.comm, stat.comm);
        assert_eq!(frozen.comm.as_deref(), Some(stat.comm.as_str()));
        assert!(!frozen.crossed_exec);
        let identity = crate::collect::proc::read_identity(root, stat, &mut buf);
        let options = crate::collect::proc::ReadOptions {
            env_allowlist: vec!["PATH".to_string()],
            max_cmdline_bytes: 64 * 1024,
        };
        let clock = crate::collect::proc::Clock::read(root);
        let read =
            crate::collect::proc::read_process(root, identity, &clock, &options, &mut buf).unwrap();
        let p = read.process;
        assert_eq!(frozen.cmdline.argv0, p.exe);
        assert_eq!(frozen.cmdline.args, p.args);
        assert_eq!(exe_fields(frozen.exe.as_deref()).0, p.exepath);
        assert_eq!(frozen.exe_times, (p.exe_ctime, p.exe_mtime));
        assert_eq!(frozen.cwd, p.cwd);
        assert_eq!(frozen.fds[0], p.stdin);
        assert_eq!(
            frozen.fds[1].as_ref().map(|f| f.kind),
            p.stdout.map(|f| f.kind)
        );
        assert_eq!(
            frozen.fds[2].as_ref().map(|f| f.kind),
            p.stderr.map(|f| f.kind)
        );
        assert_eq!(frozen.env, p.env);
        assert_eq!(frozen.status.euid, p.euid);
        assert_eq!(frozen.status.cap_eff, p.cap_effective);
        assert_eq!(frozen.loginuid, p.loginuid);
        assert_eq!(frozen.cgroup, read.cgroup);
    }

    #[test]
    fn a_gone_process_reads_as_none() {
        let mut reader = FrozenReader::new(PathBuf::from("/proc"), Vec::new(), 1024);
        assert!(reader.read(i32::MAX, false, false).is_none());
    }

    #[test]
    fn the_same_target_on_several_descriptors_is_classified_alike() {
        // A child whose stdin, stdout and stderr are all /dev/null (one `stat` for the three),
        // and whose stdout is then a pipe: each descriptor keeps its own kind.
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let pid = i32::try_from(child.id()).unwrap();
        // `spawn` returns once the exec has replaced the memory map, a moment before the
        // kernel renames the process.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap() != "sleep\n" {
            assert!(
                std::time::Instant::now() < deadline,
                "the child never became sleep"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let mut reader = FrozenReader::new(PathBuf::from("/proc"), Vec::new(), 1024);
        let read = reader.read(pid, false, false);
        child.kill().unwrap();
        child.wait().unwrap();
        let read = read.unwrap();
        let kinds: Vec<_> = read
            .fds
            .iter()
            .map(|f| f.as_ref().map(|f| f.kind))
            .collect();
        assert_eq!(
            kinds,
            vec![
                Some(FdKind::Device),
                Some(FdKind::Pipe),
                Some(FdKind::Device)
            ]
        );
        assert_eq!(
            read.fds[0].as_ref().unwrap().target.as_deref(),
            Some("/dev/null")
        );
        assert_eq!(read.comm.as_deref(), Some("sleep"));
    }

    #[test]
    fn pids_print_in_decimal() {
        let mut buf = [0u8; 12];
        assert_eq!(itoa(0, &mut buf), "0");
        assert_eq!(itoa(7, &mut buf), "7");
        assert_eq!(itoa(4_194_304, &mut buf), "4194304");
        assert_eq!(itoa(i32::MAX, &mut buf), "2147483647");
        assert_eq!(itoa(i32::MIN, &mut buf), "-2147483648");
    }
}
