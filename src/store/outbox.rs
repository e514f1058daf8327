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
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
struct Book {
    last_id: u64,
    hooks: BTreeMap<u64, Kept>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Kept {
    hook: Hook,
    /// Pending messages by id.
    messages: BTreeMap<String, Message>,
    /// Oldest first.
    attempts: std::collections::VecDeque<Attempt>,
}

/// The outbox of the journal store: in memory, and in `webhooks.json` in the data directory
/// (rewritten whole at each change, then renamed over the old one) unless ephemeral.
///
/// A change is made to a copy of the book, written, and only then put in its place: what
/// a reader sees is on disk, so a server stopped the moment it showed "delivered" does not
/// send the message again when it starts.
pub struct FileOutbox {
    book: Arc<Mutex<Book>>,
    /// Which server holds each webhook, and until when: in memory only.
    leases: Mutex<BTreeMap<u64, (String, std::time::Instant)>>,
    /// The file, locked while a change is made and written: one change at a time.
    file: Option<Arc<Mutex<PathBuf>>>,
}

/// The file's name in the data directory.
pub const FILE_NAME: &str = "webhooks.json";

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl FileOutbox {
    /// Nothing kept on disk.
    pub fn ephemeral() -> FileOutbox {
        FileOutbox {
            book: Arc::default(),
            leases: Mutex::default(),
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
            book: Arc::new(Mutex::new(book)),
            leases: Mutex::default(),
            file: Some(Arc::new(Mutex::new(path))),
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
                    };
                    (kept.hook.id, kept)
                })
                .collect(),
        };
        write(&dir.join(FILE_NAME), &book)
    }

    /// Makes `change` to a copy of the book, writes the copy if it changed, then puts it in
    /// the book's place.
    async fn change_book<T: Send + 'static>(
        &self,
        change: impl FnOnce(&mut Book) -> (T, bool) + Send + 'static,
    ) -> Result<T, StoreError> {
        let Some(file) = self.file.clone() else {
            return Ok(change(&mut lock(&self.book)).0);
        };
        let book = self.book.clone();
        // Done to the end even if the caller is dropped: the book and the file agree.
        tokio::task::spawn_blocking(move || {
            let path = lock(&file);
            let mut next = lock(&book).clone();
            let (value, changed) = change(&mut next);
            if changed {
                write(&path, &next)?;
                *lock(&book) = next;
            }
            Ok(value)
        })
        .await
        .map_err(|e| StoreError(format!("webhooks: {e}")))?
    }

    fn read<T>(&self, read: impl FnOnce(&Book) -> T) -> T {
        read(&lock(&self.book))
    }
}

/// Writes `book` to a new file, then renames it over `path`: a crash leaves one or the
/// other, each whole.
fn write(path: &Path, book: &Book) -> Result<(), StoreError> {
    let bytes = serde_json::to_vec(book).map_err(|e| StoreError(format!("webhooks: {e}")))?;
    let failed = |e: std::io::Error| StoreError(format!("cannot write {}: {e}", path.display()));
    let temporary = path.with_extension("json.new");
    {
        use std::io::Write as _;
        let mut file = std::fs::File::create(&temporary).map_err(failed)?;
        file.write_all(&bytes).map_err(failed)?;
        file.sync_all().map_err(failed)?;
    }
    std::fs::rename(&temporary, path).map_err(failed)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(failed)?;
    }
    Ok(())
}

#[async_trait]
impl Outbox for FileOutbox {
    async fn create(&self, new: NewHook, now: Timestamp) -> Result<Hook, StoreError> {
        self.change_book(move |book| {
            book.last_id += 1;
            let hook = new.into_hook(book.last_id, now);
            book.hooks.insert(
                hook.id,
                Kept {
                    hook: hook.clone(),
                    messages: BTreeMap::new(),
                    attempts: Default::default(),
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
        self.change_book(move |book| match book.hooks.get_mut(&id) {
            Some(kept) => {
                change.apply(&mut kept.hook, now);
                (Some(kept.hook.clone()), true)
            }
            None => (None, false),
        })
        .await
    }

    async fn remove(&self, id: u64) -> Result<bool, StoreError> {
        let removed = self
            .change_book(move |book| {
                let removed = book.hooks.remove(&id).is_some();
                (removed, removed)
            })
            .await?;
        lock(&self.leases).remove(&id);
        Ok(removed)
    }

    async fn enqueue(
        &self,
        hook: u64,
        letters: Vec<Letter>,
        through: u64,
        _now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.change_book(move |book| {
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
        let book = lock(&self.book);
        let mut leases = lock(&self.leases);
        let clock = std::time::Instant::now();
        for kept in book.hooks.values() {
            let free = leases
                .get(&kept.hook.id)
                .is_none_or(|(_, until)| *until <= clock);
            if !kept.hook.enabled || !free {
                continue;
            }
            let due = kept
                .messages
                .values()
                .filter(|m| m.next_at <= now)
                .min_by_key(|m| (m.letter.created_at, m.letter.seq));
            if let Some(message) = due.cloned() {
                leases.insert(kept.hook.id, (owner.to_owned(), clock + lease));
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
        let next = next.clone();
        self.change_book(move |book| {
            let Some(kept) = book.hooks.get_mut(&hook) else {
                return ((), false);
            };
            if let Some(message) = kept.messages.get_mut(&attempt.message_id)
                && settle_message(message, &next, now).is_none()
            {
                kept.messages.remove(&attempt.message_id);
            }
            settle_hook(&mut kept.hook, &next, now);
            kept.attempts.push_back(attempt);
            while kept.attempts.len() > ATTEMPTS_KEPT {
                kept.attempts.pop_front();
            }
            ((), true)
        })
        .await?;
        // Let go once the attempt is kept: until then the webhook stays held.
        let mut leases = lock(&self.leases);
        if leases.get(&hook).is_some_and(|(o, _)| o == owner) {
            leases.remove(&hook);
        }
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::{Format, Secret};

    fn new_hook() -> NewHook {
        NewHook {
            url: "https://example.com/in".into(),
            venue: None,
            events: Vec::new(),
            description: String::new(),
            format: Format::Standard,
            secret: Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap(),
            uid: "u".into(),
            cursor: 0,
        }
    }

    /// A server stopped the moment it showed a change must find that change when it starts
    /// again: what readers see is on disk.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_change_is_seen_only_once_it_is_on_disk() {
        let dir = std::env::temp_dir().join(format!("altair-outbox-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let outbox = Arc::new(FileOutbox::open(&dir).unwrap());
        let now = Timestamp::from_millis(1_800_000_000_000);
        let hook = outbox.create(new_hook(), now).await.unwrap();
        for round in 0..20 {
            let description = format!("round {round}");
            let change = HookChange {
                description: Some(description.clone()),
                ..HookChange::default()
            };
            let writer = outbox.clone();
            let changing = tokio::spawn(async move { writer.change(hook.id, change, now).await });
            loop {
                let seen = outbox.hook(hook.id).await.unwrap().unwrap();
                if seen.description == description {
                    break;
                }
                tokio::task::yield_now().await;
            }
            let reopened = FileOutbox::open(&dir).unwrap();
            let kept = reopened.hook(hook.id).await.unwrap().unwrap();
            assert_eq!(kept.description, description, "round {round}");
            changing.await.unwrap().unwrap();
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
