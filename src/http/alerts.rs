//! Handlers for alerts (`/api/alerts`).

use serde::Serialize;
use serde_json::Value;
use warp::http::StatusCode;
use warp::reply::Response;

use super::error::{ApiError, ErrorBody};
use super::kegs::{logged, object};
use super::reply::json_with;
use super::request::{BodyHeaders, id_param, page_param, page_size_param, tap_param};
use super::scope::{Scope, venue_param};
use super::state::AppState;
use crate::alert::{Alert, AlertFilter, AlertKind, AlertState, ServerAlerts};
use crate::auth::Identity;
use crate::keg::KegOp;
use crate::pour::Timestamp;

const DEFAULT_PAGE_SIZE: usize = 50;
/// The longest note or name an acknowledgement takes.
const MAX_NOTE: usize = 500;

/// One alert.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = AlertResponse)]
pub struct OneAlert {
    alert: Alert,
}

/// A page of alerts, newest first.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertList {
    alerts: Vec<Alert>,
    page: usize,
    page_size: usize,
    /// Every alert that matches the filters.
    total: u64,
}

/// The body of `POST /api/alerts/{id}/ack`; it may be left out.
#[derive(Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"note": "Changing the keg after this round"}))]
pub struct Acknowledgement {
    /// What is being done about it, up to 500 characters (line breaks allowed, no other
    /// control characters). Who acknowledged is the token's name.
    #[schema(nullable = false, min_length = 1, max_length = 500)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// What a note must match, as the OpenAPI document says it: not all blank, no control
/// characters but line breaks.
pub const NOTE_PATTERN: &str = r"^[^\u0000-\u0009\u000b-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u0009\u000b-\u001f\u007f-\u009f]*$";

fn bad(name: &str, rule: &str) -> ApiError {
    ApiError::BadRequest(format!("{name} must be {rule}"))
}

/// List alerts
#[utoipa::path(
    get, path = "/api/alerts", tag = "alerts",
    params(
        ("venue" = Option<String>, Query, description = "Only this venue's (and the chain's: a server's, a webhook's)"),
        ("state" = Option<AlertState>, Query, description = "`open`, `acknowledged` or `resolved`"),
        ("tapId" = Option<u32>, Query, description = "Only alerts about this tap"),
        ("kind" = Option<AlertKind>, Query, description = "Only this kind (`kegLow`, `kegEmpty`, `tapQuiet`, `flaggedPours`, `afterHours`, and this server's own `storeFailing`, `diskLow`)"),
        ("page" = Option<u64>, Query, minimum = 1, description = "1-based page number (default 1)"),
        ("page_size" = Option<u64>, Query, minimum = 1, maximum = 1000, description = "Alerts per page (default 50)"),
    ),
    responses(
        (status = 200, description = "A page of alerts: this server's own first, then the bar's, newest first", body = AlertList),
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
) -> Result<Response, ApiError> {
    let mut filter = AlertFilter {
        venue: Scope::of(state, who).read(state, venue_param(raw_query).as_deref())?,
        ..AlertFilter::default()
    };
    let (mut page, mut page_size) = (1usize, DEFAULT_PAGE_SIZE);
    for (key, value) in form_urlencoded::parse(raw_query.as_bytes()) {
        match &*key {
            "state" => {
                filter.state = Some(
                    AlertState::parse(&value)
                        .ok_or_else(|| bad("state", "open, acknowledged or resolved"))?,
                )
            }
            "tapId" => filter.tap_id = Some(tap_param(&value)?),
            "kind" => {
                let kinds: Vec<&str> = AlertKind::ALL.iter().map(|k| k.name()).collect();
                filter.kind = Some(
                    AlertKind::parse(&value)
                        .ok_or_else(|| bad("kind", &format!("one of {}", kinds.join(", "))))?,
                )
            }
            "page" => page = page_param(&value)?,
            "page_size" | "pageSize" => page_size = page_size_param(&value)?,
            _ => {}
        }
    }
    let skip = (page - 1).saturating_mul(page_size);
    // This server's own alerts first (they are about now, and few), then the bar's.
    let own: Vec<Alert> = state
        .feed
        .server_alerts(|a| a.list(&filter).cloned().collect());
    let (alerts, total) = state.bar.alerts(|alerts| {
        let mut total = 0u64;
        let mut page_of = Vec::new();
        for alert in own.iter().chain(alerts.list(&filter)) {
            if (total as usize) >= skip && page_of.len() < page_size {
                page_of.push(alert.read());
            }
            total += 1;
        }
        (page_of, total)
    });
    Ok(json_with(
        &AlertList {
            alerts,
            page,
            page_size,
            total,
        },
        StatusCode::OK,
    ))
}

fn alert_id(text: &str) -> Result<u64, ApiError> {
    id_param("alert", text)
}

fn not_found(id: u64) -> ApiError {
    ApiError::NotFound(format!("no alert with id {id}"))
}

/// Read one alert
#[utoipa::path(
    get, path = "/api/alerts/{id}", tag = "alerts",
    params(("id" = u64, Path, description = "Alert id")),
    responses(
        (status = 200, description = "The alert", body = OneAlert),
        (status = 400, description = "The id is not a number", body = ErrorBody),
        (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 403, description = "This token may not read", body = ErrorBody),
        (status = 404, description = "No such alert", body = ErrorBody),
    )
)]
pub fn show(state: &AppState, id: &str, who: &Option<Identity>) -> Result<Response, ApiError> {
    let alert = visible(state, alert_id(id)?, who)?;
    Ok(json_with(&OneAlert { alert }, StatusCode::OK))
}

/// Alert `id`, if the caller sees it (404 otherwise, as for no alert).
fn visible(state: &AppState, id: u64, who: &Option<Identity>) -> Result<Alert, ApiError> {
    let alert = if id >= ServerAlerts::FIRST_ID {
        state.feed.server_alerts(|a| a.get(id).cloned())
    } else {
        state.bar.alerts(|a| a.get(id))
    };
    let alert = alert.ok_or_else(|| not_found(id))?;
    let venue = alert.venue.clone();
    Scope::of(state, who).found(venue.as_deref(), alert, not_found(id))
}

/// A note: 1 to 500 characters, not all blank, no control characters but line breaks (as
/// [`NOTE_PATTERN`] says); kept trimmed.
fn words(field: &str, value: &Value) -> Result<String, ApiError> {
    let rule = || {
        ApiError::Unprocessable(format!(
            "{field} must be text of 1 to {MAX_NOTE} characters, without control characters"
        ))
    };
    let text = value.as_str().ok_or_else(rule)?;
    let control = text
        .chars()
        .any(|c| c != '\n' && matches!(c, '\0'..='\x1f' | '\x7f'..='\u{9f}'));
    if text.chars().count() > MAX_NOTE || control || text.trim().is_empty() {
        return Err(rule());
    }
    Ok(text.trim().to_owned())
}

/// Acknowledge an alert
///
/// Someone has seen it: it stays listed until it resolves, and no webhook sends it again.
/// Subscribers hear `acknowledged`.
#[utoipa::path(
    post, path = "/api/alerts/{id}/ack", tag = "alerts",
    params(("id" = u64, Path, description = "Alert id")),
    request_body(content = Option<Acknowledgement>, description = "Optional: a note"),
    responses(
        (status = 200, description = "The alert, acknowledged (a retry under the same Idempotency-Key answers the same)", body = OneAlert),
        (status = 400, description = "The id is not a number, or the body not JSON", body = ErrorBody),
        (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 403, description = "Only admin tokens may acknowledge", body = ErrorBody),
        (status = 404, description = "No such alert", body = ErrorBody),
        (status = 409, description = "It is acknowledged or resolved already, or the Idempotency-Key was used with another request", body = ErrorBody),
        (status = 413, description = "The body is over 16 KiB", body = ErrorBody),
        (status = 422, description = "A field is wrong; the message names it", body = ErrorBody),
        (status = 503, description = "The store cannot write", body = ErrorBody),
    )
)]
pub async fn acknowledge(
    state: &AppState,
    id: &str,
    headers: &BodyHeaders,
    body: Result<bytes::Bytes, ApiError>,
    who: Option<Identity>,
) -> Result<Response, ApiError> {
    let alert_id = alert_id(id)?;
    visible(state, alert_id, &who)?;
    // No body, or JSON null, is an acknowledgement without a note.
    let fields = match &body {
        Ok(bytes) if bytes.is_empty() => serde_json::Map::new(),
        Ok(bytes) if serde_json::from_slice::<Value>(bytes).is_ok_and(|v| v.is_null()) => {
            headers.require_json()?;
            serde_json::Map::new()
        }
        _ => object(headers, body)?,
    };
    let note = fields.get("note").map(|v| words("note", v)).transpose()?;
    let by = match &who {
        Some(Identity::Token(credential)) => Some(credential.name.clone()),
        _ => None,
    };
    if alert_id >= ServerAlerts::FIRST_ID {
        // This server's own: in its memory, not the log (the store may be what is failing).
        let alert = state
            .feed
            .acknowledge(alert_id, by, note)
            .map_err(|e| match e {
                crate::keg::KegError::NoAlert(id) => not_found(id),
                e => ApiError::Conflict(e.to_string()),
            })?;
        return Ok(json_with(&OneAlert { alert }, StatusCode::OK));
    }
    let op = KegOp::AckAlert {
        alert_id,
        by,
        note,
        at: Timestamp::now(),
    };
    let (id, _) = logged(state, headers, op).await?;
    let alert = state
        .bar
        .alerts(|a| a.get(id))
        .ok_or_else(|| ApiError::Internal(format!("alert {id} was logged but is not known")))?;
    Ok(json_with(&OneAlert { alert }, StatusCode::OK))
}
