//! Handlers for pours (`/api/beers`), the glass list and the report.

use serde::Serialize;
use warp::Reply as _;
use warp::http::{StatusCode, header};
use warp::reply::Response;

use super::csv::{self, Format, Rows};
use super::error::{ApiError, ErrorBody};
use super::gate::require;
use super::reply::json_with;
use super::request::{
    BodyHeaders, glass_param, page_param, page_size_param, tap_param, whole_number,
};
use super::scope::{Scope, venue_param};
use super::state::AppState;
use crate::auth::{Identity, Need};
use crate::metrics;
use crate::pour::{Flag, Pour, Timestamp};
use crate::store::{Inserted, ListQuery, Start};

const DEFAULT_PAGE_SIZE: usize = 50;

/// One pour.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = PourResponse)]
pub struct One<'a> {
    #[schema(value_type = Pour)]
    beer: &'a Pour,
}

/// A page of pours.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = PourList)]
pub struct List {
    /// In id order.
    beers: Vec<Pour>,
    page: usize,
    page_size: usize,
    /// Every pour that matches the filters, wherever the page starts.
    total: u64,
}

/// The body of `POST /api/beers`. (Parsed field by field by `parse_new_pour`; a test keeps
/// this schema and that parser in agreement.)
#[derive(Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"tapId": 3, "volume": 500}))]
// Only a schema: the handler never builds one.
#[cfg_attr(not(test), allow(dead_code))]
pub struct PourRequest {
    /// The tap.
    pub tap_id: u32,
    /// Volume in ml; classified by the glass catalogue.
    #[schema(minimum = 0)]
    pub volume: f64,
    /// When the device poured (RFC 3339); default: when the server received it.
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
}

/// Store a pour
///
/// 201 with the stored pour and its `Location`; 200 with the original pour for a retry
/// under the same `Idempotency-Key`, 409 if the retry's body differs.
#[utoipa::path(
    post, path = "/api/beers", tag = "pours",
    request_body(content = PourRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "Stored (on disk before this answer)", body = One,
         headers(("Location" = String, description = "/api/beers/{id}"))),
        (status = 200, description = "A retry under the same Idempotency-Key: the original pour, nothing stored", body = One),
        (status = 400, description = "Not JSON, or not application/json", body = ErrorBody),
        (status = 401, description = "No or unknown token (with a tokens file)", body = ErrorBody),
        (status = 403, description = "This token may not pour for this tap", body = ErrorBody),
        (status = 404, description = "The token's venue does not exist (yet)", body = ErrorBody),
        (status = 409, description = "The Idempotency-Key was used with another body, or its pour was deleted since", body = ErrorBody),
        (status = 413, description = "Body over 16 KiB", body = ErrorBody),
        (status = 422, description = "A field is missing or wrong (a volume not above 0 or over the maximum; with --reject-unclassified, one no glass holds)", body = ErrorBody,
         example = json!({"status": 422, "message": "volume must be more than 0 and at most 5000 ml (got 9000 ml)"})),
        (status = 503, description = "The store cannot write", body = ErrorBody),
    )
)]
pub async fn create(
    state: &AppState,
    headers: &BodyHeaders,
    body: Result<bytes::Bytes, ApiError>,
    who: Option<Identity>,
    venue: Option<&str>,
) -> Result<Response, ApiError> {
    let answer = store_pour(state, headers, body, who, venue).await;
    match &answer {
        Ok((pour, StatusCode::CREATED)) => {
            metrics::pour_accepted(&pour.glass, &pour.venue, pour.tap_id);
            for flag in pour.flags.iter() {
                metrics::pour_flagged(flag as usize, flag.name());
            }
        }
        Ok(_) => metrics::idempotent_replay(),
        Err(e) => metrics::pour_rejected(match e {
            ApiError::BadRequest(_) => "malformed",
            ApiError::PayloadTooLarge { .. } => "too_large",
            ApiError::Unprocessable(_) => "invalid",
            ApiError::Conflict(_) => "conflict",
            ApiError::Unauthorized(_) | ApiError::Forbidden(_) | ApiError::NotFound(_) => {
                "forbidden"
            }
            ApiError::TooManyRequests { .. } => "rate_limited",
            _ => "unavailable",
        }),
    }
    let (pour, status) = answer?;
    let mut response = json_with(&One { beer: &pour }, status);
    let location = header::HeaderValue::from_str(&format!("/api/beers/{}", pour.id))
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    response.headers_mut().insert(header::LOCATION, location);
    Ok(response)
}

/// Store a pour in a venue
///
/// `POST /api/beers`, with the venue in the path rather than from the token: for devices
/// of other venues than the default on a server without tokens. A token confined to
/// another venue is refused.
#[utoipa::path(
    post, path = "/api/venues/{id}/beers", tag = "pours",
    params(("id" = String, Path, description = "Venue id")),
    request_body(content = PourRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "Stored (on disk before this answer)", body = One,
         headers(("Location" = String, description = "/api/beers/{id}"))),
        (status = 200, description = "A retry under the same Idempotency-Key: the original pour, nothing stored", body = One),
        (status = 400, description = "Not JSON, or not application/json", body = ErrorBody),
        (status = 401, description = "No or unknown token (with a tokens file)", body = ErrorBody),
        (status = 403, description = "This token may not pour for this venue or tap", body = ErrorBody),
        (status = 404, description = "No such venue", body = ErrorBody),
        (status = 409, description = "The Idempotency-Key was used with another body, or its pour was deleted since", body = ErrorBody),
        (status = 413, description = "Body over 16 KiB", body = ErrorBody),
        (status = 422, description = "A field is missing or wrong", body = ErrorBody),
        (status = 503, description = "The store cannot write", body = ErrorBody),
    )
)]
#[allow(dead_code)] // Only a document: `create` serves it.
fn create_in_venue() {}

async fn store_pour(
    state: &AppState,
    headers: &BodyHeaders,
    body: Result<bytes::Bytes, ApiError>,
    who: Option<Identity>,
    venue: Option<&str>,
) -> Result<(Pour, StatusCode), ApiError> {
    headers.require_json()?;
    let key = headers.idempotency_key()?;
    let body = body?;
    let venue = Scope::of(state, &who).write(state, venue)?;
    let new_pour = state.pouring.judge(&body, None, venue, Timestamp::now())?;
    require(&who, Need::Pour(new_pour.tap_id))?;
    if let Some(identity) = &who {
        state.gate.limit_tap(identity, &new_pour.tap())?;
    }
    match state.store.insert(new_pour, key.clone()).await? {
        Inserted::Created(pour) => Ok((pour, StatusCode::CREATED)),
        // A 2xx naming a pour that answers 404 would contradict itself: the device is told
        // its pour arrived, and that it is gone.
        Inserted::Deleted(id) => Err(ApiError::Conflict(format!(
            "Idempotency-Key {:?} stored pour {id} before, which has been deleted since; nothing was stored",
            key.unwrap_or_default()
        ))),
        Inserted::Replayed(pour) => Ok((pour, StatusCode::OK)),
        Inserted::Conflict => Err(ApiError::Conflict(format!(
            "Idempotency-Key {:?} was already used with a different body",
            key.unwrap_or_default()
        ))),
    }
}

/// List pours
///
/// A page of pours in id order, with the total of all matches.
#[utoipa::path(
    get, path = "/api/beers", tag = "pours",
    params(
        ("venue" = Option<String>, Query, description = "Only this venue's pours"),
        ("page" = Option<u64>, Query, minimum = 1, description = "Page number from 1 (default 1)"),
        ("page_size" = Option<u64>, Query, minimum = 1, maximum = 1000, description = "Pours per page (default 50)"),
        ("after" = Option<u64>, Query, description = "Cursor: pours with an id above this one"),
        ("type" = Option<String>, Query, description = "Only this glass (or `unclassified`)"),
        ("flag" = Option<Flag>, Query, description = "Only pours with this flag"),
        ("tapId" = Option<u32>, Query, description = "Only this tap"),
        ("from" = Option<String>, Query, format = DateTime, description = "Pour timestamp at or after"),
        ("to" = Option<String>, Query, format = DateTime, description = "Pour timestamp at or before"),
        ("format" = Option<csv::ListFormat>, Query, description = "`json` (default) or `csv` (as `Accept: text/csv`)"),
    ),
    responses(
        (status = 200, description = "A page (empty past the end); as CSV with `Accept: text/csv` or `format=csv`",
         content((List = "application/json"), (String = "text/csv"))),
        (status = 400, description = "A bad parameter value", body = ErrorBody),
        (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 403, description = "This token may not read, or not that venue", body = ErrorBody),
        (status = 404, description = "No such venue", body = ErrorBody),
        (status = 422, description = "Unknown glass type or flag", body = ErrorBody),
    )
)]
pub async fn list(
    state: &AppState,
    raw_query: &str,
    who: &Option<Identity>,
    headers: &warp::http::HeaderMap,
) -> Result<Response, ApiError> {
    let format = csv::format(headers, raw_query, false)?;
    let (mut query, page) = parse_list_query(state, raw_query)?;
    query.venue = Scope::of(state, who).read(state, venue_param(raw_query).as_deref())?;
    let found = state.store.list(&query).await?;
    if format == Format::Csv {
        let mut rows = Rows::new().header(csv::POUR_COLUMNS);
        let mut zones = csv::Zones::new();
        for pour in &found.pours {
            csv::pour_row(&mut rows, pour, zone_of(state, &mut zones, &pour.venue));
        }
        return Ok(rows.into_response());
    }
    Ok(json_with(
        &List {
            beers: found.pours,
            page,
            page_size: query.limit,
            total: found.total,
        },
        StatusCode::OK,
    ))
}

/// The time zone of `venue`'s clock, looked up once per list.
pub(crate) fn zone_of(
    state: &AppState,
    zones: &mut csv::Zones,
    venue: &std::sync::Arc<str>,
) -> chrono_tz::Tz {
    *zones
        .entry(venue.clone())
        .or_insert_with(|| state.bar.venues(|v| v.rules(venue).clock.zone))
}

pub(crate) fn parse_list_query(
    state: &AppState,
    raw: &str,
) -> Result<(ListQuery, usize), ApiError> {
    let mut page: Option<usize> = None;
    let mut page_size = DEFAULT_PAGE_SIZE;
    let mut after: Option<u64> = None;
    let mut query = ListQuery::after(0, DEFAULT_PAGE_SIZE);
    query.count_total = true;
    let bad = |name: &str, rule: &str| ApiError::BadRequest(format!("{name} must be {rule}"));
    for (key, value) in form_urlencoded::parse(raw.as_bytes()) {
        match &*key {
            "page" => page = Some(page_param(&value)?),
            "page_size" | "pageSize" => page_size = page_size_param(&value)?,
            "after" => {
                after = Some(
                    whole_number(&value).ok_or_else(|| bad("after", "a pour id (0 to 2^63-1)"))?,
                )
            }
            "type" => query.glass = Some(glass_param(state, &value)?),
            "tapId" => query.tap_id = Some(tap_param(&value)?),
            "flag" => {
                query.flag = Some(Flag::parse(&value).ok_or_else(|| {
                    ApiError::Unprocessable(format!(
                        "unknown flag {value:?}; valid flags: {}",
                        Flag::names()
                    ))
                })?)
            }
            "from" => {
                query.from = Some(
                    Timestamp::parse(&value).ok_or_else(|| bad("from", "an RFC 3339 date-time"))?,
                )
            }
            "to" => {
                query.to = Some(
                    Timestamp::parse(&value).ok_or_else(|| bad("to", "an RFC 3339 date-time"))?,
                )
            }
            // Unknown parameters are ignored, as the prototype did.
            _ => {}
        }
    }
    query.limit = page_size;
    // A page counts from the cursor when both are given.
    query.start = Start {
        after: after.unwrap_or(0),
        offset: (page.unwrap_or(1) - 1).saturating_mul(page_size),
    };
    Ok((query, page.unwrap_or(1)))
}

/// A path id: digits only, else 400.
fn parse_id(text: &str) -> Result<u64, ApiError> {
    whole_number(text).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "pour id must be an integer from 0 to 2^63-1, not {text:?}"
        ))
    })
}

fn not_found(id: u64) -> ApiError {
    ApiError::NotFound(format!("no pour with id {id}"))
}

/// Read one pour
#[utoipa::path(
    get, path = "/api/beers/{id}", tag = "pours",
    params(("id" = u64, Path, description = "Pour id")),
    responses(
        (status = 200, description = "The pour", body = One),
        (status = 400, description = "The id is not a number", body = ErrorBody),
        (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 403, description = "This token may not read", body = ErrorBody),
        (status = 404, description = "No such pour", body = ErrorBody),
    )
)]
pub async fn show(
    state: &AppState,
    id: &str,
    who: &Option<Identity>,
) -> Result<Response, ApiError> {
    let pour = visible(state, parse_id(id)?, who).await?;
    Ok(json_with(&One { beer: &pour }, StatusCode::OK))
}

/// Pour `id`, if the caller sees it (404 otherwise, as for no pour).
async fn visible(state: &AppState, id: u64, who: &Option<Identity>) -> Result<Pour, ApiError> {
    let pour = state.store.get(id).await?.ok_or_else(|| not_found(id))?;
    let venue = pour.venue.clone();
    Scope::of(state, who).found(Some(&venue), pour, not_found(id))
}

/// Delete a pour
///
/// Subscribers are sent a `deleted` event.
#[utoipa::path(
    delete, path = "/api/beers/{id}", tag = "pours",
    params(("id" = u64, Path, description = "Pour id")),
    responses(
        (status = 204, description = "Deleted (on disk before this answer); subscribers get a deleted event"),
        (status = 400, description = "The id is not a number", body = ErrorBody),
        (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 403, description = "Only admin tokens may delete", body = ErrorBody),
        (status = 404, description = "No such pour", body = ErrorBody),
        (status = 503, description = "The store cannot write", body = ErrorBody),
    )
)]
pub async fn delete(
    state: &AppState,
    id: &str,
    who: &Option<Identity>,
) -> Result<Response, ApiError> {
    let id = parse_id(id)?;
    if Scope::of(state, who).confined().is_some() {
        visible(state, id, who).await?;
    }
    state.store.delete(id).await?.ok_or_else(|| not_found(id))?;
    Ok(warp::reply::with_status(warp::reply(), StatusCode::NO_CONTENT).into_response())
}

/// The glass catalogue.
#[derive(Serialize, utoipa::ToSchema)]
pub struct GlassList<'a> {
    /// Smallest first; bands are inclusive and matched first to last.
    #[schema(value_type = Vec<crate::glass::Glass>)]
    glasses: &'a [crate::glass::Glass],
}

/// The glass catalogue
#[utoipa::path(
    get, path = "/api/glasses", tag = "catalogue",
    responses(
        (status = 200, description = "The glass catalogue", body = GlassList),
        (status = 401, description = "No or unknown token", body = ErrorBody),
    )
)]
pub fn glasses(state: &AppState) -> Result<Response, ApiError> {
    Ok(warp::reply::json(&GlassList {
        glasses: state.pouring.catalogue.glasses(),
    })
    .into_response())
}

/// The current report
///
/// The chain's (every venue's), or one venue's with `venue`; a token confined to a venue
/// gets its venue's.
#[utoipa::path(
    get, path = "/api/report", tag = "pours",
    params(("venue" = Option<String>, Query, description = "This venue's report")),
    responses(
        (status = 200, description = "The current report, as pushed to subscribers", body = crate::report::Report),
        (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 403, description = "This token may not read, or not that venue", body = ErrorBody),
        (status = 404, description = "No such venue", body = ErrorBody),
    )
)]
pub fn report(
    state: &AppState,
    raw_query: &str,
    who: &Option<Identity>,
) -> Result<Response, ApiError> {
    let venue = Scope::of(state, who).read(state, venue_param(raw_query).as_deref())?;
    Ok(warp::reply::json(&state.bar.report(venue.as_deref())).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::glass::Catalogue;
    use crate::pour::parse_new_pour;

    #[test]
    fn the_documented_request_is_what_the_parser_accepts() {
        for request in [
            PourRequest {
                tap_id: 3,
                volume: 500.0,
                timestamp: None,
            },
            PourRequest {
                tap_id: u32::MAX,
                volume: 100.0,
                timestamp: Some("2026-11-22T21:04:05.123Z".into()),
            },
        ] {
            let body = serde_json::to_vec(&request).unwrap();
            let pour = parse_new_pour(
                &body,
                &Catalogue::default(),
                &Default::default(),
                Timestamp::now(),
                "main".into(),
            )
            .unwrap();
            assert_eq!((pour.tap_id, pour.volume), (request.tap_id, request.volume));
        }
    }
}
