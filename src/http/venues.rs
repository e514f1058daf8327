//! Handlers for venues (`/api/venues`): the bars of a chain.

use serde::Serialize;
use serde_json::{Map, Value};
use warp::http::{StatusCode, header};
use warp::reply::Response;

use super::error::{ApiError, ErrorBody};
use super::kegs::{label, logged, object, unknown_fields};
use super::reply::json_with;
use super::request::BodyHeaders;
use super::scope::Scope;
use super::state::AppState;
use crate::auth::Identity;
use crate::config::OpeningHours;
use crate::keg::KegOp;
use crate::pour::Timestamp;
use crate::venue::{
    Change, VenueChange, VenueRecord, VenueView, clock, parse_clock, parse_id, parse_timezone,
};

/// The longest quiet time a venue takes (s): a week.
const MAX_QUIET_SECS: u64 = 7 * 24 * 3600;

/// One venue.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = VenueResponse)]
pub struct OneVenue {
    venue: VenueView,
}

/// Every venue, by id.
#[derive(Serialize, utoipa::ToSchema)]
pub struct VenueList {
    venues: Vec<VenueView>,
}

/// The body of `POST /api/venues`: its id, name and time zone; the rest, left out, follow
/// the chain's settings (the flags).
#[derive(Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"id": "dock-street", "name": "Dock Street", "timezone": "America/New_York",
    "openingHours": "16:00-02:00", "businessDayStarts": "04:00"}))]
pub struct NewVenue {
    /// 1 to 40 lowercase letters, digits and hyphens; it names the venue in paths.
    pub id: String,
    /// A name for people, 1 to 100 characters.
    pub name: String,
    /// An IANA time zone name.
    pub timezone: String,
    /// `HH:MM-HH:MM` windows, comma-separated (a window may cross midnight); pours outside
    /// are flagged `afterHours`. Default: --opening-hours.
    #[schema(nullable = false)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opening_hours: Option<String>,
    /// `HH:MM`: when a business day starts. Default: 04:00.
    #[schema(nullable = false)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub business_day_starts: Option<String>,
    /// Default: --quiet-after.
    #[schema(nullable = false, minimum = 1, maximum = 604800)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quiet_after_seconds: Option<u64>,
    /// Default: --keg-low-percent.
    #[schema(nullable = false, minimum = 0, maximum = 100)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keg_low_percent: Option<f64>,
}

/// The body of `PATCH /api/venues/{id}`: a field left out stays as it is; `null` makes
/// a setting the chain's again (the flags'). At least one field.
#[derive(Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"openingHours": "12:00-01:00", "kegLowPercent": 20}))]
pub struct VenueSettings {
    /// A name for people, 1 to 100 characters.
    #[schema(nullable = false)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opening_hours: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub business_day_starts: Option<String>,
    #[schema(minimum = 1, maximum = 604800)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quiet_after_seconds: Option<u64>,
    #[schema(minimum = 0, maximum = 100)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keg_low_percent: Option<f64>,
}

/// The settings a venue's body may give, besides `id`.
pub(crate) const SETTINGS: [&str; 6] = [
    "name",
    "timezone",
    "openingHours",
    "businessDayStarts",
    "quietAfterSeconds",
    "kegLowPercent",
];

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::Unprocessable(message.into())
}

/// Refuses a field it does not know (`id` is known to a new venue).
fn only_known(fields: &Map<String, Value>, id: bool) -> Result<(), ApiError> {
    let names: Vec<&str> = id.then_some("id").into_iter().chain(SETTINGS).collect();
    let unknown = unknown_fields(fields, &names);
    match unknown.is_empty() {
        true => Ok(()),
        false => Err(invalid(format!(
            "unknown field {}: a venue takes {}{}",
            unknown.join(", "),
            if id { "id, " } else { "" },
            SETTINGS.join(", ")
        ))),
    }
}

/// A setting's change from its field: left out, keep; null, clear; else `parse` it.
fn change<T>(
    fields: &Map<String, Value>,
    name: &str,
    parse: impl FnOnce(&Value) -> Result<T, ApiError>,
) -> Result<Change<T>, ApiError> {
    match fields.get(name) {
        None => Ok(Change::Keep),
        Some(Value::Null) => Ok(Change::Clear),
        Some(value) => parse(value).map(Change::To),
    }
}

fn text<'v>(name: &str, value: &'v Value, what: &str) -> Result<&'v str, ApiError> {
    value
        .as_str()
        .ok_or_else(|| invalid(format!("{name} must be {what}")))
}

/// The settings of a body, each as the log keeps it (time zones and hours written the
/// one way).
fn settings(fields: &Map<String, Value>) -> Result<Settings, ApiError> {
    Ok(Settings {
        name: change(fields, "name", |v| label("name", v))?,
        timezone: change(fields, "timezone", |v| {
            let name = text("timezone", v, "an IANA time zone name")?;
            Ok(parse_timezone(name).map_err(invalid)?.name().to_owned())
        })?,
        opening_hours: change(fields, "openingHours", |v| {
            let hours = text("openingHours", v, "HH:MM-HH:MM windows, comma-separated")?;
            Ok(OpeningHours::parse(hours)
                .map_err(|e| invalid(format!("openingHours: {e}")))?
                .to_string())
        })?,
        business_day_starts: change(fields, "businessDayStarts", |v| {
            let at = text("businessDayStarts", v, "a time of day, HH:MM")?;
            Ok(clock(
                parse_clock(at).map_err(|e| invalid(format!("businessDayStarts: {e}")))?,
            ))
        })?,
        quiet_after_secs: change(fields, "quietAfterSeconds", |v| {
            // 600.0 is a whole number too.
            let whole = v.as_f64().filter(|s| s.fract() == 0.0 && *s >= 0.0);
            v.as_u64()
                .or(whole.map(|s| s as u64))
                .filter(|s| (1..=MAX_QUIET_SECS).contains(s))
                .ok_or_else(|| {
                    invalid(format!(
                        "quietAfterSeconds must be a whole number from 1 to {MAX_QUIET_SECS}"
                    ))
                })
        })?,
        keg_low_percent: change(fields, "kegLowPercent", |v| {
            v.as_f64()
                .filter(|pct| (0.0..=100.0).contains(pct))
                .ok_or_else(|| invalid("kegLowPercent must be a number from 0 to 100"))
        })?,
    })
}

struct Settings {
    name: Change<String>,
    timezone: Change<String>,
    opening_hours: Change<String>,
    business_day_starts: Change<String>,
    quiet_after_secs: Change<u64>,
    keg_low_percent: Change<f64>,
}

/// A venue id from the path, else 400.
fn venue_param(text: &str) -> Result<String, ApiError> {
    parse_id(text).map_err(ApiError::BadRequest)
}

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("no venue {id:?}"))
}

/// The venue as it is now, once an operation on it is published here.
fn view(state: &AppState, id: &str) -> Result<VenueView, ApiError> {
    state
        .bar
        .venues(|v| v.get(id))
        .ok_or_else(|| ApiError::Internal(format!("venue {id} was logged but is not known")))
}

/// List venues
///
/// Every venue, by id, the default one (pours that name none are its) among them.
#[utoipa::path(
    get, path = "/api/venues", tag = "venues",
    responses(
        (status = 200, description = "Every venue, by id", body = VenueList),
        (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 403, description = "This token may not read", body = ErrorBody),
    )
)]
pub fn list(state: &AppState, who: &Option<Identity>) -> Response {
    let scope = Scope::of(state, who);
    let mut venues = state.bar.venues(|v| v.list());
    venues.retain(|v| scope.sees(&v.id));
    json_with(&VenueList { venues }, StatusCode::OK)
}

/// Show a venue
#[utoipa::path(
    get, path = "/api/venues/{id}", tag = "venues",
    params(("id" = String, Path, description = "Venue id")),
    responses(
        (status = 200, description = "The venue", body = OneVenue),
        (status = 400, description = "Not a venue id", body = ErrorBody),
        (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 403, description = "This token may not read", body = ErrorBody),
        (status = 404, description = "No such venue", body = ErrorBody),
    )
)]
pub fn show(state: &AppState, id: &str, who: &Option<Identity>) -> Result<Response, ApiError> {
    let id = venue_param(id)?;
    let venue = state
        .bar
        .venues(|v| v.get(&id))
        .ok_or_else(|| not_found(&id))?;
    let venue = Scope::of(state, who).found(Some(&id), venue, not_found(&id))?;
    Ok(json_with(&OneVenue { venue }, StatusCode::OK))
}

/// Add a venue
///
/// A new bar of the chain, on every server alike.
#[utoipa::path(
    post, path = "/api/venues", tag = "venues",
    request_body = NewVenue,
    responses(
        (status = 201, description = "Made; Location names it", body = OneVenue),
        (status = 200, description = "A retry under the same Idempotency-Key: the venue as it is now", body = OneVenue),
        (status = 400, description = "Not JSON", body = ErrorBody),
        (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 403, description = "Only admin tokens may change venues", body = ErrorBody),
        (status = 409, description = "A venue has this id, or the Idempotency-Key was used with another request", body = ErrorBody),
        (status = 413, description = "The body is over 16 KiB", body = ErrorBody),
        (status = 422, description = "A field is missing, unknown or wrong; the message names it", body = ErrorBody),
        (status = 503, description = "The store cannot write", body = ErrorBody),
    )
)]
pub async fn create(
    state: &AppState,
    headers: &BodyHeaders,
    body: Result<bytes::Bytes, ApiError>,
) -> Result<Response, ApiError> {
    let fields = object(headers, body)?;
    only_known(&fields, true)?;
    let id = match fields.get("id") {
        Some(Value::String(id)) => parse_id(id).map_err(invalid)?,
        _ => return Err(invalid("id is required: a venue id such as dock-street")),
    };
    for required in ["name", "timezone"] {
        if fields.get(required).is_none_or(Value::is_null) {
            return Err(invalid(format!("{required} is required")));
        }
    }
    let set = settings(&fields)?;
    let venue = VenueRecord {
        id: id.clone(),
        name: set.name.into_set(),
        timezone: set.timezone.into_set(),
        opening_hours: set.opening_hours.into_set(),
        business_day_starts: set.business_day_starts.into_set(),
        quiet_after_secs: set.quiet_after_secs.into_set(),
        keg_low_percent: set.keg_low_percent.into_set(),
    };
    let op = KegOp::AddVenue {
        venue,
        at: Timestamp::now(),
    };
    let (_, new) = logged(state, headers, op).await?;
    let venue = view(state, &id)?;
    let location = header::HeaderValue::from_str(&format!("/api/venues/{id}"))
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let status = if new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let mut response = json_with(&OneVenue { venue }, status);
    response.headers_mut().insert(header::LOCATION, location);
    Ok(response)
}

/// Change a venue's settings
///
/// A setting set to `null` is the chain's again (the flags'). The default venue's
/// settings are the flags' until changed here.
#[utoipa::path(
    patch, path = "/api/venues/{id}", tag = "venues",
    params(("id" = String, Path, description = "Venue id")),
    request_body = VenueSettings,
    responses(
        (status = 200, description = "The venue as set", body = OneVenue),
        (status = 400, description = "Not a venue id, or the body not JSON", body = ErrorBody),
        (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 403, description = "Only admin tokens may change venues", body = ErrorBody),
        (status = 404, description = "No such venue", body = ErrorBody),
        (status = 409, description = "A setting of the default venue, which the flags set; or the Idempotency-Key was used with another request", body = ErrorBody),
        (status = 413, description = "The body is over 16 KiB", body = ErrorBody),
        (status = 422, description = "A field is unknown or wrong, or none is given", body = ErrorBody),
        (status = 503, description = "The store cannot write", body = ErrorBody),
    )
)]
pub async fn change_settings(
    state: &AppState,
    id: &str,
    headers: &BodyHeaders,
    body: Result<bytes::Bytes, ApiError>,
) -> Result<Response, ApiError> {
    let id = venue_param(id)?;
    let fields = object(headers, body)?;
    only_known(&fields, false)?;
    if fields.get("name").is_some_and(Value::is_null) {
        return Err(invalid("name cannot be cleared; give a new one"));
    }
    let set = settings(&fields)?;
    let change = VenueChange {
        id: id.clone(),
        name: set.name,
        timezone: set.timezone,
        opening_hours: set.opening_hours,
        business_day_starts: set.business_day_starts,
        quiet_after_secs: set.quiet_after_secs,
        keg_low_percent: set.keg_low_percent,
    };
    let nothing = [
        change.name.is_keep(),
        change.timezone.is_keep(),
        change.opening_hours.is_keep(),
        change.business_day_starts.is_keep(),
        change.quiet_after_secs.is_keep(),
        change.keg_low_percent.is_keep(),
    ];
    if nothing.iter().all(|keep| *keep) {
        return Err(invalid(format!("give one of {}", SETTINGS.join(", "))));
    }
    let op = KegOp::ChangeVenue {
        change,
        at: Timestamp::now(),
    };
    logged(state, headers, op).await?;
    let venue = view(state, &id)?;
    Ok(json_with(&OneVenue { venue }, StatusCode::OK))
}
