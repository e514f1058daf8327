//! Opening the store the configuration names: PostgreSQL if a database is named, else the
//! journal in the data directory (recovered), or memory only with `--ephemeral`.

use std::sync::Arc;

use super::Store;
use super::journal::{JournalError, JournalSettings, JournalStore};
use super::postgres::{PgError, PgSettings, PgStore};
use crate::config::Config;
use crate::decide::Settings;
use crate::feed::Feed;
use crate::glass::Catalogue;

/// Why the store could not open.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Database(#[from] PgError),
    #[error("{0}")]
    Config(String),
}

/// The database's settings from the configuration, its password read from its file.
pub fn database_settings(config: &Config) -> Result<Option<PgSettings>, OpenError> {
    let Some(url) = config.database() else {
        return Ok(None);
    };
    let password = match &config.database_password_file {
        Some(file) => Some(
            std::fs::read_to_string(file)
                .map_err(|e| {
                    OpenError::Config(format!(
                        "cannot read --database-password-file {}: {e}",
                        file.display()
                    ))
                })?
                .trim_end_matches(['\r', '\n'])
                .to_owned(),
        ),
        None => None,
    };
    Ok(Some(PgSettings {
        url,
        password,
        rules: Settings::from_config(config),
        poll_interval: config.database_poll_interval,
        default_venue: config.default_venue.as_str().into(),
    }))
}

/// The PostgreSQL store if a database is named; else the ephemeral store, or the durable
/// one recovered from the data directory.
pub async fn open(
    config: &Config,
    catalogue: &Catalogue,
    feed: &Feed,
) -> Result<Arc<dyn Store>, OpenError> {
    if let Some(settings) = database_settings(config)? {
        if config.ephemeral {
            return Err(OpenError::Config(
                "--ephemeral and --database-url name two different stores; choose one".into(),
            ));
        }
        let (store, opened) = PgStore::open(settings, feed.clone()).await?;
        let migrated = match opened.migrated.as_slice() {
            [] => String::new(),
            versions => format!(
                ", migrated now to {}",
                versions
                    .iter()
                    .map(|v| format!("v{v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        log::info!(
            "store: PostgreSQL at {} (schema v{}{migrated}): {} {}, last id {}; read in {:.0?}",
            opened.place,
            opened.schema,
            crate::human::count(opened.pours),
            if opened.pours == 1 { "pour" } else { "pours" },
            crate::human::count(opened.last_id),
            opened.took
        );
        return Ok(Arc::new(store));
    }
    let settings = JournalSettings {
        rules: Settings::from_config(config),
        compact_min_bytes: config.compact_min_bytes,
        default_venue: config.default_venue.as_str().into(),
    };
    if config.ephemeral {
        log::warn!("store: in memory only (--ephemeral); pours are lost when the server stops");
        return Ok(Arc::new(JournalStore::ephemeral(feed.clone(), settings)));
    }
    let dir = config.data_dir();
    let catalogue = catalogue.clone();
    let feed = feed.clone();
    // Recovery reads the whole journal: off the async workers.
    let opened =
        tokio::task::spawn_blocking(move || JournalStore::open(&dir, &catalogue, feed, settings))
            .await
            .map_err(|e| JournalError::Io {
                path: config.data_dir(),
                source: std::io::Error::other(e.to_string()),
            })??;
    let (store, opened) = opened;
    let last_id = store.stats().await.map_or(0, |s| s.last_id);
    // Absolute: a relative --data-dir follows the working directory, and an empty store
    // opened from the wrong folder must not look like lost pours.
    let dir = std::fs::canonicalize(config.data_dir()).unwrap_or_else(|_| config.data_dir());
    if opened.recovery.records == 0 {
        log::info!("store: opened {}: empty, a new journal", dir.display());
    } else {
        log::info!(
            "store: opened {}: {} {}, last id {}; {} idempotency keys; {} records read in {:.0?}",
            dir.display(),
            crate::human::count(opened.pours),
            if opened.pours == 1 { "pour" } else { "pours" },
            crate::human::count(last_id),
            crate::human::count(opened.keys as u64),
            crate::human::count(opened.recovery.records),
            opened.took
        );
    }
    Ok(Arc::new(store))
}
