//! Link targets under `/proc/<pid>`: `exe`, `ns/*`, `fd/*` (files, pipes, sockets).

use std::os::unix::fs::MetadataExt;

use crate::event::FdKind;

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
pub(crate) fn classify_fd(target: &str, meta: Option<&std::fs::Metadata>) -> FdKind {
    classify_fd_mode(target, meta.map(|m| (m.mode(), m.rdev())))
}

/// [`classify_fd`] from the raw `st_mode` and `st_rdev` of a `stat` through the magic link
/// (for callers that use `fstatat` rather than `std::fs::metadata`).
pub(crate) fn classify_fd_mode(target: &str, mode_rdev: Option<(u32, u64)>) -> FdKind {
    if target.starts_with("pipe:[") {
        return FdKind::Pipe;
    }
    if target.starts_with("socket:[") {
        // IPv4/IPv6/Unix refinement needs the socket tables (`collect::sockets::refine_socket_fd`).
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

/// The inode of a `socket:[N]` link target.
pub(crate) fn socket_inode(target: &str) -> Option<u64> {
    target
        .strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::procfs::fixture;
    use crate::procfs::parse_loginuid;

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
}
