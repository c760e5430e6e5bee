//! When the sockets collector polls next.

use std::time::{Duration, Instant};

use super::SocketsConfig;

/// When the collector polls next: every `interval`, and during a trigger window every
/// `trigger_spacing` (or the duration of the last poll, if longer) after the end of the last
/// poll.
#[derive(Debug, Clone)]
pub(crate) struct PollSchedule {
    interval: Duration,
    spacing: Duration,
    window: Duration,
    last_start: Option<Instant>,
    last_end: Option<Instant>,
    last_took: Duration,
    burst_until: Option<Instant>,
}

impl PollSchedule {
    /// The schedule of a collector with this configuration; the first poll is due at once.
    pub(crate) fn new(config: &SocketsConfig) -> PollSchedule {
        PollSchedule {
            interval: config.interval.max(Duration::from_millis(1)),
            spacing: config.trigger_spacing,
            window: config.trigger_window,
            last_start: None,
            last_end: None,
            last_took: Duration::ZERO,
            burst_until: None,
        }
    }

    /// Records a poll that ran from `started` to `finished`.
    pub(crate) fn polled(&mut self, started: Instant, finished: Instant) {
        self.last_start = Some(started);
        self.last_end = Some(finished);
        self.last_took = finished.saturating_duration_since(started);
    }

    /// Records a trigger at `now`: polls follow every spacing until `now + window`.
    pub(crate) fn triggered(&mut self, now: Instant) {
        self.burst_until = Some(now + self.window);
    }

    /// Whether polls follow every spacing at `now` (a trigger less than a window ago).
    pub(crate) fn in_burst(&self, now: Instant) -> bool {
        self.burst_until.is_some_and(|until| now < until)
    }

    /// When the next poll is due, as seen at `now`.
    pub(crate) fn next_poll(&self, now: Instant) -> Instant {
        let (Some(start), Some(end)) = (self.last_start, self.last_end) else {
            return now;
        };
        let regular = start + self.interval;
        match self.burst_until {
            Some(until) if now < until => regular.min(end + self.spacing.max(self.last_took)),
            _ => regular,
        }
    }
}
