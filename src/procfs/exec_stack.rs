//! The top of a process's stack at its exec stop, as bytes: where its command line,
//! environment and executed file name lie ([`parse_exec_stack`]). Read by the tracer
//! (`collect/tracer/stack.rs`) with one `process_vm_readv` from the stack pointer.
//!
//! At the exec stop no instruction of the new image has run, so the stack is exactly as the
//! kernel laid it out: from the stack pointer up, `argc`, the `argv` pointers and a null, the
//! `envp` pointers and a null, the auxiliary vector up to `AT_NULL`; above them the argument
//! strings, the environment strings and the file name given to `execve` (`AT_EXECFN`), each
//! block right after the other. So the arguments are `[argv[0], envp[0])` (or up to the file
//! name when the environment is empty), the environment `[envp[0], AT_EXECFN)`, as the kernel
//! itself records them (`stat`'s `arg_start`..`env_end`). Anything that does not fit that
//! layout (a table running past what was read, pointers out of order) is refused: the caller
//! then reads `stat`. Pure: no I/O, no panics on any input (a fuzz target holds it to that).

/// `AT_EXECFN` in the auxiliary vector: the address of the file name given to `execve`.
const AT_EXECFN: u64 = 31;

/// The areas of a process's memory that its exec laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecStack {
    /// `[start, end)` of the argument strings (what `/proc/<pid>/cmdline` shows).
    pub args: [u64; 2],
    /// `[start, end)` of the environment strings (`/proc/<pid>/environ`).
    pub env: [u64; 2],
    /// Address of the NUL-terminated file name given to `execve`.
    pub execfn: u64,
}

/// The layout in `bytes`, read from address `base` (the stack pointer at the exec stop).
/// `None` when it is not the layout an exec leaves (see the module documentation).
pub fn parse_exec_stack(base: u64, bytes: &[u8]) -> Option<ExecStack> {
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
pub fn stack_slice(base: u64, bytes: &[u8], [start, end]: [u64; 2]) -> Option<&[u8]> {
    let from = usize::try_from(start.checked_sub(base)?).ok()?;
    let to = usize::try_from(end.checked_sub(base)?).ok()?;
    bytes.get(from..to)
}

/// The name the kernel gives a process that executes the file name at `execfn`
/// (`/proc/<pid>/comm`): its last path component, cut to 15 bytes. `None` when the name was
/// not wholly read.
pub fn exec_comm(base: u64, bytes: &[u8], execfn: u64) -> Option<String> {
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
            let got = parse_exec_stack(base, &bytes).unwrap();
            assert_eq!(got, expected, "{args:?} {env:?}");
            let cmdline = stack_slice(base, &bytes, got.args).unwrap();
            let want: Vec<u8> = args
                .iter()
                .flat_map(|a| [a.as_bytes(), b"\0"].concat())
                .collect();
            assert_eq!(cmdline, &want[..]);
            assert_eq!(
                exec_comm(base, &bytes, got.execfn).as_deref(),
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
            assert_eq!(parse_exec_stack(base, &bytes[..cut]), None, "cut at {cut}");
        }
        // Pointers out of order.
        let mut swapped = bytes.clone();
        let (a, b) = (swapped[8..16].to_vec(), swapped[16..24].to_vec());
        swapped[8..16].copy_from_slice(&b);
        swapped[16..24].copy_from_slice(&a);
        assert_eq!(parse_exec_stack(base, &swapped), None);
        // A huge argc.
        let mut huge = bytes.clone();
        huge[..8].copy_from_slice(&u64::MAX.to_ne_bytes());
        assert_eq!(parse_exec_stack(base, &huge), None);
        // Strings below the tables (a base that does not fit).
        assert_eq!(parse_exec_stack(base + 0x10_0000, &bytes), None);
        // No AT_EXECFN.
        let (mut no_execfn, _) = layout(base, &["a"], &[], "/bin/a");
        let at = 8 * 6;
        no_execfn[at..at + 8].copy_from_slice(&7u64.to_ne_bytes());
        assert_eq!(parse_exec_stack(base, &no_execfn), None);
        assert_eq!(parse_exec_stack(base, &[]), None);
    }

    #[test]
    fn long_names_are_cut_like_the_kernel_cuts_them() {
        let base = 0x1000;
        let (bytes, got) = layout(base, &["x"], &[], "/opt/a-rather-long-program-name");
        assert_eq!(
            exec_comm(base, &bytes, got.execfn).as_deref(),
            Some("a-rather-long-p")
        );
        assert_eq!(exec_comm(base, &bytes[..bytes.len() - 1], got.execfn), None);
    }
}
