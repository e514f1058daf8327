//! The journal store (and, with `--ephemeral`, the in-memory one): an in-memory index for
//! reads, one writer thread for every change.
//!
//! The writer takes whatever requests are waiting (up to [`MAX_BATCH`]), has the rules
//! ([`crate::decide`]) decide each one, writes what they decided as one journal frame,
//! fsyncs once (group commit), and only then applies it to the index, feeds it to the bar
//! and the bus in id order, and answers. So nothing is visible or acknowledged before it is durable, and
//! one fsync covers every request that arrived while the previous one ran.
//!
//! Without a journal (`--ephemeral`) the same writer commits each request in the caller
//! and skips the disk.

pub mod file;
mod index;
mod keys;
pub mod portable;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use self::file::{AppendError, FrameBuf, KeyMeta, Recovery};
pub use self::file::{Journal, JournalError, Record};
use self::index::Index;
use self::keys::{KeyTable, Remembered};
use crate::decide::{
    Batch, DeleteDecision, Inserted, KegDecision, KegDone, KnownOp, Latest, PourDecision, Scratch,
    Settings,
};
use crate::feed::Feed;
use crate::glass::Catalogue;
use crate::keg::{KegError, KegOp, Marks};
use crate::pour::{NewPour, Pour, Timestamp};
use crate::store::{Condition, KegKey, ListQuery, Page, Stats, Store, StoreError};

/// Requests per group commit at most.
pub const MAX_BATCH: usize = 1024;
/// Requests waiting for the writer at most; senders wait beyond that.
const QUEUE: usize = 4 * MAX_BATCH;
/// Journal bytes per live pour or key above which compaction is worth it.
const COMPACT_RATIO_BYTES: u64 = 128;

/// Store settings from the configuration.
#[derive(Debug, Clone)]
pub struct JournalSettings {
    /// The rules the writer decides by (burst, idempotency keys' life).
    pub rules: Settings,
    /// The venue of pours written without one (`--default-venue`).
    pub default_venue: Arc<str>,
    /// The journal is never compacted below this size.
    pub compact_min_bytes: u64,
}

/// A keg operation as logged: where, and under which idempotency key.
#[derive(Debug, Clone)]
struct LoggedOp {
    op: KegOp,
    after: u64,
    key: Option<KegKey>,
}

impl LoggedOp {
    fn record(&self) -> Record {
        Record::Keg {
            op: self.op.clone(),
            after: self.after,
            key: self.key.clone(),
        }
    }
}

/// Every keg operation logged (a few per keg), and which one each live key stands for.
#[derive(Debug, Default)]
struct KegLog {
    ops: Vec<LoggedOp>,
    keys: HashMap<String, usize>,
}

impl KegLog {
    fn push(&mut self, logged: LoggedOp) {
        if let Some(key) = &logged.key {
            self.keys.insert(key.key.clone(), self.ops.len());
        }
        self.ops.push(logged);
    }

    /// What the operation logged under `key` was, if one was.
    fn known(&self, key: &str) -> Option<KnownOp<'_>> {
        let logged = &self.ops[*self.keys.get(key)?];
        let key = logged.key.as_ref()?;
        Some(KnownOp {
            op: Some(&logged.op),
            keg_id: key.keg_id,
            created: key.created,
        })
    }
}

/// The journal store (durable, or ephemeral without a journal).
pub struct JournalStore {
    index: Arc<RwLock<Index>>,
    writer: WriterHandle,
    kind: &'static str,
    /// Why the store cannot write now, and since when (out of space).
    degraded: Degraded,
    /// Cancelled when a write failed in a way only a restart can mend.
    broken: CancellationToken,
    /// The journal's directory (none in memory).
    dir: Option<PathBuf>,
    outbox: Arc<dyn super::Outbox>,
    thermometer: Arc<dyn super::Thermometer>,
    /// What an export names: the default venue, and how long keys stand.
    default_venue: Arc<str>,
    key_ttl: Duration,
}

/// Shared between the writer, which sets it, and `/health`.
type Degraded = Arc<std::sync::Mutex<Option<(String, Instant)>>>;

/// The first wait before writing is tried again after running out of space, and the
/// longest.
const SPACE_RETRY_FIRST: Duration = Duration::from_millis(500);
const SPACE_RETRY_MAX: Duration = Duration::from_secs(30);

/// Out of space: since when, how many writes were refused, and when to try again.
struct OutOfSpace {
    since: Instant,
    refused: u64,
    retry_at: Instant,
    backoff: Duration,
}

/// How requests reach the writer.
enum WriterHandle {
    /// Its own thread, batching whatever waits while it fsyncs.
    Thread(mpsc::Sender<Command>),
    /// No disk, so nothing to batch for: each request commits in the caller, under a
    /// short lock (a thread hop per request would cost more than the commit).
    Inline(Box<std::sync::Mutex<Option<Writer>>>),
}

enum Command {
    Insert {
        pour: NewPour,
        key: Option<String>,
        reply: oneshot::Sender<Result<Inserted, StoreError>>,
    },
    Delete {
        id: u64,
        reply: oneshot::Sender<Result<Option<Pour>, StoreError>>,
    },
    Keg {
        op: KegOp,
        key: Option<String>,
        reply: KegReply,
    },
    Close {
        reply: oneshot::Sender<()>,
    },
    /// Out of space: try a write again, if it is time (the journal then says whether
    /// there is space now).
    Probe,
    /// The live log as compaction would write it, taken between two batches.
    Snapshot {
        reply: oneshot::Sender<Vec<Record>>,
    },
}

/// What recovery did, for the start-up log.
#[derive(Debug, Clone)]
pub struct Opened {
    pub recovery: Recovery,
    pub pours: u64,
    pub keys: usize,
    pub took: Duration,
}

fn read(index: &RwLock<Index>) -> RwLockReadGuard<'_, Index> {
    // The writer never panics mid-update (no unwraps, no indexing past bounds), so a
    // poisoned lock still guards a consistent index.
    index.read().unwrap_or_else(PoisonError::into_inner)
}

fn write(index: &RwLock<Index>) -> RwLockWriteGuard<'_, Index> {
    index.write().unwrap_or_else(PoisonError::into_inner)
}

impl JournalStore {
    /// A store that keeps nothing on disk.
    pub fn ephemeral(feed: Feed, settings: JournalSettings) -> JournalStore {
        JournalStore::start(
            None,
            Index::default(),
            KeyTable::new(settings.rules.key_ttl),
            (Latest::default(), KegLog::default()),
            feed,
            settings,
        )
    }

    /// Opens the journal in `dir`, recovering every pour, deletion, key and the id sequence.
    pub fn open(
        dir: &Path,
        catalogue: &Catalogue,
        feed: Feed,
        settings: JournalSettings,
    ) -> Result<(JournalStore, Opened), JournalError> {
        let started = Instant::now();
        let now = Timestamp::now();
        let mut index = Index::default();
        let mut keys = KeyTable::new(settings.rules.key_ttl);
        let mut latest = Latest::default();
        let mut keg_log = KegLog::default();
        let remember = |keys: &mut KeyTable, pour: &Pour, meta: KeyMeta| {
            if keys.alive(meta.created, now) {
                keys.insert(Remembered {
                    pour: pour.clone(),
                    meta,
                });
            }
        };
        let (journal, recovery) = Journal::open(
            dir,
            catalogue,
            &settings.default_venue,
            |record| match record {
                Record::Pour { pour, key } => {
                    if let Some(meta) = key {
                        remember(&mut keys, &pour, meta);
                    }
                    latest.kept(&pour);
                    feed.bar().recovered(&pour);
                    index.insert(pour);
                }
                Record::Delete { id } => {
                    if let Some(pour) = index.delete(id) {
                        feed.bar().recovered_deletion(&pour);
                    }
                }
                Record::Key { pour, key } => remember(&mut keys, &pour, key),
                Record::Sequence { last_id } => index.reserve_ids(last_id),
                Record::Tap { tap, latest: at } => latest.saw(tap, at),
                Record::Keg { op, after, key } => {
                    feed.bar().recovered_keg_op(&op, after);
                    keg_log.push(LoggedOp { op, after, key });
                }
                Record::KegMarks { marks } => match serde_json::from_str::<Marks>(&marks) {
                    Ok(marks) => feed.bar().restore_marks(&marks),
                    Err(e) => log::warn!(
                        "journal: unreadable keg marks ({e}); kegs may announce a level again"
                    ),
                },
                Record::Alerts { snapshot } => {
                    if let Err(e) = feed.bar().restore_alerts(&snapshot) {
                        log::warn!("journal: unreadable alerts ({e}); they are derived again");
                    }
                }
            },
        )?;
        // An unreadable webhooks file stops the start, rather than lose them.
        let outbox = super::FileOutbox::open(dir).map_err(|e| JournalError::Io {
            path: dir.join(super::outbox::FILE_NAME),
            source: std::io::Error::other(e.0),
        })?;
        let thermometer = super::FileThermometer::open(dir).map_err(|e| JournalError::Io {
            path: dir.join(super::thermometer::FILE_NAME),
            source: std::io::Error::other(e.0),
        })?;
        let opened = Opened {
            recovery,
            pours: index.stats().pours,
            keys: keys.len(),
            took: started.elapsed(),
        };
        let mut store = JournalStore::start(
            Some(journal),
            index,
            keys,
            (latest, keg_log),
            feed,
            settings,
        );
        store.outbox = Arc::new(outbox);
        store.thermometer = Arc::new(thermometer);
        Ok((store, opened))
    }

    fn start(
        journal: Option<Journal>,
        index: Index,
        keys: KeyTable,
        (latest, keg_log): (Latest, KegLog),
        feed: Feed,
        settings: JournalSettings,
    ) -> JournalStore {
        let kind = if journal.is_some() {
            "journal"
        } else {
            "memory"
        };
        let index = Arc::new(RwLock::new(index));
        let durable = journal.is_some();
        let dir = journal.as_ref().map(|j| j.dir().to_owned());
        let degraded = Degraded::default();
        let broken = CancellationToken::new();
        let (default_venue, key_ttl) = (
            settings.default_venue.clone(),
            settings.rules.key_ttl.duration(),
        );
        let writer = Writer {
            journal,
            index: index.clone(),
            feed,
            keys,
            latest,
            scratch: Scratch::default(),
            keg_log,
            failed: None,
            out_of_space: None,
            degraded: degraded.clone(),
            broken: broken.clone(),
            compaction: None,
            settings,
        };
        let writer = if durable {
            let (commands, queue) = mpsc::channel(QUEUE);
            // Asks the writer to try again while it is out of space, so that the store
            // takes writes again when space is back, whether or not any arrive.
            let (prober, watched) = (commands.clone(), degraded.clone());
            let probe = std::thread::Builder::new()
                .name("altair-space-probe".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(SPACE_RETRY_FIRST);
                        let out = watched
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .is_some();
                        if out
                            && let Err(mpsc::error::TrySendError::Closed(_)) =
                                prober.try_send(Command::Probe)
                        {
                            return;
                        }
                        if prober.is_closed() {
                            return;
                        }
                    }
                });
            if let Err(e) = probe {
                log::warn!("cannot start the space probe ({e}); writes resume with the next one");
            }
            // A plain thread: fsync blocks, and must not hold up the async workers.
            let spawned = std::thread::Builder::new()
                .name("altair-writer".into())
                .spawn(move || writer.run(queue));
            if let Err(e) = spawned {
                // The channel closed with the queue: every write answers an error.
                log::error!("cannot start the store writer thread: {e}");
            }
            WriterHandle::Thread(commands)
        } else {
            WriterHandle::Inline(Box::new(std::sync::Mutex::new(Some(writer))))
        };
        JournalStore {
            index,
            writer,
            kind,
            degraded,
            broken,
            dir,
            outbox: Arc::new(super::FileOutbox::ephemeral()),
            thermometer: Arc::new(super::FileThermometer::ephemeral()),
            default_venue,
            key_ttl,
        }
    }

    /// A durable store in `dir` whose every fsync fails, as a dying disk's might.
    #[cfg(test)]
    pub fn failing_syncs(
        dir: &Path,
        catalogue: &Catalogue,
        feed: Feed,
        settings: JournalSettings,
    ) -> JournalStore {
        let (mut journal, _) = match Journal::open(dir, catalogue, &settings.default_venue, |_| {})
        {
            Ok(opened) => opened,
            Err(e) => panic!("test journal: {e}"),
        };
        journal.fail_syncs();
        JournalStore::start(
            Some(journal),
            Index::default(),
            KeyTable::new(settings.rules.key_ttl),
            (Latest::default(), KegLog::default()),
            feed,
            settings,
        )
    }

    /// Hands a command to the writer.
    async fn send(&self, command: Command) -> Result<(), StoreError> {
        match &self.writer {
            WriterHandle::Thread(commands) => commands
                .send(command)
                .await
                .map_err(|_| StoreError("the store is closed".into())),
            WriterHandle::Inline(writer) => {
                let mut writer = writer.lock().unwrap_or_else(PoisonError::into_inner);
                match writer.as_mut() {
                    Some(w) => {
                        if let Command::Snapshot { reply } = command {
                            let _ = reply.send(w.live_records());
                            return Ok(());
                        }
                        if let Some(close) = w.commit(&mut vec![command]) {
                            *writer = None;
                            let _ = close.send(());
                        }
                    }
                    None => refuse(command, "the store is closed"),
                }
                Ok(())
            }
        }
    }

    async fn ask<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Command,
    ) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.send(command(reply)).await?;
        answer
            .await
            .map_err(|_| StoreError("the store writer stopped".into()))?
    }
}

impl JournalStore {
    /// The live log, as compaction would write it, between two batches.
    async fn snapshot(&self) -> Result<Vec<Record>, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Snapshot { reply }).await?;
        answer
            .await
            .map_err(|_| StoreError("the store writer stopped".into()))
    }
}

#[async_trait]
impl Store for JournalStore {
    async fn export(
        &self,
        out: Box<dyn std::io::Write + Send>,
    ) -> Result<super::portable::Trailer, StoreError> {
        let hooks = self.outbox.hooks().await?;
        let hooks = hooks
            .iter()
            .map(|h| super::portable::webhook_line(h, false))
            .collect();
        let records = self.snapshot().await?;
        let (venue, ttl) = (self.default_venue.clone(), self.key_ttl);
        tokio::task::spawn_blocking(move || {
            portable::write_records(hooks, records, &venue, ttl, "server", out)
        })
        .await
        .map_err(|e| StoreError(e.to_string()))?
        .map_err(|e| StoreError(e.to_string()))
    }

    async fn insert(&self, pour: NewPour, key: Option<String>) -> Result<Inserted, StoreError> {
        self.ask(|reply| Command::Insert { pour, key, reply }).await
    }

    async fn get(&self, id: u64) -> Result<Option<Pour>, StoreError> {
        Ok(read(&self.index).get(id).cloned())
    }

    async fn delete(&self, id: u64) -> Result<Option<Pour>, StoreError> {
        self.ask(|reply| Command::Delete { id, reply }).await
    }

    async fn keg(
        &self,
        op: KegOp,
        key: Option<String>,
    ) -> Result<Result<KegDone, KegError>, StoreError> {
        self.ask(|reply| Command::Keg { op, key, reply }).await
    }

    async fn list(&self, query: &ListQuery) -> Result<Page, StoreError> {
        Ok(read(&self.index).list(query))
    }

    async fn stats(&self) -> Result<Stats, StoreError> {
        Ok(read(&self.index).stats())
    }

    async fn close(&self) {
        let (reply, done) = oneshot::channel();
        if self.send(Command::Close { reply }).await.is_ok() {
            let _ = done.await;
        }
    }

    fn kind(&self) -> &'static str {
        self.kind
    }

    fn outbox(&self) -> Arc<dyn super::Outbox> {
        self.outbox.clone()
    }

    fn thermometer(&self) -> Arc<dyn super::Thermometer> {
        self.thermometer.clone()
    }

    fn broken(&self) -> Option<CancellationToken> {
        Some(self.broken.clone())
    }

    fn data_dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    fn condition(&self) -> Condition {
        match &*self.degraded.lock().unwrap_or_else(PoisonError::into_inner) {
            None => Condition::Ready,
            Some((reason, since)) => Condition::Degraded {
                reason: reason.clone(),
                since: *since,
            },
        }
    }
}

struct Writer {
    journal: Option<Journal>,
    index: Arc<RwLock<Index>>,
    feed: Feed,
    keys: KeyTable,
    /// Changed only once a batch is kept: a refused pour must not make the next one look
    /// like a burst.
    latest: Latest,
    /// The last batch's working memory, for the next (without a journal, every request is
    /// a batch).
    scratch: Scratch,
    /// Every keg operation, for compaction to keep, and their idempotency keys.
    keg_log: KegLog,
    /// Set when a journal write failed: the file's state is unknown, so no further write
    /// is attempted (retrying after a failed fsync can lose data silently).
    failed: Option<String>,
    /// Set while the disk is full: writes are refused until a try succeeds.
    out_of_space: Option<OutOfSpace>,
    degraded: Degraded,
    broken: CancellationToken,
    /// A compaction being written by another thread, and where the journal ended when its
    /// snapshot was taken.
    compaction: Option<(u64, JoinHandle<std::io::Result<()>>)>,
    settings: JournalSettings,
}

/// A decided request, answered once its frame is durable.
enum Decided {
    Created(
        oneshot::Sender<Result<Inserted, StoreError>>,
        Pour,
        Option<KeyMeta>,
    ),
    Answered(oneshot::Sender<Result<Inserted, StoreError>>, Inserted),
    Deleting(oneshot::Sender<Result<Option<Pour>, StoreError>>, u64),
    Missing(oneshot::Sender<Result<Option<Pour>, StoreError>>),
    Keg(KegReply, Result<(LoggedOp, u64), KegError>),
    KegAnswered(KegReply, KegDone),
}

type KegReply = oneshot::Sender<Result<Result<KegDone, KegError>, StoreError>>;

impl Writer {
    fn run(mut self, mut queue: mpsc::Receiver<Command>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        let mut held: Option<Command> = None;
        while let Some(first) = held.take().or_else(|| queue.blocking_recv()) {
            // Between two batches: exactly the log committed so far.
            if let Command::Snapshot { reply } = first {
                let _ = reply.send(self.live_records());
                continue;
            }
            // A keg operation is committed alone: it is checked against kegs that every
            // earlier change has reached.
            let alone = matches!(first, Command::Keg { .. });
            batch.push(first);
            while !alone && batch.len() < MAX_BATCH {
                match queue.try_recv() {
                    Ok(next @ (Command::Keg { .. } | Command::Snapshot { .. })) => {
                        held = Some(next);
                        break;
                    }
                    Ok(command) => batch.push(command),
                    Err(_) => break,
                }
            }
            if let Some(close) = self.commit(&mut batch) {
                self.finish_compaction(true);
                // The journal and its directory lock are released before the answer.
                drop(self);
                let _ = close.send(());
                return;
            }
            self.finish_compaction(false);
            self.maybe_compact();
        }
    }

    /// Commits one batch; returns the close request if the batch held one.
    fn commit(&mut self, batch: &mut Vec<Command>) -> Option<oneshot::Sender<()>> {
        let now = Timestamp::now();
        // Out of space, and not yet time to try again: refused at once, without a write.
        let probing = match &mut self.out_of_space {
            Some(out) if Instant::now() < out.retry_at => {
                let mut close = None;
                for command in batch.drain(..) {
                    match command {
                        Command::Close { reply } => close = Some(reply),
                        Command::Probe => {}
                        command => {
                            out.refused += 1;
                            refuse(command, NO_SPACE);
                        }
                    }
                }
                return close;
            }
            Some(_) => true,
            None => false,
        };
        self.keys.expire(now);
        let mut frame = FrameBuf::new(self.settings.default_venue.clone());
        let mut decided = Vec::with_capacity(batch.len());
        let mut close = None;
        let scratch = {
            let index = read(&self.index);
            // Held while the batch is decided: nothing is fed meanwhile (this is the only
            // writer), and one lock is cheaper than one a pour.
            let bar = self.feed.bar().hold();
            let mut rules = Batch::reusing(
                std::mem::take(&mut self.scratch),
                self.settings.rules,
                bar.books(),
                &self.latest,
                index.last_id(),
                now,
            );
            for command in batch.drain(..) {
                if close.is_some() || self.failed.is_some() {
                    refuse(
                        command,
                        self.failed.as_deref().unwrap_or("the store is closed"),
                    );
                    continue;
                }
                match command {
                    Command::Insert { pour, key, reply } => {
                        let known = key
                            .as_deref()
                            .and_then(|k| self.keys.get(k))
                            .map(|r| r.known(index.get(r.pour.id).is_none()));
                        let device_timestamp = pour.device_timestamp;
                        match rules.pour(pour, key.as_deref(), known) {
                            PourDecision::Answer(answer) => {
                                decided.push(Decided::Answered(reply, answer));
                            }
                            PourDecision::Record(pour) => {
                                let meta = key.map(|key| KeyMeta {
                                    key,
                                    created: now,
                                    device_timestamp,
                                });
                                frame.push(&Record::Pour {
                                    pour: pour.clone(),
                                    key: meta.clone(),
                                });
                                decided.push(Decided::Created(reply, pour, meta));
                            }
                        }
                    }
                    Command::Delete { id, reply } => {
                        match rules.delete(id, index.get(id).is_some()) {
                            DeleteDecision::Record => {
                                frame.push(&Record::Delete { id });
                                decided.push(Decided::Deleting(reply, id));
                            }
                            DeleteDecision::Missing => decided.push(Decided::Missing(reply)),
                        }
                    }
                    Command::Keg { op, key, reply } => {
                        let known = key.as_deref().and_then(|k| self.keg_log.known(k));
                        match rules.keg(&op, key.as_deref(), known) {
                            KegDecision::Answer(answer) => {
                                decided.push(Decided::KegAnswered(reply, answer));
                            }
                            KegDecision::Refused(e) => decided.push(Decided::Keg(reply, Err(e))),
                            KegDecision::Record {
                                keg_id,
                                after,
                                narrowed,
                            } => {
                                let op = narrowed.unwrap_or(op);
                                let key = key.map(|key| KegKey {
                                    key,
                                    created: now,
                                    keg_id,
                                });
                                let logged = LoggedOp { op, after, key };
                                frame.push(&logged.record());
                                decided.push(Decided::Keg(reply, Ok((logged, keg_id))));
                            }
                        }
                    }
                    Command::Close { reply } => close = Some(reply),
                    Command::Probe => {}
                    // Never batched (see `run`); answered, not dropped, all the same.
                    Command::Snapshot { reply } => {
                        let _ = reply.send(Vec::new());
                    }
                }
            }
            // Trying for space with no write waiting: a record that changes nothing.
            if probing && frame.is_empty() {
                frame.push(&Record::Sequence {
                    last_id: index.last_id(),
                });
            }
            rules.finish()
        };

        let started = Instant::now();
        if !frame.is_empty()
            && let Some(journal) = &mut self.journal
            && let Err(e) = journal.append(&mut frame).inspect(|()| {
                crate::metrics::commit(started.elapsed(), decided.len(), journal.len())
            })
        {
            let no_space = matches!(e, AppendError::NoSpace(_));
            let reason = if no_space {
                NO_SPACE.to_owned()
            } else {
                format!("journal write failed: {e}")
            };
            let refused = decided.len() as u64;
            // Said before any request hears of it.
            if no_space {
                self.ran_out_of_space(refused);
            } else {
                log::error!(
                    "{reason}; refusing writes, and stopping so that a restart reads what is really on disk"
                );
                self.set_degraded(Some(reason.clone()));
                self.failed = Some(reason.clone());
                self.broken.cancel();
            }
            for d in decided {
                match d {
                    Decided::Created(reply, ..) | Decided::Answered(reply, _) => {
                        let _ = reply.send(Err(StoreError(reason.clone())));
                    }
                    Decided::Deleting(reply, _) | Decided::Missing(reply) => {
                        let _ = reply.send(Err(StoreError(reason.clone())));
                    }
                    Decided::Keg(reply, _) | Decided::KegAnswered(reply, _) => {
                        let _ = reply.send(Err(StoreError(reason.clone())));
                    }
                }
            }
            return close;
        }
        if let Some(out) = self.out_of_space.take() {
            log::warn!(
                "store: writable again after {}, {} writes refused",
                crate::human::duration(out.since.elapsed()),
                crate::human::count(out.refused)
            );
            self.set_degraded(None);
        }

        // Durable: now kept, visible, fed in id order, and answered.
        for (tap, at) in scratch.latest() {
            self.latest.saw(tap.clone(), *at);
        }
        self.scratch = scratch;
        let mut index = write(&self.index);
        for d in decided {
            match d {
                Decided::Created(reply, pour, meta) => {
                    if let Some(meta) = meta {
                        self.keys.insert(Remembered {
                            pour: pour.clone(),
                            meta,
                        });
                    }
                    index.insert(pour.clone());
                    self.feed.poured(pour.clone());
                    let _ = reply.send(Ok(Inserted::Created(pour)));
                }
                Decided::Answered(reply, answer) => {
                    let _ = reply.send(Ok(answer));
                }
                Decided::Deleting(reply, id) => {
                    let deleted = index.delete(id);
                    if let Some(pour) = &deleted {
                        self.feed.deleted(pour.clone());
                    }
                    let _ = reply.send(Ok(deleted));
                }
                Decided::Missing(reply) => {
                    let _ = reply.send(Ok(None));
                }
                Decided::Keg(reply, checked) => {
                    let answer = checked.map(|(logged, keg_id)| {
                        self.feed.keg_op(&logged.op, logged.after);
                        self.keg_log.push(logged);
                        KegDone::Applied(keg_id)
                    });
                    let _ = reply.send(Ok(answer));
                }
                Decided::KegAnswered(reply, answer) => {
                    let _ = reply.send(Ok(Ok(answer)));
                }
            }
        }
        close
    }

    /// Notes a write refused for want of space: said once, then tried again with backoff.
    fn ran_out_of_space(&mut self, refused: u64) {
        match &mut self.out_of_space {
            Some(out) => {
                out.refused += refused;
                out.backoff = (out.backoff * 2).min(SPACE_RETRY_MAX);
                out.retry_at = Instant::now() + out.backoff;
            }
            None => {
                let dir = self
                    .journal
                    .as_ref()
                    .map(|j| j.dir().display().to_string())
                    .unwrap_or_default();
                log::error!("store: no space left on {dir}; refusing writes until there is");
                self.out_of_space = Some(OutOfSpace {
                    since: Instant::now(),
                    refused,
                    retry_at: Instant::now() + SPACE_RETRY_FIRST,
                    backoff: SPACE_RETRY_FIRST,
                });
                self.set_degraded(Some(NO_SPACE.to_owned()));
            }
        }
    }

    fn set_degraded(&self, reason: Option<String>) {
        *self.degraded.lock().unwrap_or_else(PoisonError::into_inner) =
            reason.map(|reason| (reason, Instant::now()));
    }

    /// The live log as a compacted journal holds it: the keys of deleted pours, the pours
    /// with the keg operations in their places, what the kegs announced, the alerts, each
    /// tap's latest pour time and the highest id.
    fn live_records(&self) -> Vec<Record> {
        let index = read(&self.index);
        let mut key_of = std::collections::HashMap::new();
        let mut records = Vec::with_capacity(index.stats().pours as usize + self.keys.len() + 1);
        for remembered in self.keys.iter() {
            if index.get(remembered.pour.id).is_some() {
                key_of.insert(remembered.pour.id, remembered.meta.clone());
            } else {
                records.push(Record::Key {
                    pour: remembered.pour.clone(),
                    key: remembered.meta.clone(),
                });
            }
        }
        // Keg operations keep their places among the pours: which pours a keg took
        // depends on them.
        let mut ops = self.keg_log.ops.iter().peekable();
        for pour in index.iter() {
            while let Some(logged) = ops.next_if(|logged| logged.after < pour.id) {
                records.push(logged.record());
            }
            records.push(Record::Pour {
                pour: pour.clone(),
                key: key_of.remove(&pour.id),
            });
        }
        records.extend(ops.map(LoggedOp::record));
        let (marks, alerts) = {
            let state = self.feed.bar().hold();
            (state.marks(), state.alerts().snapshot())
        };
        records.push(Record::KegMarks {
            marks: serde_json::to_string(&marks).unwrap_or_default(),
        });
        records.push(Record::Alerts { snapshot: alerts });
        records.extend(self.latest.iter().map(|(tap, latest)| Record::Tap {
            tap: tap.clone(),
            latest,
        }));
        // Last, so that recovery has placed every pour before it reserves deleted ids.
        records.push(Record::Sequence {
            last_id: index.last_id(),
        });
        records
    }

    /// Starts a background compaction when the journal holds mostly dead records.
    fn maybe_compact(&mut self) {
        let Some(journal) = &self.journal else { return };
        // Out of space, a compacted copy would not fit either.
        if self.compaction.is_some() || self.failed.is_some() || self.out_of_space.is_some() {
            return;
        }
        let index = read(&self.index);
        let live = index.stats().pours + self.keys.len() as u64;
        let size = journal.len();
        if size < self.settings.compact_min_bytes || size < live.saturating_mul(COMPACT_RATIO_BYTES)
        {
            return;
        }
        // The snapshot is taken between batches, so it is exactly the journal up to `size`.
        let started = Instant::now();
        drop(index);
        let records = self.live_records();
        log::info!(
            "compacting the journal: {size} bytes, {} live records (snapshot took {:?})",
            records.len(),
            started.elapsed()
        );
        let dir = journal.dir().to_owned();
        let default_venue = self.settings.default_venue.clone();
        let spawned = std::thread::Builder::new()
            .name("altair-compact".into())
            .spawn(move || file::write_compacted(&dir, &records, &default_venue));
        match spawned {
            Ok(handle) => self.compaction = Some((size, handle)),
            Err(e) => log::error!("cannot start compaction: {e}"),
        }
    }

    /// Puts a finished compaction in place; with `wait`, waits for a running one first.
    fn finish_compaction(&mut self, wait: bool) {
        let finished = self
            .compaction
            .as_ref()
            .is_some_and(|(_, handle)| handle.is_finished());
        if !(finished || wait) {
            return;
        }
        let (Some((since, handle)), Some(journal)) = (self.compaction.take(), &mut self.journal)
        else {
            return;
        };
        let written = handle
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("compaction thread panicked")));
        let before = journal.len();
        match written.and_then(|()| journal.swap_in(since)) {
            Ok(()) => log::info!("journal compacted: {before} -> {} bytes", journal.len()),
            Err(e) => {
                let compacted = journal.dir().join(file::COMPACT_NAME);
                if compacted.exists() {
                    log::error!("compaction failed, keeping the journal as it was: {e}");
                    let _ = std::fs::remove_file(compacted);
                } else {
                    // Renamed into place but not reopened: appends could go to the old file.
                    let reason = format!("journal swap after compaction failed: {e}");
                    log::error!("{reason}; refusing writes, and stopping for a restart");
                    self.set_degraded(Some(reason.clone()));
                    self.failed = Some(reason);
                    self.broken.cancel();
                }
            }
        }
    }
}

/// What a write refused for want of space is told.
const NO_SPACE: &str = "no space left on device";

fn refuse(command: Command, reason: &str) {
    let error = || StoreError(reason.to_owned());
    match command {
        Command::Insert { reply, .. } => {
            let _ = reply.send(Err(error()));
        }
        Command::Delete { reply, .. } => {
            let _ = reply.send(Err(error()));
        }
        Command::Keg { reply, .. } => {
            let _ = reply.send(Err(error()));
        }
        Command::Close { reply } => {
            let _ = reply.send(());
        }
        Command::Probe => {}
        // Dropped: the asker hears that no snapshot came.
        Command::Snapshot { .. } => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::anomaly::Burst;
    use crate::decide::KeyTtl;
    use crate::pour::Flags;

    fn pour() -> NewPour {
        NewPour {
            venue: "main".into(),
            tap_id: 1,
            volume: 500.0,
            glass: "pint".into(),
            timestamp: Timestamp::now(),
            device_timestamp: false,
            flags: Flags::NONE,
        }
    }

    #[tokio::test]
    async fn a_failed_fsync_stops_writes_for_good_and_asks_for_a_restart() {
        let dir = std::env::temp_dir().join(format!("altair-store-fsync-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let catalogue = Catalogue::default();
        let feed = Feed::standalone(&catalogue);
        let settings = JournalSettings {
            rules: Settings {
                key_ttl: KeyTtl::new(Duration::from_secs(60)),
                burst: Burst { max_flow: 200.0 },
            },
            compact_min_bytes: u64::MAX,
            default_venue: "main".into(),
        };
        let store = JournalStore::failing_syncs(&dir, &catalogue, feed, settings);
        let broken = store.broken().unwrap();
        assert!(!broken.is_cancelled());
        let failed = store.insert(pour(), None).await.unwrap_err();
        assert!(failed.0.contains("fsync failed"), "{failed}");
        assert!(broken.is_cancelled(), "the server is asked to stop");
        assert!(matches!(store.condition(), Condition::Degraded { .. }));
        // Never retried, whatever comes next: the disk may have dropped what it was given.
        assert!(store.insert(pour(), None).await.is_err());
        assert_eq!(
            store.stats().await.unwrap().pours,
            0,
            "nothing was made visible"
        );
        store.close().await;
        std::fs::remove_dir_all(dir).unwrap();
    }
}
