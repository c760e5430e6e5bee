//! Watch sets: which paths of every container root are watched, for which events, and how
//! important each group is when the inotify watch budget runs out.
//!
//! A [`WatchGroup`] is a named set of [`WatchSpec`]s with a priority. A spec is an absolute
//! path inside the container whose components may contain `*` (matching within one component,
//! e.g. `/etc/cron*`, `/home/*/.ssh`), a depth (0: the directory or file itself; `n`: also
//! subdirectories down to `n` levels, followed as they are created) and the events reported
//! below it ([`Interest`]). When the budget is exhausted, the groups with the lowest priority
//! lose their watches first and a `tasksentry`/`watch_limit` event says so, naming the group and
//! its paths.
//!
//! Users shape the set with the settings `watch` (extra entries, [`UserWatch`]), `watch_remove`
//! (default groups or paths to drop), `watch_defaults` (start from nothing) and `watch_budget`;
//! [`build_groups`] turns them into the groups the collector uses.

use std::path::PathBuf;
use std::time::Duration;

use inotify::WatchMask;

/// What a watch reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Interest {
    /// Files and directories created (`creat`, `mkdir`).
    pub create: bool,
    /// Files and directories deleted (`unlinkat`).
    pub delete: bool,
    /// Files and directories renamed or moved in or out (`renameat`).
    pub(crate) moves: bool,
    /// Content written (`open` with `evt.is_open_write`).
    pub writes: bool,
    /// Mode or other attributes changed (`chmod`).
    pub attrib: bool,
    /// Content read (`open` with `evt.is_open_read`).
    pub reads: bool,
}

/// The event names a configured watch entry may ask for, with what each means (setting
/// `watch`, see [`UserWatch`]).
pub(crate) const EVENT_NAMES: &[(&str, &str)] = &[
    ("read", "content read (`open` with evt.is_open_read)"),
    ("write", "content written (`open` with evt.is_open_write)"),
    ("open", "read and write"),
    ("create", "files and directories created (`creat`, `mkdir`)"),
    ("delete", "files and directories deleted (`unlinkat`)"),
    ("move", "renamed, moved in or out (`renameat`)"),
    ("attrib", "mode and other attributes changed (`chmod`)"),
    ("modify", "create, delete, move, write and attrib"),
    ("all", "every event, reads included"),
];

impl Interest {
    /// Everything but reads: what persistence and tampering detections need.
    pub(crate) const MODIFY: Interest = Interest {
        reads: false,
        ..Interest::ALL
    };
    /// Only reads.
    pub(crate) const READ: Interest = Interest {
        create: false,
        delete: false,
        moves: false,
        writes: false,
        attrib: false,
        reads: true,
    };
    /// Only what makes a file appear: created, or moved in (or out).
    pub(crate) const APPEAR: Interest = Interest {
        create: true,
        delete: false,
        moves: true,
        writes: false,
        attrib: false,
        reads: false,
    };
    /// Everything.
    pub(crate) const ALL: Interest = Interest {
        create: true,
        delete: true,
        moves: true,
        writes: true,
        attrib: true,
        reads: true,
    };

    /// The interest named by one of [`EVENT_NAMES`].
    pub(crate) fn from_name(name: &str) -> Option<Interest> {
        let none = Interest::default();
        Some(match name.trim().to_ascii_lowercase().as_str() {
            "read" => Interest::READ,
            "write" => Interest {
                writes: true,
                ..none
            },
            "open" => Interest {
                writes: true,
                reads: true,
                ..none
            },
            "create" => Interest {
                create: true,
                ..none
            },
            "delete" => Interest {
                delete: true,
                ..none
            },
            "move" => Interest {
                moves: true,
                ..none
            },
            "attrib" => Interest {
                attrib: true,
                ..none
            },
            "modify" => Interest::MODIFY,
            "all" => Interest::ALL,
            _ => return None,
        })
    }

    /// The inotify mask that delivers these events.
    pub(crate) fn mask(self) -> WatchMask {
        let mut mask = WatchMask::empty();
        if self.create {
            mask |= WatchMask::CREATE;
        }
        if self.delete {
            mask |= WatchMask::DELETE;
        }
        if self.moves {
            mask |= WatchMask::MOVED_FROM | WatchMask::MOVED_TO;
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
    pub(crate) fn union(self, other: Interest) -> Interest {
        Interest {
            create: self.create || other.create,
            delete: self.delete || other.delete,
            moves: self.moves || other.moves,
            writes: self.writes || other.writes,
            attrib: self.attrib || other.attrib,
            reads: self.reads || other.reads,
        }
    }

    /// Whether content may appear below the watch (created, moved in or written): what the
    /// drift registry and overflow rescans follow.
    pub(crate) fn content_appears(self) -> bool {
        self.create || self.moves || self.writes
    }

    /// Whether nothing is reported.
    pub(crate) fn is_empty(self) -> bool {
        !(self.create || self.delete || self.moves || self.writes || self.attrib || self.reads)
    }
}

/// One watched path pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WatchSpec {
    /// Absolute path inside the container; `*` matches within one component.
    pub pattern: String,
    /// How many levels of subdirectories are watched too (0: only the path itself).
    pub depth: u32,
    /// What is reported.
    pub(crate) interest: Interest,
}

/// A named group of specs with a priority (higher is kept longer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchGroup {
    /// Name, used in `watch_limit` events.
    pub name: String,
    /// Priority: when watches run out, groups with the lowest priority are dropped first.
    pub priority: u8,
    /// The paths.
    pub(crate) specs: Vec<WatchSpec>,
}

/// The depth used for "recursive": deep enough for any real `/etc`, bounded against hostile
/// trees.
pub(crate) const RECURSIVE: u32 = 12;

/// A default path: pattern, depth and events.
type DefaultSpec = (&'static str, u32, Interest);

/// The default watch set: each group's name, priority and (path, depth, events). Real
/// directories are listed before the usual symlinks to them (`/bin` -> `/usr/bin` on
/// merged-/usr systems) so that events name the real path.
#[rustfmt::skip]
const DEFAULT_GROUPS: &[(&str, u8, &[DefaultSpec])] = {
    use Interest as I;
    &[
        ("credentials", 100, &[
            ("/etc/shadow", 0, I::READ), ("/etc/gshadow", 0, I::READ),
            ("/etc/sudoers", 0, I::READ), ("/etc/sudoers.d", 0, I::READ),
            ("/root/.ssh", 1, I::ALL), ("/home/*/.ssh", 1, I::ALL),
            ("/root/.aws", 0, I::ALL), ("/home/*/.aws", 0, I::ALL),
        ]),
        ("etc", 90, &[("/etc", RECURSIVE, I::MODIFY)]),
        ("cron", 90, &[("/var/spool/cron", 2, I::MODIFY), ("/var/spool/cron/crontabs", 1, I::MODIFY)]),
        ("home", 80, &[("/root", 0, I::MODIFY), ("/home/*", 0, I::MODIFY), ("/root/.config", 1, I::MODIFY)]),
        ("binaries", 70, &[
            ("/usr/bin", 0, I::MODIFY), ("/usr/sbin", 0, I::MODIFY),
            ("/usr/local/bin", 0, I::MODIFY), ("/usr/local/sbin", 0, I::MODIFY),
            ("/bin", 0, I::MODIFY), ("/sbin", 0, I::MODIFY),
        ]),
        ("temp", 60, &[("/tmp", 1, I::MODIFY), ("/var/tmp", 1, I::MODIFY), ("/dev/shm", 1, I::MODIFY)]),
        // Only files appearing: every write to /dev/null or a terminal would otherwise be an
        // event of this directory.
        ("dev", 60, &[("/dev", 0, I::APPEAR)]),
        // Top-level system logs and the audit log, not the applications' log subdirectories
        // (their writes and rotation are the workload's own).
        ("logs", 45, &[("/var/log", 0, I::MODIFY), ("/var/log/audit", 0, I::MODIFY)]),
        ("libraries", 40, &[
            ("/usr/lib", 0, I::MODIFY), ("/usr/lib/x86_64-linux-gnu", 0, I::MODIFY),
            ("/usr/lib/aarch64-linux-gnu", 0, I::MODIFY), ("/usr/local/lib", 0, I::MODIFY),
            ("/lib", 0, I::MODIFY), ("/lib64", 0, I::MODIFY),
        ]),
        ("packages", 30, &[("/var/lib/dpkg", 1, I::MODIFY), ("/var/lib/rpm", 0, I::MODIFY), ("/lib/apk/db", 0, I::MODIFY)]),
    ]
};

/// The default watch set (see [`DEFAULT_GROUPS`]).
pub(crate) fn default_groups() -> Vec<WatchGroup> {
    DEFAULT_GROUPS
        .iter()
        .map(|&(name, priority, specs)| WatchGroup {
            name: name.to_string(),
            priority,
            specs: specs
                .iter()
                .map(|&(pattern, depth, interest)| WatchSpec {
                    pattern: pattern.to_string(),
                    depth,
                    interest,
                })
                .collect(),
        })
        .collect()
}

/// The priority of a configured watch entry that gives none: below the default `temp` group
/// (60), above `libraries` (40).
pub(crate) const DEFAULT_USER_PRIORITY: u8 = 50;

/// The deepest `depth` a configured entry may ask for.
pub(crate) const MAX_USER_DEPTH: u32 = 32;

/// One watch entry from the configuration (setting `watch`): a path pattern with its depth,
/// events and priority. Entries with the same `name` form one group; an entry without a name
/// is a group of its own, named by its path.
///
/// Compact form (flag, variable, or a string item in the file):
/// `PATH [recursive | depth=N] [EVENT[,EVENT...]] [priority=N] [name=NAME]`, for example
/// `/srv/app recursive write,create priority=70`. The file also takes a mapping with the
/// keys `path`, `recursive`, `depth`, `events` (a list or a comma-separated string),
/// `priority` and `name`. Without events an entry reports `modify` (every change but reads).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UserWatch {
    /// The group name (default: the path).
    pub name: String,
    /// The spec: path pattern, depth, events.
    pub spec: WatchSpec,
    /// The group's priority.
    pub priority: u8,
}

fn check_pattern(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err(format!(
            "`{path}` is not an absolute path (inside the container, e.g. `/srv/app`)"
        ));
    }
    if path.contains('\0') {
        return Err(format!("`{path}` contains a NUL byte"));
    }
    if path.split('/').any(|c| c == ".." || c == ".") {
        return Err(format!("`{path}` must not contain `.` or `..` components"));
    }
    Ok(())
}

fn parse_depth(text: &str) -> Result<u32, String> {
    let depth: u32 = text
        .trim()
        .parse()
        .map_err(|_| format!("depth `{text}` is not a number"))?;
    if depth > MAX_USER_DEPTH {
        return Err(format!(
            "depth {depth} is too deep: use at most {MAX_USER_DEPTH}, or `recursive` ({RECURSIVE} levels)"
        ));
    }
    Ok(depth)
}

fn parse_priority(text: &str) -> Result<u8, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("priority `{text}` is not a number from 0 to 255"))
}

fn parse_events<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Interest, String> {
    let mut interest = Interest::default();
    for name in names {
        let name = name.trim();
        if name.is_empty() {
            continue;
        }
        let one = Interest::from_name(name).ok_or_else(|| {
            let known: Vec<&str> = EVENT_NAMES.iter().map(|(n, _)| *n).collect();
            format!("unknown event `{name}`: use {}", known.join(", "))
        })?;
        interest = interest.union(one);
    }
    Ok(interest)
}

fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
        return Err(format!(
            "group name `{name}` must be 1-128 printable characters"
        ));
    }
    Ok(())
}

/// A key of a watch entry mapping; `null` is the same as no key.
fn key<'a>(
    map: &'a serde_json::Map<String, serde_json::Value>,
    name: &str,
) -> Option<&'a serde_json::Value> {
    map.get(name).filter(|value| !value.is_null())
}

/// A number key of the watch entry for `path`, checked by `parse`; `expected` says what it
/// must be when it is not a number.
fn number_key<T>(
    map: &serde_json::Map<String, serde_json::Value>,
    name: &str,
    path: &str,
    expected: &str,
    parse: fn(&str) -> Result<T, String>,
) -> Result<Option<T>, String> {
    match key(map, name) {
        None => Ok(None),
        Some(serde_json::Value::Number(n)) => parse(&n.to_string())
            .map(Some)
            .map_err(|e| format!("`{path}`: {e}")),
        Some(other) => Err(format!(
            "`{path}`: `{name}` must be {expected}, not {other}"
        )),
    }
}

impl UserWatch {
    fn build(
        path: &str,
        depth: Option<u32>,
        interest: Option<Interest>,
        priority: Option<u8>,
        name: Option<String>,
    ) -> Result<UserWatch, String> {
        check_pattern(path)?;
        let interest = interest.unwrap_or(Interest::MODIFY);
        if interest.is_empty() {
            return Err(format!("`{path}`: no events given"));
        }
        let name = name.unwrap_or_else(|| path.to_string());
        check_name(&name)?;
        Ok(UserWatch {
            name,
            spec: WatchSpec {
                pattern: path.to_string(),
                depth: depth.unwrap_or(0),
                interest,
            },
            priority: priority.unwrap_or(DEFAULT_USER_PRIORITY),
        })
    }

    /// Parses the compact form `PATH [recursive | depth=N] [EVENTS] [priority=N] [name=NAME]`.
    pub(crate) fn parse(text: &str) -> Result<UserWatch, String> {
        let mut tokens = text.split_whitespace();
        let Some(path) = tokens.next() else {
            return Err(
                "an empty watch entry: write `PATH [recursive] [EVENTS] [priority=N]`".into(),
            );
        };
        let mut depth = None;
        let mut interest: Option<Interest> = None;
        let mut priority = None;
        let mut name = None;
        for token in tokens {
            let set_depth = |depth: &mut Option<u32>, value: u32| {
                if depth.replace(value).is_some() {
                    return Err(format!("`{text}`: the depth is given twice"));
                }
                Ok(())
            };
            if token.eq_ignore_ascii_case("recursive") {
                set_depth(&mut depth, RECURSIVE)?;
            } else if let Some(value) = token.strip_prefix("depth=") {
                set_depth(&mut depth, parse_depth(value)?)?;
            } else if let Some(value) = token.strip_prefix("priority=") {
                priority = Some(parse_priority(value)?);
            } else if let Some(value) = token.strip_prefix("name=") {
                name = Some(value.to_string());
            } else {
                let value = token.strip_prefix("events=").unwrap_or(token);
                let more =
                    parse_events(value.split(',')).map_err(|error| format!("`{text}`: {error}"))?;
                interest = Some(interest.unwrap_or_default().union(more));
            }
        }
        UserWatch::build(path, depth, interest, priority, name)
    }

    /// Reads one item of the file's `watch` list: a compact string or a mapping.
    pub(crate) fn from_json(value: &serde_json::Value) -> Result<UserWatch, String> {
        use serde_json::Value;
        let map = match value {
            Value::String(text) => return UserWatch::parse(text),
            Value::Object(map) => map,
            other => {
                return Err(format!(
                    "a watch entry is a string or a mapping with `path`, not {other}"
                ));
            }
        };
        const KEYS: [&str; 6] = ["path", "recursive", "depth", "events", "priority", "name"];
        if let Some(key) = map.keys().find(|k| !KEYS.contains(&k.as_str())) {
            return Err(format!(
                "unknown key `{key}` in a watch entry: use {}",
                KEYS.join(", ")
            ));
        }
        let path = match map.get("path") {
            Some(Value::String(path)) => path.as_str(),
            Some(other) => return Err(format!("`path` must be a string, not {other}")),
            None => return Err("a watch entry needs a `path`".into()),
        };
        let recursive = match key(map, "recursive") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                return Err(format!(
                    "`{path}`: `recursive` must be true or false, not {other}"
                ));
            }
        };
        let depth = number_key(map, "depth", path, "a number", parse_depth)?;
        if recursive && depth.is_some() {
            return Err(format!("`{path}`: give `recursive` or `depth`, not both"));
        }
        let depth = if recursive { Some(RECURSIVE) } else { depth };
        let interest = match key(map, "events") {
            None => None,
            Some(value) => {
                let names: Vec<&str> = match value {
                    Value::String(text) => text.split(',').collect(),
                    Value::Array(items) => items
                        .iter()
                        .map(|item| {
                            item.as_str().ok_or_else(|| {
                                format!("`{path}`: an event name is a string, not {item}")
                            })
                        })
                        .collect::<Result<_, _>>()?,
                    other => {
                        return Err(format!(
                            "`{path}`: `events` must be a list of names, not {other}"
                        ));
                    }
                };
                Some(parse_events(names).map_err(|e| format!("`{path}`: {e}"))?)
            }
        };
        let priority = number_key(
            map,
            "priority",
            path,
            "a number from 0 to 255",
            parse_priority,
        )?;
        let name = match key(map, "name") {
            None => None,
            Some(Value::String(name)) => Some(name.clone()),
            Some(other) => return Err(format!("`{path}`: `name` must be a string, not {other}")),
        };
        UserWatch::build(path, depth, interest, priority, name)
    }
}

/// A watch set that cannot be built from the configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum WatchSetError {
    /// A `watch_remove` item names no default group or path.
    #[error(
        "`{item}` is neither a default watch group ({groups}) nor a path of the default watch set"
    )]
    Remove {
        /// The item.
        item: String,
        /// The default group names.
        groups: String,
    },
    /// A `watch` entry's name is the name of a default group that is kept.
    #[error(
        "the watch entry name `{name}` is a default group's name: choose another, or remove that group with `watch_remove`"
    )]
    NameClash {
        /// The name.
        name: String,
    },
}

/// Builds the watch set from the configuration: the default groups (unless `defaults` is
/// false), minus `remove` (default group names, or exact default path patterns), with every
/// default path that a `watch` entry names again replaced by that entry, plus the `watch`
/// entries. Errors say which item is wrong.
pub(crate) fn build_groups(
    defaults: bool,
    remove: &[String],
    extra: &[UserWatch],
) -> Result<Vec<WatchGroup>, WatchSetError> {
    let all_defaults = default_groups();
    for item in remove {
        let item = item.trim();
        let known = all_defaults
            .iter()
            .any(|g| g.name == item || g.specs.iter().any(|s| s.pattern == item));
        if !known {
            let names: Vec<&str> = all_defaults.iter().map(|g| g.name.as_str()).collect();
            return Err(WatchSetError::Remove {
                item: item.to_string(),
                groups: names.join(", "),
            });
        }
    }
    let removed = |pattern: &str| {
        remove.iter().any(|r| r.trim() == pattern)
            || extra.iter().any(|w| w.spec.pattern == pattern)
    };
    let mut groups: Vec<WatchGroup> = if defaults { all_defaults } else { Vec::new() };
    groups.retain(|g| !remove.iter().any(|r| r.trim() == g.name));
    for group in &mut groups {
        group.specs.retain(|s| !removed(&s.pattern));
    }
    groups.retain(|g| !g.specs.is_empty());
    let kept = groups.len();
    for watch in extra {
        if let Some(index) = groups.iter().position(|g| g.name == watch.name) {
            if index < kept {
                return Err(WatchSetError::NameClash {
                    name: watch.name.clone(),
                });
            }
            let group = &mut groups[index];
            group.priority = group.priority.max(watch.priority);
            if !group.specs.contains(&watch.spec) {
                group.specs.push(watch.spec.clone());
            }
        } else {
            groups.push(WatchGroup {
                name: watch.name.clone(),
                priority: watch.priority,
                specs: vec![watch.spec.clone()],
            });
        }
    }
    Ok(groups)
}

/// A one-line description of a group's paths, for reports (`/etc (recursive)`, ...).
pub(crate) fn describe_specs(group: &WatchGroup) -> String {
    group
        .specs
        .iter()
        .map(|s| {
            if s.depth >= RECURSIVE {
                format!("{} (recursive)", s.pattern)
            } else if s.depth > 0 {
                format!("{} (depth {})", s.pattern, s.depth)
            } else {
                s.pattern.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
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
    /// The shortest time between two syncs with procscan's container table, which the thread
    /// follows as it is published; how often it is looked at when it cannot subscribe.
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn group<'a>(groups: &'a [WatchGroup], name: &str) -> Option<&'a WatchGroup> {
        groups.iter().find(|g| g.name == name)
    }

    #[test]
    fn compact_entries_parse_path_depth_events_priority_and_name() {
        let w = UserWatch::parse("/srv/app recursive write priority=70").unwrap();
        assert_eq!(w.name, "/srv/app");
        assert_eq!(w.spec.pattern, "/srv/app");
        assert_eq!(w.spec.depth, RECURSIVE);
        assert_eq!(
            w.spec.interest,
            Interest {
                writes: true,
                ..Interest::default()
            }
        );
        assert_eq!(w.priority, 70);

        let w = UserWatch::parse("/home/*/.config depth=2 create,delete move name=cfg").unwrap();
        assert_eq!(w.name, "cfg");
        assert_eq!(w.spec.depth, 2);
        let i = w.spec.interest;
        assert!(i.create && i.delete && i.moves && !i.writes && !i.reads && !i.attrib);
        assert_eq!(w.priority, DEFAULT_USER_PRIORITY);

        let w = UserWatch::parse("/opt/secrets events=open").unwrap();
        assert!(w.spec.interest.reads && w.spec.interest.writes && !w.spec.interest.create);
        // No events: every change but reads.
        let w = UserWatch::parse("  /data  ").unwrap();
        assert_eq!(w.spec.interest, Interest::MODIFY);
        assert_eq!(w.spec.depth, 0);
    }

    #[test]
    fn mapping_entries_parse_like_compact_ones() {
        let value = serde_json::json!({
            "path": "/srv/app", "recursive": true, "events": ["write"], "priority": 70
        });
        assert_eq!(
            UserWatch::from_json(&value).unwrap(),
            UserWatch::parse("/srv/app recursive write priority=70").unwrap()
        );
        let value = serde_json::json!({"path": "/data", "depth": 3, "events": "read,attrib"});
        let w = UserWatch::from_json(&value).unwrap();
        assert_eq!(w.spec.depth, 3);
        assert!(w.spec.interest.reads && w.spec.interest.attrib && !w.spec.interest.writes);
        let value = serde_json::json!("/x write");
        assert!(UserWatch::from_json(&value).unwrap().spec.interest.writes);
    }

    #[test]
    fn bad_entries_say_what_is_wrong() {
        for (text, needle) in [
            ("srv/app", "absolute"),
            ("/srv/../etc", "`..`"),
            ("/srv write,explode", "unknown event `explode`"),
            ("/srv depth=99", "too deep"),
            ("/srv depth=x", "not a number"),
            ("/srv recursive depth=2", "twice"),
            ("/srv priority=300", "0 to 255"),
            ("", "empty"),
        ] {
            let error = UserWatch::parse(text).expect_err(text);
            assert!(error.contains(needle), "{text}: {error}");
        }
        for (value, needle) in [
            (
                serde_json::json!({"path": "/a", "recurse": true}),
                "unknown key `recurse`",
            ),
            (serde_json::json!({"events": ["write"]}), "needs a `path`"),
            (
                serde_json::json!({"path": "/a", "recursive": true, "depth": 2}),
                "not both",
            ),
            (
                serde_json::json!({"path": "/a", "events": ["bogus"]}),
                "unknown event",
            ),
            (serde_json::json!({"path": "/a", "events": []}), "no events"),
            (
                serde_json::json!({"path": "/a", "priority": -1}),
                "0 to 255",
            ),
            (serde_json::json!(17), "string or a mapping"),
        ] {
            let error = UserWatch::from_json(&value).expect_err(&value.to_string());
            assert!(error.contains(needle), "{value}: {error}");
        }
    }

    #[test]
    fn groups_are_added_removed_and_replaced() {
        let extra = vec![
            UserWatch::parse("/srv/app recursive write priority=70").unwrap(),
            UserWatch::parse("/tmp create").unwrap(),
        ];
        let remove = vec!["libraries".to_string(), "/var/lib/rpm".to_string()];
        let groups = build_groups(true, &remove, &extra).unwrap();
        assert!(group(&groups, "libraries").is_none(), "removed by name");
        let packages = group(&groups, "packages").unwrap();
        assert!(packages.specs.iter().all(|s| s.pattern != "/var/lib/rpm"));
        assert!(packages.specs.iter().any(|s| s.pattern == "/var/lib/dpkg"));
        // The default /tmp spec is replaced by the configured one.
        let temp = group(&groups, "temp").unwrap();
        assert!(temp.specs.iter().all(|s| s.pattern != "/tmp"), "{temp:?}");
        let tmp = group(&groups, "/tmp").unwrap();
        assert_eq!(tmp.specs[0].interest.mask(), WatchMask::CREATE);
        let app = group(&groups, "/srv/app").unwrap();
        assert_eq!(app.priority, 70);
        assert_eq!(app.specs[0].depth, RECURSIVE);
        assert!(group(&groups, "etc").is_some());

        // Without the defaults only the configured entries remain.
        let groups = build_groups(false, &[], &extra).unwrap();
        let names: Vec<&str> = groups.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names, ["/srv/app", "/tmp"]);

        // Entries sharing a name form one group with the highest priority.
        let extra = vec![
            UserWatch::parse("/a name=app priority=10").unwrap(),
            UserWatch::parse("/b name=app priority=20").unwrap(),
        ];
        let groups = build_groups(false, &[], &extra).unwrap();
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].priority, 20);
        assert_eq!(groups[0].specs.len(), 2);
    }

    #[test]
    fn unknown_removals_and_name_clashes_are_errors() {
        let error = build_groups(true, &["binary".to_string()], &[])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("`binary`") && error.contains("binaries"),
            "{error}"
        );
        let error = build_groups(true, &["/nowhere".to_string()], &[])
            .unwrap_err()
            .to_string();
        assert!(error.contains("`/nowhere`"), "{error}");
        let clash = vec![UserWatch::parse("/x name=etc").unwrap()];
        let error = build_groups(true, &[], &clash).unwrap_err().to_string();
        assert!(error.contains("`etc`"), "{error}");
        // Once the default group is removed, the name is free.
        assert!(build_groups(true, &["etc".to_string()], &clash).is_ok());
    }

    #[test]
    fn every_event_name_is_understood() {
        for (name, _) in EVENT_NAMES {
            assert!(!Interest::from_name(name).unwrap().is_empty(), "{name}");
        }
    }
}
