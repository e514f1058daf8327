//! The journal: an append-only file of checksummed frames, one frame per group commit.
//!
//! ```text
//! file   = "ALTAIRJ1" frame*
//! frame  = magic:u32 len:u32 crc32:u32 payload[len]      (little-endian)
//! payload = record*
//! ```
//!
//! A frame is written whole and fsynced before any pour in it is acknowledged, so a crash
//! can only tear the last frame, whose pours nobody was told about: recovery keeps the
//! intact prefix, logs what it dropped and truncates the tail. Damage followed by a valid
//! frame is something else (acknowledged data is gone), and recovery refuses to guess.
//! The frame magic lets recovery find a valid frame after damage without trying every
//! byte offset.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::glass::Catalogue;
use crate::keg::KegOp;
use crate::pour::{Flags, Pour, TapRef, Timestamp};
use crate::store::KegKey;

/// The journal's file name inside the data directory.
pub const FILE_NAME: &str = "journal";
/// A compacted journal being written; replaces the journal by rename when complete.
pub const COMPACT_NAME: &str = "journal.compact";
/// An imported journal being written; replaces the (empty) journal by rename when the
/// whole stream has checked out.
pub const IMPORT_NAME: &str = "journal.import";
const LOCK_NAME: &str = "LOCK";
/// How long an opener waits for a lock held by someone on their way out.
const LOCK_GRACE: std::time::Duration = std::time::Duration::from_secs(2);
const FILE_MAGIC: &[u8; 8] = b"ALTAIRJ1";
const FRAME_MAGIC: [u8; 4] = 0xA17A_1F4A_u32.to_le_bytes();
const HEADER: usize = 12;
/// No frame is larger (a batch of 1024 pours is about 100 KiB).
const MAX_FRAME: usize = 64 << 20;

// Record tags. A new layout gets a new tag, and recovery reads every tag ever written, so
// that a newer server opens an older journal as it stands.
/// A pour as journals before flags wrote it (read only).
const POUR_V1: u8 = 1;
const DELETE: u8 = 2;
/// A key's deleted pour, as journals before flags wrote it (read only).
const KEY_V1: u8 = 3;
const SEQUENCE: u8 = 4;
/// A pour with its flags.
const POUR: u8 = 5;
/// A key's deleted pour, with its flags.
const KEY: u8 = 6;
const TAP: u8 = 7;
const KEG: u8 = 8;
const KEG_MARKS: u8 = 9;
const ALERTS: u8 = 10;
/// A pour of a venue other than the default, with its venue (a pour of the default venue,
/// and every pour written before venues, is a `POUR`: so that the default venue is
/// whichever `--default-venue` names).
const POUR_AT: u8 = 11;
/// A key's deleted pour, of a venue other than the default.
const KEY_AT: u8 = 12;
/// A tap's latest pour time, of a venue other than the default.
const TAP_AT: u8 = 13;

/// An idempotency key remembered with its pour.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyMeta {
    pub key: String,
    pub created: Timestamp,
    /// Whether the request named the timestamp (part of what "the same body" means).
    pub device_timestamp: bool,
}

/// One entry of the journal.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// A stored pour, with the idempotency key it was posted under.
    Pour { pour: Pour, key: Option<KeyMeta> },
    /// A deletion.
    Delete { id: u64 },
    /// A key whose pour has since been deleted; written by compaction.
    Key { pour: Pour, key: KeyMeta },
    /// The highest id ever assigned; written by compaction, which drops deleted pours.
    Sequence { last_id: u64 },
    /// The latest time a tap reported a pour at, deleted or not; written by compaction.
    Tap { tap: TapRef, latest: Timestamp },
    /// A keg operation, logged after pour `after`, with the idempotency key it came with.
    Keg {
        op: KegOp,
        after: u64,
        key: Option<KegKey>,
    },
    /// What the kegs have announced (JSON, see [`crate::keg::Marks`]); written by
    /// compaction, which drops the deleted pours that some announcements followed.
    KegMarks { marks: String },
    /// Every alert (JSON, see [`crate::alert::Alerts::snapshot`]), in place of those the
    /// records before derived; written by compaction, which drops the deleted pours that
    /// some alerts counted.
    Alerts { snapshot: String },
}

/// Why the journal could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot create data directory {path}: {source}")]
    Dir { path: PathBuf, source: io::Error },
    #[error("data directory {path} is in use by another altair-server (lock file {path}/LOCK)")]
    Locked { path: PathBuf },
    #[error("cannot use {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path} is not an Altair journal")]
    Foreign { path: PathBuf },
    #[error(
        "journal {path} is damaged at byte {offset} ({reason}) and valid frames follow, so acknowledged pours would be lost; \
         the server will not start. Move the file aside to start empty, or truncate it to {offset} bytes to keep what precedes the damage"
    )]
    Damaged {
        path: PathBuf,
        offset: u64,
        reason: &'static str,
    },
}

/// Why a frame was not appended.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// No space left (ENOSPC, a quota); the journal is as it was before, and takes frames
    /// again once there is space.
    #[error("no space left on device ({0})")]
    NoSpace(io::Error),
    /// Anything else, a failed fsync among them: the file's state is unknown.
    #[error("{0}")]
    Failed(io::Error),
}

/// What recovery found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Recovery {
    pub frames: u64,
    pub records: u64,
    /// Bytes of torn tail dropped, and why.
    pub dropped: Option<(u64, &'static str)>,
}

/// An open journal, holding the data directory's lock.
pub struct Journal {
    dir: PathBuf,
    file: File,
    len: u64,
    _lock: File,
    /// Tests make fsync fail, to see what the store does with a disk that loses writes.
    #[cfg(test)]
    fail_syncs: bool,
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> JournalError + '_ {
    move |source| JournalError::Io {
        path: path.to_owned(),
        source,
    }
}

impl Journal {
    /// Opens (or creates) the journal in `dir`, locks the directory, and feeds every
    /// recovered record to `apply`, in order.
    pub fn open(
        dir: &Path,
        catalogue: &Catalogue,
        default_venue: &Arc<str>,
        mut apply: impl FnMut(Record),
    ) -> Result<(Journal, Recovery), JournalError> {
        fs::create_dir_all(dir).map_err(|source| JournalError::Dir {
            path: dir.to_owned(),
            source,
        })?;
        let lock_path = dir.join(LOCK_NAME);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_error(&lock_path))?;
        // A lock can outlive its holder by a moment: a server on its way out, or a child
        // process forked elsewhere in the holder that has not yet exec'd (it holds a copy
        // of the descriptor). Such a holder lets go within the grace; a running server
        // does not.
        let deadline = std::time::Instant::now() + LOCK_GRACE;
        loop {
            match lock.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(TryLockError::WouldBlock) => {
                    return Err(JournalError::Locked {
                        path: dir.to_owned(),
                    });
                }
                Err(TryLockError::Error(e)) => return Err(io_error(&lock_path)(e)),
            }
        }
        // A compaction or an import that did not finish: the journal itself is whole.
        for (name, what) in [(COMPACT_NAME, "compaction"), (IMPORT_NAME, "import")] {
            let unfinished = dir.join(name);
            if unfinished.exists() {
                log::warn!("removing unfinished {what} {}", unfinished.display());
                fs::remove_file(&unfinished).map_err(io_error(&unfinished))?;
            }
        }

        let path = dir.join(FILE_NAME);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_error(&path))?;
        let bytes = fs::read(&path).map_err(io_error(&path))?;
        let mut recovery = Recovery::default();
        let end = if bytes.len() < FILE_MAGIC.len() && FILE_MAGIC.starts_with(&bytes) {
            // New, or torn while being created.
            file.set_len(0).map_err(io_error(&path))?;
            file.write_all(FILE_MAGIC).map_err(io_error(&path))?;
            file.sync_all().map_err(io_error(&path))?;
            // The new file's entry, and the directory's own entry if it is new too.
            sync_dir(dir).map_err(io_error(dir))?;
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                sync_dir(parent).map_err(io_error(parent))?;
            }
            FILE_MAGIC.len()
        } else if !bytes.starts_with(FILE_MAGIC) {
            return Err(JournalError::Foreign { path });
        } else {
            let mut interner = Interner::new(catalogue, default_venue);
            let end = scan(&bytes, &path, &mut interner, &mut recovery, &mut apply)?;
            if end < bytes.len() {
                file.set_len(end as u64).map_err(io_error(&path))?;
                file.sync_all().map_err(io_error(&path))?;
            }
            end
        };
        file.seek(SeekFrom::Start(end as u64))
            .map_err(io_error(&path))?;
        Ok((
            Journal {
                dir: dir.to_owned(),
                file,
                len: end as u64,
                _lock: lock,
                #[cfg(test)]
                fail_syncs: false,
            },
            recovery,
        ))
    }

    /// Writes one frame and waits until it is on stable storage.
    pub fn append(&mut self, frame: &mut FrameBuf) -> Result<(), AppendError> {
        let bytes = frame.seal();
        if let Err(e) = self.file.write_all(bytes) {
            // Out of space is a condition, not damage: cut what part of the frame got
            // written, and the journal ends on a whole frame, ready for the next.
            let no_space = matches!(
                e.kind(),
                io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
            );
            let mut cut = || -> io::Result<()> {
                self.file.set_len(self.len)?;
                self.file.seek(SeekFrom::Start(self.len)).map(|_| ())
            };
            return Err(match no_space && cut().is_ok() {
                true => AppendError::NoSpace(e),
                false => AppendError::Failed(e),
            });
        }
        // A failed fsync may have dropped the written pages: nothing can be said of the file.
        #[cfg(test)]
        if self.fail_syncs {
            return Err(AppendError::Failed(io::Error::other("fsync failed (test)")));
        }
        self.file.sync_data().map_err(AppendError::Failed)?;
        self.len += bytes.len() as u64;
        Ok(())
    }

    /// From now on every fsync fails, as a dying disk's might.
    #[cfg(test)]
    pub fn fail_syncs(&mut self) {
        self.fail_syncs = true;
    }

    /// The journal's size in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the journal holds no frame.
    pub fn is_empty(&self) -> bool {
        self.len <= FILE_MAGIC.len() as u64
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Replaces the journal with `compacted` (a complete, synced journal written by
    /// [`write_compacted`]) followed by this journal's bytes from `since` on.
    pub fn swap_in(&mut self, since: u64) -> io::Result<()> {
        let compact_path = self.dir.join(COMPACT_NAME);
        let mut compacted = OpenOptions::new().append(true).open(&compact_path)?;
        let mut tail = Vec::new();
        {
            use std::io::Read;
            let mut old = File::open(self.dir.join(FILE_NAME))?;
            old.seek(SeekFrom::Start(since))?;
            old.read_to_end(&mut tail)?;
        }
        compacted.write_all(&tail)?;
        compacted.sync_all()?;
        let len = compacted.metadata()?.len();
        fs::rename(&compact_path, self.dir.join(FILE_NAME))?;
        sync_dir(&self.dir)?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(self.dir.join(FILE_NAME))?;
        file.seek(SeekFrom::End(0))?;
        self.file = file;
        self.len = len;
        Ok(())
    }
}

/// Writes a compacted journal to `dir/journal.compact` from a snapshot of the live records,
/// and syncs it. [`Journal::swap_in`] then puts it in place.
pub fn write_compacted(dir: &Path, records: &[Record], default_venue: &Arc<str>) -> io::Result<()> {
    let mut file = NewJournal::create(&dir.join(COMPACT_NAME), default_venue.clone())?;
    for record in records {
        file.push(record)?;
    }
    file.finish()
}

/// A journal file written whole before it is put in place (a compaction, an import).
pub struct NewJournal {
    file: io::BufWriter<File>,
    frame: FrameBuf,
    records: usize,
}

impl NewJournal {
    /// Records a frame holds at most.
    const FRAME_RECORDS: usize = 4096;

    pub fn create(path: &Path, default_venue: Arc<str>) -> io::Result<NewJournal> {
        let mut file = io::BufWriter::with_capacity(1 << 20, File::create(path)?);
        file.write_all(FILE_MAGIC)?;
        Ok(NewJournal {
            file,
            frame: FrameBuf::new(default_venue),
            records: 0,
        })
    }

    pub fn push(&mut self, record: &Record) -> io::Result<()> {
        self.frame.push(record);
        self.records += 1;
        if self.records == Self::FRAME_RECORDS {
            self.flush_frame()?;
        }
        Ok(())
    }

    fn flush_frame(&mut self) -> io::Result<()> {
        if self.records > 0 {
            self.file.write_all(self.frame.seal())?;
            self.frame.clear();
            self.records = 0;
        }
        Ok(())
    }

    /// Writes what is left and syncs the file.
    pub fn finish(mut self) -> io::Result<()> {
        self.flush_frame()?;
        let file = self.file.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Scans frames from after the file magic; returns where the intact prefix ends.
fn scan(
    bytes: &[u8],
    path: &Path,
    interner: &mut Interner,
    recovery: &mut Recovery,
    apply: &mut impl FnMut(Record),
) -> Result<usize, JournalError> {
    let mut pos = FILE_MAGIC.len();
    while pos < bytes.len() {
        match frame_at(bytes, pos) {
            Ok(payload) => {
                let mut records = Vec::new();
                let mut rest = payload;
                while !rest.is_empty() {
                    match decode(&mut rest, interner) {
                        Some(record) => records.push(record),
                        None => {
                            return Err(JournalError::Damaged {
                                path: path.to_owned(),
                                offset: pos as u64,
                                reason: "a record this version cannot read",
                            });
                        }
                    }
                }
                recovery.frames += 1;
                recovery.records += records.len() as u64;
                records.into_iter().for_each(&mut *apply);
                pos += HEADER + payload.len();
            }
            Err(reason) => {
                // Torn tail, unless a valid frame follows the damage.
                let later = (pos + 1..bytes.len().saturating_sub(HEADER))
                    .filter(|&at| bytes[at..].starts_with(&FRAME_MAGIC))
                    .any(|at| frame_at(bytes, at).is_ok());
                if later {
                    return Err(JournalError::Damaged {
                        path: path.to_owned(),
                        offset: pos as u64,
                        reason,
                    });
                }
                let dropped = (bytes.len() - pos) as u64;
                log::warn!(
                    "journal {}: dropped a torn tail of {dropped} bytes at byte {pos} ({reason}); \
                     it held only writes that were never acknowledged",
                    path.display()
                );
                recovery.dropped = Some((dropped, reason));
                return Ok(pos);
            }
        }
    }
    Ok(pos)
}

/// The payload of the frame at `pos`, if it is whole and its checksum matches.
fn frame_at(bytes: &[u8], pos: usize) -> Result<&[u8], &'static str> {
    let header = bytes
        .get(pos..pos + HEADER)
        .ok_or("incomplete frame header")?;
    if header[0..4] != FRAME_MAGIC {
        return Err("no frame marker");
    }
    let len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
    let crc = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
    if len == 0 || len > MAX_FRAME {
        return Err("impossible frame length");
    }
    let payload = bytes
        .get(pos + HEADER..pos + HEADER + len)
        .ok_or("incomplete frame")?;
    if crc32fast::hash(payload) != crc {
        return Err("checksum mismatch");
    }
    Ok(payload)
}

/// A frame being filled with records; the header is written by [`FrameBuf::seal`].
pub struct FrameBuf {
    bytes: Vec<u8>,
    /// Its pours are written without a venue.
    default_venue: Arc<str>,
}

impl FrameBuf {
    /// A frame for a journal whose default venue is `default_venue`.
    pub fn new(default_venue: Arc<str>) -> FrameBuf {
        let mut bytes = Vec::with_capacity(4096);
        bytes.extend_from_slice(&[0; HEADER]);
        FrameBuf {
            bytes,
            default_venue,
        }
    }

    /// Whether no record was pushed.
    pub fn is_empty(&self) -> bool {
        self.bytes.len() == HEADER
    }

    /// Appends one record.
    pub fn push(&mut self, record: &Record) {
        encode(record, &self.default_venue, &mut self.bytes);
    }

    /// Empties it for the next frame.
    fn clear(&mut self) {
        self.bytes.truncate(HEADER);
    }

    /// Fills in the header and returns the whole frame.
    fn seal(&mut self) -> &[u8] {
        let len = (self.bytes.len() - HEADER) as u32;
        let crc = crc32fast::hash(&self.bytes[HEADER..]);
        self.bytes[0..4].copy_from_slice(&FRAME_MAGIC);
        self.bytes[4..8].copy_from_slice(&len.to_le_bytes());
        self.bytes[8..12].copy_from_slice(&crc.to_le_bytes());
        &self.bytes
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    // Glass names and keys are validated short (under 256 bytes) long before they get here.
    let bytes = &s.as_bytes()[..s.len().min(255)];
    out.push(bytes.len() as u8);
    out.extend_from_slice(bytes);
}

fn put_pour(out: &mut Vec<u8>, pour: &Pour) {
    out.extend_from_slice(&pour.id.to_le_bytes());
    out.extend_from_slice(&pour.tap_id.to_le_bytes());
    out.extend_from_slice(&pour.volume.to_le_bytes());
    out.extend_from_slice(&pour.timestamp.millis().to_le_bytes());
    put_str(out, &pour.glass);
    out.push(pour.flags.bits());
}

fn put_key(out: &mut Vec<u8>, key: &KeyMeta) {
    out.push(u8::from(key.device_timestamp));
    put_str(out, &key.key);
    out.extend_from_slice(&key.created.millis().to_le_bytes());
}

/// `pour`'s venue, unless it is `default_venue` (its pours are written without one).
fn elsewhere<'p>(pour: &'p Pour, default_venue: &str) -> Option<&'p str> {
    (*pour.venue != *default_venue).then_some(&*pour.venue)
}

/// Appends the binary form of `record` to `out`; a pour of `default_venue` is written
/// without its venue.
pub fn encode(record: &Record, default_venue: &str, out: &mut Vec<u8>) {
    match record {
        Record::Pour { pour, key } => {
            match elsewhere(pour, default_venue) {
                None => out.push(POUR),
                Some(_) => out.push(POUR_AT),
            }
            put_pour(out, pour);
            if let Some(venue) = elsewhere(pour, default_venue) {
                put_str(out, venue);
            }
            match key {
                None => out.push(0),
                Some(key) => {
                    out.push(1);
                    put_key(out, key);
                }
            }
        }
        Record::Delete { id } => {
            out.push(DELETE);
            out.extend_from_slice(&id.to_le_bytes());
        }
        Record::Key { pour, key } => {
            match elsewhere(pour, default_venue) {
                None => out.push(KEY),
                Some(_) => out.push(KEY_AT),
            }
            put_pour(out, pour);
            if let Some(venue) = elsewhere(pour, default_venue) {
                put_str(out, venue);
            }
            put_key(out, key);
        }
        Record::Sequence { last_id } => {
            out.push(SEQUENCE);
            out.extend_from_slice(&last_id.to_le_bytes());
        }
        Record::Tap { tap, latest } => {
            let elsewhere = (*tap.venue != *default_venue).then_some(&tap.venue);
            out.push(if elsewhere.is_some() { TAP_AT } else { TAP });
            out.extend_from_slice(&tap.tap_id.to_le_bytes());
            out.extend_from_slice(&latest.millis().to_le_bytes());
            if let Some(venue) = elsewhere {
                put_str(out, venue);
            }
        }
        Record::Keg { op, after, key } => {
            out.push(KEG);
            out.extend_from_slice(&after.to_le_bytes());
            match key {
                None => out.push(0),
                Some(key) => {
                    out.push(1);
                    put_str(out, &key.key);
                    out.extend_from_slice(&key.created.millis().to_le_bytes());
                    out.extend_from_slice(&key.keg_id.to_le_bytes());
                }
            }
            put_long_str(out, &op.to_json());
        }
        Record::KegMarks { marks } => {
            out.push(KEG_MARKS);
            put_long_str(out, marks);
        }
        Record::Alerts { snapshot } => {
            out.push(ALERTS);
            put_long_str(out, snapshot);
        }
    }
}

fn put_long_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Glass names shared by every pour that has them, instead of one string per pour.
struct Interner {
    names: HashMap<String, Arc<str>>,
    /// The venue of pours written without one.
    default_venue: Arc<str>,
}

impl Interner {
    fn new(catalogue: &Catalogue, default_venue: &Arc<str>) -> Interner {
        let mut names: HashMap<String, Arc<str>> = catalogue
            .glasses()
            .iter()
            .map(|g| (g.name.to_string(), g.name.clone()))
            .collect();
        names.insert(default_venue.to_string(), default_venue.clone());
        Interner {
            names,
            default_venue: default_venue.clone(),
        }
    }

    /// A glass or venue name, shared (a glass from an older catalogue is kept as it was
    /// stored).
    fn get(&mut self, name: &str) -> Arc<str> {
        if let Some(shared) = self.names.get(name) {
            return shared.clone();
        }
        let shared: Arc<str> = name.into();
        self.names.insert(name.to_owned(), shared.clone());
        shared
    }
}

struct Reader<'a, 'b> {
    rest: &'a mut &'b [u8],
}

impl<'b> Reader<'_, 'b> {
    fn take(&mut self, n: usize) -> Option<&'b [u8]> {
        if self.rest.len() < n {
            return None;
        }
        let (head, tail) = self.rest.split_at(n);
        *self.rest = tail;
        Some(head)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    fn str(&mut self) -> Option<&'b str> {
        let len = self.u8()? as usize;
        std::str::from_utf8(self.take(len)?).ok()
    }

    fn long_str(&mut self) -> Option<&'b str> {
        let len = u32::from_le_bytes(self.array()?) as usize;
        std::str::from_utf8(self.take(len)?).ok()
    }

    /// A pour; `flagged` for the layout with flags.
    /// A pour; its venue, if `at` (else the default venue), follows it.
    fn pour(&mut self, interner: &mut Interner, flagged: bool, at: bool) -> Option<Pour> {
        let mut pour = Pour {
            id: u64::from_le_bytes(self.array()?),
            venue: interner.default_venue.clone(),
            tap_id: u32::from_le_bytes(self.array()?),
            volume: f64::from_le_bytes(self.array()?),
            timestamp: Timestamp::from_millis(i64::from_le_bytes(self.array()?)),
            glass: interner.get(self.str()?),
            flags: if flagged {
                Flags::from_bits(self.u8()?)
            } else {
                Flags::NONE
            },
        };
        if at {
            pour.venue = interner.get(self.str()?);
        }
        Some(pour)
    }

    fn key(&mut self) -> Option<KeyMeta> {
        let device_timestamp = self.u8()? == 1;
        let key = self.str()?.to_owned();
        let created = Timestamp::from_millis(i64::from_le_bytes(self.array()?));
        Some(KeyMeta {
            key,
            created,
            device_timestamp,
        })
    }
}

/// Reads one record from the front of `rest`.
fn decode(rest: &mut &[u8], interner: &mut Interner) -> Option<Record> {
    let mut r = Reader { rest };
    match r.u8()? {
        tag @ (POUR | POUR_V1 | POUR_AT) => {
            let pour = r.pour(interner, tag != POUR_V1, tag == POUR_AT)?;
            let key = match r.u8()? {
                0 => None,
                1 => Some(r.key()?),
                _ => return None,
            };
            Some(Record::Pour { pour, key })
        }
        DELETE => Some(Record::Delete {
            id: u64::from_le_bytes(r.array()?),
        }),
        tag @ (KEY | KEY_V1 | KEY_AT) => {
            let pour = r.pour(interner, tag != KEY_V1, tag == KEY_AT)?;
            let key = r.key()?;
            Some(Record::Key { pour, key })
        }
        SEQUENCE => Some(Record::Sequence {
            last_id: u64::from_le_bytes(r.array()?),
        }),
        tag @ (TAP | TAP_AT) => {
            let tap_id = u32::from_le_bytes(r.array()?);
            let latest = Timestamp::from_millis(i64::from_le_bytes(r.array()?));
            let venue = match tag {
                TAP_AT => interner.get(r.str()?),
                _ => interner.default_venue.clone(),
            };
            Some(Record::Tap {
                tap: TapRef { venue, tap_id },
                latest,
            })
        }
        KEG => {
            let after = u64::from_le_bytes(r.array()?);
            let key = match r.u8()? {
                0 => None,
                1 => Some(KegKey {
                    key: r.str()?.to_owned(),
                    created: Timestamp::from_millis(i64::from_le_bytes(r.array()?)),
                    keg_id: u64::from_le_bytes(r.array()?),
                }),
                _ => return None,
            };
            let op = KegOp::from_json(r.long_str()?)?;
            Some(Record::Keg { op, after, key })
        }
        KEG_MARKS => Some(Record::KegMarks {
            marks: r.long_str()?.to_owned(),
        }),
        ALERTS => Some(Record::Alerts {
            snapshot: r.long_str()?.to_owned(),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pour(id: u64) -> Pour {
        Pour {
            venue: "main".into(),
            id,
            tap_id: 7,
            volume: 512.5,
            glass: "pint".into(),
            timestamp: Timestamp::from_millis(1_800_000_000_123),
            flags: Flags::from_bits(0b1_0001),
        }
    }

    fn records() -> Vec<Record> {
        vec![
            Record::Sequence { last_id: 9 },
            Record::Pour {
                pour: pour(10),
                key: None,
            },
            Record::Pour {
                pour: pour(11),
                key: Some(KeyMeta {
                    key: "k-1".into(),
                    created: Timestamp::from_millis(5),
                    device_timestamp: true,
                }),
            },
            Record::Delete { id: 10 },
            Record::Key {
                pour: pour(3),
                key: KeyMeta {
                    key: "old".into(),
                    created: Timestamp::from_millis(6),
                    device_timestamp: false,
                },
            },
            Record::Tap {
                tap: TapRef {
                    venue: "main".into(),
                    tap_id: 7,
                },
                latest: Timestamp::from_millis(1_800_000_001_000),
            },
            Record::Tap {
                tap: TapRef {
                    venue: "dock".into(),
                    tap_id: 7,
                },
                latest: Timestamp::from_millis(1_800_000_002_000),
            },
            Record::Keg {
                op: KegOp::Tap {
                    venue: None,
                    tap_id: 7,
                    beverage: "Märzen \"dunkel\"".into(),
                    size_ul: 50_000_000,
                    start_ul: 40_000_000,
                    at: Timestamp::from_millis(1_800_000_002_000),
                },
                after: 11,
                key: Some(KegKey {
                    key: "tap-7-keg".into(),
                    created: Timestamp::from_millis(7),
                    keg_id: 1,
                }),
            },
            Record::Keg {
                op: KegOp::Finish {
                    keg_id: 1,
                    left_ul: Some(400_000),
                    at: Timestamp::from_millis(1_800_000_003_000),
                },
                after: 11,
                key: None,
            },
            Record::KegMarks {
                marks: r#"{"events":3}"#.into(),
            },
            Record::Alerts {
                snapshot: r#"{"alerts":[]}"#.into(),
            },
        ]
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("altair-journal-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    fn reopen(dir: &Path) -> Result<(Journal, Recovery, Vec<Record>), JournalError> {
        let mut seen = Vec::new();
        let main: Arc<str> = "main".into();
        let (journal, recovery) =
            Journal::open(dir, &Catalogue::default(), &main, |r| seen.push(r))?;
        Ok((journal, recovery, seen))
    }

    fn write(journal: &mut Journal, records: &[Record]) {
        let mut frame = FrameBuf::new("main".into());
        for r in records {
            frame.push(r);
        }
        journal.append(&mut frame).unwrap();
    }

    #[test]
    fn records_round_trip_through_the_file() {
        let dir = temp_dir("roundtrip");
        let (mut journal, recovery, seen) = reopen(&dir).unwrap();
        assert!(seen.is_empty() && journal.is_empty());
        assert_eq!(recovery, Recovery::default());
        write(&mut journal, &records()[..2]);
        write(&mut journal, &records()[2..]);
        drop(journal);
        let (_, recovery, seen) = reopen(&dir).unwrap();
        assert_eq!(seen, records());
        assert_eq!(
            (recovery.frames, recovery.records, recovery.dropped),
            (2, 11, None)
        );
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_default_venues_pours_are_written_without_it_and_read_as_the_default_now() {
        let at = |venue: &str| Pour {
            venue: venue.into(),
            ..pour(1)
        };
        let (main, dock) = (at("main"), at("dock"));
        let mut bytes = Vec::new();
        for pour in [&main, &dock] {
            let record = Record::Pour {
                pour: pour.clone(),
                key: None,
            };
            encode(&record, "main", &mut bytes);
        }
        // The default venue's pour is laid out as before venues: a POUR, no venue.
        let mut plain = Vec::new();
        encode(
            &Record::Pour {
                pour: at("elsewhere"),
                key: None,
            },
            "elsewhere",
            &mut plain,
        );
        assert_eq!(bytes[0], POUR);
        assert_eq!(&bytes[..plain.len()], &plain[..]);
        let read = |default: &str| {
            let mut interner = Interner::new(&Catalogue::default(), &default.into());
            let mut rest = &bytes[..];
            let mut venues = Vec::new();
            while let Some(Record::Pour { pour, .. }) = decode(&mut rest, &mut interner) {
                venues.push(pour.venue.to_string());
            }
            venues
        };
        assert_eq!(read("main"), ["main", "dock"]);
        // Started with another --default-venue, the default venue's pours are its.
        assert_eq!(read("harbour"), ["harbour", "dock"]);
    }

    #[test]
    fn a_journal_written_before_flags_is_read_as_it_stands() {
        // Written by the release before flags: pours 1, 2 (posted with key fixture-key-2),
        // 3 and 4, then pour 3 deleted.
        let dir = temp_dir("v1");
        fs::create_dir_all(&dir).unwrap();
        let fixture = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/journal-v1/journal"
        );
        fs::copy(fixture, dir.join(FILE_NAME)).unwrap();
        let (mut journal, recovery, seen) = reopen(&dir).unwrap();
        assert_eq!(recovery.dropped, None);
        let at = |minute: i64| {
            Timestamp::parse("2026-11-20T20:00:00Z").unwrap().millis() + minute * 60_000
        };
        let old = |id, tap_id, volume, glass: &str, minute| Pour {
            venue: "main".into(),
            id,
            tap_id,
            volume,
            glass: glass.into(),
            timestamp: Timestamp::from_millis(at(minute)),
            flags: Flags::NONE,
        };
        let Record::Pour { key: Some(key), .. } = &seen[1] else {
            panic!("pour 2 has its key: {:?}", seen[1]);
        };
        assert_eq!(
            (key.key.as_str(), key.device_timestamp),
            ("fixture-key-2", true)
        );
        assert_eq!(
            seen,
            [
                Record::Pour {
                    pour: old(1, 1, 500.0, "pint", 0),
                    key: None
                },
                Record::Pour {
                    pour: old(2, 2, 250.0, "half", 1),
                    key: Some(key.clone())
                },
                Record::Pour {
                    pour: old(3, 1, 900.0, "stein", 2),
                    key: None
                },
                Record::Pour {
                    pour: old(4, 3, 330.0, "pint", 3),
                    key: None
                },
                Record::Delete { id: 3 },
            ]
        );
        // New records follow the old ones in the same file.
        write(&mut journal, &records()[1..2]);
        drop(journal);
        assert_eq!(reopen(&dir).unwrap().2[5], records()[1]);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_torn_last_frame_is_dropped_and_the_prefix_kept() {
        let dir = temp_dir("torn");
        let (mut journal, _, _) = reopen(&dir).unwrap();
        write(&mut journal, &records()[..2]);
        let whole = journal.len();
        write(&mut journal, &records()[2..]);
        drop(journal);
        let path = dir.join(FILE_NAME);
        let full = fs::metadata(&path).unwrap().len();
        for cut in [whole + 3, whole + 20, full - 1] {
            OpenOptions::new()
                .write(true)
                .open(&path)
                .unwrap()
                .set_len(cut)
                .unwrap();
            let (mut journal, recovery, seen) = reopen(&dir).unwrap();
            assert_eq!(seen, records()[..2], "cut at {cut}");
            assert_eq!(recovery.dropped.unwrap().0, cut - whole);
            assert_eq!(journal.len(), whole, "the tail is truncated away");
            // Appends continue after the intact prefix.
            write(&mut journal, &records()[2..]);
            drop(journal);
            assert_eq!(reopen(&dir).unwrap().2, records());
        }
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn zeros_after_the_last_frame_are_a_torn_tail() {
        let dir = temp_dir("zeros");
        let (mut journal, _, _) = reopen(&dir).unwrap();
        write(&mut journal, &records());
        drop(journal);
        let mut file = OpenOptions::new()
            .append(true)
            .open(dir.join(FILE_NAME))
            .unwrap();
        file.write_all(&[0; 4096]).unwrap();
        drop(file);
        let (_, recovery, seen) = reopen(&dir).unwrap();
        assert_eq!(seen, records());
        assert_eq!(recovery.dropped.unwrap().0, 4096);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn damage_before_a_valid_frame_refuses_to_start() {
        let dir = temp_dir("damaged");
        let (mut journal, _, _) = reopen(&dir).unwrap();
        write(&mut journal, &records()[..2]);
        write(&mut journal, &records()[2..]);
        drop(journal);
        let path = dir.join(FILE_NAME);
        let mut bytes = fs::read(&path).unwrap();
        bytes[FILE_MAGIC.len() + HEADER + 3] ^= 0xFF;
        fs::write(&path, &bytes).unwrap();
        match reopen(&dir) {
            Err(JournalError::Damaged { offset, reason, .. }) => {
                assert_eq!(offset, FILE_MAGIC.len() as u64);
                assert_eq!(reason, "checksum mismatch");
            }
            other => panic!("expected Damaged, got {:?}", other.map(|r| r.2)),
        }
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_second_opener_is_locked_out() {
        let dir = temp_dir("lock");
        let (journal, _, _) = reopen(&dir).unwrap();
        assert!(matches!(reopen(&dir), Err(JournalError::Locked { .. })));
        drop(journal);
        assert!(reopen(&dir).is_ok(), "the lock goes with the journal");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn an_opener_waits_for_a_lock_let_go_within_the_grace() {
        let dir = temp_dir("lock-grace");
        let (journal, _, _) = reopen(&dir).unwrap();
        // As a child forked before exec would: a copy of the lock's descriptor, closed soon.
        let copy = journal._lock.try_clone().unwrap();
        drop(journal);
        let holder = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(300));
            drop(copy);
        });
        let started = std::time::Instant::now();
        assert!(reopen(&dir).is_ok(), "opened once the copy was closed");
        assert!(started.elapsed() >= std::time::Duration::from_millis(250));
        holder.join().unwrap();
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_foreign_file_is_refused() {
        let dir = temp_dir("foreign");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(FILE_NAME), b"hello, world").unwrap();
        assert!(matches!(reopen(&dir), Err(JournalError::Foreign { .. })));
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn compaction_swaps_in_a_snapshot_plus_the_tail() {
        let dir = temp_dir("compact");
        let (mut journal, _, _) = reopen(&dir).unwrap();
        write(&mut journal, &records());
        let since = journal.len();
        write(&mut journal, &[Record::Delete { id: 11 }]);
        let snapshot = vec![Record::Sequence { last_id: 11 }, records()[2].clone()];
        write_compacted(&dir, &snapshot, &"main".into()).unwrap();
        journal.swap_in(since).unwrap();
        write(&mut journal, &[Record::Delete { id: 3 }]);
        drop(journal);
        let (_, _, seen) = reopen(&dir).unwrap();
        assert_eq!(
            seen,
            [
                snapshot[0].clone(),
                snapshot[1].clone(),
                Record::Delete { id: 11 },
                Record::Delete { id: 3 }
            ]
        );
        fs::remove_dir_all(dir).unwrap();
    }
}
