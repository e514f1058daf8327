//! The HTTP API: one filter per route, in the order of the README's API reference.
//!
//! Handlers never reject: they answer errors themselves, so a rejection always means "this
//! route or method does not exist" and each path's last filter can answer 405 with `Allow`.

mod beers;
mod error;
mod gate;
pub mod openapi;

use std::convert::Infallible;

use serde::Serialize;
use warp::filters::BoxedFilter;
use warp::http::{HeaderMap, Method, StatusCode};
use warp::reply::Response;
use warp::{Filter, Reply};

pub use error::{ApiError, ErrorBody, recover};
pub use gate::{Gate, GateSettings};

use crate::auth::{Identity, Need};
use crate::server::AppState;

/// Largest request body accepted.
pub const BODY_LIMIT: u64 = 16 * 1024;

/// Every route, with JSON errors for everything that matches none.
pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    let beers = warp::path!("api" / "beers").and(
        list(state.clone())
            .or(create(state.clone()))
            .unify()
            .or(not_allowed("GET, POST"))
            .unify(),
    );
    let beer = warp::path!("api" / "beers" / String)
        .and(warp::method())
        .and(with_state(state.clone()))
        .and(identity())
        .then(
            |id: String, method: Method, state: AppState, who: Option<Identity>| async move {
                match method {
                    Method::GET => answer(
                        async {
                            require(&who, Need::Read)?;
                            beers::show(&state, &id).await
                        }
                        .await,
                    ),
                    Method::DELETE => answer(
                        async {
                            require(&who, Need::Delete)?;
                            beers::delete(&state, &id).await
                        }
                        .await,
                    ),
                    _ => ApiError::MethodNotAllowed {
                        allow: "GET, DELETE",
                    }
                    .into_response(),
                }
            },
        );
    beers
        .or(beer)
        .unify()
        .or(glasses(state.clone()))
        .unify()
        .or(report(state.clone()))
        .unify()
        .or(health(state.clone()))
        .unify()
        .or(metrics(state.clone()))
        .unify()
        .or(socket(state))
        .unify()
        .or(documentation())
        .unify()
        .recover(recover)
        .unify()
        .boxed()
}

/// `GET /api/beers?page=&page_size=&type=&tapId=&from=&to=&after=`
fn list(state: AppState) -> BoxedFilter<(Response,)> {
    warp::get()
        .and(with_state(state))
        .and(raw_query())
        .and(identity())
        .then(
            |state: AppState, query: String, who: Option<Identity>| async move {
                answer(
                    async {
                        require(&who, Need::Read)?;
                        beers::list(&state, &query).await
                    }
                    .await,
                )
            },
        )
        .boxed()
}

/// `POST /api/beers` with `{"tapId", "volume", "timestamp"?}`
fn create(state: AppState) -> BoxedFilter<(Response,)> {
    warp::post()
        .and(with_state(state))
        .and(warp::header::headers_cloned())
        .and(body_limited(BODY_LIMIT))
        .and(identity())
        .then(
            |state: AppState,
             headers: HeaderMap,
             body: Result<bytes::Bytes, ApiError>,
             who: Option<Identity>| async move {
                answer(beers::create(&state, &headers, body, who).await)
            },
        )
        .boxed()
}

/// `GET /api/glasses`
fn glasses(state: AppState) -> BoxedFilter<(Response,)> {
    warp::path!("api" / "glasses")
        .and(
            warp::get()
                .and(with_state(state))
                .and(identity())
                .map(|state: AppState, who: Option<Identity>| answer(get_glasses(&state, &who)))
                .or(not_allowed("GET"))
                .unify(),
        )
        .boxed()
}

/// The glass catalogue.
#[derive(Serialize, utoipa::ToSchema)]
pub struct GlassList<'a> {
    /// Smallest first; bands are inclusive and matched first to last.
    #[schema(value_type = Vec<crate::glass::Glass>)]
    glasses: &'a [crate::glass::Glass],
}

#[utoipa::path(
    get, path = "/api/glasses", tag = "catalogue",
    responses(
        (status = 200, description = "The glass catalogue", body = GlassList),
        (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 429, description = "Over the rate limit", body = ErrorBody),
    )
)]
fn get_glasses(state: &AppState, who: &Option<Identity>) -> Result<Response, ApiError> {
    require(who, Need::Glasses)?;
    Ok(warp::reply::json(&GlassList {
        glasses: state.catalogue.glasses(),
    })
    .into_response())
}

/// `GET /api/report`
fn report(state: AppState) -> BoxedFilter<(Response,)> {
    warp::path!("api" / "report")
        .and(
            warp::get()
                .and(with_state(state))
                .and(identity())
                .map(|state: AppState, who: Option<Identity>| answer(get_report(&state, &who)))
                .or(not_allowed("GET"))
                .unify(),
        )
        .boxed()
}

#[utoipa::path(
    get, path = "/api/report", tag = "pours",
    responses(
        (status = 200, description = "The current report, as pushed to subscribers", body = crate::report::Report),
        (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 403, description = "This token may not read", body = ErrorBody),
        (status = 429, description = "Over the rate limit", body = ErrorBody),
    )
)]
fn get_report(state: &AppState, who: &Option<Identity>) -> Result<Response, ApiError> {
    require(who, Need::Read)?;
    Ok(warp::reply::json(&state.bus.report()).into_response())
}

/// `GET /health`
fn health(state: AppState) -> BoxedFilter<(Response,)> {
    warp::path!("health")
        .and(
            warp::get()
                .and(with_state(state))
                .then(|state: AppState| async move { answer(beers::health(&state).await) })
                .or(not_allowed("GET"))
                .unify(),
        )
        .boxed()
}

/// `GET /metrics` (Prometheus text format)
fn metrics(state: AppState) -> BoxedFilter<(Response,)> {
    warp::path!("metrics")
        .and(
            warp::get()
                .and(with_state(state))
                .and(identity())
                .then(|state: AppState, who: Option<Identity>| async move {
                    answer(get_metrics(&state, &who).await)
                })
                .or(not_allowed("GET"))
                .unify(),
        )
        .boxed()
}

#[utoipa::path(
    get, path = "/metrics", tag = "operations",
    responses(
        (status = 200, description = "Prometheus text exposition", content_type = "text/plain", body = String),
        (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 403, description = "This token may not read", body = ErrorBody),
    )
)]
async fn get_metrics(state: &AppState, who: &Option<Identity>) -> Result<Response, ApiError> {
    require(who, Need::Read)?;
    let stats = state.store.stats().await?;
    crate::metrics::levels(state.hub.len(), stats.pours);
    let text = state
        .metrics
        .as_ref()
        .map(|m| m.render())
        .unwrap_or_default();
    Ok(warp::reply::with_header(
        text,
        "content-type",
        "text/plain; version=0.0.4; charset=utf-8",
    )
    .into_response())
}

/// `GET /api/openapi.json`, `GET /api/events.schema.json`, `GET /docs/...`
fn documentation() -> BoxedFilter<(Response,)> {
    let document = warp::path!("api" / "openapi.json").and(
        warp::get()
            .map(openapi::openapi_json)
            .or(not_allowed("GET"))
            .unify(),
    );
    let events = warp::path!("api" / "events.schema.json").and(
        warp::get()
            .map(openapi::events_schema_json)
            .or(not_allowed("GET"))
            .unify(),
    );
    let ui = warp::path("docs").and(
        warp::get()
            .and(warp::path::full())
            .and(warp::path::tail())
            .map(|full: warp::path::FullPath, tail: warp::path::Tail| {
                openapi::docs(full.as_str(), tail.as_str())
            })
            .or(not_allowed("GET"))
            .unify(),
    );
    document.or(events).unify().or(ui).unify().boxed()
}

/// `GET /sockets/beers` (WebSocket)
fn socket(state: AppState) -> BoxedFilter<(Response,)> {
    warp::path!("sockets" / "beers")
        .and(
            warp::get()
                .and(warp::header::headers_cloned())
                .and(warp::ext::optional::<hyper::upgrade::OnUpgrade>())
                .and(raw_query())
                .and(with_state(state))
                .and(identity())
                .map(
                    |headers: HeaderMap,
                     upgrade: Option<hyper::upgrade::OnUpgrade>,
                     query: String,
                     state: AppState,
                     who: Option<Identity>| {
                        answer(subscribe(&headers, upgrade, &query, &state, &who))
                    },
                )
                .or(not_allowed("GET"))
                .unify(),
        )
        .boxed()
}

#[utoipa::path(
    get, path = "/sockets/beers", tag = "live",
    description = "WebSocket upgrade. Every frame is JSON text with an `event` field (schema `SocketEvent`): \
        `hello` first, then `pour`, `deleted` and `report` as they happen. Close codes: 1001 shutdown, \
        1002 protocol error, 1008 slow consumer, 1009 client frame over 4 KiB, 1013 overloaded (reconnect with since).",
    params(
        ("tapId" = Option<u32>, Query, description = "I am this tap: its pours are not sent"),
        ("echo" = Option<bool>, Query, description = "Send this tap's own pours after all"),
        ("type" = Option<Vec<String>>, Query, explode = true, description = "Only these glasses (repeatable)"),
        ("since" = Option<u64>, Query, description = "Replay stored pours above this id first, then go live"),
        ("token" = Option<String>, Query, description = "Bearer token, for browsers that cannot set headers"),
    ),
    responses(
        (status = 101, description = "Switching to WebSocket; frames follow `SocketEvent`", body = crate::ws::SocketEvent),
        (status = 400, description = "A bad parameter or handshake header", body = ErrorBody),
        (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 422, description = "Unknown glass type", body = ErrorBody),
        (status = 426, description = "Not a WebSocket upgrade", body = ErrorBody),
        (status = 503, description = "As many subscribers as the server takes", body = ErrorBody),
    )
)]
fn subscribe(
    headers: &HeaderMap,
    upgrade: Option<hyper::upgrade::OnUpgrade>,
    query: &str,
    state: &AppState,
    who: &Option<Identity>,
) -> Result<Response, ApiError> {
    require(who, Need::Subscribe)?;
    crate::ws::handshake(headers, upgrade, query, state)
}

/// Who is asking, as the gate found out (absent only if the gate did not run).
fn identity() -> impl Filter<Extract = (Option<Identity>,), Error = Infallible> + Clone {
    warp::ext::optional::<Identity>()
}

/// 403 unless `who` may do `need`.
pub(crate) fn require(who: &Option<Identity>, need: Need) -> Result<(), ApiError> {
    match who {
        Some(identity) if identity.allows(need) => Ok(()),
        // Public paths admit reads without a token; anything more needs one: 401, not 403.
        Some(Identity::Anonymous) | None => {
            Err(ApiError::Unauthorized(crate::auth::AuthFailure::Missing))
        }
        Some(identity) => Err(ApiError::Forbidden(format!(
            "{} may not {}",
            identity.describe(),
            match need {
                Need::Read => "read pours or reports".to_owned(),
                Need::Glasses => "read the glass list".to_owned(),
                Need::Subscribe => "subscribe".to_owned(),
                Need::Pour(tap) => format!("post pours for tap {tap}"),
                Need::Delete => "delete pours".to_owned(),
            }
        ))),
    }
}

fn with_state(state: AppState) -> impl Filter<Extract = (AppState,), Error = Infallible> + Clone {
    warp::any().map(move || state.clone())
}

/// The query string, empty when there is none.
fn raw_query() -> impl Filter<Extract = (String,), Error = Infallible> + Clone {
    warp::query::raw().or(warp::any().map(String::new)).unify()
}

/// Any method at a path whose methods are `allow`: 405.
fn not_allowed(
    allow: &'static str,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    warp::any().map(move || ApiError::MethodNotAllowed { allow }.into_response())
}

/// The request body, at most `limit` bytes, with or without a Content-Length; reads no
/// further than the limit.
fn body_limited(
    limit: u64,
) -> impl Filter<Extract = (Result<bytes::Bytes, ApiError>,), Error = warp::Rejection> + Clone {
    warp::header::optional::<u64>("content-length")
        .and(warp::body::stream())
        .then(move |length: Option<u64>, body| read_limited(length, body, limit))
}

async fn read_limited<B: warp::Buf>(
    length: Option<u64>,
    body: impl futures::Stream<Item = Result<B, warp::Error>>,
    limit: u64,
) -> Result<bytes::Bytes, ApiError> {
    use futures::StreamExt;
    if length.is_some_and(|n| n > limit) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    let mut body = std::pin::pin!(body);
    let mut collected = bytes::BytesMut::new();
    while let Some(chunk) = body.next().await {
        let mut chunk =
            chunk.map_err(|e| ApiError::BadRequest(format!("could not read the body: {e}")))?;
        if (collected.len() + chunk.remaining()) as u64 > limit {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            collected.extend_from_slice(part);
            let n = part.len();
            chunk.advance(n);
        }
    }
    Ok(collected.freeze())
}

/// A `type` query value: a glass in the catalogue, else 422 listing the valid ones.
pub(crate) fn glass_param(
    catalogue: &crate::glass::Catalogue,
    value: &str,
) -> Result<std::sync::Arc<str>, ApiError> {
    catalogue.get(value).map(|g| g.name.clone()).ok_or_else(|| {
        ApiError::Unprocessable(format!(
            "unknown type {value:?}; valid types: {}",
            catalogue.names()
        ))
    })
}

/// A `tapId` query value: 1 to 2^32-1, else 400.
pub(crate) fn tap_param(value: &str) -> Result<u32, ApiError> {
    value
        .parse::<u32>()
        .ok()
        .filter(|&t| t >= 1)
        .ok_or_else(|| ApiError::BadRequest("tapId must be an integer from 1 to 4294967295".into()))
}

/// Turns a handler's result into a response.
fn answer<R: Reply>(result: Result<R, ApiError>) -> Response {
    match result {
        Ok(reply) => reply.into_response(),
        Err(error) => error.into_response(),
    }
}

/// `{"key": value}` with `status`.
fn json_with<T: Serialize>(value: &T, status: StatusCode) -> Response {
    warp::reply::with_status(warp::reply::json(value), status).into_response()
}
