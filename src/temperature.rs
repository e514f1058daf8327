//! Temperatures: readings from a tap's sensors (the keg, the cooler, the tower, the
//! room), the series they make (each reading for a day, then one mean a minute), and what
//! a sensor's latest readings say: fine, too warm for too long, too hot, or silent.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::pour::{PourError, Timestamp, parse_tap_id, tap_id_rule};

/// Readings younger than this are kept as they came; older ones, one mean a minute.
pub const RAW_FOR_MS: i64 = 24 * 3_600_000;

const MINUTE_MS: i64 = 60_000;

/// Where a sensor is.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Location {
    Keg,
    Cooler,
    Tower,
    Room,
}

impl Location {
    pub fn name(self) -> &'static str {
        match self {
            Location::Keg => "keg",
            Location::Cooler => "cooler",
            Location::Tower => "tower",
            Location::Room => "room",
        }
    }

    pub fn parse(text: &str) -> Option<Location> {
        [
            Location::Keg,
            Location::Cooler,
            Location::Tower,
            Location::Room,
        ]
        .into_iter()
        .find(|l| l.name() == text)
    }
}

/// One reading of one sensor of a tap (or a mean of a minute's, `samples` of them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Reading {
    #[schema(value_type = String)]
    pub venue: Arc<str>,
    pub tap_id: u32,
    /// The sensor's name, unique on its tap.
    pub sensor: String,
    pub location: Location,
    /// Degrees Celsius, to a hundredth.
    pub celsius: f64,
    #[schema(value_type = String, format = DateTime)]
    pub timestamp: Timestamp,
    /// How many readings it stands for: 1, or a minute's once it is a day old.
    pub samples: u32,
}

impl Reading {
    /// The series it belongs to.
    pub fn series(&self) -> (Arc<str>, u32, &str) {
        (self.venue.clone(), self.tap_id, &self.sensor)
    }
}

/// Readings a sensor may name, at most (a Keg Cop has five).
pub const MAX_SENSOR_LEN: usize = 64;

/// The reading a body describes (`POST /api/temperatures`, or an MQTT message), for
/// `venue`; `tap`: the tap when the topic names it. `now`: its time when it names none.
pub fn parse_reading(
    body: &[u8],
    tap: Option<u32>,
    venue: Arc<str>,
    now: Timestamp,
    skew: Duration,
) -> Result<Reading, PourError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct Raw {
        tap_id: Option<serde_json::Value>,
        sensor: Option<serde_json::Value>,
        location: Option<serde_json::Value>,
        celsius: Option<serde_json::Value>,
        timestamp: Option<serde_json::Value>,
    }
    let text = std::str::from_utf8(body)
        .map_err(|_| PourError::Malformed("body is not valid JSON: not UTF-8".into()))?;
    let raw: Raw = serde_json::from_str(text).map_err(|e| {
        if e.is_data() {
            PourError::Invalid(format!("{e}"))
        } else {
            PourError::Malformed(format!("body is not valid JSON: {e}"))
        }
    })?;
    let invalid = |m: String| PourError::Invalid(m);
    let named = match &raw.tap_id {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::Number(n)) => {
            Some(parse_tap_id(&n.to_string()).ok_or_else(|| invalid(tap_id_rule()))?)
        }
        Some(_) => return Err(invalid(tap_id_rule())),
    };
    let tap_id = match (tap, named) {
        (Some(t), Some(n)) if t != n => {
            return Err(invalid(format!("tapId {n} is not the topic's tap {t}")));
        }
        (Some(t), _) | (None, Some(t)) => t,
        (None, None) => return Err(invalid("tapId is required".into())),
    };
    let sensor = match &raw.sensor {
        None | Some(serde_json::Value::Null) => "probe".to_owned(),
        Some(serde_json::Value::String(s))
            if !s.is_empty() && s.len() <= MAX_SENSOR_LEN && s.chars().all(|c| !c.is_control()) =>
        {
            s.clone()
        }
        Some(_) => {
            return Err(invalid(format!(
                "sensor must be a name of 1 to {MAX_SENSOR_LEN} characters"
            )));
        }
    };
    let location = match &raw.location {
        None | Some(serde_json::Value::Null) => Location::Keg,
        Some(serde_json::Value::String(s)) => Location::parse(s)
            .ok_or_else(|| invalid("location must be keg, cooler, tower or room".into()))?,
        Some(_) => {
            return Err(invalid(
                "location must be keg, cooler, tower or room".into(),
            ));
        }
    };
    let celsius = match &raw.celsius {
        Some(serde_json::Value::Number(n)) => n.as_f64().unwrap_or(f64::NAN),
        None | Some(serde_json::Value::Null) => return Err(invalid("celsius is required".into())),
        Some(_) => f64::NAN,
    };
    let celsius = checked_celsius(celsius).map_err(invalid)?;
    let timestamp = match &raw.timestamp {
        None | Some(serde_json::Value::Null) => now,
        Some(serde_json::Value::String(s)) => Timestamp::parse(s).ok_or_else(|| {
            invalid("timestamp must be an RFC 3339 date and time (2026-12-04T21:00:00Z)".into())
        })?,
        Some(_) => {
            return Err(invalid(
                "timestamp must be an RFC 3339 date and time (2026-12-04T21:00:00Z)".into(),
            ));
        }
    };
    let ahead = timestamp.millis().saturating_sub(now.millis());
    if ahead > i64::try_from(skew.as_millis()).unwrap_or(i64::MAX) {
        return Err(invalid(format!(
            "timestamp is {} s ahead of the server's clock (at most {} s)",
            ahead / 1000,
            skew.as_secs()
        )));
    }
    Ok(Reading {
        venue,
        tap_id,
        sensor,
        location,
        celsius,
        timestamp,
        samples: 1,
    })
}

/// A temperature a sensor can read: from -40 to 100 °C, kept to a hundredth.
pub fn checked_celsius(celsius: f64) -> Result<f64, String> {
    if celsius.is_finite() && (-40.0..=100.0).contains(&celsius) {
        Ok((celsius * 100.0).round() / 100.0)
    } else {
        Err("celsius must be a number from -40 to 100".into())
    }
}

/// One series' readings (in time order) as they are read: those before `cutoff`, one
/// mean a minute (stamped at the minute's start); later ones as they are.
pub fn downsampled(readings: &[Reading], cutoff: Timestamp) -> Vec<Reading> {
    let mut out: Vec<Reading> = Vec::with_capacity(readings.len());
    for r in readings {
        if r.timestamp >= cutoff {
            out.push(r.clone());
            continue;
        }
        let minute = Timestamp::from_millis(r.timestamp.millis().div_euclid(MINUTE_MS) * MINUTE_MS);
        match out.last_mut() {
            Some(last)
                if last.timestamp == minute
                    && last.location == r.location
                    && last.timestamp < cutoff =>
            {
                let n = f64::from(last.samples) + f64::from(r.samples);
                last.celsius = ((last.celsius * f64::from(last.samples)
                    + r.celsius * f64::from(r.samples))
                    / n
                    * 100.0)
                    .round()
                    / 100.0;
                last.samples += r.samples;
            }
            _ => out.push(Reading {
                timestamp: minute,
                ..r.clone()
            }),
        }
    }
    out
}

/// When a sensor's beer is too warm, too hot, or its sensor silent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Above this (°C) for `warm_for`, beer foams: an alert.
    pub warm_above: f64,
    pub warm_for: Duration,
    /// Above this (°C), beer spoils: a critical alert at once.
    pub hot_above: f64,
    /// A sensor silent this long is an alert.
    pub silent_after: Duration,
}

/// What a sensor's readings say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum Condition {
    Fine,
    /// Above the warm limit for longer than allowed.
    Warm,
    /// Above the hot limit.
    Hot,
    /// No reading for the silent time.
    Silent,
}

/// A sensor's latest reading, and since when its readings have been above the warm limit
/// without a break (none: its latest is not).
#[derive(Debug, Clone, PartialEq)]
pub struct Latest {
    pub reading: Reading,
    pub warm_since: Option<Timestamp>,
}

impl Limits {
    /// What a sensor's latest readings say at `now`. Only sensors that keep the beer
    /// (keg, cooler, tower) can be too warm; a room's can only fall silent.
    pub fn judge(&self, latest: &Latest, now: Timestamp) -> Condition {
        let silent = i64::try_from(self.silent_after.as_millis()).unwrap_or(i64::MAX);
        if now
            .millis()
            .saturating_sub(latest.reading.timestamp.millis())
            >= silent
        {
            return Condition::Silent;
        }
        if latest.reading.location == Location::Room {
            return Condition::Fine;
        }
        if latest.reading.celsius > self.hot_above {
            return Condition::Hot;
        }
        let warm_for = i64::try_from(self.warm_for.as_millis()).unwrap_or(i64::MAX);
        match latest.warm_since {
            Some(since) if now.millis().saturating_sub(since.millis()) >= warm_for => {
                Condition::Warm
            }
            _ => Condition::Fine,
        }
    }
}

/// A sensor's latest reading, for its tap's card: how old it is and what it says.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SensorNow {
    pub sensor: String,
    pub location: Location,
    pub celsius: f64,
    #[schema(value_type = String, format = DateTime)]
    pub timestamp: Timestamp,
    /// Seconds since the reading.
    pub age_seconds: u64,
    pub condition: Condition,
}

impl SensorNow {
    pub fn of(latest: &Latest, limits: &Limits, now: Timestamp) -> SensorNow {
        let r = &latest.reading;
        SensorNow {
            sensor: r.sensor.clone(),
            location: r.location,
            celsius: r.celsius,
            timestamp: r.timestamp,
            age_seconds: u64::try_from(now.millis().saturating_sub(r.timestamp.millis()) / 1000)
                .unwrap_or(0),
            condition: limits.judge(latest, now),
        }
    }
}

/// Since when the readings of one series (in time order) have been above `warm_above`
/// without a break; none if the latest is not.
pub fn warm_since(readings: &[Reading], warm_above: f64) -> Option<Timestamp> {
    let mut since = None;
    for r in readings.iter().rev() {
        if r.celsius > warm_above {
            since = Some(r.timestamp);
        } else {
            break;
        }
    }
    since
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(celsius: f64, at_s: i64) -> Reading {
        Reading {
            venue: "main".into(),
            tap_id: 1,
            sensor: "probe".into(),
            location: Location::Keg,
            celsius,
            timestamp: Timestamp::from_millis(at_s * 1000),
            samples: 1,
        }
    }

    const LIMITS: Limits = Limits {
        warm_above: 3.3,
        warm_for: Duration::from_secs(900),
        hot_above: 10.0,
        silent_after: Duration::from_secs(300),
    };

    #[test]
    fn a_day_old_reading_is_one_mean_a_minute() {
        let readings = [
            reading(2.0, 60),
            reading(3.0, 90),
            reading(4.0, 119),
            reading(5.0, 120),
            reading(6.0, 200),
            reading(7.0, 201),
        ];
        let out = downsampled(&readings, Timestamp::from_millis(200_000));
        let points: Vec<(i64, f64, u32)> = out
            .iter()
            .map(|r| (r.timestamp.millis() / 1000, r.celsius, r.samples))
            .collect();
        assert_eq!(
            points,
            [(60, 3.0, 3), (120, 5.0, 1), (200, 6.0, 1), (201, 7.0, 1)]
        );
    }

    #[test]
    fn warm_for_a_while_hot_at_once_and_silent_after_a_time() {
        let now = |s: i64| Timestamp::from_millis(s * 1000);
        let series = [reading(2.0, 0), reading(4.0, 100), reading(5.0, 950)];
        let latest = Latest {
            reading: series[2].clone(),
            warm_since: warm_since(&series, 3.3),
        };
        assert_eq!(latest.warm_since, Some(now(100)));
        assert_eq!(
            LIMITS.judge(&latest, now(960)),
            Condition::Fine,
            "warm 860 s"
        );
        assert_eq!(LIMITS.judge(&latest, now(1000)), Condition::Warm);
        assert_eq!(LIMITS.judge(&latest, now(1250)), Condition::Silent);
        let hot = Latest {
            reading: reading(10.5, 950),
            warm_since: Some(now(950)),
        };
        assert_eq!(LIMITS.judge(&hot, now(951)), Condition::Hot);
        let room = Latest {
            reading: Reading {
                location: Location::Room,
                ..reading(25.0, 950)
            },
            warm_since: Some(now(0)),
        };
        assert_eq!(LIMITS.judge(&room, now(951)), Condition::Fine);
    }

    #[test]
    fn a_reading_names_its_fields_or_is_refused_with_the_field() {
        let now = Timestamp::from_millis(1_800_000_000_000);
        let parse = |body: &str| {
            parse_reading(
                body.as_bytes(),
                None,
                "main".into(),
                now,
                Duration::from_secs(300),
            )
        };
        let r = parse(r#"{"tapId": 2, "sensor": "keg 2", "location": "cooler", "celsius": 3.456}"#)
            .unwrap();
        assert_eq!(
            (
                r.tap_id,
                r.sensor.as_str(),
                r.location,
                r.celsius,
                r.timestamp
            ),
            (2, "keg 2", Location::Cooler, 3.46, now)
        );
        for (body, says) in [
            (r#"{"tapId": 2}"#, "celsius is required"),
            (r#"{"tapId": 2, "celsius": 300}"#, "from -40 to 100"),
            (r#"{"celsius": 3}"#, "tapId is required"),
            (
                r#"{"tapId": 2, "celsius": 3, "location": "attic"}"#,
                "keg, cooler",
            ),
            (
                r#"{"tapId": 2, "celsius": 3, "colour": 1}"#,
                "unknown field",
            ),
            (
                r#"{"tapId": 2, "celsius": 3, "timestamp": "2099-01-01T00:00:00Z"}"#,
                "ahead",
            ),
        ] {
            match parse(body) {
                Err(PourError::Invalid(m)) => assert!(m.contains(says), "{body}: {m}"),
                other => panic!("{body}: {other:?}"),
            }
        }
        assert!(matches!(parse("{"), Err(PourError::Malformed(_))));
    }
}
