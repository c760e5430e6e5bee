//! The tracer's overlay on the process table (trace mode): what it saw of each process after
//! procscan last read it (see the documentation of [`super::table`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::table::ProcKey;
use crate::event::Process;

/// What the tracer knows about a pid that is newer than procscan's last read of it.
#[derive(Debug, Clone)]
enum Fresh {
    /// Forked at this time; still runs its parent's image (no exec seen since).
    Forked(Instant),
    /// The image read at its last exec stop (its `ancestors` as of the exec), and the
    /// container it runs in.
    Execed {
        process: Arc<Process>,
        container_id: Arc<str>,
    },
}

#[derive(Debug, Clone)]
struct FreshEntry {
    fresh: Fresh,
    exited_at: Option<Instant>,
}

/// Most exited processes whose image is kept (the most recent exits). Their images serve
/// the collectors that found such a process alive moments before it exited (the sockets
/// collector naming a socket's owner, within its owner wait); under a storm of short
/// processes (1,000 execs a second) the grace alone would keep ten thousand images, each with
/// its command line, environment and ancestors (about 1.5 KiB). 4,096 keep four seconds of
/// such a storm, and the whole grace of anything slower than 400 exits a second.
pub(crate) const MAX_EXITED: usize = 4096;

/// The tracer's overlay on the process table (trace mode): the image each traced process
/// runs since its last exec, recorded at the exec stop, and the pids forked moments ago that
/// have not exec'd yet. Keyed by pid; an exec image counts only for the process with its
/// start time, so a recycled pid never borrows it. Exited processes stay for the grace period
/// given to [`ExecImages::purge`], the most recent [`MAX_EXITED`] of them at most. Cheap to clone (one shared map behind a mutex: one short
/// lock per exec, fork and exit, and per lookup).
#[derive(Debug, Clone, Default)]
pub(crate) struct ExecImages {
    inner: Arc<Mutex<HashMap<i32, FreshEntry>>>,
}

impl ExecImages {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<i32, FreshEntry>> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The tracer saw `process` exec (its `pid` and `start_ticks` are set) in the container
    /// `container_id`.
    pub(crate) fn record_exec(&self, process: Arc<Process>, container_id: Arc<str>) {
        self.map().insert(
            process.pid,
            FreshEntry {
                fresh: Fresh::Execed {
                    process,
                    container_id,
                },
                exited_at: None,
            },
        );
    }

    /// The tracer saw `pid` forked at `at`. A live exec image of the pid is kept: the child's
    /// exec can be handled before its parent's fork event.
    pub(crate) fn record_fork(&self, pid: i32, at: Instant) {
        let mut map = self.map();
        if map
            .get(&pid)
            .is_some_and(|e| matches!(e.fresh, Fresh::Execed { .. }) && e.exited_at.is_none())
        {
            return;
        }
        map.insert(
            pid,
            FreshEntry {
                fresh: Fresh::Forked(at),
                exited_at: None,
            },
        );
    }

    /// The tracer saw `pid` exit at `at`.
    pub(crate) fn record_exit(&self, pid: i32, at: Instant) {
        if let Some(entry) = self.map().get_mut(&pid) {
            entry.exited_at.get_or_insert(at);
        }
    }

    /// Drops what exited longer than `grace` ago, and the oldest exited beyond
    /// [`MAX_EXITED`]; returns how many entries are left.
    pub(crate) fn purge(&self, now: Instant, grace: Duration) -> usize {
        let mut map = self.map();
        map.retain(|_, e| {
            e.exited_at
                .is_none_or(|at| now.saturating_duration_since(at) < grace)
        });
        // Counted first: the times are gathered only when there are too many (a storm).
        let count = map.values().filter(|e| e.exited_at.is_some()).count();
        if count > MAX_EXITED {
            let mut exited: Vec<Instant> = map.values().filter_map(|e| e.exited_at).collect();
            let drop = count - MAX_EXITED;
            let (_, cutoff, _) = exited.select_nth_unstable(drop);
            let cutoff = *cutoff;
            map.retain(|_, e| e.exited_at.is_none_or(|at| at >= cutoff));
        }
        map.len()
    }

    /// The image the process `key` runs since its last exec, when the tracer saw that exec.
    pub(crate) fn image(&self, key: ProcKey) -> Option<Arc<Process>> {
        match &self.map().get(&key.pid)?.fresh {
            Fresh::Execed { process, .. } if process.start_ticks == key.start_ticks => {
                Some(process.clone())
            }
            _ => None,
        }
    }

    /// The image the tracer saw `pid` exec and its container, for a process found by pid
    /// before procscan has read it: when that process is alive, or exited no earlier than
    /// `seen_at` (the moment the caller saw the pid alive; an image that exited before then
    /// belongs to an earlier process with a recycled pid).
    pub(crate) fn latest(&self, pid: i32, seen_at: Instant) -> Option<(Arc<Process>, Arc<str>)> {
        let map = self.map();
        let entry = map.get(&pid)?;
        if entry.exited_at.is_some_and(|at| at < seen_at) {
            return None;
        }
        match &entry.fresh {
            Fresh::Execed {
                process,
                container_id,
            } => Some((process.clone(), container_id.clone())),
            Fresh::Forked(_) => None,
        }
    }

    /// When the live process `pid` was forked, if it was forked at most `recent` before
    /// `when` and has not exec'd since (it still runs its parent's image, and may be about to
    /// exec: `cmd > /dev/tcp/...` connects in the forked shell, then execs `cmd`).
    pub(crate) fn forked_recently(
        &self,
        pid: i32,
        when: Instant,
        recent: Duration,
    ) -> Option<Instant> {
        let map = self.map();
        let entry = map.get(&pid)?;
        match entry.fresh {
            Fresh::Forked(at)
                if entry.exited_at.is_none() && when.saturating_duration_since(at) < recent =>
            {
                Some(at)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::collect::shared::table::SharedTables;

    fn key(pid: i32, start_ticks: u64) -> ProcKey {
        ProcKey { pid, start_ticks }
    }

    #[test]
    fn exec_images_belong_to_one_process_and_outlive_it_for_the_grace_period() {
        let images = SharedTables::default().exec_images();
        let t0 = Instant::now();
        let cat = Arc::new(Process {
            pid: 20,
            start_ticks: 7,
            name: "cat".into(),
            ..Process::default()
        });
        images.record_fork(20, t0);
        assert_eq!(
            images.forked_recently(20, t0 + Duration::from_millis(5), Duration::from_secs(1)),
            Some(t0)
        );
        assert_eq!(
            images.forked_recently(20, t0 + Duration::from_secs(2), Duration::from_secs(1)),
            None,
            "an old fork is not about to exec"
        );
        assert!(images.image(key(20, 7)).is_none(), "no exec seen yet");
        images.record_exec(cat, "app".into());
        assert_eq!(images.image(key(20, 7)).unwrap().name, "cat");
        assert!(images.image(key(20, 8)).is_none(), "a recycled pid");
        assert_eq!(images.forked_recently(20, t0, Duration::from_secs(1)), None);
        // A late fork event does not hide the exec it preceded.
        images.record_fork(20, t0);
        assert_eq!(images.image(key(20, 7)).unwrap().name, "cat");
        images.record_exit(20, t0);
        assert!(images.image(key(20, 7)).is_some(), "late attribution");
        assert_eq!(
            images.purge(t0 + Duration::from_secs(4), Duration::from_secs(5)),
            1
        );
        assert_eq!(
            images.purge(t0 + Duration::from_secs(6), Duration::from_secs(5)),
            0
        );
        assert!(images.image(key(20, 7)).is_none());
    }

    #[test]
    fn a_storm_of_short_processes_keeps_only_the_most_recent_exited_images() {
        let images = SharedTables::default().exec_images();
        let t0 = Instant::now();
        let storm = 3 * MAX_EXITED;
        for n in 0..storm {
            let pid = 1000 + i32::try_from(n).unwrap();
            images.record_exec(
                Arc::new(Process {
                    pid,
                    start_ticks: 1,
                    ..Process::default()
                }),
                "app".into(),
            );
            images.record_exit(pid, t0 + Duration::from_micros(n as u64));
        }
        // A process still running is never dropped, however old.
        images.record_exec(
            Arc::new(Process {
                pid: 7,
                start_ticks: 1,
                ..Process::default()
            }),
            "app".into(),
        );
        let left = images.purge(t0 + Duration::from_millis(100), Duration::from_secs(10));
        assert_eq!(left, MAX_EXITED + 1);
        assert!(images.image(key(7, 1)).is_some());
        let newest = 1000 + i32::try_from(storm - 1).unwrap();
        let oldest_kept = 1000 + i32::try_from(storm - MAX_EXITED).unwrap();
        assert!(images.image(key(newest, 1)).is_some());
        assert!(images.image(key(oldest_kept, 1)).is_some());
        assert!(images.image(key(oldest_kept - 1, 1)).is_none());
        assert!(images.image(key(1000, 1)).is_none());
    }
}
