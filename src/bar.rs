//! The bar as the log has it so far: the kegs and taps ([`Cellar`]), the alerts
//! ([`Alerts`]) and the report's counts ([`Aggregator`]), fed every committed change in log
//! order by the [`Feed`](crate::feed::Feed). Handlers read it here; the stores' writers
//! decide a batch against it.
//!
//! The keg, tap and alert events a change causes share one sequence (`seq`), numbered here
//! in log order, so a subscriber that resumes names one number for all of them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::alert::{AlertEvent, AlertSettings, Alerts};
use crate::decide::Books;
use crate::glass::Catalogue;
use crate::history::{self, History};
use crate::keg::{Cellar, CellarSettings, KegEvent, KegOp, Marks};
use crate::meter::{Mark, Meters};
use crate::pour::{Pour, Timestamp};
use crate::report::{Aggregator, DayClock, Level, Report};
use crate::variance::{self, Ledger};
use crate::venue::{Defaults, Venues};

/// Something a change caused that subscribers hear: a keg or tap event, or an alert's
/// change.
#[derive(Debug, Clone)]
pub enum Notice {
    Keg(Arc<KegEvent>),
    Alert(Arc<AlertEvent>),
}

impl Notice {
    /// Its place in the bar's events' sequence (0: none, an alert's update).
    pub fn seq(&self) -> u64 {
        match self {
            Notice::Keg(e) => e.seq,
            Notice::Alert(e) => e.seq,
        }
    }

    /// The id of the last pour before it.
    pub fn after(&self) -> u64 {
        match self {
            Notice::Keg(e) => e.after,
            Notice::Alert(e) => e.after,
        }
    }
}

/// A cheap-to-clone handle on the bar's state.
#[derive(Clone)]
pub struct Bar {
    // std Mutex: held only for small updates and reads, never across .await.
    state: Arc<Mutex<State>>,
}

/// The state, held (see [`Bar::hold`]): nothing changes it meanwhile.
pub type Held<'a> = MutexGuard<'a, State>;

/// The kegs, taps and venues, the alerts and the report's counts.
pub struct State {
    /// Every venue's pours.
    aggregator: Aggregator,
    /// Each venue's pours, on its clock.
    by_venue: HashMap<Arc<str>, Aggregator>,
    cellar: Cellar,
    alerts: Alerts,
    /// Every venue's business days.
    days: History,
    /// Poured against sold.
    ledger: Ledger,
    /// Where each counter device's count stands.
    meters: Meters,
    /// The last event's seq.
    seq: u64,
    /// Every numbered event so far, for subscribers that resume (a few per keg and alert).
    history: Vec<Notice>,
}

impl State {
    /// Counts a committed pour; the events it causes.
    pub fn poured(&mut self, pour: &Pour, now: Timestamp) -> Vec<Notice> {
        self.aggregator.add(pour, now);
        let rules = self.cellar.venues().rules(&pour.venue);
        let clock = DayClock {
            zone: rules.clock.zone,
            starts: rules.business_day_starts,
        };
        let chain = &self.aggregator;
        let venue = self
            .by_venue
            .entry(pour.venue.clone())
            .or_insert_with(|| chain.of_venue(pour.venue.clone(), clock));
        venue.set_clock(clock);
        venue.add(pour, now);
        let keg = self.cellar.keg_of(pour);
        self.days.poured(pour, clock, keg);
        self.ledger.poured(pour, keg);
        let kegs = self.cellar.poured(pour, now);
        let kegs = self.number(kegs);
        let alerts = self.alerts.poured(pour, &kegs);
        self.notices(kegs, alerts, pour.id)
    }

    /// Uncounts a committed deletion.
    pub fn deleted(&mut self, pour: &Pour) {
        self.aggregator.remove(pour);
        if let Some(venue) = self.by_venue.get_mut(&pour.venue) {
            venue.remove(pour);
        }
        let keg = self.cellar.keg_of(pour);
        self.days.deleted(pour, keg);
        self.ledger.deleted(pour, keg);
        self.cellar.deleted(pour);
    }

    /// Applies a committed operation logged after pour `after`; the events it causes.
    pub fn keg_op(&mut self, op: &KegOp, after: u64) -> Vec<Notice> {
        if let KegOp::Meter {
            meter,
            seq,
            total,
            why,
            pour,
            jump_ml,
            at,
            ..
        } = op
        {
            let logged = crate::meter::Proposal {
                seq: *seq,
                total: *total,
                why: *why,
                pour: *pour,
                jump_ml: *jump_ml,
            };
            self.meters.apply(meter, &logged, *at);
        }
        if op.is_sales() {
            self.ledger.apply(op);
            let alerts = self.variance_alerts(op, after);
            return self.notices(Vec::new(), alerts, after);
        }
        let kegs = self.cellar.apply_op(op, after);
        let kegs = self.number(kegs);
        let alerts = self.alerts.keg_op(op, after, &kegs);
        self.notices(kegs, alerts, after)
    }

    /// The variance alerts an import or a mapping (logged after pour `after`) opens or
    /// resolves: each completed business day it touches, of the week before it was made,
    /// judged as its venue's clock has it then. Only the log decides, so every server
    /// and a replay judge alike.
    fn variance_alerts(
        &mut self,
        op: &KegOp,
        after: u64,
    ) -> Vec<(crate::alert::Change, crate::alert::Alert)> {
        let at = op.at();
        let venues = self.cellar.venues();
        let default = venues.default_id().clone();
        let clock_of = |venue: &str| {
            let rules = venues.rules(venue);
            DayClock {
                zone: rules.clock.zone,
                starts: rules.business_day_starts,
            }
        };
        let mut days: std::collections::BTreeSet<(Arc<str>, chrono::NaiveDate)> =
            std::collections::BTreeSet::new();
        match op {
            KegOp::Sales {
                venues: names,
                rows,
                ..
            } => {
                for row in rows {
                    let Some(name) = names.get(row.2 as usize) else {
                        continue;
                    };
                    let venue = if name.is_empty() { &default } else { name };
                    let day = clock_of(venue).date_of(Timestamp::from_millis(row.1));
                    days.insert((venue.clone(), day));
                }
            }
            KegOp::MapItem { venue, .. } => {
                let venue = venue.clone().unwrap_or_else(|| default.clone());
                let today = clock_of(&venue).date_of(at);
                for back in 1..=VARIANCE_DAYS {
                    days.insert((venue.clone(), today - chrono::Duration::days(back)));
                }
            }
            _ => {}
        }
        let goal = self.alerts.variance_goal();
        let mut judged = Vec::new();
        for (venue, day) in days {
            let clock = clock_of(&venue);
            let today = clock.date_of(at);
            if day >= today || day < today - chrono::Duration::days(VARIANCE_DAYS) {
                continue;
            }
            let query = variance::Query {
                venue: Some(venue.clone()),
                from: day,
                to: day,
                bucket: variance::Bucket::Day,
                by: variance::By::Beverage,
                goal_percent: goal,
            };
            let document = self
                .ledger
                .document(&query, |keg| self.cellar.beverage(keg), |_| clock);
            let (poured, sold) = document.total.iter().fold((0.0, 0.0), |(p, s), line| {
                (p + line.poured_ml, s + line.sold_ml)
            });
            // A day with no sales imported is not judged: the till has not spoken.
            if sold == 0.0 {
                continue;
            }
            judged.push((venue, day, variance_message(day, poured, sold, goal)));
        }
        judged
            .into_iter()
            .flat_map(|(venue, day, over)| {
                self.alerts
                    .variance(venue, day.to_string(), over, at, after)
            })
            .collect()
    }

    fn number(&mut self, events: Vec<KegEvent>) -> Vec<Arc<KegEvent>> {
        events
            .into_iter()
            .map(|mut event| {
                self.seq += 1;
                event.seq = self.seq;
                let event = Arc::new(event);
                self.history.push(Notice::Keg(event.clone()));
                event
            })
            .collect()
    }

    fn notices(
        &mut self,
        kegs: Vec<Arc<KegEvent>>,
        alerts: Vec<(crate::alert::Change, crate::alert::Alert)>,
        after: u64,
    ) -> Vec<Notice> {
        let mut notices: Vec<Notice> = kegs.into_iter().map(Notice::Keg).collect();
        for (change, alert) in alerts {
            let seq = if change.is_kept() {
                self.seq += 1;
                self.seq
            } else {
                0
            };
            let notice = Notice::Alert(Arc::new(AlertEvent {
                change,
                seq,
                after,
                alert,
            }));
            if change.is_kept() {
                self.history.push(notice.clone());
            }
            notices.push(notice);
        }
        notices
    }

    /// The events a resuming subscriber is owed, in order: those with a `seq` above
    /// `seq_above` if it gives one, else those after pour `since` or later (which may
    /// repeat a few it heard: each carries its `seq`). Also the last `seq` so far.
    pub fn owed(&self, since: u64, seq_above: Option<u64>) -> (Vec<Notice>, u64) {
        let owed = self
            .history
            .iter()
            .filter(|e| match seq_above {
                Some(seq) => e.seq() > seq,
                None => e.after() >= since,
            })
            .cloned()
            .collect();
        (owed, self.seq)
    }

    /// The last event's seq (0 before the first).
    pub fn last_seq(&self) -> u64 {
        self.seq
    }

    /// What the kegs have announced and how many events there were, for a compacted
    /// journal.
    pub fn marks(&self) -> Marks {
        Marks {
            events: self.seq,
            ..self.cellar.marks()
        }
    }

    /// The alerts.
    /// Where a counter device's count stands, as the log has it.
    pub fn meter(&self, meter: &str) -> Option<Mark> {
        self.meters.get(meter).cloned()
    }

    pub fn alerts(&self) -> &Alerts {
        &self.alerts
    }

    /// The alerts that grouped more events since the last call, as they are now.
    pub fn alert_updates(&mut self) -> Vec<crate::alert::Alert> {
        self.alerts.take_updates()
    }

    /// What a batch decides against.
    pub fn books(&self) -> Books<'_> {
        Books {
            kegs: &self.cellar,
            alerts: &self.alerts,
            venues: self.cellar.venues(),
            ledger: &self.ledger,
            meters: &self.meters,
        }
    }

    /// How many pours are counted.
    pub fn total_pours(&self) -> u64 {
        self.aggregator.total_pours()
    }

    /// The kegs and taps.
    pub fn cellar(&self) -> &Cellar {
        &self.cellar
    }

    /// The venues.
    pub fn venues(&self) -> &Venues {
        self.cellar.venues()
    }

    /// The history `query` asks for.
    pub fn history(&self, query: &history::Query) -> history::Document {
        self.days.document(query, |keg| self.cellar.beverage(keg))
    }

    /// Counts the part `quarters` of the variance `query` asks for into `counting`, each
    /// venue on its clock as it is now.
    pub fn variance(
        &self,
        query: &variance::Query,
        quarters: std::ops::Range<i64>,
        counting: &mut variance::Counting,
    ) {
        let venues = self.cellar.venues();
        self.ledger.count(
            query,
            quarters,
            counting,
            |keg| self.cellar.beverage(keg),
            |venue| {
                let rules = venues.rules(venue);
                DayClock {
                    zone: rules.clock.zone,
                    starts: rules.business_day_starts,
                }
            },
        )
    }

    /// The till's items of `venue` (none: every venue's); `mapped` filters.
    pub fn sales_items(
        &self,
        venue: Option<&str>,
        mapped: Option<bool>,
    ) -> Vec<variance::ItemView> {
        let mut beverages: Vec<String> = self
            .cellar
            .list(&crate::keg::KegFilter::default())
            .into_iter()
            .filter(|k| venue.is_none_or(|v| *k.venue == *v))
            .map(|k| k.beverage)
            .collect();
        beverages.sort_unstable();
        beverages.dedup();
        self.ledger.items(venue, mapped, &beverages)
    }

    /// The report of `venue` (none: the chain's) as of `now`.
    pub fn report(&self, venue: Option<&str>, now: Timestamp) -> Report {
        let mut report = match venue {
            None => self.aggregator.report(now),
            Some(venue) => match self.by_venue.get(venue) {
                Some(counts) => counts.report(now),
                None => {
                    let rules = self.venues().rules(venue);
                    let clock = DayClock {
                        zone: rules.clock.zone,
                        starts: rules.business_day_starts,
                    };
                    self.aggregator
                        .of_venue(rules.id.clone(), clock)
                        .report(now)
                }
            },
        };
        report.levels = self
            .cellar
            .current(venue)
            .into_iter()
            .map(|keg| Level {
                venue: keg.venue,
                tap_id: keg.tap_id,
                keg_id: keg.id,
                beverage: keg.beverage,
                size_ml: keg.size_ml,
                remaining_ml: keg.remaining_ml,
                percent: keg.percent,
                low: keg.low,
                empty: keg.empty,
            })
            .collect();
        report.open_alerts = self.alerts.open_total(venue);
        report.last_pour_at = self.cellar.last_pour_at(venue);
        report
    }
}

/// How many completed business days before an import or a mapping it is judged for the
/// variance alert: a year of sales imported at once is not a year of alerts.
const VARIANCE_DAYS: i64 = 7;

/// What a business day's variance alert says, if the day is over the goal (`None`: it is
/// within it).
fn variance_message(day: chrono::NaiveDate, poured: f64, sold: f64, goal: f64) -> Option<String> {
    let litres = |ml: f64| format!("{:.2} L", ml / 1000.0);
    if poured <= 0.0 {
        return Some(format!(
            "{day}: {} sold and none poured: a meter offline, or items mapped to the wrong beverage",
            litres(sold)
        ));
    }
    let percent = (sold - poured) / poured * 100.0;
    if percent.abs() <= goal {
        return None;
    }
    let figures = format!(
        "{} poured, {} sold; goal {goal} %",
        litres(poured),
        litres(sold)
    );
    Some(if percent < 0.0 {
        format!(
            "{day}: {:.1} % of the beer poured was never sold ({figures})",
            -percent
        )
    } else {
        format!(
            "{day}: {:.1} % more beer sold than the meters saw ({figures})",
            percent
        )
    })
}

impl Bar {
    /// An empty bar whose report counts days on the clock of the default venue's zone.
    pub fn new(
        catalogue: &Catalogue,
        venues: Defaults,
        kegs: CellarSettings,
        alerts: AlertSettings,
    ) -> Bar {
        let venues = Venues::new(venues);
        let default = venues.default_id().clone();
        let rules = venues.rules(&default);
        let clock = DayClock {
            zone: rules.clock.zone,
            starts: rules.business_day_starts,
        };
        Bar {
            state: Arc::new(Mutex::new(State {
                aggregator: Aggregator::new(catalogue, clock),
                by_venue: HashMap::new(),
                cellar: Cellar::new(kegs, venues),
                alerts: Alerts::new(alerts, default.clone()),
                days: History::new(),
                ledger: Ledger::new(default),
                meters: Meters::default(),
                seq: 0,
                history: Vec::new(),
            })),
        }
    }

    /// The state, held: for a writer deciding a batch against it, or the feed applying a
    /// change and publishing it before anyone reads past it. Briefly: every reader waits.
    pub fn hold(&self) -> Held<'_> {
        // Plain counters and kegs: a panic elsewhere cannot leave them half-updated in a
        // way worse than refusing to serve, so poisoning is ignored.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reads the kegs and taps (briefly: every change waits for it). Mutable, since a
    /// read of the taps forgets pace data that fell out of the hour.
    pub fn cellar<T>(&self, read: impl FnOnce(&mut Cellar) -> T) -> T {
        read(&mut self.hold().cellar)
    }

    /// The current report of `venue` (none: the chain's).
    pub fn report(&self, venue: Option<&str>) -> Report {
        self.hold().report(venue, Timestamp::now())
    }

    /// The types of stored pours that the catalogue does not define, with their pours.
    pub fn retired_glasses(&self) -> Vec<(Arc<str>, u64)> {
        self.hold().aggregator.retired()
    }

    /// Counts a pour found at start-up.
    pub fn recovered(&self, pour: &Pour) {
        self.hold().poured(pour, Timestamp::now());
    }

    /// Uncounts a pour whose deletion was found at start-up.
    pub fn recovered_deletion(&self, pour: &Pour) {
        self.hold().deleted(pour);
    }

    /// Applies a keg operation found at start-up.
    pub fn recovered_keg_op(&self, op: &KegOp, after: u64) {
        self.hold().keg_op(op, after);
    }

    /// Restores which levels the kegs have announced (from a compacted journal).
    pub fn restore_marks(&self, marks: &Marks) {
        let mut state = self.hold();
        state.seq = state.seq.max(marks.events);
        state.cellar.restore(marks);
    }

    /// Reads the venues (briefly: every change waits for it).
    pub fn venues<T>(&self, read: impl FnOnce(&Venues) -> T) -> T {
        read(self.hold().venues())
    }

    /// Reads the alerts (briefly: every change waits for it).
    pub fn alerts<T>(&self, read: impl FnOnce(&Alerts) -> T) -> T {
        read(&self.hold().alerts)
    }

    /// Takes the alerts of a compacted journal's snapshot in place of those derived from
    /// the records before it.
    pub fn restore_alerts(&self, snapshot: &str) -> Result<(), serde_json::Error> {
        self.hold().alerts.restore(snapshot)
    }
}
