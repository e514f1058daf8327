//! The in-process event bus: a bounded broadcast channel of every stored pour, deletion,
//! keg event, alert change and report, in commit order. It carries events and keeps nothing: the
//! [`Feed`](crate::feed::Feed) publishes on it, the WebSocket hub reads it in its own
//! task, so publishing never waits on subscribers.

use std::sync::Arc;

use tokio::sync::broadcast;

use crate::alert::AlertEvent;
use crate::keg::KegEvent;
use crate::pour::Pour;
use crate::report::Report;

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
    /// An alert opened, grouped one more event, was acknowledged or resolved.
    Alert(Arc<AlertEvent>),
}

/// A cheap-to-clone handle on the bus.
#[derive(Clone)]
pub struct Bus {
    sender: broadcast::Sender<Event>,
}

impl Bus {
    /// A bus whose channel holds up to `capacity` events for a slow reader.
    pub fn new(capacity: usize) -> Bus {
        let (sender, _) = broadcast::channel(capacity.max(1));
        Bus { sender }
    }

    /// A new reader of the channel, seeing events published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.sender.subscribe()
    }

    /// Sends an event to every reader.
    pub fn send(&self, event: Event) {
        // No receiver is not an error: nobody is listening yet.
        let _ = self.sender.send(event);
    }
}
