//! Rate limiting of the collectors' own warnings: a log line the workload can provoke (a
//! failing read, a full watch budget) goes out at most once a minute per limiter.

use std::time::{Duration, Instant};

/// How often at most a limiter lets a warning through.
const PERIOD: Duration = Duration::from_secs(60);

/// One limiter: let a warning through at most once a minute.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct LogLimit {
    last: Option<Instant>,
}

impl LogLimit {
    /// Whether a warning may be logged now (true at most once per period; the first call is).
    pub(crate) fn ready(&mut self) -> bool {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|at| now.saturating_duration_since(at) < PERIOD)
        {
            return false;
        }
        self.last = Some(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lets_one_warning_through_per_period() {
        let mut limit = LogLimit::default();
        assert!(limit.ready());
        assert!(!limit.ready());
        limit.last = Instant::now().checked_sub(PERIOD);
        assert!(limit.ready(), "a period later");
        assert!(!limit.ready());
    }
}
