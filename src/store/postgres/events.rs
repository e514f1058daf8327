//! The shared log as one server reads and publishes it.
//!
//! Three readers hand this server's [`Publisher`] runs of the log: the tailer (on a
//! notification or its poll), the writer while it holds the counters lock (the other
//! servers' changes it must see before it decides), and the writer after its own commit
//! (its own pours, from memory: no read back). Each hands a run that starts at or before
//! the published position and has no hole, so the publisher skips what it has and feeds
//! the rest once, in log order.

use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{Semaphore, watch};
use tokio_postgres::{Client, Statement};

use super::{Glasses, Position, pour_from};
use crate::decide::Latest;
use crate::feed::Feed;
use crate::keg::KegOp;
use crate::pour::Pour;

/// Events read per query at most.
pub const PAGE: i64 = 1024;

/// One change of the log.
pub enum Event {
    Pour(Pour),
    /// Deletion `seq`, logged after pour `after`.
    Deletion {
        seq: u64,
        after: u64,
        pour: Pour,
    },
    /// Keg operation `seq`, logged after pour `after`; `op` is None if it cannot be read
    /// (logged, and passed over).
    KegOp {
        seq: u64,
        after: u64,
        op: Option<KegOp>,
    },
}

/// Prepares the query of the events after a position: pours by id, deletions and keg
/// operations by number, merged in log order (a deletion or keg operation after the pour
/// that was last when it committed). Each side is read in its own order, which is the
/// merged order's: the first PAGE of the merge needs no more than the first PAGE of each.
pub async fn prepare(client: &Client) -> Result<Statement, tokio_postgres::Error> {
    client
        .prepare(
            "SELECT kind, seq, id, tap_id, volume, glass, poured_at_ms, flags, venue, op, at FROM (
                 (SELECT 0 AS kind, id AS at, 0::bigint AS seq, id, tap_id, volume, glass, poured_at_ms, flags, venue, NULL::text AS op
                  FROM altair_pours WHERE id > $1 ORDER BY id LIMIT $3)
                 UNION ALL
                 (SELECT 1, d.after_pour_id, d.seq, p.id, p.tap_id, p.volume, p.glass, p.poured_at_ms, p.flags, p.venue, NULL
                  FROM altair_deletions d JOIN altair_pours p ON p.id = d.pour_id
                  WHERE d.seq > $2 ORDER BY d.seq LIMIT $3)
                 UNION ALL
                 (SELECT 2, after_pour_id, seq, NULL, NULL, NULL, NULL, NULL, NULL, NULL, op
                  FROM altair_keg_ops WHERE seq > $4 ORDER BY seq LIMIT $3)
             ) AS events ORDER BY at, kind, seq LIMIT $3",
        )
        .await
}

/// At most [`PAGE`] events after `at`, in log order, with the statement of [`prepare`].
pub async fn read_after(
    client: &Client,
    statement: &Statement,
    at: Position,
    glasses: &mut Glasses,
) -> Result<Vec<Event>, tokio_postgres::Error> {
    let position = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let rows = client
        .query(
            statement,
            &[
                &position(at.pour),
                &position(at.deletion),
                &PAGE,
                &position(at.keg_op),
            ],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| {
            let seq = u64::try_from(row.get::<_, i64>(1)).unwrap_or(0);
            let after = u64::try_from(row.get::<_, i64>(10)).unwrap_or(0);
            match row.get::<_, i32>(0) {
                0 => Event::Pour(pour_from(row, 2, glasses)),
                1 => Event::Deletion {
                    seq,
                    after,
                    pour: pour_from(row, 2, glasses),
                },
                _ => Event::KegOp {
                    seq,
                    after,
                    op: KegOp::from_json(row.get(9)),
                },
            }
        })
        .collect())
}

/// Feeds the log to this server's bar and bus, each event once, in order.
pub struct Publisher {
    feed: Feed,
    /// The venue of pours stored without one.
    default_venue: Arc<str>,
    /// How far the log is published, for requests that wait for their event and for the
    /// writer, which decides only against the whole log.
    published: watch::Sender<Position>,
    /// Each tap's latest pour time as of the published position, which the burst rule
    /// judges a tap's next pour against. Held while a run is fed, so that two runs do not
    /// interleave; never across .await.
    latest: Mutex<Latest>,
    /// Where the log ends with what this server's writer is committing: it publishes that
    /// itself, so a notification of it sends the tailer nowhere.
    claimed: Mutex<Position>,
    /// One reader at a time (the tailer, or the writer catching up), so that two do not
    /// read the same events: the one that waited usually finds them published.
    turn: Semaphore,
}

impl Publisher {
    /// A publisher of the log after `at`, where the taps' latest pours were `latest`.
    pub fn new(feed: Feed, default_venue: Arc<str>, at: Position, latest: Latest) -> Publisher {
        Publisher {
            feed,
            default_venue,
            published: watch::Sender::new(at),
            latest: Mutex::new(latest),
            claimed: Mutex::new(at),
            turn: Semaphore::new(1),
        }
    }

    /// Reads the log after the published position on `client` and publishes it, page by
    /// page, until it is published up to `end` (without one: to the end the database has),
    /// or `pages` have been read. Returns where it is published.
    pub async fn read_to(
        &self,
        client: &Client,
        statement: &Statement,
        end: Option<Position>,
        pages: usize,
    ) -> Result<Position, tokio_postgres::Error> {
        // Never closed, so the permit always comes.
        let _turn = self.turn.acquire().await;
        let mut glasses = self.names();
        for _ in 0..pages {
            if end.is_some_and(|end| self.at().reached(end)) {
                break;
            }
            let run = read_after(client, statement, self.at(), &mut glasses).await?;
            let full = run.len() as i64 >= PAGE;
            self.publish(run);
            if !full {
                break;
            }
        }
        Ok(self.at())
    }

    /// This server's writer is committing changes up to `end`, and publishes them.
    pub fn claim(&self, end: Position) {
        *self.claimed.lock().unwrap_or_else(PoisonError::into_inner) = end;
    }

    /// Whether the log up to `end` is published here, or this server's writer is about to
    /// publish it. (If its commit's answer is lost, the tailer's poll reads it.)
    pub fn covers(&self, end: Position) -> bool {
        self.at().reached(end)
            || self
                .claimed
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .reached(end)
    }

    /// Calls `f` with each tap's latest pour time as of the published position, which
    /// does not move meanwhile.
    pub fn with_latest<T>(&self, f: impl FnOnce(&Latest) -> T) -> T {
        f(&self.latest.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// The venue of pours stored without one.
    pub fn default_venue(&self) -> &Arc<str> {
        &self.default_venue
    }

    /// A reader of stored pours' names (glasses, venues).
    pub fn names(&self) -> Glasses {
        Glasses::new(&self.default_venue)
    }

    pub fn feed(&self) -> &Feed {
        &self.feed
    }

    /// How far the log is published.
    pub fn at(&self) -> Position {
        *self.published.borrow()
    }

    pub fn subscribe(&self) -> watch::Receiver<Position> {
        self.published.subscribe()
    }

    /// Feeds a run of the log that starts at or before the published position: what is
    /// published already is skipped; the rest follows it. Returns the new position.
    pub fn publish(&self, run: impl IntoIterator<Item = Event>) -> Position {
        let mut latest = self.latest.lock().unwrap_or_else(PoisonError::into_inner);
        let mut at = self.at();
        let before = at;
        for event in run {
            match event {
                Event::Pour(pour) if pour.id <= at.pour => {}
                Event::Pour(pour) if pour.id == at.pour + 1 => {
                    at.pour = pour.id;
                    latest.kept(&pour);
                    self.feed.poured(pour);
                }
                Event::Deletion { seq, .. } if seq <= at.deletion => {}
                Event::Deletion { seq, after, pour }
                    if seq == at.deletion + 1 && after == at.pour =>
                {
                    at.deletion = seq;
                    self.feed.deleted(pour);
                }
                Event::KegOp { seq, .. } if seq <= at.keg_op => {}
                Event::KegOp { seq, after, op } if seq == at.keg_op + 1 && after == at.pour => {
                    at.keg_op = seq;
                    match op {
                        Some(op) => self.feed.keg_op(&op, after),
                        None => log::error!("keg operation {seq} is unreadable; skipped"),
                    }
                }
                // Not the next event: a reader's run had a hole, which no reader makes.
                // The tailer's next read fills it.
                _ => {
                    log::error!("a run of the log does not follow {at:?}; left to the next read");
                    break;
                }
            }
        }
        if at != before {
            self.published.send_replace(at);
        }
        at
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::glass::Catalogue;
    use crate::pour::{Flag, Flags, Timestamp};

    fn pour(id: u64, tap_id: u32, at: i64, flags: Flags) -> Pour {
        Pour {
            venue: "main".into(),
            id,
            tap_id,
            volume: 500.0,
            glass: Arc::from("pint"),
            timestamp: Timestamp::from_millis(at),
            flags,
        }
    }

    fn publisher() -> Publisher {
        let feed = Feed::standalone(&Catalogue::default());
        Publisher::new(feed, "main".into(), Position::default(), Latest::default())
    }

    fn counted(publisher: &Publisher) -> u64 {
        publisher.feed().bar().hold().total_pours()
    }

    #[test]
    fn a_run_read_twice_or_overlapping_is_fed_once() {
        let p = publisher();
        let run = |ids: std::ops::RangeInclusive<u64>| {
            ids.map(|id| Event::Pour(pour(id, 1, 1_000 + id as i64, Flags::NONE)))
                .collect::<Vec<_>>()
        };
        p.publish(run(1..=3));
        p.publish(run(1..=3));
        let at = p.publish(run(2..=5));
        assert_eq!(at.pour, 5);
        assert_eq!(counted(&p), 5, "each pour counted once");
    }

    #[test]
    fn a_run_that_does_not_follow_is_left_for_the_next_read() {
        let p = publisher();
        p.publish([Event::Pour(pour(1, 1, 1_000, Flags::NONE))]);
        // Pour 2 is missing: 3 must wait.
        let at = p.publish([Event::Pour(pour(3, 1, 3_000, Flags::NONE))]);
        assert_eq!(at.pour, 1);
        // A deletion logged after pour 2 cannot come before pour 2 either.
        let deletion = Event::Deletion {
            seq: 1,
            after: 2,
            pour: pour(1, 1, 1_000, Flags::NONE),
        };
        assert_eq!(p.publish([deletion]).deletion, 0);
        assert_eq!(counted(&p), 1);
    }

    #[test]
    fn deletions_and_keg_operations_follow_the_pour_they_were_logged_after() {
        let p = publisher();
        let at = p.publish([
            Event::Pour(pour(1, 1, 1_000, Flags::NONE)),
            Event::Deletion {
                seq: 1,
                after: 1,
                pour: pour(1, 1, 1_000, Flags::NONE),
            },
            Event::KegOp {
                seq: 1,
                after: 1,
                op: None,
            },
            Event::Pour(pour(2, 1, 2_000, Flags::NONE)),
        ]);
        assert_eq!(
            at,
            Position {
                pour: 2,
                deletion: 1,
                keg_op: 1
            }
        );
        assert_eq!(counted(&p), 1, "one pour left after the deletion");
    }

    #[test]
    fn a_pour_timed_ahead_does_not_move_its_tap_s_latest() {
        let p = publisher();
        let ahead = Flags::NONE.with(Flag::Future);
        p.publish([
            Event::Pour(pour(1, 7, 1_000, Flags::NONE)),
            Event::Pour(pour(2, 7, 9_000_000, ahead)),
        ]);
        let tap = crate::pour::TapRef {
            venue: "main".into(),
            tap_id: 7,
        };
        let latest = p.with_latest(|latest| latest.get(&tap));
        assert_eq!(latest, Some(Timestamp::from_millis(1_000)));
    }

    #[test]
    fn a_claimed_end_is_covered_before_it_is_published() {
        let p = publisher();
        let end = Position {
            pour: 4,
            deletion: 0,
            keg_op: 0,
        };
        assert!(!p.covers(end));
        p.claim(end);
        assert!(p.covers(end));
        assert!(!p.covers(Position { pour: 5, ..end }));
    }
}
