//! From inotify events to file events: reading the queue, one view of a watched directory per
//! container, `creat`/`mkdir`/`unlinkat`/`renameat`/`chmod`, `open` coalesced per path, new
//! subdirectories followed, written files recorded as drift, the process attached when found.

use std::collections::HashSet;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use inotify::{EventMask, WatchDescriptor};

use super::config::Interest;
use super::watches::Owner;
use super::{FsWatcher, resolve};
use crate::collect::shared::{ExecImages, ProcKey, Tables};
use crate::event::{Collector, Event, EventType, Fd, FdKind, Internal, Timestamp};

/// The most pending coalesced opens before they are flushed early.
const MAX_PENDING_OPENS: usize = 16_384;

/// How long the first half of a rename waits for its second half.
const MOVE_PAIR_WINDOW: Duration = Duration::from_millis(50);

/// How one container sees a watched directory or file.
struct View {
    container: Arc<str>,
    path: String,
    is_file: bool,
    interest: Interest,
    trees: Vec<(usize, u32, Interest)>,
}

/// Content reads and writes of one path, coalesced until they are reported as one `open`.
#[derive(Debug)]
pub(super) struct PendingOpen {
    pub(super) first: Instant,
    pub(super) read: bool,
    pub(super) write: bool,
    pub(super) proc: Option<ProcKey>,
}

/// The first half of a rename, waiting for its second half.
#[derive(Debug)]
pub(super) struct PendingMove {
    pub(super) at: Instant,
    pub(super) container: Arc<str>,
    pub(super) path: String,
    pub(super) is_dir: bool,
    pub(super) changes: bool,
}

impl FsWatcher {
    /// Reads every pending inotify event without blocking and turns them into events.
    pub fn read_events(&mut self, out: &mut Vec<Event>) -> io::Result<usize> {
        // Everything that happened before this call is in the queue; if the queue turns out
        // not to have overflowed, nothing before this instant was lost.
        let started = Timestamp::now();
        let mut overflowed = false;
        let mut count = 0;
        loop {
            let mut raw = Vec::new();
            match self.inotify.read_events(&mut self.buf) {
                Ok(events) => {
                    for event in events {
                        raw.push((
                            event.wd.clone(),
                            event.mask,
                            event.cookie,
                            event.name.and_then(|n| n.to_str()).map(str::to_string),
                        ));
                    }
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                Err(error) => return Err(error),
            }
            if raw.is_empty() {
                break;
            }
            count += raw.len();
            self.stats.raw_events += raw.len() as u64;
            let mut overflow = false;
            for (wd, mask, cookie, name) in raw {
                if mask.contains(EventMask::Q_OVERFLOW) {
                    overflow = true;
                    continue;
                }
                self.handle_raw(&wd, mask, cookie, name.as_deref(), out);
            }
            if overflow {
                overflowed = true;
                self.stats.overflows += 1;
                self.rescan_needed = true;
                let mut event = Event::new(EventType::Tasksentry, Collector::Fswatch);
                event.internal = Some(Box::new(Internal {
                    kind: "inotify_overflow".into(),
                    message: "the inotify event queue overflowed: file events were lost; the watched trees are rescanned".into(),
                    count: Some(self.stats.overflows),
                }));
                out.push(event);
            }
        }
        if !overflowed && !self.rescan_needed {
            self.last_clean_read = started;
        }
        Ok(count)
    }

    fn handle_raw(
        &mut self,
        wd: &WatchDescriptor,
        mask: EventMask,
        cookie: u32,
        name: Option<&str>,
        out: &mut Vec<Event>,
    ) {
        if mask.contains(EventMask::IGNORED) {
            // The kernel dropped the watch: the file or directory is gone (or was replaced).
            let lost: Vec<Owner> = self
                .wds
                .get(wd)
                .map(|e| e.owners.clone())
                .unwrap_or_default();
            if let Some(entry) = self.wds.remove(wd) {
                self.by_inode.remove(&entry.inode);
            }
            // A replaced file (`passwd` renames a new /etc/shadow over the old one) gets
            // watched again.
            let containers: HashSet<Arc<str>> = lost.iter().map(|o| o.container.clone()).collect();
            for id in &containers {
                self.resolve_all(id, out);
            }
            self.report_lost_roots(&lost, out);
            return;
        }
        let Some(entry) = self.wds.get(wd) else {
            return;
        };
        // One view per container: the first owner's path, the union of interests, and the
        // recursive trees the directory belongs to (to follow new subdirectories).
        let mut views: Vec<View> = Vec::new();
        for owner in &entry.owners {
            let tree = (owner.depth > 0).then_some((owner.group, owner.depth, owner.interest));
            match views.iter_mut().find(|v| v.container == owner.container) {
                Some(view) => {
                    view.interest = view.interest.union(owner.interest);
                    view.trees.extend(tree);
                }
                None => views.push(View {
                    container: owner.container.clone(),
                    path: owner.path.clone(),
                    is_file: owner.is_file,
                    interest: owner.interest,
                    trees: tree.into_iter().collect(),
                }),
            }
        }
        for view in views {
            let path = match (view.is_file, name) {
                (true, _) => view.path.clone(),
                (false, Some(name)) => resolve::join(&view.path, name),
                // Events about a watched directory itself are not reported.
                (false, None) => continue,
            };
            let is_dir = mask.contains(EventMask::ISDIR);
            self.handle_path(
                &view.container,
                &path,
                is_dir,
                mask,
                cookie,
                view.interest,
                &view.trees,
                out,
            );
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn handle_path(
        &mut self,
        id: &Arc<str>,
        path: &str,
        is_dir: bool,
        mask: EventMask,
        cookie: u32,
        interest: Interest,
        trees: &[(usize, u32, Interest)],
        out: &mut Vec<Event>,
    ) {
        if mask.contains(EventMask::CREATE) {
            if interest.create {
                let kind = if is_dir {
                    EventType::Mkdir
                } else {
                    EventType::Creat
                };
                let event = self.file_event(kind, id, path, None, is_dir);
                out.push(event);
            }
            self.appeared(id, path, is_dir, interest, trees, out);
        }
        if mask.contains(EventMask::MOVED_FROM) {
            self.flush_open(id, path, out);
            self.moves.insert(
                cookie,
                PendingMove {
                    at: Instant::now(),
                    container: id.clone(),
                    path: path.to_string(),
                    is_dir,
                    changes: interest.moves,
                },
            );
        }
        if mask.contains(EventMask::MOVED_TO) {
            let from = self.moves.remove(&cookie).filter(|m| m.container == *id);
            if interest.moves || from.as_ref().is_some_and(|m| m.changes) {
                let old = from.map(|m| m.path);
                let event = self.file_event(EventType::Renameat, id, path, old, is_dir);
                out.push(event);
            }
            self.appeared(id, path, is_dir, interest, trees, out);
        }
        if mask.contains(EventMask::DELETE) {
            self.flush_open(id, path, out);
            if interest.delete {
                let event = self.file_event(EventType::Unlinkat, id, path, None, is_dir);
                out.push(event);
            }
        }
        if mask.contains(EventMask::ATTRIB) && interest.attrib && !is_dir {
            let event = self.file_event(EventType::Chmod, id, path, None, false);
            out.push(event);
        }
        let write = interest.writes && mask.intersects(EventMask::MODIFY | EventMask::CLOSE_WRITE);
        let read = interest.reads && mask.intersects(EventMask::ACCESS | EventMask::CLOSE_NOWRITE);
        if (write || read) && !is_dir {
            let key = (id.clone(), path.to_string());
            if !self.opens.contains_key(&key) {
                if write {
                    self.record_drift(id, path);
                }
                let proc = self.attribute(id, path);
                self.opens.insert(
                    key.clone(),
                    PendingOpen {
                        first: Instant::now(),
                        read: false,
                        write: false,
                        proc,
                    },
                );
            }
            if let Some(pending) = self.opens.get_mut(&key) {
                pending.read |= read;
                pending.write |= write;
            }
            if self.opens.len() > MAX_PENDING_OPENS {
                self.flush_opens(Duration::ZERO, out);
            }
        }
    }

    /// A file or directory appeared at `path` (created or moved in): record drift, follow
    /// directories of recursive trees, and resolve patterns that lead through it.
    fn appeared(
        &mut self,
        id: &Arc<str>,
        path: &str,
        is_dir: bool,
        interest: Interest,
        trees: &[(usize, u32, Interest)],
        out: &mut Vec<Event>,
    ) {
        if !is_dir {
            if interest.content_appears() {
                self.record_drift(id, path);
            }
        } else {
            for &(group, depth, tree_interest) in trees {
                self.add_tree(
                    id,
                    path,
                    group,
                    depth.saturating_sub(1),
                    tree_interest,
                    true,
                    out,
                );
            }
        }
        let mut touched = Vec::new();
        for (g, group) in self.config.groups.iter().enumerate() {
            for (s, spec) in group.specs.iter().enumerate() {
                if resolve::is_on_pattern_path(&spec.pattern, path) {
                    touched.push((g, s));
                }
            }
        }
        for (g, s) in touched {
            self.resolve_spec(id, g, s, true, out);
        }
    }

    pub(super) fn record_drift(&self, id: &str, path: &str) {
        let inode = self.containers.get(id).and_then(|w| {
            let fd = resolve::open_in_root(&w.root, path)?;
            let st = resolve::fstat(&fd)?;
            (st.st_mode & libc::S_IFMT == libc::S_IFREG).then_some((st.st_dev, st.st_ino))
        });
        self.drift.record(id, path, inode);
    }

    fn attribute(&mut self, id: &str, path: &str) -> Option<ProcKey> {
        if !self.config.attribution {
            return None;
        }
        let tables = self.tables.as_ref()?.snapshot();
        self.attributor.find(
            &tables,
            &self.config.proc_root,
            id,
            path,
            self.config.attribution_refresh,
            self.config.attribution_max_processes,
        )
    }

    /// Builds a file event (attributing it when a process is found).
    pub(super) fn file_event(
        &mut self,
        kind: EventType,
        id: &Arc<str>,
        path: &str,
        oldname: Option<String>,
        is_dir: bool,
    ) -> Event {
        let proc = self.attribute(id, path);
        self.build_event(kind, id, path, oldname, is_dir, proc)
    }

    pub(super) fn build_event(
        &mut self,
        kind: EventType,
        id: &Arc<str>,
        path: &str,
        oldname: Option<String>,
        is_dir: bool,
        proc: Option<ProcKey>,
    ) -> Event {
        self.stats.events += 1;
        let mut event = Event::new(kind, Collector::Fswatch);
        let mut fd = Fd {
            kind: Some(if is_dir {
                FdKind::Directory
            } else {
                FdKind::File
            }),
            name: Some(path.to_string()),
            ..Fd::default()
        };
        let watched = self.containers.get(&**id);
        event.container = watched.map(|w| Box::new(w.container.clone()));
        match kind {
            EventType::Creat | EventType::Chmod | EventType::Mkdir => {
                let mode = watched.and_then(|w| {
                    let fd = resolve::open_in_root(&w.root, path)?;
                    resolve::fstat(&fd).map(|st| st.st_mode)
                });
                if let Some(mode) = mode {
                    fd.mode = Some(mode);
                    event.evt.args.push(("mode".into(), render_mode(mode)));
                }
                if kind != EventType::Mkdir {
                    event.evt.args.push(("path".into(), path.to_string()));
                }
            }
            EventType::Renameat => {
                let old = oldname.clone().unwrap_or_default();
                event.evt.args.push(("oldpath".into(), old));
                event.evt.args.push(("newpath".into(), path.to_string()));
                fd.oldname = oldname;
            }
            EventType::Unlinkat => {
                event.evt.args.push(("name".into(), path.to_string()));
            }
            _ => {}
        }
        event.fd = Some(Box::new(fd));
        if let (Some(key), Some(tables)) = (proc, self.tables.as_ref()) {
            attach_process(
                &mut event,
                &tables.snapshot(),
                key,
                Some(&tables.exec_images()),
            );
        }
        event
    }

    fn flush_open(&mut self, id: &Arc<str>, path: &str, out: &mut Vec<Event>) {
        let key = (id.clone(), path.to_string());
        if let Some(pending) = self.opens.remove(&key) {
            out.push(self.open_event(id, path, pending));
        }
    }

    fn open_event(&mut self, id: &Arc<str>, path: &str, pending: PendingOpen) -> Event {
        let mut event = self.build_event(EventType::Open, id, path, None, false, pending.proc);
        if let Some(fd) = event.fd.as_mut() {
            fd.open_read = Some(pending.read);
            fd.open_write = Some(pending.write);
        }
        if pending.write {
            // The size after the write tells an append from a truncation.
            let size = self.containers.get(&**id).and_then(|w| {
                let fd = resolve::open_in_root(&w.root, path)?;
                resolve::fstat(&fd).map(|st| st.st_size)
            });
            if let Some(size) = size {
                event.evt.args.push(("size".into(), size.to_string()));
            }
        }
        event
    }

    /// Emits coalesced opens older than `age`, and unpaired renames older than the pairing
    /// window (moves out of the watched trees).
    pub fn flush_opens(&mut self, age: Duration, out: &mut Vec<Event>) {
        let now = Instant::now();
        let due: Vec<(Arc<str>, String)> = self
            .opens
            .iter()
            .filter(|(_, p)| now.saturating_duration_since(p.first) >= age)
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            if let Some(pending) = self.opens.remove(&key) {
                let event = self.open_event(&key.0, &key.1, pending);
                out.push(event);
            }
        }
        let expired: Vec<u32> = self
            .moves
            .iter()
            .filter(|(_, m)| {
                age.is_zero() || now.saturating_duration_since(m.at) >= MOVE_PAIR_WINDOW
            })
            .map(|(c, _)| *c)
            .collect();
        for cookie in expired {
            if let Some(m) = self.moves.remove(&cookie)
                && m.changes
            {
                let mut event = self.build_event(
                    EventType::Renameat,
                    &m.container,
                    &m.path,
                    Some(m.path.clone()),
                    m.is_dir,
                    None,
                );
                // Moved out of the watched trees: the new name is unknown.
                event.evt.args.retain(|(k, _)| k != "newpath");
                out.push(event);
            }
        }
    }

    /// Emits whatever is due: coalesced opens past the window, unpaired renames.
    /// When the next pending open or move half is due to be flushed (`None`: nothing
    /// pending), so the thread can sleep until then instead of waking on a fixed tick.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        let window = self.config.coalesce_window;
        let opens = self.opens.values().map(|p| p.first + window);
        let moves = self.moves.values().map(|m| m.at + MOVE_PAIR_WINDOW);
        opens.chain(moves).min()
    }

    pub fn flush_due(&mut self, out: &mut Vec<Event>) {
        let window = self.config.coalesce_window;
        self.flush_opens(window, out);
    }
}

/// Attaches the process `key` (with its ancestors) when it is known and not excluded.
/// Names the process `key` in `event`: as the tracer saw it exec when it did since procscan read
/// it (`images`, trace mode: a shell's fork that became `cp` is `cp`), else as the table has it.
/// Excluded processes are not named.
pub(super) fn attach_process(
    event: &mut Event,
    tables: &Tables,
    key: ProcKey,
    images: Option<&ExecImages>,
) {
    if tables
        .processes
        .get(&key)
        .is_none_or(|entry| entry.excluded.is_some())
    {
        return;
    }
    event.proc = tables.processes.view(key, images).map(Box::new);
}

/// Falco's rendering of a mode argument: octal, then the set bits by name
/// (`0104755(S_ISUID|S_IRUSR|S_IWUSR|S_IXUSR|...)` minus the file-type bits).
pub(crate) fn render_mode(mode: u32) -> String {
    const BITS: [(u32, &str); 12] = [
        (0o4000, "S_ISUID"),
        (0o2000, "S_ISGID"),
        (0o1000, "S_ISVTX"),
        (0o400, "S_IRUSR"),
        (0o200, "S_IWUSR"),
        (0o100, "S_IXUSR"),
        (0o040, "S_IRGRP"),
        (0o020, "S_IWGRP"),
        (0o010, "S_IXGRP"),
        (0o004, "S_IROTH"),
        (0o002, "S_IWOTH"),
        (0o001, "S_IXOTH"),
    ];
    let perm = mode & 0o7777;
    let names: Vec<&str> = BITS
        .iter()
        .filter(|(bit, _)| perm & bit != 0)
        .map(|(_, name)| *name)
        .collect();
    format!("{perm:#o}({})", names.join("|")).replacen("0o", "0", 1)
}
