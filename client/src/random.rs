//! Randomness for jitter and simulated volumes: xorshift64*, seeded from the clock. Not for
//! anything secret.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::protocol::Glass;

/// A small, fast pseudo-random generator.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded from the clock and `salt` (a tap id, say), so taps differ.
    pub fn new(salt: u64) -> Rng {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Rng::seeded(nanos ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }

    /// A fixed sequence, for tests.
    pub fn seeded(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A volume as a bar pours them: mostly pints, some halves, a few steins (other glasses
    /// evenly), well inside the glass's band. `None` if there are no glasses.
    pub fn volume(&mut self, glasses: &[Glass]) -> Option<f64> {
        let weight = |g: &Glass| match g.name.as_str() {
            "pint" => 6.0,
            "half" => 3.0,
            "stein" => 1.0,
            _ => 2.0,
        };
        let total: f64 = glasses.iter().map(weight).sum();
        let mut pick = self.unit() * total;
        let glass = glasses
            .iter()
            .find(|g| {
                pick -= weight(g);
                pick < 0.0
            })
            .or(glasses.last())?;
        // 10% to 90% of the band: never on a boundary, where the first-match rule decides.
        let span = glass.max - glass.min;
        Some((glass.min + span * (0.1 + 0.8 * self.unit())).round())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn glasses() -> Vec<Glass> {
        [
            ("half", 100.0, 300.0),
            ("pint", 300.0, 800.0),
            ("stein", 800.0, 1000.0),
        ]
        .into_iter()
        .map(|(n, min, max)| Glass {
            name: n.into(),
            min,
            max,
        })
        .collect()
    }

    #[test]
    fn volumes_stay_inside_a_band_and_favour_pints() {
        let mut rng = Rng::seeded(42);
        let glasses = glasses();
        let mut pints = 0;
        for _ in 0..10_000 {
            let v = rng.volume(&glasses).unwrap();
            assert!((120.0..=980.0).contains(&v), "{v}");
            assert!(
                glasses.iter().any(|g| g.min < v && v < g.max),
                "{v} on a boundary"
            );
            if (300.0..=800.0).contains(&v) {
                pints += 1;
            }
        }
        assert!((5_500..6_500).contains(&pints), "{pints}");
        assert_eq!(rng.volume(&[]), None);
    }

    #[test]
    fn unit_is_in_range() {
        let mut rng = Rng::seeded(7);
        assert!(
            (0..1000)
                .map(|_| rng.unit())
                .all(|u| (0.0..1.0).contains(&u))
        );
    }
}
