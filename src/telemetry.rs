//! One set of counters for the whole monitor. The engine, the outputs and the collectors count
//! into it; the heartbeat reads it. (Before, the engine, the CloudWatch sink and procscan each
//! kept their own and a task copied one into another once a second; `ProcessesMissed` was in
//! none of them and the heartbeat always said 0.)

use std::sync::atomic::{AtomicU64, Ordering};

use crate::collect::visibility::VisibilityCounts;

/// The monitor's counters. Totals since start, except the visibility gauges.
#[derive(Debug, Default)]
pub struct Telemetry {
    /// Events the engine received from the collectors.
    pub events: AtomicU64,
    /// Records handed to the outputs' queues.
    pub(crate) lines: AtomicU64,
    /// Records an output's full queue could not take (reported as `outputs_dropped`).
    pub(crate) lines_dropped: AtomicU64,
    /// Records an output did not take because of its minimum priority (by design, not a loss).
    pub(crate) lines_filtered: AtomicU64,
    /// Processes the collectors missed (the sum of the `processes_missed` reports' counts).
    pub(crate) processes_missed: AtomicU64,
    /// Alerts the CloudWatch output's queue could not take (its bridge counts them).
    pub(crate) alerts_dropped: AtomicU64,
    /// What procscan can see of the application containers (shared with it).
    pub visibility: VisibilityCounts,
}

impl Telemetry {
    /// Reads a counter.
    pub(crate) fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// Adds to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}
