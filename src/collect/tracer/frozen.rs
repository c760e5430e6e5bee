//! What the tracer reads about a process while it is frozen at its exec stop, with as few
//! system calls as possible, since every microsecond here is a microsecond the traced process
//! waits: `stat`, `status`, `cmdline`, the `exe` link and what it points at, the `cwd` link, the
//! standard descriptors 0-2 and `environ`, each file with one `open`, one `read` into a buffer
//! kept for the tracer's lifetime (procfs returns the whole file in one `read` when the buffer
//! is large enough; a short read is its end) and one `close`.
//!
//! Left out on purpose, because the tracer knows them otherwise: the cgroup (a process stays in
//! its parent's container; it is read only for a process whose container is unknown), the
//! login uid (inherited at fork, unchanged by exec; likewise read only when unknown), the mount
//! namespace, and the second `stat` that procscan uses to detect a recycled pid (a tracee's pid
//! cannot be recycled before its tracer has reaped it). Everything that is not a `/proc` read
//! (user names, container lookups, ancestry, building the event) happens after the process has
//! been resumed.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::collect::proc::{
    Cmdline, MAX_ENVIRON_BYTES, Stat, Status, classify_fd, parse_cmdline, parse_environ,
    parse_exe_link, parse_loginuid, parse_stat, parse_status,
};
use crate::event::{FdKind, StdFd, Timestamp};

/// How many bytes of `/proc/<pid>/cgroup` are read at most.
const MAX_CGROUP_BYTES: usize = 16 * 1024;
/// How many bytes of `stat` or `status` are read at most (both are far smaller).
const MAX_SMALL_BYTES: usize = 8 * 1024;

/// One process as read at its exec stop.
#[derive(Debug, Clone, Default)]
pub(super) struct Frozen {
    pub stat: Stat,
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
}

/// The reader, with its buffers.
pub(super) struct FrozenReader {
    proc_root: PathBuf,
    env_allowlist: Vec<String>,
    max_cmdline_bytes: usize,
    /// Sized once to the largest cap + 1 and never shrunk or cleared: only `[..n]` after a
    /// read of `n` bytes is meaningful.
    buf: Vec<u8>,
    /// `<proc_root>/<pid>/`, rebuilt per process.
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
            path: PathBuf::new(),
        }
    }

    fn file(&mut self, name: &str) -> &Path {
        self.path.push(name);
        &self.path
    }

    /// Reads at most `limit` bytes of `<pid>/<name>` with one `read`. Returns the byte count
    /// and whether the file had more.
    fn read_file(&mut self, name: &str, limit: usize) -> Option<(usize, bool)> {
        let limit = limit.min(self.buf.len() - 1);
        let result = File::open(self.file(name)).ok().and_then(|mut file| {
            let mut total = 0;
            // One read normally; more only if the kernel returned a short read of a file that
            // may have more (a regular file in a test fixture does not, procfs does not).
            loop {
                match file.read(&mut self.buf[total..=limit]) {
                    Ok(0) => break,
                    Ok(n) => {
                        total += n;
                        if total > limit || n < 4096 {
                            break;
                        }
                    }
                    Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => return None,
                }
            }
            Some((total.min(limit), total > limit))
        });
        self.path.pop();
        result
    }

    fn read_link(&mut self, name: &str) -> Option<String> {
        let target = std::fs::read_link(self.file(name))
            .ok()
            .map(|t| t.to_string_lossy().into_owned());
        self.path.pop();
        target
    }

    /// Reads `pid`. `None` when it is gone (its `stat` is unreadable). `with_cgroup` and
    /// `with_loginuid` ask for those two files too.
    pub(super) fn read(
        &mut self,
        pid: i32,
        with_cgroup: bool,
        with_loginuid: bool,
    ) -> Option<Frozen> {
        self.path.clear();
        self.path.push(&self.proc_root);
        self.path.push(pid.to_string());
        let (n, _) = self.read_file("stat", MAX_SMALL_BYTES)?;
        let stat = parse_stat(&self.buf[..n])?;
        let mut out = Frozen {
            stat,
            ..Frozen::default()
        };
        if let Some((n, _)) = self.read_file("status", MAX_SMALL_BYTES) {
            out.status = parse_status(&String::from_utf8_lossy(&self.buf[..n]));
        }
        if let Some((n, truncated)) = self.read_file("cmdline", self.max_cmdline_bytes) {
            out.cmdline = parse_cmdline(&self.buf[..n], truncated);
        }
        out.exe = self.read_link("exe");
        if out.exe.is_some() {
            let meta = std::fs::metadata(self.file("exe")).ok();
            self.path.pop();
            out.exe_id = meta.as_ref().map(|m| (m.dev(), m.ino()));
            out.exe_times = meta.map_or((None, None), |m| {
                (
                    meta_time(m.ctime(), m.ctime_nsec()),
                    meta_time(m.mtime(), m.mtime_nsec()),
                )
            });
        }
        out.cwd = self.read_link("cwd");
        for fd in 0..3 {
            out.fds[fd] = self.std_fd(pid, fd);
        }
        if let Some((n, _)) = self.read_file("environ", MAX_ENVIRON_BYTES) {
            out.env = parse_environ(&self.buf[..n], &self.env_allowlist);
        }
        if with_cgroup && let Some((n, _)) = self.read_file("cgroup", MAX_CGROUP_BYTES) {
            out.cgroup = Some(String::from_utf8_lossy(&self.buf[..n]).into_owned());
        }
        if with_loginuid && let Some((n, _)) = self.read_file("loginuid", 64) {
            out.loginuid = parse_loginuid(&String::from_utf8_lossy(&self.buf[..n]));
        }
        Some(out)
    }

    fn std_fd(&mut self, pid: i32, fd: usize) -> Option<StdFd> {
        const NAMES: [&str; 3] = ["fd/0", "fd/1", "fd/2"];
        let path = self.file(NAMES[fd]);
        let target = match std::fs::read_link(path) {
            Ok(target) => target.to_string_lossy().into_owned(),
            Err(error) if error.raw_os_error() == Some(libc::ENOENT) => {
                self.path.pop();
                self.path.pop();
                return Some(StdFd {
                    kind: FdKind::None,
                    target: None,
                    peer: None,
                });
            }
            Err(_) => {
                self.path.pop();
                self.path.pop();
                return None;
            }
        };
        let meta = if target.starts_with('/') {
            std::fs::metadata(&self.path).ok()
        } else {
            None
        };
        self.path.pop();
        self.path.pop();
        let mut kind = classify_fd(&target, meta.as_ref());
        let mut peer = None;
        // A standard descriptor that is a socket is rare and is the reverse-shell signal.
        if kind == FdKind::Socket
            && let Some(inode) = crate::collect::sockets::socket_inode(&target)
            && let Some((refined, remote)) =
                crate::collect::sockets::refine_socket_fd(&self.proc_root, pid, inode)
        {
            kind = refined;
            peer = remote;
        }
        Some(StdFd {
            kind,
            target: Some(target),
            peer,
        })
    }
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
}
