//! The PostgreSQL store: several servers share one database.
//!
//! Each server has one writer task that commits whatever requests are waiting as one
//! transaction (group commit). Every writing transaction first locks the one row of
//! `altair_counters` and takes pour ids and deletion numbers from it, and holds that lock to
//! its commit: so ids follow commit order on every server, and a reader that sees event N
//! has already been able to see every event below it. (A sequence would not do: its values
//! are taken at insert, and two transactions can commit out of order, so that a reader
//! tailing `id > last` skips the lower id for good.)
//!
//! The log every server follows is the pours in id order with the deletions between them
//! (`altair_deletions`, each after the pour that was last when it committed): a pour is
//! written once, and following the log is a range scan of the primary key.
//!
//! Every server feeds the log to its own bar and bus, in order, once ([`events::Publisher`]):
//! its own changes from memory as it commits them, the others' as its tailer or its
//! writer reads them. That is how a pour posted to one server reaches the subscribers and
//! the report of every server. A `NOTIFY` after each commit, saying where the log ends,
//! wakes the tailers that have not reached it; they also poll, so a lost notification or
//! a dropped connection delays an event and never loses it.

mod events;
mod outbox;
pub mod portable;
mod schema;
mod tailer;
mod thermometer;
mod writer;

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use futures::TryStreamExt;
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::NoTls;
use tokio_postgres::types::ToSql;
use tokio_util::sync::CancellationToken;

pub use outbox::PgOutbox;
pub use schema::SchemaError;
pub use thermometer::PgThermometer;

/// A pooled connection, for the outbox and the thermometer.
async fn pooled(pool: &Pool) -> Result<deadpool_postgres::Object, StoreError> {
    pool.get()
        .await
        .map_err(|e| StoreError(format!("database unreachable: {e}")))
}

/// A statement that failed, as the store says it.
fn failed(e: tokio_postgres::Error) -> StoreError {
    StoreError(format!("database: {e}"))
}

use super::{Condition, Inserted, KegDone, ListQuery, Page, Stats, Store, StoreError};
use crate::decide::{self, KeyTtl};
use crate::feed::Feed;
use crate::keg::{KegError, KegOp};
use crate::pour::{Flags, NewPour, Pour, Timestamp};

/// The channel name of the wake-up notifications.
const CHANNEL: &str = "altair_log";
/// Requests per transaction at most.
const MAX_BATCH: usize = 512;
/// Connections for reads.
const POOL_SIZE: usize = 8;
/// How long a change waits for this server to publish it before it is answered anyway.
const PUBLISH_PATIENCE: Duration = Duration::from_secs(1);
/// How long a starting server waits for its database.
const START_PATIENCE: Duration = Duration::from_secs(60);
/// How long connecting may take before the database counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Settings from the configuration.
#[derive(Clone)]
pub struct PgSettings {
    /// A `postgres://` URL or `key=value` connection string.
    pub url: String,
    /// The password, from a file; wins over one in the URL.
    pub password: Option<String>,
    /// The rules the writer decides by (burst, idempotency keys' life).
    pub rules: decide::Settings,
    /// How often each server looks for new events without a notification.
    pub poll_interval: Duration,
    /// The venue of pours stored without one (`--default-venue`).
    pub default_venue: Arc<str>,
}

/// Why the PostgreSQL store could not open.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error("--database-url is not a connection string: {0}")]
    Url(tokio_postgres::Error),
    #[error("cannot reach PostgreSQL at {place}: {}", explain(source))]
    Connect {
        place: String,
        source: tokio_postgres::Error,
    },
    #[error("PostgreSQL at {place}: {source}")]
    Schema { place: String, source: SchemaError },
    #[error("PostgreSQL at {place}: reading the pours: {}", explain(source))]
    Load {
        place: String,
        source: tokio_postgres::Error,
    },
    #[error("PostgreSQL: {0}")]
    Pool(String),
}

/// What opening found, for the start-up log.
#[derive(Debug, Clone)]
pub struct PgOpened {
    /// Where, without credentials: `host=/run/postgresql dbname=altair user=altair`.
    pub place: String,
    pub schema: i32,
    /// Migrations applied now.
    pub migrated: Vec<i32>,
    pub pours: u64,
    pub last_id: u64,
    pub took: Duration,
}

/// Whether the database answers, as the writer and the tailer last found, and whether it
/// takes writes; each change is logged once.
pub struct Health {
    state: Mutex<HealthState>,
}

struct HealthState {
    down: Option<(Instant, String)>,
    /// The database answers but cannot write (its disk is full): since when, why, and how
    /// many writes it refused.
    refusing: Option<(Instant, String, u64)>,
}

impl Health {
    fn new() -> Health {
        Health {
            state: Mutex::new(HealthState {
                down: None,
                refusing: None,
            }),
        }
    }

    /// The database refused a write for want of space or another resource, a condition
    /// that passes: writes answer 503 until one succeeds.
    fn refused_write(&self, why: &str, writes: u64) {
        let mut state = self.lock();
        match &mut state.refusing {
            Some((_, _, refused)) => *refused += writes,
            None => {
                log::error!(
                    "store: PostgreSQL cannot write ({why}); writes answer 503 until it can"
                );
                state.refusing = Some((Instant::now(), why.to_owned(), writes));
            }
        }
    }

    /// Whether writes are being refused.
    fn refusing(&self) -> bool {
        self.lock().refusing.is_some()
    }

    /// A write was committed.
    fn wrote(&self) {
        let mut state = self.lock();
        if let Some((since, _, refused)) = state.refusing.take() {
            log::warn!(
                "store: PostgreSQL is writable again after {}, {} writes refused",
                crate::human::duration(since.elapsed()),
                crate::human::count(refused)
            );
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HealthState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The database answered.
    fn up(&self) {
        let mut state = self.lock();
        if let Some((since, _)) = state.down.take() {
            log::warn!(
                "store: PostgreSQL is reachable again after {}",
                crate::human::duration(since.elapsed())
            );
        }
    }

    /// The database did not answer.
    fn down(&self, why: &str) {
        let mut state = self.lock();
        if state.down.is_none() {
            log::error!(
                "store: PostgreSQL is unreachable ({why}); writes and reads answer 503 until it is back"
            );
            state.down = Some((Instant::now(), why.to_owned()));
        }
    }

    fn condition(&self) -> Condition {
        let state = self.lock();
        match (&state.down, &state.refusing) {
            (Some((since, why)), _) => Condition::Degraded {
                reason: format!("database unreachable: {why}"),
                since: *since,
            },
            (None, Some((since, why, _))) => Condition::Degraded {
                reason: format!("database cannot write: {why}"),
                since: *since,
            },
            (None, None) => Condition::Ready,
        }
    }
}

/// The store.
pub struct PgStore {
    pool: Pool,
    writer: mpsc::Sender<writer::Command>,
    publisher: Arc<events::Publisher>,
    health: Arc<Health>,
    stop: CancellationToken,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// For exports, which read on a connection of their own.
    settings: PgSettings,
}

/// `host=... dbname=... user=...`: where, never with the password.
fn place(config: &tokio_postgres::Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(name) => name.clone(),
            tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .collect();
    let port = config
        .get_ports()
        .first()
        .map(|p| format!(" port={p}"))
        .unwrap_or_default();
    format!(
        "host={}{port} dbname={} user={}",
        hosts.join(","),
        config.get_dbname().unwrap_or("(default)"),
        config.get_user().unwrap_or("(default)")
    )
}

/// The connection settings, with the password from its file.
fn connection_config(settings: &PgSettings) -> Result<tokio_postgres::Config, PgError> {
    let mut config = tokio_postgres::Config::from_str(&settings.url).map_err(PgError::Url)?;
    if let Some(password) = &settings.password {
        config.password(password.as_bytes());
    }
    config.connect_timeout(CONNECT_TIMEOUT);
    // A database host that vanishes without a word is noticed in seconds, not hours.
    config.keepalives(true);
    config.keepalives_idle(Duration::from_secs(10));
    config.application_name("altair");
    Ok(config)
}

/// A connection, its driver running in the background.
async fn connect(
    config: &tokio_postgres::Config,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            log::debug!("PostgreSQL connection ended: {e}");
        }
    });
    Ok(client)
}

/// A first connection, waited for: servers and their database start together, and the
/// database is often the slower.
async fn connect_at_start(
    config: &tokio_postgres::Config,
    place: &str,
) -> Result<tokio_postgres::Client, PgError> {
    let deadline = Instant::now() + START_PATIENCE;
    let mut retry = Duration::from_millis(200);
    loop {
        match connect(config).await {
            Ok(client) => return Ok(client),
            // Refused for a reason waiting will not change (a password, a database name).
            Err(source)
                if Instant::now() >= deadline
                    || source.code().is_some_and(|c| {
                        *c != tokio_postgres::error::SqlState::CANNOT_CONNECT_NOW
                    }) =>
            {
                return Err(PgError::Connect {
                    place: place.to_owned(),
                    source,
                });
            }
            Err(e) => {
                // The whole patience, to the last attempt at its end.
                let left = deadline.saturating_duration_since(Instant::now());
                let wait = retry.min(left);
                log::warn!(
                    "store: waiting for PostgreSQL at {place} ({}); again in {:.1} s, giving up in {}",
                    explain(&e),
                    wait.as_secs_f64(),
                    crate::human::duration(left)
                );
                tokio::time::sleep(wait).await;
                retry = (retry * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// The schema version this binary writes.
pub fn schema_version() -> i32 {
    schema::current()
}

/// Applies the migrations to the database of `settings` (`altair-server migrate`).
pub async fn migrate_only(settings: &PgSettings) -> Result<(String, Vec<i32>), PgError> {
    let config = connection_config(settings)?;
    let place = place(&config);
    let client = connect(&config).await.map_err(|source| PgError::Connect {
        place: place.clone(),
        source,
    })?;
    let applied = schema::migrate(&client)
        .await
        .map_err(|source| PgError::Schema {
            place: place.clone(),
            source,
        })?;
    Ok((place, applied))
}

impl PgStore {
    /// Connects, migrates, replays the whole log into `feed`'s bar, and starts the writer
    /// and the tailer, which feeds every change after the ones replayed.
    pub async fn open(settings: PgSettings, feed: Feed) -> Result<(PgStore, PgOpened), PgError> {
        let started = Instant::now();
        let export_settings = settings.clone();
        let config = connection_config(&settings)?;
        let place = place(&config);
        let mut client = connect_at_start(&config, &place).await?;
        let migrated = schema::migrate(&client)
            .await
            .map_err(|source| PgError::Schema {
                place: place.clone(),
                source,
            })?;
        let load_error = |source| PgError::Load {
            place: place.clone(),
            source,
        };
        // One snapshot: the pours counted are exactly those of the log up to its position.
        let snapshot = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(load_error)?;
        let counters = snapshot
            .query_one(
                "SELECT last_pour_id, last_deletion, last_keg_op FROM altair_counters",
                &[],
            )
            .await
            .map_err(load_error)?;
        let (last_id, last_deletion, last_keg_op): (i64, i64, i64) =
            (counters.get(0), counters.get(1), counters.get(2));
        // The whole log, as the tailer would have published it: every pour (deleted ones
        // too), and the deletions and keg operations between them, so that the kegs are
        // what a server that ran all along has (the same levels, the same announcements).
        let mut glasses = Glasses::new(&settings.default_venue);
        let others = snapshot
            .query(
                "SELECT d.after_pour_id, 1, d.seq, NULL::text, p.id, p.tap_id, p.volume, p.glass, p.poured_at_ms, p.flags, p.venue
                 FROM altair_deletions d JOIN altair_pours p ON p.id = d.pour_id
                 UNION ALL
                 SELECT after_pour_id, 2, seq, op, NULL, NULL, NULL, NULL, NULL, NULL, NULL FROM altair_keg_ops
                 ORDER BY 1, 2, 3",
                &[],
            )
            .await
            .map_err(load_error)?;
        // What an import from a compacted journal kept of what it had dropped, each at
        // its place among the rest.
        let restored: Vec<Restored> = snapshot
            .query(
                "SELECT after_pour_id, deletions, keg_ops, line FROM altair_restored ORDER BY seq",
                &[],
            )
            .await
            .map_err(load_error)?
            .iter()
            .map(|row| Restored {
                after: row.get(0),
                deletions: row.get(1),
                keg_ops: row.get(2),
                line: row.get(3),
            })
            .collect();
        let mut restored = restored.into_iter().peekable();
        let mut latest = decide::Latest::default();
        let mut restore_before = |next: Next, latest: &mut decide::Latest| {
            while let Some(r) = restored.next_if(|r| r.precedes(next)) {
                r.apply(&feed, latest);
            }
        };
        let mut others = others.iter().peekable();
        let mut replay_until =
            |at: i64,
             others: &mut std::iter::Peekable<std::slice::Iter<'_, tokio_postgres::Row>>,
             glasses: &mut Glasses,
             latest: &mut decide::Latest| {
                while let Some(row) = others.next_if(|row| row.get::<_, i64>(0) < at) {
                    restore_before(
                        Next::Other {
                            after: row.get(0),
                            kind: row.get(1),
                            seq: row.get(2),
                        },
                        latest,
                    );
                    replay_other(&feed, row, glasses);
                }
                restore_before(Next::Pour(at), latest);
            };
        let rows = snapshot
            .query_raw(
                &format!(
                    "SELECT {POUR_COLUMNS} FROM altair_pours WHERE NOT kept_for_key ORDER BY id"
                ),
                std::iter::empty::<&(dyn ToSql + Sync)>(),
            )
            .await
            .map_err(load_error)?;
        let mut rows = std::pin::pin!(rows);
        let mut pours = 0u64;
        while let Some(row) = rows.try_next().await.map_err(load_error)? {
            let pour = pour_from(&row, 0, &mut glasses);
            replay_until(db_id(pour.id), &mut others, &mut glasses, &mut latest);
            feed.bar().recovered(&pour);
            latest.kept(&pour);
            pours += 1;
        }
        replay_until(i64::MAX, &mut others, &mut glasses, &mut latest);
        snapshot.commit().await.map_err(load_error)?;
        let deletions = u64::try_from(last_deletion).unwrap_or(0);
        let pours = pours.saturating_sub(deletions);

        let health = Arc::new(Health::new());
        let stop = CancellationToken::new();
        let (sender, commands) = mpsc::channel(4 * MAX_BATCH);
        // Named by role, so that an operator (or a test) can tell the connections apart.
        let named = |role: &str| {
            let mut named = config.clone();
            named.application_name(format!("altair-{role}"));
            named
        };
        let publisher = Arc::new(events::Publisher::new(
            feed,
            settings.default_venue.clone(),
            Position {
                pour: u64::try_from(last_id).unwrap_or(0),
                deletion: u64::try_from(last_deletion).unwrap_or(0),
                keg_op: u64::try_from(last_keg_op).unwrap_or(0),
            },
            latest,
        ));
        let writer = writer::Writer::new(
            named("writer"),
            health.clone(),
            settings.rules,
            publisher.clone(),
        );
        let mut tasks = vec![tokio::spawn(writer.run(commands))];
        tasks.push(tokio::spawn(tailer::run(tailer::Tailer {
            config: named("tailer"),
            publisher: publisher.clone(),
            health: health.clone(),
            poll: settings.poll_interval,
            stop: stop.clone(),
        })));
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .wait_timeout(Some(CONNECT_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| PgError::Pool(e.to_string()))?;
        tasks.push(tokio::spawn(forget_old_keys(
            pool.clone(),
            settings.rules.key_ttl,
            stop.clone(),
        )));
        let store = PgStore {
            pool,
            writer: sender,
            publisher,
            health,
            stop,
            tasks: Mutex::new(tasks),
            settings: export_settings,
        };
        let opened = PgOpened {
            place,
            schema: schema::current(),
            migrated,
            pours,
            last_id: u64::try_from(last_id).unwrap_or(0),
            took: started.elapsed(),
        };
        Ok((store, opened))
    }

    /// A pooled connection for a read, or 503.
    async fn reader(&self) -> Result<deadpool_postgres::Object, StoreError> {
        match self.pool.get().await {
            Ok(client) => Ok(client),
            Err(e) => {
                self.health.down(&e.to_string());
                Err(StoreError(format!("database unreachable: {e}")))
            }
        }
    }

    /// The result of a read, noting whether the database answered.
    fn answered<T>(&self, result: Result<T, tokio_postgres::Error>) -> Result<T, StoreError> {
        match result {
            Ok(value) => {
                self.health.up();
                Ok(value)
            }
            Err(e) => {
                if unreachable(&e) {
                    self.health.down(&e.to_string());
                }
                Err(StoreError(format!("database: {e}")))
            }
        }
    }

    /// Waits until this server has published `mark`, so that whoever posted a pour
    /// finds it in this server's report and feed once answered, as with every store. (The
    /// writer publishes what it commits before it answers; should it not have, the request
    /// is answered anyway after a while: the change is committed, and the tailer catches
    /// up.)
    async fn published(&self, mark: Mark) {
        let mut published = self.publisher.subscribe();
        let wait = published.wait_for(|&at| mark.is_published(at));
        if tokio::time::timeout(PUBLISH_PATIENCE, wait).await.is_err() {
            log::debug!("{mark:?} is committed but not yet published here");
        }
    }

    async fn ask<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> writer::Command,
    ) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.writer
            .send(command(reply))
            .await
            .map_err(|_| StoreError("the database writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError("the database writer has stopped".into()))?
    }
}

/// How far the log is published: the last pour, deletion and keg operation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Position {
    pub pour: u64,
    pub deletion: u64,
    pub keg_op: u64,
}

impl Position {
    /// Whether everything up to `other` is published.
    fn reached(self, other: Position) -> bool {
        self.pour >= other.pour && self.deletion >= other.deletion && self.keg_op >= other.keg_op
    }

    /// The furthest of two positions, each part.
    fn furthest(self, other: Position) -> Position {
        Position {
            pour: self.pour.max(other.pour),
            deletion: self.deletion.max(other.deletion),
            keg_op: self.keg_op.max(other.keg_op),
        }
    }

    /// As a notification's payload: `pour deletion keg_op`.
    fn payload(self) -> String {
        format!("{} {} {}", self.pour, self.deletion, self.keg_op)
    }

    /// From a notification's payload, if it is one.
    fn from_payload(payload: &str) -> Option<Position> {
        let mut numbers = payload.split(' ').map(str::parse::<u64>);
        let position = Position {
            pour: numbers.next()?.ok()?,
            deletion: numbers.next()?.ok()?,
            keg_op: numbers.next()?.ok()?,
        };
        numbers.next().is_none().then_some(position)
    }
}

/// What comes next in a replay (or an export, which keeps the replay's order).
#[derive(Debug, Clone, Copy)]
pub(super) enum Next {
    Pour(i64),
    /// A deletion (kind 1) or keg operation (kind 2), numbered `seq`, after pour `after`.
    Other {
        after: i64,
        kind: i32,
        seq: i64,
    },
}

/// A line an import kept of what a compacted journal dropped ([`portable::Line`]), as
/// text or read, and its place: after pour `after`, deletion `deletions` and keg
/// operation `keg_ops`.
pub(super) struct Restored<L = String> {
    pub(super) after: i64,
    pub(super) deletions: i64,
    pub(super) keg_ops: i64,
    pub(super) line: L,
}

impl<L> Restored<L> {
    /// Whether it comes before `next`.
    pub(super) fn precedes(&self, next: Next) -> bool {
        match next {
            Next::Pour(id) => self.after < id,
            Next::Other { after, kind, seq } => {
                self.after < after
                    || (self.after == after
                        && if kind == 1 {
                            seq > self.deletions
                        } else {
                            seq > self.keg_ops
                        })
            }
        }
    }
}

impl Restored {
    fn apply(self, feed: &Feed, latest: &mut decide::Latest) {
        use crate::store::portable::Line;
        match serde_json::from_str::<Line>(&self.line) {
            Ok(Line::Tap {
                venue,
                tap_id,
                latest: at,
            }) => latest.saw(
                crate::pour::TapRef {
                    venue: venue.into(),
                    tap_id,
                },
                at,
            ),
            Ok(Line::Marks { marks }) => match serde_json::from_value(marks) {
                Ok(marks) => feed.bar().restore_marks(&marks),
                Err(e) => log::warn!(
                    "imported keg marks are unreadable ({e}); kegs may announce a level again"
                ),
            },
            Ok(Line::Alerts { alerts }) => {
                if let Err(e) = feed.bar().restore_alerts(&alerts.to_string()) {
                    log::warn!("imported alerts are unreadable ({e}); they are derived again");
                }
            }
            Ok(_) => {}
            Err(e) => log::warn!("an imported line is unreadable ({e}); skipped"),
        }
    }
}

/// Replays a deletion or keg operation row of the start-up query, without publishing.
fn replay_other(feed: &Feed, row: &tokio_postgres::Row, glasses: &mut Glasses) {
    let after: i64 = row.get(0);
    match row.get::<_, i32>(1) {
        1 => feed.bar().recovered_deletion(&pour_from(row, 4, glasses)),
        _ => match KegOp::from_json(row.get(3)) {
            Some(op) => feed
                .bar()
                .recovered_keg_op(&op, u64::try_from(after).unwrap_or(0)),
            None => log::error!(
                "keg operation {} is unreadable; skipped",
                row.get::<_, i64>(2)
            ),
        },
    }
}

/// The event a change logged, which its request waits to see published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    Nothing,
    Pour(u64),
    Deletion(u64),
    KegOp(u64),
}

impl Mark {
    fn is_published(self, at: Position) -> bool {
        match self {
            Mark::Nothing => true,
            Mark::Pour(id) => at.pour >= id,
            Mark::Deletion(seq) => at.deletion >= seq,
            Mark::KegOp(seq) => at.keg_op >= seq,
        }
    }
}

/// Glass names as shared strings, one allocation per name rather than per pour.
#[derive(Default)]
struct Glasses {
    names: HashMap<String, Arc<str>>,
    /// The venue of pours stored without one.
    default_venue: Arc<str>,
}

impl Glasses {
    fn new(default_venue: &Arc<str>) -> Glasses {
        Glasses {
            names: HashMap::new(),
            default_venue: default_venue.clone(),
        }
    }

    /// A glass or venue name, shared.
    fn get(&mut self, name: &str) -> Arc<str> {
        match self.names.get(name) {
            Some(shared) => shared.clone(),
            None => {
                let shared: Arc<str> = name.into();
                self.names.insert(name.to_owned(), shared.clone());
                shared
            }
        }
    }
}

/// A pour's columns, in the order [`pour_from`] reads them.
pub(super) const POUR_COLUMNS: &str = "id, tap_id, volume, glass, poured_at_ms, flags, venue";

/// The pour in columns `at..at+7` of `row`: [`POUR_COLUMNS`].
fn pour_from(row: &tokio_postgres::Row, at: usize, glasses: &mut Glasses) -> Pour {
    let id: i64 = row.get(at);
    let tap_id: i64 = row.get(at + 1);
    let flags: i16 = row.get(at + 5);
    let venue = match row.get::<_, Option<&str>>(at + 6) {
        Some(venue) => glasses.get(venue),
        None => glasses.default_venue.clone(),
    };
    Pour {
        id: u64::try_from(id).unwrap_or(0),
        venue,
        tap_id: u32::try_from(tap_id).unwrap_or(0),
        volume: row.get(at + 2),
        glass: glasses.get(row.get(at + 3)),
        timestamp: Timestamp::from_millis(row.get(at + 4)),
        flags: Flags::from_bits(u8::try_from(flags).unwrap_or(0)),
    }
}

/// Whether an error says the database is gone, rather than that it refused a statement.
/// An error in words: the database's own message where it sent one (the driver's
/// Display says only "db error").
pub(super) fn explain(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => {
            // "error connecting to server" says nothing by itself: its cause ("Connection
            // refused") is what an operator acts on.
            let mut text = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(cause) = source {
                let said = cause.to_string();
                if !text.contains(&said) {
                    text.push_str(": ");
                    text.push_str(&said);
                }
                source = cause.source();
            }
            text
        }
    }
}

fn unreachable(e: &tokio_postgres::Error) -> bool {
    e.is_closed() || e.as_db_error().is_none()
}

/// Why the database refused a write for a condition that passes (class 53, insufficient
/// resources: a full disk, memory), in words for `/health`; `None` for other errors.
fn out_of_resources(e: &tokio_postgres::Error) -> Option<String> {
    let db = e.as_db_error()?;
    if *db.code() == tokio_postgres::error::SqlState::DISK_FULL {
        return Some(format!("no space left on device ({})", db.message()));
    }
    db.code()
        .code()
        .starts_with("53")
        .then(|| format!("out of resources ({})", db.message()))
}

/// A pour id as the database stores it.
fn db_id(id: u64) -> i64 {
    i64::try_from(id).unwrap_or(i64::MAX)
}

/// Keys past their time are deleted every minute (they are ignored from the moment they
/// expire, deleted or not).
async fn forget_old_keys(pool: Pool, ttl: KeyTtl, stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let cutoff = ttl.cutoff(Timestamp::now());
        if let Ok(client) = pool.get().await
            && let Err(e) = client
                .execute("DELETE FROM altair_keys WHERE created_ms <= $1", &[&cutoff])
                .await
                .and(
                    client
                        .execute(
                            "UPDATE altair_keg_ops SET key = NULL WHERE key_created_ms <= $1 AND key IS NOT NULL",
                            &[&cutoff],
                        )
                        .await,
                )
        {
            log::debug!("forgetting old idempotency keys: {e}");
        }
    }
}

#[async_trait]
impl Store for PgStore {
    async fn export(
        &self,
        out: Box<dyn std::io::Write + Send>,
    ) -> Result<crate::store::portable::Trailer, StoreError> {
        let settings = self.settings.clone();
        // Its own thread and runtime: the stream is written with blocking writes.
        tokio::task::spawn_blocking(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| StoreError(e.to_string()))?;
            let ttl = settings.rules.key_ttl.duration();
            runtime
                .block_on(portable::export(&settings, ttl, "server", false, out))
                .map_err(|e| StoreError(e.to_string()))
        })
        .await
        .map_err(|e| StoreError(e.to_string()))?
    }

    async fn insert(&self, pour: NewPour, key: Option<String>) -> Result<Inserted, StoreError> {
        let (inserted, mark) = self
            .ask(|reply| writer::Command::Insert { pour, key, reply })
            .await?;
        self.published(mark).await;
        Ok(inserted)
    }

    async fn get(&self, id: u64) -> Result<Option<Pour>, StoreError> {
        let client = self.reader().await?;
        let row = client
            .query_opt(
                &format!("SELECT {POUR_COLUMNS} FROM altair_pours WHERE id = $1 AND NOT deleted"),
                &[&db_id(id)],
            )
            .await;
        Ok(self
            .answered(row)?
            .map(|row| pour_from(&row, 0, &mut self.publisher.names())))
    }

    async fn delete(&self, id: u64) -> Result<Option<Pour>, StoreError> {
        let (deleted, mark) = self
            .ask(|reply| writer::Command::Delete { id, reply })
            .await?;
        self.published(mark).await;
        Ok(deleted)
    }

    async fn keg(
        &self,
        op: KegOp,
        key: Option<String>,
    ) -> Result<Result<KegDone, KegError>, StoreError> {
        let (done, mark) = self
            .ask(|reply| writer::Command::Keg { op, key, reply })
            .await?;
        self.published(mark).await;
        Ok(done)
    }

    async fn list(&self, q: &ListQuery) -> Result<Page, StoreError> {
        let client = self.reader().await?;
        let after = db_id(q.start.after);
        let offset = i64::try_from(q.start.offset).unwrap_or(i64::MAX);
        let limit = i64::try_from(q.limit).unwrap_or(i64::MAX);
        let tap = q.tap_id.map(i64::from);
        let glass = q.glass.as_deref();
        let from = q.from.map(Timestamp::millis);
        let to = q.to.map(Timestamp::millis);
        let flag = q.flag.map(|f| i16::from(Flags::NONE.with(f).bits()));
        // The default venue's pours are stored without one.
        let by_venue = q.venue.is_some();
        let venue = q
            .venue
            .as_deref()
            .filter(|v| **v != **self.publisher.default_venue());
        // One statement for every combination of filters: an absent filter is NULL. (The
        // statement is planned with its values, so an absent one costs nothing, and a flag
        // filter reads the index of flagged pours.)
        let filters = "NOT deleted
            AND ($1::bigint IS NULL OR tap_id = $1)
            AND ($2::text IS NULL OR glass = $2)
            AND ($3::bigint IS NULL OR poured_at_ms >= $3)
            AND ($4::bigint IS NULL OR poured_at_ms <= $4)
            AND ($5::smallint IS NULL OR (flags <> 0 AND flags & $5 <> 0))
            AND (NOT $6::bool OR venue IS NOT DISTINCT FROM $7::text)";
        let page = client
            .query(
                &format!(
                    "SELECT {POUR_COLUMNS} FROM altair_pours
                     WHERE {filters} AND id > $8 ORDER BY id OFFSET $9 LIMIT $10"
                ),
                &[
                    &tap, &glass, &from, &to, &flag, &by_venue, &venue, &after, &offset, &limit,
                ],
            )
            .await;
        let mut glasses = self.publisher.names();
        let pours = self
            .answered(page)?
            .iter()
            .map(|row| pour_from(row, 0, &mut glasses))
            .collect();
        let total = if !q.count_total {
            0
        } else if from.is_some() || to.is_some() || flag.is_some() {
            // Time and flag filters have no count kept: a scan, as in every store.
            let row = client
                .query_one(
                    &format!("SELECT count(*) FROM altair_pours WHERE {filters}"),
                    &[&tap, &glass, &from, &to, &flag, &by_venue, &venue],
                )
                .await;
            self.answered(row)?.get::<_, i64>(0)
        } else {
            let row = client
                .query_one(
                    "SELECT coalesce(sum(pours), 0)::bigint FROM altair_counts
                     WHERE ($1::bigint IS NULL OR tap_id = $1) AND ($2::text IS NULL OR glass = $2)
                       AND (NOT $3::bool OR venue = coalesce($4::text, ''))",
                    &[&tap, &glass, &by_venue, &venue],
                )
                .await;
            self.answered(row)?.get::<_, i64>(0)
        };
        Ok(Page {
            pours,
            total: u64::try_from(total).unwrap_or(0),
        })
    }

    async fn stats(&self) -> Result<Stats, StoreError> {
        let client = self.reader().await?;
        let row = client
            .query_one(
                "SELECT last_pour_id, (SELECT coalesce(sum(pours), 0)::bigint FROM altair_counts)
                 FROM altair_counters",
                &[],
            )
            .await;
        let row = self.answered(row)?;
        Ok(Stats {
            last_id: u64::try_from(row.get::<_, i64>(0)).unwrap_or(0),
            pours: u64::try_from(row.get::<_, i64>(1)).unwrap_or(0),
        })
    }

    async fn close(&self) {
        let _ = self.ask(|reply| writer::Command::Close { reply }).await;
        self.stop.cancel();
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(PoisonError::into_inner));
        for task in tasks {
            let _ = task.await;
        }
        self.pool.close();
    }

    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn outbox(&self) -> Arc<dyn super::Outbox> {
        Arc::new(PgOutbox::new(self.pool.clone()))
    }

    fn thermometer(&self) -> Arc<dyn super::Thermometer> {
        Arc::new(PgThermometer::new(self.pool.clone()))
    }

    fn condition(&self) -> Condition {
        self.health.condition()
    }
}

#[cfg(test)]
mod position_tests {
    use super::Position;

    #[test]
    fn a_notification_s_payload_says_where_the_log_ends() {
        let end = Position {
            pour: 12,
            deletion: 3,
            keg_op: 40,
        };
        assert_eq!(Position::from_payload(&end.payload()), Some(end));
        for other in ["", "1 2", "1 2 3 4", "a b c", "-1 0 0"] {
            assert_eq!(Position::from_payload(other), None, "{other:?}");
        }
    }
}
