//! Handlers for operators: `/health` and `/metrics`.

use serde::Serialize;
use warp::Reply as _;
use warp::http::StatusCode;
use warp::reply::Response;

use super::error::{ApiError, ErrorBody};
use super::reply::json_with;
use super::state::AppState;

use crate::alert::AlertKind;
use crate::store::Condition;

/// `GET /health`.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    /// `up`, or `degraded` (answered with 503) when the store cannot take writes.
    #[schema(example = "up")]
    status: &'static str,
    /// Why it is degraded.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    /// For how long it has been degraded.
    #[serde(skip_serializing_if = "Option::is_none")]
    degraded_seconds: Option<u64>,
    /// Whether the store takes writes now (pours, deletions, keg changes).
    writable: bool,
    /// Bytes free for the store on its data directory's filesystem (absent without one).
    #[serde(skip_serializing_if = "Option::is_none")]
    free_bytes: Option<u64>,
    version: &'static str,
    uptime_seconds: u64,
    /// Pours stored now (absent when the store cannot say).
    #[serde(skip_serializing_if = "Option::is_none")]
    pours: Option<u64>,
    /// WebSocket subscribers connected now.
    subscribers: usize,
    subscribers_dropped_slow: u64,
    /// The store in use: `journal`, `memory` or `postgres`.
    store: &'static str,
    /// This server's own unresolved alerts (`storeFailing`, `diskLow`); the bar's are at
    /// `/api/alerts`.
    alerts: Vec<crate::alert::Alert>,
    /// The link to the MQTT broker (only with `--mqtt-url`). Its being down does not make
    /// the server unhealthy: HTTP takes pours all the same.
    #[serde(skip_serializing_if = "Option::is_none")]
    mqtt: Option<crate::mqtt::Health>,
}

/// Whether the server is up
#[utoipa::path(
    get, path = "/health", tag = "operations", security(()),
    responses(
        (status = 200, description = "The server is up", body = Health),
        (status = 503, description = "The store cannot take writes (its disk or database is full, the database is unreachable): load balancers should send requests elsewhere", body = Health),
    ),
)]
pub async fn health(state: &AppState) -> Result<Response, ApiError> {
    let stats = state.store.stats().await;
    let condition = match (state.store.condition(), &stats) {
        (Condition::Ready, Err(e)) => Condition::Degraded {
            reason: e.to_string(),
            since: std::time::Instant::now(),
        },
        (condition, _) => condition,
    };
    let writable = condition == Condition::Ready;
    let (status, reason, degraded_seconds, code) = match condition {
        Condition::Ready => ("up", None, None, StatusCode::OK),
        Condition::Degraded { reason, since } => (
            "degraded",
            Some(reason),
            Some(since.elapsed().as_secs()),
            StatusCode::SERVICE_UNAVAILABLE,
        ),
    };
    Ok(json_with(
        &Health {
            status,
            reason,
            degraded_seconds,
            writable,
            free_bytes: free_bytes(state),
            version: env!("CARGO_PKG_VERSION"),
            uptime_seconds: state.started.elapsed().as_secs(),
            pours: stats.ok().map(|s| s.pours),
            subscribers: state.hub.len(),
            subscribers_dropped_slow: state.hub.dropped_slow(),
            store: state.store.kind(),
            alerts: state.feed.server_alerts(|a| a.unresolved()),
            mqtt: state.mqtt.as_ref().map(crate::mqtt::Link::health),
        },
        code,
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
pub async fn metrics(state: &AppState) -> Result<Response, ApiError> {
    // Scraped whatever the store's state: an outage is when the numbers matter most.
    let stats = state.store.stats().await.ok();
    let readable = stats.is_some();
    crate::metrics::levels(
        state.hub.len(),
        stats.map(|s| s.pours),
        crate::metrics::StoreState {
            kind: state.store.kind(),
            readable,
            writable: readable && state.store.condition() == Condition::Ready,
            free_bytes: free_bytes(state),
        },
    );
    let (alerts, kegs) = {
        let held = state.bar.hold();
        // Each venue's kinds (a series each from the start, so rules see a 0), then the
        // chain's and this server's own.
        let mut venues: Vec<_> = held.venues().all_rules().map(|r| r.id.clone()).collect();
        venues.sort_unstable();
        venues.truncate(crate::metrics::MAX_VENUE_SERIES);
        let mut alerts = Vec::new();
        for kind in AlertKind::ALL {
            let (name, severity) = (kind.name(), kind.severity().name());
            if kind.is_a_venue_s() {
                for venue in &venues {
                    let open = held.alerts().open_of_kind(Some(venue), kind);
                    alerts.push((Some(venue.clone()), name, severity, open));
                }
            } else {
                // A server's own alerts are not in the log: its own memory counts them.
                let own = state.feed.server_alerts(|a| a.open(kind));
                let open = held.alerts().open_of_kind(None, kind) + own;
                alerts.push((None, name, severity, open));
            }
        }
        let levels: Vec<_> = held
            .cellar()
            .tap_levels()
            .into_iter()
            .map(|(tap, level)| (tap.venue, tap.tap_id, level))
            .collect();
        (alerts, levels)
    };
    crate::metrics::alerts_open(&alerts);
    crate::metrics::keg_levels(&kegs);
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

/// The free bytes of the store's data directory, if it has one and they can be read.
fn free_bytes(state: &AppState) -> Option<u64> {
    crate::disk::free_bytes(state.store.data_dir()?).ok()
}
