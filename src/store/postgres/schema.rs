//! The database schema: migrations embedded in the binary, applied in order at start (or by
//! `altair-server migrate`), one transaction each, under an advisory lock so that servers
//! starting together do not race. A database whose schema is newer than this binary knows
//! is refused: an older server must not write to tables it does not understand.

use tokio_postgres::Client;

/// Every migration, oldest first: (version, SQL).
const MIGRATIONS: &[(i32, &str)] = &[
    (1, include_str!("migrations/0001_pours.sql")),
    (2, include_str!("migrations/0002_flags.sql")),
    (3, include_str!("migrations/0003_kegs.sql")),
    (4, include_str!("migrations/0004_webhooks.sql")),
    (5, include_str!("migrations/0005_taps_in_memory.sql")),
    (6, include_str!("migrations/0006_venues.sql")),
    (7, include_str!("migrations/0007_venue_counts.sql")),
    (8, include_str!("migrations/0008_imported.sql")),
    (9, include_str!("migrations/0009_temperatures.sql")),
];

/// The schema version this binary writes.
pub fn current() -> i32 {
    MIGRATIONS.last().map_or(0, |(v, _)| *v)
}

/// An arbitrary but fixed key for the migration advisory lock.
pub(super) const LOCK_KEY: i64 = 0x616c_7461_6972; // "altair"

/// Why the schema cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error(
        "the database's schema is version {found}, newer than this server knows ({known}); run a newer altair-server"
    )]
    Newer { found: i32, known: i32 },
    #[error("database: {0}")]
    Database(#[from] tokio_postgres::Error),
}

/// Brings the schema up to [`current`]; returns the versions applied (none if it was).
pub async fn migrate(client: &Client) -> Result<Vec<i32>, SchemaError> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&LOCK_KEY])
        .await?;
    let applied = apply(client).await;
    // Released whatever happened; the connection's end would release it too.
    let _ = client
        .execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY])
        .await;
    applied
}

async fn apply(client: &Client) -> Result<Vec<i32>, SchemaError> {
    client
        .batch_execute(
            // The NOTICE that the table exists already is for every start but the first.
            "SET client_min_messages TO warning;
             CREATE TABLE IF NOT EXISTS altair_schema (
                 version integer PRIMARY KEY,
                 applied_at timestamptz NOT NULL DEFAULT now()
             )",
        )
        .await?;
    let found: i32 = client
        .query_one("SELECT coalesce(max(version), 0) FROM altair_schema", &[])
        .await?
        .get(0);
    if found > current() {
        return Err(SchemaError::Newer {
            found,
            known: current(),
        });
    }
    let mut applied = Vec::new();
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > found) {
        let migration = format!(
            "BEGIN; {sql}; INSERT INTO altair_schema (version) VALUES ({version}); COMMIT;"
        );
        if let Err(e) = client.batch_execute(&migration).await {
            // A failed statement leaves the transaction aborted; end it.
            let _ = client.batch_execute("ROLLBACK").await;
            return Err(e.into());
        }
        applied.push(*version);
    }
    Ok(applied)
}
