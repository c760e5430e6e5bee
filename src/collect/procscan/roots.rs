//! Container roots: each container's root is opened once, through its first process (as that
//! process's owner where the monitor's capabilities do not pass the kernel's checks); user
//! names and exec triggers are read through it, and its first opening checks what the monitor
//! can see there (see [`crate::collect::visibility`]).

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use tracing::warn;

use super::ProcScanner;
use crate::collect::access::{Diagnosis, dir_owner};
use crate::collect::shared::ProcKey;
use crate::collect::visibility::{fd_path, is_own_root};
use crate::event::{Collector, Event, EventType, Internal, Process};
use crate::procfs::HOST_ID;

/// An opened container root.
#[derive(Debug)]
pub(super) struct RootHandle {
    /// The first process it was opened through.
    pid: i32,
    /// Keeps the descriptor `path` names open.
    _fd: OwnedFd,
    /// `/proc/self/fd/<n>`.
    path: PathBuf,
}

impl ProcScanner {
    /// The path through which container `id`'s root is reached (`/proc/self/fd/<n>` of a
    /// descriptor opened through its first process), opening it on first use or when the
    /// first process changed. The first opening of each container also checks what the
    /// monitor can see there (see [`Visibility::note_root`]). `None` while the container has no
    /// first process, or its first process is still in the monitor's own root (in setup).
    fn root_of(&mut self, id: &str) -> Option<PathBuf> {
        let (key, entry) = self.tables.containers.get_key_value(id)?;
        let pid = entry.container.root_pid?;
        if let Some(handle) = self.roots.get(id)
            && handle.pid == pid
        {
            return Some(handle.path.clone());
        }
        let key = key.clone();
        let opened = self.options.access.open_root(&self.config.proc_root, pid);
        // A container process still in the monitor's own root is in its setup, before it
        // moved into its container root (the emulated tasks' containers; on Fargate roots never
        // coincide). Host processes do share it.
        if let Ok(fd) = &opened
            && id != HOST_ID
            && is_own_root(fd)
        {
            return None;
        }
        if !self.visibility.root_checked(id) {
            let diagnosis = opened.as_ref().err().map(|_| self.root_diagnosis(pid));
            self.visibility.note_root(&key, opened.as_ref(), diagnosis);
        }
        let fd = opened.ok()?;
        // A new descriptor may reuse the number of the one it replaces: the user databases
        // cached under the old path are dropped.
        self.users.forget(id);
        let path = fd_path(&fd);
        self.roots.insert(
            key,
            RootHandle {
                pid,
                _fd: fd,
                path: path.clone(),
            },
        );
        Some(path)
    }

    /// Why the root of a container whose first process is `pid` was refused.
    fn root_diagnosis(&self, pid: i32) -> Diagnosis {
        let entry = self.tables.processes.live_start(pid).and_then(|start| {
            self.tables.processes.get(&ProcKey {
                pid,
                start_ticks: start,
            })
        });
        let process = entry.map(|e| &e.process);
        Diagnosis::of(
            self.options.access.privileges(),
            dir_owner(&self.config.proc_root, pid),
            [
                process.and_then(|p| p.uid),
                process.and_then(|p| p.euid),
                process.and_then(|p| p.euid),
            ],
            [
                process.and_then(|p| p.gid),
                process.and_then(|p| p.egid),
                process.and_then(|p| p.egid),
            ],
            process.and_then(|p| p.cap_permitted),
            false,
        )
    }

    pub(super) fn resolve_users(
        &mut self,
        container_id: &str,
        process: &mut Process,
        now: Instant,
    ) {
        let Some(root) = self.root_of(container_id) else {
            return;
        };
        self.users.name(container_id, &root, process, now);
    }

    pub(super) fn sync_triggers(&mut self, out: &mut Vec<Event>) {
        let Some(triggers) = self.triggers.as_mut() else {
            return;
        };
        let gone: Vec<Arc<str>> = triggers
            .watched()
            .filter(|id| {
                self.tables
                    .containers
                    .get(id)
                    .is_none_or(|c| c.gone_at.is_some())
            })
            .cloned()
            .collect();
        for id in gone {
            triggers.remove_container(&id);
        }
        if self.watch_limit_reported {
            return;
        }
        let wanted: Vec<Arc<str>> = self
            .tables
            .containers
            .iter()
            .filter(|(id, entry)| {
                entry.excluded.is_none() && entry.gone_at.is_none() && !triggers.is_watched(id)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in wanted {
            let Some(root) = self.root_of(&id) else {
                continue;
            };
            let Some(triggers) = self.triggers.as_mut() else {
                return;
            };
            let outcome = triggers.add_container(id.clone(), &root);
            if outcome.limit_hit {
                self.watch_limit_reported = true;
                warn!(container = %id, "inotify watch limit reached; exec triggers degraded to polling");
                let mut event = Event::new(EventType::Tasksentry, Collector::Procscan);
                event.internal = Some(Box::new(Internal {
                    kind: "watch_limit".into(),
                    message: format!(
                        "the inotify watch limit was reached while adding exec triggers for container {id}; new processes there are found by polling only"
                    ),
                    count: None,
                }));
                out.push(event);
                break;
            }
        }
    }
}
