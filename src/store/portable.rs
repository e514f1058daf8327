//! The whole log as a portable stream, for backups and for moving between stores
//! (`altair-server export` and `import`).
//!
//! ```text
//! {"t":"header","format":"altair-log","version":1,"source":"journal",...,"counts":{...}}
//! {"t":"pour","pour":{...},"key":{...}}        one record a line, in log order
//! {"t":"delete","id":7,"after":9}
//! {"t":"keg","op":{...},"after":9}
//! {"t":"trailer","counts":{...},"sha256":"..."}
//! ```
//!
//! The SHA-256 runs over the record lines (each with its newline), not the header: the same
//! log exported from any store gives the same checksum. Besides pours, deletions and keg
//! operations (which carry venues and alert acknowledgements too), a compacted journal
//! has what compaction kept of the records it dropped: the keys of deleted pours
//! (`deletedKey`), each tap's latest pour time (`tap`), what the kegs announced (`marks`),
//! the alerts (`alerts`) and the highest id (`sequence`). They stand where compaction put
//! them, and a store that reads the stream applies them there.
//!
//! [`Checker`] reads a stream line by line and refuses, naming the line, anything that is
//! not a whole, ordered log this version can read; the stores' importers write only what
//! it let through, and keep nothing until the trailer has checked out.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, Write};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::keg::KegOp;
use crate::pour::{Pour, Timestamp};

/// The format this version writes, and the newest it reads.
pub const VERSION: u32 = 1;
const FORMAT: &str = "altair-log";

/// The first line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Header {
    pub format: String,
    pub version: u32,
    /// `journal`, `postgres` or `server`.
    pub source: String,
    pub exported_at: Timestamp,
    /// The source's `--default-venue`: a target must name the same.
    pub default_venue: String,
    /// The highest pour id the source ever assigned.
    pub last_id: u64,
    pub counts: Counts,
}

/// Records of each kind.
pub type Counts = BTreeMap<String, u64>;

/// The last line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Trailer {
    pub counts: Counts,
    pub sha256: String,
}

/// An idempotency key a pour was posted under.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PourKey {
    pub key: String,
    pub created: Timestamp,
    /// Whether the request named the timestamp.
    pub device_timestamp: bool,
}

/// An idempotency key a keg operation was logged under.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OpKey {
    pub key: String,
    pub created: Timestamp,
    pub keg_id: u64,
}

/// One line of the stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "camelCase")]
pub enum Line {
    Header(Header),
    Pour {
        pour: Pour,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key: Option<PourKey>,
    },
    /// Pour `id` deleted, after pour `after` was logged.
    Delete {
        id: u64,
        after: u64,
    },
    Keg {
        op: KegOp,
        after: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key: Option<OpKey>,
    },
    /// A key whose pour was deleted and compacted away.
    DeletedKey {
        pour: Pour,
        key: PourKey,
    },
    /// The latest time a tap reported a pour at, deleted or not.
    #[serde(rename_all = "camelCase")]
    Tap {
        venue: String,
        tap_id: u32,
        latest: Timestamp,
    },
    /// What the kegs have announced ([`crate::keg::Marks`]).
    Marks {
        marks: serde_json::Value,
    },
    /// Every alert ([`crate::alert::Alerts::snapshot`]).
    Alerts {
        alerts: serde_json::Value,
    },
    /// The highest id ever assigned.
    #[serde(rename_all = "camelCase")]
    Sequence {
        last_id: u64,
    },
    /// A webhook, as the API shows it, with its secret only when the export was asked to
    /// include secrets ([`webhook_line`]).
    Webhook {
        hook: serde_json::Value,
    },
    Trailer(Trailer),
}

impl Line {
    /// Its kind, as counted.
    pub fn kind(&self) -> &'static str {
        match self {
            Line::Header(_) => "header",
            Line::Pour { .. } => "pour",
            Line::Delete { .. } => "delete",
            Line::Keg { .. } => "keg",
            Line::DeletedKey { .. } => "deletedKey",
            Line::Tap { .. } => "tap",
            Line::Marks { .. } => "marks",
            Line::Alerts { .. } => "alerts",
            Line::Sequence { .. } => "sequence",
            Line::Webhook { .. } => "webhook",
            Line::Trailer(_) => "trailer",
        }
    }
}

/// A webhook's line: without its secret unless `include_secret`.
pub fn webhook_line(hook: &crate::webhook::Hook, include_secret: bool) -> Line {
    let mut value = serde_json::to_value(hook).unwrap_or_default();
    if !include_secret && let Some(map) = value.as_object_mut() {
        map.remove("secret");
    }
    Line::Webhook { hook: value }
}

/// The webhook of a line. One exported without its secret gets a new random one (which
/// nobody knows) and comes in disabled, saying so: it cannot sign for its receiver.
pub fn webhook_of(hook: serde_json::Value) -> Result<crate::webhook::Hook, String> {
    let mut hook = hook;
    let map = hook
        .as_object_mut()
        .ok_or_else(|| "a webhook that is not an object".to_owned())?;
    if !map.contains_key("secret") {
        let secret = crate::webhook::Secret::generate().map_err(|e| e.to_string())?;
        map.insert("secret".into(), secret.reveal().into());
        map.insert("enabled".into(), false.into());
        map.insert(
            "disabledReason".into(),
            "imported without its secret: delete it and make it again, or import an export made with --include-secrets"
                .into(),
        );
    }
    serde_json::from_value(hook).map_err(|e| format!("not a webhook this version reads ({e})"))
}

/// Writes a stream: the header, the records (counted and hashed), the trailer.
pub struct Writer<W: Write> {
    out: W,
    hash: Sha256,
    counts: Counts,
    buf: Vec<u8>,
}

impl<W: Write> Writer<W> {
    pub fn start(mut out: W, header: &Header) -> std::io::Result<Writer<W>> {
        let mut buf = serde_json::to_vec(&Line::Header(header.clone()))?;
        buf.push(b'\n');
        out.write_all(&buf)?;
        Ok(Writer {
            out,
            hash: Sha256::new(),
            counts: Counts::new(),
            buf,
        })
    }

    pub fn record(&mut self, line: &Line) -> std::io::Result<()> {
        self.buf.clear();
        serde_json::to_writer(&mut self.buf, line)?;
        self.buf.push(b'\n');
        self.hash.update(&self.buf);
        *self.counts.entry(line.kind().to_owned()).or_default() += 1;
        self.out.write_all(&self.buf)
    }

    /// Writes the trailer; returns the output and the trailer.
    pub fn finish(mut self) -> std::io::Result<(W, Trailer)> {
        let trailer = Trailer {
            counts: self.counts,
            sha256: hex(&self.hash.finalize()),
        };
        serde_json::to_writer(&mut self.out, &Line::Trailer(trailer.clone()))?;
        self.out.write_all(b"\n")?;
        self.out.flush()?;
        Ok((self.out, trailer))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Why a store could not be exported or imported.
#[derive(Debug, thiserror::Error)]
pub enum MoveError {
    #[error("{0}")]
    Refused(#[from] Refused),
    #[error("{0}")]
    Other(String),
}

/// Records of each kind in `lines`.
pub fn count<'a>(lines: impl IntoIterator<Item = &'a Line>) -> Counts {
    let mut counts = Counts::new();
    for line in lines {
        *counts.entry(line.kind().to_owned()).or_default() += 1;
    }
    counts
}

/// Why a stream was refused, and at which line (from 1).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("line {line}: {why}")]
pub struct Refused {
    pub line: u64,
    pub why: String,
}

/// Reads a stream's lines in order and lets through only a whole, ordered log: the header
/// first (a version this one reads), pours in rising id order, deletions of live pours,
/// every record at or after the place of the one before it, and a trailer whose counts
/// and checksum match what came before it (and the header's counts), then nothing.
pub struct Checker {
    line: u64,
    header: Option<Header>,
    hash: Sha256,
    counts: Counts,
    /// The highest pour id so far, and the highest place (`after`) so far.
    last_id: u64,
    place: u64,
    live: HashSet<u64>,
    trailer: Option<Trailer>,
    expected_venue: Option<String>,
}

impl Checker {
    /// A checker for a target whose default venue is `default_venue` (none: any).
    pub fn new(default_venue: Option<&str>) -> Checker {
        Checker {
            line: 0,
            header: None,
            hash: Sha256::new(),
            counts: Counts::new(),
            last_id: 0,
            place: 0,
            live: HashSet::new(),
            trailer: None,
            expected_venue: default_venue.map(str::to_owned),
        }
    }

    /// The header, once read.
    pub fn header(&self) -> Option<&Header> {
        self.header.as_ref()
    }

    /// The place reached: the highest pour id, or place of a record, so far.
    pub fn place(&self) -> u64 {
        self.last_id.max(self.place)
    }

    /// Lines read.
    pub fn lines(&self) -> u64 {
        self.line
    }

    /// Records the header says the stream holds.
    pub fn expected(&self) -> u64 {
        self.header.as_ref().map_or(0, |h| h.counts.values().sum())
    }

    /// Records read so far.
    pub fn records(&self) -> u64 {
        self.counts.values().sum()
    }

    fn refuse<T>(&self, why: impl Into<String>) -> Result<T, Refused> {
        Err(Refused {
            line: self.line,
            why: why.into(),
        })
    }

    /// Reads the next line (without its newline); a record line comes back as its line.
    pub fn next(&mut self, text: &[u8]) -> Result<Option<Line>, Refused> {
        self.line += 1;
        if self.trailer.is_some() {
            return self.refuse("a line after the trailer: the stream goes on past its end");
        }
        let line: Line = match serde_json::from_slice(text) {
            Ok(line) => line,
            Err(_) if self.header.is_none() && self.line == 1 => {
                return self.refuse("not an Altair export: the first line is not its header");
            }
            Err(e) => return self.refuse(format!("not a record this version reads ({e})")),
        };
        let Some(_) = &self.header else {
            let Line::Header(header) = line else {
                return self.refuse("not an Altair export: the first line is not its header");
            };
            if header.format != FORMAT {
                return self.refuse(format!("the format is {:?}, not {FORMAT}", header.format));
            }
            if header.version > VERSION {
                return self.refuse(format!(
                    "format version {} is newer than this version of Altair reads ({VERSION}): import with a newer altair-server",
                    header.version
                ));
            }
            if let Some(venue) = &self.expected_venue
                && *venue != header.default_venue
            {
                return self.refuse(format!(
                    "exported with --default-venue {}, imported with {venue}: name the same default venue",
                    header.default_venue
                ));
            }
            self.header = Some(header);
            return Ok(None);
        };
        match &line {
            Line::Header(_) => return self.refuse("a second header"),
            Line::Trailer(trailer) => {
                let sha256 = hex(&self.hash.clone().finalize());
                if trailer.counts != self.counts {
                    return self.refuse(format!(
                        "the trailer counts {:?}, the stream holds {:?}: records are missing or added",
                        trailer.counts, self.counts
                    ));
                }
                if trailer.sha256 != sha256 {
                    return self.refuse(
                        "the checksum does not match the records: the stream was changed after it was written",
                    );
                }
                if self
                    .header
                    .as_ref()
                    .is_some_and(|h| h.counts != self.counts)
                {
                    return self.refuse("the header's counts differ from the stream's");
                }
                self.trailer = Some(trailer.clone());
                return Ok(None);
            }
            Line::Pour { pour, .. } => {
                if pour.id <= self.last_id.max(self.place) {
                    return self.refuse(format!(
                        "pour {} comes after pour or place {}: the stream is out of order",
                        pour.id,
                        self.last_id.max(self.place)
                    ));
                }
                if pour.venue.is_empty() {
                    return self.refuse(format!("pour {} has no venue", pour.id));
                }
                self.last_id = pour.id;
                self.live.insert(pour.id);
            }
            Line::Delete { id, after } => {
                self.placed(*after)?;
                if !self.live.remove(id) {
                    return self.refuse(format!("a deletion of pour {id}, which is not stored"));
                }
            }
            Line::Keg { after, .. } => self.placed(*after)?,
            Line::Sequence { last_id } => {
                if *last_id < self.last_id {
                    return self.refuse(format!(
                        "the highest id ({last_id}) is below a pour's ({})",
                        self.last_id
                    ));
                }
                self.place = self.place.max(*last_id);
            }
            Line::DeletedKey { .. }
            | Line::Tap { .. }
            | Line::Marks { .. }
            | Line::Alerts { .. } => {}
            Line::Webhook { hook } => {
                if let Err(why) = webhook_of(hook.clone()) {
                    return self.refuse(why);
                }
            }
        }
        self.hash.update(text);
        self.hash.update(b"\n");
        *self.counts.entry(line.kind().to_owned()).or_default() += 1;
        Ok(Some(line))
    }

    /// A record placed after pour `after`: not before the pours already read.
    fn placed(&mut self, after: u64) -> Result<(), Refused> {
        if after < self.last_id || after < self.place {
            return self.refuse(format!(
                "a record placed after pour {after} comes after pour or place {}: the stream is out of order",
                self.last_id.max(self.place)
            ));
        }
        self.place = after;
        Ok(())
    }

    /// At the end of the input: whether the trailer came.
    pub fn end(&self) -> Result<Trailer, Refused> {
        match &self.trailer {
            Some(trailer) => Ok(trailer.clone()),
            None if self.header.is_none() => Err(Refused {
                line: self.line,
                why: "empty: not an Altair export".into(),
            }),
            None => Err(Refused {
                line: self.line,
                why: "the stream ends before its trailer: it is truncated".into(),
            }),
        }
    }
}

/// Feeds every line of `input` to `checker`, and each record line to `apply`; an empty
/// line is refused too (the stream has none).
pub fn read(
    mut input: impl BufRead,
    checker: &mut Checker,
    mut apply: impl FnMut(Line, &Checker) -> Result<(), String>,
) -> Result<Trailer, Refused> {
    loop {
        if let Some(trailer) = read_lines(&mut input, checker, usize::MAX, &mut apply)? {
            return Ok(trailer);
        }
    }
}

/// [`read`], `lines` lines at most: the trailer once the stream has ended, checked;
/// none if it goes on.
pub fn read_lines(
    input: &mut impl BufRead,
    checker: &mut Checker,
    lines: usize,
    mut apply: impl FnMut(Line, &Checker) -> Result<(), String>,
) -> Result<Option<Trailer>, Refused> {
    let mut buf = Vec::with_capacity(512);
    for _ in 0..lines {
        buf.clear();
        let n = input.read_until(b'\n', &mut buf).map_err(|e| Refused {
            line: checker.lines() + 1,
            why: format!("cannot read: {e}"),
        })?;
        if n == 0 {
            return checker.end().map(Some);
        }
        if buf.last() == Some(&b'\n') {
            buf.pop();
        } else {
            // The last line lacks its newline: the trailer is always written with one.
            return Err(Refused {
                line: checker.lines() + 1,
                why: "the stream ends inside a line: it is truncated".into(),
            });
        }
        if let Some(line) = checker.next(&buf)? {
            let at = checker.lines();
            apply(line, checker).map_err(|why| Refused { line: at, why })?;
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header {
            format: FORMAT.into(),
            version: VERSION,
            source: "journal".into(),
            exported_at: Timestamp::from_millis(0),
            default_venue: "main".into(),
            last_id: 2,
            counts: Counts::new(),
        }
    }

    fn pour(id: u64) -> Line {
        Line::Pour {
            pour: serde_json::from_value(serde_json::json!({
                "id": id, "venue": "main", "tapId": 1, "volume": 500.0, "type": "pint",
                "timestamp": "2026-12-01T20:00:00.000Z", "flags": []
            }))
            .unwrap(),
            key: None,
        }
    }

    /// `lines` written as a stream, with a header whose counts match.
    fn stream(lines: &[Line]) -> String {
        let header = Header {
            counts: count(lines),
            ..header()
        };
        let mut writer = Writer::start(Vec::new(), &header).unwrap();
        for line in lines {
            writer.record(line).unwrap();
        }
        String::from_utf8(writer.finish().unwrap().0).unwrap()
    }

    fn check(text: &str) -> Result<Trailer, Refused> {
        read(text.as_bytes(), &mut Checker::new(Some("main")), |_, _| {
            Ok(())
        })
    }

    #[test]
    fn a_whole_stream_checks_out_and_its_records_reach_apply() {
        let text = stream(&[pour(1), pour(2), Line::Delete { id: 1, after: 2 }]);
        let mut seen = Vec::new();
        let trailer = read(text.as_bytes(), &mut Checker::new(None), |line, _| {
            seen.push(line.kind());
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, ["pour", "pour", "delete"]);
        assert_eq!(trailer.counts["pour"], 2);
    }

    #[test]
    fn records_that_cannot_follow_are_refused_at_their_line() {
        let deleted_twice = stream(&[
            pour(1),
            Line::Delete { id: 1, after: 1 },
            Line::Delete { id: 1, after: 1 },
        ]);
        let refused = check(&deleted_twice).unwrap_err();
        assert_eq!(refused.line, 4);
        assert!(refused.why.contains("not stored"), "{refused}");

        let placed_back = stream(&[pour(1), pour(2), Line::Delete { id: 1, after: 1 }]);
        let refused = check(&placed_back).unwrap_err();
        assert_eq!(refused.line, 4);
        assert!(refused.why.contains("out of order"), "{refused}");
    }

    #[test]
    fn nothing_may_follow_the_trailer_or_repeat_the_header() {
        let text = stream(&[pour(1)]);
        let refused = check(&format!("{text}{}\n", text.lines().nth(1).unwrap())).unwrap_err();
        assert_eq!(refused.line, 4);
        assert!(refused.why.contains("after the trailer"), "{refused}");
        let first = text.lines().next().unwrap();
        let refused = check(&format!("{first}\n{text}")).unwrap_err();
        assert_eq!((refused.line, refused.why.as_str()), (2, "a second header"));
        assert_eq!(check("").unwrap_err().why, "empty: not an Altair export");
    }

    #[test]
    fn the_header_must_count_what_the_stream_holds() {
        let text = stream(&[pour(1)]);
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        lines[0] = lines[0].replace(r#""pour":1"#, r#""pour":2"#);
        let refused = check(&(lines.join("\n") + "\n")).unwrap_err();
        assert_eq!(refused.line, 3);
        assert!(refused.why.contains("header's counts"), "{refused}");
    }
}
