//! Work done between stops, in the order of the stops: bookkeeping of forks, execs and exits,
//! and their events (enriched with user names, containers, ancestry and the drift fact).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::frozen::Frozen;
use super::{Ident, Known, PendingClone, Slot, Tracer, WORK_SLICE, Work};
use crate::collect::proc::{ImageFiles, build_process};
use crate::collect::shared::Tables;
use crate::collect::shared::drift::drift_fact;
use crate::collect::shared::table::{MAX_ANCESTORS, ancestor};
use crate::collect::shared::tracer_link::Held;
use crate::event::{Ancestor, Collector, Event, EventType, Process, Timestamp};

/// How long work between stops runs before pending stops are reaped again.
const REAP_SPACING: Duration = Duration::from_micros(30);

impl Tracer {
    /// What the hot path queued, in order: bookkeeping and events, for at most
    /// [`WORK_SLICE`]; the batch is handed over whenever it is due meanwhile.
    pub(super) fn do_work(&mut self) {
        let started = Instant::now();
        while let Some(work) = self.work.pop_front() {
            // Stops that arrived meanwhile are resumed between pieces of work, once
            // `REAP_SPACING` has passed since the last look: a tracee waits for at most about
            // that much enrichment, and a run of quick pieces costs no empty `waitpid` each.
            // (`reap` leaves them pending while the queue is full.)
            if self.last_reap.elapsed() >= REAP_SPACING {
                self.reap();
            }
            match work {
                Work::Fork {
                    parent_tgid,
                    child,
                    time,
                } => self.on_fork(parent_tgid, child, time),
                Work::Exec {
                    pid,
                    read,
                    ident,
                    time,
                } => self.on_exec(pid, *read, ident, time),
                Work::Exit {
                    pid,
                    exit_code,
                    time,
                } => self.on_process_exit(pid, exit_code, time),
            }
            // While stops keep coming the queue may never empty: events still go out on time.
            let now = Instant::now();
            self.flush_if_due(now);
            if self.closed || now.saturating_duration_since(started) >= WORK_SLICE {
                return;
            }
        }
    }

    fn on_fork(&mut self, parent_tgid: i32, child: i32, time: Timestamp) {
        self.link.set(child, Held::Live);
        if self.procs.contains_key(&child) {
            // The child's own stops can be reported before its parent's fork event: it has
            // already exec'd and been reported with its new image.
            return;
        }
        // Readers of the tables learn that the child may be about to exec (see
        // `ExecImages::forked_recently`).
        self.tables.exec_images().record_fork(child, Instant::now());
        let Some(parent) = self.procs.get(&parent_tgid).cloned() else {
            return;
        };
        // The child runs its parent's image until it execs.
        let known = Known {
            process: parent.process.clone(),
            pid: child,
            ppid: parent_tgid,
            container_id: parent.container_id.clone(),
        };
        self.procs.insert(child, known.clone());
        // A `clone` event, withdrawn if the child execs before the batch is handed over: a
        // fork that execs at once is reported by its `execve` alone. So it is built only when
        // the batch is handed over; what it says of the ancestors is taken now (shared
        // references, no copies), as they are at the fork.
        let snapshot = self.tables.snapshot();
        let chain = self.ancestor_chain(known.ppid, &known.container_id, &snapshot);
        let slot = self.push_slot(Slot::Clone(Box::new(PendingClone { known, chain, time })));
        self.clone_slots.insert(child, slot);
    }

    /// The `clone` event of a fork that was not withdrawn (see `on_fork`).
    pub(super) fn clone_event(&self, pending: PendingClone) -> Event {
        let PendingClone { known, chain, time } = pending;
        let mut event = Event::new(EventType::Clone, Collector::Tracer);
        let mut process = (*known.process).clone();
        // A forked child still running its parent's image.
        process.pid = known.pid;
        process.ppid = known.ppid;
        process.start_ticks = 0;
        process.start_time = None;
        process.threads = Some(1);
        process.exit_code = None;
        process.ancestors = chain
            .iter()
            .enumerate()
            .map(|(i, (parent, pid))| ancestor(parent, *pid, i == 0))
            .collect();
        event.proc = Some(Box::new(process));
        event.container = self
            .tables
            .snapshot()
            .containers
            .get(&known.container_id)
            .map(|c| Box::new(c.container.clone()));
        event.evt.time = time;
        event
    }

    fn on_exec(&mut self, pid: i32, read: Frozen, ident: Ident, time: Timestamp) {
        if let Some(slot) = self.clone_slots.remove(&pid)
            && let Some(entry) = self.batch.get_mut(slot)
        {
            *entry = Slot::Withdrawn;
        }
        // As of the exec (`stat` is read right after resuming; see `frozen`).
        let mut process = Process {
            pid,
            ..build_process(
                &self.clock,
                &read.stat,
                &read.status,
                ImageFiles {
                    cmdline: read.cmdline,
                    exe: read.exe,
                    exe_times: read.exe_times,
                    cwd: read.cwd,
                    std_fds: read.fds,
                    env: read.env,
                },
                ident.loginuid,
            )
        };
        // Being traced by this monitor is not a fact about the process: 0, as untraced.
        if let Some(tracer) = process.tracer_pid
            && self.is_self(tracer)
        {
            process.tracer_pid = Some(0);
        }
        let snapshot = self.tables.snapshot();
        let container_id = snapshot
            .containers
            .iter()
            .find(|(id, _)| ***id == *ident.container_id)
            .map_or(ident.container_id, |(id, _)| id.clone());
        if let Some(root) = snapshot
            .containers
            .root_path(&container_id, &self.proc_root)
        {
            self.users
                .name(&container_id, &root, &mut process, Instant::now());
        }
        process.exe_written_after_start = drift_fact(
            self.drift.as_deref(),
            snapshot
                .containers
                .get(&container_id)
                .and_then(|c| c.container.start_time),
            &container_id,
            &process,
            read.exe_id,
        );
        // Computed once: the exec event carries them, and so does the overlay's image (for a
        // process procscan has not read yet).
        process.ancestors = self.ancestors(process.ppid, &container_id, &snapshot);
        let known = Known {
            ppid: process.ppid,
            pid,
            process: Arc::new(process),
            container_id,
        };
        // The new image is in the shared overlay before the exec is announced, so the
        // sockets collector's exec-driven poll names the connections of this process after it
        // (procscan's table may still hold the fork of the parent until its next scan, or not
        // hold this pid at all yet).
        self.tables
            .exec_images()
            .record_exec(known.process.clone(), known.container_id.clone());
        if let Some(signal) = &self.exec_signal {
            signal.raise();
        }
        self.procs.insert(pid, known.clone());
        self.link.set(pid, Held::Live);
        let mut event = self.event_for(EventType::Execve, &known, None);
        event.evt.time = time;
        self.push_event(event);
    }

    fn on_process_exit(&mut self, pid: i32, exit_code: Option<i32>, time: Timestamp) {
        let now = Instant::now();
        self.link.set(pid, Held::Exited(now));
        self.tables.exec_images().record_exit(pid, now);
        let known = match self.procs.remove(&pid) {
            Some(known) => known,
            None => {
                // Never read (seized but unknown to procscan's snapshot): nothing to attribute.
                let snapshot = self.tables.snapshot();
                let Some((_, entry)) = snapshot.processes.lookup_pid(pid) else {
                    return;
                };
                Known {
                    process: entry.process.clone(),
                    pid: entry.process.pid,
                    ppid: entry.process.ppid,
                    container_id: entry.container_id.clone(),
                }
            }
        };
        let mut event = self.event_for(EventType::Procexit, &known, exit_code);
        event.evt.time = time;
        self.push_event(event);
    }

    /// An event about `known`; `exit_code` for a `procexit`.
    fn event_for(&self, evt_type: EventType, known: &Known, exit_code: Option<i32>) -> Event {
        let mut event = Event::new(evt_type, Collector::Tracer);
        let snapshot = self.tables.snapshot();
        let mut process = (*known.process).clone();
        if process.pid != known.pid {
            // A forked child still running its parent's image.
            process.pid = known.pid;
            process.ppid = known.ppid;
            process.start_ticks = 0;
            process.start_time = None;
            process.threads = Some(1);
        }
        process.exit_code = exit_code;
        // An exec image carries its ancestors as of the exec (see `on_exec`).
        if evt_type != EventType::Execve || process.pid != known.pid {
            process.ancestors = self.ancestors(known.ppid, &known.container_id, &snapshot);
        }
        event.proc = Some(Box::new(process));
        event.container = snapshot
            .containers
            .get(&known.container_id)
            .map(|c| Box::new(c.container.clone()));
        event
    }

    /// Ancestors, parent first, from what the tracer read itself and else procscan's table;
    /// the walk stops at pid 1, at another container and at excluded processes, as procscan's.
    fn ancestors(&self, ppid: i32, container_id: &str, snapshot: &Tables) -> Vec<Ancestor> {
        self.ancestor_chain(ppid, container_id, snapshot)
            .iter()
            .enumerate()
            .map(|(i, (parent, pid))| ancestor(parent, *pid, i == 0))
            .collect()
    }

    /// The processes [`Tracer::ancestors`] describes, with their pids (a forked child that
    /// has not exec'd shares its parent's image).
    fn ancestor_chain(
        &self,
        mut ppid: i32,
        container_id: &str,
        snapshot: &Tables,
    ) -> Vec<(Arc<Process>, i32)> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        while out.len() < MAX_ANCESTORS && ppid > 1 && seen.insert(ppid) {
            let (parent, pid, next, parent_container) = if let Some(known) = self.procs.get(&ppid) {
                (
                    known.process.clone(),
                    known.pid,
                    known.ppid,
                    known.container_id.clone(),
                )
            } else if let Some((_, entry)) = snapshot.processes.lookup_pid(ppid) {
                if entry.excluded.is_some() {
                    break;
                }
                (
                    entry.process.clone(),
                    entry.process.pid,
                    entry.process.ppid,
                    entry.container_id.clone(),
                )
            } else {
                break;
            };
            if *parent_container != *container_id {
                break;
            }
            // As procscan's: past the parent, arguments are capped (by `ancestor`).
            out.push((parent, pid));
            ppid = next;
        }
        out
    }
}
