//! Where the command line, the environment and the executed file name of a process stopped at
//! its exec stop lie in its memory, found from its stack pointer and one read of the top of its
//! stack: what `stat`'s `arg_start`, `arg_end`, `env_start` and `env_end` give, without
//! generating `stat` (of the files read at an exec, the costliest for the kernel) while the
//! process waits.
//!
//! At the exec stop no instruction of the new image has run, so the stack is exactly as the
//! kernel laid it out: from the stack pointer up, `argc`, the `argv` pointers and a null, the
//! `envp` pointers and a null, the auxiliary vector up to `AT_NULL`; above them the argument
//! strings, the environment strings and the file name given to `execve` (`AT_EXECFN`), each
//! block right after the other. So the arguments are `[argv[0], envp[0])` (or up to the file
//! name when the environment is empty), the environment `[envp[0], AT_EXECFN)`, as the kernel
//! itself records them. Anything that does not fit that layout (a table running past what was
//! read, pointers out of order) is refused and the caller reads `stat`.

use nix::errno::Errno;

/// How much of the stack is read at once: the pointer tables and, for most processes, the
/// strings too (then the command line and the environment need no read of their own).
pub(super) const SNAPSHOT_BYTES: usize = 16 * 1024;

/// Remote reads are split at this alignment, so that a read running past the end of the stack
/// stops at the last readable chunk instead of failing whole (`process_vm_readv` transfers
/// whole iovec elements; every page size is a multiple of this).
const CHUNK: u64 = 4096;

/// `AT_EXECFN` in the auxiliary vector: the address of the file name given to `execve`.
const AT_EXECFN: u64 = 31;

/// The areas of a process's memory that its exec laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ExecStack {
    /// `[start, end)` of the argument strings (what `/proc/<pid>/cmdline` shows).
    pub args: [u64; 2],
    /// `[start, end)` of the environment strings (`/proc/<pid>/environ`).
    pub env: [u64; 2],
    /// Address of the NUL-terminated file name given to `execve`.
    pub execfn: u64,
}

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

/// The layout in `bytes`, read from address `base` (the stack pointer at the exec stop).
/// `None` when it is not the layout an exec leaves (see the module documentation).
pub(super) fn parse(base: u64, bytes: &[u8]) -> Option<ExecStack> {
    let word = |i: usize| -> Option<u64> {
        let start = i.checked_mul(8)?;
        let raw: [u8; 8] = bytes.get(start..start.checked_add(8)?)?.try_into().ok()?;
        Some(u64::from_ne_bytes(raw))
    };
    let argc = usize::try_from(word(0)?).ok()?;
    if argc > bytes.len() / 8 {
        return None;
    }
    // Pointers of one table are in increasing order (each string follows the previous one).
    let ordered = |from: usize, to: usize| -> Option<(Option<u64>, Option<u64>)> {
        let mut first = None;
        let mut last: Option<u64> = None;
        for i in from..to {
            let p = word(i)?;
            if p == 0 || last.is_some_and(|l| p <= l) {
                return None;
            }
            first.get_or_insert(p);
            last = Some(p);
        }
        Some((first, last))
    };
    let (arg_first, arg_last) = ordered(1, 1 + argc)?;
    let mut i = 1 + argc;
    if word(i)? != 0 {
        return None;
    }
    i += 1;
    let env_from = i;
    while word(i)? != 0 {
        i += 1;
    }
    let (env_first, env_last) = ordered(env_from, i)?;
    i += 1;
    let mut execfn = None;
    loop {
        let (kind, value) = (word(i)?, word(i + 1)?);
        i += 2;
        match kind {
            0 => break,
            AT_EXECFN => execfn = Some(value),
            _ => {}
        }
    }
    let execfn = execfn?;
    let tables_end = base.checked_add(u64::try_from(i.checked_mul(8)?).ok()?)?;
    let arg_end = env_first.unwrap_or(execfn);
    let arg_start = arg_first.unwrap_or(arg_end);
    // Strings above the tables, arguments below the environment below the file name.
    let in_order = tables_end <= arg_start
        && arg_last.is_none_or(|l| l < arg_end)
        && arg_end <= execfn
        && env_last.is_none_or(|l| l < execfn);
    in_order.then_some(ExecStack {
        args: [arg_start, arg_end],
        env: [env_first.unwrap_or(execfn), execfn],
        execfn,
    })
}

/// The part of `bytes` (read from `base`) that holds `[start, end)`, when all of it was read.
pub(super) fn slice(base: u64, bytes: &[u8], [start, end]: [u64; 2]) -> Option<&[u8]> {
    let from = usize::try_from(start.checked_sub(base)?).ok()?;
    let to = usize::try_from(end.checked_sub(base)?).ok()?;
    bytes.get(from..to)
}

/// The name the kernel gives a process that executes the file name at `execfn`
/// (`/proc/<pid>/comm`): its last path component, cut to 15 bytes. `None` when the name was
/// not wholly read.
pub(super) fn comm_of(base: u64, bytes: &[u8], execfn: u64) -> Option<String> {
    let from = usize::try_from(execfn.checked_sub(base)?).ok()?;
    let rest = bytes.get(from..)?;
    let name = &rest[..rest.iter().position(|&b| b == 0)?];
    let base_name = name.rsplit(|&b| b == b'/').next().unwrap_or(name);
    Some(String::from_utf8_lossy(&base_name[..base_name.len().min(15)]).into_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::procfs::parse_stat_areas;
    use std::os::unix::process::CommandExt;

    /// A stack as an exec lays it out at `base`: tables, then the strings.
    fn layout(base: u64, args: &[&str], env: &[&str], execfn: &str) -> (Vec<u8>, ExecStack) {
        let words = 1 + args.len() + 1 + env.len() + 1 + 2 * 3;
        let strings_at = base + u64::try_from(words * 8).unwrap() + 24; // random bytes, padding
        let mut strings = Vec::new();
        let mut push = |s: &str| {
            let at = strings_at + u64::try_from(strings.len()).unwrap();
            strings.extend_from_slice(s.as_bytes());
            strings.push(0);
            at
        };
        let argv: Vec<u64> = args.iter().map(|a| push(a)).collect();
        let envp: Vec<u64> = env.iter().map(|e| push(e)).collect();
        let fname = push(execfn);
        let mut out = Vec::new();
        let mut w = |v: u64| out.extend_from_slice(&v.to_ne_bytes());
        w(u64::try_from(args.len()).unwrap());
        argv.iter().for_each(|&p| w(p));
        w(0);
        envp.iter().for_each(|&p| w(p));
        w(0);
        for (k, v) in [(6, 4096), (AT_EXECFN, fname), (0, 0)] {
            w(k);
            w(v);
        }
        out.resize(usize::try_from(strings_at - base).unwrap(), 0);
        out.extend_from_slice(&strings);
        let arg_end = envp.first().copied().unwrap_or(fname);
        let expected = ExecStack {
            args: [argv.first().copied().unwrap_or(arg_end), arg_end],
            env: [envp.first().copied().unwrap_or(fname), fname],
            execfn: fname,
        };
        (out, expected)
    }

    #[test]
    fn areas_follow_from_the_tables() {
        let base = 0x7ffd_0000_1000;
        for (args, env) in [
            (&["sh", "-c", "echo hi"][..], &["PATH=/bin", "HOME=/"][..]),
            (&["sleeper", "0"][..], &[][..]),
            (&[][..], &["A=1"][..]),
        ] {
            let (bytes, expected) = layout(base, args, env, "/usr/bin/sleeper");
            let got = parse(base, &bytes).unwrap();
            assert_eq!(got, expected, "{args:?} {env:?}");
            let cmdline = slice(base, &bytes, got.args).unwrap();
            let want: Vec<u8> = args
                .iter()
                .flat_map(|a| [a.as_bytes(), b"\0"].concat())
                .collect();
            assert_eq!(cmdline, &want[..]);
            assert_eq!(
                comm_of(base, &bytes, got.execfn).as_deref(),
                Some("sleeper")
            );
        }
    }

    #[test]
    fn anything_else_is_refused() {
        let base = 0x7ffd_0000_1000;
        let (bytes, _) = layout(base, &["a", "b"], &["X=1"], "/bin/a");
        // Cut anywhere inside the tables.
        for cut in (0..8 * 12).step_by(4) {
            assert_eq!(parse(base, &bytes[..cut]), None, "cut at {cut}");
        }
        // Pointers out of order.
        let mut swapped = bytes.clone();
        let (a, b) = (swapped[8..16].to_vec(), swapped[16..24].to_vec());
        swapped[8..16].copy_from_slice(&b);
        swapped[16..24].copy_from_slice(&a);
        assert_eq!(parse(base, &swapped), None);
        // A huge argc.
        let mut huge = bytes.clone();
        huge[..8].copy_from_slice(&u64::MAX.to_ne_bytes());
        assert_eq!(parse(base, &huge), None);
        // Strings below the tables (a base that does not fit).
        assert_eq!(parse(base + 0x10_0000, &bytes), None);
        // No AT_EXECFN.
        let (mut no_execfn, _) = layout(base, &["a"], &[], "/bin/a");
        let at = 8 * 6;
        no_execfn[at..at + 8].copy_from_slice(&7u64.to_ne_bytes());
        assert_eq!(parse(base, &no_execfn), None);
        assert_eq!(parse(base, &[]), None);
    }

    #[test]
    fn long_names_are_cut_like_the_kernel_cuts_them() {
        let base = 0x1000;
        let (bytes, got) = layout(base, &["x"], &[], "/opt/a-rather-long-program-name");
        assert_eq!(
            comm_of(base, &bytes, got.execfn).as_deref(),
            Some("a-rather-long-p")
        );
        assert_eq!(comm_of(base, &bytes[..bytes.len() - 1], got.execfn), None);
    }

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
            // SAFETY: the closure runs in the child between fork and exec and only makes one
            // async-signal-safe system call.
            unsafe {
                command.pre_exec(|| {
                    nix::sys::ptrace::traceme().map_err(std::io::Error::from)?;
                    Ok(())
                });
            }
            let mut child = command.spawn().unwrap();
            let pid = i32::try_from(child.id()).unwrap();
            // The legacy SIGTRAP after a traced exec: the same point as the exec event stop.
            let status = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None).unwrap();
            assert!(matches!(
                status,
                nix::sys::wait::WaitStatus::Stopped(_, nix::sys::signal::SIGTRAP)
            ));
            let sp = super::super::ptrace::stack_pointer(pid).unwrap();
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
            let got = parse(sp, &buf[..n]).unwrap();
            assert_eq!(got.args, args);
            assert_eq!(got.env, envs);
            // What was read whole is what the files show; a long string runs past the read.
            match comm_of(sp, &buf[..n], got.execfn) {
                Some(name) => assert_eq!(name + "\n", comm),
                None => assert!(env.len() == long.len() || arg.len() == long.len()),
            }
            let in_read = |area| slice(sp, &buf[..n], area);
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
