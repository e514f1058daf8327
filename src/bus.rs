//! The in-process event bus: every stored pour, every deletion and every report.
//!
//! Observers: the report [`Aggregator`] and the kegs' [`Cellar`] are applied synchronously
//! on publish (little work per event, so they can never fall behind or miss an event, and
//! the report and levels are always exact), and the WebSocket hub reads a bounded broadcast
//! channel in its own task, so that publishing never waits on subscribers. The keg events
//! a pour or an operation causes are published right after it.
//!
//! Stores publish while they still hold their write lock, so events leave in commit order
//! (pour ids ascending); the aggregator lock is held across the send so that a report never
//! reaches the channel ahead of a pour it already counts.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::broadcast;

use crate::glass::Catalogue;
use crate::keg::{Cellar, CellarSettings, KegEvent, KegOp};
use crate::pour::{Pour, Timestamp};
use crate::report::{Aggregator, Level, Report};

/// Something that happened to the store, or a report.
#[derive(Debug, Clone)]
pub enum Event {
    /// A pour was stored.
    Poured(Pour),
    /// A pour was deleted; the whole pour so that observers can undo its effects.
    Deleted(Pour),
    /// A report, pushed at the interval or every N pours.
    Report(Arc<Report>),
    /// Something happened to a keg.
    Keg(Arc<KegEvent>),
}

/// A cheap-to-clone handle on the bus.
#[derive(Clone)]
pub struct Bus {
    inner: Arc<Inner>,
}

struct Inner {
    sender: broadcast::Sender<Event>,
    // std Mutex: held only for small updates and non-blocking sends, never across .await.
    state: Mutex<State>,
    report_every: u64,
}

/// The kegs, held (see [`Bus::kegs`]).
pub struct Kegs<'a>(MutexGuard<'a, State>);

impl std::ops::Deref for Kegs<'_> {
    type Target = Cellar;

    fn deref(&self) -> &Cellar {
        &self.0.cellar
    }
}

/// What the bus keeps up to date as events pass.
struct State {
    aggregator: Aggregator,
    cellar: Cellar,
}

impl State {
    fn report(&self, now: Timestamp) -> Report {
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

impl Bus {
    /// A bus whose channel holds up to `capacity` events for a slow reader; with
    /// `report_every > 0` a report is published after every that many pours. Reports
    /// count days on the clock of `zone`.
    pub fn new(
        catalogue: &Catalogue,
        zone: chrono_tz::Tz,
        kegs: CellarSettings,
        capacity: usize,
        report_every: u64,
    ) -> Bus {
        let (sender, _) = broadcast::channel(capacity.max(1));
        Bus {
            inner: Arc::new(Inner {
                sender,
                state: Mutex::new(State {
                    aggregator: Aggregator::new(catalogue, zone),
                    cellar: Cellar::new(kegs),
                }),
                report_every,
            }),
        }
    }

    /// A new reader of the channel, seeing events published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.sender.subscribe()
    }

    /// Publishes a pour (call in commit order), then the keg events it causes.
    pub fn poured(&self, pour: Pour) {
        let mut state = self.state();
        let now = Timestamp::now();
        state.aggregator.add(&pour, now);
        let events = state.cellar.poured(&pour, now);
        // No receiver is not an error: nobody is listening yet.
        let _ = self.inner.sender.send(Event::Poured(pour));
        self.send_keg_events(events);
        let every = self.inner.report_every;
        if every > 0 && state.aggregator.total_pours().is_multiple_of(every) {
            let report = Arc::new(state.report(now));
            let _ = self.inner.sender.send(Event::Report(report));
        }
    }

    fn send_keg_events(&self, events: Vec<Arc<KegEvent>>) {
        for event in events {
            let _ = self.inner.sender.send(Event::Keg(event));
        }
    }

    /// Counts a pour found at start-up, without publishing it.
    pub fn recovered(&self, pour: &Pour) {
        let mut state = self.state();
        let now = Timestamp::now();
        state.aggregator.add(pour, now);
        state.cellar.poured(pour, now);
    }

    /// Uncounts a pour whose deletion was found at start-up.
    pub fn recovered_deletion(&self, pour: &Pour) {
        let mut state = self.state();
        state.aggregator.remove(pour);
        state.cellar.deleted(pour);
    }

    /// Publishes a deletion.
    pub fn deleted(&self, pour: Pour) {
        let mut state = self.state();
        state.aggregator.remove(&pour);
        state.cellar.deleted(&pour);
        let _ = self.inner.sender.send(Event::Deleted(pour));
    }

    /// Applies a keg operation logged after pour `after` and publishes what it caused;
    /// returns those events.
    pub fn keg_op(&self, op: &KegOp, after: u64) -> Vec<Arc<KegEvent>> {
        let mut state = self.state();
        let events = state.cellar.apply_op(op, after);
        self.send_keg_events(events.clone());
        events
    }

    /// Applies a keg operation found at start-up, without publishing.
    pub fn recovered_keg_op(&self, op: &KegOp, after: u64) {
        self.state().cellar.apply_op(op, after);
    }

    /// Reads the kegs (briefly: every publish waits for it).
    pub fn cellar<T>(&self, read: impl FnOnce(&mut Cellar) -> T) -> T {
        read(&mut self.state().cellar)
    }

    /// The kegs, held: for a store's writer deciding a batch, which publishes nothing
    /// until it lets go.
    pub fn kegs(&self) -> Kegs<'_> {
        Kegs(self.state())
    }

    /// Publishes the current report and returns it.
    pub fn publish_report(&self) -> Arc<Report> {
        let state = self.state();
        let report = Arc::new(state.report(Timestamp::now()));
        let _ = self.inner.sender.send(Event::Report(report.clone()));
        report
    }

    /// The current report, without publishing it.
    pub fn report(&self) -> Report {
        self.state().report(Timestamp::now())
    }

    /// The types of stored pours that the catalogue does not define, with their pours.
    pub fn retired_glasses(&self) -> Vec<(Arc<str>, u64)> {
        self.state().aggregator.retired()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Plain counters and kegs: a panic elsewhere cannot leave them half-updated in a
        // way worse than refusing to serve, so poisoning is ignored.
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}
