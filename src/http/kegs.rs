//! Handlers for kegs (`/api/kegs`) and taps (`/api/taps`).

use serde::Serialize;
use serde_json::{Map, Value};
use warp::Reply as _;
use warp::http::{StatusCode, header};
use warp::reply::Response;

use super::csv::{self, Format};
use super::error::{ApiError, ErrorBody};
use super::reply::json_with;
use super::request::{BodyHeaders, id_param, tap_param};
use super::scope::{Scope, venue_param};
use super::state::AppState;
use crate::auth::Identity;
use crate::keg::{
    Change, KegError, KegFilter, KegOp, KegSize, KegView, SIZES, TapView, microlitres, size_named,
};
use crate::pour::{TapRef, Timestamp, parse_tap_id, tap_id_rule};
use crate::store::KegDone;

/// No keg is bigger (ml): a 1,000 L tank.
const MAX_KEG_ML: f64 = 1_000_000.0;
/// The longest beverage name.
const MAX_BEVERAGE: usize = 100;

/// One keg.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = KegResponse)]
pub struct OneKeg {
    keg: KegView,
}

/// Kegs in id order.
#[derive(Serialize, utoipa::ToSchema)]
pub struct KegList {
    kegs: Vec<KegView>,
}

/// Every tap that has a keg or has poured.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TapList {
    taps: Vec<TapView>,
}

/// The keg sizes `size` takes.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SizeList {
    sizes: &'static [KegSize],
}

/// The body of `POST /api/kegs`: `size` or `sizeMl`, one of them.
#[derive(Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"tapId": 3, "beverage": "Helles", "size": "euro-50"}))]
pub struct NewKeg {
    /// The venue whose tap it goes on (default: the token's venue, else the default
    /// venue).
    #[schema(nullable = false, pattern = "^[a-z0-9-]{1,40}$")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub venue: Option<String>,
    /// The tap it goes on; the tap's current keg, if any, is finished.
    pub tap_id: u32,
    /// What it holds, 1 to 100 characters.
    #[schema(min_length = 1, max_length = 100)]
    pub beverage: String,
    /// A named size (`GET /api/kegs/sizes`).
    #[schema(nullable = false)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
    /// The size in ml.
    #[schema(nullable = false, exclusive_minimum = 0, maximum = 1_000_000)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_ml: Option<f64>,
    /// What a part-used keg holds, in ml, at most its size; default: its size.
    #[schema(nullable = false, minimum = 0, maximum = 1_000_000)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remaining_ml: Option<f64>,
}

/// The body of `PATCH /api/kegs/{id}`: at least one field.
#[derive(Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"sizeMl": 30000, "spillMl": 500}))]
pub struct KegCorrection {
    #[schema(nullable = false, min_length = 1, max_length = 100)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub beverage: Option<String>,
    /// A named size (`GET /api/kegs/sizes`).
    #[schema(nullable = false)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
    #[schema(nullable = false, exclusive_minimum = 0, maximum = 1_000_000)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_ml: Option<f64>,
    /// Beer lost, in ml: it comes off the level (not on a finished keg).
    #[schema(nullable = false, exclusive_minimum = 0, maximum = 1_000_000)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spill_ml: Option<f64>,
}

/// One tap.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = TapResponse)]
pub struct OneTap {
    tap: TapView,
}

/// The body of `PATCH /api/taps/{id}`: a field left out stays as it is; `null` clears it.
#[derive(Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"name": "Left bar, 3", "lowPercent": 20}))]
pub struct TapSettings {
    /// A name for people, 1 to 100 characters.
    #[schema(min_length = 1, max_length = 100)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Its kegs are low at or under this percentage of their size (null: --keg-low-percent).
    #[schema(minimum = 0, maximum = 100)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub low_percent: Option<f64>,
}

/// Which kegs `GET /api/kegs` lists.
#[derive(Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum KegStatus {
    /// On a tap.
    Current,
    /// Taken off.
    Finished,
}

/// The body as a JSON object.
pub(crate) fn object(
    headers: &BodyHeaders,
    body: Result<bytes::Bytes, ApiError>,
) -> Result<Map<String, Value>, ApiError> {
    headers.require_json()?;
    let body = body?;
    match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(fields)) => Ok(fields),
        Ok(_) => Err(ApiError::Unprocessable("body must be a JSON object".into())),
        Err(e) => Err(ApiError::BadRequest(format!("body is not valid JSON: {e}"))),
    }
}

/// The fields of a body that are not among `names`: each handler refuses them, since a
/// misspelt field would otherwise pass for a setting left as it was.
pub(crate) fn unknown_fields<'f>(fields: &'f Map<String, Value>, names: &[&str]) -> Vec<&'f str> {
    fields
        .keys()
        .map(String::as_str)
        .filter(|f| !names.contains(f))
        .collect()
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::Unprocessable(message.into())
}

/// A name (`field`: a beverage, a tap): 1 to 100 characters, not all blank, no control
/// characters (what the document's [`BEVERAGE_PATTERN`] says); kept trimmed.
pub(crate) fn label(field: &str, value: &Value) -> Result<String, ApiError> {
    let rule = || {
        invalid(format!(
            "{field} must be a name of 1 to {MAX_BEVERAGE} characters, without control characters"
        ))
    };
    let name = value.as_str().ok_or_else(rule)?;
    let length = name.chars().count();
    let control = name
        .chars()
        .any(|c| matches!(c, '\0'..='\x1f' | '\x7f'..='\u{9f}'));
    if length == 0 || length > MAX_BEVERAGE || control || name.trim().is_empty() {
        return Err(rule());
    }
    Ok(name.trim().to_owned())
}

/// What a beverage name must match, as the OpenAPI document says it.
pub const BEVERAGE_PATTERN: &str = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$";

/// Millilitres from 0 (or above 0) to the largest keg.
fn volume(name: &str, value: &Value, zero: bool) -> Result<f64, ApiError> {
    let ml = value
        .as_f64()
        .filter(|ml| ml.is_finite() && *ml <= MAX_KEG_ML && (*ml > 0.0 || (zero && *ml == 0.0)));
    ml.ok_or_else(|| {
        let low = if zero { "from 0" } else { "more than 0" };
        invalid(format!(
            "{name} must be a number of ml {low} to {MAX_KEG_ML}"
        ))
    })
}

/// The size from `size` (a name) or `sizeMl`; at most one of them. None if neither.
fn size(fields: &Map<String, Value>) -> Result<Option<f64>, ApiError> {
    match (fields.get("size"), fields.get("sizeMl")) {
        (Some(_), Some(_)) => Err(invalid("give size or sizeMl, not both")),
        (Some(name), None) => {
            let known = name.as_str().and_then(size_named).ok_or_else(|| {
                let names: Vec<&str> = SIZES.iter().map(|s| s.name).collect();
                invalid(format!(
                    "size must be one of {}, or give sizeMl",
                    names.join(", ")
                ))
            })?;
            Ok(Some(known.ml))
        }
        (None, Some(ml)) => volume("sizeMl", ml, false).map(Some),
        (None, None) => Ok(None),
    }
}

/// What the store made of an operation sent with `headers`' idempotency key: the keg as
/// it is now, and whether the operation was logged now (not a retry).
pub(crate) async fn applied(
    state: &AppState,
    headers: &BodyHeaders,
    op: KegOp,
) -> Result<(KegView, bool), ApiError> {
    let (id, new) = logged(state, headers, op).await?;
    let keg = state
        .bar
        .cellar(|c| c.get(id))
        .ok_or_else(|| ApiError::Internal(format!("keg {id} was logged but is not known")))?;
    Ok((keg, new))
}

/// Has the store log `op` under `headers`' idempotency key: the keg (or alert) it made or
/// changed, and whether it was logged now (not a retry).
pub(crate) async fn logged(
    state: &AppState,
    headers: &BodyHeaders,
    op: KegOp,
) -> Result<(u64, bool), ApiError> {
    let key = headers.idempotency_key()?;
    match state.store.keg(op, key.clone()).await? {
        Ok(KegDone::Applied(id)) => Ok((id, true)),
        Ok(KegDone::Replayed(id)) => Ok((id, false)),
        Ok(KegDone::Conflict) => Err(ApiError::Conflict(format!(
            "Idempotency-Key {:?} was already used with a different request",
            key.unwrap_or_default()
        ))),
        Err(KegError::NotFound(id)) => Err(not_found(id)),
        Err(e @ (KegError::NoAlert(_) | KegError::NoTap(_) | KegError::NoVenue(_))) => {
            Err(ApiError::NotFound(e.to_string()))
        }
        Err(
            e @ (KegError::Finished(_)
            | KegError::NotQuiet(_)
            | KegError::AlertResolved(_)
            | KegError::AlertAcknowledged(_)
            | KegError::NotDue(_)
            | KegError::NotAnAlert
            | KegError::TapInUse(..)
            | KegError::VenueExists(_)
            | KegError::VenueRefused(_)
            | KegError::NothingNew
            | KegError::MeterMoved(_)
            | KegError::SensorUnchanged(_)),
        ) => Err(ApiError::Conflict(e.to_string())),
        Err(e @ KegError::Refused(_)) => Err(ApiError::Unprocessable(e.to_string())),
    }
}

fn not_found(id: u64) -> ApiError {
    ApiError::NotFound(format!("no keg with id {id}"))
}

fn keg_id(text: &str) -> Result<u64, ApiError> {
    id_param("keg", text)
}

/// Tap a keg
///
/// Puts a keg on a tap; the tap's current keg, if any, is finished. Subscribers hear
/// `finished` and `tapped` (and `low` for a keg tapped at or under the low level).
#[utoipa::path(
    post, path = "/api/kegs", tag = "kegs",
    request_body = NewKeg,
    responses(
        (status = 201, description = "Tapped; Location names it", body = OneKeg),
        (status = 200, description = "A retry under the same Idempotency-Key: the keg as it is now, nothing tapped", body = OneKeg),
        (status = 409, description = "The Idempotency-Key was used with another request", body = ErrorBody),
        (status = 400, description = "Not JSON", body = ErrorBody),
        (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 403, description = "Only admin tokens may change kegs, and a token confined to a venue only its own", body = ErrorBody),
        (status = 404, description = "No such venue", body = ErrorBody),
        (status = 413, description = "The body is over 16 KiB", body = ErrorBody),
        (status = 422, description = "A field is missing or wrong; the message names it", body = ErrorBody),
        (status = 503, description = "The store cannot write", body = ErrorBody),
    )
)]
pub async fn create(
    state: &AppState,
    headers: &BodyHeaders,
    body: Result<bytes::Bytes, ApiError>,
    who: &Option<Identity>,
) -> Result<Response, ApiError> {
    let fields = object(headers, body)?;
    let named = match fields.get("venue") {
        None => None,
        Some(Value::String(venue)) => Some(venue.as_str()),
        Some(_) => return Err(invalid("venue must be a venue id")),
    };
    let venue = Scope::of(state, who).write(state, named)?;
    let tap_id = fields
        .get("tapId")
        .and_then(|v| {
            v.is_number()
                .then(|| parse_tap_id(&v.to_string()))
                .flatten()
        })
        .ok_or_else(|| invalid(tap_id_rule()))?;
    let beverage = label("beverage", fields.get("beverage").unwrap_or(&Value::Null))?;
    let size_ml = size(&fields)?.ok_or_else(|| invalid("size (a name) or sizeMl is required"))?;
    let start_ml = match fields.get("remainingMl") {
        None => size_ml,
        Some(value) => {
            let ml = volume("remainingMl", value, true)?;
            if ml > size_ml {
                return Err(invalid(format!(
                    "remainingMl ({ml}) is more than the keg's size ({size_ml} ml)"
                )));
            }
            ml
        }
    };
    let op = KegOp::Tap {
        venue: stored(state, &venue),
        tap_id,
        beverage,
        size_ul: microlitres(size_ml),
        start_ul: microlitres(start_ml),
        at: Timestamp::now(),
    };
    let (keg, new) = applied(state, headers, op).await?;
    let location = header::HeaderValue::from_str(&format!("/api/kegs/{}", keg.id))
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let status = if new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let mut response = json_with(&OneKeg { keg }, status);
    response.headers_mut().insert(header::LOCATION, location);
    Ok(response)
}

/// List kegs
#[utoipa::path(
    get, path = "/api/kegs", tag = "kegs",
    params(
        ("venue" = Option<String>, Query, description = "Only this venue's kegs"),
        ("tapId" = Option<u32>, Query, description = "Only this tap's kegs"),
        ("status" = Option<KegStatus>, Query, description = "`current` (on a tap) or `finished`"),
        ("from" = Option<String>, Query, format = DateTime, description = "Only kegs on tap at or after this moment (current, or finished then or later)"),
        ("to" = Option<String>, Query, format = DateTime, description = "Only kegs tapped at or before this moment"),
        ("format" = Option<csv::ListFormat>, Query, description = "`json` (default) or `csv` (as `Accept: text/csv`)"),
    ),
    responses(
        (status = 200, description = "Kegs in id order; as CSV with `Accept: text/csv` or `format=csv`",
         content((KegList = "application/json"), (String = "text/csv"))),
        (status = 400, description = "A bad parameter value", body = ErrorBody),
        (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 403, description = "This token may not read, or not that venue", body = ErrorBody),
        (status = 404, description = "No such venue", body = ErrorBody),
    )
)]
pub fn list(
    state: &AppState,
    raw_query: &str,
    who: &Option<Identity>,
    headers: &warp::http::HeaderMap,
) -> Result<Response, ApiError> {
    let format = csv::format(headers, raw_query, false)?;
    let venue = Scope::of(state, who).read(state, venue_param(raw_query).as_deref())?;
    let mut filter = KegFilter {
        venue,
        ..KegFilter::default()
    };
    let moment = |name: &str, value: &str| {
        Timestamp::parse(value)
            .map(Some)
            .ok_or_else(|| ApiError::BadRequest(format!("{name} must be an RFC 3339 date-time")))
    };
    for (key, value) in form_urlencoded::parse(raw_query.as_bytes()) {
        match &*key {
            "tapId" => filter.tap_id = Some(tap_param(&value)?),
            "from" => filter.from = moment("from", &value)?,
            "to" => filter.to = moment("to", &value)?,
            "status" => {
                let status = serde_json::from_value(Value::String(value.into_owned()));
                filter.finished = Some(matches!(
                    status.map_err(|_| ApiError::BadRequest(
                        "status must be current or finished".into()
                    ))?,
                    KegStatus::Finished
                ));
            }
            _ => {}
        }
    }
    let kegs = state.bar.cellar(|c| c.list(&filter));
    if format == Format::Csv {
        return Ok(csv::kegs(&kegs, &state.pouring.catalogue).into_response());
    }
    Ok(json_with(&KegList { kegs }, StatusCode::OK))
}

/// Read one keg
#[utoipa::path(
    get, path = "/api/kegs/{id}", tag = "kegs",
    params(("id" = u64, Path, description = "Keg id")),
    responses(
        (status = 200, description = "The keg", body = OneKeg),
        (status = 400, description = "The id is not a number", body = ErrorBody),
        (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 403, description = "This token may not read", body = ErrorBody),
        (status = 404, description = "No such keg", body = ErrorBody),
    )
)]
pub fn show(state: &AppState, id: &str, who: &Option<Identity>) -> Result<Response, ApiError> {
    let keg = visible(state, keg_id(id)?, who)?;
    Ok(json_with(&OneKeg { keg }, StatusCode::OK))
}

/// Keg `id`, if the caller sees it (404 otherwise, as for no keg).
fn visible(state: &AppState, id: u64, who: &Option<Identity>) -> Result<KegView, ApiError> {
    let keg = state
        .bar
        .cellar(|c| c.get(id))
        .ok_or_else(|| not_found(id))?;
    let venue = keg.venue.clone();
    Scope::of(state, who).found(Some(&venue), keg, not_found(id))
}

/// The venue as an operation stores it (none: the default venue).
fn stored(state: &AppState, venue: &str) -> Option<std::sync::Arc<str>> {
    state.bar.venues(|v| v.stored(venue))
}

/// Correct a keg
///
/// A new beverage name or size (a finished keg's too), or a spill, which comes off the
/// level. Subscribers hear `corrected`, then `low` or `empty` if it crossed one.
#[utoipa::path(
    patch, path = "/api/kegs/{id}", tag = "kegs",
    params(("id" = u64, Path, description = "Keg id")),
    request_body = KegCorrection,
    responses(
        (status = 200, description = "The keg as corrected", body = OneKeg),
        (status = 400, description = "The id is not a number, or the body not JSON", body = ErrorBody),
        (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 403, description = "Only admin tokens may change kegs", body = ErrorBody),
        (status = 404, description = "No such keg", body = ErrorBody),
        (status = 409, description = "A spill on a finished keg, or the Idempotency-Key was used with another request", body = ErrorBody),
        (status = 413, description = "The body is over 16 KiB", body = ErrorBody),
        (status = 422, description = "A field is wrong, or none is given", body = ErrorBody),
        (status = 503, description = "The store cannot write", body = ErrorBody),
    )
)]
pub async fn correct(
    state: &AppState,
    id: &str,
    headers: &BodyHeaders,
    body: Result<bytes::Bytes, ApiError>,
    who: &Option<Identity>,
) -> Result<Response, ApiError> {
    let keg_id = keg_id(id)?;
    visible(state, keg_id, who)?;
    let fields = object(headers, body)?;
    let beverage = fields
        .get("beverage")
        .map(|v| label("beverage", v))
        .transpose()?;
    let size_ul = size(&fields)?.map(microlitres);
    let spill_ul = match fields.get("spillMl") {
        Some(value) => microlitres(volume("spillMl", value, false)?),
        None => 0,
    };
    let named = ["beverage", "size", "sizeMl", "spillMl"];
    if !named.iter().any(|field| fields.contains_key(*field)) {
        return Err(invalid("give beverage, size, sizeMl or spillMl"));
    }
    let op = KegOp::Correct {
        keg_id,
        beverage,
        size_ul,
        spill_ul,
        at: Timestamp::now(),
    };
    let (keg, _) = applied(state, headers, op).await?;
    Ok(json_with(&OneKeg { keg }, StatusCode::OK))
}

/// What was found left in a keg taken off its tap (optional).
#[derive(serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
// Only a schema: the handler reads the fields itself.
#[allow(dead_code)]
pub struct KegFinish {
    /// What was left in it, in ml, measured (weighed, say): its yield then says how much no
    /// pour or spill accounts for.
    #[schema(nullable = false, minimum = 0, maximum = 1_000_000)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub left_ml: Option<f64>,
}

/// Finish a keg
///
/// Takes it off its tap, with what was found left in it if someone measured (no body:
/// nobody did). Subscribers hear `finished`.
#[utoipa::path(
    post, path = "/api/kegs/{id}/finish", tag = "kegs",
    params(("id" = u64, Path, description = "Keg id")),
    request_body(content = Option<KegFinish>, content_type = "application/json"),
    responses(
        (status = 200, description = "The keg, finished", body = OneKeg),
        (status = 400, description = "The id is not a number, or the body not JSON", body = ErrorBody),
        (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 403, description = "Only admin tokens may change kegs", body = ErrorBody),
        (status = 404, description = "No such keg", body = ErrorBody),
        (status = 409, description = "Finished already, or the Idempotency-Key was used with another request", body = ErrorBody),
        (status = 413, description = "The body is over 16 KiB", body = ErrorBody),
        (status = 422, description = "A malformed Idempotency-Key, or a wrong or unknown field", body = ErrorBody),
        (status = 503, description = "The store cannot write", body = ErrorBody),
    )
)]
pub async fn finish(
    state: &AppState,
    id: &str,
    headers: &BodyHeaders,
    body: Result<bytes::Bytes, ApiError>,
    who: &Option<Identity>,
) -> Result<Response, ApiError> {
    let keg_id = keg_id(id)?;
    visible(state, keg_id, who)?;
    let left_ul = match body {
        // No body, or JSON's nothing: nobody measured.
        Ok(bytes) if matches!(bytes.trim_ascii(), b"" | b"null") => None,
        body => {
            let fields = object(headers, body)?;
            if let Some(field) = unknown_fields(&fields, &["leftMl"]).first() {
                return Err(invalid(format!(
                    "unknown field {field:?}; give leftMl or nothing"
                )));
            }
            fields
                .get("leftMl")
                .map(|v| volume("leftMl", v, true))
                .transpose()?
                .map(microlitres)
        }
    };
    let op = KegOp::Finish {
        keg_id,
        left_ul,
        at: Timestamp::now(),
    };
    let (keg, _) = applied(state, headers, op).await?;
    Ok(json_with(&OneKeg { keg }, StatusCode::OK))
}

/// Keg sizes
///
/// The sizes `POST /api/kegs` takes by name, with their volumes.
#[utoipa::path(
    get, path = "/api/kegs/sizes", tag = "kegs",
    responses(
        (status = 200, description = "The named sizes", body = SizeList),
        (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 403, description = "This token may not read", body = ErrorBody),
    )
)]
pub fn sizes() -> Response {
    warp::reply::json(&SizeList { sizes: SIZES }).into_response()
}

/// Taps
///
/// Every tap that has a keg or has poured: its keg and level, its pace over the last hour,
/// when the keg runs out at that pace, its last pour, and whether it is quiet.
#[utoipa::path(
    get, path = "/api/taps", tag = "kegs",
    params(("venue" = Option<String>, Query, description = "Only this venue's taps")),
    responses(
        (status = 200, description = "Taps by venue and id", body = TapList),
        (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 403, description = "This token may not read, or not that venue", body = ErrorBody),
        (status = 404, description = "No such venue", body = ErrorBody),
    )
)]
pub async fn taps(
    state: &AppState,
    raw_query: &str,
    who: &Option<Identity>,
) -> Result<Response, ApiError> {
    let venue = Scope::of(state, who).read(state, venue_param(raw_query).as_deref())?;
    let now = Timestamp::now();
    let mut taps = state.bar.cellar(|c| c.taps(venue.as_deref(), now));
    super::temperatures::on_taps(state, &mut taps).await;
    Ok(json_with(&TapList { taps }, StatusCode::OK))
}

/// The tap a path's `tapId` and the query's `venue` name (a read: `write` false).
fn tap_named(
    state: &AppState,
    id: &str,
    raw_query: &str,
    who: &Option<Identity>,
    write: bool,
) -> Result<TapRef, ApiError> {
    let tap_id = tap_param(id)?;
    let asked = venue_param(raw_query);
    let scope = Scope::of(state, who);
    let venue = match write {
        true => scope.write(state, asked.as_deref())?,
        false => match scope.read(state, asked.as_deref())? {
            Some(venue) => venue,
            None => state.pouring.default_venue.clone(),
        },
    };
    Ok(TapRef { venue, tap_id })
}

fn tap_view(state: &AppState, tap: &TapRef) -> Option<TapView> {
    let now = Timestamp::now();
    state.bar.cellar(|c| c.tap(tap, now))
}

/// Read one tap
#[utoipa::path(
    get, path = "/api/taps/{tapId}", tag = "kegs",
    params(
        ("tapId" = u32, Path, description = "Tap id"),
        ("venue" = Option<String>, Query, description = "Its venue (default: the token's, else the default venue)"),
    ),
    responses(
        (status = 200, description = "The tap", body = OneTap),
        (status = 400, description = "The id is not a tap id", body = ErrorBody),
        (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 403, description = "This token may not read", body = ErrorBody),
        (status = 404, description = "The tap has no keg, no pour and no settings", body = ErrorBody),
    )
)]
pub fn tap(
    state: &AppState,
    id: &str,
    raw_query: &str,
    who: &Option<Identity>,
) -> Result<Response, ApiError> {
    let tap = tap_named(state, id, raw_query, who, false)?;
    let tap = tap_view(state, &tap).ok_or_else(|| {
        ApiError::NotFound(format!(
            "tap {} has no keg, no pour and no settings",
            tap.tap_id
        ))
    })?;
    Ok(json_with(&OneTap { tap }, StatusCode::OK))
}

/// Forget a tap
///
/// A tap with no keg on and no stored pours (one a mistyped tap id made, say) leaves the
/// list, its settings with it, until it pours again.
#[utoipa::path(
    delete, path = "/api/taps/{tapId}", tag = "kegs",
    params(
        ("tapId" = u32, Path, description = "Tap id"),
        ("venue" = Option<String>, Query, description = "Its venue (default: the token's, else the default venue)"),
    ),
    responses(
        (status = 204, description = "Forgotten"),
        (status = 400, description = "The id is not a tap id", body = ErrorBody),
        (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 403, description = "Only admin tokens may change taps", body = ErrorBody),
        (status = 404, description = "No such tap, or no such venue", body = ErrorBody),
        (status = 409, description = "It has a keg on, or stored pours", body = ErrorBody),
        (status = 503, description = "The store cannot write", body = ErrorBody),
    )
)]
pub async fn forget_tap(
    state: &AppState,
    id: &str,
    raw_query: &str,
    headers: &BodyHeaders,
    who: &Option<Identity>,
) -> Result<Response, ApiError> {
    let tap = tap_named(state, id, raw_query, who, true)?;
    let op = KegOp::ForgetTap {
        venue: stored(state, &tap.venue),
        tap_id: tap.tap_id,
        at: Timestamp::now(),
    };
    logged(state, headers, op).await?;
    Ok(warp::reply::with_status(warp::reply(), StatusCode::NO_CONTENT).into_response())
}

/// Set a tap's name and low level
#[utoipa::path(
    patch, path = "/api/taps/{tapId}", tag = "kegs",
    params(
        ("tapId" = u32, Path, description = "Tap id"),
        ("venue" = Option<String>, Query, description = "Its venue (default: the token's, else the default venue)"),
    ),
    request_body = TapSettings,
    responses(
        (status = 200, description = "The tap as set", body = OneTap),
        (status = 400, description = "The id is not a tap id, or the body not JSON", body = ErrorBody),
        (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 403, description = "Only admin tokens may change taps, and a token confined to a venue only its own", body = ErrorBody),
        (status = 404, description = "No such venue", body = ErrorBody),
        (status = 409, description = "The Idempotency-Key was used with another request", body = ErrorBody),
        (status = 413, description = "The body is over 16 KiB", body = ErrorBody),
        (status = 422, description = "A field is wrong, or none is given", body = ErrorBody),
        (status = 503, description = "The store cannot write", body = ErrorBody),
    )
)]
pub async fn set_tap(
    state: &AppState,
    id: &str,
    raw_query: &str,
    headers: &BodyHeaders,
    body: Result<bytes::Bytes, ApiError>,
    who: &Option<Identity>,
) -> Result<Response, ApiError> {
    let tap = tap_named(state, id, raw_query, who, true)?;
    let fields = object(headers, body)?;
    let name = match fields.get("name") {
        None => Change::Keep,
        Some(Value::Null) => Change::Clear,
        Some(value) => Change::To(label("name", value)?),
    };
    let low_pct = match fields.get("lowPercent") {
        None => Change::Keep,
        Some(Value::Null) => Change::Clear,
        Some(value) => Change::To(
            value
                .as_f64()
                .filter(|pct| (0.0..=100.0).contains(pct))
                .ok_or_else(|| invalid("lowPercent must be a number from 0 to 100, or null"))?,
        ),
    };
    if name == Change::Keep && low_pct == Change::Keep {
        return Err(invalid("give name or lowPercent"));
    }
    let op = KegOp::TapSettings {
        venue: stored(state, &tap.venue),
        tap_id: tap.tap_id,
        name,
        low_pct,
        at: Timestamp::now(),
    };
    logged(state, headers, op).await?;
    let tap = tap_view(state, &tap).ok_or_else(|| {
        ApiError::Internal(format!("tap {} was set but is not known", tap.tap_id))
    })?;
    Ok(json_with(&OneTap { tap }, StatusCode::OK))
}

/// A tap's line cleaning, started or stopped.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // documents the body; the handler reads the JSON itself
pub struct Cleaning {
    /// True: the line is being cleaned from now; its pours are water. False: it is done.
    cleaning: bool,
}

/// Start or stop cleaning a tap's line
///
/// Cleaning pushes water through the meter. While it lasts, the tap's pours are flagged
/// `cleaning`: they draw no keg, are left out of the history's and the variance's litres
/// and of alerts, and are kept and listed like any pour.
#[utoipa::path(
    post, path = "/api/taps/{tapId}/cleaning", tag = "kegs",
    params(
        ("tapId" = u32, Path, description = "Tap id"),
        ("venue" = Option<String>, Query, description = "Its venue (default: the token's, else the default venue)"),
    ),
    request_body = Cleaning,
    responses(
        (status = 200, description = "The tap, `cleaning` shown while true", body = OneTap),
        (status = 400, description = "The id is not a tap id, or the body not JSON", body = ErrorBody),
        (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 403, description = "Only admin tokens may clean taps, and a token confined to a venue only its own", body = ErrorBody),
        (status = 404, description = "No such venue, or (to stop) no such tap", body = ErrorBody),
        (status = 413, description = "The body is over 16 KiB", body = ErrorBody),
        (status = 422, description = "`cleaning` is not a boolean, or another field is given", body = ErrorBody),
        (status = 503, description = "The store cannot write", body = ErrorBody),
    )
)]
pub async fn cleaning(
    state: &AppState,
    id: &str,
    raw_query: &str,
    headers: &BodyHeaders,
    body: Result<bytes::Bytes, ApiError>,
    who: &Option<Identity>,
) -> Result<Response, ApiError> {
    let tap = tap_named(state, id, raw_query, who, true)?;
    let fields = object(headers, body)?;
    let unknown = unknown_fields(&fields, &["cleaning"]);
    if !unknown.is_empty() {
        return Err(invalid(format!("unknown fields: {}", unknown.join(", "))));
    }
    let on = fields
        .get("cleaning")
        .and_then(Value::as_bool)
        .ok_or_else(|| invalid("cleaning must be true or false"))?;
    // Stopping is for a tap that is known; starting makes one known, as a pour does.
    if !on && tap_view(state, &tap).is_none() {
        return Err(ApiError::NotFound(format!("no tap {}", tap.tap_id)));
    }
    let op = KegOp::Cleaning {
        venue: stored(state, &tap.venue),
        tap_id: tap.tap_id,
        on,
        at: Timestamp::now(),
    };
    logged(state, headers, op).await?;
    let tap = tap_view(state, &tap).ok_or_else(|| {
        ApiError::Internal(format!("tap {} was cleaned but is not known", tap.tap_id))
    })?;
    Ok(json_with(&OneTap { tap }, StatusCode::OK))
}
