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
    /// evenly), within 3 % of the glass's nominal serving (a bartender's spread, well
    /// inside the server's over-pour tolerance), or well inside its band if it names none.
    /// `None` if there are no glasses.
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
        let span = glass.max - glass.min;
        let volume = match glass.nominal {
            Some(nominal) => (nominal * (0.97 + 0.06 * self.unit())).round(),
            // 10% to 90% of the band: never on a boundary, where the first-match rule decides.
            None => (glass.min + span * (0.1 + 0.8 * self.unit())).round(),
        };
        Some(volume.clamp(glass.min + span * 0.01, glass.max - span * 0.01))
    }
}

/// How fast a tap pours, for the demo: slower than the server's burst rule allows
/// (`--max-flow`, 200 ml/s by default), so that a simulated tap never looks broken.
pub const TAP_FLOW_ML_PER_S: f64 = 150.0;

/// The wait after pouring `volume` ml before the next pour: the interval, or as long as a
/// tap takes to pour that much if longer.
pub fn gap(interval: std::time::Duration, volume: f64) -> std::time::Duration {
    interval.max(std::time::Duration::from_secs_f64(
        (volume / TAP_FLOW_ML_PER_S).max(0.0),
    ))
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
            nominal: None,
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
    fn with_nominal_servings_a_volume_is_never_an_over_pour_and_a_tap_keeps_its_pace() {
        let mut rng = Rng::seeded(9);
        let glasses: Vec<Glass> = [
            ("half", 100.0, 300.0, 284.0),
            ("pint", 300.0, 800.0, 568.0),
            ("stein", 800.0, 1000.0, 1000.0),
        ]
        .into_iter()
        .map(|(n, min, max, nominal)| Glass {
            name: n.into(),
            min,
            max,
            nominal: Some(nominal),
        })
        .collect();
        for _ in 0..10_000 {
            let v = rng.volume(&glasses).unwrap();
            let glass = glasses.iter().find(|g| g.min < v && v < g.max).unwrap();
            let nominal = glass.nominal.unwrap();
            // The server's default tolerance is 10 %.
            assert!(v <= nominal * 1.03 + 0.5, "{v} in a {}", glass.name);
            assert!(v >= nominal * 0.97 - 0.5 || v >= glass.min, "{v}");
            // Its next pour comes no sooner than a tap pours it at 200 ml/s (the burst rule).
            let next = gap(std::time::Duration::from_secs(3), v);
            assert!(next.as_secs_f64() >= v / 200.0, "{v}: {next:?}");
        }
        assert_eq!(gap(std::time::Duration::from_secs(3), 300.0).as_secs(), 3);
        let stein = gap(std::time::Duration::from_secs(3), 1000.0).as_secs_f64();
        assert!((stein - 1000.0 / 150.0).abs() < 1e-6, "{stein}");
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
