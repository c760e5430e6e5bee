//! What the sink counts: totals since start, and what a shutdown could not deliver.

use std::sync::atomic::AtomicU64;

/// A snapshot of the sink's counters (totals since start, except the two gauges).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SinkStats {
    /// Records received from the channel, by priority.
    pub received_by_priority: [u64; 8],
    /// Events the service accepted (excluding rejected ones).
    pub delivered: u64,
    /// PutLogEvents calls made (successful or not).
    pub put_calls: u64,
    /// PutLogEvents calls that succeeded.
    pub put_ok: u64,
    /// Retries after a failed call.
    pub retries: u64,
    /// Calls refused for credentials or permissions (the batch is kept and retried).
    pub auth_errors: u64,
    /// Events the service rejected individually (`rejectedLogEventsInfo`).
    pub rejected_by_service: u64,
    /// Events dropped with a batch the service called invalid.
    pub dropped_invalid: u64,
    /// Records dropped because memory and spill were full, by priority.
    pub dropped_by_priority: [u64; 8],
    /// Timestamps clamped into the accepted window.
    pub timestamps_clamped: u64,
    /// Messages truncated to the event size limit.
    pub(crate) truncated: u64,
    /// Times the log group/stream was (re)created after being found missing.
    pub recreated: u64,
    /// Heartbeats queued.
    pub heartbeats: u64,
    /// Drop reports queued.
    pub drop_reports: u64,
    /// Records recovered from a previous run's spill directory at start.
    pub(crate) recovered_from_spill: u64,
    /// Spill write errors and unreadable spill lines.
    pub(crate) spill_errors: u64,
    /// Gauge: records in memory now.
    pub(crate) buffered: u64,
    /// Gauge: records in the spill directory now.
    pub spilled: u64,
}

impl SinkStats {
    /// Every record dropped for any reason.
    pub fn dropped_total(&self) -> u64 {
        self.dropped_by_priority.iter().sum::<u64>()
            + self.rejected_by_service
            + self.dropped_invalid
    }
}

/// What [`CloudWatchHandle::shutdown`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Records still buffered (memory, spill, in flight) when the deadline passed: not
    /// delivered. Zero means everything was flushed.
    pub undelivered: u64,
    /// Whether the deadline stopped the flush.
    pub deadline_reached: bool,
    /// The final counters.
    pub stats: SinkStats,
}

#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) received: [AtomicU64; 8],
    pub(super) delivered: AtomicU64,
    pub(super) put_calls: AtomicU64,
    pub(super) put_ok: AtomicU64,
    pub(super) retries: AtomicU64,
    pub(super) auth_errors: AtomicU64,
    pub(super) rejected_by_service: AtomicU64,
    pub(super) dropped_invalid: AtomicU64,
    pub(super) clamped: AtomicU64,
    pub(super) truncated: AtomicU64,
    pub(super) recreated: AtomicU64,
    pub(super) heartbeats: AtomicU64,
    pub(super) drop_reports: AtomicU64,
    pub(super) recovered: AtomicU64,
    /// Records taken from the buffer by the sender and not yet delivered or put back.
    pub(super) in_flight: AtomicU64,
    /// Service rejections and invalid drops not yet reported by a record.
    pub(super) unreported_rejected: AtomicU64,
    pub(super) unreported_invalid: AtomicU64,
}
