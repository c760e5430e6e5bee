//! Reading the top of a process's stack at its exec stop (see [`crate::procfs::exec_stack`]
//! for what it holds and how it is parsed): what `stat`'s `arg_start`..`env_end` give,
//! without generating `stat` (of the files read at an exec, the costliest for the kernel)
//! while the process waits.

use nix::errno::Errno;

/// How much of the stack is read at once: the pointer tables and, for most processes, the
/// strings too (then the command line and the environment need no read of their own).
pub(super) const SNAPSHOT_BYTES: usize = 16 * 1024;

/// Remote reads are split at this alignment, so that a read running past the end of the stack
/// stops at the last readable chunk instead of failing whole (`process_vm_readv` transfers
/// whole iovec elements; every page size is a multiple of this).
const CHUNK: u64 = 4096;

/// Reads `pid`'s memory from `sp` into `buf` (at most its length), stopping at the first chunk
/// that cannot be read. The byte count, or the error when nothing could be read (`ESRCH`: no
/// memory, the process is gone or a zombie).
pub(super) fn read_from(pid: i32, sp: u64, buf: &mut [u8]) -> Result<usize, Errno> {
    let mut remote = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; (SNAPSHOT_BYTES / CHUNK as usize) + 1];
    let want = u64::try_from(buf.len()).map_err(|_| Errno::EINVAL)?;
    let mut count = 0;
    let mut at = sp;
    let end = sp.checked_add(want).ok_or(Errno::EINVAL)?;
    while at < end && count < remote.len() {
        let chunk_end = ((at / CHUNK) + 1).saturating_mul(CHUNK).min(end);
        remote[count] = libc::iovec {
            iov_base: usize::try_from(at).map_err(|_| Errno::EINVAL)? as *mut libc::c_void,
            iov_len: usize::try_from(chunk_end - at).map_err(|_| Errno::EINVAL)?,
        };
        count += 1;
        at = chunk_end;
    }
    let total: usize = remote[..count].iter().map(|iov| iov.iov_len).sum();
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: total.min(buf.len()),
    };
    // SAFETY: `local` describes at most `buf.len()` writable bytes of `buf`, alive and not
    // otherwise borrowed during the call; `remote` holds only addresses in the other process,
    // which the kernel checks. `count` <= `remote.len()`, a small constant.
    let n = unsafe {
        libc::process_vm_readv(
            pid,
            &local,
            1,
            remote.as_ptr(),
            libc::c_ulong::try_from(count).map_err(|_| Errno::EINVAL)?,
            0,
        )
    };
    usize::try_from(n).map_err(|_| Errno::last())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::ptrace::{spawn_at_exec_stop, stack_pointer};
    use super::*;
    use crate::procfs::{exec_comm, parse_exec_stack, parse_stat_areas, stack_slice};

    /// A real process at its exec stop: the areas are the ones `stat` gives, the strings are
    /// `cmdline` and `environ`, and the name is `comm`.
    #[test]
    fn a_process_at_its_exec_stop_shows_what_stat_shows() {
        let long = "y".repeat(20_000);
        for (arg, env) in [
            ("short", "V=1"),
            ("short", long.as_str()),
            (long.as_str(), "V=1"),
        ] {
            let mut command = std::process::Command::new("/bin/busybox");
            command
                .args(["sh", "-c", "read x", "name", "two\nlines", arg])
                .env_clear()
                .env("PATH", "/bin")
                .env("BIG", env)
                .stdin(std::process::Stdio::piped());
            let (mut child, pid) = spawn_at_exec_stop(&mut command);
            let sp = stack_pointer(pid).unwrap();
            let mut buf = vec![0u8; SNAPSHOT_BYTES];
            let n = read_from(pid, sp, &mut buf).unwrap();
            assert!(n > 0);
            let stat = std::fs::read(format!("/proc/{pid}/stat")).unwrap();
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
            let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL)
                .unwrap();
            child.wait().unwrap();
            let [args, envs] = parse_stat_areas(&stat).unwrap();
            let got = parse_exec_stack(sp, &buf[..n]).unwrap();
            assert_eq!(got.args, args);
            assert_eq!(got.env, envs);
            // What was read whole is what the files show; a long string runs past the read.
            match exec_comm(sp, &buf[..n], got.execfn) {
                Some(name) => assert_eq!(name + "\n", comm),
                None => assert!(env.len() == long.len() || arg.len() == long.len()),
            }
            let in_read = |area| stack_slice(sp, &buf[..n], area);
            match in_read(got.args) {
                Some(bytes) => assert_eq!(bytes, &cmdline[..]),
                None => assert_eq!(arg.len(), long.len()),
            }
            match in_read(got.env) {
                Some(bytes) => assert_eq!(bytes, &environ[..]),
                None => assert!(env.len() == long.len() || arg.len() == long.len()),
            }
        }
    }
}
