//! The hot path: every pending `waitpid` status is handled and its tracee resumed at once
//! (an exec stop after the reads that must be made while it is frozen); seizing the processes
//! procscan hands over; what can wait is queued as [`Work`] for between stops.

use std::collections::hash_map::Entry;
use std::sync::Arc;
use std::time::Instant;

use nix::errno::Errno;
use nix::sys::ptrace;
use nix::unistd::Pid;
use tracing::{debug, warn};

use super::frozen::{Frozen, Memory};
use super::ptrace::{
    Status, decode, is_stop_signal, listen, resume, shell_status, trace_options, wait_any,
};
use super::{Ident, Known, MAX_WORK, Tracee, Tracer, Work};
use crate::collect::proc::{bare_process, read_stat};
use crate::collect::shared::ScannedImage;
use crate::collect::shared::tracer_link::Held;
use crate::event::{Collector, Event, EventType, Internal, Process, Timestamp};
use crate::procfs::{HOST_ID, parse_cgroup, parse_status};

impl Tracer {
    /// Handles every pending status: the hot path. Stops are resumed at once; what can wait
    /// is queued in `work`.
    pub(super) fn reap(&mut self) {
        loop {
            if self.work.len() >= MAX_WORK {
                // Backpressure: the stops wait until the work queued for earlier ones is done.
                self.last_reap = Instant::now();
                return;
            }
            match wait_any() {
                Ok(Some((pid, raw))) => {
                    if let Some(status) = decode(raw) {
                        self.handle(pid, status);
                    }
                }
                Ok(None) | Err(Errno::ECHILD) => {
                    // Nothing pending as of now (handling the stops above took time).
                    self.last_reap = Instant::now();
                    return;
                }
                Err(Errno::EINTR) => continue,
                Err(error) => {
                    if self.last_warning.ready() {
                        warn!(%error, "waitpid failed in the tracer");
                    }
                    return;
                }
            }
        }
    }

    fn handle(&mut self, pid: i32, status: Status) {
        match status {
            Status::Stopped { sig, event } => {
                if let Entry::Vacant(entry) = self.tracees.entry(pid) {
                    // A new child can report its first stop before its parent's fork event.
                    // Taken for a process of its own until that event or `classify` (after
                    // this round of stops: nothing is read from /proc before resuming it) says
                    // otherwise.
                    entry.insert(Tracee { tgid: pid });
                    self.unclassified.insert(pid, false);
                    // Held from now on: procscan must not report its exec, which can only
                    // happen after this stop is resumed.
                    self.link.set(pid, Held::Live);
                }
                match event {
                    0 => resume(pid, sig),
                    libc::PTRACE_EVENT_EXEC => self.on_exec_stop(pid),
                    libc::PTRACE_EVENT_FORK
                    | libc::PTRACE_EVENT_VFORK
                    | libc::PTRACE_EVENT_CLONE => {
                        let child = ptrace::getevent(Pid::from_raw(pid))
                            .ok()
                            .and_then(|c| i32::try_from(c).ok());
                        resume(pid, 0);
                        if let Some(child) = child {
                            self.on_new_child(pid, child, event);
                        }
                    }
                    libc::PTRACE_EVENT_STOP if is_stop_signal(sig) => {
                        // A group-stop: stay stopped, as without a tracer, until SIGCONT.
                        if let Err(error) = listen(pid)
                            && error != Errno::ESRCH
                        {
                            debug!(pid, %error, "PTRACE_LISTEN failed");
                        }
                    }
                    // The first stop of an auto-attached child, and anything else.
                    _ => resume(pid, 0),
                }
            }
            Status::Exited(_) | Status::Signaled(_) => {
                let Some(tracee) = self.tracees.remove(&pid) else {
                    return;
                };
                self.unclassified.remove(&pid);
                if tracee.tgid == pid {
                    self.idents.remove(&pid);
                    self.multithreaded.remove(&pid);
                    self.work.push_back(Work::Exit {
                        pid,
                        exit_code: shell_status(status),
                        time: Timestamp::now(),
                    });
                }
            }
        }
    }

    /// A fork, vfork or clone stop of `parent` (already resumed) that created `child`.
    fn on_new_child(&mut self, parent: i32, child: i32, event: i32) {
        let parent_tgid = self.tracees.get(&parent).map_or(parent, |t| t.tgid);
        if self.unclassified.remove(&child).is_some() && event == libc::PTRACE_EVENT_CLONE {
            // Its first stop came first and took it for a process.
            self.link.unset(child);
        }
        if event == libc::PTRACE_EVENT_CLONE {
            // A thread (clone without a new process's exit signal).
            self.tracees.insert(child, Tracee { tgid: parent_tgid });
            self.multithreaded.insert(parent_tgid);
            return;
        }
        self.tracees.insert(child, Tracee { tgid: child });
        if let Some(ident) = self.idents.get(&parent_tgid).cloned() {
            self.idents.entry(child).or_insert(ident);
        }
        self.work.push_back(Work::Fork {
            parent_tgid,
            child,
            time: Timestamp::now(),
        });
    }

    /// The exec stop: read what must be read while the process is frozen, resume it, and
    /// leave the rest for later.
    fn on_exec_stop(&mut self, pid: i32) {
        // After an exec by a non-leader thread the process continues under the leader's pid;
        // the execing thread's former id is gone. Only a process that has had threads can
        // have that (one `ptrace` call saved on every other exec).
        if self.multithreaded.contains(&pid)
            && let Ok(former) = ptrace::getevent(Pid::from_raw(pid))
            && let Ok(former) = i32::try_from(former)
            && former != pid
        {
            self.tracees.remove(&former);
        }
        self.tracees.insert(pid, Tracee { tgid: pid });
        self.unclassified.remove(&pid);
        let time = Timestamp::now();
        let known = self.idents.get(&pid).cloned();
        // While frozen: only what the process would take with it if it exited at once.
        let dir = self.frozen.open(pid);
        let read = dir.as_ref().and_then(|dir| {
            self.frozen
                .read_frozen(dir, Memory::Exec, known.is_none(), known.is_none())
        });
        resume(pid, 0);
        // Resumed: the rest, before anything else is reaped (see `frozen`).
        let (Some(dir), Some(mut read)) = (dir, read) else {
            return;
        };
        self.frozen.read_resumed(&dir, &mut read);
        drop(dir);
        self.queue_exec(pid, known, read, time);
    }

    /// New tracees whose first stop came before their parent's fork or clone event (which
    /// normally follows in the same or the next round of stops and settles it) and are still
    /// unexplained a round later: their thread group, read from `/proc` now that they run.
    /// Another thread's is fixed; its provisional "held" mark as a process is removed.
    pub(super) fn classify(&mut self) {
        if self.unclassified.is_empty() {
            return;
        }
        let mut due = Vec::new();
        self.unclassified.retain(|tid, aged| {
            if *aged {
                due.push(*tid);
                false
            } else {
                *aged = true;
                true
            }
        });
        for tid in due {
            if !self.tracees.contains_key(&tid) {
                continue;
            }
            if let Some(tgid) = self.read_tgid(tid)
                && tgid != tid
            {
                self.tracees.insert(tid, Tracee { tgid });
                self.multithreaded.insert(tgid);
                self.link.unset(tid);
            }
        }
    }

    /// The thread group of a thread, from its `status`.
    fn read_tgid(&self, tid: i32) -> Option<i32> {
        let text = std::fs::read_to_string(self.proc_root.join(format!("{tid}/status"))).ok()?;
        parse_status(&text).tgid
    }

    /// Seizes every thread of `pid`. Threads started while the list is walked are attached by
    /// the kernel if their creator was already seized; the list is re-read until stable.
    pub(super) fn seize_process(&mut self, pid: i32, seen: &ScannedImage) {
        if pid <= 1 || self.is_self(pid) || self.tracees.contains_key(&pid) {
            return;
        }
        let task_dir = self.proc_root.join(format!("{pid}/task"));
        let mut seized_any = false;
        for _round in 0..8 {
            let Ok(entries) = std::fs::read_dir(&task_dir) else {
                break;
            };
            let tids: Vec<i32> = entries
                .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .filter(|tid| !self.tracees.contains_key(tid))
                .collect();
            if tids.is_empty() {
                break;
            }
            for tid in tids {
                match ptrace::seize(Pid::from_raw(tid), trace_options()) {
                    Ok(()) => {
                        self.tracees.insert(tid, Tracee { tgid: pid });
                        if tid != pid {
                            self.multithreaded.insert(pid);
                        }
                        seized_any = true;
                    }
                    Err(Errno::ESRCH) => {}
                    Err(Errno::EPERM) if !seized_any => {
                        self.refuse(pid, Errno::EPERM);
                        return;
                    }
                    Err(error) => {
                        if self.last_warning.ready() {
                            warn!(pid, tid, %error, "cannot seize a thread");
                        }
                    }
                }
            }
        }
        if seized_any {
            self.link.set(pid, Held::Live);
            let snapshot = self.tables.snapshot();
            if let Some((_, entry)) = snapshot.processes.lookup_pid(pid) {
                self.idents.insert(
                    pid,
                    Ident {
                        container_id: entry.container_id.clone(),
                        loginuid: entry.process.loginuid,
                    },
                );
                self.procs.insert(
                    pid,
                    Known {
                        process: entry.process.clone(),
                        pid,
                        ppid: entry.process.ppid,
                        container_id: entry.container_id.clone(),
                    },
                );
            }
            self.check_seen_image(pid, seen);
        }
    }

    /// The identity of `pid` (container, login uid): known, or from `read` (which then
    /// holds its cgroup and loginuid) and remembered.
    fn ident_for(&mut self, pid: i32, known: Option<Ident>, read: &mut Frozen) -> Ident {
        if let Some(ident) = known {
            return ident;
        }
        let container_id = read
            .cgroup
            .take()
            .as_deref()
            .map(parse_cgroup)
            .and_then(|c| c.container_id)
            .unwrap_or_else(|| HOST_ID.to_string());
        let ident = Ident {
            container_id: Arc::from(container_id.as_str()),
            loginuid: read.loginuid,
        };
        self.idents.insert(pid, ident.clone());
        ident
    }

    /// A process seized on procscan's request that no longer runs the image procscan saw
    /// exec'd between procscan's read and the seize: neither collector saw that exec, so it is
    /// reported now, from a read of the running process (its later execs stop as usual).
    fn check_seen_image(&mut self, pid: i32, seen: &ScannedImage) {
        let known = self.idents.get(&pid).cloned();
        let Some(dir) = self.frozen.open(pid) else {
            return;
        };
        let Some(mut read) =
            self.frozen
                .read_frozen(&dir, Memory::Files, known.is_none(), known.is_none())
        else {
            return;
        };
        if !seen.differs(&read.stat.comm, read.exe_id) {
            return;
        }
        self.frozen.read_resumed(&dir, &mut read);
        drop(dir);
        self.queue_exec(pid, known, read, Timestamp::now());
    }

    /// Queues the report of an exec read into `read` (enrichment happens between stops).
    fn queue_exec(&mut self, pid: i32, known: Option<Ident>, mut read: Frozen, time: Timestamp) {
        let ident = self.ident_for(pid, known, &mut read);
        self.work.push_back(Work::Exec {
            pid,
            read: Box::new(read),
            ident,
            time,
        });
    }

    /// Seizing failed: procscan keeps covering the process. A process traced by someone else
    /// (a debugger in the container) is reported once as a `tracer_conflict`.
    fn refuse(&mut self, pid: i32, error: Errno) {
        let status = std::fs::read_to_string(self.proc_root.join(format!("{pid}/status")))
            .map(|t| parse_status(&t))
            .unwrap_or_default();
        let tracer = status.tracer_pid.unwrap_or(0);
        if self.is_self(tracer) {
            // Already ours (attached at fork; its stop is still queued).
            return;
        }
        self.link.set(pid, Held::Refused);
        if !self.conflicts.insert(pid) {
            return;
        }
        let message = if tracer != 0 {
            format!(
                "process {pid} is already traced by process {tracer}; it cannot be traced by tasksentry and is watched by polling /proc only"
            )
        } else {
            format!("process {pid} cannot be traced ({error}); it is watched by polling /proc only")
        };
        let mut event = Event::new(EventType::Tasksentry, Collector::Tracer);
        event.internal = Some(Box::new(Internal {
            kind: "tracer_conflict".into(),
            message,
            count: None,
        }));
        if let Some((_, entry)) = self.tables.snapshot().processes.lookup_pid(pid) {
            let mut process = (*entry.process).clone();
            process.ancestors.clear();
            event.proc = Some(Box::new(process));
        } else if let Some(stat) = read_stat(&self.proc_root, pid, &mut self.buf) {
            event.proc = Some(Box::new(Process {
                pid,
                tracer_pid: Some(tracer),
                ..bare_process(&self.clock, &stat)
            }));
        }
        self.sender.send(event);
    }
}
