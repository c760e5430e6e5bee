//! New processes and execs in place: reading them until the read is settled, entering them in
//! the tables and reporting their image (see the module documentation of [`super`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{ProcScanner, Track};
use crate::collect::proc::{
    ProcIdentity, ProcRead, bare_process, read_identity, read_process, read_stat,
};
use crate::collect::shared::drift::drift_fact;
use crate::collect::shared::{Exclusion, MemberInfo, ProcEntry, ProcKey, ScannedImage};
use crate::event::{Event, EventType, Process};
use crate::procfs::{CgroupInfo, HOST_ID, Stat, parse_cgroup};

/// Delays before re-reading a process caught in the middle of an exec, within one scan.
const SETTLE_DELAYS: [Duration; 3] = [
    Duration::from_micros(200),
    Duration::from_millis(1),
    Duration::from_millis(3),
];

/// Most time one scan spends waiting for execs in progress to complete; past it, unsettled
/// processes are put off to the next scan without waiting (a storm of execs cannot stall the
/// scanner).
pub(super) const SETTLE_BUDGET: Duration = Duration::from_millis(10);

/// Scans a report is put off at most while the process stays unsettled; it is then reported
/// as read (a process whose command line really is empty).
const MAX_DEFERRALS: u8 = 3;

/// A process whose last read was not settled and whose report is put off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Unsettled {
    /// Reported as a new process (`execve` or `clone`) once settled, else as an exec in place.
    pub(super) new: bool,
    /// Procscan reports it even if the tracer holds the process by then (see
    /// [`ProcScanner::emit_image`]).
    pub(super) owned: bool,
    /// Scans it has been put off so far.
    pub(super) deferrals: u8,
}

impl ProcScanner {
    /// Handles a pid not in the table. Returns false when the process vanished before it
    /// could be read.
    pub(super) fn handle_new(&mut self, stat: Stat, now: Instant, out: &mut Vec<Event>) -> bool {
        let root = self.config.proc_root.clone();
        let key = ProcKey {
            pid: stat.pid,
            start_ticks: stat.starttime,
        };
        if self.tables.processes.get(&key).is_some() {
            // Already known under this key (a recycled-looking reading of the same process).
            return true;
        }
        if stat.is_kernel_thread() {
            let id = self.tables.containers.intern(HOST_ID, None);
            self.insert_minimal(
                key,
                &stat,
                id,
                Exclusion::KernelThread,
                false,
                now,
                String::new(),
                None,
            );
            return true;
        }
        let identity = read_identity(&root, stat, &self.options.access, &mut self.buf);
        let cgroup = identity
            .cgroup
            .as_deref()
            .map(parse_cgroup)
            .unwrap_or_else(|| CgroupInfo {
                container_id: None,
                path: "/".into(),
            });
        let container_id = cgroup
            .container_id
            .clone()
            .unwrap_or_else(|| HOST_ID.to_string());
        let (exclusion, container_level) = self.exclusion_for(&identity, &container_id);
        let id = self
            .tables
            .containers
            .intern(&container_id, exclusion.filter(|_| container_level));
        if let Some(exclusion) = exclusion {
            let stat = identity.stat.clone();
            self.insert_minimal(
                key,
                &stat,
                id,
                exclusion,
                container_level,
                now,
                cgroup.path,
                identity.mnt_ns,
            );
            return true;
        }
        let Some(read) = self.read_settled(identity) else {
            return false;
        };
        let settled = read.settled;
        self.note_visibility(&id, &read);
        let mut process = read.process;
        self.tables.containers.add_member(
            &id,
            MemberInfo {
                key,
                cgroup: cgroup.path.clone(),
                mnt_ns: read.mnt_ns,
                start_time: process.start_time,
            },
        );
        self.resolve_users(&id, &mut process, now);
        process.exe_written_after_start = self.drift_fact(&id, &process, read.exe_id);
        let entry = ProcEntry {
            process: Arc::new(process),
            container_id: id,
            excluded: None,
            exited_at: None,
        };
        self.tables.processes.insert(key, entry.clone());
        // Whether the tracer held this pid before procscan asked for it (below). A process
        // seized on procscan's request (the tracer thread may do it before procscan is done
        // with it) is already running its image: only procscan can report that exec.
        let traced_before = self.traced(key.pid);
        self.track.insert(
            key,
            Track {
                stat: read.stat,
                first_seen: now,
                last_check: now,
                cgroup: cgroup.path,
                mnt_ns: read.mnt_ns,
                unsettled: (!settled).then_some(Unsettled {
                    new: true,
                    owned: !traced_before,
                    deferrals: 1,
                }),
            },
        );
        self.dirty = true;
        if let Some(link) = &self.config.tracer {
            // A child of a traced process was attached by the kernel at fork (its TracerPid is
            // the monitor's): the tracer reports it. A child forked before its parent was
            // seized is not, and is handed to the tracer like anything else.
            if link.holds(entry.process.ppid)
                && entry
                    .process
                    .tracer_pid
                    .is_some_and(|tracer| link.is_tracer(tracer))
            {
                return true;
            }
            link.request_seize(
                key.pid,
                ScannedImage {
                    name: entry.process.name.clone(),
                    exe_id: read.exe_id,
                },
            );
        }
        if !settled {
            // Caught in the middle of an exec: reported once read again (next scan).
            self.stats.deferred += 1;
            return true;
        }
        self.emit_image(key, true, !traced_before, out);
        true
    }

    /// Reports the process `key` as the table holds it: as a new process (`new`) or an exec
    /// in place. Nothing when the tracer reports it: it does when it holds the process,
    /// unless procscan `owned` the report (a first sight of a process that the tracer seized
    /// only on procscan's request, after its exec).
    pub(super) fn emit_image(
        &mut self,
        key: ProcKey,
        new: bool,
        owned: bool,
        out: &mut Vec<Event>,
    ) {
        if !owned && self.traced(key.pid) {
            return;
        }
        let Some(entry) = self.tables.processes.get(&key).cloned() else {
            return;
        };
        let evt_type = if new {
            self.stats.new_processes += 1;
            // A child that still runs exactly its parent's image has only forked (so far):
            // that is a `clone`, not an `execve`. Its exec, if it comes, is caught by the
            // young-process re-checks and reported as `execve` then.
            let fork_copy = self
                .tables
                .processes
                .parent(&key)
                .is_some_and(|(_, parent)| same_image(&parent.process, &entry.process));
            if fork_copy {
                EventType::Clone
            } else {
                EventType::Execve
            }
        } else {
            self.stats.execs += 1;
            EventType::Execve
        };
        out.push(self.event_for(evt_type, key, &entry));
    }

    /// Reads a process in full. A read that is not settled (the process was caught in the
    /// middle of an exec, see [`ProcRead::settled`]) is repeated after short
    /// delays ([`SETTLE_DELAYS`], within the scan's [`SETTLE_BUDGET`]); the last read is
    /// returned, settled or not. `None` when the process vanished before a first complete
    /// read.
    fn read_settled(&mut self, identity: ProcIdentity) -> Option<ProcRead> {
        let root = self.config.proc_root.clone();
        let (cgroup, mnt_ns, dir_owner, ns_denied) = (
            identity.cgroup.clone(),
            identity.mnt_ns,
            identity.dir_owner,
            identity.ns_denied,
        );
        let pid = identity.stat.pid;
        let mut read = read_process(&root, identity, &self.clock, &self.options, &mut self.buf)?;
        self.stats.full_reads += 1;
        for delay in SETTLE_DELAYS {
            if read.settled || self.settle_spent + delay > SETTLE_BUDGET {
                break;
            }
            std::thread::sleep(delay);
            self.settle_spent += delay;
            self.stats.settle_retries += 1;
            // Gone or recycled meanwhile: the last read stands (its exit is seen next scan).
            let Some(stat) = read_stat(&root, pid, &mut self.buf) else {
                break;
            };
            if stat.starttime != read.stat.starttime {
                break;
            }
            let identity = ProcIdentity {
                stat,
                cgroup: cgroup.clone(),
                mnt_ns,
                dir_owner,
                ns_denied,
            };
            match read_process(&root, identity, &self.clock, &self.options, &mut self.buf) {
                Some(again) => {
                    self.stats.full_reads += 1;
                    read = again;
                }
                None => break,
            }
        }
        Some(read)
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn insert_minimal(
        &mut self,
        key: ProcKey,
        stat: &Stat,
        id: Arc<str>,
        exclusion: Exclusion,
        container_level: bool,
        now: Instant,
        cgroup: String,
        mnt_ns: Option<u64>,
    ) {
        let process = bare_process(&self.clock, stat);
        // A process excluded on its own (pid 1, the monitor on a host) is not a member: it
        // must not become the root process its container's files are reached through.
        if container_level {
            self.tables.containers.add_member(
                &id,
                MemberInfo {
                    key,
                    cgroup: cgroup.clone(),
                    mnt_ns,
                    start_time: process.start_time,
                },
            );
        }
        self.tables.processes.insert(
            key,
            ProcEntry {
                process: Arc::new(process),
                container_id: id,
                excluded: Some(exclusion),
                exited_at: None,
            },
        );
        // Excluded processes are still re-checked for pid reuse, with a spread-out schedule.
        let offset = Duration::from_millis(u64::from(key.pid.unsigned_abs()) % 1000);
        self.track.insert(
            key,
            Track {
                stat: stat.clone(),
                first_seen: now.checked_sub(self.config.young_window).unwrap_or(now),
                last_check: now.checked_sub(offset).unwrap_or(now),
                cgroup,
                mnt_ns,
                unsettled: None,
            },
        );
        self.dirty = true;
    }

    pub(super) fn handle_exec(
        &mut self,
        key: ProcKey,
        stat: Stat,
        now: Instant,
        out: &mut Vec<Event>,
    ) {
        let root = self.config.proc_root.clone();
        let Some(entry) = self.tables.processes.get(&key).cloned() else {
            return;
        };
        let prior = self.track.get(&key).and_then(|t| t.unsettled);
        let identity = read_identity(&root, stat, &self.options.access, &mut self.buf);
        let Some(read) = self.read_settled(identity) else {
            return;
        };
        if read.stat.starttime != key.start_ticks {
            return;
        }
        let settled = read.settled;
        self.note_visibility(&entry.container_id, &read);
        let mut process = read.process;
        self.resolve_users(&entry.container_id, &mut process, now);
        process.exe_written_after_start =
            self.drift_fact(&entry.container_id, &process, read.exe_id);
        self.tables.processes.update_process(key, Arc::new(process));
        let new = prior.is_some_and(|u| u.new);
        let owned = prior.is_some_and(|u| u.owned);
        let deferrals = prior.map_or(0, |u| u.deferrals);
        let put_off = !settled && deferrals < MAX_DEFERRALS;
        if let Some(track) = self.track.get_mut(&key) {
            track.stat = read.stat;
            track.unsettled = put_off.then_some(Unsettled {
                new,
                owned,
                deferrals: deferrals + 1,
            });
        }
        self.dirty = true;
        if put_off {
            // Still in the middle of an exec: reported once read again.
            if !self.traced(key.pid) {
                self.stats.deferred += 1;
            }
            return;
        }
        self.emit_image(key, new, owned, out);
    }

    /// Notes what the kernel refused of a read of a process of container `id`.
    fn note_visibility(&mut self, id: &Arc<str>, read: &ProcRead) {
        self.visibility.note_process(
            id,
            read.process.pid,
            &read.process.name,
            read.process.uid,
            read.unreadable,
            read.diagnosis,
        );
    }

    /// `proc.exe_written_after_start` of `process` (see [`drift_fact`]), given its
    /// container's start time from the table.
    fn drift_fact(
        &self,
        container_id: &str,
        process: &Process,
        exe_id: Option<(u64, u64)>,
    ) -> Option<bool> {
        let start = self
            .tables
            .containers
            .get(container_id)
            .and_then(|c| c.container.start_time);
        drift_fact(
            self.config.drift.as_deref(),
            start,
            container_id,
            process,
            exe_id,
        )
    }
}

/// Whether two processes run the same program with the same command line (a fork copy).
fn same_image(parent: &Process, child: &Process) -> bool {
    parent.name == child.name
        && parent.exepath == child.exepath
        && parent.exe == child.exe
        && parent.args == child.args
        && parent.exe_deleted == child.exe_deleted
}
