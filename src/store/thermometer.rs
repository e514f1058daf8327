//! Temperature readings, kept by the store beside the log: a time series per tap sensor,
//! every reading for a day, then one mean a minute ([`crate::temperature::downsampled`],
//! applied when read and, by [`Thermometer::fold`], to what is kept).
//!
//! - [`Thermometer`]: the contract, kept by every store.
//! - [`FileThermometer`]: in memory, each reading appended to a file in the data directory
//!   (rewritten when old readings are folded), or nowhere with `--ephemeral`.
//! - PostgreSQL's is [`crate::store::postgres::PgThermometer`]: one table, shared.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;

use super::StoreError;
use crate::pour::Timestamp;
use crate::temperature::{Latest, RAW_FOR_MS, Reading, downsampled, warm_since};

/// The readings a query may return at most.
pub const MAX_READINGS: usize = 50_000;

/// Which readings to read.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesQuery {
    /// Only this venue's (none: every venue's).
    pub venue: Option<Arc<str>>,
    pub tap_id: Option<u32>,
    pub from: Timestamp,
    /// Before this.
    pub to: Timestamp,
}

/// Where temperature readings are kept.
#[async_trait]
pub trait Thermometer: Send + Sync + 'static {
    /// Keeps readings, durably, before it returns.
    async fn record(&self, readings: Vec<Reading>) -> Result<(), StoreError>;
    /// The readings a query names, in time order (then by venue, tap and sensor), those a
    /// day old as one mean a minute; `None` if there are more than [`MAX_READINGS`].
    async fn series(
        &self,
        query: &SeriesQuery,
        now: Timestamp,
    ) -> Result<Option<Vec<Reading>>, StoreError>;
    /// Each sensor's latest reading of the last day, and since when its readings have
    /// been above `warm_above` without a break.
    async fn latest(&self, warm_above: f64, now: Timestamp) -> Result<Vec<Latest>, StoreError>;
    /// Folds the readings a day old into one a minute; how many readings it removed.
    async fn fold(&self, now: Timestamp) -> Result<u64, StoreError>;
}

/// The key of a series: venue, tap, sensor.
type Series = (Arc<str>, u32, String);

/// The readings in time order (then by venue, tap and sensor), downsampled as of `now`.
pub fn read_series<'a>(
    series: impl Iterator<Item = &'a [Reading]>,
    now: Timestamp,
) -> Option<Vec<Reading>> {
    let cutoff = Timestamp::from_millis(now.millis().saturating_sub(RAW_FOR_MS));
    let mut out = Vec::new();
    for readings in series {
        out.extend(downsampled(readings, cutoff));
        if out.len() > MAX_READINGS {
            return None;
        }
    }
    out.sort_by(|a, b| {
        (a.timestamp, &a.venue, a.tap_id, &a.sensor).cmp(&(
            b.timestamp,
            &b.venue,
            b.tap_id,
            &b.sensor,
        ))
    });
    Some(out)
}

/// Readings in memory, and in a file unless ephemeral.
pub struct FileThermometer {
    inner: Arc<Mutex<BTreeMap<Series, Vec<Reading>>>>,
    /// Held (on a blocking thread, never across an await) by whoever writes the file: a
    /// reading is appended and then kept in memory under it, so a fold's rewrite, also
    /// under it, holds every reading appended before.
    file: Option<Arc<Mutex<PathBuf>>>,
}

/// The file in the data directory: one JSON reading a line.
pub const FILE_NAME: &str = "temperatures.jsonl";

impl FileThermometer {
    pub fn ephemeral() -> FileThermometer {
        FileThermometer {
            inner: Arc::default(),
            file: None,
        }
    }

    /// Reads `dir`'s file, if there is one. A torn last line (a crash mid-write) is
    /// dropped; any other unreadable line is an error.
    pub fn open(dir: &Path) -> Result<FileThermometer, StoreError> {
        let path = dir.join(FILE_NAME);
        let mut map: BTreeMap<Series, Vec<Reading>> = BTreeMap::new();
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let lines: Vec<&str> = text.lines().collect();
                for (i, line) in lines.iter().enumerate() {
                    match serde_json::from_str::<Reading>(line) {
                        Ok(r) => insert(&mut map, r),
                        Err(_) if i + 1 == lines.len() && !text.ends_with('\n') => {}
                        Err(e) => {
                            return Err(StoreError(format!(
                                "{}: line {}: {e}",
                                path.display(),
                                i + 1
                            )));
                        }
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError(format!("{}: {e}", path.display()))),
        }
        Ok(FileThermometer {
            inner: Arc::new(Mutex::new(map)),
            file: Some(Arc::new(Mutex::new(path))),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<Series, Vec<Reading>>> {
        lock(&self.inner)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Folds `map`'s readings before `cutoff`; how many it removed.
fn fold_in(map: &mut BTreeMap<Series, Vec<Reading>>, cutoff: Timestamp) -> u64 {
    let mut removed = 0;
    for readings in map.values_mut() {
        let folded = downsampled(readings, cutoff);
        removed += (readings.len() - folded.len()) as u64;
        *readings = folded;
    }
    removed
}

/// Into its series, in time order (a late reading finds its place).
fn insert(map: &mut BTreeMap<Series, Vec<Reading>>, r: Reading) {
    let series = map
        .entry((r.venue.clone(), r.tap_id, r.sensor.clone()))
        .or_default();
    let at = series.partition_point(|x| x.timestamp <= r.timestamp);
    series.insert(at, r);
}

fn io(path: &Path, e: std::io::Error) -> StoreError {
    StoreError(format!("{}: {e}", path.display()))
}

#[async_trait]
impl Thermometer for FileThermometer {
    async fn record(&self, readings: Vec<Reading>) -> Result<(), StoreError> {
        let Some(file) = self.file.clone() else {
            let mut map = self.lock();
            readings.into_iter().for_each(|r| insert(&mut map, r));
            return Ok(());
        };
        let mut lines = Vec::new();
        for r in &readings {
            serde_json::to_writer(&mut lines, r).map_err(|e| StoreError(e.to_string()))?;
            lines.push(b'\n');
        }
        let inner = self.inner.clone();
        // Durable before it is kept in memory and answered.
        tokio::task::spawn_blocking(move || {
            let path = lock(&file);
            let mut out = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&*path)
                .map_err(|e| io(&path, e))?;
            out.write_all(&lines).map_err(|e| io(&path, e))?;
            out.sync_data().map_err(|e| io(&path, e))?;
            let mut map = lock(&inner);
            readings.into_iter().for_each(|r| insert(&mut map, r));
            Ok(())
        })
        .await
        .map_err(|e| StoreError(e.to_string()))?
    }

    async fn series(
        &self,
        query: &SeriesQuery,
        now: Timestamp,
    ) -> Result<Option<Vec<Reading>>, StoreError> {
        let map = self.lock();
        let wanted = map.iter().filter(|((venue, tap, _), _)| {
            query.venue.as_ref().is_none_or(|v| v == venue)
                && query.tap_id.is_none_or(|t| t == *tap)
        });
        let slices = wanted.map(|(_, readings)| {
            let from = readings.partition_point(|r| r.timestamp < query.from);
            let to = readings.partition_point(|r| r.timestamp < query.to);
            &readings[from..to.max(from)]
        });
        Ok(read_series(slices, now))
    }

    async fn latest(&self, warm_above: f64, now: Timestamp) -> Result<Vec<Latest>, StoreError> {
        let since = Timestamp::from_millis(now.millis().saturating_sub(RAW_FOR_MS));
        let map = self.lock();
        Ok(map
            .values()
            .filter_map(|readings| {
                let from = readings.partition_point(|r| r.timestamp < since);
                let recent = &readings[from..];
                recent.last().map(|last| Latest {
                    reading: last.clone(),
                    warm_since: warm_since(recent, warm_above),
                })
            })
            .collect())
    }

    async fn fold(&self, now: Timestamp) -> Result<u64, StoreError> {
        let cutoff = Timestamp::from_millis(now.millis().saturating_sub(RAW_FOR_MS));
        let Some(file) = self.file.clone() else {
            return Ok(fold_in(&mut self.lock(), cutoff));
        };
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || -> Result<u64, StoreError> {
            let path = lock(&file);
            let (removed, kept) = {
                let mut map = lock(&inner);
                let removed = fold_in(&mut map, cutoff);
                let kept: Vec<Reading> = match removed {
                    0 => Vec::new(),
                    _ => map.values().flatten().cloned().collect(),
                };
                (removed, kept)
            };
            if removed == 0 {
                return Ok(0);
            }
            // Rewritten whole, then renamed over the old file: a crash leaves one or the
            // other, each whole.
            let temporary = path.with_extension("jsonl.new");
            let mut out = std::io::BufWriter::new(
                std::fs::File::create(&temporary).map_err(|e| io(&temporary, e))?,
            );
            for r in &kept {
                serde_json::to_writer(&mut out, r).map_err(|e| StoreError(e.to_string()))?;
                out.write_all(b"\n").map_err(|e| io(&temporary, e))?;
            }
            let written = out
                .into_inner()
                .map_err(|e| io(&temporary, e.into_error()))?;
            written.sync_all().map_err(|e| io(&temporary, e))?;
            std::fs::rename(&temporary, &*path).map_err(|e| io(&path, e))?;
            Ok(removed)
        })
        .await
        .map_err(|e| StoreError(e.to_string()))?
    }
}
