//! Handlers for operators: `/health` and `/metrics`.

use serde::Serialize;
use warp::Reply as _;
use warp::http::StatusCode;
use warp::reply::Response;

use super::error::{ApiError, ErrorBody};
use super::reply::json_with;
use super::request::require;
use super::state::AppState;
use crate::auth::{Identity, Need};

/// `GET /health`.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    #[schema(example = "up")]
    status: &'static str,
    version: &'static str,
    uptime_seconds: u64,
    /// Pours stored now.
    pours: u64,
    /// WebSocket subscribers connected now.
    subscribers: usize,
    subscribers_dropped_slow: u64,
    /// The store in use.
    store: &'static str,
}

/// Whether the server is up
#[utoipa::path(
    get, path = "/health", tag = "operations", security(()),
    responses((status = 200, description = "The server is up", body = Health)),
)]
pub async fn health(state: &AppState) -> Result<Response, ApiError> {
    let stats = state.store.stats().await?;
    Ok(json_with(
        &Health {
            status: "up",
            version: env!("CARGO_PKG_VERSION"),
            uptime_seconds: state.started.elapsed().as_secs(),
            pours: stats.pours,
            subscribers: state.hub.len(),
            subscribers_dropped_slow: state.hub.dropped_slow(),
            store: state.store.kind(),
        },
        StatusCode::OK,
    ))
}

/// Prometheus metrics
#[utoipa::path(
    get, path = "/metrics", tag = "operations",
    responses(
        (status = 200, description = "Prometheus text exposition", content_type = "text/plain", body = String),
        (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 403, description = "This token may not read", body = ErrorBody),
    )
)]
pub async fn metrics(state: &AppState, who: &Option<Identity>) -> Result<Response, ApiError> {
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
