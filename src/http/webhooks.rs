//! Handlers for webhooks (`/api/webhooks`): made, read, changed, removed, tested, and
//! their deliveries listed. Admin only: a webhook's URL may hold a token of its own.

use serde::Serialize;
use serde_json::{Map, Value};
use warp::Reply as _;
use warp::http::{StatusCode, header};
use warp::reply::Response;

use super::error::{ApiError, ErrorBody};
use super::kegs::{object, unknown_fields};
use super::reply::json_with;
use super::request::{BodyHeaders, id_param, page_param, page_size_param};
use super::state::AppState;
use crate::pour::Timestamp;
use crate::webhook::{self, Attempt, EventType, Format, Hook, HookChange, NewHook, Secret};

/// The longest description.
const MAX_DESCRIPTION: usize = 200;
/// Webhooks a server keeps at most: each costs a look at every event.
const MAX_WEBHOOKS: usize = 100;
const DEFAULT_PAGE_SIZE: usize = 50;

/// A webhook as the API shows it: never its secret, only the secret's first characters.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookView {
    id: u64,
    url: String,
    /// The venue whose events it sends; null: every venue's (and each server's own alerts).
    venue: Option<String>,
    events: Vec<EventType>,
    description: String,
    format: Format,
    /// Off: nothing is sent (by a `PATCH`, or by the server: see `disabledReason`).
    enabled: bool,
    /// Why the server turned it off (the receiver answered 410, or every attempt failed
    /// for a day).
    disabled_reason: Option<String>,
    /// Enough of the secret to tell which one the receiver has: `whsec_AbCd…`.
    secret_prefix: String,
    #[schema(value_type = String, format = DateTime)]
    created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    updated_at: Timestamp,
    /// Since when every attempt failed (none since the last delivery).
    #[schema(value_type = Option<String>, format = DateTime)]
    failing_since: Option<Timestamp>,
}

impl From<&Hook> for WebhookView {
    fn from(hook: &Hook) -> WebhookView {
        WebhookView {
            id: hook.id,
            url: hook.url.clone(),
            venue: hook.venue.clone(),
            events: hook.events.clone(),
            description: hook.description.clone(),
            format: hook.format,
            enabled: hook.enabled,
            disabled_reason: hook.disabled_reason.clone(),
            secret_prefix: hook.secret.prefix(),
            created_at: hook.created_at,
            updated_at: hook.updated_at,
            failing_since: hook.failing_since,
        }
    }
}

/// One webhook.
#[derive(Serialize, utoipa::ToSchema)]
pub struct OneWebhook {
    webhook: WebhookView,
}

/// A new webhook and its signing secret, shown this once.
#[derive(Serialize, utoipa::ToSchema)]
pub struct NewWebhook {
    webhook: WebhookView,
    /// `whsec_` and base64, as the Standard Webhooks specification writes it: give it to
    /// the receiver, which checks each message's `webhook-signature` with it.
    secret: String,
}

/// Every webhook, by id.
#[derive(Serialize, utoipa::ToSchema)]
pub struct WebhookList {
    webhooks: Vec<WebhookView>,
}

/// A test message, queued.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Queued {
    /// Its `webhook-id`: find it in the deliveries.
    message_id: String,
}

/// A webhook's attempts, newest first.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryList {
    deliveries: Vec<Attempt>,
    /// Messages waiting to be sent.
    pending: u64,
    page: usize,
    page_size: usize,
    /// Attempts kept (the last 500).
    total: u64,
}

/// The body of `POST /api/webhooks`.
#[derive(Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"url": "https://ntfy.sh/my-bar-alerts", "events": ["alert.opened"], "format": "ntfy", "description": "Manager's phone"}))]
pub struct WebhookRequest {
    /// Where to post: http or https, with a host, without a user name or password.
    #[schema(min_length = 1, max_length = 2000)]
    pub url: String,
    /// Only this venue's events (default: every venue's, and each server's own alerts).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, pattern = "^[a-z0-9-]{1,40}$")]
    pub venue: Option<String>,
    /// What to send (default: the three alert events).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, min_items = 1)]
    pub events: Option<Vec<EventType>>,
    /// For people: up to 200 characters.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(
        nullable = false,
        max_length = 200,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub description: Option<String>,
    /// `standard` (signed JSON, for programs; the default), `slack` (Slack or
    /// Mattermost), or `ntfy` (a push to a phone).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub format: Option<Format>,
}

/// The body of `PATCH /api/webhooks/{id}`: any of these.
#[derive(Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"enabled": true}))]
pub struct WebhookPatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, min_length = 1, max_length = 2000)]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, min_items = 1)]
    pub events: Option<Vec<EventType>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(
        nullable = false,
        max_length = 200,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub format: Option<Format>,
    /// Turn it off, or on again (which clears why the server turned it off; messages that
    /// waited are sent).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub enabled: Option<bool>,
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::Unprocessable(message.into())
}

fn not_found(id: u64) -> ApiError {
    ApiError::NotFound(format!("no webhook with id {id}"))
}

fn url(value: &Value) -> Result<String, ApiError> {
    let text = value
        .as_str()
        .ok_or_else(|| invalid("url must be text: an http or https URL"))?;
    webhook::check_url(text)
        .map(|_| text.to_owned())
        .map_err(invalid)
}

fn events(value: &Value) -> Result<Vec<EventType>, ApiError> {
    let names: Vec<&str> = EventType::SUBSCRIBABLE.iter().map(|e| e.name()).collect();
    let rule = || {
        invalid(format!(
            "events must be a list of at least one of {}",
            names.join(", ")
        ))
    };
    let list = value
        .as_array()
        .filter(|l| !l.is_empty())
        .ok_or_else(rule)?;
    let mut events = Vec::new();
    for item in list {
        let event = item
            .as_str()
            .and_then(EventType::parse)
            .filter(|e| *e != EventType::Ping)
            .ok_or_else(rule)?;
        if events.contains(&event) {
            return Err(invalid(format!("events names {} twice", event.name())));
        }
        events.push(event);
    }
    Ok(events)
}

fn description(value: &Value) -> Result<String, ApiError> {
    let rule = || {
        invalid(format!(
            "description must be text of at most {MAX_DESCRIPTION} characters, without control characters"
        ))
    };
    let text = value.as_str().ok_or_else(rule)?;
    if text.chars().count() > MAX_DESCRIPTION
        || text
            .chars()
            .any(|c| matches!(c, '\0'..='\x1f' | '\x7f'..='\u{9f}'))
    {
        return Err(rule());
    }
    Ok(text.trim().to_owned())
}

fn format(value: &Value) -> Result<Format, ApiError> {
    serde_json::from_value(value.clone())
        .map_err(|_| invalid("format must be standard, slack or ntfy"))
}

/// Refuses a field it does not know: a typo must not pass for a setting kept.
fn known(fields: &Map<String, Value>, names: &[&str]) -> Result<(), ApiError> {
    match unknown_fields(fields, names).first() {
        Some(other) => Err(invalid(format!(
            "{other} is not a webhook field (the fields are {})",
            names.join(", ")
        ))),
        None => Ok(()),
    }
}

fn webhook_id(text: &str) -> Result<u64, ApiError> {
    id_param("webhook", text)
}

/// Create a webhook
///
/// The answer holds the signing secret, this once. Messages are sent for the events that
/// happen from now on.
#[utoipa::path(
    post, path = "/api/webhooks", tag = "webhooks",
    request_body = WebhookRequest,
    responses(
        (status = 201, description = "The webhook, and its secret (shown only now)", body = NewWebhook),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 403, description = "Only admin tokens may manage webhooks", body = ErrorBody),
        (status = 404, description = "No such venue", body = ErrorBody),
        (status = 409, description = "There are 100 webhooks already", body = ErrorBody),
        (status = 413, description = "The body is over 16 KiB", body = ErrorBody),
        (status = 415, description = "The body is not declared JSON", body = ErrorBody),
        (status = 422, description = "A field is wrong; the message names it", body = ErrorBody),
        (status = 503, description = "The store cannot write", body = ErrorBody),
    )
)]
pub async fn create(
    state: &AppState,
    headers: &BodyHeaders,
    body: Result<bytes::Bytes, ApiError>,
) -> Result<Response, ApiError> {
    let fields = object(headers, body)?;
    known(
        &fields,
        &["url", "venue", "events", "description", "format"],
    )?;
    let url = url(fields.get("url").unwrap_or(&Value::Null))?;
    let venue = match fields.get("venue") {
        None => None,
        Some(Value::String(id)) => Some(
            state
                .bar
                .venues(|v| v.id(id))
                .ok_or_else(|| ApiError::NotFound(format!("no venue {id:?}")))?
                .to_string(),
        ),
        Some(_) => return Err(invalid("venue must be a venue id")),
    };
    let events = match fields.get("events") {
        Some(value) => events(value)?,
        None => vec![
            EventType::AlertOpened,
            EventType::AlertAcknowledged,
            EventType::AlertResolved,
        ],
    };
    let description = fields
        .get("description")
        .map(description)
        .transpose()?
        .unwrap_or_default();
    let format = fields
        .get("format")
        .map(format)
        .transpose()?
        .unwrap_or_default();
    let outbox = state.courier.outbox();
    if outbox.hooks().await?.len() >= MAX_WEBHOOKS {
        return Err(ApiError::Conflict(format!(
            "there are {MAX_WEBHOOKS} webhooks already; delete one first"
        )));
    }
    let secret =
        Secret::generate().map_err(|e| ApiError::Internal(format!("no randomness: {e}")))?;
    let mut uid = [0u8; 6];
    getrandom::fill(&mut uid).map_err(|e| ApiError::Internal(format!("no randomness: {e}")))?;
    let new = NewHook {
        url,
        venue,
        events,
        description,
        format,
        secret: secret.clone(),
        uid: uid.iter().map(|b| format!("{b:02x}")).collect(),
        cursor: state.courier.last_seq(),
    };
    let hook = outbox.create(new, Timestamp::now()).await?;
    log::info!(
        "webhook {} created: {} format, events {}",
        hook.id,
        format_name(hook.format),
        hook.events
            .iter()
            .map(|e| e.name())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let location = header::HeaderValue::from_str(&format!("/api/webhooks/{}", hook.id))
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut response = json_with(
        &NewWebhook {
            webhook: WebhookView::from(&hook),
            secret: secret.reveal(),
        },
        StatusCode::CREATED,
    );
    response.headers_mut().insert(header::LOCATION, location);
    Ok(response)
}

fn format_name(format: Format) -> &'static str {
    match format {
        Format::Standard => "standard",
        Format::Slack => "slack",
        Format::Ntfy => "ntfy",
    }
}

/// List webhooks
#[utoipa::path(
    get, path = "/api/webhooks", tag = "webhooks",
    responses(
        (status = 200, description = "Every webhook, by id", body = WebhookList),
        (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 403, description = "Only admin tokens may manage webhooks", body = ErrorBody),
        (status = 503, description = "The store cannot be read", body = ErrorBody),
    )
)]
pub async fn list(state: &AppState) -> Result<Response, ApiError> {
    let hooks = state.courier.outbox().hooks().await?;
    Ok(json_with(
        &WebhookList {
            webhooks: hooks.iter().map(WebhookView::from).collect(),
        },
        StatusCode::OK,
    ))
}

/// Read a webhook
#[utoipa::path(
    get, path = "/api/webhooks/{id}", tag = "webhooks",
    params(("id" = u64, Path, description = "Webhook id")),
    responses(
        (status = 200, description = "The webhook", body = OneWebhook),
        (status = 400, description = "The id is not a number", body = ErrorBody),
        (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 403, description = "Only admin tokens may manage webhooks", body = ErrorBody),
        (status = 404, description = "No such webhook", body = ErrorBody),
        (status = 503, description = "The store cannot be read", body = ErrorBody),
    )
)]
pub async fn show(state: &AppState, id: &str) -> Result<Response, ApiError> {
    let id = webhook_id(id)?;
    let hook = state
        .courier
        .outbox()
        .hook(id)
        .await?
        .ok_or_else(|| not_found(id))?;
    Ok(json_with(
        &OneWebhook {
            webhook: WebhookView::from(&hook),
        },
        StatusCode::OK,
    ))
}

/// Change a webhook
#[utoipa::path(
    patch, path = "/api/webhooks/{id}", tag = "webhooks",
    params(("id" = u64, Path, description = "Webhook id")),
    request_body = WebhookPatch,
    responses(
        (status = 200, description = "The webhook, changed", body = OneWebhook),
        (status = 400, description = "The id is not a number, or the body not JSON", body = ErrorBody),
        (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 403, description = "Only admin tokens may manage webhooks", body = ErrorBody),
        (status = 404, description = "No such webhook", body = ErrorBody),
        (status = 413, description = "The body is over 16 KiB", body = ErrorBody),
        (status = 415, description = "The body is not declared JSON", body = ErrorBody),
        (status = 422, description = "A field is wrong; the message names it", body = ErrorBody),
        (status = 503, description = "The store cannot write", body = ErrorBody),
    )
)]
pub async fn change(
    state: &AppState,
    id: &str,
    headers: &BodyHeaders,
    body: Result<bytes::Bytes, ApiError>,
) -> Result<Response, ApiError> {
    let id = webhook_id(id)?;
    let fields = object(headers, body)?;
    known(
        &fields,
        &["url", "events", "description", "format", "enabled"],
    )?;
    let change = HookChange {
        url: fields.get("url").map(url).transpose()?,
        events: fields.get("events").map(events).transpose()?,
        description: fields.get("description").map(description).transpose()?,
        format: fields.get("format").map(format).transpose()?,
        enabled: fields
            .get("enabled")
            .map(|v| {
                v.as_bool()
                    .ok_or_else(|| invalid("enabled must be true or false"))
            })
            .transpose()?,
        disabled_reason: None,
    };
    let outbox = state.courier.outbox();
    let was = outbox.hook(id).await?.ok_or_else(|| not_found(id))?;
    let hook = outbox
        .change(id, change, Timestamp::now())
        .await?
        .ok_or_else(|| not_found(id))?;
    if hook.enabled && was.disabled_reason.is_some() {
        state.courier.webhook_up(id).await;
    }
    state.courier.wake();
    Ok(json_with(
        &OneWebhook {
            webhook: WebhookView::from(&hook),
        },
        StatusCode::OK,
    ))
}

/// Delete a webhook
///
/// Its waiting messages are dropped with it.
#[utoipa::path(
    delete, path = "/api/webhooks/{id}", tag = "webhooks",
    params(("id" = u64, Path, description = "Webhook id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "The id is not a number", body = ErrorBody),
        (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 403, description = "Only admin tokens may manage webhooks", body = ErrorBody),
        (status = 404, description = "No such webhook", body = ErrorBody),
        (status = 503, description = "The store cannot write", body = ErrorBody),
    )
)]
pub async fn remove(state: &AppState, id: &str) -> Result<Response, ApiError> {
    let id = webhook_id(id)?;
    let was = state.courier.outbox().hook(id).await?;
    if !state.courier.outbox().remove(id).await? {
        return Err(not_found(id));
    }
    if was.is_some_and(|w| w.disabled_reason.is_some()) {
        state.courier.webhook_up(id).await;
    }
    log::info!("webhook {id} deleted");
    Ok(warp::reply::with_status(warp::reply(), StatusCode::NO_CONTENT).into_response())
}

/// Send a test message
///
/// Queues a `ping`, sent like any message (signed, retried); its attempts are listed in
/// the deliveries. A disabled webhook keeps it until it is enabled.
#[utoipa::path(
    post, path = "/api/webhooks/{id}/test", tag = "webhooks",
    params(("id" = u64, Path, description = "Webhook id")),
    responses(
        (status = 202, description = "The ping is queued", body = Queued),
        (status = 400, description = "The id is not a number", body = ErrorBody),
        (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 403, description = "Only admin tokens may manage webhooks", body = ErrorBody),
        (status = 404, description = "No such webhook", body = ErrorBody),
        (status = 409, description = "Its queue is full", body = ErrorBody),
        (status = 503, description = "The store cannot write", body = ErrorBody),
    )
)]
pub async fn test(state: &AppState, id: &str) -> Result<Response, ApiError> {
    let id = webhook_id(id)?;
    let outbox = state.courier.outbox();
    let hook = outbox.hook(id).await?.ok_or_else(|| not_found(id))?;
    let letter = crate::courier::ping(&hook)?;
    let message_id = letter.id.clone();
    if !outbox
        .enqueue(id, vec![letter], 0, Timestamp::now())
        .await?
    {
        return Err(ApiError::Conflict(format!(
            "webhook {id} has {} messages waiting already",
            crate::store::outbox::MAX_PENDING
        )));
    }
    state.courier.wake();
    Ok(json_with(&Queued { message_id }, StatusCode::ACCEPTED))
}

/// List a webhook's deliveries
///
/// Each attempt: when, how long, the receiver's status or why there was none, and what
/// became of the message.
#[utoipa::path(
    get, path = "/api/webhooks/{id}/deliveries", tag = "webhooks",
    params(
        ("id" = u64, Path, description = "Webhook id"),
        ("page" = Option<u64>, Query, minimum = 1, description = "1-based page number (default 1)"),
        ("page_size" = Option<u64>, Query, minimum = 1, maximum = 1000, description = "Attempts per page (default 50)"),
    ),
    responses(
        (status = 200, description = "Attempts, newest first", body = DeliveryList),
        (status = 400, description = "A bad id or parameter", body = ErrorBody),
        (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 403, description = "Only admin tokens may manage webhooks", body = ErrorBody),
        (status = 404, description = "No such webhook", body = ErrorBody),
        (status = 503, description = "The store cannot be read", body = ErrorBody),
    )
)]
pub async fn deliveries(state: &AppState, id: &str, raw_query: &str) -> Result<Response, ApiError> {
    let id = webhook_id(id)?;
    let (mut page, mut page_size) = (1usize, DEFAULT_PAGE_SIZE);
    for (key, value) in form_urlencoded::parse(raw_query.as_bytes()) {
        match &*key {
            "page" => page = page_param(&value)?,
            "page_size" | "pageSize" => page_size = page_size_param(&value)?,
            _ => {}
        }
    }
    let outbox = state.courier.outbox();
    if outbox.hook(id).await?.is_none() {
        return Err(not_found(id));
    }
    let skip = (page - 1).saturating_mul(page_size);
    let (deliveries, total) = outbox.deliveries(id, skip, page_size).await?;
    let pending = outbox.pending(id).await?;
    Ok(json_with(
        &DeliveryList {
            deliveries,
            pending,
            page,
            page_size,
            total,
        },
        StatusCode::OK,
    ))
}
