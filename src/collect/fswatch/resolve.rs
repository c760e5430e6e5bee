//! Path resolution inside a container root.
//!
//! A container's root is reached through `/proc/<root_pid>/root`, but following a symbolic
//! link found below it with an absolute target would leave the container (the kernel resolves
//! it against the monitor's root). Every path is therefore opened with `openat2` and
//! `RESOLVE_IN_ROOT` relative to a descriptor of the root, exactly as the container itself
//! would resolve it, and watched or listed through `/proc/self/fd/<n>`.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat2};

/// Opens `path` (absolute inside the container) below `root` with `O_PATH`.
pub(crate) fn open_in_root(root: &impl AsFd, path: &str) -> Option<OwnedFd> {
    let relative = path.trim_start_matches('/');
    let relative = if relative.is_empty() { "." } else { relative };
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    openat2(root.as_fd(), relative, how).ok()
}

/// Opens a container root directory (`<proc_root>/<pid>/root`) with `O_PATH`.
pub(crate) fn open_root(path: &Path) -> std::io::Result<OwnedFd> {
    let how = OpenHow::new().flags(OFlag::O_PATH | OFlag::O_CLOEXEC | OFlag::O_DIRECTORY);
    openat2(nix::fcntl::AT_FDCWD, path, how).map_err(std::io::Error::from)
}

/// The `/proc/self/fd/<n>` path of a descriptor: what inotify and `read_dir` are given.
pub(crate) fn fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// `stat` of an opened file.
pub(crate) fn fstat(fd: &OwnedFd) -> Option<nix::sys::stat::FileStat> {
    nix::sys::stat::fstat(fd).ok()
}

/// Whether the mode is a directory.
pub(crate) fn is_dir_mode(mode: u32) -> bool {
    mode & libc::S_IFMT == libc::S_IFDIR
}

/// Whether one path component matches a pattern component (`*` matches any run of bytes).
pub(crate) fn component_matches(pattern: &str, name: &str) -> bool {
    fn rec(p: &[u8], n: &[u8]) -> bool {
        match p.split_first() {
            None => n.is_empty(),
            Some((b'*', rest)) => (0..=n.len()).any(|i| rec(rest, &n[i..])),
            Some((c, rest)) => n.first() == Some(c) && rec(rest, &n[1..]),
        }
    }
    rec(pattern.as_bytes(), name.as_bytes())
}

/// Splits an absolute path into its components.
pub(crate) fn components(path: &str) -> Vec<&str> {
    path.split('/').filter(|c| !c.is_empty()).collect()
}

/// Joins a directory path inside the container and a name.
pub(crate) fn join(dir: &str, name: &str) -> String {
    if dir == "/" {
        format!("/{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// Most entries listed per directory while expanding patterns or walking trees.
pub(crate) const MAX_ENTRIES_PER_DIR: usize = 20_000;

/// Names of the entries of a directory (inside the container), with whether each is a
/// directory (not following symbolic links).
pub(crate) fn list_dir(root: &impl AsFd, path: &str) -> Vec<(String, bool)> {
    let Some(fd) = open_in_root(root, path) else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(fd_path(&fd)) else {
        return Vec::new();
    };
    entries
        .flatten()
        .take(MAX_ENTRIES_PER_DIR)
        .filter_map(|entry| {
            let name = entry.file_name().to_str()?.to_string();
            let is_dir = entry.file_type().ok()?.is_dir();
            Some((name, is_dir))
        })
        .collect()
}

/// What a pattern resolves to in one container.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Expansion {
    /// Existing paths matching the whole pattern.
    pub matches: Vec<String>,
    /// The deepest existing directories where a missing part of the pattern could appear: a
    /// watch for creations there lets the collector resolve the pattern again when it does.
    pub pending: Vec<String>,
}

/// Expands a pattern against the container's file system.
pub(crate) fn expand(root: &impl AsFd, pattern: &str) -> Expansion {
    let mut out = Expansion::default();
    let parts = components(pattern);
    let mut current = vec!["/".to_string()];
    for (i, part) in parts.iter().enumerate() {
        let mut next = Vec::new();
        for dir in &current {
            if part.contains('*') {
                let mut any = false;
                for (name, is_dir) in list_dir(root, dir) {
                    if component_matches(part, &name) && (is_dir || i + 1 == parts.len()) {
                        next.push(join(dir, &name));
                        any = true;
                    }
                }
                if !any {
                    out.pending.push(dir.clone());
                }
            } else {
                let candidate = join(dir, part);
                if open_in_root(root, &candidate).is_some() {
                    next.push(candidate);
                } else {
                    out.pending.push(dir.clone());
                }
            }
        }
        current = next;
        if current.is_empty() {
            break;
        }
    }
    out.matches = current;
    out
}

/// Whether `path` is the pattern or could lead to it: it matches the pattern's first
/// components (so its creation may make the pattern resolvable).
pub(crate) fn is_on_pattern_path(pattern: &str, path: &str) -> bool {
    let p = components(pattern);
    let c = components(path);
    c.len() <= p.len()
        && c.iter()
            .zip(&p)
            .all(|(name, pat)| component_matches(pat, name))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_within_one_component() {
        assert!(component_matches("cron*", "cron.d"));
        assert!(component_matches("cron*", "cron"));
        assert!(component_matches("*", "alice"));
        assert!(component_matches("*.pem", "key.pem"));
        assert!(!component_matches("cron*", "anacrontab"));
        assert!(is_on_pattern_path("/home/*/.ssh", "/home/bob"));
        assert!(is_on_pattern_path("/home/*/.ssh", "/home/bob/.ssh"));
        assert!(!is_on_pattern_path("/home/*/.ssh", "/home/bob/.sshx"));
        assert!(!is_on_pattern_path("/var/spool/cron", "/var/lib"));
    }

    #[test]
    fn resolution_stays_inside_the_root_and_reports_pending_parents() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("home/alice/.ssh")).unwrap();
        std::fs::create_dir_all(root.path().join("home/bob")).unwrap();
        std::fs::create_dir_all(root.path().join("usr/bin")).unwrap();
        // An absolute symlink: inside the container it means the container's /usr/bin.
        std::os::unix::fs::symlink("/usr/bin", root.path().join("bin")).unwrap();
        // A hostile one pointing "outside" stays inside too.
        std::os::unix::fs::symlink("/../../../../etc", root.path().join("escape")).unwrap();
        let fd = open_root(root.path()).unwrap();
        let e = expand(&fd, "/home/*/.ssh");
        assert_eq!(e.matches, vec!["/home/alice/.ssh".to_string()]);
        assert_eq!(e.pending, vec!["/home/bob".to_string()]);
        let bin = open_in_root(&fd, "/bin").unwrap();
        let usr_bin = std::fs::metadata(root.path().join("usr/bin")).unwrap();
        assert_eq!(
            fstat(&bin).unwrap().st_ino,
            std::os::unix::fs::MetadataExt::ino(&usr_bin)
        );
        assert!(open_in_root(&fd, "/escape/passwd").is_none());
        let e = expand(&fd, "/var/spool/cron");
        assert!(e.matches.is_empty());
        assert_eq!(e.pending, vec!["/".to_string()]);
    }
}
