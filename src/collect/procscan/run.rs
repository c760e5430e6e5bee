//! The procscan thread: periodic scans plus trigger-driven scans.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::SyncSender;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{ProcScanConfig, ProcScanner};
use crate::collect::sender::DropCountingSender;
use crate::collect::shared::SharedTables;
use crate::event::{Collector, Event};

/// Starts the procscan collector on its own OS thread. Events go to `tx` with `try_send`: the
/// scanner never blocks on a full queue; it counts what it drops and reports the count as a
/// `tasksentry`/`events_dropped` event as soon as there is room. The thread ends when
/// `shutdown` is set or the receiver is dropped.
pub fn spawn_procscan(
    config: ProcScanConfig,
    tx: SyncSender<Event>,
    shutdown: Arc<AtomicBool>,
) -> io::Result<JoinHandle<()>> {
    spawn_procscan_shared(config, tx, shutdown).map(|(handle, _)| handle)
}

/// Like [`spawn_procscan`], and also returns the handle other collectors read the process and
/// container tables through.
pub(crate) fn spawn_procscan_shared(
    config: ProcScanConfig,
    tx: SyncSender<Event>,
    shutdown: Arc<AtomicBool>,
) -> io::Result<(JoinHandle<()>, SharedTables)> {
    let scanner = ProcScanner::new(config).map_err(io::Error::other)?;
    let shared = scanner.shared_tables();
    let handle = std::thread::Builder::new()
        .name("procscan".into())
        .spawn(move || run_loop(scanner, tx, shutdown))?;
    Ok((handle, shared))
}

/// The collector thread: periodic scans plus trigger-driven scans, spaced so that a storm of
/// triggers (a fork bomb) cannot keep the thread busy more than about half the time.
fn run_loop(mut scanner: ProcScanner, tx: SyncSender<Event>, shutdown: Arc<AtomicBool>) {
    let interval = scanner.config.interval.max(Duration::from_millis(1));
    let delay = scanner.config.trigger_delay;
    let min_spacing = scanner.config.trigger_min_spacing;
    let mut sender = DropCountingSender::new(tx, Collector::Procscan);
    let mut out = Vec::new();
    let mut next_tick = Instant::now();
    let mut trigger_at: Option<Instant> = None;
    let mut earliest_trigger_scan = Instant::now();
    while !shutdown.load(Ordering::Relaxed) {
        let now = Instant::now();
        let due = trigger_at.map_or(next_tick, |t| t.min(next_tick));
        if now < due {
            // Wake at least every 200 ms to notice shutdown.
            let wait = (due - now).min(Duration::from_millis(200));
            if wait_for_trigger(&scanner, wait) && scanner.drain_triggers() > 0 {
                let at = (Instant::now() + delay).max(earliest_trigger_scan);
                trigger_at = Some(trigger_at.map_or(at, |t| t.min(at)));
            }
            continue;
        }
        // Triggers that arrived meanwhile are covered by this scan.
        scanner.drain_triggers();
        trigger_at = None;
        let started = Instant::now();
        scanner.scan(&mut out);
        let finished = Instant::now();
        earliest_trigger_scan = finished + min_spacing.max(finished - started);
        next_tick = finished + interval;
        for event in out.drain(..) {
            if !sender.send(event) {
                return;
            }
        }
        if !sender.flush() {
            return;
        }
    }
}

/// Waits up to `wait` for the trigger descriptor to become readable (or just sleeps when
/// triggers are off). Returns whether it is readable.
fn wait_for_trigger(scanner: &ProcScanner, wait: Duration) -> bool {
    let Some(fd) = scanner.trigger_fd() else {
        std::thread::sleep(wait);
        return false;
    };
    // Rounded up: a timeout cut short would wake the thread once more just to sleep again.
    let millis = u16::try_from(wait.as_micros().div_ceil(1000).max(1)).unwrap_or(u16::MAX);
    let mut fds = [nix::poll::PollFd::new(fd, nix::poll::PollFlags::POLLIN)];
    match nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(millis)) {
        Ok(n) => n > 0,
        Err(_) => false,
    }
}
