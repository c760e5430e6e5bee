//! The shared "who is who" state: [`ProcessTable`] and [`ContainerTable`].
//!
//! The procscan collector owns the master copy and is its only writer. Other collectors
//! (sockets, fswatch, tracer) read it through [`SharedTables`], a handle to the latest
//! published [`Tables`] snapshot: `snapshot()` is one short read-lock and an `Arc` clone, so a
//! reader never blocks the scanner for longer than that, and a snapshot stays consistent for as
//! long as the reader holds it. The scanner publishes a new snapshot after every scan that
//! changed something; processes are stored behind `Arc`, so publishing copies the maps, not the
//! process records.
//!
//! Processes are keyed by [`ProcKey`] (pid and start time in clock ticks), so a recycled pid is
//! never confused with its predecessor. Exited processes stay in the table for a grace period
//! (`exited_at` is set) so late observations (a socket in TIME_WAIT, a file event) can still be
//! attributed; containers likewise stay for the grace period after their last process exits.
//!
//! Procscan reads a process when a scan finds it, so between an exec and the next scan its
//! entry still shows the image before the exec (a forked child is recorded with its parent's
//! name). In trace mode the tracer sees every exec at the exec stop: it records the new image
//! in [`ExecImages`], an overlay shared through [`SharedTables::exec_images`], before it
//! announces the exec, and readers that name a process (the sockets collector) prefer the
//! overlay's image when it belongs to the same process (same start time). A process the tracer
//! saw exec but procscan has not read yet (its scans lag behind under load) is named from the
//! overlay alone: the image keeps its container and its ancestors as of the exec. The overlay
//! also knows which pids were forked moments ago and have not exec'd yet.
//!
//! A reader that acts on every new snapshot (fswatch, which follows the containers) can
//! [`SharedTables::subscribe`]: it gets a socket that becomes readable whenever a snapshot is
//! published, so it can sleep in `poll` instead of waking to look for a new one.

use std::collections::{BTreeSet, HashMap};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use super::exec_images::ExecImages;
use crate::event::{Ancestor, Container, Process};

/// Identifies a process for its whole life: its pid and its start time in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct ProcKey {
    /// Process id in the proc root's PID namespace.
    pub pid: i32,
    /// Field 22 of `/proc/<pid>/stat`.
    pub start_ticks: u64,
}

/// Why a process is in the table but never reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exclusion {
    /// The monitor itself, its children, or a process of the monitor's own container.
    Monitor,
    /// The task's pause process (pid 1) or a process of its container.
    Pause,
    /// A kernel thread (only visible when the proc root is the host's).
    KernelThread,
}

/// What the table knows about one process.
#[derive(Debug, Clone)]
pub(crate) struct ProcEntry {
    /// The process as last read (its `ancestors` are empty; see [`ProcessTable::ancestors`]).
    pub process: Arc<Process>,
    /// The id of its container ([`crate::procfs::HOST_ID`] outside any container).
    pub container_id: Arc<str>,
    /// Set when the process must not be reported (events attributed to it are dropped).
    pub excluded: Option<Exclusion>,
    /// When the process was seen gone; `None` while it is alive.
    pub(crate) exited_at: Option<Instant>,
}

/// Live and recently exited processes.
#[derive(Debug, Clone, Default)]
pub struct ProcessTable {
    entries: HashMap<ProcKey, ProcEntry>,
    live: HashMap<i32, u64>,
}

/// The most ancestors attached to a process.
pub(crate) const MAX_ANCESTORS: usize = 32;

/// Ancestors past the parent keep at most this many bytes of arguments.
const ANCESTOR_ARGS_BYTES: usize = 4096;

impl ProcessTable {
    /// Inserts or replaces a live process.
    pub(crate) fn insert(&mut self, key: ProcKey, entry: ProcEntry) {
        if entry.exited_at.is_none() {
            self.live.insert(key.pid, key.start_ticks);
        }
        self.entries.insert(key, entry);
    }

    /// Replaces the process record of a known process (after an exec in place).
    pub(crate) fn update_process(&mut self, key: ProcKey, process: Arc<Process>) -> bool {
        match self.entries.get_mut(&key) {
            Some(entry) => {
                entry.process = process;
                true
            }
            None => false,
        }
    }

    /// The entry for a key, live or exited.
    pub(crate) fn get(&self, key: &ProcKey) -> Option<&ProcEntry> {
        self.entries.get(key)
    }

    /// The start time of the live process with this pid.
    pub(crate) fn live_start(&self, pid: i32) -> Option<u64> {
        self.live.get(&pid).copied()
    }

    /// The live process with this pid, or else the most recently exited one still in the
    /// grace period (for late attribution).
    pub(crate) fn lookup_pid(&self, pid: i32) -> Option<(ProcKey, &ProcEntry)> {
        if let Some(&start_ticks) = self.live.get(&pid) {
            let key = ProcKey { pid, start_ticks };
            return self.entries.get(&key).map(|entry| (key, entry));
        }
        self.entries
            .iter()
            .filter(|(key, _)| key.pid == pid)
            .max_by_key(|(_, entry)| entry.exited_at)
            .map(|(key, entry)| (*key, entry))
    }

    /// Marks a process exited now. Returns its entry.
    pub(crate) fn mark_exited(&mut self, key: ProcKey, now: Instant) -> Option<&ProcEntry> {
        if self.live.get(&key.pid) == Some(&key.start_ticks) {
            self.live.remove(&key.pid);
        }
        let entry = self.entries.get_mut(&key)?;
        entry.exited_at.get_or_insert(now);
        Some(entry)
    }

    /// Drops exited processes older than `grace`. Returns how many were dropped.
    pub(crate) fn purge(&mut self, now: Instant, grace: Duration) -> usize {
        let before = self.entries.len();
        self.entries.retain(|_, entry| {
            entry
                .exited_at
                .is_none_or(|at| now.saturating_duration_since(at) < grace)
        });
        before - self.entries.len()
    }

    /// Live processes.
    pub(crate) fn live(&self) -> impl Iterator<Item = (ProcKey, &ProcEntry)> {
        self.live.iter().filter_map(|(&pid, &start_ticks)| {
            let key = ProcKey { pid, start_ticks };
            self.entries.get(&key).map(|entry| (key, entry))
        })
    }

    /// Number of entries, live and exited.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The parent of a process, if it is known: the live (or recently exited) process with the
    /// parent pid that started no later than the child.
    pub(crate) fn parent(&self, key: &ProcKey) -> Option<(ProcKey, &ProcEntry)> {
        let entry = self.entries.get(key)?;
        let ppid = entry.process.ppid;
        if ppid <= 0 {
            return None;
        }
        let (parent_key, parent) = self.lookup_pid(ppid)?;
        (parent_key.start_ticks <= key.start_ticks).then_some((parent_key, parent))
    }

    /// Ancestors of a process, parent first, up to its container's first process: the walk
    /// stops at a parent in another container, at pid 1 or 0, at an unknown or excluded
    /// parent, or after [`MAX_ANCESTORS`].
    pub(crate) fn ancestors(&self, key: &ProcKey) -> Vec<Ancestor> {
        self.ancestors_with(key, |_| None)
    }

    /// The process `key` as an event names it: the image the tracer saw it exec since procscan
    /// read it (`images`, trace mode), else the table's, with its ancestors chosen the same way.
    /// `None` when the table does not hold it. Excluded processes are returned too: callers
    /// must check [`ProcEntry::excluded`].
    pub(crate) fn view(&self, key: ProcKey, images: Option<&ExecImages>) -> Option<Process> {
        let entry = self.entries.get(&key)?;
        let fresh = |k| images.and_then(|i| i.image(k));
        let mut process = match fresh(key) {
            Some(image) => (*image).clone(),
            None => (*entry.process).clone(),
        };
        process.ancestors = self.ancestors_with(&key, fresh);
        Some(process)
    }

    /// Like [`ProcessTable::ancestors`], with each ancestor's image taken from `fresh` when it
    /// knows a newer one for that process (see [`ExecImages`]).
    pub(crate) fn ancestors_with(
        &self,
        key: &ProcKey,
        fresh: impl Fn(ProcKey) -> Option<Arc<Process>>,
    ) -> Vec<Ancestor> {
        let Some(entry) = self.entries.get(key) else {
            return Vec::new();
        };
        self.walk_ancestors(self.parent(key), &entry.container_id, fresh)
    }

    /// The ancestors of a process the table does not hold (read by another collector), from
    /// its parent pid, its start time and its container, chosen like
    /// [`ProcessTable::ancestors_with`]'s.
    pub(crate) fn ancestors_of_unread(
        &self,
        ppid: i32,
        start_ticks: u64,
        container: &str,
        fresh: impl Fn(ProcKey) -> Option<Arc<Process>>,
    ) -> Vec<Ancestor> {
        let parent = (ppid > 0)
            .then(|| self.lookup_pid(ppid))
            .flatten()
            .filter(|(key, _)| key.start_ticks <= start_ticks);
        self.walk_ancestors(parent, container, fresh)
    }

    /// Ancestors from `parent` up (see [`ProcessTable::ancestors`] for where the walk stops).
    fn walk_ancestors<'t>(
        &'t self,
        mut parent: Option<(ProcKey, &'t ProcEntry)>,
        container: &str,
        fresh: impl Fn(ProcKey) -> Option<Arc<Process>>,
    ) -> Vec<Ancestor> {
        let mut out = Vec::new();
        while out.len() < MAX_ANCESTORS {
            let Some((parent_key, entry)) = parent else {
                break;
            };
            if parent_key.pid <= 1 || *entry.container_id != *container || entry.excluded.is_some()
            {
                break;
            }
            let newer = fresh(parent_key);
            let p = newer.as_ref().unwrap_or(&entry.process);
            out.push(ancestor(p, p.pid, out.is_empty()));
            parent = self.parent(&parent_key);
        }
        out
    }
}

/// `process` (running as `pid`) as an ancestor; past the parent (`parent` false) its
/// arguments are capped to [`ANCESTOR_ARGS_BYTES`].
pub(crate) fn ancestor(process: &Process, pid: i32, parent: bool) -> Ancestor {
    Ancestor {
        pid,
        name: process.name.clone(),
        exe: process.exe.clone(),
        exepath: process.exepath.clone(),
        args: if parent {
            process.args.clone()
        } else {
            capped_args(&process.args, ANCESTOR_ARGS_BYTES)
        },
    }
}

/// The first arguments that fit in `limit` bytes (the last one cut at a character boundary).
fn capped_args(args: &[String], limit: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut used = 0;
    for arg in args {
        if used + arg.len() > limit {
            let mut cut = limit.saturating_sub(used);
            while cut > 0 && !arg.is_char_boundary(cut) {
                cut -= 1;
            }
            if cut > 0 {
                out.push(arg[..cut].to_string());
            }
            break;
        }
        used += arg.len();
        out.push(arg.clone());
    }
    out
}

/// What the table knows about one container.
#[derive(Debug, Clone)]
pub(crate) struct ContainerEntry {
    /// The event form (`root_pid`, `mnt_ns` and `start_time` follow its oldest live process).
    pub container: Container,
    /// Set when the container's processes are never reported.
    pub excluded: Option<Exclusion>,
    /// Live member processes, oldest first.
    members: BTreeSet<(u64, i32)>,
    /// When the last member exited; `None` while it has live members.
    pub(crate) gone_at: Option<Instant>,
}

/// What a new member contributes to its container.
#[derive(Debug, Clone)]
pub(crate) struct MemberInfo {
    /// The process key.
    pub key: ProcKey,
    /// The cgroup path the container was recognised by.
    pub cgroup: String,
    /// The process's mount namespace.
    pub mnt_ns: Option<u64>,
    /// The process's start time.
    pub start_time: Option<crate::event::Timestamp>,
}

/// Containers of the task, keyed by container id.
#[derive(Debug, Clone, Default)]
pub struct ContainerTable {
    containers: HashMap<Arc<str>, ContainerEntry>,
}

impl ContainerTable {
    /// The container with this id.
    pub(crate) fn get(&self, id: &str) -> Option<&ContainerEntry> {
        self.containers.get(id)
    }

    /// The container with this id, with its interned key.
    pub(crate) fn get_key_value(&self, id: &str) -> Option<(&Arc<str>, &ContainerEntry)> {
        self.containers.get_key_value(id)
    }

    /// All containers, including gone ones still in their grace period.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&Arc<str>, &ContainerEntry)> {
        self.containers.iter()
    }

    /// The container's root as seen from the monitor: `<proc_root>/<root_pid>/root`.
    pub(crate) fn root_path(&self, id: &str, proc_root: &Path) -> Option<PathBuf> {
        let pid = self.containers.get(id)?.container.root_pid?;
        Some(proc_root.join(pid.to_string()).join("root"))
    }

    /// The interned id for a container, creating the container if it is new.
    pub(crate) fn intern(&mut self, id: &str, excluded: Option<Exclusion>) -> Arc<str> {
        if let Some((key, _)) = self.containers.get_key_value(id) {
            return key.clone();
        }
        let key: Arc<str> = Arc::from(id);
        self.containers.insert(
            key.clone(),
            ContainerEntry {
                container: Container {
                    id: id.to_string(),
                    ..Container::default()
                },
                excluded,
                members: BTreeSet::new(),
                gone_at: None,
            },
        );
        key
    }

    /// Adds a live member; the oldest member becomes the container's root process.
    pub(crate) fn add_member(&mut self, id: &str, member: MemberInfo) {
        let Some(entry) = self.containers.get_mut(id) else {
            return;
        };
        entry.gone_at = None;
        entry
            .members
            .insert((member.key.start_ticks, member.key.pid));
        let is_oldest = entry.members.first() == Some(&(member.key.start_ticks, member.key.pid));
        if is_oldest || entry.container.root_pid.is_none() {
            entry.container.root_pid = Some(member.key.pid);
            entry.container.start_time = member.start_time;
            entry.container.mnt_ns = member.mnt_ns;
            entry.container.cgroup = Some(member.cgroup);
        }
    }

    /// Removes a member that exited. When it was the root process, the next oldest member
    /// becomes the root (its start time, mount namespace and cgroup are taken from the
    /// process table by the caller through `set_root`). Returns the new root key when the
    /// root changed, and marks the container gone when it has no members left.
    pub(crate) fn remove_member(
        &mut self,
        id: &str,
        key: ProcKey,
        now: Instant,
    ) -> Option<ProcKey> {
        let entry = self.containers.get_mut(id)?;
        entry.members.remove(&(key.start_ticks, key.pid));
        if entry.container.root_pid != Some(key.pid) {
            return None;
        }
        match entry.members.first() {
            Some(&(start_ticks, pid)) => {
                entry.container.root_pid = Some(pid);
                Some(ProcKey { pid, start_ticks })
            }
            None => {
                entry.gone_at = Some(now);
                None
            }
        }
    }

    /// Updates the root process details after a re-pick.
    pub(crate) fn set_root_details(&mut self, id: &str, member: MemberInfo) {
        if let Some(entry) = self.containers.get_mut(id)
            && entry.container.root_pid == Some(member.key.pid)
        {
            entry.container.start_time = member.start_time;
            entry.container.mnt_ns = member.mnt_ns;
            entry.container.cgroup = Some(member.cgroup);
        }
    }

    /// Drops containers gone for longer than `grace`; returns their ids.
    pub(crate) fn purge(&mut self, now: Instant, grace: Duration) -> Vec<Arc<str>> {
        let mut gone = Vec::new();
        self.containers.retain(|id, entry| {
            let keep = entry
                .gone_at
                .is_none_or(|at| now.saturating_duration_since(at) < grace);
            if !keep {
                gone.push(id.clone());
            }
            keep
        });
        gone
    }
}

/// One consistent view of both tables.
#[derive(Debug, Clone, Default)]
pub struct Tables {
    /// Processes.
    pub processes: ProcessTable,
    /// Containers.
    pub containers: ContainerTable,
}

impl Tables {
    /// A process and its container, by pid (live, or exited within the grace period).
    /// Excluded processes are returned too: callers must drop events attributed to them.
    pub(crate) fn lookup_pid(&self, pid: i32) -> Option<(&ProcEntry, Option<&ContainerEntry>)> {
        let (_, entry) = self.processes.lookup_pid(pid)?;
        Some((entry, self.containers.get(&entry.container_id)))
    }
}

/// A cloneable read handle to the latest published [`Tables`], and to the tracer's
/// [`ExecImages`] overlay.
#[derive(Debug, Clone, Default)]
pub struct SharedTables {
    inner: Arc<RwLock<Arc<Tables>>>,
    images: ExecImages,
    /// The writing ends of the subscribers' sockets (see [`SharedTables::subscribe`]).
    subscribers: Arc<Mutex<Vec<UnixStream>>>,
}

/// The reading end of a [`SharedTables::subscribe`]: readable after a publish.
#[derive(Debug)]
pub(crate) struct Published {
    socket: UnixStream,
}

impl Published {
    /// The descriptor to `poll` for readability.
    pub(crate) fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(&self.socket)
    }

    /// Takes the pending notices; true when there was at least one (a snapshot was published
    /// since the last call).
    pub(crate) fn take(&mut self) -> bool {
        let mut buf = [0u8; 64];
        let mut any = false;
        while let Ok(n) = self.socket.read(&mut buf) {
            if n == 0 {
                break;
            }
            any = true;
            if n < buf.len() {
                break;
            }
        }
        any
    }
}

impl SharedTables {
    /// The latest snapshot.
    pub(crate) fn snapshot(&self) -> Arc<Tables> {
        self.inner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Publishes a new snapshot (the scanner does this), and tells the subscribers.
    pub(crate) fn publish(&self, tables: Tables) {
        let tables = Arc::new(tables);
        *self.inner.write().unwrap_or_else(PoisonError::into_inner) = tables;
        let mut subscribers = self
            .subscribers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // One byte each; a full socket already holds an unread notice (WouldBlock), and a
        // subscriber that is gone (its end dropped) is forgotten.
        subscribers.retain_mut(|socket| match socket.write(&[1]) {
            Ok(_) => true,
            Err(error) => error.kind() == std::io::ErrorKind::WouldBlock,
        });
    }

    /// A socket that becomes readable whenever a snapshot is published from now on (both
    /// ends non-blocking). Dropping it unsubscribes.
    pub(crate) fn subscribe(&self) -> std::io::Result<Published> {
        let (reader, writer) = UnixStream::pair()?;
        reader.set_nonblocking(true)?;
        writer.set_nonblocking(true)?;
        self.subscribers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(writer);
        Ok(Published { socket: reader })
    }

    /// The overlay of images the tracer saw exec (empty in poll mode).
    pub(crate) fn exec_images(&self) -> ExecImages {
        self.images.clone()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn entry(pid: i32, ppid: i32, name: &str, container: &str) -> ProcEntry {
        ProcEntry {
            process: Arc::new(Process {
                pid,
                ppid,
                name: name.into(),
                args: vec![format!("arg-of-{name}")],
                ..Process::default()
            }),
            container_id: Arc::from(container),
            excluded: None,
            exited_at: None,
        }
    }

    fn key(pid: i32, start_ticks: u64) -> ProcKey {
        ProcKey { pid, start_ticks }
    }

    #[test]
    fn recycled_pid_is_a_different_process() {
        let mut table = ProcessTable::default();
        let t0 = Instant::now();
        table.insert(key(100, 5), entry(100, 1, "old", "c"));
        table.mark_exited(key(100, 5), t0);
        table.insert(key(100, 9), entry(100, 1, "new", "c"));
        assert_eq!(table.live_start(100), Some(9));
        assert_eq!(table.lookup_pid(100).unwrap().1.process.name, "new");
        assert_eq!(table.get(&key(100, 5)).unwrap().process.name, "old");
        // Marking the old one exited again does not touch the new one.
        table.mark_exited(key(100, 5), t0);
        assert_eq!(table.live_start(100), Some(9));
    }

    #[test]
    fn exited_processes_stay_for_the_grace_period() {
        let mut table = ProcessTable::default();
        let t0 = Instant::now();
        table.insert(key(7, 1), entry(7, 1, "gone", "c"));
        table.mark_exited(key(7, 1), t0);
        assert_eq!(table.lookup_pid(7).unwrap().1.process.name, "gone");
        assert_eq!(
            table.purge(t0 + Duration::from_secs(4), Duration::from_secs(5)),
            0
        );
        assert!(table.lookup_pid(7).is_some());
        assert_eq!(
            table.purge(t0 + Duration::from_secs(6), Duration::from_secs(5)),
            1
        );
        assert!(table.lookup_pid(7).is_none());
    }

    #[test]
    fn ancestry_stops_at_the_container_boundary_and_pid_1() {
        let mut table = ProcessTable::default();
        table.insert(key(1, 1), entry(1, 0, "pause", "pause"));
        table.insert(key(10, 2), entry(10, 0, "entry", "app"));
        table.insert(key(20, 3), entry(20, 10, "sh", "app"));
        table.insert(key(30, 4), entry(30, 20, "curl", "app"));
        // A process of another container whose parent pid is in "app" (setns-style).
        table.insert(key(40, 5), entry(40, 30, "other", "side"));
        table.insert(key(50, 6), entry(50, 1, "orphan", "app"));
        let names = |k| {
            table
                .ancestors(&k)
                .into_iter()
                .map(|a| a.name)
                .collect::<Vec<_>>()
        };
        assert_eq!(names(key(30, 4)), vec!["sh", "entry"]);
        assert_eq!(names(key(40, 5)), Vec::<String>::new());
        assert_eq!(names(key(50, 6)), Vec::<String>::new());
        assert_eq!(table.ancestors(&key(30, 4))[0].args, vec!["arg-of-sh"]);
    }

    #[test]
    fn ancestry_ignores_a_recycled_parent_pid() {
        let mut table = ProcessTable::default();
        // The child's parent (pid 20) died and pid 20 was reused by a younger process.
        table.insert(key(20, 50), entry(20, 1, "impostor", "c"));
        table.insert(key(30, 40), entry(30, 20, "child", "c"));
        assert!(table.ancestors(&key(30, 40)).is_empty());
    }

    #[test]
    fn a_view_takes_the_images_the_tracer_saw_exec_over_the_table() {
        let mut table = ProcessTable::default();
        table.insert(key(10, 2), entry(10, 0, "entry", "app"));
        // Procscan read pid 20 and 30 as forks of their parents; both exec'd since.
        table.insert(key(20, 3), entry(20, 10, "entry", "app"));
        table.insert(key(30, 4), entry(30, 20, "sh", "app"));
        let images = ExecImages::default();
        let image = |pid, start_ticks, name: &str| {
            Arc::new(Process {
                pid,
                start_ticks,
                name: name.into(),
                args: vec![format!("arg-of-{name}")],
                ..Process::default()
            })
        };
        images.record_exec(image(20, 3, "sh"), "app".into());
        images.record_exec(image(30, 4, "cp"), "app".into());
        // An image of an earlier process that had pid 10 is not pid 10's.
        images.record_exec(image(10, 1, "recycled"), "app".into());

        let view = table.view(key(30, 4), Some(&images)).unwrap();
        assert_eq!(
            (view.name.as_str(), view.args.clone()),
            ("cp", vec!["arg-of-cp".to_string()])
        );
        let names: Vec<_> = view.ancestors.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["sh", "entry"]);
        // Without the tracer (poll mode), the table's images.
        let view = table.view(key(30, 4), None).unwrap();
        assert_eq!(view.name, "sh");
        assert_eq!(view.ancestors[0].name, "entry");
        assert_eq!(table.view(key(10, 2), Some(&images)).unwrap().name, "entry");
        assert!(table.view(key(99, 1), Some(&images)).is_none());
    }

    #[test]
    fn ancestor_arguments_past_the_parent_are_capped() {
        let long = vec!["é".repeat(3000), "x".into()];
        let capped = capped_args(&long, ANCESTOR_ARGS_BYTES);
        assert_eq!(capped.len(), 1);
        assert!(capped[0].len() <= ANCESTOR_ARGS_BYTES);
    }

    #[test]
    fn container_root_is_the_oldest_live_member_and_is_repicked() {
        let mut containers = ContainerTable::default();
        let t0 = Instant::now();
        containers.intern("c", None);
        let member = |pid, start| MemberInfo {
            key: key(pid, start),
            cgroup: "/ecs/t/c".into(),
            mnt_ns: Some(pid as u64),
            start_time: None,
        };
        containers.add_member("c", member(30, 30));
        containers.add_member("c", member(10, 10));
        containers.add_member("c", member(20, 20));
        assert_eq!(containers.get("c").unwrap().container.root_pid, Some(10));
        assert_eq!(
            containers.root_path("c", Path::new("/proc")),
            Some(PathBuf::from("/proc/10/root"))
        );
        assert_eq!(containers.remove_member("c", key(20, 20), t0), None);
        assert_eq!(
            containers.remove_member("c", key(10, 10), t0),
            Some(key(30, 30))
        );
        assert_eq!(containers.get("c").unwrap().container.root_pid, Some(30));
        assert_eq!(containers.remove_member("c", key(30, 30), t0), None);
        assert_eq!(containers.get("c").unwrap().gone_at, Some(t0));
        assert!(containers.purge(t0, Duration::from_secs(5)).is_empty());
        let gone = containers.purge(t0 + Duration::from_secs(6), Duration::from_secs(5));
        assert_eq!(gone.len(), 1);
        assert!(containers.get("c").is_none());
    }

    #[test]
    fn ancestors_take_fresher_images_when_known() {
        let mut table = ProcessTable::default();
        table.insert(key(10, 1), entry(10, 0, "entry", "app"));
        table.insert(key(20, 2), entry(20, 10, "sh", "app"));
        table.insert(key(30, 3), entry(30, 20, "cat", "app"));
        let python = Arc::new(Process {
            pid: 20,
            name: "python3".into(),
            ..Process::default()
        });
        let names: Vec<String> = table
            .ancestors_with(&key(30, 3), |k| (k == key(20, 2)).then(|| python.clone()))
            .into_iter()
            .map(|a| a.name)
            .collect();
        assert_eq!(names, vec!["python3", "entry"]);
    }

    #[test]
    fn shared_snapshots_are_stable_while_held() {
        let shared = SharedTables::default();
        let mut tables = Tables::default();
        tables.processes.insert(key(5, 5), entry(5, 1, "a", "c"));
        shared.publish(tables.clone());
        let held = shared.snapshot();
        tables.processes.insert(key(6, 6), entry(6, 1, "b", "c"));
        shared.publish(tables);
        assert_eq!(held.processes.len(), 1);
        assert_eq!(shared.snapshot().processes.len(), 2);
        assert!(shared.snapshot().lookup_pid(6).is_some());
    }

    #[test]
    fn a_subscriber_is_told_of_each_publish_without_ever_blocking_the_publisher() {
        let shared = SharedTables::default();
        let mut first = shared.subscribe().unwrap();
        assert!(!first.take(), "nothing published yet");
        shared.publish(Tables::default());
        assert!(first.take());
        assert!(!first.take(), "one publish is one notice");
        // A subscriber that never reads fills its socket: the publisher goes on.
        for _ in 0..100_000 {
            shared.publish(Tables::default());
        }
        assert!(first.take());
        let second = shared.subscribe().unwrap();
        assert_eq!(shared.subscribers.lock().unwrap().len(), 2);
        drop(second);
        shared.publish(Tables::default());
        assert_eq!(
            shared.subscribers.lock().unwrap().len(),
            1,
            "a dropped subscriber is forgotten"
        );
        assert!(first.take());
        // A clone of the handle publishes to the same subscribers.
        shared.clone().publish(Tables::default());
        assert!(first.take());
    }
}
