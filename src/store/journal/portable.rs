//! A stopped journal as a portable stream ([`crate::store::portable`]), and a stream into
//! an empty journal: written beside it as `journal.import` and put in place by rename only
//! once the whole stream has checked out, so that a refused or killed import leaves the
//! data directory as empty as it found it.

use std::fs;
use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::Arc;

use super::file::{self, IMPORT_NAME, Journal, JournalError, KeyMeta, NewJournal, Record};
use crate::glass::Catalogue;
use crate::pour::{TapRef, Timestamp};
use crate::store::KegKey;
use crate::store::portable::{
    Checker, Header, Line, MoveError, OpKey, PourKey, Trailer, VERSION, Writer, count, read,
    webhook_line, webhook_of,
};

/// A journal record as a line; `last_id` is the highest pour id before it (where a
/// deletion stands).
fn line_of(record: Record, last_id: u64) -> Result<Line, String> {
    let json = |text: &str, what: &str| {
        serde_json::from_str(text).map_err(|e| format!("unreadable {what} in the journal: {e}"))
    };
    Ok(match record {
        Record::Pour { pour, key } => Line::Pour {
            pour,
            key: key.map(pour_key),
        },
        Record::Delete { id } => Line::Delete { id, after: last_id },
        Record::Key { pour, key } => Line::DeletedKey {
            pour,
            key: pour_key(key),
        },
        Record::Sequence { last_id } => Line::Sequence { last_id },
        Record::Tap { tap, latest } => Line::Tap {
            venue: tap.venue.to_string(),
            tap_id: tap.tap_id,
            latest,
        },
        Record::Keg { op, after, key } => Line::Keg {
            op,
            after,
            key: key.map(|k| OpKey {
                key: k.key,
                created: k.created,
                keg_id: k.keg_id,
            }),
        },
        Record::KegMarks { marks } => Line::Marks {
            marks: json(&marks, "keg marks")?,
        },
        Record::Alerts { snapshot } => Line::Alerts {
            alerts: json(&snapshot, "alerts")?,
        },
    })
}

fn pour_key(k: KeyMeta) -> PourKey {
    PourKey {
        key: k.key,
        created: k.created,
        device_timestamp: k.device_timestamp,
    }
}

fn key_meta(k: PourKey) -> KeyMeta {
    KeyMeta {
        key: k.key,
        created: k.created,
        device_timestamp: k.device_timestamp,
    }
}

/// The journal record of a record line (none for a header or trailer).
fn record_of(line: Line) -> Option<Record> {
    Some(match line {
        Line::Header(_) | Line::Trailer(_) | Line::Webhook { .. } => return None,
        Line::Pour { pour, key } => Record::Pour {
            pour,
            key: key.map(key_meta),
        },
        Line::Delete { id, .. } => Record::Delete { id },
        Line::Keg { op, after, key } => Record::Keg {
            op,
            after,
            key: key.map(|k| KegKey {
                key: k.key,
                created: k.created,
                keg_id: k.keg_id,
            }),
        },
        Line::DeletedKey { pour, key } => Record::Key {
            pour,
            key: key_meta(key),
        },
        Line::Tap {
            venue,
            tap_id,
            latest,
        } => Record::Tap {
            tap: TapRef {
                venue: venue.into(),
                tap_id,
            },
            latest,
        },
        Line::Marks { marks } => Record::KegMarks {
            marks: marks.to_string(),
        },
        Line::Alerts { alerts } => Record::Alerts {
            snapshot: alerts.to_string(),
        },
        Line::Sequence { last_id } => Record::Sequence { last_id },
    })
}

impl From<JournalError> for MoveError {
    fn from(e: JournalError) -> MoveError {
        MoveError::Other(e.to_string())
    }
}

/// Writes the journal in `dir` (stopped: its lock is taken) to `out`. Idempotency keys
/// older than `key_ttl` are left out: no store answers them any more.
pub fn export(
    dir: &Path,
    catalogue: &Catalogue,
    default_venue: &Arc<str>,
    key_ttl: std::time::Duration,
    include_secrets: bool,
    out: impl Write,
) -> Result<Trailer, MoveError> {
    if !dir.join(file::FILE_NAME).exists() {
        return Err(MoveError::Other(format!(
            "there is no journal in {}",
            dir.display()
        )));
    }
    let mut records = Vec::new();
    let (_journal, _) = Journal::open(dir, catalogue, default_venue, |r| records.push(r))?;
    let outbox = crate::store::FileOutbox::open(dir)
        .map_err(|e| MoveError::Other(format!("webhooks: {e}")))?;
    let hooks = futures::executor::block_on(crate::store::Outbox::hooks(&outbox))
        .map_err(|e| MoveError::Other(format!("webhooks: {e}")))?;
    let hooks = hooks
        .iter()
        .map(|h| webhook_line(h, include_secrets))
        .collect();
    write_records(hooks, records, default_venue, key_ttl, "journal", out)
}

/// Writes the webhooks' lines and journal records (a journal's, or a running store's live
/// log) as a stream.
pub fn write_records(
    hooks: Vec<Line>,
    records: Vec<Record>,
    default_venue: &Arc<str>,
    key_ttl: std::time::Duration,
    source: &str,
    out: impl Write,
) -> Result<Trailer, MoveError> {
    let now = Timestamp::now();
    let ttl = i64::try_from(key_ttl.as_millis()).unwrap_or(i64::MAX);
    let alive = |created: Timestamp| now.millis().saturating_sub(created.millis()) < ttl;
    let (mut lines, mut last_id) = (hooks, 0);
    lines.reserve(records.len());
    for record in records {
        let mut line = line_of(record, last_id).map_err(MoveError::Other)?;
        match &mut line {
            Line::Pour { pour, key } => {
                last_id = last_id.max(pour.id);
                key.take_if(|k| !alive(k.created));
            }
            Line::Keg { key, .. } => {
                key.take_if(|k| !alive(k.created));
            }
            Line::DeletedKey { key, .. } if !alive(key.created) => continue,
            Line::Sequence { last_id: id } => last_id = last_id.max(*id),
            _ => {}
        }
        lines.push(line);
    }
    canonical(&mut lines);
    let counts = count(&lines);
    let header = Header {
        format: "altair-log".into(),
        version: VERSION,
        source: source.into(),
        exported_at: now,
        default_venue: default_venue.to_string(),
        last_id,
        counts,
    };
    let io = |e: std::io::Error| MoveError::Other(format!("cannot write the export: {e}"));
    let mut writer = Writer::start(out, &header).map_err(io)?;
    for line in &lines {
        writer.record(line).map_err(io)?;
    }
    let (_, trailer) = writer.finish().map_err(io)?;
    Ok(trailer)
}

/// Puts the lines in the one order every store exports: where the journal's order says
/// nothing (the keys and taps compaction wrote from hash tables) or the stores differ
/// (a deletion and a keg operation at the same place, with no pour between: PostgreSQL
/// numbers them apart, and replays the deletions first), as PostgreSQL has them.
fn canonical(lines: &mut [Line]) {
    let rank = |line: &Line| -> Option<(u8, u64, u64, String)> {
        match line {
            Line::DeletedKey { pour, .. } => Some((0, pour.id, 0, String::new())),
            Line::Tap { venue, tap_id, .. } => Some((1, 0, u64::from(*tap_id), venue.clone())),
            Line::Delete { after, .. } => Some((2, *after, 0, String::new())),
            Line::Keg { after, .. } => Some((2, *after, 1, String::new())),
            _ => None,
        }
    };
    let mut start = 0;
    while start < lines.len() {
        let Some(group) = rank(&lines[start]).map(|r| r.0) else {
            start += 1;
            continue;
        };
        let end = start
            + lines[start..]
                .iter()
                .take_while(|l| rank(l).is_some_and(|r| r.0 == group))
                .count();
        // Stable: lines that rank alike keep their order.
        lines[start..end].sort_by(|a, b| {
            let (a, b) = (rank(a), rank(b));
            match group {
                1 => a.map(|r| (r.3, r.2)).cmp(&b.map(|r| (r.3, r.2))),
                _ => a.map(|r| (r.1, r.2)).cmp(&b.map(|r| (r.1, r.2))),
            }
        });
        start = end;
    }
}

/// What an import did.
#[derive(Debug, Clone, PartialEq)]
pub struct Imported {
    pub header: Header,
    pub trailer: Trailer,
}

/// Reads a stream from `input` into the empty journal in `dir` (created if missing);
/// `progress` hears of every 4,096 records (done, of the header's count).
pub fn import(
    dir: &Path,
    catalogue: &Catalogue,
    default_venue: &Arc<str>,
    input: impl BufRead,
    mut progress: impl FnMut(u64, u64),
) -> Result<Imported, MoveError> {
    let mut held = 0u64;
    let (journal, _) = Journal::open(dir, catalogue, default_venue, |_| held += 1)?;
    if held > 0 || !journal.is_empty() {
        return Err(MoveError::Other(format!(
            "{} holds a journal ({held} records): import only into an empty store",
            dir.display()
        )));
    }
    let webhooks = dir.join(crate::store::outbox::FILE_NAME);
    if webhooks.exists() {
        return Err(MoveError::Other(format!(
            "{} holds webhooks ({}): import only into an empty store",
            dir.display(),
            webhooks.display()
        )));
    }
    let path = dir.join(IMPORT_NAME);
    let io = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
    let mut file =
        NewJournal::create(&path, default_venue.clone()).map_err(|e| MoveError::Other(io(e)))?;
    let mut checker = Checker::new(Some(default_venue));
    let mut hooks = Vec::new();
    let read = read(input, &mut checker, |line, checker| {
        if let Line::Webhook { hook } = line {
            hooks.push(webhook_of(hook)?);
            return Ok(());
        }
        if let Some(record) = record_of(line) {
            file.push(&record).map_err(io)?;
        }
        let done = checker.records();
        if done % 4096 == 0 {
            progress(done, checker.expected());
        }
        Ok(())
    });
    let trailer = match read {
        Ok(trailer) => trailer,
        Err(refused) => {
            drop(file);
            let _ = fs::remove_file(&path);
            return Err(refused.into());
        }
    };
    progress(checker.records(), checker.records());
    let placed = file
        .finish()
        .and_then(|()| fs::rename(&path, dir.join(file::FILE_NAME)))
        .and_then(|()| fs::File::open(dir)?.sync_all());
    if let Err(e) = placed {
        let _ = fs::remove_file(&path);
        return Err(MoveError::Other(io(e)));
    }
    if !hooks.is_empty() {
        crate::store::FileOutbox::restore(dir, hooks)
            .map_err(|e| MoveError::Other(format!("webhooks: {e}")))?;
    }
    drop(journal);
    let header = checker
        .header()
        .cloned()
        .ok_or_else(|| MoveError::Other("no header".into()))?;
    Ok(Imported { header, trailer })
}
