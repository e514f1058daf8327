//! Which flags a pour earns. Those that depend on the pour alone (tiny, over-pour) are
//! found when its request is parsed; after-hours depends on its venue's hours ([`Clock`])
//! and `burst` on the tap's previous pour, so the store's decision finds them, in commit
//! order, where every replica agrees on the venue's settings and on "previous". Flags are
//! stored with the pour and never recomputed.

use chrono::{DateTime, Timelike};
use chrono_tz::Tz;

use crate::config::{Config, OpeningHours};
use crate::glass::Catalogue;
use crate::pour::{Flag, NewPour, Timestamp, microlitres};

/// The thresholds, from the configuration.
#[derive(Debug, Clone)]
pub struct Rules {
    /// Below this (µl): tiny.
    tiny_below_ul: i64,
    /// An over-pour is more than this many per cent above the glass's nominal serving.
    over_pour_pct: f64,
    /// A pour timed more than this after the server's clock is `future` (ms).
    clock_skew_ms: i64,
    pub burst: Burst,
}

impl Rules {
    pub fn from_config(config: &Config) -> Rules {
        Rules {
            tiny_below_ul: microlitres(config.tiny_below),
            over_pour_pct: config.over_pour_tolerance,
            clock_skew_ms: i64::try_from(config.clock_skew.as_millis()).unwrap_or(i64::MAX),
            burst: Burst {
                max_flow: config.max_flow,
            },
        }
    }

    /// Adds the flags that depend on the pour alone.
    pub fn assess(&self, pour: &mut NewPour, catalogue: &Catalogue) {
        let volume = microlitres(pour.volume);
        if volume < self.tiny_below_ul {
            pour.flags = pour.flags.with(Flag::Tiny);
        }
        let nominal = catalogue.get(&pour.glass).and_then(|g| g.nominal);
        if let Some(nominal) = nominal
            && volume > microlitres(nominal * (1.0 + self.over_pour_pct / 100.0))
        {
            pour.flags = pour.flags.with(Flag::OverPour);
        }
        if pour.timestamp.millis() > Timestamp::now().millis().saturating_add(self.clock_skew_ms) {
            pour.flags = pour.flags.with(Flag::Future);
        }
    }
}

/// A venue's opening hours on its wall clock.
#[derive(Debug, Clone, PartialEq)]
pub struct Clock {
    pub zone: Tz,
    /// None: always open.
    pub hours: Option<OpeningHours>,
}

impl Clock {
    /// The flags' (`--timezone`, `--opening-hours`).
    pub fn from_config(config: &Config) -> Clock {
        Clock {
            zone: config.timezone,
            hours: config.opening_hours.clone(),
        }
    }

    /// Whether the venue is open at `at` (always, without opening hours). The wall clock in
    /// its zone decides, so hours hold across daylight-saving changes.
    pub fn open_at(&self, at: Timestamp) -> bool {
        let Some(hours) = &self.hours else {
            return true;
        };
        match DateTime::from_timestamp_millis(at.millis()) {
            Some(utc) => hours.contains(utc.with_timezone(&self.zone).num_seconds_from_midnight()),
            // Beyond chrono's range: no wall clock to judge by.
            None => true,
        }
    }

    /// Adds `after-hours` to a pour timed while the venue is closed.
    pub fn assess(&self, pour: &mut NewPour) {
        if !self.open_at(pour.timestamp) {
            pour.flags = pour.flags.with(Flag::AfterHours);
        }
    }
}

/// How fast a tap can pour.
#[derive(Debug, Clone, Copy)]
pub struct Burst {
    /// ml per second.
    pub max_flow: f64,
}

impl Burst {
    /// Whether `pour` ended too soon after `previous`, the latest pour its tap reported
    /// before, for a tap to have poured its volume in between.
    pub fn between(&self, previous: Option<Timestamp>, pour: &NewPour) -> bool {
        let Some(previous) = previous else {
            return false;
        };
        let gap_ms = pour.timestamp.millis().abs_diff(previous.millis()) as f64;
        // gap × flow < volume, in µl.
        gap_ms * self.max_flow < microlitres(pour.volume) as f64
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::pour::Flags;

    fn rules(args: &[&str]) -> Rules {
        let mut argv = vec!["altair-server"];
        argv.extend_from_slice(args);
        Rules::from_config(&Config::try_parse_from(argv).unwrap())
    }

    fn at(text: &str) -> Timestamp {
        Timestamp::parse(text).unwrap()
    }

    fn pour(volume: f64, glass: &str, timestamp: Timestamp) -> NewPour {
        NewPour {
            venue: "main".into(),
            tap_id: 1,
            volume,
            glass: glass.into(),
            timestamp,
            device_timestamp: true,
            flags: Flags::NONE,
        }
    }

    fn flags(rules: &Rules, volume: f64, glass: &str, when: &str) -> Vec<Flag> {
        let mut p = pour(volume, glass, at(when));
        rules.assess(&mut p, &Catalogue::default());
        p.flags.iter().collect()
    }

    fn clock(args: &[&str]) -> Clock {
        let mut argv = vec!["altair-server"];
        argv.extend_from_slice(args);
        Clock::from_config(&Config::try_parse_from(argv).unwrap())
    }

    fn hours_flags(clock: &Clock, when: &str) -> Vec<Flag> {
        let mut p = pour(500.0, "pint", at(when));
        clock.assess(&mut p);
        p.flags.iter().collect()
    }

    const NOON: &str = "2026-11-20T12:00:00Z";

    #[test]
    fn tiny_is_strictly_below_the_threshold() {
        let r = rules(&[]);
        assert_eq!(flags(&r, 19.999, "half", NOON), [Flag::Tiny]);
        assert_eq!(flags(&r, 20.0, "half", NOON), []);
        assert_eq!(flags(&r, 20.001, "half", NOON), []);
        let r = rules(&["--tiny-below", "6.5"]);
        assert_eq!(flags(&r, 6.4, "half", NOON), [Flag::Tiny]);
        assert_eq!(flags(&r, 6.5, "half", NOON), []);
    }

    #[test]
    fn over_pour_is_more_than_the_tolerance_above_the_nominal_serving() {
        // A pint is 568 ml; 10 % over is 624.8 ml.
        let r = rules(&[]);
        assert_eq!(flags(&r, 624.7, "pint", NOON), []);
        assert_eq!(flags(&r, 624.8, "pint", NOON), []);
        assert_eq!(flags(&r, 624.9, "pint", NOON), [Flag::OverPour]);
        assert_eq!(flags(&r, 650.0, "pint", NOON), [Flag::OverPour]);
        let strict = rules(&["--over-pour-tolerance", "0"]);
        assert_eq!(flags(&strict, 568.0, "pint", NOON), []);
        assert_eq!(flags(&strict, 568.001, "pint", NOON), [Flag::OverPour]);
        // No nominal serving (an unknown or unclassified type): never an over-pour.
        assert_eq!(flags(&strict, 2000.0, "unclassified", NOON), []);
    }

    #[test]
    fn after_hours_follows_windows_that_cross_midnight() {
        let c = clock(&["--opening-hours", "16:00-02:00"]);
        let late = |when| hours_flags(&c, when);
        assert_eq!(late("2026-11-20T15:59:59.999Z"), [Flag::AfterHours]);
        assert_eq!(late("2026-11-20T16:00:00Z"), []);
        assert_eq!(late("2026-11-20T23:59:59Z"), []);
        assert_eq!(late("2026-11-21T01:59:59.999Z"), []);
        assert_eq!(late("2026-11-21T02:00:00Z"), [Flag::AfterHours]);
        assert_eq!(late("2026-11-21T03:10:00Z"), [Flag::AfterHours]);
        // No opening hours: always open.
        assert_eq!(hours_flags(&clock(&[]), "2026-11-21T03:10:00Z"), []);
    }

    #[test]
    fn after_hours_reads_the_bar_s_wall_clock_across_daylight_saving() {
        // Berlin closes at 02:30. On 2026-03-29 clocks jump from 02:00 to 03:00 (CET to
        // CEST): 00:40 UTC is 01:40 CET, open; 01:10 UTC is 03:10 CEST, closed, though a
        // fixed +01:00 would call it 02:10, open.
        let c = clock(&[
            "--opening-hours",
            "17:00-02:30",
            "--timezone",
            "Europe/Berlin",
        ]);
        let late = |when| hours_flags(&c, when);
        assert_eq!(late("2026-03-29T00:40:00Z"), []);
        assert_eq!(late("2026-03-29T01:10:00Z"), [Flag::AfterHours]);
        // A day later the bar closes at 00:30 UTC (02:30 CEST).
        assert_eq!(late("2026-03-30T00:29:59Z"), []);
        assert_eq!(late("2026-03-30T00:30:00Z"), [Flag::AfterHours]);
        // In winter, 02:30 CET is 01:30 UTC.
        assert_eq!(late("2026-01-10T01:29:59Z"), []);
        assert_eq!(late("2026-01-10T01:30:00Z"), [Flag::AfterHours]);
        // Opening at 17:00 local: 16:00 UTC in winter, 15:00 UTC in summer.
        assert_eq!(late("2026-01-10T15:59:59Z"), [Flag::AfterHours]);
        assert_eq!(late("2026-01-10T16:00:00Z"), []);
        assert_eq!(late("2026-07-10T15:00:00Z"), []);
    }

    #[test]
    fn a_burst_is_a_pour_its_tap_could_not_have_poured_since_the_previous_one() {
        // 500 ml at 200 ml/s takes 2.5 s.
        let burst = rules(&[]).burst;
        let previous = at(NOON);
        let after = |ms: i64| {
            pour(
                500.0,
                "pint",
                Timestamp::from_millis(previous.millis() + ms),
            )
        };
        assert!(burst.between(Some(previous), &after(2499)));
        assert!(!burst.between(Some(previous), &after(2500)));
        assert!(!burst.between(Some(previous), &after(2501)));
        // A pour reported late, timed before the previous one, is judged by the gap.
        assert!(burst.between(Some(previous), &after(-1000)));
        assert!(!burst.between(None, &after(0)));
        let fast = rules(&["--max-flow", "1000"]).burst;
        assert!(!fast.between(Some(previous), &after(500)));
        assert!(fast.between(Some(previous), &after(499)));
    }
}
