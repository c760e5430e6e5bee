//! `/proc/<pid>/stat` (and the boot time in `/proc/stat`).

/// The `PF_KTHREAD` bit in the `flags` field of `/proc/<pid>/stat`.
const PF_KTHREAD: u64 = 0x0020_0000;

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
    pub(crate) pgrp: i32,
    /// Session (field 6).
    pub session: i32,
    /// Controlling terminal (field 7).
    pub(crate) tty_nr: u32,
    /// Kernel flags (field 9).
    pub flags: u64,
    /// Number of threads (field 20).
    pub(crate) num_threads: u32,
    /// Start time in clock ticks after boot (field 22).
    pub(crate) starttime: u64,
    /// Addresses of the memory map that change on every exec (fields 26, 27, 28, 48, 49).
    /// All zero when the process has no memory map (zombie, kernel thread) or the reader is
    /// not allowed to see them.
    pub(crate) mm: [u64; 5],
}

impl Stat {
    /// Whether this is a kernel thread.
    pub(crate) fn is_kernel_thread(&self) -> bool {
        self.flags & PF_KTHREAD != 0
    }

    /// Whether the process is a zombie or dead.
    pub(crate) fn is_zombie(&self) -> bool {
        matches!(self.state, 'Z' | 'X' | 'x')
    }

    /// Whether the memory-map fingerprint is known.
    pub(crate) fn has_mm(&self) -> bool {
        self.mm.iter().any(|&v| v != 0)
    }

    /// Whether `self` (a later reading of the same process) shows a different image than
    /// `earlier`: a different `comm`, or a different memory map (every exec builds a new one;
    /// a fork copies its parent's), or a memory map where `earlier` showed none. The last
    /// case is an exec that was in progress at the earlier reading: the kernel installs the
    /// new, empty memory map and sets the new `comm` first, and fills the map's addresses
    /// (and the command line) while it loads the program.
    pub(crate) fn image_changed_since(&self, earlier: &Stat) -> bool {
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

/// `[arg_start, arg_end]` and `[env_start, env_end]` from `stat` bytes (fields 48-51), or
/// `None` when they are missing or zero (no memory map, or not allowed to see them).
pub(crate) fn parse_stat_areas(bytes: &[u8]) -> Option<[[u64; 2]; 2]> {
    let close = bytes.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(bytes.get(close + 1..)?).ok()?;
    // The first field after the name is field 3.
    let mut fields = rest.split_ascii_whitespace().skip(48 - 3);
    let mut next = || fields.next().and_then(|f| f.parse::<u64>().ok());
    let areas = [[next()?, next()?], [next()?, next()?]];
    (areas[0][0] != 0 && areas[1][0] != 0).then_some(areas)
}

/// The boot time (`btime`, seconds since the epoch) in the text of `/proc/stat`.
pub(crate) fn parse_boot_time(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::procfs::fixture;

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
    fn memory_areas_come_from_the_end_of_stat() {
        // A name with spaces and parentheses, then fields 3-52.
        let mut line = b"42 (a) b (c) S".to_vec();
        for field in 4..=52u64 {
            line.extend_from_slice(format!(" {}", field * 10).as_bytes());
        }
        assert_eq!(parse_stat_areas(&line), Some([[480, 490], [500, 510]]));
        // No memory map (or not allowed to see it): zeros.
        let zeros = b"7 (z) Z 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 9 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0";
        assert_eq!(parse_stat_areas(zeros), None);
        assert_eq!(parse_stat_areas(b"7 (z) Z 1"), None);
    }
}
