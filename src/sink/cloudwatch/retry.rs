//! Retry pacing and the rate limit of the sink's own warnings.

use std::time::Duration;

/// Capped exponential backoff with full jitter: a uniformly random duration between zero and
/// `min(max, base * 2^attempt)`. `unit` is a uniform random number in `[0, 1)`.
pub fn backoff(attempt: u32, base: Duration, max: Duration, unit: f64) -> Duration {
    let ceiling = base
        .checked_mul(1u32.checked_shl(attempt.min(30)).unwrap_or(u32::MAX))
        .unwrap_or(max)
        .min(max);
    ceiling.mul_f64(unit.clamp(0.0, 1.0))
}

/// Rate limits the sink's own warnings: one line per kind every 10 seconds, with the number
/// suppressed since.
#[derive(Default)]
pub(super) struct LogLimiter {
    pub(super) last: [Option<std::time::Instant>; 4],
    pub(super) suppressed: [u64; 4],
}

impl LogLimiter {
    /// Whether to log now for this kind; returns the number suppressed since the last line.
    pub(super) fn allow(&mut self, kind: usize) -> Option<u64> {
        let now = std::time::Instant::now();
        match self.last[kind] {
            Some(last) if now.duration_since(last) < Duration::from_secs(10) => {
                self.suppressed[kind] += 1;
                None
            }
            _ => {
                self.last[kind] = Some(now);
                Some(std::mem::take(&mut self.suppressed[kind]))
            }
        }
    }
}
