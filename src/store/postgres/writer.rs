//! The server's one writer: every waiting insert goes into one transaction (group commit);
//! a deletion, rare, gets one of its own. Nothing is answered before its commit, and a
//! payload-free NOTIFY follows each commit, outside it: a NOTIFY inside the transaction
//! would hold a cluster-wide lock through the commit.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Statement};

use super::{
    CHANNEL, Glasses, Health, MAX_BATCH, Mark, Position, connect, db_id, out_of_resources,
    pour_from, unreachable,
};
use crate::anomaly::Burst;
use crate::bus::Bus;
use crate::keg::{KegError, KegOp, microlitres};
use crate::pour::{Flag, NewPour, Pour, Timestamp};
use crate::store::keys::Fingerprint;
use crate::store::{Inserted, KegDone, StoreError};

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

/// The first wait before a database that cannot write is tried again, and the longest.
const PROBE_FIRST: Duration = Duration::from_millis(500);
const PROBE_MAX: Duration = Duration::from_secs(30);

pub struct Writer {
    config: tokio_postgres::Config,
    client: Option<Connection>,
    health: Arc<Health>,
    key_ttl_ms: i64,
    burst: Burst,
    /// What this server's tailer has published: kegs are judged once it has reached
    /// every change committed before.
    view: View,
    /// Wakes this server's tailer at once, without the round trip of a notification.
    local_tailer: Arc<Notify>,
}

impl Writer {
    pub fn new(
        config: tokio_postgres::Config,
        health: Arc<Health>,
        key_ttl: Duration,
        burst: Burst,
        bus: Bus,
        published: watch::Receiver<Position>,
        local_tailer: Arc<Notify>,
    ) -> Writer {
        Writer {
            config,
            client: None,
            health,
            key_ttl_ms: i64::try_from(key_ttl.as_millis()).unwrap_or(i64::MAX),
            burst,
            view: View { bus, published },
            local_tailer,
        }
    }

    /// Serves commands until `Close`, or until every sender is gone.
    pub async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let mut backoff = PROBE_FIRST;
        loop {
            // While the database cannot write, it is tried now and then even if no write
            // comes (a load balancer sends none to a degraded server).
            let first = if self.health.refusing() {
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
                        self.commit_inserts(std::mem::take(&mut inserts)).await;
                        let deleted = self.delete(id).await;
                        let _ = reply.send(deleted);
                    }
                    Command::Keg { op, key, reply } => {
                        self.commit_inserts(std::mem::take(&mut inserts)).await;
                        let done = self.keg(op, key).await;
                        let _ = reply.send(done);
                    }
                    Command::Close { reply } => {
                        self.commit_inserts(std::mem::take(&mut inserts)).await;
                        let _ = reply.send(Ok(()));
                        return;
                    }
                }
            }
            self.commit_inserts(inserts).await;
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

    async fn commit_inserts(&mut self, inserts: Vec<Insert>) {
        if inserts.is_empty() {
            return;
        }
        let (key_ttl_ms, burst) = (self.key_ttl_ms, self.burst);
        let mut view = self.view.clone();
        let result = match self.connection().await {
            Ok(connection) => {
                let requests: Vec<(&NewPour, Option<&str>)> =
                    inserts.iter().map(|(p, k, _)| (p, k.as_deref())).collect();
                insert(connection, &requests, key_ttl_ms, burst, &mut view).await
            }
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
                if answers
                    .iter()
                    .any(|(a, _)| matches!(a, Inserted::Created(_)))
                {
                    self.health.wrote();
                }
                self.notify().await;
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
        let mut view = self.view.clone();
        let cutoff = Timestamp::now().millis().saturating_sub(self.key_ttl_ms);
        let connection = self.connection().await?;
        let client = &connection.client;
        let work = keg(connection, op, key.as_deref(), cutoff, &mut view);
        match in_transaction(client, work).await {
            Ok(done) => {
                self.health.up();
                if done.1 != Mark::Nothing {
                    self.health.wrote();
                    self.notify().await;
                }
                Ok(done)
            }
            Err(e) => Err(self.failed(&e, 1)),
        }
    }

    async fn delete(&mut self, id: u64) -> Result<(Option<Pour>, Mark), StoreError> {
        let connection = self.connection().await?;
        let client = &connection.client;
        match in_transaction(client, delete(connection, id)).await {
            Ok(deleted) => {
                self.health.up();
                if deleted.0.is_some() {
                    self.health.wrote();
                    self.notify().await;
                }
                Ok(deleted)
            }
            Err(e) => Err(self.failed(&e, 1)),
        }
    }

    /// Wakes every server's tailer; if it is lost, their polling finds the events.
    async fn notify(&mut self) {
        self.local_tailer.notify_one();
        if let Some(connection) = &self.client
            && let Err(e) = connection
                .client
                .batch_execute(&format!("NOTIFY {CHANNEL}"))
                .await
        {
            log::debug!("NOTIFY failed (the tailers' polling covers it): {e}");
        }
    }
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
    latest_of_taps: Statement,
    insert_pours: Statement,
    set_latest: Statement,
    insert_keys: Statement,
    add_counts: Statement,
    set_last_pour: Statement,
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
                    "SELECT k.key, p.id, p.tap_id, p.volume, p.glass, p.poured_at_ms, p.flags, p.device_time, p.deleted
                     FROM altair_keys k JOIN altair_pours p ON p.id = k.pour_id
                     WHERE k.key = ANY($1) AND k.created_ms > $2",
                )
                .await?,
            latest_of_taps: client
                .prepare("SELECT tap_id, latest_pour_ms FROM altair_taps WHERE tap_id = ANY($1)")
                .await?,
            insert_pours: client
                .prepare(
                    "INSERT INTO altair_pours (id, tap_id, volume, glass, poured_at_ms, device_time, flags)
                     SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::float8[], $4::text[], $5::bigint[], $6::bool[], $7::int2[])",
                )
                .await?,
            set_latest: client
                .prepare(
                    "INSERT INTO altair_taps (tap_id, latest_pour_ms)
                     SELECT * FROM unnest($1::bigint[], $2::bigint[])
                     ON CONFLICT (tap_id) DO UPDATE
                     SET latest_pour_ms = greatest(altair_taps.latest_pour_ms, excluded.latest_pour_ms)",
                )
                .await?,
            // An expired key may still have its row: it is taken over.
            insert_keys: client
                .prepare(
                    "INSERT INTO altair_keys (key, pour_id, created_ms)
                     SELECT key, id, $3 FROM unnest($1::text[], $2::bigint[]) AS k (key, id)
                     ON CONFLICT (key) DO UPDATE SET pour_id = excluded.pour_id, created_ms = excluded.created_ms",
                )
                .await?,
            add_counts: client
                .prepare(
                    "INSERT INTO altair_counts (tap_id, glass, pours)
                     SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[])
                     ON CONFLICT (tap_id, glass) DO UPDATE SET pours = altair_counts.pours + excluded.pours",
                )
                .await?,
            set_last_pour: client
                .prepare("UPDATE altair_counters SET last_pour_id = $1")
                .await?,
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
/// end (well under the 5 s after which PostgreSQL ends an idle transaction).
const CATCH_UP: Duration = Duration::from_secs(3);

/// The kegs as this server's tailer has published them.
#[derive(Clone)]
struct View {
    bus: Bus,
    published: watch::Receiver<Position>,
}

impl View {
    /// Waits until this server has published the log up to `end`, so that its kegs are
    /// the database's.
    async fn reach(&mut self, end: Position) -> Result<&Bus, Failure> {
        let reached = self.published.wait_for(|at| at.reached(end));
        match tokio::time::timeout(CATCH_UP, reached).await {
            Ok(Ok(_)) => Ok(&self.bus),
            _ => Err(Failure::Behind),
        }
    }
}

/// Decides and writes a batch of inserts, in order; one answer each. Two flights: BEGIN,
/// the lock, the keys' pours and the taps' latest pour times (read after the lock is
/// granted, so every server judges bursts against the same previous pour); then, once this
/// server's kegs have reached the log's end (for the emptyKeg flag), every write and
/// COMMIT. If any statement fails the transaction is aborted (PostgreSQL answers its
/// COMMIT with a rollback), and the error is returned.
async fn insert(
    connection: &Connection,
    requests: &[(&NewPour, Option<&str>)],
    key_ttl_ms: i64,
    burst: Burst,
    view: &mut View,
) -> Result<Vec<(Inserted, Mark)>, Failure> {
    let (client, statements) = (&connection.client, &connection.statements);
    let now = Timestamp::now().millis();
    let keys: Vec<&str> = requests.iter().filter_map(|(_, k)| *k).collect();
    let cutoff = now.saturating_sub(key_ttl_ms);
    let looked_up = async {
        if keys.is_empty() {
            Ok(Vec::new())
        } else {
            client
                .query(&statements.known_keys, &[&keys, &cutoff])
                .await
        }
    };
    let mut taps: Vec<i64> = requests.iter().map(|(p, _)| i64::from(p.tap_id)).collect();
    taps.sort_unstable();
    taps.dedup();
    let taps: [&(dyn ToSql + Sync); 1] = [&taps];
    let first = futures::try_join!(
        client.batch_execute("BEGIN"),
        lock_counters(connection),
        looked_up,
        client.query(&statements.latest_of_taps, &taps),
    );
    let (_, end, key_rows, tap_rows) = match first {
        Ok(answers) => answers,
        Err(e) => return Err(rolled_back(client, e).await.into()),
    };
    let bus = match view.reach(end).await {
        Ok(bus) => bus,
        Err(behind) => {
            let _ = client.batch_execute("ROLLBACK").await;
            return Err(behind);
        }
    };
    let mut last_id = db_id(end.pour);
    // Volume decided per tap in this batch, not yet drawn from its keg.
    let mut pending: HashMap<u32, i64> = HashMap::new();
    // The pours that live keys stored, whether the device timed them, and whether they
    // have been deleted since.
    let mut known: HashMap<String, (Pour, bool, bool)> = HashMap::new();
    let mut glasses = Glasses::default();
    for row in key_rows {
        let pour = pour_from(&row, 1, &mut glasses);
        known.insert(row.get(0), (pour, row.get(7), row.get(8)));
    }
    let mut latest: HashMap<u32, Timestamp> = tap_rows
        .iter()
        .map(|row| {
            let tap: i64 = row.get(0);
            let at = Timestamp::from_millis(row.get(1));
            (u32::try_from(tap).unwrap_or(0), at)
        })
        .collect();
    let mut answers = Vec::with_capacity(requests.len());
    let mut rows = NewRows::default();
    let mut counts: HashMap<(i64, Arc<str>), i64> = HashMap::new();
    for (request, key) in requests {
        if let Some((stored, device_time, deleted)) = key.and_then(|k| known.get(k)) {
            let same =
                Fingerprint::of_stored(stored, *device_time) == Fingerprint::of_request(request);
            let answer = match (same, deleted) {
                (false, _) => Inserted::Conflict,
                (true, true) => Inserted::Deleted(stored.id),
                (true, false) => Inserted::Replayed(stored.clone()),
            };
            answers.push((answer, Mark::Nothing));
            continue;
        }
        last_id += 1;
        let mut request = (*request).clone();
        if burst.between(latest.get(&request.tap_id).copied(), &request) {
            request.flags = request.flags.with(Flag::Burst);
        }
        let drawn = pending.entry(request.tap_id).or_default();
        if bus.cellar(|c| c.empty_before(request.tap_id, *drawn)) {
            request.flags = request.flags.with(Flag::EmptyKeg);
        }
        *drawn += microlitres(request.volume);
        let seen = latest.entry(request.tap_id).or_insert(request.timestamp);
        *seen = (*seen).max(request.timestamp);
        let pour = request.clone().with_id(u64::try_from(last_id).unwrap_or(0));
        rows.ids.push(last_id);
        rows.taps.push(i64::from(pour.tap_id));
        rows.volumes.push(pour.volume);
        rows.glasses.push(pour.glass.to_string());
        rows.times.push(pour.timestamp.millis());
        rows.device_times.push(request.device_timestamp);
        rows.flags.push(i16::from(pour.flags.bits()));
        *counts
            .entry((i64::from(pour.tap_id), pour.glass.clone()))
            .or_default() += 1;
        if let Some(key) = key {
            rows.keys.push((*key).to_owned());
            rows.key_ids.push(last_id);
            known.insert(
                (*key).to_owned(),
                (pour.clone(), request.device_timestamp, false),
            );
        }
        let mark = Mark::Pour(pour.id);
        answers.push((Inserted::Created(pour), mark));
    }
    if rows.ids.is_empty() {
        return match client.batch_execute("COMMIT").await {
            Ok(()) => Ok(answers),
            Err(e) => Err(rolled_back(client, e).await.into()),
        };
    }
    let (count_taps, (count_glasses, count_pours)): (Vec<i64>, (Vec<&str>, Vec<i64>)) = counts
        .iter()
        .map(|((tap, glass), n)| (*tap, (&**glass, *n)))
        .unzip();
    let keyed = async {
        if rows.keys.is_empty() {
            Ok(0)
        } else {
            client
                .execute(&statements.insert_keys, &[&rows.keys, &rows.key_ids, &now])
                .await
        }
    };
    let pours: [&(dyn ToSql + Sync); 7] = [
        &rows.ids,
        &rows.taps,
        &rows.volumes,
        &rows.glasses,
        &rows.times,
        &rows.device_times,
        &rows.flags,
    ];
    let (latest_taps, latest_times): (Vec<i64>, Vec<i64>) = latest
        .iter()
        .map(|(tap, at)| (i64::from(*tap), at.millis()))
        .unzip();
    let latest: [&(dyn ToSql + Sync); 2] = [&latest_taps, &latest_times];
    let counted: [&(dyn ToSql + Sync); 3] = [&count_taps, &count_glasses, &count_pours];
    let counters: [&(dyn ToSql + Sync); 1] = [&last_id];
    let written = futures::try_join!(
        client.execute(&statements.insert_pours, &pours),
        client.execute(&statements.set_latest, &latest),
        keyed,
        client.execute(&statements.add_counts, &counted),
        client.execute(&statements.set_last_pour, &counters),
        client.batch_execute("COMMIT"),
    );
    match written {
        Ok(_) => Ok(answers),
        Err(e) => Err(rolled_back(client, e).await.into()),
    }
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
    keys: Vec<String>,
    key_ids: Vec<i64>,
}

/// Marks pour `id` deleted and logs the deletion, after the last pour; the pour, or None if
/// there was none, and the deletion.
async fn delete(connection: &Connection, id: u64) -> Result<(Option<Pour>, Mark), Failure> {
    let client = &connection.client;
    let end = lock_counters(connection).await?;
    let (last_pour_id, last_deletion) = (db_id(end.pour), db_id(end.deletion));
    let Some(row) = client
        .query_opt(
            "UPDATE altair_pours SET deleted = true WHERE id = $1 AND NOT deleted
             RETURNING id, tap_id, volume, glass, poured_at_ms, flags",
            &[&db_id(id)],
        )
        .await?
    else {
        return Ok((None, Mark::Nothing));
    };
    let pour = pour_from(&row, 0, &mut Glasses::default());
    let seq = last_deletion + 1;
    client
        .execute(
            "INSERT INTO altair_deletions (seq, after_pour_id, pour_id) VALUES ($1, $2, $3)",
            &[&seq, &last_pour_id, &db_id(id)],
        )
        .await?;
    client
        .execute(
            "UPDATE altair_counts SET pours = pours - 1 WHERE tap_id = $1 AND glass = $2",
            &[&i64::from(pour.tap_id), &&*pour.glass],
        )
        .await?;
    client
        .execute("UPDATE altair_counters SET last_deletion = $1", &[&seq])
        .await?;
    Ok((Some(pour), Mark::Deletion(u64::try_from(seq).unwrap_or(0))))
}

/// Checks a keg operation against the kegs as of the log's end and, if it applies, logs it
/// after the last pour, under its idempotency key; what became of it, and the operation
/// logged. A key seen since `cutoff` logs nothing and answers for the operation it came
/// with.
async fn keg(
    connection: &Connection,
    op: KegOp,
    key: Option<&str>,
    cutoff: i64,
    view: &mut View,
) -> Result<(Result<KegDone, KegError>, Mark), Failure> {
    let client = &connection.client;
    let end = lock_counters(connection).await?;
    if let Some(key) = key {
        let known = client
            .query_opt(
                "SELECT op, keg_id FROM altair_keg_ops WHERE key = $1 AND key_created_ms > $2",
                &[&key, &cutoff],
            )
            .await?;
        if let Some(row) = known {
            let same =
                KegOp::from_json(row.get(0)).is_some_and(|o| o.fingerprint() == op.fingerprint());
            let keg_id = u64::try_from(row.get::<_, i64>(1)).unwrap_or(0);
            let done = if same {
                KegDone::Replayed(keg_id)
            } else {
                KegDone::Conflict
            };
            return Ok((Ok(done), Mark::Nothing));
        }
        // An expired key may still have its row: it is taken over.
        client
            .execute(
                "UPDATE altair_keg_ops SET key = NULL WHERE key = $1",
                &[&key],
            )
            .await?;
    }
    let checked = view.reach(end).await?.cellar(|c| c.check(&op));
    let id = match checked {
        Ok(id) => id,
        Err(e) => return Ok((Err(e), Mark::Nothing)),
    };
    let seq = end.keg_op + 1;
    let now = Timestamp::now().millis();
    client
        .execute(
            "INSERT INTO altair_keg_ops (seq, after_pour_id, op, keg_id, key, key_created_ms)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &db_id(seq),
                &db_id(end.pour),
                &op.to_json(),
                &db_id(id),
                &key,
                &key.map(|_| now),
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
    Ok((Ok(KegDone::Applied(id)), Mark::KegOp(seq)))
}
