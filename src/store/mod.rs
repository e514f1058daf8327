//! Where pours are kept: one async trait, so that durable and database backends drop in
//! without touching the handlers.
//!
//! A store decides nothing: it asks [`crate::decide`] under its own ordering, keeps what
//! was decided, and feeds every kept change to the [`Feed`](crate::feed::Feed) in commit
//! order; that is what makes it observable.
//!
//! - [`journal`]: the journal store (an append-only file, group-committed; or nothing on
//!   disk with `--ephemeral`) behind an in-memory index.
//! - [`postgres`]: PostgreSQL, shared by several servers; each tails the log.
//! - [`outbox`]: the webhooks and the messages owed to them, which every store keeps too.
//! - [`thermometer`]: the taps' temperature readings, which every store keeps too.
//! - [`portable`]: the whole log as a versioned, checksummed NDJSON stream, which every
//!   store exports and imports (backups, and moving between stores).
//!
//! [`open`] opens the one the configuration names.

pub mod journal;
mod open;
pub mod outbox;
pub mod portable;
pub mod postgres;
pub mod thermometer;

use std::sync::Arc;

use async_trait::async_trait;

pub use crate::decide::{Inserted, KegDone};
pub use journal::{JournalError, JournalSettings, JournalStore, Opened};
pub use open::{OpenError, database_settings, open};
pub use outbox::{FileOutbox, Outbox};
pub use postgres::{PgOpened, PgSettings, PgStore};
pub use thermometer::{FileThermometer, Thermometer};

use crate::keg::{KegError, KegOp};
use crate::pour::{Flag, NewPour, Pour, Timestamp};

/// Where a list page starts: past the id `after` (the cursor style), then `offset`
/// matches on (the `page` style); both may be used together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Start {
    /// Only pours with an id above this one (0: from the first).
    pub after: u64,
    /// Skip this many matches.
    pub offset: usize,
}

impl Start {
    /// The `offset`-th match on.
    pub fn offset(offset: usize) -> Start {
        Start { after: 0, offset }
    }

    /// Matches with an id above `after`.
    pub fn after(after: u64) -> Start {
        Start { after, offset: 0 }
    }
}

/// A list query: filters, where to start, and how many.
#[derive(Debug, Clone, PartialEq)]
pub struct ListQuery {
    pub start: Start,
    pub limit: usize,
    pub glass: Option<Arc<str>>,
    /// Only this venue's pours.
    pub venue: Option<Arc<str>>,
    pub tap_id: Option<u32>,
    /// Only pours with this flag.
    pub flag: Option<Flag>,
    /// Inclusive lower bound on the pour timestamp.
    pub from: Option<Timestamp>,
    /// Inclusive upper bound on the pour timestamp.
    pub to: Option<Timestamp>,
    /// Whether to count every match; replays skip it, since time filters make it a scan.
    pub count_total: bool,
}

impl ListQuery {
    /// The next `limit` pours after `id`, unfiltered, without a total.
    pub fn after(id: u64, limit: usize) -> ListQuery {
        ListQuery {
            start: Start::after(id),
            limit,
            glass: None,
            venue: None,
            tap_id: None,
            flag: None,
            from: None,
            to: None,
            count_total: false,
        }
    }
}

/// One page of a list query, in id order.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub pours: Vec<Pour>,
    /// Every match of the filters, wherever the page starts (0 when not counted).
    pub total: u64,
}

/// Counts for `/health`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Pours stored now.
    pub pours: u64,
    /// The highest id ever assigned (0 before the first pour).
    pub last_id: u64,
}

/// An idempotency key that a keg operation was logged under.
#[derive(Debug, Clone, PartialEq)]
pub struct KegKey {
    pub key: String,
    pub created: Timestamp,
    /// The keg the operation made or changed.
    pub keg_id: u64,
}

/// A backend failed; the message is for the log, never for the client.
#[derive(Debug, Clone, thiserror::Error)]
#[error("store failure: {0}")]
pub struct StoreError(pub String);

/// Whether a store can serve now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    Ready,
    /// It cannot serve (writes, or anything): why, and since when.
    Degraded {
        reason: String,
        since: std::time::Instant,
    },
}

/// A pour store.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Stores `pour` under the next id and publishes it, once it is durable; with an
    /// idempotency `key` seen before, stores nothing and says what the key stood for.
    async fn insert(&self, pour: NewPour, key: Option<String>) -> Result<Inserted, StoreError>;
    /// The pour with this id.
    async fn get(&self, id: u64) -> Result<Option<Pour>, StoreError>;
    /// Deletes and publishes the pour with this id, returning it; `None` if there was none.
    async fn delete(&self, id: u64) -> Result<Option<Pour>, StoreError>;
    /// Logs and publishes a keg operation, if it applies (else why not), and says which
    /// keg it made or changed; with an idempotency `key` seen before, logs nothing and says
    /// what the key stood for.
    async fn keg(
        &self,
        op: KegOp,
        key: Option<String>,
    ) -> Result<Result<KegDone, KegError>, StoreError>;
    /// Writes the whole log as a portable stream to `out` (blocking writes, on a thread of
    /// its own): one consistent snapshot, taken when it starts, while writes go on.
    async fn export(
        &self,
        out: Box<dyn std::io::Write + Send>,
    ) -> Result<portable::Trailer, StoreError>;
    /// A page of matching pours in id order.
    async fn list(&self, query: &ListQuery) -> Result<Page, StoreError>;
    /// How many pours there are and the newest id.
    async fn stats(&self) -> Result<Stats, StoreError>;
    /// Finishes pending writes and releases the store (its directory lock, say).
    async fn close(&self);
    /// A short name for the logs.
    fn kind(&self) -> &'static str;
    /// Where this store keeps the webhooks and the messages owed to them.
    fn outbox(&self) -> Arc<dyn Outbox>;
    /// Where this store keeps the taps' temperature readings.
    fn thermometer(&self) -> Arc<dyn Thermometer>;
    /// Whether it can serve now, for `/health`.
    fn condition(&self) -> Condition {
        Condition::Ready
    }
    /// Cancelled when the store cannot go on without a restart (its disk lost a write):
    /// the server then drains and exits non-zero, for the orchestrator to restart it.
    fn broken(&self) -> Option<tokio_util::sync::CancellationToken> {
        None
    }
    /// The directory it writes to on this machine, whose free space `/metrics` shows.
    fn data_dir(&self) -> Option<&std::path::Path> {
        None
    }
}
