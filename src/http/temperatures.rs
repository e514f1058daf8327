//! `POST /api/temperatures` and `GET /api/temperatures`: the taps' temperature readings,
//! and each tap sensor's latest on its tap (`GET /api/taps`).

use serde::Serialize;
use warp::http::StatusCode;
use warp::reply::Response;

use super::error::{ApiError, ErrorBody};
use super::gate::require;
use super::reply::json_with;
use super::request::{BodyHeaders, tap_param};
use super::scope::{Scope, venue_param};
use super::state::AppState;
use crate::auth::{Identity, Need};
use crate::keg::TapView;
use crate::pour::Timestamp;
use crate::store::thermometer::{MAX_READINGS, SeriesQuery};
use crate::temperature::{RAW_FOR_MS, Reading, SensorNow};

/// A reading as `POST /api/temperatures` takes it.
#[derive(utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = TemperatureRequest, example = json!({"tapId": 2, "sensor": "keg 2", "location": "keg", "celsius": 3.1}))]
#[allow(dead_code)] // Only a schema: the body is read field by field.
pub struct TemperatureRequest {
    /// The tap the sensor is on.
    tap_id: u32,
    /// The sensor's name, unique on its tap (default `probe`).
    #[schema(min_length = 1, max_length = 64)]
    sensor: Option<String>,
    /// Where it is: keg (default), cooler, tower or room.
    location: Option<crate::temperature::Location>,
    /// Degrees Celsius, from -40 to 100.
    #[schema(minimum = -40, maximum = 100)]
    celsius: f64,
    /// When it was read (default: when it arrives).
    #[schema(value_type = Option<String>, format = DateTime)]
    timestamp: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = OneTemperature)]
pub struct OneTemperature<'a> {
    pub temperature: &'a Reading,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = TemperatureList)]
pub struct TemperatureList {
    /// In time order (then by venue, tap and sensor); those over a day old, one mean a
    /// minute (`samples` says of how many).
    pub temperatures: Vec<Reading>,
}

/// Record a temperature
///
/// One sensor's reading on a tap, with a tap's token (for that tap) or an admin's.
#[utoipa::path(
    post, path = "/api/temperatures", tag = "temperatures",
    request_body(content = TemperatureRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "Kept (durably, before this answer)", body = OneTemperature),
        (status = 400, description = "Not JSON, or not application/json", body = ErrorBody),
        (status = 401, description = "No or unknown token (with a tokens file)", body = ErrorBody),
        (status = 403, description = "This token may not report for this venue or tap", body = ErrorBody),
        (status = 404, description = "No such venue", body = ErrorBody),
        (status = 413, description = "Body over 16 KiB", body = ErrorBody),
        (status = 422, description = "A field is missing or wrong; the message names it", body = ErrorBody),
        (status = 503, description = "The store cannot write", body = ErrorBody),
    )
)]
pub async fn record(
    state: &AppState,
    headers: &BodyHeaders,
    body: Result<bytes::Bytes, ApiError>,
    who: Option<Identity>,
) -> Result<Response, ApiError> {
    headers.require_json()?;
    let body = body?;
    let venue = Scope::of(state, &who).write(state, None)?;
    let reading = state
        .pouring
        .reading(&body, None, venue, Timestamp::now())?;
    require(&who, Need::Pour(reading.tap_id))?;
    state
        .store
        .thermometer()
        .record(vec![reading.clone()])
        .await?;
    Ok(json_with(
        &OneTemperature {
            temperature: &reading,
        },
        StatusCode::CREATED,
    ))
}

/// List temperatures
///
/// A venue's (or a tap's) readings between two times: each one for the last day, one mean
/// a minute before.
#[utoipa::path(
    get, path = "/api/temperatures", tag = "temperatures",
    params(
        ("venue" = Option<String>, Query, description = "Only this venue's (a token confined to a venue gets its own)"),
        ("tapId" = Option<u32>, Query, description = "Only this tap's"),
        ("from" = Option<String>, Query, format = DateTime, description = "At or after (default: a day before `to`)"),
        ("to" = Option<String>, Query, format = DateTime, description = "Before (default: now)"),
    ),
    responses(
        (status = 200, description = "The readings", body = TemperatureList),
        (status = 400, description = "A bad parameter value, or `from` not before `to`", body = ErrorBody),
        (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 403, description = "This token may not read, or not that venue", body = ErrorBody),
        (status = 404, description = "No such venue", body = ErrorBody),
        (status = 422, description = "More readings than one answer holds: ask for less", body = ErrorBody),
        (status = 503, description = "The store cannot be read", body = ErrorBody),
    )
)]
pub async fn list(
    state: &AppState,
    raw_query: &str,
    who: &Option<Identity>,
) -> Result<Response, ApiError> {
    let venue = Scope::of(state, who).read(state, venue_param(raw_query).as_deref())?;
    let bad = |name: &str| ApiError::BadRequest(format!("{name} must be an RFC 3339 date-time"));
    let (mut from, mut to, mut tap_id) = (None, None, None);
    for (key, value) in form_urlencoded::parse(raw_query.as_bytes()) {
        match &*key {
            "tapId" => tap_id = Some(tap_param(&value)?),
            "from" => from = Some(Timestamp::parse(&value).ok_or_else(|| bad("from"))?),
            "to" => to = Some(Timestamp::parse(&value).ok_or_else(|| bad("to"))?),
            _ => {}
        }
    }
    let now = Timestamp::now();
    let to = to.unwrap_or(Timestamp::from_millis(now.millis().saturating_add(1)));
    let from = from.unwrap_or(Timestamp::from_millis(
        to.millis().saturating_sub(RAW_FOR_MS),
    ));
    if from >= to {
        return Err(ApiError::BadRequest("from must be before to".into()));
    }
    let query = SeriesQuery {
        venue,
        tap_id,
        from,
        to,
    };
    let temperatures = state
        .store
        .thermometer()
        .series(&query, now)
        .await?
        .ok_or_else(|| {
            ApiError::Unprocessable(format!(
                "more than {MAX_READINGS} readings between from and to: ask for a shorter time or one tap"
            ))
        })?;
    Ok(json_with(&TemperatureList { temperatures }, StatusCode::OK))
}

/// Each tap's sensors' latest readings, on the taps. A store that cannot be read leaves
/// them off: the taps are the bar's state, and answer all the same.
pub async fn on_taps(state: &AppState, taps: &mut [TapView]) {
    if taps.is_empty() {
        return;
    }
    let now = Timestamp::now();
    let limits = state.pouring.limits;
    let latest = match state
        .store
        .thermometer()
        .latest(limits.warm_above, now)
        .await
    {
        Ok(latest) => latest,
        Err(e) => {
            log::debug!("temperatures: cannot read the latest: {e}");
            return;
        }
    };
    for l in &latest {
        if let Some(tap) = taps
            .iter_mut()
            .find(|t| t.tap_id == l.reading.tap_id && t.venue == l.reading.venue)
        {
            tap.temperatures.push(SensorNow::of(l, &limits, now));
        }
    }
}
