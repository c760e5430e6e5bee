//! User and group names from a container's own `/etc/passwd` and `/etc/group`.
//!
//! A uid means nothing outside the image that defines it, so names are resolved through the
//! container's root, `/proc/<root_pid>/root/etc/passwd`. Each container's databases are parsed
//! once and cached; the cache is checked against the files' modification time (and size and
//! inode) at most once per `recheck` interval and re-parsed when they changed. Missing or
//! unreadable files simply resolve nothing. Files larger than [`MAX_DB_BYTES`] are read up to
//! that size.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::collect::proc::read_capped;
use crate::event::Process;
use crate::procfs::users::{PasswdEntry, parse_group, parse_passwd};

/// The most bytes of `/etc/passwd` or `/etc/group` that are read.
pub(crate) const MAX_DB_BYTES: usize = 4 * 1024 * 1024;

/// Identity of a file version: modification time, size and inode.
type FileStamp = Option<(i64, i64, u64, u64)>;

fn stamp(path: &Path) -> FileStamp {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.mtime(), meta.mtime_nsec(), meta.size(), meta.ino()))
}

#[derive(Debug, Default)]
struct ContainerDb {
    root: PathBuf,
    passwd: HashMap<u32, PasswdEntry>,
    group: HashMap<u32, String>,
    passwd_stamp: FileStamp,
    group_stamp: FileStamp,
    checked: Option<Instant>,
}

impl ContainerDb {
    fn refresh(&mut self, now: Instant, recheck: Duration) {
        if self
            .checked
            .is_some_and(|at| now.saturating_duration_since(at) < recheck)
        {
            return;
        }
        self.checked = Some(now);
        let mut buf = Vec::new();
        let passwd = self.root.join("etc/passwd");
        if let Some(parsed) = reload(&passwd, &mut self.passwd_stamp, &mut buf, parse_passwd) {
            self.passwd = parsed;
        }
        let group = self.root.join("etc/group");
        if let Some(parsed) = reload(&group, &mut self.group_stamp, &mut buf, parse_group) {
            self.group = parsed;
        }
    }
}

/// The database at `path` parsed again when its stamp differs from `known` (which is then
/// updated); empty when it cannot be read; `None` when it did not change.
fn reload<T>(
    path: &Path,
    known: &mut FileStamp,
    buf: &mut Vec<u8>,
    parse: fn(&str) -> HashMap<u32, T>,
) -> Option<HashMap<u32, T>> {
    let now = stamp(path);
    if now == *known {
        return None;
    }
    *known = now;
    Some(match read_capped(path, buf, MAX_DB_BYTES) {
        Ok(_) => parse(&String::from_utf8_lossy(buf)),
        Err(_) => HashMap::new(),
    })
}

/// Per-container user and group databases.
#[derive(Debug)]
pub(crate) struct UserDbCache {
    containers: HashMap<String, ContainerDb>,
    recheck: Duration,
}

/// Names resolved for one process.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct ResolvedUser {
    /// User name.
    pub(crate) user: Option<String>,
    /// Home directory.
    pub(crate) home: Option<String>,
    /// Login shell.
    pub(crate) shell: Option<String>,
    /// Group name.
    pub(crate) group: Option<String>,
}

impl UserDbCache {
    /// A cache that re-checks the files' modification times at most every `recheck`.
    pub(crate) fn new(recheck: Duration) -> UserDbCache {
        UserDbCache {
            containers: HashMap::new(),
            recheck,
        }
    }

    /// Resolves a uid and gid in the container `container_id` whose root is `root` (for
    /// example `/proc/<root_pid>/root`). A changed root (the container's first process was
    /// replaced) forces a re-read.
    pub(crate) fn resolve(
        &mut self,
        container_id: &str,
        root: &Path,
        uid: Option<u32>,
        gid: Option<u32>,
        now: Instant,
    ) -> ResolvedUser {
        let db = self.containers.entry(container_id.to_string()).or_default();
        if db.root != root {
            *db = ContainerDb {
                root: root.to_path_buf(),
                ..ContainerDb::default()
            };
        }
        db.refresh(now, self.recheck);
        let entry = uid.and_then(|uid| db.passwd.get(&uid));
        ResolvedUser {
            user: entry.map(|e| e.name.clone()),
            home: entry.map(|e| e.home.clone()),
            shell: entry.map(|e| e.shell.clone()),
            group: gid.and_then(|gid| db.group.get(&gid).cloned()),
        }
    }

    /// Fills the user and group names of `process` (from its effective uid and gid) in the
    /// container `container_id` whose root is `root`.
    pub(crate) fn name(
        &mut self,
        container_id: &str,
        root: &Path,
        process: &mut Process,
        now: Instant,
    ) {
        let resolved = self.resolve(container_id, root, process.euid, process.egid, now);
        process.user = resolved.user;
        process.user_home = resolved.home;
        process.user_shell = resolved.shell;
        process.group = resolved.group;
    }

    /// Forgets a container that is gone.
    pub(crate) fn forget(&mut self, container_id: &str) {
        self.containers.remove(container_id);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::procfs::users::tests::{GROUP, PASSWD};

    #[test]
    fn resolves_from_the_container_root_and_refreshes_on_change() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("etc")).unwrap();
        std::fs::write(root.path().join("etc/passwd"), PASSWD).unwrap();
        std::fs::write(root.path().join("etc/group"), GROUP).unwrap();
        let mut cache = UserDbCache::new(Duration::ZERO);
        let t0 = Instant::now();
        let r = cache.resolve("c1", root.path(), Some(10001), Some(4), t0);
        assert_eq!(r.user.as_deref(), Some("app"));
        assert_eq!(r.home.as_deref(), Some("/home/app"));
        assert_eq!(r.shell.as_deref(), Some("/bin/sh"));
        assert_eq!(r.group.as_deref(), Some("adm"));
        let unknown = cache.resolve("c1", root.path(), Some(4242), Some(4242), t0);
        assert_eq!(unknown, ResolvedUser::default());

        // An attacker adds a user: the new name is picked up (size and mtime changed).
        std::fs::write(
            root.path().join("etc/passwd"),
            format!("{PASSWD}evil:x:4242:0::/tmp:/bin/sh\n"),
        )
        .unwrap();
        let r = cache.resolve("c1", root.path(), Some(4242), None, t0);
        assert_eq!(r.user.as_deref(), Some("evil"));
    }

    #[test]
    fn recheck_interval_limits_stat_calls() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("etc")).unwrap();
        std::fs::write(root.path().join("etc/passwd"), PASSWD).unwrap();
        let mut cache = UserDbCache::new(Duration::from_secs(3600));
        let t0 = Instant::now();
        assert!(
            cache
                .resolve("c", root.path(), Some(4242), None, t0)
                .user
                .is_none()
        );
        std::fs::write(
            root.path().join("etc/passwd"),
            "evil:x:4242:0::/tmp:/bin/sh\n",
        )
        .unwrap();
        // Within the interval the cached (old) database answers.
        assert!(
            cache
                .resolve("c", root.path(), Some(4242), None, t0)
                .user
                .is_none()
        );
        // After it, the change is seen.
        let later = t0 + Duration::from_secs(3601);
        assert_eq!(
            cache
                .resolve("c", root.path(), Some(4242), None, later)
                .user
                .as_deref(),
            Some("evil")
        );
    }

    #[test]
    fn missing_files_resolve_nothing() {
        let root = tempfile::tempdir().unwrap();
        let mut cache = UserDbCache::new(Duration::ZERO);
        let r = cache.resolve("c", root.path(), Some(0), Some(0), Instant::now());
        assert_eq!(r, ResolvedUser::default());
    }
}
