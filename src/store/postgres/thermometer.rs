//! The taps' temperature readings in PostgreSQL: one table every server reads and writes.
//! Read and folded with the same functions as the file's ([`crate::temperature`]), so both
//! stores answer alike.

use std::sync::Arc;

use async_trait::async_trait;
use deadpool_postgres::Pool;

use crate::pour::Timestamp;
use crate::store::StoreError;
use crate::store::thermometer::{MAX_READINGS, SeriesQuery, Thermometer, read_series};
use crate::temperature::{Latest, Location, RAW_FOR_MS, Reading, downsampled};

/// Folds by one server at a time (an advisory lock's key).
const FOLD_LOCK: i64 = 0x616c_7461_6972_0009;

pub struct PgThermometer {
    pool: Pool,
}

impl PgThermometer {
    pub(super) fn new(pool: Pool) -> PgThermometer {
        PgThermometer { pool }
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        super::pooled(&self.pool).await
    }
}

use super::failed;

const COLUMNS: &str = "venue, tap_id, sensor, location, at, celsius, samples";

fn reading(row: &tokio_postgres::Row) -> Result<Reading, StoreError> {
    let location: &str = row.get(3);
    Ok(Reading {
        venue: Arc::from(row.get::<_, &str>(0)),
        tap_id: u32::try_from(row.get::<_, i32>(1))
            .map_err(|_| StoreError("temperatures: a negative tap id".into()))?,
        sensor: row.get(2),
        location: Location::parse(location)
            .ok_or_else(|| StoreError(format!("temperatures: unknown location {location:?}")))?,
        timestamp: Timestamp::from_millis(row.get(4)),
        celsius: row.get(5),
        samples: u32::try_from(row.get::<_, i32>(6)).unwrap_or(1),
    })
}

/// Consecutive rows of one series, in order, as slices.
fn by_series(readings: &[Reading]) -> impl Iterator<Item = &[Reading]> {
    readings.chunk_by(|a, b| (&a.venue, a.tap_id, &a.sensor) == (&b.venue, b.tap_id, &b.sensor))
}

async fn insert(
    client: &impl deadpool_postgres::GenericClient,
    readings: &[Reading],
) -> Result<(), StoreError> {
    let mut venues = Vec::with_capacity(readings.len());
    let mut taps = Vec::with_capacity(readings.len());
    let mut sensors = Vec::with_capacity(readings.len());
    let mut locations = Vec::with_capacity(readings.len());
    let mut ats = Vec::with_capacity(readings.len());
    let mut celsius = Vec::with_capacity(readings.len());
    let mut samples = Vec::with_capacity(readings.len());
    for r in readings {
        venues.push(r.venue.to_string());
        taps.push(i32::try_from(r.tap_id).unwrap_or(i32::MAX));
        sensors.push(r.sensor.clone());
        locations.push(r.location.name());
        ats.push(r.timestamp.millis());
        celsius.push(r.celsius);
        samples.push(i32::try_from(r.samples).unwrap_or(i32::MAX));
    }
    client
        .execute(
            &format!(
                "INSERT INTO altair_temperatures ({COLUMNS}) \
                 SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::bigint[], $6::float8[], $7::int[])"
            ),
            &[&venues, &taps, &sensors, &locations, &ats, &celsius, &samples],
        )
        .await
        .map_err(failed)?;
    Ok(())
}

#[async_trait]
impl Thermometer for PgThermometer {
    async fn record(&self, readings: Vec<Reading>) -> Result<(), StoreError> {
        insert(&self.client().await?, &readings).await
    }

    async fn series(
        &self,
        query: &SeriesQuery,
        now: Timestamp,
    ) -> Result<Option<Vec<Reading>>, StoreError> {
        let client = self.client().await?;
        let venue = query.venue.as_deref();
        let tap = query.tap_id.map(|t| i32::try_from(t).unwrap_or(i32::MAX));
        // Rows before folding may be up to a minute's readings a point: room for them.
        let limit = i64::try_from(MAX_READINGS * 60).unwrap_or(i64::MAX);
        let rows = client
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM altair_temperatures \
                     WHERE ($1::text IS NULL OR venue = $1) AND ($2::int IS NULL OR tap_id = $2) \
                       AND at >= $3 AND at < $4 \
                     ORDER BY venue, tap_id, sensor, at LIMIT $5"
                ),
                &[
                    &venue,
                    &tap,
                    &query.from.millis(),
                    &query.to.millis(),
                    &(limit + 1),
                ],
            )
            .await
            .map_err(failed)?;
        if rows.len() as i64 > limit {
            return Ok(None);
        }
        let readings = rows.iter().map(reading).collect::<Result<Vec<_>, _>>()?;
        Ok(read_series(by_series(&readings), now))
    }

    async fn latest(&self, warm_above: f64, now: Timestamp) -> Result<Vec<Latest>, StoreError> {
        let client = self.client().await?;
        let since = now.millis().saturating_sub(RAW_FOR_MS);
        let latest = client
            .query(
                &format!(
                    "SELECT DISTINCT ON (venue, tap_id, sensor) {COLUMNS} FROM altair_temperatures \
                     WHERE at >= $1 ORDER BY venue, tap_id, sensor, at DESC"
                ),
                &[&since],
            )
            .await
            .map_err(failed)?;
        // Since when each series has been above the limit: its first reading after its
        // last one at or under it (of the day).
        let warm = client
            .query(
                "SELECT t.venue, t.tap_id, t.sensor, min(t.at) FROM altair_temperatures t \
                 WHERE t.at >= $1 AND t.celsius > $2 AND t.at > COALESCE(( \
                     SELECT max(o.at) FROM altair_temperatures o \
                     WHERE o.venue = t.venue AND o.tap_id = t.tap_id AND o.sensor = t.sensor \
                       AND o.at >= $1 AND o.celsius <= $2), -1) \
                 GROUP BY t.venue, t.tap_id, t.sensor",
                &[&since, &warm_above],
            )
            .await
            .map_err(failed)?;
        let since_of = |r: &Reading| {
            warm.iter()
                .find(|row| {
                    row.get::<_, &str>(0) == &*r.venue
                        && row.get::<_, i32>(1) == i32::try_from(r.tap_id).unwrap_or(i32::MAX)
                        && row.get::<_, &str>(2) == r.sensor
                })
                .map(|row| Timestamp::from_millis(row.get(3)))
        };
        latest
            .iter()
            .map(|row| {
                let reading = reading(row)?;
                let warm_since = since_of(&reading);
                Ok(Latest {
                    reading,
                    warm_since,
                })
            })
            .collect()
    }

    async fn fold(&self, now: Timestamp) -> Result<u64, StoreError> {
        let cutoff = now.millis().saturating_sub(RAW_FOR_MS);
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(failed)?;
        let locked: bool = tx
            .query_one("SELECT pg_try_advisory_xact_lock($1)", &[&FOLD_LOCK])
            .await
            .map_err(failed)?
            .get(0);
        if !locked {
            return Ok(0); // another server is folding
        }
        // The minutes of a day ago that hold more than one row.
        let crowded = "(venue, tap_id, sensor, at / 60000) IN ( \
             SELECT venue, tap_id, sensor, at / 60000 FROM altair_temperatures \
             WHERE at < $1 GROUP BY 1, 2, 3, 4 HAVING count(*) > 1)";
        let rows = tx
            .query(
                &format!(
                    "DELETE FROM altair_temperatures WHERE at < $1 AND {crowded} RETURNING {COLUMNS}"
                ),
                &[&cutoff],
            )
            .await
            .map_err(failed)?;
        let mut gone = rows.iter().map(reading).collect::<Result<Vec<_>, _>>()?;
        gone.sort_by(|a, b| {
            (&a.venue, a.tap_id, &a.sensor, a.timestamp).cmp(&(
                &b.venue,
                b.tap_id,
                &b.sensor,
                b.timestamp,
            ))
        });
        let cutoff = Timestamp::from_millis(cutoff);
        let folded: Vec<Reading> = by_series(&gone)
            .flat_map(|series| downsampled(series, cutoff))
            .collect();
        insert(&tx, &folded).await?;
        tx.commit().await.map_err(failed)?;
        Ok((gone.len() - folded.len()) as u64)
    }
}
