//! The one place that decides what a change means: a new pour, a deletion, a keg
//! operation or a tap's settings. Given the bar's state as of the log's end and a command,
//! it says what is recorded (the pour's id and flags, the operation's keg), why it is
//! refused, or what a retried idempotency key stands for. Pure and synchronous: each store
//! calls it under its own ordering (the journal's writer thread, PostgreSQL's counters
//! lock), then only persists and publishes the decision, so every store and every replica
//! decides alike.
//!
//! What follows from a recorded change (keg levels, keg events, the report) is the state
//! machines' business ([`Cellar`], [`crate::report`]), fed by the log in order.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::alert::Alerts;
use crate::anomaly::Burst;
use crate::config::Config;
use crate::keg::{Cellar, KegError, KegOp};
use crate::meter::Meters;
use crate::pour::{Flag, Flags, NewPour, Pour, TapRef, Timestamp, microlitres};
use crate::variance::Ledger;
use crate::venue::{VenueError, Venues};

/// What became of a pour sent to the store.
#[derive(Debug, Clone, PartialEq)]
pub enum Inserted {
    /// Stored under a new id.
    Created(Pour),
    /// The idempotency key was seen with the same request: this is the original pour.
    Replayed(Pour),
    /// The idempotency key was seen with a different request.
    Conflict,
    /// The idempotency key was seen with the same request, but its pour (this id) has been
    /// deleted since: nothing is stored again.
    Deleted(u64),
}

/// What became of a keg operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KegDone {
    /// Logged; the keg it made or changed.
    Applied(u64),
    /// The idempotency key was seen with the same request: this keg, nothing logged.
    Replayed(u64),
    /// The idempotency key was seen with a different request.
    Conflict,
}

/// The rules' settings, from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// How fast a tap pours, for the `burst` flag.
    pub burst: Burst,
    /// How long an idempotency key stands for its request.
    pub key_ttl: KeyTtl,
}

impl Settings {
    pub fn from_config(config: &Config) -> Settings {
        Settings {
            burst: Burst {
                max_flow: config.max_flow,
            },
            key_ttl: KeyTtl::new(config.idempotency_ttl),
        }
    }
}

/// How long an idempotency key stands for the request it came with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyTtl {
    ms: i64,
}

impl KeyTtl {
    pub fn new(ttl: Duration) -> KeyTtl {
        KeyTtl {
            ms: i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX),
        }
    }

    /// Whether a key created at `created` still stands for its request at `now`.
    pub fn alive(self, created: Timestamp, now: Timestamp) -> bool {
        created.millis().saturating_add(self.ms) > now.millis()
    }

    /// Keys created after this time (ms, exclusive) are alive at `now`: for a store that
    /// asks its database for live keys only.
    /// As a duration.
    pub fn duration(self) -> std::time::Duration {
        std::time::Duration::from_millis(u64::try_from(self.ms).unwrap_or(0))
    }

    pub fn cutoff(self, now: Timestamp) -> i64 {
        now.millis().saturating_sub(self.ms)
    }
}

/// What "the same body" means for a retry: the fields the device sent.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Fingerprint<'a> {
    venue: &'a str,
    tap_id: u32,
    volume_bits: u64,
    /// The timestamp only if the device named it; otherwise the server chose it.
    timestamp: Option<Timestamp>,
}

impl Fingerprint<'_> {
    fn of_request(pour: &NewPour) -> Fingerprint<'_> {
        Fingerprint {
            venue: &pour.venue,
            tap_id: pour.tap_id,
            volume_bits: pour.volume.to_bits(),
            timestamp: pour.device_timestamp.then_some(pour.timestamp),
        }
    }

    fn of_stored(pour: &Pour, device_timestamp: bool) -> Fingerprint<'_> {
        Fingerprint {
            venue: &pour.venue,
            tap_id: pour.tap_id,
            volume_bits: pour.volume.to_bits(),
            timestamp: device_timestamp.then_some(pour.timestamp),
        }
    }
}

/// What a store remembers of an idempotency key a pour was stored under.
#[derive(Debug, Clone, Copy)]
pub struct KnownPour<'a> {
    pub pour: &'a Pour,
    /// Whether the request named the timestamp (part of what "the same body" means).
    pub device_timestamp: bool,
    pub created: Timestamp,
    /// Whether the pour has been deleted since.
    pub deleted: bool,
}

/// What a store remembers of an idempotency key a keg operation was logged under.
#[derive(Debug, Clone, Copy)]
pub struct KnownOp<'a> {
    /// The operation (`None`: unreadable, as a newer server might have written it; never
    /// the same request).
    pub op: Option<&'a KegOp>,
    /// The keg the operation made or changed.
    pub keg_id: u64,
    pub created: Timestamp,
}

/// The latest time each tap (of each venue) reported a pour at, deleted or not: what
/// `burst` compares with.
#[derive(Debug, Clone, Default)]
pub struct Latest(HashMap<TapRef, Timestamp>);

impl Latest {
    /// Notes a pour of `tap` at `at` (recovery, or a decided batch once it is kept).
    pub fn saw(&mut self, tap: TapRef, at: Timestamp) {
        let seen = self.0.entry(tap).or_insert(at);
        *seen = (*seen).max(at);
    }

    /// Notes a kept pour, as the rules count it: one timed ahead of the clock does not
    /// move its tap's latest time (a store replaying or following its log).
    pub fn kept(&mut self, pour: &Pour) {
        if moves_latest(pour.flags) {
            self.saw(pour.tap(), pour.timestamp);
        }
    }

    pub fn get(&self, tap: &TapRef) -> Option<Timestamp> {
        self.0.get(tap).copied()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&TapRef, Timestamp)> + '_ {
        self.0.iter().map(|(tap, &at)| (tap, at))
    }
}

impl FromIterator<(TapRef, Timestamp)> for Latest {
    fn from_iter<I: IntoIterator<Item = (TapRef, Timestamp)>>(taps: I) -> Latest {
        let mut latest = Latest::default();
        for (tap, at) in taps {
            latest.saw(tap, at);
        }
        latest
    }
}

/// Whether a pour with these flags is what its tap's next pours are judged against: one
/// from a clock that is ahead is not (they would never look like a burst until its time
/// came).
fn moves_latest(flags: Flags) -> bool {
    !flags.contains(Flag::Future)
}

/// What to do with a pour request.
#[derive(Debug, Clone, PartialEq)]
pub enum PourDecision {
    /// Record this pour: its id and every flag are decided.
    Record(Pour),
    /// Record nothing; answer this (a retried idempotency key).
    Answer(Inserted),
}

/// What to do with a deletion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteDecision {
    /// Record the deletion of this pour.
    Record,
    /// No such pour, or it is deleted already: record nothing, answer "not found".
    Missing,
}

/// What to do with a keg operation.
#[derive(Debug, Clone, PartialEq)]
pub enum KegDecision {
    /// Record the operation after pour `after` (its place in the log): it makes or
    /// changes keg `keg_id` (a sales import: this many lines were new). `narrowed`: the
    /// operation to record in its place (a sales import's new lines only).
    Record {
        keg_id: u64,
        after: u64,
        narrowed: Option<KegOp>,
    },
    /// Record nothing; answer this (a retried idempotency key).
    Answer(KegDone),
    /// It does not apply now.
    Refused(KegError),
}

/// A deletion decided alone; `stored`: whether the store holds the pour, not deleted.
pub fn delete(stored: bool) -> DeleteDecision {
    if stored {
        DeleteDecision::Record
    } else {
        DeleteDecision::Missing
    }
}

/// A keyed pour decided in this batch, so that a second request with its key sees it.
#[derive(Debug)]
struct Keyed {
    key: String,
    pour: Pour,
    device_timestamp: bool,
}

/// A batch's working memory, handed from one batch to the next so that a store whose every
/// request is a batch (memory only) allocates nothing for it.
#[derive(Debug, Default)]
pub struct Scratch {
    /// The taps whose latest pour time the batch moved, and to what.
    moved: Vec<(TapRef, Timestamp)>,
    /// Volume (µl) decided per tap with a keg in this batch, not yet drawn from it.
    drawn: Vec<(TapRef, i64)>,
    keyed: Vec<Keyed>,
    deleted: Vec<u64>,
}

impl Scratch {
    /// The taps whose latest pour time the batch moved, and to what: for the store to keep
    /// once the batch is.
    pub fn latest(&self) -> &[(TapRef, Timestamp)] {
        &self.moved
    }
}

/// The bar's state as of the log's end, which a batch decides against.
#[derive(Clone, Copy)]
pub struct Books<'a> {
    pub kegs: &'a Cellar,
    pub alerts: &'a Alerts,
    pub venues: &'a Venues,
    pub ledger: &'a Ledger,
    pub meters: &'a Meters,
}

/// Decides a batch of commands, in log order, against the state at the log's end.
///
/// Nothing outside the batch changes while it decides: the store keeps what it decided,
/// then the taps' new latest pour times ([`Scratch::latest`]) to its own record.
pub struct Batch<'a> {
    rules: Settings,
    kegs: &'a Cellar,
    alerts: &'a Alerts,
    venues: &'a Venues,
    ledger: &'a Ledger,
    meters: &'a Meters,
    latest: &'a Latest,
    now: Timestamp,
    next_id: u64,
    scratch: Scratch,
}

impl<'a> Batch<'a> {
    /// A batch after pour `last_id` (the log's end), at `now`, against the kegs and the
    /// taps' latest pour times as the log has them there.
    pub fn new(
        rules: Settings,
        books: Books<'a>,
        latest: &'a Latest,
        last_id: u64,
        now: Timestamp,
    ) -> Batch<'a> {
        Batch::reusing(Scratch::default(), rules, books, latest, last_id, now)
    }

    /// [`Batch::new`], in the memory an earlier batch left ([`Batch::finish`]).
    pub fn reusing(
        mut scratch: Scratch,
        rules: Settings,
        books: Books<'a>,
        latest: &'a Latest,
        last_id: u64,
        now: Timestamp,
    ) -> Batch<'a> {
        scratch.moved.clear();
        scratch.drawn.clear();
        scratch.keyed.clear();
        scratch.deleted.clear();
        Batch {
            rules,
            kegs: books.kegs,
            alerts: books.alerts,
            venues: books.venues,
            ledger: books.ledger,
            meters: books.meters,
            latest,
            now,
            next_id: last_id + 1,
            scratch,
        }
    }

    /// A pour request, with its idempotency key and what the store remembers of that key
    /// (nothing for a key it has not seen, or has forgotten).
    pub fn pour(
        &mut self,
        request: NewPour,
        key: Option<&str>,
        known: Option<KnownPour<'_>>,
    ) -> PourDecision {
        if let Some(key) = key
            && let Some(answer) = self.retried_pour(key, &request, known)
        {
            return PourDecision::Answer(answer);
        }
        let mut request = request;
        let tap = request.tap();
        // Its venue's hours, as the log has them at its place in the log.
        self.venues.rules(&tap.venue).clock.assess(&mut request);
        let cleaning = self.kegs.cleaning(&tap);
        if cleaning {
            request.flags = request.flags.with(Flag::Cleaning);
        }
        let previous = self.latest_of(&tap);
        if self.rules.burst.between(previous, &request) {
            request.flags = request.flags.with(Flag::Burst);
        }
        let scratch = &mut self.scratch;
        if moves_latest(request.flags) {
            let at = previous.map_or(request.timestamp, |p| p.max(request.timestamp));
            match scratch.moved.iter_mut().find(|(t, _)| *t == tap) {
                Some(moved) => moved.1 = at,
                None => scratch.moved.push((tap.clone(), at)),
            }
        }
        // A short list: a batch's taps are few. Water draws no keg.
        let drawn = match scratch.drawn.iter().position(|(t, _)| *t == tap) {
            _ if cleaning => None,
            Some(i) => Some(i),
            None if self.kegs.has_keg(&tap) => {
                scratch.drawn.push((tap.clone(), 0));
                Some(scratch.drawn.len() - 1)
            }
            None => None,
        };
        if let Some(i) = drawn {
            let drawn = &mut scratch.drawn[i].1;
            if self.kegs.empty_before(&tap, *drawn) {
                request.flags = request.flags.with(Flag::EmptyKeg);
            }
            *drawn += microlitres(request.volume);
        }
        let device_timestamp = request.device_timestamp;
        let pour = request.with_id(self.next_id);
        self.next_id += 1;
        if let Some(key) = key {
            self.scratch.keyed.push(Keyed {
                key: key.to_owned(),
                pour: pour.clone(),
                device_timestamp,
            });
        }
        PourDecision::Record(pour)
    }

    /// What a retry of `key` answers, if the key stands for a request.
    fn retried_pour(
        &self,
        key: &str,
        request: &NewPour,
        known: Option<KnownPour<'_>>,
    ) -> Option<Inserted> {
        let (pour, device_timestamp, deleted) =
            match self.scratch.keyed.iter().rev().find(|k| k.key == key) {
                Some(keyed) => (&keyed.pour, keyed.device_timestamp, false),
                None => {
                    let known = known.filter(|k| self.rules.key_ttl.alive(k.created, self.now))?;
                    (known.pour, known.device_timestamp, known.deleted)
                }
            };
        let deleted = deleted || self.scratch.deleted.contains(&pour.id);
        Some(
            if Fingerprint::of_stored(pour, device_timestamp) != Fingerprint::of_request(request) {
                Inserted::Conflict
            } else if deleted {
                Inserted::Deleted(pour.id)
            } else {
                Inserted::Replayed(pour.clone())
            },
        )
    }

    /// A deletion of pour `id`; `stored`: whether the store holds it, not deleted.
    pub fn delete(&mut self, id: u64, stored: bool) -> DeleteDecision {
        let decision = delete(stored && !self.scratch.deleted.contains(&id));
        if decision == DeleteDecision::Record {
            self.scratch.deleted.push(id);
        }
        decision
    }

    /// A keg operation, with what the store remembers of its idempotency key. The kegs
    /// must have reached every change before it: a store decides one alone.
    pub fn keg(
        &mut self,
        op: &KegOp,
        key: Option<&str>,
        known: Option<KnownOp<'_>>,
    ) -> KegDecision {
        let known = key
            .and(known)
            .filter(|k| self.rules.key_ttl.alive(k.created, self.now));
        if let Some(known) = known {
            let same = known
                .op
                .is_some_and(|o| o.fingerprint() == op.fingerprint());
            return KegDecision::Answer(if same {
                KegDone::Replayed(known.keg_id)
            } else {
                KegDone::Conflict
            });
        }
        let checked = match op {
            KegOp::AddVenue { venue, .. } => venue_checked(self.venues.check_add(venue)),
            KegOp::ChangeVenue { change, .. } => venue_checked(self.venues.check_change(change)),
            _ if op.is_alert() => self.alerts.check(op).map(|id| (id, None)),
            KegOp::Meter {
                meter, seq, venue, ..
            } => match venue {
                Some(v) if !v.is_empty() && !self.venues.exists(v) => {
                    Err(KegError::NoVenue(v.to_string()))
                }
                _ if self.meters.applies(meter, *seq) => Ok((0, None)),
                _ => Err(KegError::MeterMoved(meter.clone())),
            },
            _ if op.is_sales() => self.ledger.check(op).and_then(|(new, narrowed)| {
                self.sales_venues(op)?;
                Ok((new, narrowed))
            }),
            _ => self.kegs.check(op).map(|keg_id| (keg_id, None)),
        };
        match checked {
            Ok((keg_id, narrowed)) => KegDecision::Record {
                keg_id,
                after: self.next_id - 1,
                narrowed,
            },
            Err(e) => KegDecision::Refused(e),
        }
    }

    /// Whether every venue a sales operation names exists.
    fn sales_venues(&self, op: &KegOp) -> Result<(), KegError> {
        let named: Vec<&Arc<str>> = match op {
            KegOp::Sales { venues, .. } => venues.iter().collect(),
            KegOp::MapItem { venue, .. } => venue.iter().collect(),
            _ => Vec::new(),
        };
        match named
            .into_iter()
            .find(|v| !v.is_empty() && !self.venues.exists(v))
        {
            Some(v) => Err(KegError::NoVenue(v.to_string())),
            None => Ok(()),
        }
    }

    /// The batch decided: its memory, with the taps' new latest pour times
    /// ([`Scratch::latest`]) for the store to keep once the batch is kept.
    pub fn finish(self) -> Scratch {
        self.scratch
    }

    fn latest_of(&self, tap: &TapRef) -> Option<Timestamp> {
        self.scratch
            .moved
            .iter()
            .find(|(t, _)| t == tap)
            .map(|(_, at)| *at)
            .or_else(|| self.latest.get(tap))
    }
}

/// A venue operation's check as a keg operation's (a venue operation changes no keg).
fn venue_checked(checked: Result<(), VenueError>) -> Result<(u64, Option<KegOp>), KegError> {
    match checked {
        Ok(()) => Ok((0, None)),
        Err(VenueError::Exists(id)) => Err(KegError::VenueExists(id)),
        Err(VenueError::NotFound(id)) => Err(KegError::NoVenue(id)),
        Err(e @ VenueError::Configured(_)) => Err(KegError::VenueRefused(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::glass::Catalogue;
    use crate::keg::CellarSettings;
    use crate::pour::Flags;

    /// Now, in every case: far from 0, so that "long ago" and "expired" fit before it.
    const NOW: i64 = 1_000_000_000;
    const TTL_MS: i64 = 60_000;

    fn settings() -> Settings {
        Settings {
            // 100 ml/s: a 500 ml pour takes 5 s.
            burst: Burst { max_flow: 100.0 },
            key_ttl: KeyTtl::new(Duration::from_millis(TTL_MS as u64)),
        }
    }

    fn request(tap_id: u32, volume: f64, at: i64, device_timestamp: bool) -> NewPour {
        NewPour {
            venue: "main".into(),
            tap_id,
            volume,
            glass: "pint".into(),
            timestamp: Timestamp::from_millis(at),
            device_timestamp,
            flags: Flags::NONE,
        }
    }

    /// Tap `tap_id` of the default venue.
    fn main(tap_id: u32) -> TapRef {
        TapRef {
            venue: "main".into(),
            tap_id,
        }
    }

    /// A bar with a keg holding `ml` on tap 1 (none if `None`).
    /// The kegs, with no alerts (leaked: a test's batch outlives its statement).
    fn on(kegs: &Cellar) -> Books<'_> {
        let alerts = Box::leak(Box::new(Alerts::new(
            crate::alert::AlertSettings {
                window_ms: 0,
                variance_goal: 2.0,
            },
            "main".into(),
        )));
        let venues = Box::leak(Box::new(Venues::new(crate::venue::Defaults::standalone())));
        let ledger = Box::leak(Box::new(Ledger::new("main".into())));
        let meters = Box::leak(Box::new(Meters::default()));
        Books {
            meters,
            kegs,
            alerts,
            venues,
            ledger,
        }
    }

    fn cellar(keg_ml: Option<i64>) -> Cellar {
        let mut cellar = Cellar::new(
            CellarSettings::new(&Catalogue::default()),
            crate::venue::Venues::new(crate::venue::Defaults::standalone()),
        );
        if let Some(ml) = keg_ml {
            cellar.apply_op(
                &KegOp::Tap {
                    venue: None,
                    tap_id: 1,
                    beverage: "Helles".into(),
                    size_ul: 50_000_000,
                    start_ul: ml * 1000,
                    at: Timestamp::from_millis(0),
                },
                0,
            );
        }
        cellar
    }

    /// A pour a live key stored: id 7, tap 1, 500 ml at NOW - 10 s, timed by the server.
    struct Stored {
        device_timestamp: bool,
        created: i64,
        deleted: bool,
    }

    const LIVE: Stored = Stored {
        device_timestamp: false,
        created: NOW - 1_000,
        deleted: false,
    };

    fn stored_pour() -> Pour {
        request(1, 500.0, NOW - 10_000, false).with_id(7)
    }

    /// One request of a case and what it must come to.
    struct Step {
        tap: u32,
        ml: f64,
        at: i64,
        device_timestamp: bool,
        key: Option<&'static str>,
        expect: Expect,
    }

    #[derive(Debug, PartialEq)]
    enum Expect {
        Recorded(u64, &'static [Flag]),
        Replayed(u64),
        Conflict,
        Deleted(u64),
    }

    fn step(tap: u32, ml: f64, at: i64, expect: Expect) -> Step {
        Step {
            tap,
            ml,
            at,
            device_timestamp: true,
            key: None,
            expect,
        }
    }

    fn keyed(key: &'static str, ml: f64, device_timestamp: bool, expect: Expect) -> Step {
        Step {
            tap: 1,
            ml,
            at: NOW,
            device_timestamp,
            key: Some(key),
            expect,
        }
    }

    #[derive(Default)]
    struct Case {
        name: &'static str,
        /// Tap 1's latest pour time before the batch.
        latest: Option<i64>,
        keg_ml: Option<i64>,
        /// What the store remembers of key "k".
        known: Option<Stored>,
        /// Pours deleted earlier in the batch.
        deleted_first: &'static [u64],
        steps: Vec<Step>,
    }

    #[test]
    fn pours_are_decided_as_the_table_says() {
        use Expect::*;
        use Flag::{Burst, EmptyKeg};
        let cases = vec![
            Case {
                name: "a tap's first pour takes the next id and no flag",
                steps: vec![step(1, 500.0, NOW, Recorded(101, &[]))],
                ..Case::default()
            },
            Case {
                name: "a pour sooner after the tap's latest than the tap can pour it is a burst",
                latest: Some(NOW - 1_000),
                steps: vec![step(1, 500.0, NOW, Recorded(101, &[Burst]))],
                ..Case::default()
            },
            Case {
                name: "a pour long enough after the tap's latest is not",
                latest: Some(NOW - 6_000),
                steps: vec![step(1, 500.0, NOW, Recorded(101, &[]))],
                ..Case::default()
            },
            Case {
                name: "the latest is a batch's own earlier pour, on that tap only",
                steps: vec![
                    step(1, 500.0, NOW, Recorded(101, &[])),
                    step(2, 500.0, NOW, Recorded(102, &[])),
                    step(1, 500.0, NOW + 1_000, Recorded(103, &[Burst])),
                ],
                ..Case::default()
            },
            Case {
                name: "a pour timed just before the latest is a burst too; the latest stays",
                latest: Some(NOW),
                steps: vec![
                    step(1, 500.0, NOW - 1_000, Recorded(101, &[Burst])),
                    step(1, 500.0, NOW - 60_000, Recorded(102, &[])),
                    step(1, 500.0, NOW + 6_000, Recorded(103, &[])),
                ],
                ..Case::default()
            },
            Case {
                name: "no keg on the tap: never empty",
                steps: vec![step(1, 500.0, NOW, Recorded(101, &[]))],
                ..Case::default()
            },
            Case {
                name: "the pour that finds the keg empty, counting the batch's own draws",
                keg_ml: Some(900),
                steps: vec![
                    step(1, 500.0, NOW, Recorded(101, &[])),
                    step(1, 500.0, NOW + 10_000, Recorded(102, &[])),
                    step(1, 500.0, NOW + 20_000, Recorded(103, &[EmptyKeg])),
                ],
                ..Case::default()
            },
            Case {
                name: "a keg drawn to nothing is empty for the next pour",
                keg_ml: Some(500),
                steps: vec![
                    step(1, 500.0, NOW, Recorded(101, &[])),
                    step(1, 500.0, NOW + 10_000, Recorded(102, &[EmptyKeg])),
                ],
                ..Case::default()
            },
            Case {
                name: "a key never seen records the pour",
                steps: vec![keyed("k", 500.0, false, Recorded(101, &[]))],
                ..Case::default()
            },
            Case {
                name: "a live key with the same body answers the original, takes no id",
                latest: Some(NOW - 10_000),
                known: Some(LIVE),
                steps: vec![
                    keyed("k", 500.0, false, Replayed(7)),
                    step(1, 500.0, NOW + 60_000, Recorded(101, &[])),
                ],
                ..Case::default()
            },
            Case {
                name: "a live key with another volume is a conflict",
                known: Some(LIVE),
                steps: vec![keyed("k", 330.0, false, Conflict)],
                ..Case::default()
            },
            Case {
                name: "a live key now naming a time its first request did not is a conflict",
                known: Some(LIVE),
                steps: vec![keyed("k", 500.0, true, Conflict)],
                ..Case::default()
            },
            Case {
                name: "a live key whose pour was deleted says so and stores nothing",
                known: Some(Stored {
                    deleted: true,
                    ..LIVE
                }),
                steps: vec![keyed("k", 500.0, false, Deleted(7))],
                ..Case::default()
            },
            Case {
                name: "a live key whose pour this batch deletes says so too",
                known: Some(LIVE),
                deleted_first: &[7],
                steps: vec![keyed("k", 500.0, false, Deleted(7))],
                ..Case::default()
            },
            Case {
                name: "an expired key stands for nothing: the pour is recorded anew",
                known: Some(Stored {
                    created: NOW - TTL_MS,
                    ..LIVE
                }),
                steps: vec![keyed("k", 500.0, false, Recorded(101, &[]))],
                ..Case::default()
            },
            Case {
                name: "a key used twice in one batch: the second answers the first",
                steps: vec![
                    keyed("k", 500.0, false, Recorded(101, &[])),
                    keyed("k", 500.0, false, Replayed(101)),
                    keyed("k", 250.0, false, Conflict),
                ],
                ..Case::default()
            },
        ];
        for case in cases {
            let kegs = cellar(case.keg_ml);
            let latest: Latest = case
                .latest
                .map(|at| (main(1), Timestamp::from_millis(at)))
                .into_iter()
                .collect();
            let stored = stored_pour();
            let mut batch = Batch::new(
                settings(),
                on(&kegs),
                &latest,
                100,
                Timestamp::from_millis(NOW),
            );
            for &id in case.deleted_first {
                assert_eq!(
                    batch.delete(id, true),
                    DeleteDecision::Record,
                    "{}",
                    case.name
                );
            }
            for (i, s) in case.steps.iter().enumerate() {
                let known = case.known.as_ref().map(|k| KnownPour {
                    pour: &stored,
                    device_timestamp: k.device_timestamp,
                    created: Timestamp::from_millis(k.created),
                    deleted: k.deleted,
                });
                let known = s.key.and(known);
                let got = match batch.pour(
                    request(s.tap, s.ml, s.at, s.device_timestamp),
                    s.key,
                    known,
                ) {
                    PourDecision::Record(pour) => {
                        Expect::Recorded(pour.id, Vec::leak(pour.flags.iter().collect()))
                    }
                    PourDecision::Answer(Inserted::Replayed(pour)) => Expect::Replayed(pour.id),
                    PourDecision::Answer(Inserted::Conflict) => Expect::Conflict,
                    PourDecision::Answer(Inserted::Deleted(id)) => Expect::Deleted(id),
                    PourDecision::Answer(Inserted::Created(_)) => {
                        panic!("{}: not an answer", case.name)
                    }
                };
                assert_eq!(got, s.expect, "{} (request {})", case.name, i + 1);
            }
        }
    }

    #[test]
    fn each_venue_numbers_its_own_taps_for_the_burst_rule() {
        let kegs = cellar(None);
        // Tap 3 of the default venue poured a moment ago; tap 3 of another bar did not.
        let latest: Latest = [(main(3), Timestamp::from_millis(NOW))]
            .into_iter()
            .collect();
        let mut batch = Batch::new(
            settings(),
            on(&kegs),
            &latest,
            0,
            Timestamp::from_millis(NOW),
        );
        let flags = |decision: PourDecision| match decision {
            PourDecision::Record(pour) => pour.flags,
            PourDecision::Answer(answer) => panic!("recorded, not {answer:?}"),
        };
        let elsewhere = NewPour {
            venue: "dock".into(),
            ..request(3, 500.0, NOW + 100, true)
        };
        assert!(!flags(batch.pour(elsewhere.clone(), None, None)).contains(Flag::Burst));
        assert!(
            flags(batch.pour(request(3, 500.0, NOW + 100, true), None, None)).contains(Flag::Burst)
        );
        // And within the batch: the dock's tap 3 has poured now.
        assert!(flags(batch.pour(elsewhere, None, None)).contains(Flag::Burst));
        let mut moved: Vec<String> = batch
            .finish()
            .latest()
            .iter()
            .map(|(tap, _)| format!("{} {}", tap.venue, tap.tap_id))
            .collect();
        moved.sort();
        assert_eq!(moved, ["dock 3", "main 3"]);
    }

    #[test]
    fn a_batch_reports_each_taps_latest_pour_time_for_the_store_to_keep() {
        let kegs = cellar(None);
        let latest: Latest = [(main(1), Timestamp::from_millis(NOW))]
            .into_iter()
            .collect();
        let mut batch = Batch::new(
            settings(),
            on(&kegs),
            &latest,
            0,
            Timestamp::from_millis(NOW),
        );
        batch.pour(request(1, 500.0, NOW - 50_000, true), None, None);
        batch.pour(request(2, 500.0, NOW + 5, true), None, None);
        batch.pour(request(2, 500.0, NOW + 1, true), None, None);
        let mut moved = batch.finish().latest().to_vec();
        moved.sort_unstable_by_key(|(tap, _)| tap.clone());
        assert_eq!(
            moved,
            vec![
                (main(1), Timestamp::from_millis(NOW)),
                (main(2), Timestamp::from_millis(NOW + 5))
            ],
            "an earlier-timed pour never moves a tap's latest back"
        );
    }

    #[test]
    fn deletions_are_decided_as_the_table_says() {
        let kegs = cellar(None);
        let latest = Latest::default();
        // (stored, expected), in one batch, all of pour 5.
        let cases = [
            ("a pour the store holds", true, DeleteDecision::Record),
            (
                "the same pour again in the batch",
                true,
                DeleteDecision::Missing,
            ),
        ];
        let mut batch = Batch::new(
            settings(),
            on(&kegs),
            &latest,
            9,
            Timestamp::from_millis(NOW),
        );
        for (name, stored, expected) in cases {
            assert_eq!(batch.delete(5, stored), expected, "{name}");
        }
        assert_eq!(
            batch.delete(6, false),
            DeleteDecision::Missing,
            "a pour not held"
        );
        assert_eq!(delete(true), DeleteDecision::Record, "alone, held");
        assert_eq!(delete(false), DeleteDecision::Missing, "alone, not held");
    }

    #[test]
    fn keg_operations_are_decided_as_the_table_says() {
        let at = Timestamp::from_millis(NOW);
        let tap = KegOp::Tap {
            venue: None,
            tap_id: 2,
            beverage: "Stout".into(),
            size_ul: 20_000_000,
            start_ul: 20_000_000,
            at,
        };
        let finish = |keg_id| KegOp::Finish {
            keg_id,
            left_ul: None,
            at,
        };
        let later_tap = KegOp::Tap {
            venue: None,
            tap_id: 2,
            beverage: "Stout".into(),
            size_ul: 20_000_000,
            start_ul: 20_000_000,
            at: Timestamp::from_millis(NOW + 5),
        };
        let live = NOW - 1_000;
        let expired = NOW - TTL_MS;
        // (name, op, key, what the store remembers of it: (op, keg, created), expected)
        type Known = Option<(Option<KegOp>, u64, i64)>;
        let cases: Vec<(&str, KegOp, Option<&str>, Known, KegDecision)> = vec![
            (
                "a keg tapped is the next keg, after the log's last pour",
                tap.clone(),
                None,
                None,
                KegDecision::Record {
                    keg_id: 2,
                    after: 40,
                    narrowed: None,
                },
            ),
            (
                "a keg that does not exist cannot be finished",
                finish(9),
                None,
                None,
                KegDecision::Refused(KegError::NotFound(9)),
            ),
            (
                "the keg on tap 1 can be finished",
                finish(1),
                Some("f"),
                None,
                KegDecision::Record {
                    keg_id: 1,
                    after: 40,
                    narrowed: None,
                },
            ),
            (
                "a live key with the same operation, made later, answers its keg",
                later_tap.clone(),
                Some("k"),
                Some((Some(tap.clone()), 2, live)),
                KegDecision::Answer(KegDone::Replayed(2)),
            ),
            (
                "a live key with another operation is a conflict",
                finish(1),
                Some("k"),
                Some((Some(tap.clone()), 2, live)),
                KegDecision::Answer(KegDone::Conflict),
            ),
            (
                "a live key whose operation is unreadable is a conflict",
                tap.clone(),
                Some("k"),
                Some((None, 2, live)),
                KegDecision::Answer(KegDone::Conflict),
            ),
            (
                "an expired key stands for nothing",
                tap.clone(),
                Some("k"),
                Some((Some(tap.clone()), 2, expired)),
                KegDecision::Record {
                    keg_id: 2,
                    after: 40,
                    narrowed: None,
                },
            ),
        ];
        let kegs = cellar(Some(1_000));
        let latest = Latest::default();
        for (name, op, key, known, expected) in cases {
            let mut batch = Batch::new(settings(), on(&kegs), &latest, 40, at);
            let known = known.as_ref().map(|(op, keg_id, created)| KnownOp {
                op: op.as_ref(),
                keg_id: *keg_id,
                created: Timestamp::from_millis(*created),
            });
            assert_eq!(batch.keg(&op, key, known), expected, "{name}");
        }
    }

    #[test]
    fn a_key_lives_for_its_ttl_and_no_longer() {
        let ttl = KeyTtl::new(Duration::from_millis(1_000));
        let at = |ms| Timestamp::from_millis(ms);
        assert!(ttl.alive(at(5_000), at(5_999)));
        assert!(!ttl.alive(at(5_000), at(6_000)));
        assert_eq!(
            ttl.cutoff(at(6_000)),
            5_000,
            "created after the cutoff: alive"
        );
    }
}
