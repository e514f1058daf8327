//! The webhooks and the messages owed to them: kept by the store, so that a message is
//! stored before it is sent, and is sent after a restart if it was not before.
//!
//! - [`Outbox`]: the contract, kept by every store.
//! - [`FileOutbox`]: in memory, written whole to one file in the data directory at each
//!   change (or nowhere with `--ephemeral`): a few webhooks and their pending messages.
//! - PostgreSQL's is [`crate::store::postgres::PgOutbox`]: shared by the servers, each
//!   message sent by the one that holds its webhook's lease.
//!
//! A message is made once per webhook and event: each webhook's `cursor` says which of the
//! bar's events have been made into messages, moved in the same step that stores them. A
//! delivered or failed message is dropped; its attempts stay (the last [`ATTEMPTS_KEPT`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;

use super::StoreError;
use crate::pour::Timestamp;
use crate::webhook::{Attempt, Hook, HookChange, Letter, Message, MessageState, NewHook, Next};

/// Messages a webhook may have waiting: beyond them, events wait in the log (the cursor
/// stays) until the receiver takes some.
pub const MAX_PENDING: usize = 1000;

/// Attempts kept per webhook, for `GET /api/webhooks/{id}/deliveries`.
pub const ATTEMPTS_KEPT: usize = 500;

/// Where the webhooks and their messages are kept.
#[async_trait]
pub trait Outbox: Send + Sync + 'static {
    /// Keeps a new webhook under the next id.
    async fn create(&self, new: NewHook, now: Timestamp) -> Result<Hook, StoreError>;
    /// Every webhook, by id.
    async fn hooks(&self) -> Result<Vec<Hook>, StoreError>;
    async fn hook(&self, id: u64) -> Result<Option<Hook>, StoreError>;
    /// Changes a webhook; `None` if there is none.
    async fn change(
        &self,
        id: u64,
        change: HookChange,
        now: Timestamp,
    ) -> Result<Option<Hook>, StoreError>;
    /// Forgets a webhook, its messages and its attempts; false if there was none.
    async fn remove(&self, id: u64) -> Result<bool, StoreError>;
    /// Stores the letters (in `seq` order) that the webhook has not had, and moves its
    /// cursor to `through`; or, if its queue fills, as far as the last one stored. Says
    /// whether every letter fitted.
    async fn enqueue(
        &self,
        hook: u64,
        letters: Vec<Letter>,
        through: u64,
        now: Timestamp,
    ) -> Result<bool, StoreError>;
    /// A message due by `now`, oldest first, of an enabled webhook that no server
    /// holds; the webhook is then held by `owner` for `lease`, or until it settles.
    async fn claim(
        &self,
        owner: &str,
        lease: std::time::Duration,
        now: Timestamp,
    ) -> Result<Option<(Hook, Message)>, StoreError>;
    /// Records an attempt at a claimed message and what follows it; lets the webhook go.
    async fn settle(
        &self,
        owner: &str,
        hook: u64,
        attempt: Attempt,
        next: &Next,
        now: Timestamp,
    ) -> Result<(), StoreError>;
    /// A webhook's attempts, newest first: a page of them and how many are kept.
    async fn deliveries(
        &self,
        hook: u64,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<Attempt>, u64), StoreError>;
    /// Its pending messages, for `/health` and tests.
    async fn pending(&self, hook: u64) -> Result<u64, StoreError>;
}

/// Which of `letters` a webhook whose cursor is `cursor`, with `pending` messages waiting,
/// takes as new messages, and where its cursor goes: to `through`, or, if the queue fills,
/// to just before the first letter that did not fit (it waits in the log). Also whether
/// every letter fitted. A ping (`seq` 0) is never behind the cursor.
pub fn admit(
    letters: Vec<Letter>,
    cursor: u64,
    pending: usize,
    through: u64,
) -> (Vec<Message>, u64, bool) {
    let mut admitted = Vec::new();
    for letter in letters.into_iter().filter(|l| l.seq == 0 || l.seq > cursor) {
        if pending + admitted.len() >= MAX_PENDING {
            return (admitted, letter.seq.saturating_sub(1).max(cursor), false);
        }
        admitted.push(Message {
            next_at: letter.created_at,
            letter,
            state: MessageState::Pending,
            attempts: 0,
        });
    }
    (admitted, through.max(cursor), true)
}

/// What an attempt does to its webhook: failing since when, and whether it is disabled.
pub fn settle_hook(hook: &mut Hook, next: &Next, now: Timestamp) {
    match next {
        Next::Delivered => hook.failing_since = None,
        Next::Retry(_) | Next::Failed => {
            hook.failing_since.get_or_insert(now);
        }
        Next::Disable(reason) => {
            hook.failing_since.get_or_insert(now);
            hook.enabled = false;
            hook.disabled_reason = Some(reason.clone());
            hook.updated_at = now;
        }
    }
}

/// What an attempt does to its message: `None` when it is done with (dropped).
pub fn settle_message(message: &mut Message, next: &Next, now: Timestamp) -> Option<()> {
    message.attempts += 1;
    match next {
        Next::Retry(ms) => {
            message.state = MessageState::Pending;
            message.next_at = Timestamp::from_millis(now.millis().saturating_add(*ms as i64));
            Some(())
        }
        _ => None,
    }
}

/// The webhooks' book, as the file holds it.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Book {
    last_id: u64,
    hooks: BTreeMap<u64, Kept>,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Kept {
    hook: Hook,
    /// Pending messages by id.
    messages: BTreeMap<String, Message>,
    /// Oldest first.
    attempts: std::collections::VecDeque<Attempt>,
    #[serde(skip)]
    lease: Option<(String, std::time::Instant)>,
}

/// The outbox of the journal store: in memory, and in `webhooks.json` in the data directory
/// (rewritten whole at each change, then renamed over the old one) unless ephemeral.
pub struct FileOutbox {
    book: Mutex<Book>,
    /// Changes so far; the file holds the state as of `written`.
    version: Mutex<u64>,
    file: Option<Arc<Writer>>,
}

struct Writer {
    path: PathBuf,
    written: Mutex<u64>,
}

/// The file's name in the data directory.
pub const FILE_NAME: &str = "webhooks.json";

impl FileOutbox {
    /// Nothing kept on disk.
    pub fn ephemeral() -> FileOutbox {
        FileOutbox {
            book: Mutex::new(Book::default()),
            version: Mutex::new(0),
            file: None,
        }
    }

    /// The outbox kept in `dir`, as it was left.
    pub fn open(dir: &Path) -> Result<FileOutbox, StoreError> {
        let path = dir.join(FILE_NAME);
        let book = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| StoreError(format!("unreadable ({e})")))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Book::default(),
            Err(e) => return Err(StoreError(e.to_string())),
        };
        Ok(FileOutbox {
            book: Mutex::new(book),
            version: Mutex::new(0),
            file: Some(Arc::new(Writer {
                path,
                written: Mutex::new(0),
            })),
        })
    }

    /// Writes `hooks` (an import's, into an empty data directory) as the outbox's file,
    /// with nothing owed to them.
    pub fn restore(dir: &Path, hooks: Vec<Hook>) -> Result<(), StoreError> {
        let book = Book {
            last_id: hooks.iter().map(|h| h.id).max().unwrap_or(0),
            hooks: hooks
                .into_iter()
                .map(|hook| {
                    let kept = Kept {
                        hook,
                        messages: BTreeMap::new(),
                        attempts: std::collections::VecDeque::new(),
                        lease: None,
                    };
                    (kept.hook.id, kept)
                })
                .collect(),
        };
        let bytes = serde_json::to_vec(&book).map_err(|e| StoreError(e.to_string()))?;
        Writer {
            path: dir.join(FILE_NAME),
            written: Mutex::new(0),
        }
        .write(1, &bytes)
    }

    /// Changes the book, then writes it (a later change's write covers this one's).
    async fn change_book<T>(
        &self,
        change: impl FnOnce(&mut Book) -> (T, bool),
    ) -> Result<T, StoreError> {
        let (value, bytes, version) = {
            let mut book = self.book.lock().unwrap_or_else(PoisonError::into_inner);
            let (value, changed) = change(&mut book);
            if !changed || self.file.is_none() {
                return Ok(value);
            }
            let bytes =
                serde_json::to_vec(&*book).map_err(|e| StoreError(format!("webhooks: {e}")))?;
            let mut version = self.version.lock().unwrap_or_else(PoisonError::into_inner);
            *version += 1;
            (value, bytes, *version)
        };
        if let Some(writer) = self.file.clone() {
            tokio::task::spawn_blocking(move || writer.write(version, &bytes))
                .await
                .map_err(|e| StoreError(format!("webhooks: {e}")))??;
        }
        Ok(value)
    }

    fn read<T>(&self, read: impl FnOnce(&Book) -> T) -> T {
        read(&self.book.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl Writer {
    fn write(&self, version: u64, bytes: &[u8]) -> Result<(), StoreError> {
        let mut written = self.written.lock().unwrap_or_else(PoisonError::into_inner);
        if *written >= version {
            return Ok(());
        }
        let failed =
            |e: std::io::Error| StoreError(format!("cannot write {}: {e}", self.path.display()));
        let temporary = self.path.with_extension("json.new");
        {
            use std::io::Write as _;
            let mut file = std::fs::File::create(&temporary).map_err(failed)?;
            file.write_all(bytes).map_err(failed)?;
            file.sync_all().map_err(failed)?;
        }
        std::fs::rename(&temporary, &self.path).map_err(failed)?;
        if let Some(dir) = self.path.parent() {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(failed)?;
        }
        *written = version;
        Ok(())
    }
}

#[async_trait]
impl Outbox for FileOutbox {
    async fn create(&self, new: NewHook, now: Timestamp) -> Result<Hook, StoreError> {
        self.change_book(|book| {
            book.last_id += 1;
            let hook = new.into_hook(book.last_id, now);
            book.hooks.insert(
                hook.id,
                Kept {
                    hook: hook.clone(),
                    messages: BTreeMap::new(),
                    attempts: Default::default(),
                    lease: None,
                },
            );
            (hook, true)
        })
        .await
    }

    async fn hooks(&self) -> Result<Vec<Hook>, StoreError> {
        Ok(self.read(|book| book.hooks.values().map(|k| k.hook.clone()).collect()))
    }

    async fn hook(&self, id: u64) -> Result<Option<Hook>, StoreError> {
        Ok(self.read(|book| book.hooks.get(&id).map(|k| k.hook.clone())))
    }

    async fn change(
        &self,
        id: u64,
        change: HookChange,
        now: Timestamp,
    ) -> Result<Option<Hook>, StoreError> {
        self.change_book(|book| match book.hooks.get_mut(&id) {
            Some(kept) => {
                change.apply(&mut kept.hook, now);
                (Some(kept.hook.clone()), true)
            }
            None => (None, false),
        })
        .await
    }

    async fn remove(&self, id: u64) -> Result<bool, StoreError> {
        self.change_book(|book| {
            let removed = book.hooks.remove(&id).is_some();
            (removed, removed)
        })
        .await
    }

    async fn enqueue(
        &self,
        hook: u64,
        letters: Vec<Letter>,
        through: u64,
        _now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.change_book(|book| {
            let Some(kept) = book.hooks.get_mut(&hook) else {
                return (true, false);
            };
            let (admitted, cursor, all) =
                admit(letters, kept.hook.cursor, kept.messages.len(), through);
            let changed = cursor > kept.hook.cursor || !admitted.is_empty();
            for message in admitted {
                kept.messages.insert(message.letter.id.clone(), message);
            }
            kept.hook.cursor = cursor;
            (all, changed)
        })
        .await
    }

    async fn claim(
        &self,
        owner: &str,
        lease: std::time::Duration,
        now: Timestamp,
    ) -> Result<Option<(Hook, Message)>, StoreError> {
        let mut book = self.book.lock().unwrap_or_else(PoisonError::into_inner);
        let clock = std::time::Instant::now();
        for kept in book.hooks.values_mut() {
            let free = kept.lease.as_ref().is_none_or(|(_, until)| *until <= clock);
            if !kept.hook.enabled || !free {
                continue;
            }
            let due = kept
                .messages
                .values()
                .filter(|m| m.next_at <= now)
                .min_by_key(|m| (m.letter.created_at, m.letter.seq));
            if let Some(message) = due.cloned() {
                kept.lease = Some((owner.to_owned(), clock + lease));
                return Ok(Some((kept.hook.clone(), message)));
            }
        }
        Ok(None)
    }

    async fn settle(
        &self,
        owner: &str,
        hook: u64,
        attempt: Attempt,
        next: &Next,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.change_book(|book| {
            let Some(kept) = book.hooks.get_mut(&hook) else {
                return ((), false);
            };
            if let Some(message) = kept.messages.get_mut(&attempt.message_id)
                && settle_message(message, next, now).is_none()
            {
                kept.messages.remove(&attempt.message_id);
            }
            settle_hook(&mut kept.hook, next, now);
            kept.attempts.push_back(attempt);
            while kept.attempts.len() > ATTEMPTS_KEPT {
                kept.attempts.pop_front();
            }
            if kept.lease.as_ref().is_some_and(|(o, _)| o == owner) {
                kept.lease = None;
            }
            ((), true)
        })
        .await
    }

    async fn deliveries(
        &self,
        hook: u64,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<Attempt>, u64), StoreError> {
        Ok(self.read(|book| match book.hooks.get(&hook) {
            Some(kept) => (
                kept.attempts
                    .iter()
                    .rev()
                    .skip(offset)
                    .take(limit)
                    .cloned()
                    .collect(),
                kept.attempts.len() as u64,
            ),
            None => (Vec::new(), 0),
        }))
    }

    async fn pending(&self, hook: u64) -> Result<u64, StoreError> {
        Ok(self.read(|book| {
            book.hooks
                .get(&hook)
                .map_or(0, |kept| kept.messages.len() as u64)
        }))
    }
}
