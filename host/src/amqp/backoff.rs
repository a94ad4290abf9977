//! How long to wait before the next connection attempt: capped exponential
//! backoff with jitter. Pure: the random part is passed in.

use std::time::Duration;

/// Reconnect delays: `min(cap, base × 2^attempt)`, of which the upper half
/// is random ("equal jitter"), so many hosts losing one broker do not all
/// come back in the same millisecond, yet none retries in a hot loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The delay before the first retry (before jitter).
    pub base: Duration,
    /// The longest delay.
    pub cap: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_millis(200),
            cap: Duration::from_secs(15),
        }
    }
}

impl Backoff {
    /// The ceiling for retry number `attempt` (0 for the first): `min(cap, base × 2^attempt)`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// The delay before retry number `attempt`, given `jitter` in `[0, 1)`
    /// (values outside are clamped): between half the ceiling and the ceiling.
    pub fn delay(&self, attempt: u32, jitter: f64) -> Duration {
        let ceiling = self.ceiling(attempt);
        let jitter = if jitter.is_finite() {
            jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let half = ceiling / 2;
        half + (ceiling - half).mul_f64(jitter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_the_base_until_the_cap() {
        let b = Backoff {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(2),
        };
        let ceilings: Vec<u128> = (0..8).map(|n| b.ceiling(n).as_millis()).collect();
        assert_eq!(ceilings, [100, 200, 400, 800, 1600, 2000, 2000, 2000]);
    }

    #[test]
    fn jitter_stays_between_half_the_ceiling_and_the_ceiling() {
        let b = Backoff::default();
        for attempt in 0..40 {
            let low = b.delay(attempt, 0.0);
            let high = b.delay(attempt, 0.999_999);
            assert_eq!(low, b.ceiling(attempt) / 2);
            assert!(
                high <= b.ceiling(attempt) && high > low,
                "{attempt}: {low:?} {high:?}"
            );
        }
    }

    #[test]
    fn huge_attempts_and_odd_jitter_neither_overflow_nor_exceed_the_cap() {
        let b = Backoff::default();
        assert_eq!(b.ceiling(u32::MAX), b.cap);
        assert!(b.delay(u32::MAX, f64::NAN) <= b.cap);
        assert!(b.delay(3, 7.0) <= b.ceiling(3));
        assert!(b.delay(3, -1.0) >= b.ceiling(3) / 2);
    }

    #[test]
    fn never_retries_without_waiting() {
        let b = Backoff::default();
        assert!(b.delay(0, 0.0) >= Duration::from_millis(100));
    }
}
