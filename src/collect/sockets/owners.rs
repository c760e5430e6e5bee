//! Owners of new sockets: the fds of live processes are scanned for the new inodes (the
//! monitor's own first, then processes of the task's containers, then anything else, then
//! excluded processes; bounded per poll), as the process's owner where the monitor lacks
//! `CAP_SYS_PTRACE`; the owner's `stat` is read at that moment, and its command line and
//! executable too when procscan's entry names another image (see [`Seen`]).

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use super::SocketTracker;
use super::tracker::Known;
use crate::collect::access::{Owner as ProcOwner, dir_owner};
use crate::collect::proc::{
    Clock, ReadOptions, list_pids, pid_path, read_capped, read_identity, read_link_string,
    read_process, read_stat,
};
use crate::collect::shared::{ProcEntry, ProcKey, Tables};
use crate::event::{Container, Process};
use crate::procfs::{Cmdline, HOST_ID, parse_cgroup, parse_cmdline, parse_exe_link, socket_inode};

/// Where an owner's process record comes from.
pub(super) enum OwnerView<'t> {
    /// Procscan's entry (named with the tracer's newer image, see
    /// [`crate::collect::shared::table::ProcessTable::view`]).
    Table(ProcKey, &'t ProcEntry),
    /// Trace mode: the image the tracer saw the process exec, and its container, when
    /// procscan has not read the process yet (its scans lag behind a busy task).
    Traced(Arc<Process>, Arc<str>),
}

/// Whose a socket inode is, as the fd scan found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Owner {
    /// The monitor's own socket.
    Monitor,
    /// A process, by pid in the proc root's namespace.
    Pid(i32),
    /// Looked for and not found.
    NotFound,
}

/// An owner as its `/proc` entry showed it when the fd scan found its socket: procscan's
/// entry can be older (a fork read before it exec'd the program that made the connection,
/// when procscan's scans lag behind), which would name the connection after the wrong
/// program. The socket then waits for procscan to catch up, and is reported with the image
/// read here if it has not by then.
#[derive(Debug, Clone)]
pub(super) struct Seen {
    pub(super) start_ticks: u64,
    pub(super) comm: String,
    /// Read at once when procscan's entry named another image at that moment.
    pub(super) image: Option<OwnerImage>,
}

/// The fields an exec changes, read from `/proc/<pid>` (`cmdline`, `exe`).
#[derive(Debug, Clone)]
pub(super) struct OwnerImage {
    pub(super) exe: Option<String>,
    pub(super) exepath: Option<String>,
    pub(super) args: Vec<String>,
    pub(super) args_truncated: bool,
    pub(super) exe_deleted: bool,
    pub(super) exe_from_memfd: bool,
}

/// An owner procscan has not read, as the sockets collector read it from `/proc` (see
/// [`SocketTracker::read_owner`]).
pub(super) enum OwnerRead {
    /// The process (its ancestors from procscan's table) and its container as procscan knows
    /// it, or as its cgroup names it.
    Process(Box<Process>, Option<Box<Container>>),
    /// In a container the monitor excludes (its own): not reported.
    Excluded,
}

/// Command-line bytes kept for an owner read by the sockets collector (procscan's default).
const SEEN_CMDLINE_BYTES: usize = 64 * 1024;

impl SocketTracker {
    /// Finds the owners of `wanted` inodes: the monitor's own fds first, then processes of the
    /// task's containers, then anything else in the proc root, then excluded processes.
    pub(super) fn resolve_owners(&mut self, mut wanted: HashSet<u64>, tables: &Tables) {
        self.stats.owner_scans += 1;
        let root = self.config.proc_root.clone();
        let mut budget = self.config.max_fd_links_per_poll;
        let mut found: Vec<(u64, Owner)> = Vec::new();
        scan_fds(&root.join("self/fd"), &mut wanted, &mut budget, |inode| {
            found.push((inode, Owner::Monitor));
        });
        let mut order: Vec<i32> = Vec::new();
        let mut excluded: Vec<i32> = Vec::new();
        let mut listed: HashSet<i32> = HashSet::new();
        for (key, entry) in tables.processes.live() {
            listed.insert(key.pid);
            if entry.excluded.is_some() {
                excluded.push(key.pid);
            } else {
                order.push(key.pid);
            }
        }
        // Processes procscan has not published yet.
        if list_pids(&root, &mut self.pids).is_ok() {
            order.extend(self.pids.iter().copied().filter(|p| !listed.contains(p)));
        }
        order.extend(excluded);
        order.retain(|pid| Some(*pid) != self.self_pid);
        // Other users' descriptor links pass the kernel's ptrace check only as their owner when
        // the monitor lacks CAP_SYS_PTRACE (see `access`): consecutive processes of one owner
        // are scanned under one switch of the filesystem ids.
        let access = self.config.access;
        let owners: Vec<Option<ProcOwner>> = if access.may_switch() {
            order.iter().map(|pid| dir_owner(&root, *pid)).collect()
        } else {
            vec![None; order.len()]
        };
        let mut start = 0;
        while start < order.len() && !wanted.is_empty() && budget > 0 {
            let owner = owners[start];
            let end = start + owners[start..].iter().take_while(|o| **o == owner).count();
            access.as_owner(owner, || {
                for &pid in &order[start..end] {
                    if wanted.is_empty() || budget == 0 {
                        break;
                    }
                    let dir = root.join(pid.to_string()).join("fd");
                    scan_fds(&dir, &mut wanted, &mut budget, |inode| {
                        found.push((inode, Owner::Pid(pid)));
                    });
                }
            });
            start = end;
        }
        self.stats.fd_links_read += (self.config.max_fd_links_per_poll - budget) as u64;
        // One `stat` per owner, however many of its sockets were found.
        let mut noted: HashSet<i32> = HashSet::new();
        for (inode, owner) in found {
            if let Owner::Pid(pid) = owner
                && noted.insert(pid)
            {
                self.note_seen(pid, tables);
            }
            self.owners.insert(inode, owner);
        }
        for inode in wanted {
            self.owners.insert(inode, Owner::NotFound);
        }
    }

    /// The process record for the owner `pid` of `known`: procscan's live entry; else, in
    /// trace mode, the image the tracer saw that pid exec if it is newer than what procscan
    /// holds (nothing, or an exited process whose pid was reused); else procscan's exited
    /// entry (a socket reported after its owner exited).
    pub(super) fn owner_view<'t>(
        &self,
        pid: i32,
        known: &Known,
        tables: &'t Tables,
    ) -> Option<OwnerView<'t>> {
        let table = tables.processes.lookup_pid(pid);
        if let Some((key, entry)) = table
            && entry.exited_at.is_none()
        {
            return Some(OwnerView::Table(key, entry));
        }
        let traced = self
            .images
            .as_ref()
            .and_then(|images| images.latest(pid, known.first_seen));
        match (table, traced) {
            (Some((key, _)), Some((process, container_id)))
                if process.start_ticks > key.start_ticks =>
            {
                Some(OwnerView::Traced(process, container_id))
            }
            (Some((key, entry)), _) => Some(OwnerView::Table(key, entry)),
            (None, Some((process, container_id))) => Some(OwnerView::Traced(process, container_id)),
            (None, None) => None,
        }
    }

    /// Whether `view` names the owner `pid` as it was when its socket was found: the same
    /// process (start time) with the same name. True when nothing was recorded, and for the
    /// tracer's image (read at the exec stop itself).
    pub(super) fn is_current(&self, pid: i32, view: &OwnerView<'_>) -> bool {
        let Some(seen) = self.seen.get(&pid) else {
            return true;
        };
        match view {
            OwnerView::Traced(..) => true,
            OwnerView::Table(key, entry) => {
                key.start_ticks == seen.start_ticks && self.named(*key, entry, &seen.comm)
            }
        }
    }

    /// Whether procscan's entry (or the tracer's newer image of it) has the name `comm`.
    fn named(&self, key: ProcKey, entry: &ProcEntry, comm: &str) -> bool {
        match self.images.as_ref().and_then(|i| i.image(key)) {
            Some(image) => image.name == comm,
            None => entry.process.name == comm,
        }
    }

    /// Reads the owner `pid` of a socket from `/proc` as procscan would (status, command line,
    /// executable, working directory, descriptors 0-2, allowlisted environment, through
    /// [`crate::collect::access`]): procscan has not read it by the time its socket is due
    /// (under load its scans lag behind a busy task by more than `owner_wait`), and a socket
    /// reported without a process is one no rule can judge (a service's own listener would be
    /// "unexpected"). Only the process the fd scan found counts (its start time, when
    /// recorded); its ancestors are procscan's, its container the one its cgroup names. `None`
    /// when it is gone.
    pub(super) fn read_owner(&self, pid: i32, tables: &Tables) -> Option<OwnerRead> {
        let root = &self.config.proc_root;
        let mut buf = Vec::new();
        let stat = read_stat(root, pid, &mut buf)?;
        if self
            .seen
            .get(&pid)
            .is_some_and(|seen| seen.start_ticks != stat.starttime)
        {
            // The pid belongs to another process by now.
            return None;
        }
        let start_ticks = stat.starttime;
        let options = ReadOptions {
            env_allowlist: self.config.env_allowlist.clone(),
            max_cmdline_bytes: self.config.max_cmdline_bytes,
            access: self.config.access,
        };
        let identity = read_identity(root, stat, &options.access, &mut buf);
        let container_id = identity
            .cgroup
            .as_deref()
            .and_then(|text| parse_cgroup(text).container_id)
            .unwrap_or_else(|| HOST_ID.to_string());
        let read = read_process(root, identity, &Clock::read(root), &options, &mut buf)?;
        let entry = tables.containers.get(&container_id);
        if entry.is_some_and(|c| c.excluded.is_some()) {
            return Some(OwnerRead::Excluded);
        }
        let container = match entry {
            Some(c) => Some(Box::new(c.container.clone())),
            None if container_id == HOST_ID => None,
            None => Some(Box::new(Container {
                id: container_id.clone(),
                ..Container::default()
            })),
        };
        let mut process = read.process;
        process.ancestors =
            tables
                .processes
                .ancestors_of_unread(process.ppid, start_ticks, &container_id, |_| None);
        Some(OwnerRead::Process(Box::new(process), container))
    }

    /// Records what `/proc/<pid>` shows now (see [`Seen`]); when procscan's entry names
    /// another image, also reads the command line and executable.
    fn note_seen(&mut self, pid: i32, tables: &Tables) {
        let root = &self.config.proc_root;
        let Some(stat) = read_stat(root, pid, &mut self.buf) else {
            // Gone already: procscan's entry is all there is.
            self.seen.remove(&pid);
            return;
        };
        let mut seen = Seen {
            start_ticks: stat.starttime,
            comm: stat.comm,
            image: None,
        };
        let stale = match tables.processes.lookup_pid(pid) {
            Some((key, entry)) => {
                key.start_ticks == seen.start_ticks && !self.named(key, entry, &seen.comm)
            }
            None => false,
        };
        if stale {
            let access = self.config.access;
            let owner = if access.may_switch() {
                dir_owner(root, pid)
            } else {
                None
            };
            let cmdline = match read_capped(
                &pid_path(root, pid, "cmdline"),
                &mut self.buf,
                SEEN_CMDLINE_BYTES,
            ) {
                Ok(truncated) => parse_cmdline(&self.buf, truncated),
                Err(_) => Cmdline::default(),
            };
            let exe = access
                .as_owner(owner, || read_link_string(&pid_path(root, pid, "exe")))
                .map(|target| parse_exe_link(&target));
            // Read after a recycle of the pid: not this process's.
            let same = read_stat(root, pid, &mut self.buf)
                .is_some_and(|again| again.starttime == seen.start_ticks);
            let image = OwnerImage {
                exe: cmdline.argv0,
                exepath: exe.as_ref().map(|(path, _, _)| path.clone()),
                args: cmdline.args,
                args_truncated: cmdline.truncated,
                exe_deleted: exe.as_ref().is_some_and(|e| e.1),
                exe_from_memfd: exe.as_ref().is_some_and(|e| e.2),
            };
            let renamed = tables.processes.lookup_pid(pid).is_some_and(|(_, entry)| {
                entry.process.exepath == image.exepath && entry.process.args == image.args
            });
            if renamed {
                // Same program and arguments: the process renamed itself (prctl), it did not
                // exec. Procscan's entry is current.
                if let Some((_, entry)) = tables.processes.lookup_pid(pid) {
                    seen.comm = entry.process.name.clone();
                }
            } else if same {
                seen.image = Some(image);
            }
        }
        self.seen.insert(pid, seen);
    }
}

/// Reads the fd links in `dir`, calling `hit` for each socket inode in `wanted` (and removing
/// it). Stops when `budget` links have been read.
fn scan_fds(dir: &Path, wanted: &mut HashSet<u64>, budget: &mut usize, mut hit: impl FnMut(u64)) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if *budget == 0 || wanted.is_empty() {
            return;
        }
        *budget -= 1;
        let Ok(target) = std::fs::read_link(entry.path()) else {
            continue;
        };
        let Some(inode) = socket_inode(&target.to_string_lossy()) else {
            continue;
        };
        if wanted.remove(&inode) {
            hit(inode);
        }
    }
}
