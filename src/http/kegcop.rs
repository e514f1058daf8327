//! `POST /api/kegcop`: Keg Cop's reports, as a Keg Cop sends them to its "Keg Screen"
//! URL, so that one pointed at Altair works with no change. A pour report is a pour, a
//! kick report finishes the tap's keg, a temperature report is its sensors' readings;
//! its tap-information and cooling-state reports are taken and change nothing.
//!
//! Keg Cop numbers its taps from 0: its tap 0 is Altair's tap 1. Its volumes are litres
//! (gallons, and its temperatures °F, when it is set to imperial units). It sends no
//! token header: with a tokens file, give it its token in the URL (`?token=`).

use serde::Serialize;
use serde_json::{Map, Value};
use warp::http::StatusCode;
use warp::reply::Response;

use super::error::{ApiError, ErrorBody};
use super::gate::require;
use super::kegs::applied;
use super::reply::json_with;
use super::request::{BodyHeaders, tap_param};
use super::scope::{Scope, venue_param};
use super::state::AppState;
use crate::auth::{Identity, Need};
use crate::decide::Inserted;
use crate::keg::KegOp;
use crate::pour::{TapRef, Timestamp};
use crate::temperature::{Location, MAX_SENSOR_LEN, Reading, checked_celsius};

const ML_PER_GALLON: f64 = 3785.411784;

/// A Keg Cop report, as it sends one (the fields Altair reads; its others, `api`,
/// `guid`, `hostname`, `breweryname`, `kegeratorname`, `remaining`..., are taken as they
/// are).
#[derive(utoipa::ToSchema)]
#[serde(tag = "reporttype", rename_all = "lowercase")]
#[allow(dead_code)] // Only a schema: the body is read field by field.
pub enum KegCopReport {
    /// A pour: its volume in litres (gallons if imperial).
    Pourreport {
        /// The Keg Cop's tap, from 0 (Altair's tap `tapid + 1`).
        #[schema(maximum = 4294967294_u64)]
        tapid: u32,
        imperial: Option<bool>,
        #[schema(exclusive_minimum = 0, maximum = 5)]
        dispensed: f64,
    },
    /// The keg on the tap is empty: it is finished.
    Kickreport {
        #[schema(maximum = 4294967294_u64)]
        tapid: u32,
    },
    /// Its sensors, in °C (°F if imperial).
    Tempreport {
        imperial: Option<bool>,
        sensors: Vec<KegCopSensor>,
    },
    /// Taken, and ignored.
    Tapinfo {},
    /// Taken, and ignored.
    Coolstate {},
}

/// One of a temperature report's sensors (one that is off, or reads nonsense, is left
/// out).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct KegCopSensor {
    #[schema(min_length = 1, max_length = 64)]
    name: String,
    value: f64,
    enabled: bool,
}

/// What a report made: the pour, the finished keg, the readings kept, or which report
/// type was taken and ignored.
#[derive(Serialize, Default, utoipa::ToSchema)]
pub struct KegCopAnswer {
    #[serde(skip_serializing_if = "Option::is_none")]
    beer: Option<crate::pour::Pour>,
    #[serde(skip_serializing_if = "Option::is_none")]
    keg: Option<crate::keg::KegView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperatures: Option<Vec<Reading>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ignored: Option<String>,
}

/// Take a Keg Cop report
///
/// As Keg Cop sends it: a pour report stores a pour (201, as `POST /api/beers`), a kick
/// report finishes the keg on the tap (200, as `POST /api/kegs/{id}/finish`), a
/// temperature report keeps its enabled sensors' readings for tap `tapId` (201).
#[utoipa::path(
    post, path = "/api/kegcop", tag = "pours",
    params(
        ("tapId" = Option<u32>, Query, description = "The tap a temperature report's sensors are on (default 1)"),
        ("venue" = Option<String>, Query, description = "The venue (default: the token's, or the default venue)"),
        ("token" = Option<String>, Query, description = "A token, for a Keg Cop that cannot send an Authorization header"),
    ),
    request_body(content = KegCopReport, content_type = "application/json"),
    responses(
        (status = 201, description = "A pour report's pour, or a temperature report's readings", body = KegCopAnswer),
        (status = 200, description = "A kick report: the finished keg; tapinfo and coolstate: taken, ignored", body = KegCopAnswer),
        (status = 400, description = "Not JSON", body = ErrorBody),
        (status = 401, description = "No or unknown token (with a tokens file)", body = ErrorBody),
        (status = 403, description = "This token may not report for this venue or tap", body = ErrorBody),
        (status = 404, description = "No such venue, or no keg on the tap kicked", body = ErrorBody),
        (status = 413, description = "Body over 16 KiB", body = ErrorBody),
        (status = 422, description = "A field is missing or wrong; the message names it", body = ErrorBody),
        (status = 503, description = "The store cannot write", body = ErrorBody),
    )
)]
pub async fn report(
    state: &AppState,
    raw_query: &str,
    headers: &BodyHeaders,
    body: Result<bytes::Bytes, ApiError>,
    who: Option<Identity>,
) -> Result<Response, ApiError> {
    headers.require_json()?;
    let body = body?;
    let fields: Map<String, Value> = match serde_json::from_slice(&body) {
        Ok(Value::Object(fields)) => fields,
        Ok(_) => return Err(invalid("a report is a JSON object")),
        Err(e) => return Err(ApiError::BadRequest(format!("body is not valid JSON: {e}"))),
    };
    let venue = Scope::of(state, &who).write(state, venue_param(raw_query).as_deref())?;
    // The query is checked whatever the report: a wrong one is refused, never ignored.
    let sensors_tap = match form_urlencoded::parse(raw_query.as_bytes()).find(|(k, _)| k == "tapId")
    {
        Some((_, value)) => tap_param(&value)?,
        None => 1,
    };
    let imperial = || match fields.get("imperial") {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(invalid("imperial must be true or false")),
    };
    match fields.get("reporttype").and_then(Value::as_str) {
        Some("pourreport") => {
            let tap_id = tap_of(&fields)?;
            let dispensed = fields
                .get("dispensed")
                .and_then(Value::as_f64)
                .filter(|d| *d > 0.0 && *d <= 5.0)
                .ok_or_else(|| invalid("dispensed must be a number above 0, at most 5"))?;
            let volume = dispensed * if imperial()? { ML_PER_GALLON } else { 1000.0 };
            let volume = (volume * 10.0).round() / 10.0;
            let body = serde_json::json!({ "tapId": tap_id, "volume": volume }).to_string();
            let pour = state
                .pouring
                .judge(body.as_bytes(), None, venue, Timestamp::now())?;
            require(&who, Need::Pour(tap_id))?;
            if let Some(identity) = &who {
                state.gate.limit_tap(identity, &pour.tap())?;
            }
            match state.store.insert(pour, None).await? {
                Inserted::Created(pour) | Inserted::Replayed(pour) => Ok(json_with(
                    &KegCopAnswer {
                        beer: Some(pour),
                        ..KegCopAnswer::default()
                    },
                    StatusCode::CREATED,
                )),
                // Only a keyed pour meets these; this one has no key.
                Inserted::Conflict | Inserted::Deleted(_) => {
                    Err(ApiError::Internal("an unkeyed pour met a key".into()))
                }
            }
        }
        Some("kickreport") => {
            let tap_id = tap_of(&fields)?;
            require(&who, Need::Pour(tap_id))?;
            let tap = TapRef { venue, tap_id };
            let keg = state
                .bar
                .cellar(|c| c.current(Some(&tap.venue)))
                .into_iter()
                .find(|k| k.tap_id == tap_id)
                .ok_or_else(|| ApiError::NotFound(format!("no keg on {tap} to kick")))?;
            let op = KegOp::Finish {
                keg_id: keg.id,
                left_ul: Some(0),
                at: Timestamp::now(),
            };
            let (keg, _) = applied(state, headers, op).await?;
            let answer = KegCopAnswer {
                keg: Some(keg),
                ..KegCopAnswer::default()
            };
            Ok(json_with(&answer, StatusCode::OK))
        }
        Some("tempreport") => {
            let tap_id = sensors_tap;
            require(&who, Need::Pour(tap_id))?;
            let sensors = fields
                .get("sensors")
                .and_then(Value::as_array)
                .ok_or_else(|| invalid("sensors must be a list"))?;
            let imperial = imperial()?;
            let now = Timestamp::now();
            let mut readings = Vec::new();
            for sensor in sensors {
                let name = sensor
                    .get("name")
                    .and_then(Value::as_str)
                    .filter(|n| !n.is_empty() && n.chars().count() <= MAX_SENSOR_LEN);
                let enabled = sensor.get("enabled").and_then(Value::as_bool);
                let value = sensor.get("value").and_then(Value::as_f64);
                let (Some(name), Some(enabled), Some(value)) = (name, enabled, value) else {
                    return Err(invalid(
                        "each sensor must be {\"name\": 1 to 64 characters, \"value\": a number, \"enabled\": true or false}",
                    ));
                };
                if !enabled {
                    continue;
                }
                let celsius = if imperial {
                    (value - 32.0) * 5.0 / 9.0
                } else {
                    value
                };
                // A sensor that is not there reads nonsense (-100): left out.
                let Ok(celsius) = checked_celsius(celsius) else {
                    continue;
                };
                readings.push(Reading {
                    venue: venue.clone(),
                    tap_id,
                    sensor: name.to_owned(),
                    location: location_of(name),
                    celsius,
                    timestamp: now,
                    samples: 1,
                });
            }
            if !readings.is_empty() {
                state.store.thermometer().record(readings.clone()).await?;
            }
            let answer = KegCopAnswer {
                temperatures: Some(readings),
                ..KegCopAnswer::default()
            };
            Ok(json_with(&answer, StatusCode::CREATED))
        }
        Some(other @ ("tapinfo" | "coolstate")) => {
            let answer = KegCopAnswer {
                ignored: Some(other.to_owned()),
                ..KegCopAnswer::default()
            };
            Ok(json_with(&answer, StatusCode::OK))
        }
        _ => Err(invalid(
            "reporttype must be pourreport, kickreport or tempreport (tapinfo and coolstate are taken and ignored)",
        )),
    }
}

fn invalid(message: &str) -> ApiError {
    ApiError::Unprocessable(message.to_owned())
}

/// Altair's tap for a Keg Cop's `tapid` (from 0).
fn tap_of(fields: &Map<String, Value>) -> Result<u32, ApiError> {
    fields
        .get("tapid")
        .and_then(Value::as_u64)
        .and_then(|t| u32::try_from(t.checked_add(1)?).ok())
        .and_then(|t| crate::pour::parse_tap_id(&t.to_string()))
        .ok_or_else(|| invalid("tapid must be a Keg Cop tap number, from 0"))
}

/// Where a Keg Cop sensor is, by its name ("Room", "Tower", "Upper Chamber", "Keg").
fn location_of(name: &str) -> Location {
    let name = name.to_ascii_lowercase();
    if name.contains("room") {
        Location::Room
    } else if name.contains("tower") {
        Location::Tower
    } else if name.contains("keg") {
        Location::Keg
    } else {
        Location::Cooler
    }
}
