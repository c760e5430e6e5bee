//! Collector health: the collectors' threads are watched while the monitor runs, so that a
//! collector that dies (a panic, or an early return) is reported instead of silently leaving
//! a blind spot.
//!
//! [`CollectorHealth`] holds each collector's thread and, where restarting is cheap (sockets,
//! fswatch: they rebuild their state from the task at start), a way to start it again. Every
//! [`CHECK_INTERVAL`] its thread ([`spawn_health`]) looks for threads that ended while the
//! monitor is not shutting down: a restartable one is started again (at most
//! [`MAX_COLLECTOR_RESTARTS`] times) and reported as `tasksentry`/`collector_restarted`;
//! one that cannot be restarted (procscan owns the process table, the tracer owns its
//! tracees), or has used up its restarts, is reported once as `collector_failed`. The message
//! carries the panic message when there was one. The internal rule "TaskSentry collector
//! restarted" turns both into alerts.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::SyncSender;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::event::{Collector, Event, EventType, Internal};

/// How often the collectors' threads are checked.
pub(crate) const CHECK_INTERVAL: Duration = Duration::from_millis(500);
/// When the allocator's free memory is returned to the kernel: after start-up ...
const TRIM_AFTER: [Duration; 2] = [Duration::from_secs(3), Duration::from_secs(20)];
/// ... and then at multiples of this.
const TRIM_EVERY: Duration = Duration::from_secs(60);
/// Restarts per collector over the monitor's life.
pub(crate) const MAX_COLLECTOR_RESTARTS: u32 = 5;

/// Starts a collector's thread again.
pub(crate) type Restart = Box<dyn FnMut() -> std::io::Result<JoinHandle<()>> + Send>;

struct Slot {
    collector: Collector,
    handle: Option<JoinHandle<()>>,
    restart: Option<Restart>,
    restarts: u32,
}

/// The collectors' threads (see the module documentation).
#[derive(Default)]
pub struct CollectorHealth {
    slots: Vec<Slot>,
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

fn event(kind: &str, collector: Collector, message: String, restarts: u32) -> Event {
    let mut event = Event::new(EventType::Tasksentry, collector);
    event.evt.args = vec![
        ("collector".to_owned(), collector.as_str().to_owned()),
        ("restarts".to_owned(), restarts.to_string()),
    ];
    event.internal = Some(Box::new(Internal {
        kind: kind.to_owned(),
        message,
        count: Some(u64::from(restarts)),
    }));
    event
}

impl CollectorHealth {
    /// Watches a collector's thread; `restart` starts it again (`None`: it cannot be).
    pub fn add(&mut self, collector: Collector, handle: JoinHandle<()>, restart: Option<Restart>) {
        self.slots.push(Slot {
            collector,
            handle: Some(handle),
            restart,
            restarts: 0,
        });
    }

    /// Looks at every thread once; returns the reports. Threads that end while `shutdown` is
    /// set are the normal end and are left for [`CollectorHealth::join_all`].
    pub fn check(&mut self, shutdown: &AtomicBool) -> Vec<Event> {
        let mut out = Vec::new();
        for slot in &mut self.slots {
            if shutdown.load(Ordering::Relaxed) {
                break;
            }
            if !slot.handle.as_ref().is_some_and(JoinHandle::is_finished) {
                continue;
            }
            let Some(handle) = slot.handle.take() else {
                continue;
            };
            let how = match handle.join() {
                Ok(()) => "stopped by itself".to_owned(),
                Err(payload) => format!("panicked: {}", panic_message(payload.as_ref())),
            };
            let name = slot.collector.as_str();
            let restarted = match &mut slot.restart {
                Some(restart) if slot.restarts < MAX_COLLECTOR_RESTARTS => match restart() {
                    Ok(handle) => {
                        slot.handle = Some(handle);
                        slot.restarts += 1;
                        true
                    }
                    Err(error) => {
                        tracing::error!(collector = name, %error, "Cannot restart a collector.");
                        false
                    }
                },
                _ => false,
            };
            if restarted {
                tracing::error!(collector = name, %how, restarts = slot.restarts, "A collector ended; restarted.");
                out.push(event(
                    "collector_restarted",
                    slot.collector,
                    format!(
                        "the {name} collector {how}; it was restarted (restart {} of at most {MAX_COLLECTOR_RESTARTS}); its observations during the gap are missing",
                        slot.restarts
                    ),
                    slot.restarts,
                ));
            } else {
                tracing::error!(collector = name, %how, "A collector ended and is not restarted.");
                out.push(event(
                    "collector_failed",
                    slot.collector,
                    format!(
                        "the {name} collector {how} and is not restarted ({}): what it observes is no longer seen",
                        if slot.restart.is_some() {
                            "restarts used up or failed"
                        } else {
                            "it cannot be restarted while the monitor runs"
                        }
                    ),
                    slot.restarts,
                ));
            }
        }
        out
    }

    /// Joins every thread still held (after shutdown); the names of those that panicked.
    pub(crate) fn join_all(self) -> Vec<&'static str> {
        let mut panicked = Vec::new();
        for slot in self.slots {
            if let Some(handle) = slot.handle {
                if handle.join().is_err() {
                    panicked.push(slot.collector.as_str());
                }
            }
        }
        panicked
    }
}

/// Checks `health` every [`CHECK_INTERVAL`] until `shutdown`, sending reports to `events`;
/// the thread returns the threads for joining.
pub(crate) fn spawn_health(
    mut health: CollectorHealth,
    events: SyncSender<Event>,
    shutdown: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<CollectorHealth>> {
    std::thread::Builder::new()
        .name("health".into())
        .spawn(move || {
            let started = std::time::Instant::now();
            let mut next_trim = started + TRIM_AFTER[0];
            let mut trims = 0usize;
            while !shutdown.load(Ordering::Relaxed) {
                std::thread::sleep(CHECK_INTERVAL);
                // What start-up freed (rule compilation, the first full scans), then now and
                // then whatever bursts freed, goes back to the kernel; after start-up, so do
                // the pages of code only start-up ran (crate::memory).
                let now = std::time::Instant::now();
                if now >= next_trim {
                    crate::memory::trim();
                    if trims < TRIM_AFTER.len() {
                        crate::memory::release_startup_pages();
                    }
                    trims += 1;
                    next_trim = started
                        + TRIM_AFTER
                            .get(trims)
                            .copied()
                            .unwrap_or(TRIM_EVERY * u32::try_from(trims).unwrap_or(u32::MAX));
                }
                for report in health.check(&shutdown) {
                    // A blocking send: the engine keeps draining, and these are rare.
                    if events.send(report).is_err() {
                        return health;
                    }
                }
            }
            health
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    fn wait_until(shutdown: &Arc<AtomicBool>) -> JoinHandle<()> {
        let shutdown = shutdown.clone();
        std::thread::spawn(move || {
            while !shutdown.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    }

    /// Checks until something is reported. The bound is generous: a panicking thread prints its
    /// message (with a symbolised backtrace when `RUST_BACKTRACE` is set, as in CI) before it
    /// counts as finished, which took over the former 2 s on a loaded machine.
    fn check_until_reported(health: &mut CollectorHealth, shutdown: &AtomicBool) -> Vec<Event> {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::time::Instant::now() < deadline {
            let out = health.check(shutdown);
            if !out.is_empty() {
                return out;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!("no report within 30 s");
    }

    #[test]
    fn a_panicked_restartable_collector_is_restarted_and_reported() {
        let shutdown = Arc::new(AtomicBool::new(false));
        let starts = Arc::new(AtomicU32::new(0));
        let mut health = CollectorHealth::default();
        let first = std::thread::spawn(|| panic!("socket table unreadable"));
        let restart: Restart = {
            let shutdown = shutdown.clone();
            let starts = starts.clone();
            Box::new(move || {
                starts.fetch_add(1, Ordering::Relaxed);
                Ok(wait_until(&shutdown))
            })
        };
        health.add(Collector::Sockets, first, Some(restart));
        let out = check_until_reported(&mut health, &shutdown);
        assert_eq!(out.len(), 1);
        let internal = out[0].internal.as_ref().expect("internal");
        assert_eq!(internal.kind, "collector_restarted");
        assert!(
            internal.message.contains("socket table unreadable")
                && internal.message.contains("sockets"),
            "{}",
            internal.message
        );
        assert_eq!(out[0].evt.arg("collector"), Some("sockets"));
        assert_eq!(starts.load(Ordering::Relaxed), 1);
        // The restarted thread runs: nothing more to report.
        std::thread::sleep(Duration::from_millis(50));
        assert!(health.check(&shutdown).is_empty());
        shutdown.store(true, Ordering::Relaxed);
        assert!(health.join_all().is_empty());
    }

    #[test]
    fn a_collector_that_cannot_be_restarted_is_reported_failed_once() {
        let shutdown = Arc::new(AtomicBool::new(false));
        let mut health = CollectorHealth::default();
        health.add(Collector::Procscan, std::thread::spawn(|| {}), None);
        health.add(Collector::Fswatch, wait_until(&shutdown), None);
        let out = check_until_reported(&mut health, &shutdown);
        assert_eq!(out.len(), 1);
        assert_eq!(
            out[0].internal.as_ref().expect("internal").kind,
            "collector_failed"
        );
        assert_eq!(out[0].evt.collector, Collector::Procscan);
        std::thread::sleep(Duration::from_millis(20));
        assert!(health.check(&shutdown).is_empty(), "reported once");
        shutdown.store(true, Ordering::Relaxed);
        assert!(health.join_all().is_empty());
    }

    #[test]
    fn threads_ending_at_shutdown_are_not_reported() {
        let shutdown = Arc::new(AtomicBool::new(false));
        let mut health = CollectorHealth::default();
        health.add(Collector::Sockets, wait_until(&shutdown), None);
        shutdown.store(true, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(30));
        assert!(health.check(&shutdown).is_empty());
        assert!(health.join_all().is_empty());
    }
}
