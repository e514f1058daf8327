//! The server's one writer: every waiting insert goes into one transaction (group commit);
//! a deletion or keg operation, rare, gets one of its own. Nothing is answered before its
//! commit, and this server publishes what it committed from memory before it answers.
//! Each transaction ends with a NOTIFY saying where the log will end, so that the other
//! servers' tailers read it. (PostgreSQL holds a cluster-wide lock on its notification
//! queue from such a transaction's NOTIFY through its commit; every writing transaction
//! here holds the counters row that long anyway, so no writer waits the more for it.)

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Statement};

use super::events::{self, Event, Publisher};
use super::{
    CHANNEL, Health, MAX_BATCH, Mark, POUR_COLUMNS, Position, connect, db_id, out_of_resources,
    pour_from, unreachable,
};
use crate::decide::{
    self, Batch, DeleteDecision, Inserted, KegDecision, KegDone, KnownOp, KnownPour, Latest,
    PourDecision, Settings,
};
use crate::keg::{KegError, KegOp};
use crate::pour::{NewPour, Pour, Timestamp};
use crate::store::StoreError;

type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// What the writer is asked.
///
/// Changes are answered with the event they logged, which the store waits for its own
/// tailer to publish before it answers the request.
pub enum Command {
    Insert {
        pour: NewPour,
        key: Option<String>,
        reply: Reply<(Inserted, Mark)>,
    },
    Delete {
        id: u64,
        reply: Reply<(Option<Pour>, Mark)>,
    },
    Keg {
        op: KegOp,
        key: Option<String>,
        reply: Reply<(Result<KegDone, KegError>, Mark)>,
    },
    Close {
        reply: Reply<()>,
    },
}

type Insert = (NewPour, Option<String>, Reply<(Inserted, Mark)>);
/// The next insert waiting, if the next command waiting is one.
type More<'a> = &'a mut (dyn FnMut() -> Option<Insert> + Send);

/// The first wait before a database that cannot write is tried again, and the longest.
const PROBE_FIRST: Duration = Duration::from_millis(500);
const PROBE_MAX: Duration = Duration::from_secs(30);

pub struct Writer {
    config: tokio_postgres::Config,
    client: Option<Connection>,
    health: Arc<Health>,
    rules: Settings,
    /// This server's bar and bus: a change is decided once they have every change
    /// committed before it, and fed what it committed.
    publisher: Arc<Publisher>,
}

impl Writer {
    pub fn new(
        config: tokio_postgres::Config,
        health: Arc<Health>,
        rules: Settings,
        publisher: Arc<Publisher>,
    ) -> Writer {
        Writer {
            config,
            client: None,
            health,
            rules,
            publisher,
        }
    }

    /// Serves commands until `Close`, or until every sender is gone.
    pub async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let mut backoff = PROBE_FIRST;
        // A command taken while a batch was filled under the lock, that did not belong in it.
        let mut stash: Option<Command> = None;
        loop {
            // While the database cannot write, it is tried now and then even if no write
            // comes (a load balancer sends none to a degraded server).
            let first = if let Some(first) = stash.take() {
                Some(first)
            } else if self.health.refusing() {
                match tokio::time::timeout(backoff, commands.recv()).await {
                    Ok(first) => first,
                    Err(_) => {
                        self.probe().await;
                        backoff = (backoff * 2).min(PROBE_MAX);
                        continue;
                    }
                }
            } else {
                backoff = PROBE_FIRST;
                commands.recv().await
            };
            let Some(first) = first else {
                return;
            };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match commands.try_recv() {
                    Ok(command) => batch.push(command),
                    Err(_) => break,
                }
            }
            let mut inserts = Vec::new();
            for command in batch {
                match command {
                    Command::Insert { pour, key, reply } => inserts.push((pour, key, reply)),
                    Command::Delete { id, reply } => {
                        self.commit_inserts(std::mem::take(&mut inserts), None)
                            .await;
                        let deleted = self.delete(id).await;
                        let _ = reply.send(deleted);
                    }
                    Command::Keg { op, key, reply } => {
                        self.commit_inserts(std::mem::take(&mut inserts), None)
                            .await;
                        let done = self.keg(op, key).await;
                        let _ = reply.send(done);
                    }
                    Command::Close { reply } => {
                        self.commit_inserts(std::mem::take(&mut inserts), None)
                            .await;
                        let _ = reply.send(Ok(()));
                        return;
                    }
                }
            }
            // The last inserts of the batch may take those that come while the lock is
            // waited for, which would otherwise wait for the next transaction.
            let mut more = || {
                if stash.is_some() {
                    return None;
                }
                match commands.try_recv() {
                    Ok(Command::Insert { pour, key, reply }) => Some((pour, key, reply)),
                    Ok(other) => {
                        stash = Some(other);
                        None
                    }
                    Err(_) => None,
                }
            };
            self.commit_inserts(inserts, Some(&mut more)).await;
        }
    }

    /// Whether the database can write again: a pour row inserted and rolled back needs
    /// the same room in the pours table and its indexes as a real one.
    async fn probe(&mut self) {
        let Ok(connection) = self.connection().await else {
            return;
        };
        let tried = connection
            .client
            .batch_execute(
                "BEGIN;
                 INSERT INTO altair_pours (id, tap_id, volume, glass, poured_at_ms, device_time)
                 VALUES (-1, 0, 0, '', 0, false);
                 ROLLBACK",
            )
            .await;
        match tried {
            Ok(()) => self.health.wrote(),
            Err(e) => {
                // A failed statement leaves the transaction open on this connection.
                let _ = connection.client.batch_execute("ROLLBACK").await;
                let _ = self.failed(&Failure::Database(e), 0);
            }
        }
    }

    /// The writer's connection, made anew if there is none or it broke.
    async fn connection(&mut self) -> Result<&Connection, StoreError> {
        if self.client.as_ref().is_none_or(|c| c.client.is_closed()) {
            self.client = None;
            match connect_writer(&self.config).await {
                Ok(client) => self.client = Some(client),
                Err(e) => {
                    self.health.down(&e.to_string());
                    return Err(StoreError(format!("database unreachable: {e}")));
                }
            }
        }
        self.client
            .as_ref()
            .ok_or_else(|| StoreError("no database connection".into()))
    }

    /// What a failed transaction of `writes` requests means: the database may be gone
    /// (noted, and the connection dropped), or out of space (noted), or it refused this
    /// one, or this server's tailer is behind.
    fn failed(&mut self, e: &Failure, writes: u64) -> StoreError {
        match e {
            Failure::Database(e) => {
                if unreachable(e) {
                    self.health.down(&e.to_string());
                    self.client = None;
                } else if let Some(why) = out_of_resources(e) {
                    self.health.refused_write(&why, writes);
                }
                StoreError(format!("database: {e}"))
            }
            Failure::Behind => {
                StoreError("this server has not read the database's latest changes in time".into())
            }
        }
    }

    /// Commits `inserts` and, if `more` is given, those it gives once the lock is held.
    async fn commit_inserts(&mut self, mut inserts: Vec<Insert>, more: Option<More<'_>>) {
        if inserts.is_empty() {
            return;
        }
        let (rules, publisher) = (self.rules, self.publisher.clone());
        let result = match self.connection().await {
            Ok(connection) => insert(connection, &mut inserts, more, rules, &publisher).await,
            Err(e) => {
                for (_, _, reply) in inserts {
                    let _ = reply.send(Err(e.clone()));
                }
                return;
            }
        };
        match result {
            Ok(answers) => {
                self.health.up();
                let created: Vec<Event> = answers
                    .iter()
                    .filter_map(|(a, _)| match a {
                        Inserted::Created(pour) => Some(Event::Pour(pour.clone())),
                        _ => None,
                    })
                    .collect();
                if !created.is_empty() {
                    self.health.wrote();
                    self.publisher.publish(created);
                }
                for ((_, _, reply), answer) in inserts.into_iter().zip(answers) {
                    let _ = reply.send(Ok(answer));
                }
            }
            Err(e) => {
                let error = self.failed(&e, inserts.len() as u64);
                for (_, _, reply) in inserts {
                    let _ = reply.send(Err(error.clone()));
                }
            }
        }
    }

    async fn keg(
        &mut self,
        op: KegOp,
        key: Option<String>,
    ) -> Result<(Result<KegDone, KegError>, Mark), StoreError> {
        let (rules, publisher) = (self.rules, self.publisher.clone());
        let connection = self.connection().await?;
        let client = &connection.client;
        let work = keg(connection, op, key.as_deref(), rules, &publisher);
        match in_transaction(client, work).await {
            Ok((done, logged)) => {
                self.health.up();
                Ok((done, self.logged(logged).await))
            }
            Err(e) => Err(self.failed(&e, 1)),
        }
    }

    async fn delete(&mut self, id: u64) -> Result<(Option<Pour>, Mark), StoreError> {
        let publisher = self.publisher.clone();
        let connection = self.connection().await?;
        let client = &connection.client;
        match in_transaction(client, delete(connection, id, &publisher)).await {
            Ok((deleted, logged)) => {
                self.health.up();
                Ok((deleted, self.logged(logged).await))
            }
            Err(e) => Err(self.failed(&e, 1)),
        }
    }

    /// Publishes a committed change on this server and tells the others; its mark.
    async fn logged(&mut self, logged: Option<Logged>) -> Mark {
        let Some(Logged { event }) = logged else {
            return Mark::Nothing;
        };
        self.health.wrote();
        let mark = match &event {
            Event::Pour(pour) => Mark::Pour(pour.id),
            Event::Deletion { seq, .. } => Mark::Deletion(*seq),
            Event::KegOp { seq, .. } => Mark::KegOp(*seq),
        };
        self.publisher.publish([event]);
        mark
    }
}

/// A committed change's event.
struct Logged {
    event: Event,
}

/// Ends a transaction's work: this server will publish the log up to `end` itself, and the
/// others are told of it at the commit.
async fn announce(
    connection: &Connection,
    publisher: &Publisher,
    end: Position,
) -> Result<(), tokio_postgres::Error> {
    publisher.claim(end);
    let payload = end.payload();
    let notice: [&(dyn ToSql + Sync); 2] = [&CHANNEL, &payload];
    connection
        .client
        .execute(&connection.statements.notify, &notice)
        .await
        .map(|_| ())
}

/// A writer's connection. Its transactions hold the counters row that every server's
/// writes wait for: if this server stops talking mid-transaction (frozen, or cut off by
/// the network), PostgreSQL ends the transaction after a few seconds, releasing the row,
/// rather than when it notices the dead connection.
async fn connect_writer(
    config: &tokio_postgres::Config,
) -> Result<Connection, tokio_postgres::Error> {
    let client = connect(config).await?;
    client
        .batch_execute(
            "SET idle_in_transaction_session_timeout = '5s'; SET statement_timeout = '10s'",
        )
        .await?;
    let statements = Statements::prepare(&client).await?;
    Ok(Connection { client, statements })
}

/// The writer's connection and its statements, prepared once. Prepared, a statement goes
/// out the moment its future is first polled, so that several joined futures go out in
/// order in one flight (pipelined): a batch costs two round trips, whatever its size.
pub struct Connection {
    client: Client,
    statements: Statements,
}

struct Statements {
    lock_counters: Statement,
    known_keys: Statement,
    write_pours: Statement,
    /// The events after a position ([`events::prepare`]).
    events: Statement,
    notify: Statement,
}

impl Statements {
    async fn prepare(client: &Client) -> Result<Statements, tokio_postgres::Error> {
        Ok(Statements {
            lock_counters: client
                .prepare(
                    "SELECT last_pour_id, last_deletion, last_keg_op FROM altair_counters FOR UPDATE",
                )
                .await?,
            known_keys: client
                .prepare(
                    "SELECT k.key, p.id, p.tap_id, p.volume, p.glass, p.poured_at_ms, p.flags, p.venue, p.device_time, p.deleted, k.created_ms
                     FROM altair_keys k JOIN altair_pours p ON p.id = k.pour_id
                     WHERE k.key = ANY($1) AND k.created_ms > $2",
                )
                .await?,
            // One statement: a statement costs the database more than a row.
            write_pours: client
                .prepare(
                    "WITH pours AS (
                         INSERT INTO altair_pours (id, tap_id, volume, glass, poured_at_ms, device_time, flags, venue)
                         SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::float8[], $4::text[], $5::bigint[], $6::bool[], $7::int2[], $15::text[])
                     ), counts AS (
                         INSERT INTO altair_counts (tap_id, glass, pours, venue)
                         SELECT * FROM unnest($8::bigint[], $9::text[], $10::bigint[], $16::text[])
                         ON CONFLICT (venue, tap_id, glass) DO UPDATE SET pours = altair_counts.pours + excluded.pours
                     ), keys AS (
                         -- An expired key may still have its row: it is taken over.
                         INSERT INTO altair_keys (key, pour_id, created_ms)
                         SELECT key, id, $13 FROM unnest($11::text[], $12::bigint[]) AS k (key, id)
                         ON CONFLICT (key) DO UPDATE SET pour_id = excluded.pour_id, created_ms = excluded.created_ms
                     )
                     UPDATE altair_counters SET last_pour_id = $14",
                )
                .await?,
            events: events::prepare(client).await?,
            notify: client.prepare("SELECT pg_notify($1, $2)").await?,
        })
    }
}

/// Why a transaction did not commit.
#[derive(Debug)]
enum Failure {
    Database(tokio_postgres::Error),
    /// This server's tailer did not reach the log's end in time.
    Behind,
}

impl From<tokio_postgres::Error> for Failure {
    fn from(e: tokio_postgres::Error) -> Failure {
        Failure::Database(e)
    }
}

/// Runs `work` between BEGIN and COMMIT, or ROLLBACK if it fails.
async fn in_transaction<T>(
    client: &Client,
    work: impl Future<Output = Result<T, Failure>>,
) -> Result<T, Failure> {
    client.batch_execute("BEGIN").await?;
    match work.await {
        Ok(value) => {
            client.batch_execute("COMMIT").await?;
            Ok(value)
        }
        Err(e) => {
            let _ = client.batch_execute("ROLLBACK").await;
            Err(e)
        }
    }
}

/// The counters row, locked (held to the commit: the next writer waits): where the log
/// ends.
async fn lock_counters(connection: &Connection) -> Result<Position, tokio_postgres::Error> {
    let row = connection
        .client
        .query_one(&connection.statements.lock_counters, &[])
        .await?;
    let at = |i| u64::try_from(row.get::<_, i64>(i)).unwrap_or(0);
    Ok(Position {
        pour: at(0),
        deletion: at(1),
        keg_op: at(2),
    })
}

/// How long a writer holding the counters lock waits for its own tailer to reach the log's
/// end if reading it itself did not (well under the 5 s after which PostgreSQL ends an
/// idle transaction).
const CATCH_UP: Duration = Duration::from_secs(3);
/// Pages of events a writer reads itself before it leaves the rest to the tailer.
const CATCH_UP_PAGES: usize = 16;

/// Brings this server's bar to `end`, the log's end read under the counters lock, so that
/// it decides against every change committed before: what other servers committed since
/// it last published is read here, on the writer's connection, rather than waited for
/// from the tailer's notification.
async fn reach(
    connection: &Connection,
    publisher: &Publisher,
    end: Position,
) -> Result<(), Failure> {
    let client = &connection.client;
    let read = publisher.read_to(
        client,
        &connection.statements.events,
        Some(end),
        CATCH_UP_PAGES,
    );
    if read.await?.reached(end) {
        return Ok(());
    }
    let mut published = publisher.subscribe();
    let reached = published.wait_for(|at| at.reached(end));
    match tokio::time::timeout(CATCH_UP, reached).await {
        Ok(Ok(_)) => Ok(()),
        _ => Err(Failure::Behind),
    }
}

/// Has the rules decide a batch of inserts, in order, and writes what they decided; one
/// answer each. Two flights: BEGIN, the lock, the keys' pours and the taps' latest pour
/// times (read after the lock is granted, so every server decides against the same
/// previous pour); then, once this server's bar has reached the log's end, every write,
/// COMMIT and the notification. If any statement fails the transaction is aborted
/// (PostgreSQL answers its COMMIT with a rollback), and the error is returned.
async fn insert(
    connection: &Connection,
    inserts: &mut Vec<Insert>,
    more: Option<More<'_>>,
    rules: Settings,
    publisher: &Publisher,
) -> Result<Vec<(Inserted, Mark)>, Failure> {
    let (client, statements) = (&connection.client, &connection.statements);
    let now = Timestamp::now();
    let cutoff = rules.key_ttl.cutoff(now);
    let keys: Vec<String> = inserts.iter().filter_map(|(_, k, _)| k.clone()).collect();
    let first = futures::try_join!(
        client.batch_execute("BEGIN"),
        lock_counters(connection),
        known_keys(connection, &keys, cutoff),
    );
    let (_, end, mut key_rows) = match first {
        Ok(answers) => answers,
        Err(e) => return Err(rolled_back(client, e).await.into()),
    };
    if let Err(behind) = reach(connection, publisher, end).await {
        let _ = client.batch_execute("ROLLBACK").await;
        return Err(behind);
    }
    // What came while the lock was waited for joins this transaction (another server's
    // commit can take a while), its keys looked up now.
    let taken = inserts.len();
    if let Some(more) = more {
        while inserts.len() < MAX_BATCH
            && let Some(insert) = more()
        {
            inserts.push(insert);
        }
    }
    let late_keys: Vec<String> = inserts[taken..]
        .iter()
        .filter_map(|(_, k, _)| k.clone())
        .collect();
    match known_keys(connection, &late_keys, cutoff).await {
        Ok(rows) => key_rows.extend(rows),
        Err(e) => return Err(rolled_back(client, e).await.into()),
    }
    let requests: Vec<(&NewPour, Option<&str>)> =
        inserts.iter().map(|(p, k, _)| (p, k.as_deref())).collect();
    let bar = publisher.feed().bar();
    // The pours that live keys stored, whether the device timed them, whether they have
    // been deleted since, and when the key was made.
    let mut known: HashMap<String, (Pour, bool, bool, Timestamp)> = HashMap::new();
    let mut glasses = publisher.names();
    for row in key_rows {
        let pour = pour_from(&row, 1, &mut glasses);
        let created = Timestamp::from_millis(row.get(10));
        known.insert(row.get(0), (pour, row.get(8), row.get(9), created));
    }
    // Not held across an await: the decisions are made here, all at once.
    let decided = publisher.with_latest(|latest| {
        let state = bar.hold();
        let mut batch = Batch::new(rules, state.books(), latest, end.pour, now);
        let decided: Vec<PourDecision> = requests
            .iter()
            .map(|(request, key)| {
                let known = key.and_then(|k| known.get(k)).map(
                    |(pour, device_timestamp, deleted, created)| KnownPour {
                        pour,
                        device_timestamp: *device_timestamp,
                        created: *created,
                        deleted: *deleted,
                    },
                );
                batch.pour((*request).clone(), *key, known)
            })
            .collect::<Vec<PourDecision>>();
        decided
    });
    let mut answers = Vec::with_capacity(requests.len());
    let mut rows = NewRows::default();
    let mut counts: HashMap<(Arc<str>, i64, Arc<str>), i64> = HashMap::new();
    for ((request, key), decision) in requests.iter().zip(decided) {
        let pour = match decision {
            PourDecision::Answer(answer) => {
                answers.push((answer, Mark::Nothing));
                continue;
            }
            PourDecision::Record(pour) => pour,
        };
        let id = db_id(pour.id);
        rows.ids.push(id);
        rows.taps.push(i64::from(pour.tap_id));
        rows.volumes.push(pour.volume);
        rows.glasses.push(pour.glass.to_string());
        rows.times.push(pour.timestamp.millis());
        rows.device_times.push(request.device_timestamp);
        rows.flags.push(i16::from(pour.flags.bits()));
        // The default venue's pours are stored without one: whichever --default-venue names.
        let named = pour.venue != *publisher.default_venue();
        rows.venues.push(named.then(|| pour.venue.to_string()));
        let counted: Arc<str> = if named { pour.venue.clone() } else { "".into() };
        *counts
            .entry((counted, i64::from(pour.tap_id), pour.glass.clone()))
            .or_default() += 1;
        if let Some(key) = key {
            rows.keys.push((*key).to_owned());
            rows.key_ids.push(id);
        }
        let mark = Mark::Pour(pour.id);
        answers.push((Inserted::Created(pour), mark));
    }
    let Some(&last_id) = rows.ids.last() else {
        return match client.batch_execute("COMMIT").await {
            Ok(()) => Ok(answers),
            Err(e) => Err(rolled_back(client, e).await.into()),
        };
    };
    let now = now.millis();
    let mut count_venues: Vec<&str> = Vec::with_capacity(counts.len());
    let (count_taps, (count_glasses, count_pours)): (Vec<i64>, (Vec<&str>, Vec<i64>)) = counts
        .iter()
        .map(|((venue, tap, glass), n)| {
            count_venues.push(venue);
            (*tap, (&**glass, *n))
        })
        .unzip();
    let written: [&(dyn ToSql + Sync); 16] = [
        &rows.ids,
        &rows.taps,
        &rows.volumes,
        &rows.glasses,
        &rows.times,
        &rows.device_times,
        &rows.flags,
        &count_taps,
        &count_glasses,
        &count_pours,
        &rows.keys,
        &rows.key_ids,
        &now,
        &last_id,
        &rows.venues,
        &count_venues,
    ];
    let end = Position {
        pour: u64::try_from(last_id).unwrap_or(0),
        ..end
    };
    publisher.claim(end);
    let payload = end.payload();
    let notice: [&(dyn ToSql + Sync); 2] = [&CHANNEL, &payload];
    let written = futures::try_join!(
        client.execute(&statements.write_pours, &written),
        client.execute(&statements.notify, &notice),
        client.batch_execute("COMMIT"),
    );
    match written {
        Ok(_) => Ok(answers),
        Err(e) => Err(rolled_back(client, e).await.into()),
    }
}

/// The rows of the pours that `keys` stored, those made after `cutoff` (ms).
async fn known_keys(
    connection: &Connection,
    keys: &[String],
    cutoff: i64,
) -> Result<Vec<tokio_postgres::Row>, tokio_postgres::Error> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let statement = &connection.statements.known_keys;
    connection.client.query(statement, &[&keys, &cutoff]).await
}

/// Ends an aborted transaction, if the connection still stands; returns the error.
async fn rolled_back(client: &Client, error: tokio_postgres::Error) -> tokio_postgres::Error {
    let _ = client.batch_execute("ROLLBACK").await;
    error
}

/// The columns of the pours a batch stores.
#[derive(Default)]
struct NewRows {
    ids: Vec<i64>,
    taps: Vec<i64>,
    volumes: Vec<f64>,
    glasses: Vec<String>,
    times: Vec<i64>,
    device_times: Vec<bool>,
    flags: Vec<i16>,
    venues: Vec<Option<String>>,
    keys: Vec<String>,
    key_ids: Vec<i64>,
}

/// Has the rules decide a deletion of pour `id` and, if it is recorded, marks the pour
/// deleted and logs the deletion after the last pour; the pour, or None if there was none,
/// and the deletion.
async fn delete(
    connection: &Connection,
    id: u64,
    publisher: &Publisher,
) -> Result<(Option<Pour>, Option<Logged>), Failure> {
    let client = &connection.client;
    let end = lock_counters(connection).await?;
    // Published from memory once committed, it must follow every change before it here.
    reach(connection, publisher, end).await?;
    let (last_pour_id, last_deletion) = (db_id(end.pour), db_id(end.deletion));
    let row = client
        .query_opt(
            &format!("SELECT {POUR_COLUMNS} FROM altair_pours WHERE id = $1 AND NOT deleted"),
            &[&db_id(id)],
        )
        .await?;
    let (Some(row), DeleteDecision::Record) = (&row, decide::delete(row.is_some())) else {
        return Ok((None, None));
    };
    let pour = pour_from(row, 0, &mut publisher.names());
    let stored_venue: Option<&str> =
        (pour.venue != *publisher.default_venue()).then_some(&*pour.venue);
    let seq = last_deletion + 1;
    client
        .execute(
            "UPDATE altair_pours SET deleted = true WHERE id = $1",
            &[&db_id(id)],
        )
        .await?;
    client
        .execute(
            "INSERT INTO altair_deletions (seq, after_pour_id, pour_id) VALUES ($1, $2, $3)",
            &[&seq, &last_pour_id, &db_id(id)],
        )
        .await?;
    client
        .execute(
            "UPDATE altair_counts SET pours = pours - 1
             WHERE venue = coalesce($3, '') AND tap_id = $1 AND glass = $2",
            &[&i64::from(pour.tap_id), &&*pour.glass, &stored_venue],
        )
        .await?;
    client
        .execute("UPDATE altair_counters SET last_deletion = $1", &[&seq])
        .await?;
    let seq = u64::try_from(seq).unwrap_or(0);
    let end = Position {
        deletion: seq,
        ..end
    };
    announce(connection, publisher, end).await?;
    let logged = Logged {
        event: Event::Deletion {
            seq,
            after: end.pour,
            pour: pour.clone(),
        },
    };
    Ok((Some(pour), Some(logged)))
}

/// Has the rules decide a keg operation against the kegs as of the log's end and, if it
/// is recorded, logs it after the last pour under its idempotency key; what became of it,
/// and the operation logged.
async fn keg(
    connection: &Connection,
    op: KegOp,
    key: Option<&str>,
    rules: Settings,
    publisher: &Publisher,
) -> Result<(Result<KegDone, KegError>, Option<Logged>), Failure> {
    let client = &connection.client;
    let now = Timestamp::now();
    let end = lock_counters(connection).await?;
    let known = match key {
        Some(key) => {
            client
                .query_opt(
                    "SELECT op, keg_id, key_created_ms FROM altair_keg_ops
                     WHERE key = $1 AND key_created_ms > $2",
                    &[&key, &rules.key_ttl.cutoff(now)],
                )
                .await?
        }
        None => None,
    };
    let known_op = known.as_ref().and_then(|row| KegOp::from_json(row.get(0)));
    let known = known.as_ref().map(|row| KnownOp {
        op: known_op.as_ref(),
        keg_id: u64::try_from(row.get::<_, i64>(1)).unwrap_or(0),
        created: Timestamp::from_millis(row.get(2)),
    });
    reach(connection, publisher, end).await?;
    let decision = {
        let state = publisher.feed().bar().hold();
        let no_pours = Latest::default();
        Batch::new(rules, state.books(), &no_pours, end.pour, now).keg(&op, key, known)
    };
    let (keg_id, after, op) = match decision {
        KegDecision::Answer(done) => return Ok((Ok(done), None)),
        KegDecision::Refused(e) => return Ok((Err(e), None)),
        KegDecision::Record {
            keg_id,
            after,
            narrowed,
        } => (keg_id, after, narrowed.unwrap_or(op)),
    };
    if let Some(key) = key {
        // An expired key may still have its row: it is taken over.
        client
            .execute(
                "UPDATE altair_keg_ops SET key = NULL WHERE key = $1",
                &[&key],
            )
            .await?;
    }
    let seq = end.keg_op + 1;
    client
        .execute(
            "INSERT INTO altair_keg_ops (seq, after_pour_id, op, keg_id, key, key_created_ms)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &db_id(seq),
                &db_id(after),
                &op.to_json(),
                &db_id(keg_id),
                &key,
                &key.map(|_| now.millis()),
            ],
        )
        .await?;
    connection
        .client
        .execute(
            "UPDATE altair_counters SET last_keg_op = $1",
            &[&db_id(seq)],
        )
        .await?;
    let end = Position { keg_op: seq, ..end };
    announce(connection, publisher, end).await?;
    let logged = Logged {
        event: Event::KegOp {
            seq,
            after,
            op: Some(op),
        },
    };
    Ok((Ok(KegDone::Applied(keg_id)), Some(logged)))
}
