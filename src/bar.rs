//! The bar as the log has it so far: the kegs and taps ([`Cellar`]) and the report's
//! counts ([`Aggregator`]), fed every committed change in log order by the
//! [`Feed`](crate::feed::Feed). Handlers read it here; the stores' writers read the kegs
//! here to decide a batch.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::glass::Catalogue;
use crate::keg::{Cellar, CellarSettings, KegEvent, KegOp, Marks};
use crate::pour::{Pour, Timestamp};
use crate::report::{Aggregator, Level, Report};

/// A cheap-to-clone handle on the bar's state.
#[derive(Clone)]
pub struct Bar {
    // std Mutex: held only for small updates and reads, never across .await.
    state: Arc<Mutex<State>>,
}

/// The state, held (see [`Bar::hold`]): nothing changes it meanwhile.
pub type Held<'a> = MutexGuard<'a, State>;

/// The kegs and the report's counts.
pub struct State {
    aggregator: Aggregator,
    cellar: Cellar,
}

impl State {
    /// Counts a committed pour; the keg events it causes.
    pub fn poured(&mut self, pour: &Pour, now: Timestamp) -> Vec<Arc<KegEvent>> {
        self.aggregator.add(pour, now);
        self.cellar.poured(pour, now)
    }

    /// Uncounts a committed deletion.
    pub fn deleted(&mut self, pour: &Pour) {
        self.aggregator.remove(pour);
        self.cellar.deleted(pour);
    }

    /// Applies a committed keg operation logged after pour `after`; the events it causes.
    pub fn keg_op(&mut self, op: &KegOp, after: u64) -> Vec<Arc<KegEvent>> {
        self.cellar.apply_op(op, after)
    }

    /// How many pours are counted.
    pub fn total_pours(&self) -> u64 {
        self.aggregator.total_pours()
    }

    /// The kegs and taps.
    pub fn cellar(&self) -> &Cellar {
        &self.cellar
    }

    /// The report as of `now`.
    pub fn report(&self, now: Timestamp) -> Report {
        let mut report = self.aggregator.report(now);
        report.levels = self
            .cellar
            .current()
            .into_iter()
            .map(|keg| Level {
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
        report
    }
}

impl Bar {
    /// An empty bar whose report counts days on the clock of `zone`.
    pub fn new(catalogue: &Catalogue, zone: chrono_tz::Tz, kegs: CellarSettings) -> Bar {
        Bar {
            state: Arc::new(Mutex::new(State {
                aggregator: Aggregator::new(catalogue, zone),
                cellar: Cellar::new(kegs),
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

    /// The current report.
    pub fn report(&self) -> Report {
        self.hold().report(Timestamp::now())
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
        self.hold().cellar.restore(marks);
    }
}
