//! What the tracer reads about a process at its exec stop, split in two so that the traced
//! process waits as little as possible: what the rules need at the exec itself, read while it
//! is frozen, and the rest, read right after it is resumed.
//!
//! Every read goes through one `/proc/<pid>` directory descriptor opened per exec stop
//! ([`ProcDir`]): each file costs one `openat`, one `read` into a buffer kept for the tracer's
//! lifetime (procfs returns the whole file in one `read` when the buffer is large enough; a
//! short read is its end) and one `close`; each link one `readlinkat` into a reused buffer.
//!
//! Which field is read when (syscalls in brackets):
//!
//! 1. Frozen, before `PTRACE_CONT`:
//!    - the stack pointer [`ptrace(PTRACE_GETREGSET)`] and the top of the stack, up to 16 KiB
//!      [`process_vm_readv`]: where the arguments, the environment and the executed file
//!      name are (see [`super::stack`]), and for most processes their bytes too;
//!    - the command line (`proc.exe`, `proc.args`, `proc.cmdline`): from those bytes, or
//!      [`process_vm_readv`] of its area when it is longer than what was read;
//!    - the `exe` link (`proc.exepath`) [`readlinkat`] and the `stat` of what it points at
//!      [`newfstatat`]: device and inode (the drift identity behind
//!      `proc.exe_written_after_start`), ctime and mtime;
//!    - only for a process whose container is unknown: `cgroup` and `loginuid`.
//! 2. Resumed, right after `PTRACE_CONT`, before anything is reaped:
//!    - `stat` [`openat`, `read`, `close`]: the name (`proc.name`), parent, start time,
//!      terminal, session, group; a process found exited (a zombie) has only `status` left
//!      to read;
//!    - the environment (`proc.env`): from the stack bytes read while frozen, or
//!      [`process_vm_readv`] of its area;
//!    - descriptors 0-2 (`proc.stdin_type`, ...) [three `readlinkat`, one `newfstatat` per
//!      distinct file];
//!    - the working directory (`proc.cwd`) [`readlinkat`];
//!    - `status` [`openat`, `read`, `close`]: uids, gids, capabilities, threads (`user.*`,
//!      `proc.cap_*`);
//!    - whether it exec'd again meanwhile: a `waitid` that leaves statuses in place says
//!      whether any stop of it is pending, and only then is the `exe` link read again
//!      [`readlinkat`] and compared.
//! 3. Later, between stops ([`super::work`]), nothing from `/proc`: user names, the
//!    container, ancestry (`proc.pname`, `proc.aname[n]`), the drift fact, the event.
//!
//! - **Frozen** ([`FrozenReader::read_frozen`]): only what the rules need about the exec
//!   itself: its command line and executable. At an exec stop ([`Memory::Exec`]) no
//!   instruction of the new image has run, so the stack holds exactly what the kernel laid
//!   out, which is what `cmdline` and `environ` would show; its layout gives the same areas
//!   as `stat`'s `arg_start`..`env_end` (a unit test compares them at real exec stops). When
//!   the stack cannot be read that way (another architecture, a 32-bit process, tables past
//!   16 KiB), `stat` is read while frozen for the areas, and on any error the files are read.
//!   The executable's identity is read here: a dropped binary that exits at once must still
//!   be recognised as one.
//! - **Resumed** ([`FrozenReader::read_resumed`], right after `PTRACE_CONT` and before the
//!   tracer reaps anything): `stat` (the name, start time and the rest do not change in
//!   those microseconds but by a second exec, caught below), the environment when it was not
//!   in the stack bytes (a process rarely rewrites its environment strings in its first
//!   microseconds, and the file is read if the memory cannot be), descriptors 0-2, the
//!   working directory, and `status`, the most expensive file of `/proc` to generate. A
//!   process that exits within microseconds of its exec is a zombie by then: `stat` and
//!   `status` stay readable (a traced zombie is visible to its tracer only, so it cannot be
//!   reaped by its parent before the tracer has read it), but it has no memory, descriptors or
//!   working directory left, so those fields are absent from its event (its `stat` state, or
//!   the failed read of its memory, says so, and nothing else is read then). What the process
//!   did in the few microseconds since it was resumed is what it shows (a privilege drop
//!   right after exec shows as dropped). If it has exec'd again meanwhile (its `exe` link no
//!   longer the one read while frozen: it is then stopped at its next exec stop, which only
//!   this thread can resume), everything read after resuming belongs to the next image and is
//!   dropped as not observed ([`Frozen::crossed_exec`]), but for `stat`, whose name is put
//!   back to the one this exec gave (the last component of the file name on its stack, cut
//!   to 15 bytes as the kernel cuts it). The trade: a process stopped at its exec waits for
//!   five syscalls (four without a `/proc` file to generate) instead of thirteen, and one
//!   that exits within microseconds is reported without descriptors or working directory.
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

use super::ptrace::stack_pointer;
use super::stack;
use crate::collect::proc::{MAX_CGROUP_BYTES, MAX_ENVIRON_BYTES, file_time, std_fd_of};
use crate::event::{FdKind, StdFd, Timestamp};
use crate::procfs::{
    Cmdline, Stat, Status, classify_fd_mode, parse_cmdline, parse_environ, parse_loginuid,
    parse_stat, parse_stat_areas, parse_status,
};
/// How many bytes of `stat` or `status` are read at most (both are far smaller).
const MAX_SMALL_BYTES: usize = 8 * 1024;
/// Link targets longer than this are cut (`PATH_MAX`; procfs links are never longer).
const MAX_LINK_BYTES: usize = 4096;

/// One process as read at its exec stop.
#[derive(Debug, Clone, Default)]
pub(super) struct Frozen {
    /// The name of the image (`comm`), parent, start time, terminal, session and group as of
    /// the exec: read right after resuming, or while frozen when the stack gave no areas.
    pub stat: Stat,
    /// Read after resuming; all `None` when [`Frozen::crossed_exec`].
    pub status: Status,
    pub cmdline: Cmdline,
    /// `exe` link target, unparsed.
    pub exe: Option<String>,
    /// `(ctime, mtime)` of the executable.
    pub(crate) exe_times: (Option<Timestamp>, Option<Timestamp>),
    /// `(device, inode)` of the executable, for the drift registry.
    pub(crate) exe_id: Option<(u64, u64)>,
    /// Read after resuming, like `fds` and `env`; `None` (empty) when [`Frozen::crossed_exec`]
    /// or when the process was gone by then.
    pub cwd: Option<String>,
    pub fds: [Option<StdFd>; 3],
    pub env: Vec<(String, String)>,
    /// Raw cgroup text, read only when asked (frozen).
    pub cgroup: Option<String>,
    /// Read only when asked (frozen).
    pub loginuid: Option<i64>,
    /// The process had exec'd again by the time the resumed part was read: those values
    /// describe the next image and are not reported for this one.
    pub(crate) crossed_exec: bool,
    /// Where the environment is in the process's memory (at an exec stop only).
    env_area: Option<[u64; 2]>,
    /// `stat` is still to be read (after resuming): the areas came from the stack.
    stat_deferred: bool,
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
    /// The top of the stack of the last process read at its exec stop ([`stack`]): `snap_len`
    /// bytes from `snap_base` of process `snap_pid`, laid out as `snap_layout` says (`None`
    /// when the last read was not one).
    snap: Vec<u8>,
    snap_base: u64,
    snap_len: usize,
    snap_pid: i32,
    snap_layout: Option<crate::procfs::ExecStack>,
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
            snap: vec![0; stack::SNAPSHOT_BYTES],
            snap_base: 0,
            snap_len: 0,
            snap_pid: 0,
            snap_layout: None,
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
    /// documentation): `stat`, the command line and the executable (link and identity), with
    /// the cgroup and login uid when asked (a zombie's cgroup no longer names its container).
    /// `memory` says how the command line (and later the environment) is read:
    /// [`Memory::Exec`] only for a process stopped at its exec stop. `None` when it is gone.
    pub(super) fn read_frozen(
        &mut self,
        dir: &ProcDir,
        memory: Memory,
        with_cgroup: bool,
        with_loginuid: bool,
    ) -> Option<Frozen> {
        let mut out = Frozen::default();
        self.snap_layout = None;
        let layout = match memory {
            Memory::Exec => self.read_exec_stack(dir.pid),
            Memory::Files => None,
        };
        let areas = match layout {
            // `stat` waits until the process runs again.
            Some(layout) => {
                out.stat_deferred = true;
                Some([layout.args, layout.env])
            }
            None => {
                let (n, _) = self.read_file(dir, c"stat", MAX_SMALL_BYTES)?;
                out.stat = parse_stat(&self.buf[..n])?;
                match memory {
                    Memory::Exec => parse_stat_areas(&self.buf[..n]),
                    Memory::Files => None,
                }
            }
        };
        out.env_area = areas.map(|[_, env]| env);
        let snapshot = areas.and_then(|[args, _]| {
            let bytes = self.snapshot_area(dir.pid, args)?;
            let cut = bytes.len().min(self.max_cmdline_bytes);
            Some(parse_cmdline(&bytes[..cut], bytes.len() > cut))
        });
        match snapshot {
            Some(cmdline) => out.cmdline = cmdline,
            None => {
                let cmdline = areas
                    .and_then(|[args, _]| self.read_memory(dir.pid, args, self.max_cmdline_bytes));
                if let Some((n, truncated)) =
                    cmdline.or_else(|| self.read_file(dir, c"cmdline", self.max_cmdline_bytes))
                {
                    out.cmdline = parse_cmdline(&self.buf[..n], truncated);
                }
            }
        }
        out.exe = self.read_link(dir, c"exe").ok();
        if out.exe.is_some()
            && let Ok(meta) = fstatat(dir.fd.as_fd(), c"exe", nix::fcntl::AtFlags::empty())
        {
            out.exe_id = Some((meta.st_dev, meta.st_ino));
            out.exe_times = (
                file_time(meta.st_ctime, meta.st_ctime_nsec),
                file_time(meta.st_mtime, meta.st_mtime_nsec),
            );
        }
        if with_cgroup && let Some((n, _)) = self.read_file(dir, c"cgroup", MAX_CGROUP_BYTES) {
            out.cgroup = Some(String::from_utf8_lossy(&self.buf[..n]).into_owned());
        }
        if with_loginuid && let Some((n, _)) = self.read_file(dir, c"loginuid", 64) {
            out.loginuid = parse_loginuid(&String::from_utf8_lossy(&self.buf[..n]));
        }
        Some(out)
    }

    /// The areas of a process stopped at its exec stop, from its stack pointer and one read of
    /// the top of its stack (kept in `snap` for the command line, the environment and the
    /// name). `None` when that does not work out (see [`crate::procfs::exec_stack`]): the caller reads `stat`.
    fn read_exec_stack(&mut self, pid: i32) -> Option<crate::procfs::ExecStack> {
        let sp = stack_pointer(pid)?;
        let n = stack::read_from(pid, sp, &mut self.snap).ok()?;
        let layout = crate::procfs::parse_exec_stack(sp, &self.snap[..n])?;
        (self.snap_base, self.snap_len, self.snap_pid) = (sp, n, pid);
        self.snap_layout = Some(layout);
        Some(layout)
    }

    /// The bytes of `area` of `pid` when the last stack read holds them whole.
    fn snapshot_area(&self, pid: i32, area: [u64; 2]) -> Option<&[u8]> {
        if self.snap_pid != pid || self.snap_layout.is_none() {
            return None;
        }
        crate::procfs::stack_slice(self.snap_base, &self.snap[..self.snap_len], area)
    }

    /// Reads at most `limit` bytes of the memory area `[start, end)` of `pid` into the buffer
    /// with one `process_vm_readv`, as `read_file` would read the `/proc` file that shows it.
    /// `None` when the area is empty or not entirely readable (the caller then reads the
    /// file).
    fn read_memory(&mut self, pid: i32, area: [u64; 2], limit: usize) -> Option<(usize, bool)> {
        self.read_memory_raw(pid, area, limit).ok()
    }

    /// [`FrozenReader::read_memory`] with the reason of a failure: `ESRCH` when the process
    /// has no memory (gone, or a zombie), `EFAULT` when the area is not entirely readable,
    /// `EINVAL` when it is empty.
    fn read_memory_raw(
        &mut self,
        pid: i32,
        [start, end]: [u64; 2],
        limit: usize,
    ) -> Result<(usize, bool), Errno> {
        let len = end
            .checked_sub(start)
            .and_then(|len| usize::try_from(len).ok())
            .ok_or(Errno::EINVAL)?;
        if start == 0 || len == 0 {
            return Err(Errno::EINVAL);
        }
        let limit = limit.min(self.buf.len() - 1);
        let want = len.min(limit);
        let local = libc::iovec {
            iov_base: self.buf.as_mut_ptr().cast(),
            iov_len: want,
        };
        let remote = libc::iovec {
            iov_base: usize::try_from(start).map_err(|_| Errno::EINVAL)? as *mut libc::c_void,
            iov_len: want,
        };
        // SAFETY: `local` describes `want` writable bytes of `self.buf` (`want` <= its length),
        // alive and not otherwise borrowed during the call; `remote` is only an address in the
        // other process, which the kernel checks.
        let n = unsafe { libc::process_vm_readv(pid, &local, 1, &remote, 1, 0) };
        let n = usize::try_from(n).map_err(|_| Errno::last())?;
        if n == want {
            Ok((want, len > limit))
        } else {
            Err(Errno::EFAULT)
        }
    }

    /// The part read once the process runs again, before its exit can be reaped: the
    /// environment, descriptors 0-2, the working directory and `status`, in that order (see
    /// the module documentation).
    pub(super) fn read_resumed(&mut self, dir: &ProcDir, out: &mut Frozen) {
        if out.stat_deferred {
            self.read_deferred_stat(dir, out);
        }
        // The environment read with the stack while frozen, exactly as the exec laid it out.
        let from_stack = out
            .env_area
            .and_then(|env| self.snapshot_area(dir.pid, env))
            .map(|bytes| {
                let cut = bytes.len().min(MAX_ENVIRON_BYTES);
                parse_environ(&bytes[..cut], &self.env_allowlist)
            });
        let env_read = from_stack.is_some();
        if let Some(env) = from_stack {
            out.env = env;
        }
        if out.stat_deferred && out.stat.state == 'Z' {
            // Exited already: see below.
            self.read_status(dir, out);
            return;
        }
        if !env_read {
            let environ = match out.env_area {
                Some(env) => match self.read_memory_raw(dir.pid, env, MAX_ENVIRON_BYTES) {
                    Ok(read) => Some(read),
                    // No memory left: the process has exited already (a zombie). Its
                    // environment, descriptors and working directory are gone with it; only
                    // `status` remains to be read.
                    Err(Errno::ESRCH) => {
                        self.read_status(dir, out);
                        return;
                    }
                    Err(_) => None,
                },
                None => None,
            };
            if let Some((n, _)) =
                environ.or_else(|| self.read_file(dir, c"environ", MAX_ENVIRON_BYTES))
            {
                out.env = parse_environ(&self.buf[..n], &self.env_allowlist);
            }
        }
        const NAMES: [&CStr; 3] = [c"fd/0", c"fd/1", c"fd/2"];
        // Descriptors 0-2 mostly point at one and the same file (a terminal, /dev/null): the
        // file type read through one of them stands for the others with the same target.
        let mut seen: Option<(String, Option<FileStat>)> = None;
        let mut fds: [Option<StdFd>; 3] = Default::default();
        for (slot, name) in fds.iter_mut().zip(NAMES) {
            *slot = self.std_fd(dir, name, &mut seen);
        }
        out.fds = fds;
        out.cwd = self.read_link(dir, c"cwd").ok();
        self.read_status(dir, out);
        // Exec'd again since it was frozen? Then it now shows another image (a zombie has no
        // `exe` link, and cannot have exec'd again unobserved): what was read since it was
        // resumed is dropped as not observed. A process that exec'd again is held at its next
        // exec stop, which this thread has not reaped yet: without any stop pending, the
        // `exe` link need not be read again.
        if let Some(frozen_exe) = &out.exe
            && stop_pending(dir.pid)
            && let Ok(now) = self.read_link(dir, c"exe")
            && now != *frozen_exe
        {
            out.crossed_exec = true;
            if out.stat_deferred {
                // `stat` shows the next image's name; this one's is the one its exec gave it.
                out.stat.comm = self.exec_comm(dir.pid).unwrap_or_default();
            }
            out.status = Status::default();
            out.env = Vec::new();
            out.fds = Default::default();
            out.cwd = None;
        }
    }

    fn read_status(&mut self, dir: &ProcDir, out: &mut Frozen) {
        if let Some((n, _)) = self.read_file(dir, c"status", MAX_SMALL_BYTES) {
            out.status = parse_status(&String::from_utf8_lossy(&self.buf[..n]));
        }
    }

    /// `stat` of a process whose areas came from its stack: read now that it runs again. The
    /// name, parent, start time, terminal, session and group do not change in the
    /// microseconds since (a second exec is caught by the check at the end of
    /// [`FrozenReader::read_resumed`], which then puts back the name of this image). A traced
    /// process cannot be reaped before this thread has waited for it, so `stat` is there; if
    /// it is not, the name still comes from the exec.
    fn read_deferred_stat(&mut self, dir: &ProcDir, out: &mut Frozen) {
        let stat = self
            .read_file(dir, c"stat", MAX_SMALL_BYTES)
            .and_then(|(n, _)| parse_stat(&self.buf[..n]));
        out.stat = stat.unwrap_or_else(|| Stat {
            pid: dir.pid,
            comm: self.exec_comm(dir.pid).unwrap_or_default(),
            ..Stat::default()
        });
    }

    /// The name (`comm`) the last exec of `pid` gave it, from the stack read at its exec stop.
    fn exec_comm(&self, pid: i32) -> Option<String> {
        let layout = self.snap_layout.filter(|_| self.snap_pid == pid)?;
        crate::procfs::exec_comm(self.snap_base, &self.snap[..self.snap_len], layout.execfn)
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
        let mut out = self.read_frozen(&dir, Memory::Files, with_cgroup, with_loginuid)?;
        self.read_resumed(&dir, &mut out);
        Some(out)
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
        Some(std_fd_of(&self.proc_root, dir.pid, kind, target))
    }
}

/// Whether a stop of the tracee `pid` waits to be reaped by this thread (`waitid` with
/// `WNOWAIT`: the status stays for the next `waitpid`). `ECHILD` for a tracee means a zombie
/// (a zombie is not waitable for a stop), which has no stop pending; on any other error,
/// `true` (the caller then checks the slow way).
fn stop_pending(pid: i32) -> bool {
    let Ok(id) = libc::id_t::try_from(pid) else {
        return true;
    };
    // SAFETY: an all-zero `siginfo_t` is a valid value of this plain C struct.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: `info` is a valid, writable `siginfo_t` for the duration of the call.
    let rc = unsafe {
        libc::waitid(
            libc::P_PID,
            id,
            &mut info,
            libc::WSTOPPED | libc::WNOHANG | libc::WNOWAIT | libc::__WALL,
        )
    };
    if rc != 0 {
        return Errno::last() != Errno::ECHILD;
    }
    // SAFETY: `info` was zeroed and then possibly filled by the kernel; `si_pid` stays 0
    // when no child matched.
    unsafe { info.si_pid() != 0 }
}

/// How [`FrozenReader::read_frozen`] reads the command line and the environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Memory {
    /// From the process's memory, at the addresses `stat` gives: only for a process stopped
    /// at its exec stop, whose argument and environment areas are exactly as the kernel laid
    /// them out (no instruction of the new image has run, so nothing was rewritten in place),
    /// which is what the `/proc` files would show. Falls back to the files.
    Exec,
    /// From `/proc/<pid>/cmdline` and `environ` (a running process may have rewritten its
    /// arguments; the kernel's reading of them handles that).
    Files,
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::procfs::parse_exe_link;
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
        assert!(!frozen.crossed_exec);
        let options = crate::collect::proc::ReadOptions {
            env_allowlist: vec!["PATH".to_string()],
            max_cmdline_bytes: 64 * 1024,
            access: crate::collect::access::Access::current(),
        };
        let identity = crate::collect::proc::read_identity(root, stat, &options.access, &mut buf);
        let clock = crate::collect::proc::Clock::read(root);
        let read =
            crate::collect::proc::read_process(root, identity, &clock, &options, &mut buf).unwrap();
        let p = read.process;
        assert_eq!(frozen.cmdline.argv0, p.exe);
        assert_eq!(frozen.cmdline.args, p.args);
        assert_eq!(
            frozen.exe.as_deref().map(|exe| parse_exe_link(exe).0),
            p.exepath
        );
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
    fn a_pending_stop_is_seen_and_left_for_waitpid() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let pid = i32::try_from(child.id()).unwrap();
        assert!(!stop_pending(pid), "a running child has no stop pending");
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGSTOP).unwrap();
        wait_for("the stop never showed", || stop_pending(pid));
        // Still there: WNOWAIT left the status in place.
        assert!(stop_pending(pid));
        let status = nix::sys::wait::waitpid(
            nix::unistd::Pid::from_raw(pid),
            Some(nix::sys::wait::WaitPidFlag::WUNTRACED),
        )
        .unwrap();
        assert!(matches!(status, nix::sys::wait::WaitStatus::Stopped(..)));
        assert!(!stop_pending(pid));
        child.kill().unwrap();
        child.wait().unwrap();
        // Not a child of this process (ECHILD, as for a zombie tracee): nothing pending.
        assert!(!stop_pending(1));
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
        wait_for("the child never became sleep", || {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap() == "sleep\n"
        });
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
        assert_eq!(read.stat.comm, "sleep");
    }

    /// A busybox shell blocked in `read` (it never rewrites its arguments), started with
    /// hostile arguments and environment: a newline, invalid UTF-8, a long argument.
    fn hostile_shell() -> (std::process::Child, i32) {
        use std::os::unix::ffi::OsStrExt;
        let long = "x".repeat(3000);
        let child = std::process::Command::new("/bin/busybox")
            .args(["sh", "-c", "read x", "name", "two\nlines"])
            .arg(std::ffi::OsStr::from_bytes(b"bad\xffutf8"))
            .arg(&long)
            .env_clear()
            .env("PATH", std::ffi::OsStr::from_bytes(b"/bin:\xfe"))
            .env("HOME", "/root\nx")
            .env("SECRET", "not kept")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let pid = i32::try_from(child.id()).unwrap();
        // `spawn` can return before the new image's arguments are in place.
        wait_for("the shell never ran", || {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .unwrap()
                .ends_with(format!("{long}\0").as_bytes())
        });
        (child, pid)
    }

    #[test]
    fn memory_reads_give_what_the_proc_files_give() {
        let (mut child, pid) = hostile_shell();
        let allow = vec!["PATH".to_string(), "HOME".to_string()];
        // The cap cuts the long argument; the environment is read whole.
        let mut reader = FrozenReader::new(PathBuf::from("/proc"), allow, 1024);
        let dir = reader.open(pid).unwrap();
        let mut memory = reader.read_frozen(&dir, Memory::Exec, false, false);
        let mut files = reader.read_frozen(&dir, Memory::Files, false, false);
        // Only the command line and the executable are read while frozen.
        assert!(memory.as_ref().unwrap().env.is_empty());
        assert!(memory.as_ref().unwrap().status.euid.is_none());
        for read in [memory.as_mut(), files.as_mut()].into_iter().flatten() {
            reader.read_resumed(&dir, read);
        }
        // The memory path was taken, not its fallback to the files.
        let stat = std::fs::read(format!("/proc/{pid}/stat")).unwrap();
        let [args, env] = parse_stat_areas(&stat).unwrap();
        assert_eq!(reader.read_memory(pid, args, 1024), Some((1024, true)));
        let whole = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
        assert_eq!(
            reader.read_memory(pid, args, 64 * 1024),
            Some((whole.len(), false))
        );
        assert_eq!(reader.buf[..whole.len()], whole[..]);
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
        assert_eq!(
            reader.read_memory(pid, env, MAX_ENVIRON_BYTES),
            Some((environ.len(), false))
        );
        assert_eq!(reader.buf[..environ.len()], environ[..]);
        drop(child.stdin.take());
        child.kill().unwrap();
        child.wait().unwrap();
        let (memory, files) = (memory.unwrap(), files.unwrap());
        assert_eq!(memory.cmdline, files.cmdline);
        assert!(memory.cmdline.truncated);
        assert_eq!(memory.cmdline.argv0.as_deref(), Some("/bin/busybox"));
        assert_eq!(
            memory.cmdline.args[..5],
            ["sh", "-c", "read x", "name", "two\nlines"]
        );
        assert_eq!(memory.cmdline.args[5], "bad\u{fffd}utf8");
        assert_eq!(memory.env, files.env);
        let mut env = memory.env.clone();
        env.sort();
        assert_eq!(
            env,
            vec![
                ("HOME".to_string(), "/root\nx".to_string()),
                ("PATH".to_string(), "/bin:\u{fffd}".to_string())
            ]
        );
        assert_eq!(memory.stat.comm, "busybox");
    }

    /// `program args` started under `PTRACE_TRACEME` with a small environment, stopped at the
    /// `SIGTRAP` that follows its exec (the same point as an exec event stop).
    fn at_exec_stop(program: &str, args: &[&str]) -> (std::process::Child, i32) {
        at_exec_stop_with(program, args, 0)
    }

    /// [`at_exec_stop`] with `extra` more environment variables (`V0=0`, `V1=1`, ...).
    fn at_exec_stop_with(program: &str, args: &[&str], extra: usize) -> (std::process::Child, i32) {
        let mut command = std::process::Command::new(program);
        command
            .args(args)
            .env_clear()
            .env("PATH", "/bin")
            .env("SECRET", "not kept")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null());
        for i in 0..extra {
            command.env(format!("V{i}"), i.to_string());
        }
        super::super::ptrace::spawn_at_exec_stop(&mut command)
    }

    /// Waits (at most 5 s) until `done`, failing the test with `what` otherwise.
    fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !done() {
            assert!(std::time::Instant::now() < deadline, "{what}");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    /// A reader keeping `allow`, and what it reads of `pid` frozen at its exec stop.
    fn read_at_exec_stop(pid: i32, allow: &[&str]) -> (FrozenReader, ProcDir, Frozen) {
        let allow = allow.iter().map(|name| name.to_string()).collect();
        let mut reader = FrozenReader::new(PathBuf::from("/proc"), allow, 1024);
        let dir = reader.open(pid).unwrap();
        let read = reader
            .read_frozen(&dir, Memory::Exec, false, false)
            .unwrap();
        (reader, dir, read)
    }

    fn cont(pid: i32) {
        nix::sys::ptrace::cont(nix::unistd::Pid::from_raw(pid), None).unwrap();
    }

    fn state(pid: i32) -> char {
        let stat = std::fs::read(format!("/proc/{pid}/stat")).unwrap();
        parse_stat(&stat).unwrap().state
    }

    #[test]
    fn at_an_exec_stop_only_the_stack_and_executable_are_read_before_resuming() {
        let (mut child, pid) = at_exec_stop("/bin/busybox", &["sh", "-c", "read x", "a b"]);
        let (mut reader, dir, mut read) = read_at_exec_stop(pid, &["PATH"]);
        // The areas came from the stack: `stat` is left for after resuming.
        assert!(read.stat_deferred);
        assert_eq!(read.stat.comm, "");
        assert_eq!(read.cmdline.argv0.as_deref(), Some("/bin/busybox"));
        assert_eq!(read.cmdline.args, ["sh", "-c", "read x", "a b"]);
        assert!(read.exe.as_deref().unwrap().ends_with("/busybox"));
        cont(pid);
        reader.read_resumed(&dir, &mut read);
        assert!(!read.crossed_exec);
        assert_eq!(read.stat.comm, "busybox");
        assert_eq!(read.stat.ppid, i32::try_from(std::process::id()).unwrap());
        assert!(read.stat.starttime > 0);
        assert_eq!(read.env, [("PATH".to_string(), "/bin".to_string())]);
        assert_eq!(read.status.euid, Some(nix::unistd::geteuid().as_raw()));
        assert_eq!(read.fds[0].as_ref().unwrap().kind, FdKind::Pipe);
        assert!(read.cwd.is_some());
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// Pointer tables longer than the stack read (3000 environment variables: 24 KiB of
    /// `envp`): the areas come from `stat`, read while frozen as before, and the command line
    /// and environment are still right.
    #[test]
    fn tables_past_the_stack_read_fall_back_to_stat() {
        let (mut child, pid) = at_exec_stop_with("/bin/busybox", &["sh", "-c", "read x"], 3000);
        let (mut reader, dir, mut read) = read_at_exec_stop(pid, &["PATH", "V2999"]);
        assert!(
            !read.stat_deferred,
            "the stack read could not hold the tables"
        );
        assert_eq!(read.stat.comm, "busybox");
        assert_eq!(read.cmdline.args, ["sh", "-c", "read x"]);
        cont(pid);
        reader.read_resumed(&dir, &mut read);
        child.kill().unwrap();
        child.wait().unwrap();
        let mut env = read.env.clone();
        env.sort();
        assert_eq!(
            env,
            [
                ("PATH".to_string(), "/bin".to_string()),
                ("V2999".to_string(), "2999".to_string())
            ]
        );
        assert!(read.status.euid.is_some());
    }

    #[test]
    fn a_process_that_exits_at_once_keeps_its_name_environment_and_credentials() {
        let (mut child, pid) = at_exec_stop("/bin/true", &[]);
        let (mut reader, dir, mut read) = read_at_exec_stop(pid, &["PATH"]);
        cont(pid);
        wait_for("it never exited", || state(pid) == 'Z');
        reader.read_resumed(&dir, &mut read);
        child.wait().unwrap();
        assert_eq!(read.stat.comm, "true");
        assert_eq!(read.stat.state, 'Z');
        // Read with the stack at the exec, so not lost with the process's memory.
        assert_eq!(read.env, [("PATH".to_string(), "/bin".to_string())]);
        assert_eq!(read.status.euid, Some(nix::unistd::geteuid().as_raw()));
        // Gone with the process: unknown, not "closed".
        assert_eq!(read.fds, [None, None, None]);
        assert_eq!(read.cwd, None);
    }

    #[test]
    fn a_second_exec_before_the_resumed_reads_keeps_the_first_images_name() {
        let (mut child, pid) =
            at_exec_stop("/bin/busybox", &["sh", "-c", "exec /bin/sleep 5", "x"]);
        let (mut reader, dir, mut read) = read_at_exec_stop(pid, &[]);
        cont(pid);
        // Its next exec stop is pending (only this thread could resume it).
        wait_for("it never exec'd again", || stop_pending(pid));
        reader.read_resumed(&dir, &mut read);
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(read.crossed_exec);
        assert_eq!(read.stat.comm, "busybox");
        assert_eq!(read.cmdline.args, ["sh", "-c", "exec /bin/sleep 5", "x"]);
        assert!(read.status.euid.is_none() && read.cwd.is_none());
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
