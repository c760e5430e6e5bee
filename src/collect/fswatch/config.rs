//! Watch sets: which paths of every container root are watched, for which events, and how
//! important each group is when the inotify watch budget runs out.
//!
//! A [`WatchGroup`] is a named set of [`WatchSpec`]s with a priority. A spec is an absolute
//! path inside the container whose components may contain `*` (matching within one component,
//! e.g. `/etc/cron*`, `/home/*/.ssh`), a depth (0: the directory or file itself; `n`: also
//! subdirectories down to `n` levels, followed as they are created) and the events reported
//! below it ([`Interest`]). When the budget is exhausted, the groups with the lowest priority
//! lose their watches first and a `tasksentry`/`watch_limit` event says so.

use std::path::PathBuf;
use std::time::Duration;

use inotify::WatchMask;

/// What a watch reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Interest {
    /// Files created, deleted, renamed, directories created (`creat`, `unlinkat`, `renameat`,
    /// `mkdir`).
    pub changes: bool,
    /// Content written (`open` with `evt.is_open_write`).
    pub writes: bool,
    /// Mode or other attributes changed (`chmod`).
    pub attrib: bool,
    /// Content read (`open` with `evt.is_open_read`).
    pub reads: bool,
}

impl Interest {
    /// Everything but reads: what persistence and tampering detections need.
    pub const MODIFY: Interest = Interest {
        changes: true,
        writes: true,
        attrib: true,
        reads: false,
    };
    /// Only reads.
    pub const READ: Interest = Interest {
        changes: false,
        writes: false,
        attrib: false,
        reads: true,
    };
    /// Everything.
    pub const ALL: Interest = Interest {
        changes: true,
        writes: true,
        attrib: true,
        reads: true,
    };

    /// The inotify mask that delivers these events.
    pub fn mask(self) -> WatchMask {
        let mut mask = WatchMask::empty();
        if self.changes {
            mask |=
                WatchMask::CREATE | WatchMask::DELETE | WatchMask::MOVED_FROM | WatchMask::MOVED_TO;
        }
        if self.writes {
            mask |= WatchMask::MODIFY | WatchMask::CLOSE_WRITE;
        }
        if self.attrib {
            mask |= WatchMask::ATTRIB;
        }
        if self.reads {
            mask |= WatchMask::ACCESS | WatchMask::CLOSE_NOWRITE;
        }
        mask
    }

    /// The union of two interests.
    pub fn union(self, other: Interest) -> Interest {
        Interest {
            changes: self.changes || other.changes,
            writes: self.writes || other.writes,
            attrib: self.attrib || other.attrib,
            reads: self.reads || other.reads,
        }
    }

    /// Whether nothing is reported.
    pub fn is_empty(self) -> bool {
        !(self.changes || self.writes || self.attrib || self.reads)
    }
}

/// One watched path pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchSpec {
    /// Absolute path inside the container; `*` matches within one component.
    pub pattern: String,
    /// How many levels of subdirectories are watched too (0: only the path itself).
    pub depth: u32,
    /// What is reported.
    pub interest: Interest,
}

/// A named group of specs with a priority (higher is kept longer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchGroup {
    /// Name, used in `watch_limit` events.
    pub name: String,
    /// Priority: when watches run out, groups with the lowest priority are dropped first.
    pub priority: u8,
    /// The paths.
    pub specs: Vec<WatchSpec>,
}

/// The depth used for "recursive": deep enough for any real `/etc`, bounded against hostile
/// trees.
pub const RECURSIVE: u32 = 12;

fn spec(pattern: &str, depth: u32, interest: Interest) -> WatchSpec {
    WatchSpec {
        pattern: pattern.to_string(),
        depth,
        interest,
    }
}

fn group(name: &str, priority: u8, specs: Vec<WatchSpec>) -> WatchGroup {
    WatchGroup {
        name: name.to_string(),
        priority,
        specs,
    }
}

/// The default watch set. Real directories are listed before the usual symlinks to them
/// (`/bin` -> `/usr/bin` on merged-/usr systems) so that events name the real path.
pub fn default_groups() -> Vec<WatchGroup> {
    use Interest as I;
    vec![
        group(
            "credentials",
            100,
            vec![
                spec("/etc/shadow", 0, I::READ),
                spec("/etc/gshadow", 0, I::READ),
                spec("/etc/sudoers", 0, I::READ),
                spec("/etc/sudoers.d", 0, I::READ),
                spec("/root/.ssh", 1, I::ALL),
                spec("/home/*/.ssh", 1, I::ALL),
                spec("/root/.aws", 0, I::ALL),
                spec("/home/*/.aws", 0, I::ALL),
            ],
        ),
        group("etc", 90, vec![spec("/etc", RECURSIVE, I::MODIFY)]),
        group(
            "cron",
            90,
            vec![
                spec("/var/spool/cron", 2, I::MODIFY),
                spec("/var/spool/cron/crontabs", 1, I::MODIFY),
            ],
        ),
        group(
            "home",
            80,
            vec![
                spec("/root", 0, I::MODIFY),
                spec("/home/*", 0, I::MODIFY),
                spec("/root/.config", 1, I::MODIFY),
            ],
        ),
        group(
            "binaries",
            70,
            vec![
                spec("/usr/bin", 0, I::MODIFY),
                spec("/usr/sbin", 0, I::MODIFY),
                spec("/usr/local/bin", 0, I::MODIFY),
                spec("/usr/local/sbin", 0, I::MODIFY),
                spec("/bin", 0, I::MODIFY),
                spec("/sbin", 0, I::MODIFY),
            ],
        ),
        group(
            "temp",
            60,
            vec![
                spec("/tmp", 1, I::MODIFY),
                spec("/var/tmp", 1, I::MODIFY),
                spec("/dev/shm", 1, I::MODIFY),
            ],
        ),
        group(
            "libraries",
            40,
            vec![
                spec("/usr/lib", 0, I::MODIFY),
                spec("/usr/lib/x86_64-linux-gnu", 0, I::MODIFY),
                spec("/usr/lib/aarch64-linux-gnu", 0, I::MODIFY),
                spec("/usr/local/lib", 0, I::MODIFY),
                spec("/lib", 0, I::MODIFY),
                spec("/lib64", 0, I::MODIFY),
            ],
        ),
        group(
            "packages",
            30,
            vec![
                spec("/var/lib/dpkg", 1, I::MODIFY),
                spec("/var/lib/rpm", 0, I::MODIFY),
                spec("/lib/apk/db", 0, I::MODIFY),
            ],
        ),
    ]
}

/// Settings of the fswatch collector.
#[derive(Debug, Clone)]
pub struct FsWatchConfig {
    /// Where `/proc` is; container roots are `<proc_root>/<root_pid>/root`.
    pub proc_root: PathBuf,
    /// The watch set applied to every container.
    pub groups: Vec<WatchGroup>,
    /// Reads and writes of one path within this window are reported as one `open` event.
    pub coalesce_window: Duration,
    /// The most watches this collector holds; `None`: half of
    /// `/proc/sys/fs/inotify/max_user_watches` (the rest is left to procscan's triggers and to
    /// whatever else runs as the same user).
    pub max_watches: Option<usize>,
    /// Attribute events to processes by reading their `/proc/<pid>/fd`.
    pub attribution: bool,
    /// A container's fd index is rebuilt at most this often.
    pub attribution_refresh: Duration,
    /// At most this many processes of a container are read per index rebuild.
    pub attribution_max_processes: usize,
    /// How often the container table is checked for new and gone containers.
    pub container_poll: Duration,
    /// After a queue overflow, files changed since shortly before it are reported; at most
    /// this many per container and rescan.
    pub rescan_report_limit: usize,
}

impl Default for FsWatchConfig {
    fn default() -> Self {
        FsWatchConfig {
            proc_root: PathBuf::from("/proc"),
            groups: default_groups(),
            coalesce_window: Duration::from_millis(100),
            max_watches: None,
            attribution: true,
            attribution_refresh: Duration::from_millis(50),
            attribution_max_processes: 512,
            container_poll: Duration::from_millis(100),
            rescan_report_limit: 256,
        }
    }
}
