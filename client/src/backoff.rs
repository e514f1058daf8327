//! Exponential backoff with full jitter: after failure n, wait a random time up to
//! min(cap, base * 2^n), so that many taps recovering together do not retry in step.

use std::time::Duration;

use crate::random::Rng;

/// Retry delays for one thing being retried.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    failures: u32,
    rng: Rng,
}

impl Backoff {
    /// Delays from about `base` up to `cap`.
    pub fn new(base: Duration, cap: Duration, rng: Rng) -> Backoff {
        Backoff {
            base,
            cap,
            failures: 0,
            rng,
        }
    }

    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(1u32 << self.failures.min(20))
            .min(self.cap);
        self.failures = self.failures.saturating_add(1);
        // At least a tenth of the ceiling, so a retry never spins.
        ceiling.mul_f64(0.1 + 0.9 * self.rng.unit())
    }

    /// Success: the next failure starts from the base again.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// Attempts failed since the last success.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_to_the_cap_with_jitter_and_reset() {
        let mut b = Backoff::new(
            Duration::from_millis(100),
            Duration::from_secs(30),
            Rng::seeded(1),
        );
        let delays: Vec<Duration> = (0..15).map(|_| b.next_delay()).collect();
        for (n, d) in delays.iter().enumerate() {
            let ceiling = Duration::from_millis(100 << n).min(Duration::from_secs(30));
            assert!(*d <= ceiling && *d >= ceiling / 10, "{n}: {d:?}");
        }
        assert!(delays[14] >= Duration::from_secs(3));
        assert_eq!(b.failures(), 15);
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }
}
