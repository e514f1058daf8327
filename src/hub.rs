//! WebSocket fan-out: one task turns each bus event into a frame, once, and offers the same
//! bytes to every subscriber's bounded queue.
//!
//! The hub never waits on a subscriber. A subscriber whose queue is full is a slow consumer:
//! it is removed, told why through its kick channel, and counted; the others go on. If the
//! hub itself falls behind the bus (the bus channel overflowed), every subscriber has missed
//! events, so every one is kicked with a reason that tells it to resume with `since`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use dashmap::DashMap;
use serde::Serialize;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_tungstenite::tungstenite::Bytes;
use tokio_tungstenite::tungstenite::protocol::frame::{
    self as ws,
    coding::{Data, OpCode},
};
use tokio_util::sync::CancellationToken;

use crate::bus::Event;
use crate::pour::Pour;
use crate::report::Report;

/// One serialized event, shared by every subscriber that gets it.
#[derive(Debug, Clone)]
pub struct Frame {
    /// The pour's id for pour events, so that a replaying subscriber can drop duplicates.
    pub pour_id: Option<u64>,
    /// The whole WebSocket text frame, header and JSON. Server frames are not masked, so
    /// every subscriber is sent these very bytes: nothing is encoded per subscriber.
    pub wire: Bytes,
    json_at: usize,
}

/// The event frames as they go on the wire.
#[derive(Serialize)]
#[serde(tag = "event", rename_all = "camelCase")]
enum Wire<'a> {
    Pour { beer: &'a Pour },
    Deleted { id: u64 },
    Report { report: &'a Report },
}

impl Frame {
    /// Serializes `event`: once per event, however many subscribers get it.
    pub fn of(event: &Event) -> Frame {
        let (pour_id, wire) = match event {
            Event::Poured(pour) => (Some(pour.id), Wire::Pour { beer: pour }),
            Event::Deleted(pour) => (None, Wire::Deleted { id: pour.id }),
            Event::Report(report) => (None, Wire::Report { report }),
        };
        Frame::text(pour_id, to_json(&wire))
    }

    /// The frame for one pour, as replayed to a single subscriber.
    pub fn pour(pour: &Pour) -> Frame {
        Frame::text(Some(pour.id), to_json(&Wire::Pour { beer: pour }))
    }

    fn text(pour_id: Option<u64>, json: String) -> Frame {
        let payload = json.len();
        let mut wire = Vec::with_capacity(payload + 10);
        // Writing into a Vec cannot fail.
        if let Err(e) = ws::Frame::message(json, OpCode::Data(Data::Text), true).format(&mut wire) {
            log::error!("event frame encoding failed: {e}");
        }
        Frame {
            pour_id,
            json_at: wire.len().saturating_sub(payload),
            wire: wire.into(),
        }
    }

    /// The JSON text the frame carries.
    pub fn json(&self) -> &[u8] {
        &self.wire[self.json_at..]
    }
}

/// Serializes a value made only of strings, numbers and sequences, which cannot fail.
pub fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|e| {
        log::error!("event serialization failed: {e}");
        String::from("{}")
    })
}

/// Which pour events a subscriber wants.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    /// "I am this tap": its own pours are not sent back.
    pub own_tap: Option<u32>,
    /// Glass names to send; empty means all.
    pub glasses: Vec<Arc<str>>,
}

impl Filter {
    /// Whether `pour` should be sent to this subscriber.
    pub fn admits(&self, pour: &Pour) -> bool {
        self.own_tap != Some(pour.tap_id)
            && (self.glasses.is_empty() || self.glasses.contains(&pour.glass))
    }
}

/// Why the hub ended a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kick {
    /// Its queue filled up: it reads slower than events arrive.
    SlowConsumer,
    /// The hub fell behind the bus and the subscriber missed events.
    Overloaded,
}

struct Entry {
    queue: mpsc::Sender<Frame>,
    filter: Filter,
    kick: oneshot::Sender<Kick>,
}

/// A cheap-to-clone handle on the subscriber registry.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

struct Inner {
    subscribers: DashMap<u64, Entry>,
    /// Connections admitted (from handshake to close), for the subscriber cap.
    admitted: AtomicUsize,
    next_id: AtomicU64,
    queue_capacity: usize,
    dropped_slow: AtomicU64,
}

/// A registered subscriber's end: its queue and its kick notice. Dropping it unregisters.
pub struct Subscription {
    pub frames: mpsc::Receiver<Frame>,
    pub kicked: oneshot::Receiver<Kick>,
    id: u64,
    hub: Hub,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.inner.subscribers.remove(&self.id);
    }
}

/// A subscriber's place under the cap; see [`Hub::admit`].
pub struct Slot(Hub);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.inner.admitted.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Hub {
    /// A hub whose subscribers each queue up to `queue_capacity` frames.
    pub fn new(queue_capacity: usize) -> Hub {
        Hub {
            inner: Arc::new(Inner {
                subscribers: DashMap::new(),
                admitted: AtomicUsize::new(0),
                next_id: AtomicU64::new(1),
                queue_capacity: queue_capacity.max(1),
                dropped_slow: AtomicU64::new(0),
            }),
        }
    }

    /// Registers a subscriber: every event the hub handles from now on is offered to it.
    pub fn subscribe(&self, filter: Filter) -> Subscription {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (queue, frames) = mpsc::channel(self.inner.queue_capacity);
        let (kick, kicked) = oneshot::channel();
        self.inner.subscribers.insert(
            id,
            Entry {
                queue,
                filter,
                kick,
            },
        );
        Subscription {
            frames,
            kicked,
            id,
            hub: self.clone(),
        }
    }

    /// Admits one more connection if fewer than `max` are admitted; the slot is given back
    /// when the returned guard drops.
    pub fn admit(&self, max: usize) -> Option<Slot> {
        let admitted = self.inner.admitted.fetch_add(1, Ordering::AcqRel);
        let slot = Slot(self.clone());
        (admitted < max).then_some(slot)
    }

    /// Subscribers connected now.
    pub fn len(&self) -> usize {
        self.inner.subscribers.len()
    }

    /// Whether nobody is subscribed.
    pub fn is_empty(&self) -> bool {
        self.inner.subscribers.is_empty()
    }

    /// Subscribers dropped as slow consumers since start.
    pub fn dropped_slow(&self) -> u64 {
        self.inner.dropped_slow.load(Ordering::Relaxed)
    }

    /// Offers one event to every subscriber; never waits.
    pub fn deliver(&self, event: &Event) {
        let frame = Frame::of(event);
        let mut slow = Vec::new();
        for entry in self.inner.subscribers.iter() {
            if let Event::Poured(pour) = event
                && !entry.filter.admits(pour)
            {
                continue;
            }
            match entry.queue.try_send(frame.clone()) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => slow.push(*entry.key()),
                // The subscriber is going away; its Subscription drop unregisters it.
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
        // Removed after the iteration: removing while iterating a DashMap deadlocks.
        for id in slow {
            self.kick(id, Kick::SlowConsumer);
        }
    }

    fn kick(&self, id: u64, why: Kick) {
        if let Some((_, entry)) = self.inner.subscribers.remove(&id) {
            if why == Kick::SlowConsumer {
                self.inner.dropped_slow.fetch_add(1, Ordering::Relaxed);
                crate::metrics::subscriber_dropped_slow();
                log::warn!("subscriber {id} dropped as a slow consumer");
            }
            let _ = entry.kick.send(why);
        }
    }

    /// Fans out bus events until `shutdown` or the bus closes.
    pub async fn run(self, mut events: broadcast::Receiver<Event>, shutdown: CancellationToken) {
        const YIELD_EVERY: u32 = 16;
        let mut since_yield = 0;
        loop {
            let event = tokio::select! {
                _ = shutdown.cancelled() => return,
                event = events.recv() => event,
            };
            match event {
                Ok(event) => {
                    self.deliver(&event);
                    // Let the writers run every few events: a burst of queued events would
                    // otherwise be offered all at once (up to the scheduler's budget, 128)
                    // and could fill a short queue of a subscriber that keeps up perfectly
                    // well. Not after every event: under load that starves the hub itself.
                    since_yield += 1;
                    if since_yield == YIELD_EVERY {
                        since_yield = 0;
                        tokio::task::yield_now().await;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    log::error!(
                        "WebSocket hub fell {missed} events behind; disconnecting every subscriber so they resume with since"
                    );
                    let ids: Vec<u64> = self.inner.subscribers.iter().map(|e| *e.key()).collect();
                    for id in ids {
                        self.kick(id, Kick::Overloaded);
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pour::Timestamp;

    fn pour(id: u64, tap_id: u32, glass: &str) -> Pour {
        Pour {
            id,
            tap_id,
            volume: 500.0,
            glass: glass.into(),
            timestamp: Timestamp::from_millis(0),
        }
    }

    #[test]
    fn filter_suppresses_own_tap_and_other_glasses() {
        let f = Filter {
            own_tap: Some(3),
            glasses: vec!["pint".into()],
        };
        assert!(f.admits(&pour(1, 2, "pint")));
        assert!(!f.admits(&pour(1, 3, "pint")));
        assert!(!f.admits(&pour(1, 2, "half")));
        assert!(Filter::default().admits(&pour(1, 3, "half")));
    }

    #[test]
    fn frames_are_the_documented_json() {
        let f = Frame::of(&Event::Poured(pour(17, 3, "pint")));
        assert_eq!(f.pour_id, Some(17));
        assert_eq!(
            f.json(),
            br#"{"event":"pour","beer":{"id":17,"tapId":3,"volume":500.0,"type":"pint","timestamp":"1970-01-01T00:00:00.000Z"}}"#
        );
        let f = Frame::of(&Event::Deleted(pour(17, 3, "pint")));
        assert_eq!(f.json(), br#"{"event":"deleted","id":17}"#);
        // A final, unmasked text frame with a 7-bit length.
        assert_eq!(&f.wire[..2], &[0x81, f.json().len() as u8]);
    }

    #[test]
    fn a_full_queue_kicks_only_that_subscriber() {
        let hub = Hub::new(2);
        let mut slow = hub.subscribe(Filter::default());
        let mut fast = hub.subscribe(Filter::default());
        for id in 1..=3 {
            hub.deliver(&Event::Poured(pour(id, 1, "pint")));
            while let Ok(frame) = fast.frames.try_recv() {
                assert!(frame.pour_id.is_some());
            }
        }
        assert_eq!(slow.kicked.try_recv(), Ok(Kick::SlowConsumer));
        assert!(fast.kicked.try_recv().is_err());
        assert_eq!((hub.len(), hub.dropped_slow()), (1, 1));
        drop(fast);
        assert!(hub.is_empty());
    }

    #[tokio::test]
    async fn a_hub_that_falls_behind_the_bus_kicks_everyone_to_resume() {
        let bus = crate::bus::Bus::new(&crate::glass::Catalogue::default(), 2, 0);
        let hub = Hub::new(16);
        let events = bus.subscribe();
        let mut subscriber = hub.subscribe(Filter::default());
        for id in 1..=5 {
            bus.poured(pour(id, 1, "pint"));
        }
        let shutdown = CancellationToken::new();
        let running = tokio::spawn(hub.clone().run(events, shutdown.clone()));
        assert_eq!((&mut subscriber.kicked).await, Ok(Kick::Overloaded));
        assert!(hub.is_empty());
        shutdown.cancel();
        running.await.unwrap();
    }
}
