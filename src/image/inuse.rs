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
    let views = pids.iter().filter_map(|&pid| {
        let dir = proc.join(pid.to_string());
        let maps = std::fs::read_to_string(dir.join("maps")).ok();
        let exe = std::fs::read_link(dir.join("exe"))
            .ok()
            .map(|exe| exe.to_string_lossy().into_owned());
        (maps.is_some() || exe.is_some()).then(|| {
            let maps = maps.unwrap_or_default();
            (pid, ProcView::Read { maps, exe })
        })
    });
    Usage::gather(views, root).used
}

/// What reading one process's `/proc/PID/maps` and `/proc/PID/exe` gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProcView {
    /// Read: the maps text and the executable's path (`None` for a kernel thread or a link
    /// that could not be read while the maps could).
    Read {
        /// `/proc/PID/maps`.
        maps: String,
        /// `/proc/PID/exe`'s target.
        exe: Option<String>,
    },
    /// The process exited meanwhile: it says nothing either way.
    Gone,
    /// The kernel refused the read; why, in words.
    Denied(String),
}

/// What the processes of an image map and execute, and what could not be read.
#[derive(Debug, Clone, Default)]
pub struct Usage {
    /// Paths mapped or executed (inside the container) and the first pid seen.
    pub used: UsedPaths,
    /// Processes read.
    pub read: usize,
    /// Processes whose maps the kernel refused, with the reason of the first.
    pub denied: Vec<(i32, String)>,
}

impl Usage {
    /// Gathers the views of processes (pid and view) of a root into container paths (see
    /// [`used_paths`] for how paths under the root's directory are read).
    pub fn gather(views: impl IntoIterator<Item = (i32, ProcView)>, root: &Root) -> Usage {
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
        let mut usage = Usage::default();
        for (pid, view) in views {
            match view {
                ProcView::Read { maps, exe } => {
                    usage.read += 1;
                    for path in maps_paths(&maps) {
                        usage.used.entry(inside(&path)).or_insert(pid);
                    }
                    if let Some(exe) = exe {
                        let exe = exe.strip_suffix(" (deleted)").unwrap_or(&exe);
                        usage.used.entry(inside(exe)).or_insert(pid);
                    }
                }
                ProcView::Gone => {}
                ProcView::Denied(reason) => usage.denied.push((pid, reason)),
            }
        }
        usage
    }
}

/// Whether a package is in use, and why the answer is what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InUse {
    /// A process maps or runs one of its files: the pid and the path.
    Yes(i32, String),
    /// Every process of the image was read and none maps or runs any of its files.
    No,
    /// Cannot be said: why (no files known for the package, processes that could not be read,
    /// no process read at all).
    Unknown(String),
}

impl InUse {
    /// `yes`, `no` or `unknown`.
    pub fn as_str(&self) -> &'static str {
        match self {
            InUse::Yes(..) => "yes",
            InUse::No => "no",
            InUse::Unknown(_) => "unknown",
        }
    }

    /// The evidence or the reason, in words.
    pub fn reason(&self) -> String {
        match self {
            InUse::Yes(pid, path) => format!("pid {pid} maps or runs {path}"),
            InUse::No => {
                "no running process of the image maps or runs a file of the package".to_owned()
            }
            InUse::Unknown(why) => why.clone(),
        }
    }
}

/// Whether `component` is in use by the processes of `usage`: yes with evidence; no only when
/// its owned files are known and every process was read; unknown otherwise (never "no" for
/// what could not be seen).
pub fn verdict(component: &Component, root: &Root, usage: &Usage) -> InUse {
    if let Some((pid, path)) = in_use(component, root, &usage.used) {
        return InUse::Yes(pid, path);
    }
    if component.files.is_empty() {
        return InUse::Unknown(
            "the package database lists no files of this package (npm, Maven and some Python installs)"
                .to_owned(),
        );
    }
    if let Some((pid, reason)) = usage.denied.first() {
        return InUse::Unknown(format!(
            "the memory maps of {} of the image's processes could not be read (pid {pid}: {reason})",
            usage.denied.len()
        ));
    }
    if usage.read == 0 {
        return InUse::Unknown("no running process of the image could be read".to_owned());
    }
    InUse::No
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

    fn component(files: &[&str]) -> Component {
        Component {
            ecosystem: crate::image::Ecosystem::Debian,
            group: None,
            name: "libssl3".into(),
            version: "1".into(),
            purl: String::new(),
            location: String::new(),
            source: None,
            arch: None,
            files: files.iter().map(|f| (*f).to_owned()).collect(),
        }
    }

    #[test]
    fn a_verdict_is_no_only_when_every_process_was_read() {
        let root = Root::new("/nonexistent-root", crate::image::Limits::default());
        let lib = "/usr/lib/libssl.so.3";
        let mapping = format!("7f00-7f01 r-xp 0 08:01 9 {lib}\n");
        let read = |maps: &str| ProcView::Read {
            maps: maps.to_owned(),
            exe: Some("/usr/bin/app".to_owned()),
        };
        let ssl = component(&[lib]);
        let usage = Usage::gather([(7, read(&mapping)), (8, ProcView::Gone)], &root);
        assert_eq!(verdict(&ssl, &root, &usage), InUse::Yes(7, lib.to_owned()));
        let app = component(&["/usr/bin/app"]);
        assert_eq!(verdict(&app, &root, &usage).as_str(), "yes");
        let other = component(&["/usr/lib/libz.so.1"]);
        assert_eq!(verdict(&other, &root, &usage), InUse::No);
        // One process unreadable: the unmapped package is unknown, the mapped one still yes.
        let partly = Usage::gather(
            [
                (7, read(&mapping)),
                (9, ProcView::Denied("permission denied".into())),
            ],
            &root,
        );
        assert_eq!(verdict(&ssl, &root, &partly).as_str(), "yes");
        let unknown = verdict(&other, &root, &partly);
        assert_eq!(unknown.as_str(), "unknown");
        assert!(unknown.reason().contains("pid 9"), "{}", unknown.reason());
        // Nothing read, or no files known: unknown.
        let none = Usage::gather([(8, ProcView::Gone)], &root);
        assert_eq!(verdict(&other, &root, &none).as_str(), "unknown");
        assert_eq!(verdict(&component(&[]), &root, &usage).as_str(), "unknown");
    }

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
