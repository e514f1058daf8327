//! The metrics report, aggregated incrementally: O(1) work per pour or deletion, never a scan.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;

use crate::glass::Catalogue;
use crate::pour::{Flag, Pour, TapRef, Timestamp, microlitres};

/// Seconds kept for the rolling windows (the longest window is an hour).
const WINDOW_SECONDS: usize = 3600;

/// The report pushed to subscribers and served at `GET /api/report`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The venue it counts (none: every venue, the chain's roll-up).
    #[schema(value_type = Option<String>)]
    pub venue: Option<Arc<str>>,
    pub total_pours: u64,
    pub total_volume_ml: f64,
    /// One entry per tap with at least one stored pour, by venue and tap id.
    pub by_tap: Vec<TapTally>,
    /// One entry per glass in the catalogue, smallest first; then `unclassified`; then one
    /// per type that stored pours have but the catalogue no longer defines, by name. They
    /// add up to the totals.
    pub by_type: Vec<TypeTally>,
    /// Stored pours with each flag (a pour may have several).
    pub flagged: FlagCounts,
    /// The kegs on tap now, by tap.
    pub levels: Vec<Level>,
    /// Alerts open now (neither acknowledged nor resolved).
    pub open_alerts: u64,
    /// The latest timestamp a tap reported a pour at (as `GET /api/taps` says it), if any.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_pour_at: Option<Timestamp>,
    /// Stored pours whose timestamp lies in the last 60 s.
    pub pours_last_minute: u64,
    /// Stored pours whose timestamp lies in the last 3600 s.
    pub pours_last_hour: u64,
    /// Stored pours per minute over the last hour, oldest first: the last entry is the
    /// last 60 s.
    pub pours_per_minute: Vec<u64>,
    /// Stored pours timed today: the venue's business day on its clock (the chain's: the
    /// default venue's).
    pub today: Today,
    /// The newest pour id this report counts (0 for none): a subscriber adds the pours
    /// above it to see the report move.
    pub last_id: u64,
    #[schema(value_type = String, format = DateTime, example = "2026-11-22T21:04:05.123Z")]
    pub generated_at: Timestamp,
}

/// A tap's share of the stored pours.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TapTally {
    #[schema(value_type = String)]
    pub venue: Arc<str>,
    pub tap_id: u32,
    pub pours: u64,
    pub volume_ml: f64,
    /// This tap's pours as a percentage of all pours.
    pub share_pct: f64,
}

/// A glass's share of the stored pours.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TypeTally {
    #[serde(rename = "type")]
    #[schema(value_type = String, example = "pint")]
    pub glass: Arc<str>,
    pub pours: u64,
    pub volume_ml: f64,
}

/// Today's stored pours, by type.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Today {
    /// When today began on the bar's clock.
    #[schema(value_type = String, format = DateTime, example = "2026-11-22T00:00:00.000Z")]
    pub since: Timestamp,
    pub pours: u64,
    pub volume_ml: f64,
    /// Each glass of the catalogue, then `unclassified` (other types count in the totals
    /// only).
    pub by_type: Vec<TypeTally>,
}

/// How full a tap's keg is.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Level {
    #[schema(value_type = String)]
    pub venue: Arc<str>,
    pub tap_id: u32,
    pub keg_id: u64,
    pub beverage: String,
    pub size_ml: f64,
    pub remaining_ml: f64,
    /// Remaining as a percentage of the keg's size.
    pub percent: f64,
    pub low: bool,
    pub empty: bool,
}

/// Stored pours per flag.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FlagCounts {
    pub tiny: u64,
    pub unclassified: u64,
    pub over_pour: u64,
    pub after_hours: u64,
    pub burst: u64,
    pub empty_keg: u64,
    pub future: u64,
    pub cleaning: u64,
}

impl FlagCounts {
    /// The count for `flag`, to change.
    pub fn count(&mut self, flag: Flag) -> &mut u64 {
        match flag {
            Flag::Tiny => &mut self.tiny,
            Flag::Unclassified => &mut self.unclassified,
            Flag::OverPour => &mut self.over_pour,
            Flag::AfterHours => &mut self.after_hours,
            Flag::Burst => &mut self.burst,
            Flag::EmptyKeg => &mut self.empty_keg,
            Flag::Future => &mut self.future,
            Flag::Cleaning => &mut self.cleaning,
        }
    }

    /// The count for `flag`.
    pub fn get(mut self, flag: Flag) -> u64 {
        *self.count(flag)
    }
}

/// Pours and volume, the volume in microlitres so that adding and removing pours is exact.
#[derive(Debug, Clone, Copy, Default)]
struct Tally {
    pours: u64,
    microlitres: i64,
}

impl Tally {
    fn add(&mut self, pour: &Pour) {
        self.pours += 1;
        self.microlitres += microlitres(pour.volume);
    }

    fn remove(&mut self, pour: &Pour) {
        self.pours = self.pours.saturating_sub(1);
        self.microlitres -= microlitres(pour.volume);
    }

    fn volume_ml(self) -> f64 {
        self.microlitres as f64 / 1000.0
    }
}

/// The running totals behind a [`Report`].
#[derive(Debug)]
pub struct Aggregator {
    glasses: Vec<Arc<str>>,
    total: Tally,
    by_glass: Vec<Tally>,
    /// Types of stored pours that the catalogue does not define (it changed), by name.
    retired: Vec<(Arc<str>, Tally)>,
    by_tap: HashMap<TapRef, Tally>,
    flagged: FlagCounts,
    /// Pours per second of pour timestamp, a ring indexed by `second % WINDOW_SECONDS`;
    /// each slot remembers which second it counts so that stale slots are ignored.
    per_second: Box<[(i64, u64)]>,
    last_id: u64,
    /// The venue it counts (none: every venue).
    venue: Option<Arc<str>>,
    /// The clock its days are on, the day as milliseconds from..until, and the pours timed
    /// in it.
    clock: DayClock,
    day: (i64, i64),
    today: Tally,
    today_by_glass: Vec<Tally>,
}

/// When a venue's days begin: its zone, and the time of day its business day starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayClock {
    pub zone: chrono_tz::Tz,
    /// Seconds after local midnight: a night's pours after midnight count for the day
    /// before until then.
    pub starts: u32,
}

impl DayClock {
    /// Days from midnight in `zone`.
    pub fn midnight(zone: chrono_tz::Tz) -> DayClock {
        DayClock { zone, starts: 0 }
    }

    /// The date of the business day containing `at` (a night's pours after midnight are
    /// the day before's until the day starts).
    pub fn date_of(self, at: Timestamp) -> chrono::NaiveDate {
        let Some(utc) = chrono::DateTime::from_timestamp_millis(at.millis()) else {
            return chrono::NaiveDate::MIN;
        };
        let starts = chrono::Duration::seconds(i64::from(self.starts));
        (utc.with_timezone(&self.zone).naive_local() - starts).date()
    }

    /// The business day containing `at`, as UTC milliseconds from..until.
    pub fn day_of(self, at: Timestamp) -> (i64, i64) {
        use chrono::Duration;
        let Some(utc) = chrono::DateTime::from_timestamp_millis(at.millis()) else {
            return (i64::MIN, i64::MIN);
        };
        let starts = Duration::seconds(i64::from(self.starts));
        let date = (utc.with_timezone(&self.zone).naive_local() - starts).date();
        let next = date.succ_opt().unwrap_or(date);
        (self.start_of(date), self.start_of(next))
    }

    /// The first instant of business day `date`, in UTC milliseconds. Where a zone skips
    /// the start (a DST change at that hour), the day starts at the first instant it has.
    pub fn start_of(self, date: chrono::NaiveDate) -> i64 {
        use chrono::{Duration, TimeZone};
        let start =
            date.and_time(chrono::NaiveTime::MIN) + Duration::seconds(i64::from(self.starts));
        (0..4)
            .find_map(|h| {
                self.zone
                    .from_local_datetime(&(start + Duration::hours(h)))
                    .earliest()
            })
            .map_or(i64::MIN, |t| t.timestamp_millis())
    }
}

impl Aggregator {
    /// Empty totals of every venue for the glasses of `catalogue`, with days on `clock`.
    pub fn new(catalogue: &Catalogue, clock: DayClock) -> Aggregator {
        let glasses: Vec<Arc<str>> = catalogue
            .glasses()
            .iter()
            .map(|g| g.name.clone())
            .chain([catalogue.unclassified()])
            .collect();
        Aggregator {
            by_glass: vec![Tally::default(); glasses.len()],
            glasses,
            retired: Vec::new(),
            total: Tally::default(),
            by_tap: HashMap::new(),
            flagged: FlagCounts::default(),
            per_second: vec![(i64::MIN, 0); WINDOW_SECONDS].into_boxed_slice(),
            last_id: 0,
            venue: None,
            clock,
            day: (i64::MIN, i64::MIN),
            today: Tally::default(),
            today_by_glass: Vec::new(),
        }
    }

    /// Empty totals of one venue, like `self` but for its clock.
    pub fn of_venue(&self, venue: Arc<str>, clock: DayClock) -> Aggregator {
        Aggregator {
            glasses: self.glasses.clone(),
            by_glass: vec![Tally::default(); self.glasses.len()],
            retired: Vec::new(),
            total: Tally::default(),
            by_tap: HashMap::new(),
            flagged: FlagCounts::default(),
            per_second: vec![(i64::MIN, 0); WINDOW_SECONDS].into_boxed_slice(),
            last_id: 0,
            venue: Some(venue),
            clock,
            day: (i64::MIN, i64::MIN),
            today: Tally::default(),
            today_by_glass: Vec::new(),
        }
    }

    /// Its days are on `clock` from now on. A venue whose zone or day start changes
    /// counts today from the change: its earlier pours are not kept to count again.
    pub fn set_clock(&mut self, clock: DayClock) {
        if self.clock != clock {
            self.clock = clock;
            self.day = (i64::MIN, i64::MIN);
            self.today = Tally::default();
            self.today_by_glass = vec![Tally::default(); self.glasses.len()];
        }
    }

    /// Counts a stored pour.
    pub fn add(&mut self, pour: &Pour, now: Timestamp) {
        self.total.add(pour);
        let glass = self.glasses.iter().position(|g| **g == *pour.glass);
        match glass {
            Some(i) => self.by_glass[i].add(pour),
            None => self.glass_tally(&pour.glass).add(pour),
        }
        self.last_id = self.last_id.max(pour.id);
        if now.millis() >= self.day.1 {
            self.day = self.clock.day_of(now);
            self.today = Tally::default();
            self.today_by_glass = vec![Tally::default(); self.glasses.len()];
        }
        if self.in_today(pour) {
            self.today.add(pour);
            if let Some(i) = glass {
                self.today_by_glass[i].add(pour);
            }
        }
        self.by_tap.entry(pour.tap()).or_default().add(pour);
        for flag in pour.flags.iter() {
            *self.flagged.count(flag) += 1;
        }
        let second = pour.timestamp.millis().div_euclid(1000);
        let now_second = now.millis().div_euclid(1000);
        // Outside the hour (or a clock far ahead): not in any window, now or later.
        if second <= now_second - WINDOW_SECONDS as i64 || second > now_second + 60 {
            return;
        }
        let slot = &mut self.per_second[second.rem_euclid(WINDOW_SECONDS as i64) as usize];
        if slot.0 == second {
            slot.1 += 1;
        } else if slot.0 < second {
            *slot = (second, 1);
        }
    }

    fn in_today(&self, pour: &Pour) -> bool {
        (self.day.0..self.day.1).contains(&pour.timestamp.millis())
    }

    /// Forgets a deleted pour.
    pub fn remove(&mut self, pour: &Pour) {
        if self.in_today(pour) {
            self.today.remove(pour);
            if let Some(i) = self.glasses.iter().position(|g| **g == *pour.glass) {
                self.today_by_glass[i].remove(pour);
            }
        }
        self.total.remove(pour);
        self.glass_tally(&pour.glass).remove(pour);
        self.retired.retain(|(_, t)| t.pours > 0);
        for flag in pour.flags.iter() {
            let count = self.flagged.count(flag);
            *count = count.saturating_sub(1);
        }
        let tap = pour.tap();
        if let Some(tally) = self.by_tap.get_mut(&tap) {
            tally.remove(pour);
            if tally.pours == 0 {
                self.by_tap.remove(&tap);
            }
        }
        let second = pour.timestamp.millis().div_euclid(1000);
        let slot = &mut self.per_second[second.rem_euclid(WINDOW_SECONDS as i64) as usize];
        if slot.0 == second {
            slot.1 = slot.1.saturating_sub(1);
        }
    }

    /// Total pours counted.
    pub fn total_pours(&self) -> u64 {
        self.total.pours
    }

    /// The report as of `now`. Costs O(taps + glasses + 3600), never O(pours).
    pub fn report(&self, now: Timestamp) -> Report {
        let total = self.total.pours;
        let share = |pours: u64| {
            if total == 0 {
                0.0
            } else {
                // Two decimals are plenty for a share, and keep the JSON short.
                (pours as f64 * 10_000.0 / total as f64).round() / 100.0
            }
        };
        let mut by_tap: Vec<TapTally> = self
            .by_tap
            .iter()
            .map(|(tap, t)| TapTally {
                venue: tap.venue.clone(),
                tap_id: tap.tap_id,
                pours: t.pours,
                volume_ml: t.volume_ml(),
                share_pct: share(t.pours),
            })
            .collect();
        by_tap.sort_unstable_by(|a, b| (&a.venue, a.tap_id).cmp(&(&b.venue, b.tap_id)));
        let by_type = self
            .glasses
            .iter()
            .zip(&self.by_glass)
            .chain(self.retired.iter().map(|(glass, t)| (glass, t)))
            .map(|(glass, t)| TypeTally {
                glass: glass.clone(),
                pours: t.pours,
                volume_ml: t.volume_ml(),
            })
            .collect();
        let now_second = now.millis().div_euclid(1000);
        let mut per_minute = vec![0; 60];
        for &(second, n) in self.per_second.iter() {
            // Unused slots hold i64::MIN.
            let ago = now_second.saturating_sub(second);
            if (0..WINDOW_SECONDS as i64).contains(&ago) {
                per_minute[59 - (ago / 60) as usize] += n;
            }
        }
        // Today as of `now`: none yet if no pour has come since the day turned.
        let (day, tally, by_glass) = if (self.day.0..self.day.1).contains(&now.millis()) {
            (self.day, self.today, self.today_by_glass.as_slice())
        } else {
            (self.clock.day_of(now), Tally::default(), &[][..])
        };
        let today = Today {
            since: Timestamp::from_millis(day.0),
            pours: tally.pours,
            volume_ml: tally.volume_ml(),
            by_type: self
                .glasses
                .iter()
                .enumerate()
                .map(|(i, glass)| {
                    let t = by_glass.get(i).copied().unwrap_or_default();
                    TypeTally {
                        glass: glass.clone(),
                        pours: t.pours,
                        volume_ml: t.volume_ml(),
                    }
                })
                .collect(),
        };
        Report {
            venue: self.venue.clone(),
            total_pours: total,
            total_volume_ml: self.total.volume_ml(),
            by_tap,
            by_type,
            flagged: self.flagged,
            levels: Vec::new(),
            open_alerts: 0,
            last_pour_at: None,
            pours_last_minute: per_minute[59],
            pours_last_hour: per_minute.iter().sum(),
            pours_per_minute: per_minute,
            today,
            last_id: self.last_id,
            generated_at: now,
        }
    }

    /// The types of stored pours that the catalogue does not define, with their pours.
    pub fn retired(&self) -> Vec<(Arc<str>, u64)> {
        self.retired
            .iter()
            .map(|(g, t)| (g.clone(), t.pours))
            .collect()
    }

    /// The tally of glass `name`: the catalogue's, else a retired type's, added if new.
    fn glass_tally(&mut self, name: &Arc<str>) -> &mut Tally {
        if let Some(i) = self.glasses.iter().position(|g| **g == **name) {
            return &mut self.by_glass[i];
        }
        let at = match self.retired.binary_search_by(|(g, _)| (**g).cmp(&**name)) {
            Ok(at) => at,
            Err(at) => {
                self.retired.insert(at, (name.clone(), Tally::default()));
                at
            }
        };
        &mut self.retired[at].1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000_000;

    fn pour(id: u64, tap_id: u32, volume: f64, glass: &str, ago_secs: i64) -> Pour {
        Pour {
            venue: "main".into(),
            flags: crate::pour::Flags::NONE,
            id,
            tap_id,
            volume,
            glass: glass.into(),
            timestamp: Timestamp::from_millis(NOW - ago_secs * 1000),
        }
    }

    fn now() -> Timestamp {
        Timestamp::from_millis(NOW)
    }

    #[test]
    fn types_the_catalogue_no_longer_defines_are_reported_while_pours_have_them() {
        let mut agg = Aggregator::new(&Catalogue::default(), DayClock::midnight(chrono_tz::UTC));
        agg.add(&pour(1, 1, 500.0, "schooner", 0), now());
        agg.add(&pour(2, 1, 500.0, "pint", 0), now());
        agg.add(&pour(3, 1, 500.0, "growler", 0), now());
        let types = |agg: &Aggregator| -> Vec<(String, u64)> {
            let r = agg.report(now());
            r.by_type
                .iter()
                .map(|t| (t.glass.to_string(), t.pours))
                .collect()
        };
        let expected = [
            ("half", 0),
            ("pint", 1),
            ("stein", 0),
            ("unclassified", 0),
            ("growler", 1),
            ("schooner", 1),
        ];
        assert_eq!(types(&agg), expected.map(|(g, n)| (g.to_owned(), n)));
        agg.remove(&pour(3, 1, 500.0, "growler", 0));
        assert_eq!(agg.retired(), vec![("schooner".into(), 1)]);
        assert_eq!(types(&agg).len(), 5, "a type with no pour left goes");
    }

    #[test]
    fn totals_by_tap_and_type() {
        let mut agg = Aggregator::new(&Catalogue::default(), DayClock::midnight(chrono_tz::UTC));
        agg.add(&pour(1, 2, 500.0, "pint", 0), now());
        agg.add(&pour(2, 2, 200.5, "half", 0), now());
        agg.add(&pour(3, 7, 1000.0, "stein", 0), now());
        agg.add(&pour(4, 7, 400.0, "pint", 0), now());
        let r = agg.report(now());
        assert_eq!(r.total_pours, 4);
        assert_eq!(r.total_volume_ml, 2100.5);
        assert_eq!(
            r.by_tap,
            vec![
                TapTally {
                    venue: "main".into(),
                    tap_id: 2,
                    pours: 2,
                    volume_ml: 700.5,
                    share_pct: 50.0
                },
                TapTally {
                    venue: "main".into(),
                    tap_id: 7,
                    pours: 2,
                    volume_ml: 1400.0,
                    share_pct: 50.0
                },
            ]
        );
        let types: Vec<(&str, u64, f64)> = r
            .by_type
            .iter()
            .map(|t| (&*t.glass, t.pours, t.volume_ml))
            .collect();
        assert_eq!(
            types,
            vec![
                ("half", 1, 200.5),
                ("pint", 2, 900.0),
                ("stein", 1, 1000.0),
                ("unclassified", 0, 0.0)
            ]
        );
    }

    #[test]
    fn flags_are_counted_while_their_pours_are_stored() {
        let mut agg = Aggregator::new(&Catalogue::default(), DayClock::midnight(chrono_tz::UTC));
        let flagged = |id, flags: &[Flag]| Pour {
            flags: flags.iter().copied().collect(),
            ..pour(id, 1, 6.0, "unclassified", 0)
        };
        let (a, b) = (
            flagged(1, &[Flag::Tiny, Flag::Unclassified]),
            flagged(2, &[Flag::Tiny, Flag::Burst]),
        );
        agg.add(&a, now());
        agg.add(&b, now());
        agg.add(&pour(3, 1, 500.0, "pint", 0), now());
        let counts = agg.report(now()).flagged;
        assert_eq!((counts.tiny, counts.unclassified, counts.burst), (2, 1, 1));
        assert_eq!((counts.over_pour, counts.after_hours), (0, 0));
        agg.remove(&a);
        let counts = agg.report(now()).flagged;
        assert_eq!((counts.tiny, counts.unclassified, counts.burst), (1, 0, 1));
        let json = serde_json::to_value(agg.report(now())).unwrap();
        assert_eq!(
            json["flagged"],
            serde_json::json!({"tiny": 1, "unclassified": 0, "overPour": 0, "afterHours": 0, "burst": 1, "emptyKeg": 0, "future": 0, "cleaning": 0})
        );
    }

    #[test]
    fn deletions_are_reflected_exactly() {
        let mut agg = Aggregator::new(&Catalogue::default(), DayClock::midnight(chrono_tz::UTC));
        let a = pour(1, 1, 100.1, "half", 0);
        let b = pour(2, 2, 300.2, "half", 0);
        agg.add(&a, now());
        agg.add(&b, now());
        agg.remove(&a);
        let r = agg.report(now());
        assert_eq!(r.total_pours, 1);
        assert_eq!(r.total_volume_ml, 300.2);
        assert_eq!(r.by_tap.len(), 1, "a tap with no pours left disappears");
        assert_eq!(r.by_tap[0].share_pct, 100.0);
        assert_eq!(r.pours_last_minute, 1);
        agg.remove(&b);
        let r = agg.report(now());
        assert_eq!((r.total_pours, r.total_volume_ml), (0, 0.0));
        assert_eq!(r.pours_last_hour, 0);
    }

    #[test]
    fn rolling_windows_count_by_pour_time() {
        let mut agg = Aggregator::new(&Catalogue::default(), DayClock::midnight(chrono_tz::UTC));
        agg.add(&pour(1, 1, 500.0, "pint", 0), now());
        agg.add(&pour(2, 1, 500.0, "pint", 59), now());
        agg.add(&pour(3, 1, 500.0, "pint", 61), now());
        agg.add(&pour(4, 1, 500.0, "pint", 3599), now());
        agg.add(&pour(5, 1, 500.0, "pint", 3600), now());
        agg.add(&pour(6, 1, 500.0, "pint", 86_400), now());
        let r = agg.report(now());
        assert_eq!(r.pours_last_minute, 2);
        assert_eq!(r.pours_last_hour, 4);
        assert_eq!(r.total_pours, 6);
        // Ten minutes on, the minute window is empty and the hour has lost nothing new.
        let later = Timestamp::from_millis(NOW + 600_000);
        let r = agg.report(later);
        assert_eq!(r.pours_last_minute, 0);
        assert_eq!(r.pours_last_hour, 3);
    }

    #[test]
    fn share_is_rounded_to_two_decimals() {
        let mut agg = Aggregator::new(&Catalogue::default(), DayClock::midnight(chrono_tz::UTC));
        for (id, tap) in [(1, 1), (2, 2), (3, 2)] {
            agg.add(&pour(id, tap, 500.0, "pint", 0), now());
        }
        let r = agg.report(now());
        assert_eq!(r.by_tap[0].share_pct, 33.33);
        assert_eq!(r.by_tap[1].share_pct, 66.67);
    }

    #[test]
    fn pours_per_minute_cover_the_hour_oldest_first() {
        let mut agg = Aggregator::new(&Catalogue::default(), DayClock::midnight(chrono_tz::UTC));
        for (id, ago) in [(1, 0), (2, 59), (3, 60), (4, 3599), (5, 3600), (6, -5)] {
            agg.add(&pour(id, 1, 500.0, "pint", ago), now());
        }
        let r = agg.report(now());
        assert_eq!(r.pours_per_minute.len(), 60);
        assert_eq!(r.pours_per_minute[59], 2, "the last 60 s");
        assert_eq!(r.pours_per_minute[58], 1);
        assert_eq!(r.pours_per_minute[0], 1, "59 minutes and more ago");
        assert_eq!(r.pours_per_minute.iter().sum::<u64>(), r.pours_last_hour);
        assert_eq!((r.pours_last_minute, r.pours_last_hour), (2, 4));
        assert_eq!(r.last_id, 6);
    }

    #[test]
    fn a_business_day_starts_at_its_hour_on_the_venue_s_clock_across_daylight_saving() {
        let at = |text: &str| {
            Timestamp::from_millis(
                chrono::DateTime::parse_from_rfc3339(text)
                    .unwrap()
                    .timestamp_millis(),
            )
        };
        let ms = |text: &str| at(text).millis();
        // New York moves to summer time at 02:00 on 2026-03-08; its bar's day starts at 04:00.
        let new_york = DayClock {
            zone: "America/New_York".parse().unwrap(),
            starts: 4 * 3600,
        };
        // 01:00 EST on the 8th is still the 7th's night: a day of 23 hours.
        assert_eq!(
            new_york.day_of(at("2026-03-08T06:00:00Z")),
            (ms("2026-03-07T09:00:00Z"), ms("2026-03-08T08:00:00Z"))
        );
        assert_eq!(
            new_york.day_of(at("2026-03-08T12:00:00Z")),
            (ms("2026-03-08T08:00:00Z"), ms("2026-03-09T08:00:00Z"))
        );
        // Auckland leaves summer time at 03:00 on 2026-04-05 (back to 02:00): a day of 25
        // hours from 04:00 on the 4th (NZDT, +13) to 04:00 on the 5th (NZST, +12).
        let auckland = DayClock {
            zone: "Pacific/Auckland".parse().unwrap(),
            starts: 4 * 3600,
        };
        assert_eq!(
            auckland.day_of(at("2026-04-04T14:30:00Z")),
            (ms("2026-04-03T15:00:00Z"), ms("2026-04-04T16:00:00Z"))
        );
        // Midnight days, as before venues had a start of their own.
        assert_eq!(
            DayClock::midnight(chrono_tz::UTC).day_of(at("2026-04-04T14:30:00Z")),
            (ms("2026-04-04T00:00:00Z"), ms("2026-04-05T00:00:00Z"))
        );
    }

    #[test]
    fn today_is_the_bars_day_and_forgets_deleted_pours() {
        // 2026-03-29 is the day Berlin moves its clocks to summer time (a 23-hour day).
        let zone: chrono_tz::Tz = "Europe/Berlin".parse().unwrap();
        let at = |text: &str| {
            Timestamp::from_millis(
                chrono::DateTime::parse_from_rfc3339(text)
                    .unwrap()
                    .timestamp_millis(),
            )
        };
        let poured = |id, glass: &str, when: &str| Pour {
            timestamp: at(when),
            ..pour(id, 1, 500.0, glass, 0)
        };
        let mut agg = Aggregator::new(&Catalogue::default(), DayClock::midnight(zone));
        let now = at("2026-03-29T21:00:00Z"); // 23:00 in Berlin
        let yesterday = poured(1, "pint", "2026-03-28T22:59:59Z");
        let first = poured(2, "pint", "2026-03-28T23:00:00Z"); // midnight in Berlin
        let late = poured(3, "half", "2026-03-29T21:59:59Z");
        for p in [&yesterday, &first, &late] {
            agg.add(p, now);
        }
        let r = agg.report(now);
        assert_eq!(r.today.since, at("2026-03-28T23:00:00Z"));
        assert_eq!((r.today.pours, r.today.volume_ml), (2, 1000.0));
        let by_type: Vec<(&str, u64)> = r
            .today
            .by_type
            .iter()
            .map(|t| (&*t.glass, t.pours))
            .collect();
        assert_eq!(
            by_type,
            [("half", 1), ("pint", 1), ("stein", 0), ("unclassified", 0)]
        );
        agg.remove(&first);
        agg.remove(&yesterday);
        assert_eq!(agg.report(now).today.pours, 1);
        // The next day starts empty, before any pour comes.
        let tomorrow = agg.report(at("2026-03-29T22:00:00Z"));
        assert_eq!(tomorrow.today.since, at("2026-03-29T22:00:00Z"));
        assert_eq!(tomorrow.today.pours, 0);
        assert_eq!(tomorrow.total_pours, 1);
    }
}
