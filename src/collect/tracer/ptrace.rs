//! The ptrace calls of the tracer thread and the decoding of `waitpid` statuses: raw numbers,
//! so that every signal, real-time ones included, is resumed exactly.

use nix::errno::Errno;
use nix::sys::ptrace::Options;
use tracing::debug;

/// The ptrace options: event stops only, and never `EXITKILL`. Not `TRACEEXIT` either: the exit
/// status comes with the `waitpid` status of the reaped tracee, and an exit stop would only
/// add a stop (two context switches) to every process's life.
pub(super) fn trace_options() -> Options {
    Options::PTRACE_O_TRACEFORK
        | Options::PTRACE_O_TRACEVFORK
        | Options::PTRACE_O_TRACECLONE
        | Options::PTRACE_O_TRACEEXEC
}

/// A decoded `waitpid` status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Status {
    /// Stopped with this signal and ptrace event (0: a signal-delivery stop).
    Stopped { sig: i32, event: i32 },
    /// Exited with this code.
    Exited(i32),
    /// Killed by this signal.
    Signaled(i32),
}

pub(super) fn decode(status: i32) -> Option<Status> {
    if libc::WIFSTOPPED(status) {
        Some(Status::Stopped {
            sig: libc::WSTOPSIG(status),
            event: (status >> 16) & 0xff,
        })
    } else if libc::WIFEXITED(status) {
        Some(Status::Exited(libc::WEXITSTATUS(status)))
    } else if libc::WIFSIGNALED(status) {
        Some(Status::Signaled(libc::WTERMSIG(status)))
    } else {
        None
    }
}

/// `waitpid(-1, __WALL | WNOHANG)` with the raw status: `Ok(None)` when nothing is pending.
pub(super) fn wait_any() -> Result<Option<(i32, i32)>, Errno> {
    let mut status: libc::c_int = 0;
    // SAFETY: `status` is a valid, writable `c_int` for the duration of the call.
    let pid = unsafe { libc::waitpid(-1, &mut status, libc::__WALL | libc::WNOHANG) };
    match pid {
        0 => Ok(None),
        p if p > 0 => Ok(Some((p, status))),
        _ => Err(Errno::last()),
    }
}

/// `PTRACE_CONT` with a raw signal number (0: none), so that any signal, real-time ones
/// included, is re-injected exactly.
fn cont_raw(pid: i32, sig: i32) -> Result<(), Errno> {
    // SAFETY: PTRACE_CONT takes no pointers: `addr` is ignored and `data` is the signal number.
    let rc = unsafe {
        libc::ptrace(
            libc::PTRACE_CONT,
            pid,
            std::ptr::null_mut::<libc::c_void>(),
            sig as libc::c_long as *mut libc::c_void,
        )
    };
    if rc < 0 { Err(Errno::last()) } else { Ok(()) }
}

/// Resumes a stopped tracee with `sig` (0: none). A tracee that vanished meanwhile (killed by
/// `SIGKILL`) is not an error.
pub(super) fn resume(pid: i32, sig: i32) {
    if let Err(error) = cont_raw(pid, sig)
        && error != Errno::ESRCH
    {
        debug!(pid, %error, "PTRACE_CONT failed");
    }
}

/// `PTRACE_LISTEN` (nix has no wrapper): the tracee stays in its group-stop, as it would
/// untraced, but the tracer is notified when it is continued or killed.
pub(super) fn listen(pid: i32) -> Result<(), Errno> {
    // SAFETY: PTRACE_LISTEN takes no pointers: `addr` and `data` are ignored.
    let rc = unsafe {
        libc::ptrace(
            libc::PTRACE_LISTEN,
            pid,
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_void>(),
        )
    };
    if rc < 0 { Err(Errno::last()) } else { Ok(()) }
}

/// The stack pointer of a stopped tracee (`PTRACE_GETREGSET` with `NT_PRSTATUS`, which both
/// x86-64 and arm64 have). `None` when the call fails, on another architecture, or for a
/// tracee whose register set is not this architecture's (a 32-bit process on a 64-bit kernel
/// gives a shorter set): the caller then reads `/proc` instead.
pub(super) fn stack_pointer(pid: i32) -> Option<u64> {
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    {
        // SAFETY: an all-zero `user_regs_struct` is a valid value of this plain C struct.
        let mut regs: libc::user_regs_struct = unsafe { std::mem::zeroed() };
        let size = std::mem::size_of::<libc::user_regs_struct>();
        let mut iov = libc::iovec {
            iov_base: (&raw mut regs).cast(),
            iov_len: size,
        };
        // SAFETY: `iov` describes `regs`, writable and alive for the duration of the call; the
        // kernel writes at most `iov_len` bytes and sets `iov_len` to what it wrote.
        let rc = unsafe {
            libc::ptrace(
                libc::PTRACE_GETREGSET,
                pid,
                libc::NT_PRSTATUS as usize as *mut libc::c_void,
                (&raw mut iov).cast::<libc::c_void>(),
            )
        };
        if rc < 0 || iov.iov_len != size {
            return None;
        }
        #[cfg(target_arch = "x86_64")]
        let sp = regs.rsp;
        #[cfg(target_arch = "aarch64")]
        let sp = regs.sp;
        Some(sp)
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        let _ = pid;
        None
    }
}

pub(super) fn is_stop_signal(sig: i32) -> bool {
    sig == libc::SIGSTOP || sig == libc::SIGTSTP || sig == libc::SIGTTIN || sig == libc::SIGTTOU
}

/// A process's exit status as a shell would show it: the exit code, or 128 + the signal.
pub(super) fn shell_status(status: Status) -> Option<i32> {
    match status {
        Status::Exited(code) => Some(code),
        Status::Signaled(sig) => Some(128 + sig),
        Status::Stopped { .. } => None,
    }
}

/// Spawns `command` traced by the calling thread (`PTRACE_TRACEME`) and waits for the
/// `SIGTRAP` that follows its exec: the same point as an exec event stop, for tests of what
/// is read there.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(super) fn spawn_at_exec_stop(
    command: &mut std::process::Command,
) -> (std::process::Child, i32) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the child between fork and exec and only makes one
    // async-signal-safe system call.
    unsafe {
        command.pre_exec(|| {
            nix::sys::ptrace::traceme().map_err(std::io::Error::from)?;
            Ok(())
        });
    }
    let child = command.spawn().unwrap();
    let pid = i32::try_from(child.id()).unwrap();
    let status = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None).unwrap();
    assert!(matches!(
        status,
        nix::sys::wait::WaitStatus::Stopped(_, nix::sys::signal::SIGTRAP)
    ));
    (child, pid)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn statuses_decode_exactly() {
        // Stopped by SIGRTMIN+3 (a signal nix's enum does not know) at no event.
        let rt = libc::SIGRTMIN() + 3;
        assert_eq!(
            decode((rt << 8) | 0x7f),
            Some(Status::Stopped { sig: rt, event: 0 })
        );
        assert_eq!(
            decode((libc::PTRACE_EVENT_EXEC << 16) | (libc::SIGTRAP << 8) | 0x7f),
            Some(Status::Stopped {
                sig: libc::SIGTRAP,
                event: libc::PTRACE_EVENT_EXEC
            })
        );
        assert_eq!(decode(3 << 8), Some(Status::Exited(3)));
        assert_eq!(decode(libc::SIGKILL), Some(Status::Signaled(libc::SIGKILL)));
        assert_eq!(shell_status(Status::Signaled(15)), Some(143));
        assert_eq!(shell_status(Status::Exited(7)), Some(7));
    }
}
