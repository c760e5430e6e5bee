//! Whether a package is in use: a file it owns is mapped by a running process (a shared
//! library in `/proc/PID/maps`) or is the executable of one (`/proc/PID/exe`). Paths are those
//! the process sees, which are container paths when the process runs inside the root; a path
//! under the root's own directory (a process on the same filesystem as a fixture or unpacked
//! root) is read as inside the root.

use std::collections::BTreeMap;
use std::path::Path;

use super::{Component, Root};

/// Paths mapped or executed by processes: path inside the container → the first pid seen.
pub type UsedPaths = BTreeMap<String, i32>;

/// The file paths of a `/proc/PID/maps` text (the sixth column; pseudo paths such as
/// `[heap]` and anonymous mappings left out, ` (deleted)` removed).
pub fn maps_paths(maps: &str) -> Vec<String> {
    let mut out: Vec<String> = maps
        .lines()
        .filter_map(|line| {
            // address perms offset dev inode, then the path after spaces (it may hold spaces).
            let mut rest = line;
            for _ in 0..5 {
                rest = rest.trim_start().split_once(' ').map(|(_, r)| r)?;
            }
            let path = rest.trim_start();
            let path = path.strip_suffix(" (deleted)").unwrap_or(path);
            path.starts_with('/').then(|| path.to_owned())
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Reads the mappings and executable of each pid under `proc` (normally `/proc`) into
/// container paths of `root`. A process that vanished, or whose maps cannot be read, adds
/// nothing.
pub fn used_paths(proc: &Path, pids: &[i32], root: &Root) -> UsedPaths {
    let mut used = UsedPaths::new();
    let base = root
        .base()
        .to_string_lossy()
        .trim_end_matches('/')
        .to_owned();
    let inside = |path: &str| -> String {
        match path.strip_prefix(&base) {
            Some(rest) if !base.is_empty() && rest.starts_with('/') => rest.to_owned(),
            _ => path.to_owned(),
        }
    };
    for &pid in pids {
        let dir = proc.join(pid.to_string());
        if let Ok(maps) = std::fs::read_to_string(dir.join("maps")) {
            for path in maps_paths(&maps) {
                used.entry(inside(&path)).or_insert(pid);
            }
        }
        if let Ok(exe) = std::fs::read_link(dir.join("exe")) {
            let exe = exe.to_string_lossy();
            let exe = exe.strip_suffix(" (deleted)").unwrap_or(&exe);
            used.entry(inside(exe)).or_insert(pid);
        }
    }
    used
}

/// Why `component` is in use, if it is: `(pid, path)` of the first of its files (resolved
/// inside the root, so `/lib/…` of a merged-`/usr` image is `/usr/lib/…`) that a process maps or
/// executes.
pub fn in_use(component: &Component, root: &Root, used: &UsedPaths) -> Option<(i32, String)> {
    if used.is_empty() {
        return None;
    }
    component.files.iter().find_map(|file| {
        if let Some(pid) = used.get(file) {
            return Some((*pid, file.clone()));
        }
        let canonical = root.canonical(file)?;
        used.get(&canonical).map(|pid| (*pid, canonical))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_paths_are_the_file_column() {
        let maps = "\
55d0c0a00000-55d0c0a02000 r--p 00000000 08:01 1234    /usr/bin/python3.11
7f1c2a000000-7f1c2a021000 rw-p 00000000 00:00 0 
7f1c2b000000-7f1c2b100000 r-xp 00001000 08:01 99      /usr/lib/x86_64-linux-gnu/libssl.so.3
7f1c2c000000-7f1c2c001000 r--p 00000000 08:01 100     /tmp/with space.so (deleted)
7ffd1c000000-7ffd1c021000 rw-p 00000000 00:00 0       [stack]
";
        assert_eq!(
            maps_paths(maps),
            [
                "/tmp/with space.so",
                "/usr/bin/python3.11",
                "/usr/lib/x86_64-linux-gnu/libssl.so.3"
            ]
        );
    }
}
