//! Poured against sold. Every pour and every sold line is kept by the quarter hour (UTC,
//! so that a deletion finds its cell and any zone's hours are whole quarters), with the
//! till's items mapped to a beverage and a serving; the variance document cuts them by
//! hour, business day or week on each venue's clock as it is when asked.
//!
//! Variance has the trade's sign: (sold − poured) ÷ poured. Negative is beer that left the
//! keg and was never rung up; positive is beer sold that no meter saw (a meter offline, a
//! wrong mapping). Pours with no keg on their tap are poured with no beverage.
//!
//! Which sold lines of an import are new is decided here too ([`Ledger::check`]), against
//! every line the log has: a line is known by its key ([`crate::sales`]).

use std::collections::{BTreeMap, HashMap, HashSet};

use rustc_hash::FxHashMap;
use std::sync::Arc;

use chrono::{Datelike, Duration, NaiveDate, Offset, TimeZone};
use serde::Serialize;

use crate::keg::{KegError, KegOp};
use crate::pour::{Flag, Pour, Timestamp, microlitres};
use crate::report::DayClock;
use crate::sales::Sale;
pub use crate::sales::{Serving, SoldRow};

/// A quarter hour, in milliseconds.
const QUARTER: i64 = 900_000;

/// The largest serving an item may be mapped to, in ml (a big pitcher or a tower).
pub const MAX_SERVING_ML: f64 = 20_000.0;

/// How long a variance may span, in days.
pub const MAX_DAYS: i64 = 400;

/// The operation that logs the new lines of `sales`, made at `at` (all of them: the
/// ledger decides which are new). The `default` venue is stored as `""`, as pours store it
/// as none: the default venue's name is the configuration's.
pub fn sales_op(sales: &[Sale], default: &str, at: Timestamp) -> KegOp {
    let mut venues: Vec<Arc<str>> = Vec::new();
    let mut items: Vec<String> = Vec::new();
    let mut item_index: HashMap<&str, u32> = HashMap::new();
    let rows = sales
        .iter()
        .map(|sale| {
            let name: &str = if &*sale.venue == default {
                ""
            } else {
                &sale.venue
            };
            let venue = match venues.iter().position(|v| &**v == name) {
                Some(i) => i,
                None => {
                    venues.push(name.into());
                    venues.len() - 1
                }
            } as u32;
            let item = *item_index.entry(&sale.item).or_insert_with(|| {
                items.push(sale.item.clone());
                (items.len() - 1) as u32
            });
            SoldRow(sale.key, sale.at.millis(), venue, item, sale.milli)
        })
        .collect();
    KegOp::Sales {
        venues,
        items,
        rows,
        at,
    }
}

/// One (tap, keg)'s pours in a quarter hour.
#[derive(Debug, Clone, Copy)]
struct PourCell {
    tap_id: u32,
    keg: u64,
    pours: u32,
    microlitres: i64,
}

/// A till's item in a venue.
#[derive(Debug, Clone)]
struct Item {
    name: Arc<str>,
    serving: Option<Serving>,
    /// Thousandths sold, ever.
    sold: i64,
    last_sold: i64,
}

/// A venue's pours and sales.
#[derive(Debug, Default)]
struct VenueLedger {
    poured: BTreeMap<i64, Vec<PourCell>>,
    /// (item, thousandths) by quarter hour.
    sold: BTreeMap<i64, Vec<(u32, i64)>>,
    items: Vec<Item>,
    item_index: HashMap<Arc<str>, u32>,
    /// Every sold line's key.
    seen: HashSet<u64>,
}

impl VenueLedger {
    fn item(&mut self, name: &str) -> u32 {
        if let Some(&i) = self.item_index.get(name) {
            return i;
        }
        let name: Arc<str> = name.into();
        self.items.push(Item {
            name: name.clone(),
            serving: None,
            sold: 0,
            last_sold: i64::MIN,
        });
        let i = (self.items.len() - 1) as u32;
        self.item_index.insert(name, i);
        i
    }
}

/// Every venue's pours, sales and items.
#[derive(Debug)]
pub struct Ledger {
    default: Arc<str>,
    venues: HashMap<Arc<str>, VenueLedger>,
}

fn quarter(at: Timestamp) -> i64 {
    at.millis().div_euclid(QUARTER)
}

impl Ledger {
    /// An empty ledger; operations that name no venue are `default`'s.
    pub fn new(default: Arc<str>) -> Ledger {
        Ledger {
            default,
            venues: HashMap::new(),
        }
    }

    fn venue_mut(&mut self, venue: &Arc<str>) -> &mut VenueLedger {
        let venue = if venue.is_empty() {
            &self.default
        } else {
            venue
        };
        self.venues.entry(venue.clone()).or_default()
    }

    /// A venue as an operation names it (`""`: the default venue).
    fn named(&self, venue: &Arc<str>) -> Option<&VenueLedger> {
        let venue = if venue.is_empty() {
            &self.default
        } else {
            venue
        };
        self.venues.get(venue)
    }

    /// Counts a logged pour; `keg` is the keg it drew from (0: none). Water through a
    /// line being cleaned is not beer poured.
    pub fn poured(&mut self, pour: &Pour, keg: u64) {
        if pour.flags.contains(Flag::Cleaning) {
            return;
        }
        let cells = self
            .venue_mut(&pour.venue)
            .poured
            .entry(quarter(pour.timestamp))
            .or_default();
        let ul = microlitres(pour.volume);
        match cells
            .iter_mut()
            .find(|c| c.tap_id == pour.tap_id && c.keg == keg)
        {
            Some(cell) => {
                cell.pours += 1;
                cell.microlitres += ul;
            }
            None => cells.push(PourCell {
                tap_id: pour.tap_id,
                keg,
                pours: 1,
                microlitres: ul,
            }),
        }
    }

    /// Uncounts a deleted pour.
    pub fn deleted(&mut self, pour: &Pour, keg: u64) {
        if pour.flags.contains(Flag::Cleaning) {
            return;
        }
        let Some(venue) = self.venues.get_mut(&pour.venue) else {
            return;
        };
        let at = quarter(pour.timestamp);
        let Some(cells) = venue.poured.get_mut(&at) else {
            return;
        };
        if let Some(i) = cells
            .iter()
            .position(|c| c.tap_id == pour.tap_id && c.keg == keg)
        {
            let cell = &mut cells[i];
            cell.pours -= 1;
            cell.microlitres -= microlitres(pour.volume);
            if cell.pours == 0 {
                cells.swap_remove(i);
            }
        }
        if cells.is_empty() {
            venue.poured.remove(&at);
        }
    }

    /// Whether an operation about sales applies: for an import, how many of its lines are
    /// new and the operation that logs only those (none new: nothing to log, refused).
    pub fn check(&self, op: &KegOp) -> Result<(u64, Option<KegOp>), KegError> {
        match op {
            KegOp::Sales {
                venues,
                items,
                rows,
                at,
            } => {
                let mut fresh: HashSet<(u32, u64)> = HashSet::new();
                let kept: Vec<SoldRow> = rows
                    .iter()
                    .filter(|row| {
                        let known = venues
                            .get(row.2 as usize)
                            .and_then(|v| self.named(v))
                            .is_some_and(|v| v.seen.contains(&row.0));
                        !known && fresh.insert((row.2, row.0))
                    })
                    .copied()
                    .collect();
                if kept.is_empty() {
                    return Err(KegError::NothingNew);
                }
                let new = kept.len() as u64;
                if kept.len() == rows.len() {
                    return Ok((new, None));
                }
                Ok((
                    new,
                    Some(KegOp::Sales {
                        venues: venues.clone(),
                        items: items.clone(),
                        rows: kept,
                        at: *at,
                    }),
                ))
            }
            KegOp::MapItem { item, serving, .. } => {
                if item.is_empty() || item.chars().count() > crate::sales::MAX_ITEM {
                    return Err(KegError::Refused(format!(
                        "an item is 1 to {} characters",
                        crate::sales::MAX_ITEM
                    )));
                }
                if let Some(serving) = serving {
                    check_serving(serving).map_err(KegError::Refused)?;
                }
                Ok((0, None))
            }
            _ => Ok((0, None)),
        }
    }

    /// Applies a logged operation about sales (others change nothing here).
    pub fn apply(&mut self, op: &KegOp) {
        match op {
            KegOp::Sales {
                venues,
                items,
                rows,
                ..
            } => {
                for row in rows {
                    let (Some(venue), Some(item)) =
                        (venues.get(row.2 as usize), items.get(row.3 as usize))
                    else {
                        continue;
                    };
                    let ledger = self.venue_mut(venue);
                    if !ledger.seen.insert(row.0) {
                        continue;
                    }
                    let i = ledger.item(item);
                    let entry = &mut ledger.items[i as usize];
                    entry.sold += row.4;
                    entry.last_sold = entry.last_sold.max(row.1);
                    let cells = ledger.sold.entry(row.1.div_euclid(QUARTER)).or_default();
                    match cells.iter_mut().find(|(it, _)| *it == i) {
                        Some((_, milli)) => *milli += row.4,
                        None => cells.push((i, row.4)),
                    }
                }
            }
            KegOp::MapItem {
                venue,
                item,
                serving,
                ..
            } => {
                let venue = venue.clone().unwrap_or_else(|| self.default.clone());
                let ledger = self.venue_mut(&venue);
                let i = ledger.item(item);
                ledger.items[i as usize].serving = serving.clone();
            }
            _ => {}
        }
    }

    /// The items of `venue` (none: every venue's), by venue and name; `mapped` filters.
    /// `beverages` are the kegs' beverage names, for suggestions.
    pub fn items(
        &self,
        venue: Option<&str>,
        mapped: Option<bool>,
        beverages: &[String],
    ) -> Vec<ItemView> {
        let mut views: Vec<ItemView> = self
            .venues
            .iter()
            .filter(|(v, _)| venue.is_none_or(|venue| venue == &***v))
            .flat_map(|(v, ledger)| {
                ledger.items.iter().map(move |item| ItemView {
                    venue: v.clone(),
                    item: item.name.clone(),
                    beverage: item.serving.as_ref().map(|s| s.beverage.clone()),
                    ml: item.serving.as_ref().map(|s| s.ml),
                    sold: item.sold as f64 / 1000.0,
                    last_sold_at: (item.last_sold != i64::MIN)
                        .then(|| Timestamp::from_millis(item.last_sold)),
                    suggested_beverage: None,
                })
            })
            .filter(|view| mapped.is_none_or(|m| view.beverage.is_some() == m))
            .collect();
        for view in views.iter_mut().filter(|v| v.beverage.is_none()) {
            view.suggested_beverage = suggest(&view.item, beverages);
        }
        views.sort_by(|a, b| (&a.venue, &a.item).cmp(&(&b.venue, &b.item)));
        views
    }

    /// The variance `query` asks for; `beverage` names a keg's beverage, `clock` is a
    /// venue's business-day clock.
    pub fn document(
        &self,
        query: &Query,
        beverage: impl Fn(u64) -> Option<String>,
        clock: impl Fn(&str) -> DayClock,
    ) -> Document {
        let mut counting = Counting::default();
        self.count(query, Counting::span(query), &mut counting, beverage, clock);
        counting.finish(query)
    }

    /// Counts into `counting` the pours and sales of `query` whose quarter hours are in
    /// `quarters` (a part of [`Counting::span`]): a long variance is counted a part at a
    /// time, so that the bar's state is held a moment for each.
    pub fn count(
        &self,
        query: &Query,
        quarters: std::ops::Range<i64>,
        counting: &mut Counting,
        beverage: impl Fn(u64) -> Option<String>,
        clock: impl Fn(&str) -> DayClock,
    ) {
        let Counting {
            names,
            kegs,
            buckets,
            unmapped,
            zone,
        } = counting;
        let by = query.by;
        let venues = self
            .venues
            .iter()
            .filter(|(v, _)| query.venue.as_deref().is_none_or(|q| q == &***v));
        for (venue, ledger) in venues {
            let clock = clock(venue);
            let (first, _) = clock_day(clock, query.from);
            let (_, last) = clock_day(clock, query.to);
            let range = first.div_euclid(QUARTER).max(quarters.start)
                ..last.div_euclid(QUARTER).min(quarters.end);
            if range.is_empty() {
                continue;
            }
            let mut place = Placer::new(clock, query.bucket);
            // Hours are named on the venues' clock; venues on several, in UTC.
            *zone = match *zone {
                None => Some(clock.zone),
                Some(z) if z == clock.zone => Some(z),
                Some(_) => Some(chrono_tz::UTC),
            };
            let v = names.venue(venue);
            for (&q, cells) in ledger.poured.range(range.clone()) {
                let acc = buckets.entry(place.at(q)).or_default();
                for cell in cells {
                    let bev = *kegs.entry(cell.keg).or_insert_with(|| {
                        match (cell.keg != 0).then(|| beverage(cell.keg)).flatten() {
                            Some(name) => names.beverage(&name),
                            None => NONE,
                        }
                    });
                    acc.pour(by, v, cell.tap_id, bev, cell.microlitres);
                }
            }
            // Each item's beverage and serving, once.
            let servings: Vec<Option<(u32, f64)>> = ledger
                .items
                .iter()
                .map(|item| {
                    item.serving
                        .as_ref()
                        .map(|s| (names.beverage(&s.beverage), s.ml))
                })
                .collect();
            for (&q, cells) in ledger.sold.range(range) {
                let acc = buckets.entry(place.at(q)).or_default();
                for &(i, milli) in cells {
                    match servings[i as usize] {
                        Some((bev, ml)) => {
                            let ul = (milli as f64 * ml).round() as i64;
                            acc.sell(by, v, bev, ul);
                        }
                        None => {
                            let item = &ledger.items[i as usize];
                            *unmapped
                                .entry((venue.clone(), item.name.clone()))
                                .or_default() += milli;
                        }
                    }
                }
            }
        }
    }
}

/// A variance being counted ([`Ledger::count`]), a part at a time.
#[derive(Default)]
pub struct Counting {
    // Every group is a number while counting: a year of hours is a million cells.
    names: Names,
    kegs: FxHashMap<u64, u32>,
    buckets: BTreeMap<(i64, NaiveDate), Acc>,
    unmapped: BTreeMap<(Arc<str>, Arc<str>), i64>,
    zone: Option<chrono_tz::Tz>,
}

impl Counting {
    /// The quarter hours `query` may cover on any venue's clock: its days in UTC, a day
    /// wider on each side (no zone is further from UTC, nor a day start later than a day).
    pub fn span(query: &Query) -> std::ops::Range<i64> {
        let utc = DayClock::midnight(chrono_tz::UTC);
        let from = utc.start_of(query.from - Duration::days(2));
        let to = utc.start_of(query.to + Duration::days(3));
        from.div_euclid(QUARTER)..to.div_euclid(QUARTER)
    }

    /// The document counted.
    pub fn finish(self, query: &Query) -> Document {
        let Counting {
            names,
            buckets,
            unmapped,
            zone,
            ..
        } = self;
        let mut total = Acc::default();
        let zone = zone.unwrap_or(chrono_tz::UTC);
        let buckets = buckets
            .into_iter()
            .map(|((hour, date), acc)| {
                total.add(&acc);
                let hour = (query.bucket == Bucket::Hour).then(|| local_hour(hour, zone));
                BucketLines {
                    date,
                    hour: hour.flatten(),
                    groups: acc.lines(query.by, query.goal_percent, &names),
                }
            })
            .collect();
        Document {
            venue: query.venue.clone(),
            from: query.from,
            to: query.to,
            bucket: query.bucket,
            by: query.by,
            goal_percent: query.goal_percent,
            total: total.lines(query.by, query.goal_percent, &names),
            buckets,
            unmapped: unmapped
                .into_iter()
                .map(|((venue, item), milli)| Unmapped {
                    venue,
                    item,
                    quantity: milli as f64 / 1000.0,
                })
                .collect(),
        }
    }
}

/// No beverage (a pour with no keg on its tap), or no tap.
const NONE: u32 = u32::MAX;

/// The venues and beverages of a document, numbered.
#[derive(Default)]
struct Names {
    venues: Vec<Arc<str>>,
    /// Display names: a beverage as first met (kegs are met first).
    beverages: Vec<Arc<str>>,
    /// By name in lower case: beverages match without regard to case.
    index: HashMap<String, u32>,
}

impl Names {
    fn venue(&mut self, venue: &Arc<str>) -> u32 {
        match self.venues.iter().position(|v| v == venue) {
            Some(i) => i as u32,
            None => {
                self.venues.push(venue.clone());
                (self.venues.len() - 1) as u32
            }
        }
    }

    fn beverage(&mut self, name: &str) -> u32 {
        let key = name.to_lowercase();
        if let Some(&i) = self.index.get(&key) {
            return i;
        }
        self.beverages.push(name.into());
        let i = (self.beverages.len() - 1) as u32;
        self.index.insert(key, i);
        i
    }

    fn beverage_name(&self, i: u32) -> Option<Arc<str>> {
        self.beverages.get(i as usize).cloned()
    }
}

/// The serving rule, written once: what `PUT /api/sales/items/{item}` and the log accept.
pub fn check_serving(serving: &Serving) -> Result<(), String> {
    let name = &serving.beverage;
    if name.trim().is_empty() || name.chars().count() > 100 {
        return Err("beverage is a name of 1 to 100 characters".into());
    }
    if !(serving.ml.is_finite() && serving.ml > 0.0 && serving.ml <= MAX_SERVING_ML) {
        return Err(format!(
            "ml is a serving's millilitres, above 0 and at most {MAX_SERVING_ML}"
        ));
    }
    Ok(())
}

/// The longest keg beverage an item's name holds, if any (`Helles Pint`: `Helles`).
fn suggest(item: &str, beverages: &[String]) -> Option<String> {
    let item = item.to_lowercase();
    beverages
        .iter()
        .filter(|b| !b.is_empty() && item.contains(&b.to_lowercase()))
        .max_by_key(|b| b.len())
        .cloned()
}

/// A business date's first and next day's first instant on `clock`, in ms.
fn clock_day(clock: DayClock, date: NaiveDate) -> (i64, i64) {
    (
        clock.start_of(date),
        clock.start_of(date + Duration::days(1)),
    )
}

/// Places quarter hours in buckets on a venue's clock.
struct Placer {
    clock: DayClock,
    bucket: Bucket,
    /// The UTC hour whose offset is known, and that offset in ms (none: it changes within).
    hour: i64,
    offset: Option<i64>,
}

impl Placer {
    fn new(clock: DayClock, bucket: Bucket) -> Placer {
        Placer {
            clock,
            bucket,
            hour: i64::MIN,
            offset: None,
        }
    }

    /// The zone's offset from UTC at `at`, in ms.
    fn offset_at(&self, at: i64) -> i64 {
        let utc = chrono::DateTime::from_timestamp_millis(at).unwrap_or_default();
        let offset = self.clock.zone.offset_from_utc_datetime(&utc.naive_utc());
        i64::from(offset.fix().local_minus_utc()) * 1000
    }

    /// The bucket of quarter `q`: (its first instant for an hour, else 0; its business
    /// date, a week's Monday).
    fn at(&mut self, q: i64) -> (i64, NaiveDate) {
        let at = q * QUARTER;
        let hour = at.div_euclid(3_600_000);
        if hour != self.hour {
            // The same offset at an hour's start and the next's: the whole hour has it
            // (a zone changes it at most once in an hour), which spares three lookups.
            let (start, next) = (
                self.offset_at(hour * 3_600_000),
                self.offset_at((hour + 1) * 3_600_000),
            );
            self.hour = hour;
            self.offset = (start == next).then_some(start);
        }
        let local = at + self.offset.unwrap_or_else(|| self.offset_at(at));
        let days = (local - i64::from(self.clock.starts) * 1000).div_euclid(86_400_000);
        // Days from the common era to 1970-01-01.
        let date = i32::try_from(days + 719_163)
            .ok()
            .and_then(NaiveDate::from_num_days_from_ce_opt)
            .unwrap_or_default();
        match self.bucket {
            Bucket::Hour => (at - local.rem_euclid(3_600_000), date),
            Bucket::Day => (0, date),
            Bucket::Week => (
                0,
                date - Duration::days(i64::from(date.weekday().num_days_from_monday())),
            ),
        }
    }
}

/// An hour bucket's first instant on its venue's clock, as RFC 3339 with the offset.
fn local_hour(at: i64, zone: chrono_tz::Tz) -> Option<String> {
    let utc = chrono::DateTime::from_timestamp_millis(at)?;
    Some(
        utc.with_timezone(&zone)
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
    )
}

/// A bucket's pours and sales, in µl, by numbers [`Names`] gives.
#[derive(Debug, Default)]
struct Acc {
    /// By beverage: (poured, sold), at the beverage's number plus one (0: none). Only
    /// this is kept by beverage: a number is an index, not a hash.
    beverages: Vec<(i64, i64)>,
    /// By tap: by (venue, tap, beverage).
    poured: FxHashMap<(u32, u32, u32), i64>,
    /// By tap: by (venue, beverage).
    sold: FxHashMap<(u32, u32), i64>,
}

impl Acc {
    fn slot(&mut self, bev: u32) -> &mut (i64, i64) {
        let at = if bev == NONE { 0 } else { bev as usize + 1 };
        if at >= self.beverages.len() {
            self.beverages.resize(at + 1, (0, 0));
        }
        &mut self.beverages[at]
    }

    fn pour(&mut self, by: By, venue: u32, tap: u32, bev: u32, ul: i64) {
        match by {
            By::Beverage => self.slot(bev).0 += ul,
            By::Tap => *self.poured.entry((venue, tap, bev)).or_default() += ul,
        }
    }

    fn sell(&mut self, by: By, venue: u32, bev: u32, ul: i64) {
        match by {
            By::Beverage => self.slot(bev).1 += ul,
            By::Tap => *self.sold.entry((venue, bev)).or_default() += ul,
        }
    }

    fn add(&mut self, other: &Acc) {
        if self.beverages.len() < other.beverages.len() {
            self.beverages.resize(other.beverages.len(), (0, 0));
        }
        for (mine, theirs) in self.beverages.iter_mut().zip(&other.beverages) {
            (mine.0, mine.1) = (mine.0 + theirs.0, mine.1 + theirs.1);
        }
        for (key, ul) in &other.poured {
            *self.poured.entry(*key).or_default() += ul;
        }
        for (key, ul) in &other.sold {
            *self.sold.entry(*key).or_default() += ul;
        }
    }

    fn lines(&self, by: By, goal: f64, names: &Names) -> Vec<Line> {
        let mut lines: Vec<Line> = match by {
            By::Beverage => self
                .beverages
                .iter()
                .enumerate()
                .filter(|(_, sums)| sums.0 != 0 || sums.1 != 0)
                .map(|(at, &(poured, sold))| {
                    let mut line = Line::new(poured, sold, goal);
                    line.beverage = Some(
                        at.checked_sub(1)
                            .and_then(|b| names.beverage_name(b as u32)),
                    );
                    line
                })
                .collect(),
            By::Tap => {
                // (venue, tap, beverage of sales no tap poured) -> (poured, sold) µl
                let mut sums: FxHashMap<(u32, u32, u32), (i64, i64)> = FxHashMap::default();
                for (&(venue, tap, _), ul) in &self.poured {
                    sums.entry((venue, tap, NONE)).or_default().0 += ul;
                }
                // The till cannot tell taps apart: a beverage's sales go to the taps that
                // poured it, in proportion; with none, to no tap.
                for (&(venue, bev), &sold) in &self.sold {
                    let taps: Vec<(u32, i64)> = self
                        .poured
                        .iter()
                        .filter(|(key, ul)| key.0 == venue && key.2 == bev && **ul > 0)
                        .map(|(&(_, tap, _), &ul)| (tap, ul))
                        .collect();
                    let poured: i64 = taps.iter().map(|(_, ul)| ul).sum();
                    if poured == 0 {
                        sums.entry((venue, NONE, bev)).or_default().1 += sold;
                        continue;
                    }
                    for (tap, ul) in taps {
                        let share = (i128::from(sold) * i128::from(ul) / i128::from(poured)) as i64;
                        sums.entry((venue, tap, NONE)).or_default().1 += share;
                    }
                }
                sums.into_iter()
                    .map(|((venue, tap, bev), (poured, sold))| {
                        let mut line = Line::new(poured, sold, goal);
                        line.venue = names.venues.get(venue as usize).cloned();
                        line.tap_id = Some((tap != NONE).then_some(tap));
                        line.beverage = (bev != NONE).then(|| names.beverage_name(bev));
                        line
                    })
                    .collect()
            }
        };
        // The most beer lost first.
        lines.sort_by(|a, b| {
            a.variance_ul
                .cmp(&b.variance_ul)
                .then_with(|| a.sort_key().cmp(&b.sort_key()))
        });
        lines
    }
}

/// What a variance is cut into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = VarianceBucket)]
pub enum Bucket {
    /// The venue's wall-clock hours.
    Hour,
    /// Its business days.
    Day,
    /// Monday to Sunday, of business days.
    Week,
}

impl Bucket {
    pub fn parse(text: &str) -> Option<Bucket> {
        match text {
            "hour" => Some(Bucket::Hour),
            "day" => Some(Bucket::Day),
            "week" => Some(Bucket::Week),
            _ => None,
        }
    }
}

/// What a variance's lines are grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = VarianceBy)]
pub enum By {
    Beverage,
    Tap,
}

impl By {
    pub fn parse(text: &str) -> Option<By> {
        match text {
            "beverage" => Some(By::Beverage),
            "tap" => Some(By::Tap),
            _ => None,
        }
    }
}

/// What a variance is asked for.
#[derive(Debug, Clone)]
pub struct Query {
    pub venue: Option<Arc<str>>,
    /// The first and last business day, inclusive.
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub bucket: Bucket,
    pub by: By,
    /// A line is over the goal when its variance is further from zero than this, in per cent.
    pub goal_percent: f64,
}

/// The variance document.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Variance)]
pub struct Document {
    /// The venue it covers (none: every venue, each on its own clock).
    #[schema(value_type = Option<String>)]
    pub venue: Option<Arc<str>>,
    #[schema(value_type = String, format = Date, example = "2026-12-01")]
    #[serde(serialize_with = "as_text")]
    pub from: NaiveDate,
    #[schema(value_type = String, format = Date, example = "2026-12-07")]
    #[serde(serialize_with = "as_text")]
    pub to: NaiveDate,
    pub bucket: Bucket,
    pub by: By,
    #[schema(example = 2.0)]
    pub goal_percent: f64,
    /// The whole range, the most beer lost first.
    pub total: Vec<Line>,
    /// Each bucket with a pour or a sale, oldest first.
    pub buckets: Vec<BucketLines>,
    /// Items sold in the range that map to no beverage: their sales are not in `soldMl`.
    pub unmapped: Vec<Unmapped>,
}

/// One bucket's lines.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = VarianceBucketLines)]
pub struct BucketLines {
    /// Its business day (a week's Monday).
    #[schema(value_type = String, format = Date, example = "2026-12-04")]
    #[serde(serialize_with = "as_text")]
    pub date: NaiveDate,
    /// An hour bucket's start on the venue's clock, with its offset.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "2026-12-04T18:00:00-05:00")]
    pub hour: Option<String>,
    /// The most beer lost first.
    pub groups: Vec<Line>,
}

/// Poured against sold for one beverage or tap.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = VarianceLine)]
pub struct Line {
    /// With `by=beverage`: the beverage (null: poured with no keg on the tap). With
    /// `by=tap`: only on sales no tap poured in the bucket.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub beverage: Option<Option<Arc<str>>>,
    /// With `by=tap`: the tap's venue and id (null: sold, but no tap poured it).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub venue: Option<Arc<str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<u32>)]
    pub tap_id: Option<Option<u32>>,
    pub poured_ml: f64,
    pub sold_ml: f64,
    /// Sold − poured.
    pub variance_ml: f64,
    /// (sold − poured) ÷ poured, in per cent, to two places (null: nothing poured).
    pub variance_percent: Option<f64>,
    /// Further from zero than the goal (or sold with nothing poured).
    pub over_goal: bool,
    #[serde(skip)]
    #[schema(ignore)]
    variance_ul: i64,
}

impl Line {
    fn new(poured_ul: i64, sold_ul: i64, goal: f64) -> Line {
        let variance_ul = sold_ul - poured_ul;
        let percent = (poured_ul > 0)
            .then(|| (variance_ul as f64 * 100.0 / poured_ul as f64 * 100.0).round() / 100.0);
        Line {
            beverage: None,
            venue: None,
            tap_id: None,
            poured_ml: poured_ul as f64 / 1000.0,
            sold_ml: sold_ul as f64 / 1000.0,
            variance_ml: variance_ul as f64 / 1000.0,
            variance_percent: percent,
            over_goal: match percent {
                Some(p) => p.abs() > goal,
                None => sold_ul > 0,
            },
            variance_ul,
        }
    }

    /// Ties broken by key, so that every replica lists them alike.
    fn sort_key(&self) -> (Option<&str>, Option<&str>, Option<u32>) {
        (
            self.beverage.as_ref().and_then(|b| b.as_deref()),
            self.venue.as_deref(),
            self.tap_id.flatten(),
        )
    }
}

/// An item sold that maps to no beverage.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = UnmappedItem)]
pub struct Unmapped {
    #[schema(value_type = String)]
    pub venue: Arc<str>,
    #[schema(value_type = String)]
    pub item: Arc<str>,
    /// How many were sold in the range.
    pub quantity: f64,
}

/// A till's item as `GET /api/sales/items` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = SalesItem)]
pub struct ItemView {
    #[schema(value_type = String)]
    pub venue: Arc<str>,
    #[schema(value_type = String, example = "Helles Pint")]
    pub item: Arc<str>,
    /// What it maps to (null: not mapped; its sales are in no variance).
    #[schema(example = "Helles")]
    pub beverage: Option<String>,
    #[schema(example = 568.0)]
    pub ml: Option<f64>,
    /// How many were sold, ever.
    pub sold: f64,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_sold_at: Option<Timestamp>,
    /// For an unmapped item: a keg's beverage its name holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suggested_beverage: Option<String>,
}

fn as_text<S: serde::Serializer>(date: &NaiveDate, to: S) -> Result<S::Ok, S::Error> {
    to.collect_str(date)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pour::{Flags, Timestamp};

    const DAY: &str = "2026-03-07";

    fn at(text: &str) -> Timestamp {
        Timestamp::parse(text).unwrap()
    }

    fn pour(id: u64, tap_id: u32, volume: f64, when: &str) -> Pour {
        Pour {
            id,
            venue: "main".into(),
            tap_id,
            volume,
            glass: "pint".into(),
            timestamp: at(when),
            flags: Flags::default(),
        }
    }

    fn sale(key: u64, item: &str, milli: i64, when: &str) -> Sale {
        Sale {
            key,
            at: at(when),
            venue: "main".into(),
            item: item.into(),
            milli,
        }
    }

    fn map(ledger: &mut Ledger, item: &str, beverage: &str, ml: f64) {
        ledger.apply(&KegOp::MapItem {
            venue: None,
            item: item.into(),
            serving: Some(Serving {
                beverage: beverage.into(),
                ml,
            }),
            at: Timestamp::from_millis(0),
        });
    }

    fn document(ledger: &Ledger, bucket: Bucket, by: By, zone: chrono_tz::Tz) -> Document {
        let date = NaiveDate::parse_from_str(DAY, "%Y-%m-%d").unwrap();
        let query = Query {
            venue: Some("main".into()),
            from: date,
            to: date,
            bucket,
            by,
            goal_percent: 2.0,
        };
        let names = |keg: u64| Some(["", "Helles", "Pils", "Helles"][keg as usize].to_owned());
        ledger.document(&query, names, |_| DayClock {
            zone,
            starts: 4 * 3600,
        })
    }

    #[test]
    fn an_import_logs_only_lines_never_seen_and_counts_each_once() {
        let mut ledger = Ledger::new("main".into());
        let first = sales_op(
            &[sale(1, "Pint", 1000, "2026-03-07T20:00:00Z")],
            "main",
            Timestamp::from_millis(0),
        );
        assert_eq!(ledger.check(&first).unwrap(), (1, None));
        ledger.apply(&first);
        let both = sales_op(
            &[
                sale(1, "Pint", 1000, "2026-03-07T20:00:00Z"),
                sale(2, "Pint", 1000, "2026-03-07T20:01:00Z"),
                sale(2, "Pint", 1000, "2026-03-07T20:01:00Z"),
            ],
            "main",
            Timestamp::from_millis(0),
        );
        let (new, narrowed) = ledger.check(&both).unwrap();
        assert_eq!(new, 1);
        let Some(KegOp::Sales { rows, venues, .. }) = narrowed else {
            panic!("narrowed to the new line");
        };
        assert_eq!(rows.iter().map(|r| r.0).collect::<Vec<_>>(), [2]);
        // The default venue is stored as none, as pours store it.
        assert_eq!(venues, [Arc::<str>::from("")]);
        assert_eq!(ledger.check(&first), Err(KegError::NothingNew));
        // Applying a line twice (a replay) still counts it once.
        ledger.apply(&both);
        ledger.apply(&both);
        let items = ledger.items(None, None, &[]);
        assert_eq!(items[0].sold, 2.0);
    }

    #[test]
    fn variance_is_sold_against_poured_per_beverage_and_tap() {
        let mut ledger = Ledger::new("main".into());
        // Helles on taps 1 (keg 1) and 3 (keg 3), Pils on tap 2 (keg 2).
        for i in 0..10 {
            ledger.poured(&pour(i, 1, 500.0, "2026-03-07T20:00:00Z"), 1);
            ledger.poured(&pour(100 + i, 2, 400.0, "2026-03-07T21:10:00Z"), 2);
        }
        for i in 0..10 {
            ledger.poured(&pour(200 + i, 3, 500.0, "2026-03-07T20:20:00Z"), 3);
        }
        // A pour deleted is gone; a pour with no keg has no beverage.
        ledger.deleted(&pour(0, 1, 500.0, "2026-03-07T20:00:00Z"), 1);
        ledger.poured(&pour(300, 4, 250.0, "2026-03-07T22:00:00Z"), 0);
        let op = sales_op(
            &[
                sale(1, "Helles Pint", 17_000, "2026-03-07T20:30:00Z"),
                sale(2, "Helles Pitcher", 1_000, "2026-03-07T20:45:00Z"),
                sale(3, "Pils Flight", 1_000, "2026-03-07T21:30:00Z"),
                sale(4, "Pils Half", 6_800, "2026-03-07T21:40:00Z"),
            ],
            "main",
            Timestamp::from_millis(0),
        );
        ledger.apply(&op);
        map(&mut ledger, "Helles Pint", "Helles", 500.0);
        map(&mut ledger, "Helles Pitcher", "HELLES", 1_000.0);
        map(&mut ledger, "Pils Flight", "Pils", 600.0);
        map(&mut ledger, "Pils Half", "Pils", 500.0);
        let day = document(&ledger, Bucket::Day, By::Beverage, chrono_tz::UTC);
        type Row = (Option<Option<Arc<str>>>, f64, f64, Option<f64>, bool);
        let lines: Vec<Row> = day
            .total
            .iter()
            .map(|l| {
                (
                    l.beverage.clone(),
                    l.poured_ml,
                    l.sold_ml,
                    l.variance_percent,
                    l.over_goal,
                )
            })
            .collect();
        // Helles: 9,500 poured; 17 pints and a pitcher sold. Pils: 4,000 poured; a flight
        // (600 ml) and 6.8 halves (3,400 ml) sold. No keg: 250 poured, nothing sold.
        assert_eq!(
            lines,
            [
                (Some(None), 250.0, 0.0, Some(-100.0), true),
                (
                    Some(Some("Helles".into())),
                    9_500.0,
                    9_500.0,
                    Some(0.0),
                    false
                ),
                (
                    Some(Some("Pils".into())),
                    4_000.0,
                    4_000.0,
                    Some(0.0),
                    false
                ),
            ]
        );
        // By tap, Helles' sales are shared by the two taps that poured it.
        let taps = document(&ledger, Bucket::Day, By::Tap, chrono_tz::UTC);
        let shares: Vec<(Option<u32>, f64, f64)> = taps
            .total
            .iter()
            .map(|l| (l.tap_id.flatten(), l.poured_ml, l.sold_ml))
            .collect();
        assert_eq!(
            shares,
            [
                (Some(4), 250.0, 0.0),
                (Some(1), 4_500.0, 4_500.0),
                (Some(2), 4_000.0, 4_000.0),
                (Some(3), 5_000.0, 5_000.0),
            ]
        );
    }

    #[test]
    fn hours_are_the_venue_s_wall_clock_across_a_clock_change() {
        let mut ledger = Ledger::new("main".into());
        // New York springs forward at 02:00 on 8 March: 06:45 UTC is 01:45 EST, 07:15 UTC
        // is 03:15 EDT; both in Saturday's business day, which starts at 04:00.
        ledger.poured(&pour(1, 1, 500.0, "2026-03-08T06:45:00Z"), 1);
        ledger.poured(&pour(2, 1, 500.0, "2026-03-08T07:15:00Z"), 1);
        let hours = document(
            &ledger,
            Bucket::Hour,
            By::Beverage,
            chrono_tz::America::New_York,
        );
        let named: Vec<(String, Option<String>)> = hours
            .buckets
            .iter()
            .map(|b| (b.date.to_string(), b.hour.clone()))
            .collect();
        assert_eq!(
            named,
            [
                (
                    "2026-03-07".into(),
                    Some("2026-03-08T01:00:00-05:00".into())
                ),
                (
                    "2026-03-07".into(),
                    Some("2026-03-08T03:00:00-04:00".into())
                ),
            ]
        );
    }
}
