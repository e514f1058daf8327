//! The in-process event bus: every stored pour, every deletion and every report.
//!
//! Two observers, as in the prototype: the report [`Aggregator`] is applied synchronously on
//! publish (O(1) per event, so it can never fall behind or miss an event and the report is
//! always exact), and the WebSocket hub reads a bounded broadcast channel in its own task, so
//! that publishing never waits on subscribers.
//!
//! Stores publish while they still hold their write lock, so events leave in commit order
//! (pour ids ascending); the aggregator lock is held across the send so that a report never
//! reaches the channel ahead of a pour it already counts.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::broadcast;

use crate::glass::Catalogue;
use crate::pour::{Pour, Timestamp};
use crate::report::{Aggregator, Report};

/// Something that happened to the store, or a report.
#[derive(Debug, Clone)]
pub enum Event {
    /// A pour was stored.
    Poured(Pour),
    /// A pour was deleted; the whole pour so that observers can undo its effects.
    Deleted(Pour),
    /// A report, pushed at the interval or every N pours.
    Report(Arc<Report>),
}

/// A cheap-to-clone handle on the bus.
#[derive(Clone)]
pub struct Bus {
    inner: Arc<Inner>,
}

struct Inner {
    sender: broadcast::Sender<Event>,
    // std Mutex: held only for O(1) updates and a non-blocking send, never across .await.
    aggregator: Mutex<Aggregator>,
    report_every: u64,
}

impl Bus {
    /// A bus whose channel holds up to `capacity` events for a slow reader; with
    /// `report_every > 0` a report is published after every that many pours.
    pub fn new(catalogue: &Catalogue, capacity: usize, report_every: u64) -> Bus {
        let (sender, _) = broadcast::channel(capacity.max(1));
        Bus {
            inner: Arc::new(Inner {
                sender,
                aggregator: Mutex::new(Aggregator::new(catalogue)),
                report_every,
            }),
        }
    }

    /// A new reader of the channel, seeing events published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.sender.subscribe()
    }

    /// Publishes a pour (call in commit order).
    pub fn poured(&self, pour: Pour) {
        let mut aggregator = self.aggregator();
        let now = Timestamp::now();
        aggregator.add(&pour, now);
        let _ = self.inner.sender.send(Event::Poured(pour));
        let every = self.inner.report_every;
        if every > 0 && aggregator.total_pours().is_multiple_of(every) {
            let report = Arc::new(aggregator.report(now));
            // No receiver is not an error: nobody is listening yet.
            let _ = self.inner.sender.send(Event::Report(report));
        }
    }

    /// Counts a pour found at start-up, without publishing it.
    pub fn recovered(&self, pour: &Pour) {
        self.aggregator().add(pour, Timestamp::now());
    }

    /// Uncounts a pour whose deletion was found at start-up.
    pub fn recovered_deletion(&self, pour: &Pour) {
        self.aggregator().remove(pour);
    }

    /// Publishes a deletion.
    pub fn deleted(&self, pour: Pour) {
        let mut aggregator = self.aggregator();
        aggregator.remove(&pour);
        let _ = self.inner.sender.send(Event::Deleted(pour));
    }

    /// Publishes the current report and returns it.
    pub fn publish_report(&self) -> Arc<Report> {
        let aggregator = self.aggregator();
        let report = Arc::new(aggregator.report(Timestamp::now()));
        let _ = self.inner.sender.send(Event::Report(report.clone()));
        report
    }

    /// The current report, without publishing it.
    pub fn report(&self) -> Report {
        self.aggregator().report(Timestamp::now())
    }

    /// The types of stored pours that the catalogue does not define, with their pours.
    pub fn retired_glasses(&self) -> Vec<(Arc<str>, u64)> {
        self.aggregator().retired()
    }

    fn aggregator(&self) -> MutexGuard<'_, Aggregator> {
        // The aggregator holds plain counters: a panic elsewhere cannot leave it half-updated
        // in a way worse than refusing to serve, so poisoning is ignored.
        self.inner
            .aggregator
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}
