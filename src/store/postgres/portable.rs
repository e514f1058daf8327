//! A database as a portable stream ([`crate::store::portable`]), read in one
//! repeatable-read snapshot while servers go on writing; and a stream into an empty
//! database, in one transaction (a refused or killed import commits nothing), under the
//! schema lock (a server starting meanwhile waits for it, then reads it all).

use std::io::{BufRead, Write};
use std::time::Duration;

use futures::TryStreamExt;
use tokio_postgres::types::ToSql;

use super::{
    Glasses, Next, POUR_COLUMNS, PgSettings, connect, connection_config, db_id, place, pour_from,
    schema,
};
use crate::keg::KegOp;
use crate::pour::Timestamp;
use crate::store::portable::{
    Checker, Header, Line, MoveError, OpKey, PourKey, Trailer, VERSION, Writer, count, read_lines,
    webhook_line, webhook_of,
};

fn database(e: tokio_postgres::Error) -> MoveError {
    MoveError::Other(format!("database: {}", super::explain(&e)))
}

async fn open(settings: &PgSettings) -> Result<tokio_postgres::Client, MoveError> {
    let config = connection_config(settings).map_err(|e| MoveError::Other(e.to_string()))?;
    let client = connect(&config)
        .await
        .map_err(|e| MoveError::Other(format!("cannot connect to {}: {e}", place(&config))))?;
    schema::migrate(&client)
        .await
        .map_err(|e| MoveError::Other(e.to_string()))?;
    Ok(client)
}

/// A deletion (kind 1) or keg operation (kind 2) as the log places it.
struct Other {
    after: i64,
    kind: i32,
    seq: i64,
    line: Line,
}

/// A line kept by an import, read, and its place.
type Restored = super::Restored<Line>;

impl Other {
    /// Where it stands, for [`super::Restored::precedes`].
    fn next(&self) -> Next {
        Next::Other {
            after: self.after,
            kind: self.kind,
            seq: self.seq,
        }
    }
}

/// Writes the database's whole log to `out`, as one snapshot. Idempotency keys older
/// than `key_ttl` are left out, as the journal's export leaves them.
pub async fn export(
    settings: &PgSettings,
    key_ttl: Duration,
    source: &str,
    include_secrets: bool,
    out: impl Write,
) -> Result<Trailer, MoveError> {
    let mut client = open(settings).await?;
    let snapshot = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(database)?;
    let now = Timestamp::now();
    let cutoff = now.millis() - i64::try_from(key_ttl.as_millis()).unwrap_or(i64::MAX / 2);
    let mut glasses = Glasses::new(&settings.default_venue);
    let last_id: i64 = snapshot
        .query_one("SELECT last_pour_id FROM altair_counters", &[])
        .await
        .map_err(database)?
        .get(0);
    let pour_key = |row: &tokio_postgres::Row, at: usize| {
        row.get::<_, Option<String>>(at).map(|key| PourKey {
            key,
            created: Timestamp::from_millis(row.get(at + 1)),
            device_timestamp: row.get(at + 2),
        })
    };
    let columns = POUR_COLUMNS
        .split(", ")
        .map(|c| format!("p.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    // The webhooks first, by id.
    let mut kept = Vec::new();
    for row in snapshot
        .query("SELECT hook FROM altair_webhooks ORDER BY id", &[])
        .await
        .map_err(database)?
    {
        let text: &str = row.get(0);
        let hook: crate::webhook::Hook = serde_json::from_str(text)
            .map_err(|e| MoveError::Other(format!("a webhook is unreadable: {e}")))?;
        kept.push(webhook_line(&hook, include_secrets));
    }
    for row in snapshot
        .query(
            &format!(
                "SELECT {columns}, k.key, k.created_ms, p.device_time FROM altair_pours p
                 JOIN altair_keys k ON k.pour_id = p.id
                 WHERE p.kept_for_key AND k.created_ms > $1 ORDER BY p.id"
            ),
            &[&cutoff],
        )
        .await
        .map_err(database)?
    {
        if let Some(key) = pour_key(&row, 7) {
            kept.push(Line::DeletedKey {
                pour: pour_from(&row, 0, &mut glasses),
                key,
            });
        }
    }
    let mut others = Vec::new();
    for row in snapshot
        .query(
            &format!(
                "SELECT d.after_pour_id, d.seq, {columns} FROM altair_deletions d
                 JOIN altair_pours p ON p.id = d.pour_id ORDER BY d.seq"
            ),
            &[],
        )
        .await
        .map_err(database)?
    {
        let pour = pour_from(&row, 2, &mut glasses);
        let after: i64 = row.get(0);
        others.push(Other {
            after,
            kind: 1,
            seq: row.get(1),
            line: Line::Delete {
                id: pour.id,
                after: u64::try_from(after).unwrap_or(0),
            },
        });
    }
    for row in snapshot
        .query(
            "SELECT after_pour_id, seq, op, keg_id, key, key_created_ms FROM altair_keg_ops ORDER BY seq",
            &[],
        )
        .await
        .map_err(database)?
    {
        let (after, seq): (i64, i64) = (row.get(0), row.get(1));
        let op: &str = row.get(2);
        let op = KegOp::from_json(op)
            .ok_or_else(|| MoveError::Other(format!("keg operation {seq} is unreadable")))?;
        let key = match (row.get::<_, Option<String>>(4), row.get::<_, Option<i64>>(5)) {
            (Some(key), Some(created)) if created > cutoff => Some(OpKey {
                key,
                created: Timestamp::from_millis(created),
                keg_id: u64::try_from(row.get::<_, i64>(3)).unwrap_or(0),
            }),
            _ => None,
        };
        others.push(Other {
            after,
            kind: 2,
            seq,
            line: Line::Keg {
                op,
                after: u64::try_from(after).unwrap_or(0),
                key,
            },
        });
    }
    others.sort_by_key(|o| (o.after, o.kind, o.seq));
    let mut restored = Vec::new();
    for row in snapshot
        .query(
            "SELECT after_pour_id, deletions, keg_ops, line FROM altair_restored ORDER BY seq",
            &[],
        )
        .await
        .map_err(database)?
    {
        let line: &str = row.get(3);
        restored.push(Restored {
            after: row.get(0),
            deletions: row.get(1),
            keg_ops: row.get(2),
            line: serde_json::from_str(line)
                .map_err(|e| MoveError::Other(format!("an imported line is unreadable: {e}")))?,
        });
    }
    let pours: i64 = snapshot
        .query_one(
            "SELECT count(*) FROM altair_pours WHERE NOT kept_for_key",
            &[],
        )
        .await
        .map_err(database)?
        .get(0);
    let mut counts = count(
        kept.iter()
            .chain(others.iter().map(|o| &o.line))
            .chain(restored.iter().map(|r| &r.line)),
    );
    if pours > 0 {
        counts.insert("pour".into(), u64::try_from(pours).unwrap_or(0));
    }
    let header = Header {
        format: "altair-log".into(),
        version: VERSION,
        source: source.into(),
        exported_at: now,
        default_venue: settings.default_venue.to_string(),
        last_id: u64::try_from(last_id).unwrap_or(0),
        counts,
    };
    let io = |e: std::io::Error| MoveError::Other(format!("cannot write the export: {e}"));
    let mut writer = Writer::start(out, &header).map_err(io)?;
    for line in &kept {
        writer.record(line).map_err(io)?;
    }
    let rows = snapshot
        .query_raw(
            &format!(
                "SELECT {columns}, k.key, k.created_ms, p.device_time FROM altair_pours p
                 LEFT JOIN altair_keys k ON k.pour_id = p.id AND k.created_ms > $1
                 WHERE NOT p.kept_for_key ORDER BY p.id"
            ),
            [&cutoff as &(dyn ToSql + Sync)],
        )
        .await
        .map_err(database)?;
    let mut rows = std::pin::pin!(rows);
    let mut others = others.into_iter().peekable();
    let mut restored = restored.into_iter().peekable();
    // The log in order: each pour after what was logged before it, and the lines an
    // import kept before what they preceded.
    let mut upto = |writer: &mut Writer<_>, id: i64| -> Result<(), MoveError> {
        while let Some(other) = others.next_if(|o| o.after < id) {
            while let Some(r) = restored.next_if(|r| r.precedes(other.next())) {
                writer.record(&r.line).map_err(io)?;
            }
            writer.record(&other.line).map_err(io)?;
        }
        while let Some(r) = restored.next_if(|r| r.precedes(Next::Pour(id))) {
            writer.record(&r.line).map_err(io)?;
        }
        Ok(())
    };
    while let Some(row) = rows.try_next().await.map_err(database)? {
        let pour = pour_from(&row, 0, &mut glasses);
        upto(&mut writer, db_id(pour.id))?;
        writer
            .record(&Line::Pour {
                pour,
                key: pour_key(&row, 7),
            })
            .map_err(io)?;
    }
    upto(&mut writer, i64::MAX)?;
    let (_, trailer) = writer.finish().map_err(io)?;
    snapshot.commit().await.map_err(database)?;
    Ok(trailer)
}

/// A keg operation's row.
struct OpRow {
    seq: i64,
    after: i64,
    op: String,
    keg_id: i64,
    key: Option<String>,
    key_created: Option<i64>,
}

/// Rows waiting to be written, a batch at a time.
#[derive(Default)]
struct Batch {
    ids: Vec<i64>,
    taps: Vec<i64>,
    volumes: Vec<f64>,
    glasses: Vec<String>,
    times: Vec<i64>,
    device_times: Vec<bool>,
    flags: Vec<i16>,
    venues: Vec<Option<String>>,
    deleted: Vec<bool>,
    kept: Vec<bool>,
    keys: Vec<String>,
    key_ids: Vec<i64>,
    key_times: Vec<i64>,
    /// Deletions: (seq, after, pour id).
    deletions: Vec<(i64, i64, i64)>,
    ops: Vec<OpRow>,
    hooks: Vec<crate::webhook::Hook>,
    /// Restored lines: (seq, after, deletions, keg ops, line).
    restored: Vec<(i64, i64, i64, i64, String)>,
    lines: usize,
}

impl Batch {
    fn pour(
        &mut self,
        pour: &crate::pour::Pour,
        key: Option<&PourKey>,
        default_venue: &str,
        gone: bool,
    ) {
        let id = db_id(pour.id);
        self.ids.push(id);
        self.taps.push(i64::from(pour.tap_id));
        self.volumes.push(pour.volume);
        self.glasses.push(pour.glass.to_string());
        self.times.push(pour.timestamp.millis());
        self.device_times
            .push(key.is_some_and(|k| k.device_timestamp));
        self.flags.push(i16::from(pour.flags.bits()));
        self.venues
            .push((*pour.venue != *default_venue).then(|| pour.venue.to_string()));
        self.deleted.push(gone);
        self.kept.push(gone);
        if let Some(key) = key {
            self.keys.push(key.key.clone());
            self.key_ids.push(id);
            self.key_times.push(key.created.millis());
        }
    }

    async fn write(
        &mut self,
        tx: &tokio_postgres::Transaction<'_>,
    ) -> Result<(), tokio_postgres::Error> {
        if !self.ids.is_empty() {
            tx.execute(
                "INSERT INTO altair_pours (id, tap_id, volume, glass, poured_at_ms, device_time, flags, venue, deleted, kept_for_key)
                 SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::float8[], $4::text[], $5::bigint[], $6::bool[], $7::int2[], $8::text[], $9::bool[], $10::bool[])",
                &[&self.ids, &self.taps, &self.volumes, &self.glasses, &self.times, &self.device_times, &self.flags, &self.venues, &self.deleted, &self.kept],
            )
            .await?;
        }
        if !self.keys.is_empty() {
            tx.execute(
                "INSERT INTO altair_keys (key, pour_id, created_ms)
                 SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[])",
                &[&self.keys, &self.key_ids, &self.key_times],
            )
            .await?;
        }
        if !self.deletions.is_empty() {
            let (seqs, (afters, ids)): (Vec<i64>, (Vec<i64>, Vec<i64>)) =
                self.deletions.iter().map(|&(s, a, i)| (s, (a, i))).unzip();
            tx.execute(
                "UPDATE altair_pours SET deleted = true WHERE id = ANY($1)",
                &[&ids],
            )
            .await?;
            tx.execute(
                "INSERT INTO altair_deletions (seq, after_pour_id, pour_id)
                 SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[])",
                &[&seqs, &afters, &ids],
            )
            .await?;
        }
        for OpRow {
            seq,
            after,
            op,
            keg_id,
            key,
            key_created,
        } in &self.ops
        {
            tx.execute(
                "INSERT INTO altair_keg_ops (seq, after_pour_id, op, keg_id, key, key_created_ms)
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[seq, after, op, keg_id, key, key_created],
            )
            .await?;
        }
        for hook in &self.hooks {
            let text = serde_json::to_string(hook).unwrap_or_default();
            tx.execute(
                "INSERT INTO altair_webhooks (id, hook, enabled) VALUES ($1, $2, $3)",
                &[&db_id(hook.id), &text, &hook.enabled],
            )
            .await?;
        }
        if !self.hooks.is_empty() {
            tx.batch_execute(
                "SELECT setval(pg_get_serial_sequence('altair_webhooks', 'id'), (SELECT max(id) FROM altair_webhooks))",
            )
            .await?;
        }
        for (seq, after, deletions, ops, line) in &self.restored {
            tx.execute(
                "INSERT INTO altair_restored (seq, after_pour_id, deletions, keg_ops, line)
                 VALUES ($1, $2, $3, $4, $5)",
                &[seq, after, deletions, ops, line],
            )
            .await?;
        }
        *self = Batch::default();
        Ok(())
    }
}

/// Reads a stream from `input` into the empty database; `progress` hears of every 4,096
/// records (done, of the header's count).
pub async fn import(
    settings: &PgSettings,
    input: impl BufRead,
    mut progress: impl FnMut(u64, u64),
) -> Result<(Header, Trailer), MoveError> {
    let mut client = open(settings).await?;
    // Servers that would tail the import as it commits: none may run.
    let running: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_stat_activity
             WHERE datname = current_database() AND application_name LIKE 'altair-%' AND pid <> pg_backend_pid()",
            &[],
        )
        .await
        .map_err(database)?
        .get(0);
    if running > 0 {
        return Err(MoveError::Other(format!(
            "{running} connections of Altair servers are open on this database: stop every server before an import"
        )));
    }
    client
        .execute("SELECT pg_advisory_lock($1)", &[&schema::LOCK_KEY])
        .await
        .map_err(database)?;
    let held: i64 = client
        .query_one(
            "SELECT (SELECT count(*) FROM altair_pours) + (SELECT count(*) FROM altair_keg_ops)
                  + (SELECT count(*) FROM altair_webhooks) + (SELECT count(*) FROM altair_restored)",
            &[],
        )
        .await
        .map_err(database)?
        .get(0);
    if held > 0 {
        return Err(MoveError::Other(format!(
            "the database holds {held} records already: import only into an empty store"
        )));
    }
    let tx = client.transaction().await.map_err(database)?;
    let default_venue = settings.default_venue.to_string();
    let mut checker = Checker::new(Some(&default_venue));
    // Read on this thread, a batch at a time; written between batches.
    let mut input = input;
    let mut batch = Batch::default();
    let (mut deletions, mut ops, mut restored, mut last_id) = (0i64, 0i64, 0i64, 0i64);
    let trailer = loop {
        let mut ended = None;
        let read = read_lines(&mut input, &mut checker, 4096, |line, checker| {
            match line {
                Line::Pour { pour, key } => {
                    last_id = last_id.max(db_id(pour.id));
                    batch.pour(&pour, key.as_ref(), &default_venue, false);
                }
                Line::DeletedKey { pour, key } => {
                    batch.pour(&pour, Some(&key), &default_venue, true)
                }
                Line::Webhook { hook } => batch.hooks.push(webhook_of(hook)?),
                Line::Delete { id, after } => {
                    deletions += 1;
                    batch.deletions.push((deletions, db_id(after), db_id(id)));
                }
                Line::Keg { op, after, key } => {
                    ops += 1;
                    batch.ops.push(OpRow {
                        seq: ops,
                        after: db_id(after),
                        op: op.to_json(),
                        keg_id: key.as_ref().map_or(0, |k| db_id(k.keg_id)),
                        key_created: key.as_ref().map(|k| k.created.millis()),
                        key: key.map(|k| k.key),
                    });
                }
                line @ (Line::Tap { .. }
                | Line::Marks { .. }
                | Line::Alerts { .. }
                | Line::Sequence { .. }) => {
                    if let Line::Sequence { last_id: id } = &line {
                        last_id = last_id.max(db_id(*id));
                    }
                    restored += 1;
                    let text = serde_json::to_string(&line).map_err(|e| e.to_string())?;
                    batch.restored.push((
                        restored,
                        last_id.max(checker_place(checker)),
                        deletions,
                        ops,
                        text,
                    ));
                }
                Line::Header(_) | Line::Trailer(_) => {}
            }
            batch.lines += 1;
            Ok(())
        });
        match read {
            Ok(Some(trailer)) => ended = Some(trailer),
            Ok(None) => {}
            Err(refused) => return Err(refused.into()),
        }
        batch.write(&tx).await.map_err(database)?;
        progress(checker.records(), checker.expected());
        if let Some(trailer) = ended {
            break trailer;
        }
    };
    tx.batch_execute(
        "INSERT INTO altair_counts (venue, tap_id, glass, pours)
         SELECT coalesce(venue, ''), tap_id, glass, count(*) FROM altair_pours WHERE NOT deleted
         GROUP BY 1, 2, 3",
    )
    .await
    .map_err(database)?;
    tx.execute(
        "UPDATE altair_counters SET last_pour_id = $1, last_deletion = $2, last_keg_op = $3",
        &[&last_id, &deletions, &ops],
    )
    .await
    .map_err(database)?;
    tx.commit().await.map_err(database)?;
    let header = checker
        .header()
        .cloned()
        .ok_or_else(|| MoveError::Other("no header".into()))?;
    Ok((header, trailer))
}

/// The place a checker has reached (the highest pour id or `after` so far).
fn checker_place(checker: &Checker) -> i64 {
    db_id(checker.place())
}
