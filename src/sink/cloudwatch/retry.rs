//! Retry pacing and the rate limit of the sink's own warnings.

use std::time::Duration;

/// Capped exponential backoff with full jitter: a uniformly random duration between zero and
/// `min(max, base * 2^attempt)`. `unit` is a uniform random number in `[0, 1)`.
pub(crate) fn backoff(attempt: u32, base: Duration, max: Duration, unit: f64) -> Duration {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_capped_exponential_with_full_jitter() {
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(10);
        assert_eq!(backoff(0, base, max, 0.999_999), base.mul_f64(0.999_999));
        assert_eq!(backoff(3, base, max, 0.5), Duration::from_millis(400));
        assert_eq!(backoff(3, base, max, 0.0), Duration::ZERO);
        assert_eq!(backoff(20, base, max, 1.0), max, "capped");
        assert_eq!(backoff(u32::MAX, base, max, 1.0), max, "no overflow");
        let mut seen_small = false;
        let mut seen_large = false;
        for _ in 0..1000 {
            let d = backoff(4, base, max, fastrand::f64());
            assert!(d <= Duration::from_millis(1600));
            seen_small |= d < Duration::from_millis(400);
            seen_large |= d > Duration::from_millis(1200);
        }
        assert!(seen_small && seen_large, "jitter spans the whole range");
    }
}
