//! WebSocket fan-out. Each hub thread (one per core, each with its shard of the
//! subscribers) turns every bus event into a frame once and sweeps its subscribers in a
//! circle, writing each, in one system call, the frames it is owed.
//!
//! Each subscriber's bytes go through its [`Lane`] (the `lane` module owns the way to the
//! socket): written by the hub directly while the socket takes them, queued for the
//! subscriber's own task when it does not. The hub keeps the roster and the sweep.
//!
//! The hub never waits on a subscriber. A subscriber whose queue is full is a slow consumer:
//! it is removed, told why through its kick channel, and counted; the others go on. If the
//! hub itself falls behind the bus (the bus channel overflowed), every subscriber has missed
//! events, so every one is kicked with a reason that tells it to resume with `since`.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use tokio::net::TcpStream;
use tokio::sync::{broadcast, oneshot};
use tokio_tungstenite::tungstenite::Bytes;
use tokio_util::sync::CancellationToken;

use crate::bar::Notice;
use crate::bus::{Bus, Event};
use crate::frame::Frame;
use crate::lane::{Lane, Offer, join};
use crate::pour::Pour;

/// The shortest time between the starts of two sweeps of fan-out.
const LINGER: Duration = Duration::from_millis(1);

/// Which events a subscriber wants.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    /// "I am this tap": its own pours are not sent back.
    pub own_tap: Option<u32>,
    /// Glass names to send; empty means all.
    pub glasses: Vec<Arc<str>>,
    /// The venues whose events and reports to send (sorted); none: every venue's events
    /// and the chain's report.
    pub venues: Option<Vec<Arc<str>>>,
}

impl Filter {
    /// Whether `pour` should be sent to this subscriber.
    pub fn admits(&self, pour: &Pour) -> bool {
        self.own_tap != Some(pour.tap_id)
            && (self.glasses.is_empty() || self.glasses.contains(&pour.glass))
            && self.sees(Some(&pour.venue))
    }

    /// Whether something of `venue` (none: the chain's) is for this subscriber.
    fn sees(&self, venue: Option<&Arc<str>>) -> bool {
        match (&self.venues, venue) {
            (None, _) | (_, None) => true,
            (Some(venues), Some(venue)) => venues.contains(venue),
        }
    }

    /// Whether `event` should be sent to this subscriber. A report goes to those who
    /// follow what it counts: the chain's to the unfiltered, a venue's to its followers.
    pub fn admits_event(&self, event: &Event) -> bool {
        match event {
            Event::Poured(pour) => self.admits(pour),
            Event::Deleted(pour) => self.sees(Some(&pour.venue)),
            Event::Keg(keg) => self.sees(Some(&keg.venue)),
            Event::Alert(alert) => self.sees(alert.alert.venue.as_ref()),
            Event::Report(report) => match (&self.venues, &report.venue) {
                (None, None) => true,
                (Some(venues), Some(venue)) => venues.contains(venue),
                _ => false,
            },
        }
    }

    /// Whether a replayed notice should be sent to this subscriber.
    pub fn admits_notice(&self, notice: &Notice) -> bool {
        match notice {
            Notice::Keg(keg) => self.sees(Some(&keg.venue)),
            Notice::Alert(alert) => self.sees(alert.alert.venue.as_ref()),
        }
    }

    /// Whether it takes every event, as most subscribers do.
    fn takes_all(&self) -> bool {
        self.own_tap.is_none() && self.glasses.is_empty() && self.venues.is_none()
    }
}

/// Why the hub ended a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kick {
    /// Its queue filled up: it reads slower than events arrive.
    SlowConsumer,
    /// The hub fell behind the bus and the subscriber missed events.
    Overloaded,
    /// The credential it subscribed with was revoked.
    Revoked,
}

struct Entry {
    lane: Arc<Lane>,
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
    /// Bumped on every subscribe and unsubscribe, so the hub knows to re-read the map.
    version: AtomicU64,
    /// Connections admitted (from handshake to close), for the subscriber cap.
    admitted: AtomicUsize,
    next_id: AtomicU64,
    queue_capacity: usize,
    dropped_slow: AtomicU64,
}

/// A registered subscriber's end: its lane and its kick notice. Dropping it unregisters.
pub struct Subscription {
    pub lane: Arc<Lane>,
    pub kicked: oneshot::Receiver<Kick>,
    id: u64,
    hub: Hub,
}

impl Subscription {
    /// The subscriber's number, unique in this process.
    pub fn id(&self) -> u64 {
        self.id
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.lane.close();
        self.hub.inner.subscribers.remove(&self.id);
        self.hub.inner.version.fetch_add(1, Ordering::Release);
    }
}

/// A subscriber's place under the cap; see [`Hub::admit`].
pub struct Slot(Hub);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.inner.admitted.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One hub thread's state: its copy of its shard's subscribers (delivering walks it without
/// touching the map's locks, which connecting and leaving subscribers take), each with the
/// next event it is owed, and the events some subscriber is still owed.
///
/// The hub sweeps its subscribers in a circle. Each, when its turn comes, is written every
/// event it is owed, in one system call; events that arrive during a sweep are taken in
/// every 64 subscribers, so the rest of the sweep already carries them. An event therefore
/// waits at most about one sweep, not for the sweep in progress to end and then for its
/// own turn in the next.
struct Sweep {
    shard: Shard,
    version: u64,
    members: Vec<Member>,
    /// Events by sequence number, from `base` on.
    log: VecDeque<Item>,
    base: u64,
    /// The sequence number of the next event taken from the bus.
    next: u64,
    /// `next` at the last refresh: a subscriber that joins is owed everything from here,
    /// since it registered before the next refresh but perhaps after these were taken.
    /// (Pours among them that predate it are below its floor and not sent.)
    since_refresh: u64,
}

struct Member {
    id: u64,
    lane: Arc<Lane>,
    filter: Filter,
    /// The next event it is owed.
    cursor: u64,
}

struct Item {
    event: Event,
    /// Serialized when a subscriber is first owed it: an event no subscriber of this
    /// thread follows (a venue's report nobody watches, say) costs nothing.
    frame: std::cell::OnceCell<Frame>,
}

impl Item {
    fn frame(&self) -> &Frame {
        self.frame.get_or_init(|| Frame::of(&self.event))
    }
}

impl Sweep {
    fn new(shard: Shard) -> Sweep {
        Sweep {
            shard,
            version: 0,
            members: Vec::new(),
            log: VecDeque::new(),
            base: 0,
            next: 0,
            since_refresh: 0,
        }
    }

    fn append(&mut self, events: impl IntoIterator<Item = Event>) {
        for event in events {
            self.log.push_back(Item {
                event,
                frame: std::cell::OnceCell::new(),
            });
            self.next += 1;
        }
    }

    fn caught_up(&self) -> bool {
        self.members.iter().all(|m| m.cursor >= self.next)
    }

    /// Drops what every subscriber has been sent (and no joining one can be owed).
    fn trim(&mut self) {
        let keep_from = self
            .members
            .iter()
            .map(|m| m.cursor)
            .min()
            .unwrap_or(self.next)
            .min(self.since_refresh);
        while self.base < keep_from && self.log.pop_front().is_some() {
            self.base += 1;
        }
    }
}

/// Which subscribers one hub thread writes to: those whose id is `index` modulo `count`.
/// One thread per core, so that writing to sockets is not bounded by one core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

impl Shard {
    /// Every subscriber, for a single hub thread.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    fn has(self, id: u64) -> bool {
        id % self.count.max(1) == self.index
    }
}

impl Hub {
    /// A hub whose subscribers each queue up to `queue_capacity` frames.
    pub fn new(queue_capacity: usize) -> Hub {
        Hub {
            inner: Arc::new(Inner {
                subscribers: DashMap::new(),
                version: AtomicU64::new(1),
                admitted: AtomicUsize::new(0),
                next_id: AtomicU64::new(1),
                queue_capacity: queue_capacity.max(1),
                dropped_slow: AtomicU64::new(0),
            }),
        }
    }

    /// Registers a subscriber on `stream`: every event the hub handles from now on is
    /// offered to it. The lane starts held, for the hello and the replay.
    pub fn subscribe(&self, filter: Filter, stream: &Arc<TcpStream>) -> Subscription {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let lane = Arc::new(Lane::new(stream));
        let (kick, kicked) = oneshot::channel();
        self.inner.subscribers.insert(
            id,
            Entry {
                lane: lane.clone(),
                filter,
                kick,
            },
        );
        self.inner.version.fetch_add(1, Ordering::Release);
        Subscription {
            lane,
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

    /// Re-reads the shard's subscribers if any came or went. Called after events are taken
    /// from the bus and before they are written: whoever registered before they were taken
    /// gets them.
    fn refresh(&self, sweep: &mut Sweep) {
        let version = self.inner.version.load(Ordering::Acquire);
        if version != sweep.version {
            let mut cursors: std::collections::HashMap<u64, u64> =
                sweep.members.iter().map(|m| (m.id, m.cursor)).collect();
            sweep.members.clear();
            let joining = sweep.since_refresh;
            sweep.members.extend(
                self.inner
                    .subscribers
                    .iter()
                    .filter(|e| sweep.shard.has(*e.key()))
                    .map(|e| Member {
                        id: *e.key(),
                        lane: e.lane.clone(),
                        filter: e.filter.clone(),
                        cursor: cursors.remove(e.key()).unwrap_or(joining),
                    }),
            );
            sweep.version = version;
        }
        sweep.since_refresh = sweep.next;
    }

    /// One sweep: every subscriber is written what it is owed. `more` is asked every 64
    /// subscribers for events that arrived meanwhile; the rest of the sweep carries them.
    fn sweep(&self, sweep: &mut Sweep, mut more: impl FnMut(&mut Sweep)) {
        let (mut slow, mut written) = (Vec::new(), 0);
        // The buffer of every frame a subscriber is owed from one cursor on, with the
        // member whose filter picked them: most subscribers are owed the same, or the same
        // as others of their venue.
        let mut joined: Option<(u64, u64, usize, Bytes)> = None;
        for i in 0..sweep.members.len() {
            if i % 64 == 63 {
                more(sweep);
            }
            let (next, base) = (sweep.next, sweep.base);
            let member = &sweep.members[i];
            let cursor = member.cursor;
            if cursor >= next {
                continue;
            }
            let owed = sweep
                .log
                .range((cursor - base) as usize..(next - base) as usize);
            let filter = &member.filter;
            let everything = filter.takes_all();
            let picked = owed
                .filter(move |item| everything || filter.admits_event(&item.event))
                .map(Item::frame);
            let count = picked.clone().count() as u64;
            let members = &sweep.members;
            let cached = |&(c, n, by, _): &(u64, u64, usize, Bytes)| {
                (c, n) == (cursor, next) && (by == i || members[by].filter == *filter)
            };
            if count > 0 && !joined.as_ref().is_some_and(cached) {
                joined = Some((cursor, next, i, join(picked.clone())));
            }
            let whole = joined.as_ref().map(|(_, _, _, bytes)| bytes);
            if count > 0 {
                match member.lane.offer(picked, whole, self.inner.queue_capacity) {
                    Offer::Written(n) => written += n,
                    Offer::Queued => {}
                    Offer::Full => slow.push(member.id),
                }
            }
            sweep.members[i].cursor = next;
        }
        crate::metrics::frames_sent(written);
        for id in slow {
            self.kick(id, Kick::SlowConsumer);
        }
        sweep.trim();
    }

    /// Ends subscriber `id`'s subscription, telling it why; nothing if it is gone already.
    pub fn kick(&self, id: u64, why: Kick) {
        if let Some((_, entry)) = self.inner.subscribers.remove(&id) {
            self.inner.version.fetch_add(1, Ordering::Release);
            if why == Kick::SlowConsumer {
                self.inner.dropped_slow.fetch_add(1, Ordering::Relaxed);
                crate::metrics::subscriber_dropped_slow();
                log::warn!("subscriber {id} dropped as a slow consumer");
            }
            let _ = entry.kick.send(why);
        }
    }

    /// Starts one hub thread per runtime given, each fanning out to its share of the
    /// subscribers, subscribed to `bus` now (before the first request, so that the hub sees
    /// every event). A thread that cannot start runs on `fallback` instead: still correct,
    /// only slower to share the CPU fairly. Each receiver closes when its thread is done.
    pub fn start(
        &self,
        runtimes: Vec<tokio::runtime::Runtime>,
        bus: &Bus,
        shutdown: &CancellationToken,
        fallback: &tokio::runtime::Handle,
    ) -> Vec<oneshot::Receiver<()>> {
        let count = runtimes.len() as u64;
        let fan_out = |shard| self.clone().run(shard, bus.subscribe(), shutdown.clone());
        let mut stopped = Vec::new();
        for (index, runtime) in (0..count).zip(runtimes) {
            let shard = Shard { index, count };
            let work = fan_out(shard);
            let (done, done_rx) = oneshot::channel::<()>();
            stopped.push(done_rx);
            let thread = std::thread::Builder::new()
                .name(format!("altair-hub-{index}"))
                .spawn(move || {
                    runtime.block_on(work);
                    drop(done);
                });
            if let Err(e) = thread {
                log::warn!("cannot start hub thread {index} ({e}); it runs on the fan-out runtime");
                fallback.spawn(fan_out(shard));
            }
        }
        stopped
    }

    /// Fans out bus events to `shard`'s subscribers until `shutdown` or the bus closes. It
    /// runs on a thread of its own: a sweep over thousands of sockets takes milliseconds
    /// without a pause, which would stall any task sharing its thread.
    pub async fn run(
        self,
        shard: Shard,
        mut events: broadcast::Receiver<Event>,
        shutdown: CancellationToken,
    ) {
        // Half a queue at a time: what a lane whose task holds it for a moment (to send a
        // ping) is offered must not fill its queue.
        let most = (self.inner.queue_capacity / 2).clamp(1, 256);
        let mut sweep = Sweep::new(shard);
        let mut taken = Vec::with_capacity(most);
        loop {
            if sweep.caught_up() {
                let first = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    event = events.recv() => event,
                };
                match first {
                    Ok(event) => taken.push(event),
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        self.overloaded(&mut sweep, missed);
                        continue;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
            let started = Instant::now();
            let mut lagged = take_waiting(&mut events, &mut taken, most);
            self.refresh(&mut sweep);
            if sweep.members.is_empty() {
                // Nobody to serialize for.
                taken.clear();
            } else {
                sweep.append(taken.drain(..));
                self.sweep(&mut sweep, |sweep| {
                    if lagged.is_none() {
                        lagged = take_waiting(&mut events, &mut taken, most);
                        sweep.append(taken.drain(..));
                    }
                });
            }
            if let Some(missed) = lagged {
                self.overloaded(&mut sweep, missed);
            }
            // Wake at most once a millisecond: every wake-up of this thread costs the
            // core two context switches, as much as a POST itself, and at thousands of
            // pours a second they were a third of ingest. A quick sweep waits out the rest
            // of the millisecond so that what comes meanwhile goes in the next one.
            if let Some(rest) = LINGER.checked_sub(started.elapsed()) {
                tokio::time::sleep(rest).await;
            }
        }
    }

    /// The hub fell behind the bus: its subscribers missed events, so each is told to
    /// resume with `since`.
    fn overloaded(&self, sweep: &mut Sweep, missed: u64) {
        log::error!(
            "WebSocket hub fell {missed} events behind; disconnecting every subscriber so they resume with since"
        );
        let ids: Vec<u64> = self
            .inner
            .subscribers
            .iter()
            .map(|e| *e.key())
            .filter(|id| sweep.shard.has(*id))
            .collect();
        for id in ids {
            self.kick(id, Kick::Overloaded);
        }
        sweep.log.clear();
        sweep.base = sweep.next;
        sweep.since_refresh = sweep.next;
        for member in &mut sweep.members {
            member.cursor = sweep.next;
        }
    }
}

/// Takes what is waiting on the bus, up to `most` events; the number missed if it lagged.
fn take_waiting(
    events: &mut broadcast::Receiver<Event>,
    taken: &mut Vec<Event>,
    most: usize,
) -> Option<u64> {
    while taken.len() < most {
        match events.try_recv() {
            Ok(event) => taken.push(event),
            Err(broadcast::error::TryRecvError::Lagged(missed)) => return Some(missed),
            Err(_) => break,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pour::Timestamp;

    fn pour(id: u64, tap_id: u32, glass: &str) -> Pour {
        Pour {
            venue: "main".into(),
            flags: crate::pour::Flags::NONE,
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
            venues: None,
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
            br#"{"event":"pour","beer":{"id":17,"venue":"main","tapId":3,"volume":500.0,"type":"pint","timestamp":"1970-01-01T00:00:00.000Z","flags":[]}}"#
        );
        let f = Frame::of(&Event::Deleted(pour(17, 3, "pint")));
        assert_eq!(f.json(), br#"{"event":"deleted","id":17}"#);
        // A final, unmasked text frame with a 7-bit length.
        assert_eq!(&f.wire[..2], &[0x81, f.json().len() as u8]);
    }

    /// A connected pair: the server's end for the hub, and the client's end to read.
    async fn pair() -> (Arc<TcpStream>, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap());
        let (client, accepted) = tokio::join!(client, listener.accept());
        (Arc::new(accepted.unwrap().0), client.unwrap())
    }

    /// One sweep of a fresh hub thread of `shard` over one event.
    fn deliver_in(hub: &Hub, shard: Shard, event: Event) -> Frame {
        let mut sweep = Sweep::new(shard);
        hub.refresh(&mut sweep);
        sweep.append([event.clone()]);
        hub.sweep(&mut sweep, |_| {});
        Frame::of(&event)
    }

    fn deliver(hub: &Hub, event: Event) -> Frame {
        deliver_in(hub, Shard::ALL, event)
    }

    #[tokio::test]
    async fn a_sweep_carries_events_that_arrive_during_it() {
        let hub = Hub::new(8);
        let mut ends = Vec::new();
        let mut subs = Vec::new();
        for _ in 0..70 {
            let (end, client) = pair().await;
            subs.push(hub.subscribe(Filter::default(), &end));
            ends.push((end, client));
        }
        let lane_of = |id: u64| &subs.iter().find(|s| s.id() == id).unwrap().lane;
        let mut sweep = Sweep::new(Shard::ALL);
        hub.refresh(&mut sweep);
        sweep.append([Event::Poured(pour(1, 1, "pint"))]);
        // Pour 2 arrives while the sweep is under way (it is asked for after 63 visits).
        let mut arrived = false;
        hub.sweep(&mut sweep, |sweep| {
            if !arrived {
                arrived = true;
                sweep.append([Event::Poured(pour(2, 1, "pint"))]);
            }
        });
        let order: Vec<u64> = sweep.members.iter().map(|m| m.id).collect();
        // Those visited before it came got pour 1; the rest got both, in one go.
        assert_eq!(lane_of(order[0]).take(16).unwrap().frames, 1);
        assert_eq!(lane_of(order[69]).take(16).unwrap().frames, 2);
        // A subscriber that registers now is owed what was taken since the last refresh.
        let (end, _client) = pair().await;
        let late = hub.subscribe(Filter::default(), &end);
        // The next sweep brings pour 2 to the first ones; the late one gets 1 and 2.
        hub.refresh(&mut sweep);
        hub.sweep(&mut sweep, |_| {});
        let batch = lane_of(order[0]).take(16).unwrap();
        assert_eq!(
            batch.bytes,
            Frame::of(&Event::Poured(pour(2, 1, "pint"))).wire
        );
        assert_eq!(late.lane.take(16).unwrap().frames, 2);
        // Everyone has everything: the log is empty again.
        assert!(sweep.caught_up());
        assert!(sweep.log.is_empty());
    }

    #[tokio::test]
    async fn a_direct_lane_writes_to_the_socket_and_a_held_one_queues() {
        use tokio::io::AsyncReadExt;
        let hub = Hub::new(8);
        let (server, mut client) = pair().await;
        let sub = hub.subscribe(Filter::default(), &server);
        // Held at first (the task owes a hello): queued.
        let first = deliver(&hub, Event::Poured(pour(1, 1, "pint")));
        let batch = sub.lane.take(16).unwrap();
        assert_eq!((batch.bytes, batch.frames), (first.wire, 1));
        assert!(sub.lane.take(16).is_none(), "nothing left: direct again");
        // Direct: the hub's bytes are on the socket, with no task involved.
        let second = deliver(&hub, Event::Poured(pour(2, 1, "pint")));
        let mut read = vec![0u8; second.wire.len()];
        client.read_exact(&mut read).await.unwrap();
        assert_eq!(read, second.wire);
        // Held again: two frames queue and leave as one buffer, in order.
        sub.lane.hold();
        let third = deliver(&hub, Event::Poured(pour(3, 1, "pint")));
        let fourth = deliver(&hub, Event::Poured(pour(4, 1, "pint")));
        let batch = sub.lane.take(16).unwrap();
        assert_eq!(batch.frames, 2);
        assert_eq!(batch.bytes, [third.wire, fourth.wire].concat());
        // Pours at or below the floor are not sent.
        sub.lane.raise_floor(5);
        sub.lane.hold();
        deliver(&hub, Event::Poured(pour(5, 1, "pint")));
        assert!(sub.lane.take(16).is_none());
        // Nor keg events at or below theirs.
        let catalogue = crate::glass::Catalogue::default();
        let mut cellar = crate::keg::Cellar::new(
            crate::keg::CellarSettings::new(&catalogue),
            crate::venue::Venues::new(crate::venue::Defaults::standalone()),
        );
        let tap = |tap_id| crate::keg::KegOp::Tap {
            venue: None,
            tap_id,
            beverage: "Pils".into(),
            size_ul: 1_000_000,
            start_ul: 1_000_000,
            at: crate::pour::Timestamp::from_millis(0),
        };
        // Numbered as the bar numbers them.
        let mut numbered = |tap_id, seq| {
            let mut event = cellar.apply_op(&tap(tap_id), 0).remove(0);
            event.seq = seq;
            std::sync::Arc::new(event)
        };
        let (one, two) = (numbered(1, 1), numbered(2, 2));
        sub.lane.raise_keg_floor(1);
        sub.lane.hold();
        deliver(&hub, Event::Keg(one));
        let owed = deliver(&hub, Event::Keg(two));
        assert_eq!(sub.lane.take(16).unwrap().bytes, owed.wire);
    }

    #[tokio::test]
    async fn each_hub_thread_writes_to_its_own_shard_only() {
        let hub = Hub::new(8);
        let (a, _a) = pair().await;
        let (b, _b) = pair().await;
        let (odd, even) = (
            hub.subscribe(Filter::default(), &a),
            hub.subscribe(Filter::default(), &b),
        );
        assert_eq!((odd.id() % 2, even.id() % 2), (1, 0));
        let event = Event::Poured(pour(1, 1, "pint"));
        deliver_in(&hub, Shard { index: 0, count: 2 }, event.clone());
        assert!(odd.lane.take(16).is_none());
        assert!(even.lane.take(16).is_some());
        odd.lane.hold(); // Taking nothing made it direct; held, the frame is seen queued.
        deliver_in(&hub, Shard { index: 1, count: 2 }, event);
        assert!(odd.lane.take(16).is_some());
    }

    #[tokio::test]
    async fn a_socket_that_would_block_gets_its_frames_queued() {
        let hub = Hub::new(8);
        let (server, _client) = pair().await;
        let sub = hub.subscribe(Filter::default(), &server);
        assert!(sub.lane.take(16).is_none());
        // Fill the socket's buffers: the client never reads.
        let junk = vec![0u8; 64 * 1024];
        while server.try_write(&junk).is_ok() {}
        let frame = deliver(&hub, Event::Poured(pour(1, 1, "pint")));
        let batch = sub.lane.take(16).unwrap();
        assert_eq!((batch.bytes, batch.frames), (frame.wire, 1));
    }

    #[tokio::test]
    async fn a_full_queue_kicks_only_that_subscriber() {
        let hub = Hub::new(2);
        let (slow_end, _a) = pair().await;
        let (fast_end, _b) = pair().await;
        let mut slow = hub.subscribe(Filter::default(), &slow_end);
        let mut fast = hub.subscribe(Filter::default(), &fast_end);
        for id in 1..=3 {
            deliver(&hub, Event::Poured(pour(id, 1, "pint")));
            // The fast one's task keeps up; the slow one's never takes anything.
            while fast.lane.take(16).is_some() {}
        }
        assert_eq!(slow.kicked.try_recv(), Ok(Kick::SlowConsumer));
        assert!(fast.kicked.try_recv().is_err());
        assert_eq!((hub.len(), hub.dropped_slow()), (1, 1));
        drop(fast);
        assert!(hub.is_empty());
    }

    #[tokio::test]
    async fn a_hub_that_falls_behind_the_bus_kicks_everyone_to_resume() {
        let bus = crate::bus::Bus::new(2);
        let hub = Hub::new(16);
        let events = bus.subscribe();
        let (end, _client) = pair().await;
        let mut subscriber = hub.subscribe(Filter::default(), &end);
        for id in 1..=5 {
            bus.send(Event::Poured(pour(id, 1, "pint")));
        }
        let shutdown = CancellationToken::new();
        let running = tokio::spawn(hub.clone().run(Shard::ALL, events, shutdown.clone()));
        assert_eq!((&mut subscriber.kicked).await, Ok(Kick::Overloaded));
        assert!(hub.is_empty());
        shutdown.cancel();
        running.await.unwrap();
    }
}
