//! The bar's history: every business day's pours, kept as they come and go, and the
//! history document (`GET /api/history`) cut from them by day, week or month and grouped
//! by beverage, tap or glass.
//!
//! A pour counts in the business day its venue's clock gave it when it was logged; a
//! deletion finds that day again from the clock that was in force at the pour's id, so the
//! counts stay exact when a venue changes its zone or its day start in between.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{Datelike, Duration, NaiveDate};
use serde::Serialize;

use crate::pour::{Flag, Flags, Pour, microlitres};
use crate::report::{DayClock, FlagCounts, TypeTally};

/// How long a history may span, in days (ten years of days: every bucket is listed).
pub const MAX_DAYS: i64 = 3660;

/// The pours of one (tap, keg, glass, flags) in a day.
#[derive(Debug, Clone, Copy)]
struct Cell {
    tap_id: u32,
    /// An index into [`History::glasses`].
    glass: u16,
    flags: u8,
    /// The keg the pours drew from (0: none was on the tap).
    keg: u64,
    pours: u32,
    microlitres: i64,
}

/// A venue's days.
#[derive(Debug, Default)]
struct VenueDays {
    /// The clock in force from each pour id on, oldest first.
    clocks: Vec<(u64, DayClock)>,
    /// The current clock's business day (UTC milliseconds from..until) and its date, so
    /// that most pours skip the time-zone arithmetic.
    today: Option<(i64, i64, NaiveDate)>,
    /// Cells by business date (days from the common era).
    days: BTreeMap<i32, Vec<Cell>>,
}

impl VenueDays {
    fn date_of(&mut self, pour: &Pour, clock: DayClock) -> NaiveDate {
        if self.clocks.last().is_none_or(|(_, last)| *last != clock) {
            self.clocks.push((pour.id, clock));
            self.today = None;
        }
        let at = pour.timestamp.millis();
        if let Some((from, until, date)) = self.today
            && (from..until).contains(&at)
        {
            return date;
        }
        let date = clock.date_of(pour.timestamp);
        let (from, until) = clock.day_of(pour.timestamp);
        self.today = Some((from, until, date));
        date
    }

    /// The clock that was in force when pour `id` was logged.
    fn clock_at(&self, id: u64) -> Option<DayClock> {
        let after = self.clocks.partition_point(|(from, _)| *from <= id);
        after.checked_sub(1).map(|i| self.clocks[i].1)
    }
}

/// What a history is cut into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Bucket {
    Day,
    /// Monday to Sunday.
    Week,
    Month,
}

impl Bucket {
    pub fn parse(text: &str) -> Option<Bucket> {
        match text {
            "day" => Some(Bucket::Day),
            "week" => Some(Bucket::Week),
            "month" => Some(Bucket::Month),
            _ => None,
        }
    }

    /// The first day of the bucket holding `date`.
    pub fn start(self, date: NaiveDate) -> NaiveDate {
        match self {
            Bucket::Day => date,
            Bucket::Week => date - Duration::days(i64::from(date.weekday().num_days_from_monday())),
            Bucket::Month => date.with_day(1).unwrap_or(date),
        }
    }

    /// The first day of the bucket after the one starting at `start`.
    fn next(self, start: NaiveDate) -> NaiveDate {
        match self {
            Bucket::Day => start + Duration::days(1),
            Bucket::Week => start + Duration::days(7),
            Bucket::Month => start
                .checked_add_months(chrono::Months::new(1))
                .unwrap_or(NaiveDate::MAX),
        }
    }

    /// How far back a history reaches when no `from` is given: 30 days, 12 weeks, or 12
    /// months, the bucket holding `to` included.
    pub fn default_from(self, to: NaiveDate) -> NaiveDate {
        let start = self.start(to);
        match self {
            Bucket::Day => start - Duration::days(29),
            Bucket::Week => start - Duration::days(7 * 11),
            Bucket::Month => start
                .checked_sub_months(chrono::Months::new(11))
                .unwrap_or(NaiveDate::MIN),
        }
    }
}

/// What a history's pours are grouped by within each bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum By {
    /// The beverage of the keg each pour drew from (none: no keg was on the tap).
    Beverage,
    Tap,
    Glass,
}

impl By {
    pub fn parse(text: &str) -> Option<By> {
        match text {
            "beverage" => Some(By::Beverage),
            "tap" => Some(By::Tap),
            "glass" => Some(By::Glass),
            _ => None,
        }
    }
}

/// What a history is asked for.
#[derive(Debug, Clone)]
pub struct Query {
    /// One venue's (none: every venue's, each on its own clock).
    pub venue: Option<Arc<str>>,
    /// The first and last business day, inclusive.
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub bucket: Bucket,
    pub by: By,
}

/// The history document.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Document {
    /// The venue it counts (none: every venue, each by its own business days).
    #[schema(value_type = Option<String>)]
    pub venue: Option<Arc<str>>,
    /// The first and last business day it covers (`YYYY-MM-DD`), whole buckets.
    #[schema(value_type = String, format = Date, example = "2026-11-01")]
    #[serde(serialize_with = "as_text")]
    pub from: NaiveDate,
    #[schema(value_type = String, format = Date, example = "2026-11-30")]
    #[serde(serialize_with = "as_text")]
    pub to: NaiveDate,
    pub bucket: Bucket,
    pub by: By,
    /// Every bucket from `from` to `to`, oldest first, empty ones too.
    pub buckets: Vec<BucketCounts>,
}

/// One bucket's pours.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BucketCounts {
    /// Its first and last business day.
    #[schema(value_type = String, format = Date, example = "2026-11-30")]
    #[serde(serialize_with = "as_text")]
    pub start: NaiveDate,
    #[schema(value_type = String, format = Date, example = "2026-12-06")]
    #[serde(serialize_with = "as_text")]
    pub end: NaiveDate,
    /// Every pour of the bucket.
    pub total: Counts,
    /// By the group asked for, the most poured first.
    pub groups: Vec<Group>,
}

/// A group of a bucket: its key, and its pours.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Group {
    /// With `by=beverage`: the keg's beverage (null: poured with no keg on the tap).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub beverage: Option<Option<String>>,
    /// With `by=tap`: the tap's venue and id.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub venue: Option<Arc<str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tap_id: Option<u32>,
    /// With `by=glass`: the glass (`type` in a pour).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub glass: Option<Arc<str>>,
    #[serde(flatten)]
    pub counts: Counts,
}

/// Pours, their volume, by glass and by flag.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    pub pours: u64,
    pub volume_ml: f64,
    /// By glass, the most poured first (only glasses poured).
    pub by_type: Vec<TypeTally>,
    /// Pours with at least one flag.
    pub flagged_pours: u64,
    /// Pours with each flag (a pour may have several).
    pub flagged: FlagCounts,
    /// Pours outside the venue's opening hours (the `afterHours` flag).
    pub after_hours: u64,
    #[serde(skip)]
    #[schema(ignore)]
    microlitres: i64,
    #[serde(skip)]
    #[schema(ignore)]
    glasses: Vec<(u16, u64, i64)>,
}

impl Counts {
    fn add(&mut self, cell: &Cell) {
        let pours = u64::from(cell.pours);
        let flags = Flags::from_bits(cell.flags);
        // Water through a line being cleaned: counted as such, not as pours or litres.
        if flags.contains(Flag::Cleaning) {
            self.flagged.cleaning += pours;
            return;
        }
        self.pours += pours;
        self.microlitres += cell.microlitres;
        match self.glasses.iter_mut().find(|(g, _, _)| *g == cell.glass) {
            Some((_, p, ul)) => (*p, *ul) = (*p + pours, *ul + cell.microlitres),
            None => self.glasses.push((cell.glass, pours, cell.microlitres)),
        }
        if !flags.is_empty() {
            self.flagged_pours += pours;
        }
        for flag in flags.iter() {
            *self.flagged.count(flag) += pours;
        }
    }

    fn finish(&mut self, glasses: &[Arc<str>]) {
        self.volume_ml = self.microlitres as f64 / 1000.0;
        self.after_hours = self.flagged.get(Flag::AfterHours);
        self.glasses.sort_by(|a, b| {
            b.1.cmp(&a.1)
                .then_with(|| glasses[a.0 as usize].cmp(&glasses[b.0 as usize]))
        });
        self.by_type = self
            .glasses
            .iter()
            .map(|&(g, pours, ul)| TypeTally {
                glass: glasses[g as usize].clone(),
                pours,
                volume_ml: ul as f64 / 1000.0,
            })
            .collect();
    }
}

/// Every venue's days.
#[derive(Debug, Default)]
pub struct History {
    /// Glass names, interned: a cell names one by index.
    glasses: Vec<Arc<str>>,
    venues: HashMap<Arc<str>, VenueDays>,
}

impl History {
    pub fn new() -> History {
        History::default()
    }

    fn glass(&mut self, name: &Arc<str>) -> u16 {
        match self.glasses.iter().position(|g| **g == **name) {
            Some(i) => i as u16,
            None => {
                self.glasses.push(name.clone());
                (self.glasses.len() - 1) as u16
            }
        }
    }

    /// Counts a logged pour in its business day on `clock`, its venue's now; `keg` is the
    /// keg it drew from (0: none).
    pub fn poured(&mut self, pour: &Pour, clock: DayClock, keg: u64) {
        let glass = self.glass(&pour.glass);
        let days = self.venues.entry(pour.venue.clone()).or_default();
        let date = days.date_of(pour, clock);
        let cells = days.days.entry(date.num_days_from_ce()).or_default();
        let (flags, ul) = (pour.flags.bits(), microlitres(pour.volume));
        match cells.iter_mut().find(|c| {
            c.tap_id == pour.tap_id && c.glass == glass && c.flags == flags && c.keg == keg
        }) {
            Some(cell) => {
                cell.pours += 1;
                cell.microlitres += ul;
            }
            None => cells.push(Cell {
                tap_id: pour.tap_id,
                glass,
                flags,
                keg,
                pours: 1,
                microlitres: ul,
            }),
        }
    }

    /// Uncounts a deleted pour, from the day it was counted in.
    pub fn deleted(&mut self, pour: &Pour, keg: u64) {
        let glass = self.glass(&pour.glass);
        let Some(days) = self.venues.get_mut(&pour.venue) else {
            return;
        };
        let Some(clock) = days.clock_at(pour.id) else {
            return;
        };
        let day = clock.date_of(pour.timestamp).num_days_from_ce();
        let Some(cells) = days.days.get_mut(&day) else {
            return;
        };
        let flags = pour.flags.bits();
        if let Some(at) = cells.iter().position(|c| {
            c.tap_id == pour.tap_id && c.glass == glass && c.flags == flags && c.keg == keg
        }) {
            let cell = &mut cells[at];
            cell.pours -= 1;
            cell.microlitres -= microlitres(pour.volume);
            if cell.pours == 0 {
                cells.swap_remove(at);
            }
        }
    }

    /// The history `query` asks for; `beverage` names a keg's beverage.
    pub fn document(&self, query: &Query, beverage: impl Fn(u64) -> Option<String>) -> Document {
        let from = query.bucket.start(query.from);
        let to = query.bucket.next(query.bucket.start(query.to)) - Duration::days(1);
        let mut buckets = Vec::new();
        let mut start = from;
        while start <= to {
            let next = query.bucket.next(start);
            buckets.push((
                start,
                next,
                Counts::default(),
                Vec::<(GroupKey, Counts)>::new(),
            ));
            start = next;
        }
        let (first, last) = (from.num_days_from_ce(), to.num_days_from_ce());
        let venues = self
            .venues
            .iter()
            .filter(|(venue, _)| query.venue.as_deref().is_none_or(|v| v == &***venue));
        let mut names: HashMap<u64, Option<String>> = HashMap::new();
        for (venue, days) in venues {
            for (&day, cells) in days.days.range(first..=last) {
                let Some(date) = NaiveDate::from_num_days_from_ce_opt(day) else {
                    continue;
                };
                let at = buckets.partition_point(|b| b.1 <= date);
                let Some((_, _, total, groups)) = buckets.get_mut(at) else {
                    continue;
                };
                for cell in cells {
                    total.add(cell);
                    let key = match query.by {
                        By::Beverage => GroupKey::Beverage(
                            names
                                .entry(cell.keg)
                                .or_insert_with(|| {
                                    (cell.keg != 0).then(|| beverage(cell.keg)).flatten()
                                })
                                .clone(),
                        ),
                        By::Tap => GroupKey::Tap(venue.clone(), cell.tap_id),
                        By::Glass => GroupKey::Glass(cell.glass),
                    };
                    match groups.iter_mut().find(|(k, _)| *k == key) {
                        Some((_, counts)) => counts.add(cell),
                        None => {
                            let mut counts = Counts::default();
                            counts.add(cell);
                            groups.push((key, counts));
                        }
                    }
                }
            }
        }
        let buckets = buckets
            .into_iter()
            .map(|(start, next, mut total, groups)| {
                total.finish(&self.glasses);
                let mut groups: Vec<Group> = groups
                    .into_iter()
                    .map(|(key, mut counts)| {
                        counts.finish(&self.glasses);
                        let mut group = Group {
                            beverage: None,
                            venue: None,
                            tap_id: None,
                            glass: None,
                            counts,
                        };
                        match key {
                            GroupKey::Beverage(name) => group.beverage = Some(name),
                            GroupKey::Tap(venue, tap) => {
                                (group.venue, group.tap_id) = (Some(venue), Some(tap));
                            }
                            GroupKey::Glass(g) => {
                                group.glass = Some(self.glasses[g as usize].clone())
                            }
                        }
                        group
                    })
                    .collect();
                groups.sort_by(|a, b| {
                    b.counts
                        .microlitres
                        .cmp(&a.counts.microlitres)
                        .then_with(|| b.counts.pours.cmp(&a.counts.pours))
                        .then_with(|| a.sort_key().cmp(&b.sort_key()))
                });
                BucketCounts {
                    start,
                    end: next - Duration::days(1),
                    total,
                    groups,
                }
            })
            .collect();
        Document {
            venue: query.venue.clone(),
            from,
            to,
            bucket: query.bucket,
            by: query.by,
            buckets,
        }
    }
}

/// A date as `YYYY-MM-DD`.
fn as_text<S: serde::Serializer>(date: &NaiveDate, to: S) -> Result<S::Ok, S::Error> {
    to.collect_str(date)
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum GroupKey {
    Beverage(Option<String>),
    Tap(Arc<str>, u32),
    Glass(u16),
}

impl Group {
    /// Ties broken by key, so that every replica lists them alike.
    fn sort_key(&self) -> (Option<&str>, Option<&str>, Option<u32>, Option<&str>) {
        (
            self.beverage.as_ref().and_then(|b| b.as_deref()),
            self.venue.as_deref(),
            self.tap_id,
            self.glass.as_deref(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pour::Timestamp;
    use proptest::prelude::*;

    const HOUR: i64 = 3_600_000;

    fn clock(zone: u8, starts_hours: u32) -> DayClock {
        let zone = match zone % 3 {
            0 => chrono_tz::UTC,
            1 => chrono_tz::America::New_York,
            _ => chrono_tz::Pacific::Auckland,
        };
        DayClock {
            zone,
            starts: starts_hours * 3600,
        }
    }

    /// One step of a log: a pour (venue, tap, glass, flags, hours after the start, keg),
    /// a deletion of the n-th pour so far, or a venue's new clock.
    #[derive(Debug, Clone)]
    enum Step {
        Pour(u8, u32, u8, u8, i64, u64),
        Delete(usize),
        Clock(u8, u8, u32),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            6 => (0u8..2, 1u32..4, 0u8..3, any::<u8>(), 0i64..24 * 20, 0u64..3)
                .prop_map(|(v, t, g, f, h, k)| Step::Pour(v, t, g, f & 0x7f, h, k)),
            2 => any::<usize>().prop_map(Step::Delete),
            1 => (0u8..2, any::<u8>(), 0u32..6).prop_map(|(v, z, s)| Step::Clock(v, z, s)),
        ]
    }

    proptest! {
        /// Whatever the pours, deletions and clock changes, the history is a recount of
        /// the pours left, each on the clock its venue had when it was logged.
        #[test]
        fn history_is_a_recount_of_the_pours_left(steps in proptest::collection::vec(step(), 1..120)) {
            let venues: [Arc<str>; 2] = ["a".into(), "b".into()];
            let glasses: [Arc<str>; 3] = ["half".into(), "pint".into(), "unclassified".into()];
            let start = Timestamp::parse("2026-03-01T00:00:00Z").unwrap().millis();
            let mut clocks = [clock(0, 0), clock(0, 0)];
            let mut history = History::new();
            // Every pour logged: the pour, its clock, its keg, and whether it is left.
            let mut log: Vec<(Pour, DayClock, u64, bool)> = Vec::new();
            for step in steps {
                match step {
                    Step::Pour(v, tap_id, g, flags, hours, keg) => {
                        let pour = Pour {
                            id: log.len() as u64 + 1,
                            venue: venues[v as usize].clone(),
                            tap_id,
                            volume: [250.0, 500.0, 1500.0][g as usize] + f64::from(flags) / 8.0,
                            glass: glasses[g as usize].clone(),
                            timestamp: Timestamp::from_millis(start + hours * HOUR + 17),
                            flags: Flags::from_bits(flags),
                        };
                        history.poured(&pour, clocks[v as usize], keg);
                        log.push((pour, clocks[v as usize], keg, true));
                    }
                    Step::Delete(n) if !log.is_empty() => {
                        let at = n % log.len();
                        if log[at].3 {
                            history.deleted(&log[at].0, log[at].2);
                            log[at].3 = false;
                        }
                    }
                    Step::Delete(_) => {}
                    Step::Clock(v, zone, starts) => clocks[v as usize] = clock(zone, starts),
                }
            }
            let beverage = |keg: u64| Some(format!("keg {keg}"));
            let (from, to) = (
                NaiveDate::from_ymd_opt(2026, 2, 27).unwrap(),
                NaiveDate::from_ymd_opt(2026, 3, 23).unwrap(),
            );
            for venue in [None, Some(venues[0].clone())] {
                for by in [By::Beverage, By::Tap, By::Glass] {
                    let query = Query { venue: venue.clone(), from, to, bucket: Bucket::Day, by };
                    let document = history.document(&query, beverage);
                    // The recount: (date, group) -> (pours, microlitres, flagged pours).
                    let mut expected: BTreeMap<(NaiveDate, String), (u64, i64, u64)> = BTreeMap::new();
                    for (pour, clock, keg, left) in &log {
                        if !left || venue.as_ref().is_some_and(|v| *v != pour.venue) {
                            continue;
                        }
                        let group = match by {
                            By::Beverage if *keg == 0 => "null".to_owned(),
                            By::Beverage => format!("\"keg {keg}\""),
                            By::Tap => format!("{}/{}", pour.venue, pour.tap_id),
                            By::Glass => pour.glass.to_string(),
                        };
                        let counts = expected.entry((clock.date_of(pour.timestamp), group)).or_default();
                        counts.0 += 1;
                        counts.1 += microlitres(pour.volume);
                        counts.2 += u64::from(!pour.flags.is_empty());
                    }
                    let mut found = BTreeMap::new();
                    for bucket in &document.buckets {
                        prop_assert_eq!(bucket.start, bucket.end);
                        for group in &bucket.groups {
                            let name = match by {
                                By::Beverage => serde_json::to_string(group.beverage.as_ref().unwrap()).unwrap(),
                                By::Tap => format!("{}/{}", group.venue.as_ref().unwrap(), group.tap_id.unwrap()),
                                By::Glass => group.glass.as_ref().unwrap().to_string(),
                            };
                            found.insert(
                                (bucket.start, name),
                                (group.counts.pours, group.counts.microlitres, group.counts.flagged_pours),
                            );
                        }
                        let pours: u64 = bucket.groups.iter().map(|g| g.counts.pours).sum();
                        prop_assert_eq!(pours, bucket.total.pours);
                    }
                    prop_assert_eq!(found, expected);
                }
            }
        }
    }

    #[test]
    fn buckets_start_on_a_monday_or_the_first_and_reach_back_by_default() {
        let date = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
        assert_eq!(Bucket::Week.start(date(2026, 12, 3)), date(2026, 11, 30));
        assert_eq!(Bucket::Month.start(date(2026, 12, 3)), date(2026, 12, 1));
        assert_eq!(
            Bucket::Day.default_from(date(2026, 12, 3)),
            date(2026, 11, 4)
        );
        assert_eq!(
            Bucket::Week.default_from(date(2026, 12, 3)),
            date(2026, 9, 14)
        );
        assert_eq!(
            Bucket::Month.default_from(date(2026, 12, 3)),
            date(2026, 1, 1)
        );
    }
}
