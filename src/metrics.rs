//! Prometheus metrics, served at `GET /metrics`.
//!
//! The `metrics` facade has one recorder per process; every server in the process (tests
//! start several) shares it. Label values are bounded: routes are templates, glass types
//! come from the catalogue, and per-tap series stop at [`MAX_TAP_SERIES`] taps.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Taps with a series of their own; pours from more taps count under `tap="other"`.
pub const MAX_TAP_SERIES: usize = 1000;

const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process's recorder (once) and returns the handle that renders it.
pub fn install() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let built = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("seconds".into()), LATENCY_BUCKETS)
                .and_then(|b| b.install_recorder());
            match built {
                Ok(handle) => {
                    gauge!("altair_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
                    Some(handle)
                }
                Err(e) => {
                    log::warn!("metrics are off: {e}");
                    None
                }
            }
        })
        .clone()
}

/// The route template of a path, so that ids do not make a series each.
pub fn route_of(path: &str) -> &'static str {
    match path {
        "/api/beers" => "/api/beers",
        "/api/glasses" => "/api/glasses",
        "/api/report" => "/api/report",
        "/health" => "/health",
        "/metrics" => "/metrics",
        "/sockets/beers" => "/sockets/beers",
        "/api/openapi.json" => "/api/openapi.json",
        p if p == "/docs" || p.starts_with("/docs/") => "/docs",
        p if p.starts_with("/api/beers/") && p[11..].bytes().all(|b| b != b'/') => {
            "/api/beers/{id}"
        }
        _ => "unmatched",
    }
}

/// One answered request.
pub fn request(route: &'static str, method: &str, status: u16, took: Duration) {
    // Static label values: no allocation per request on the hot path.
    let method: &'static str = match method {
        "GET" => "GET",
        "POST" => "POST",
        "DELETE" => "DELETE",
        "OPTIONS" => "OPTIONS",
        "HEAD" => "HEAD",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        _ => "other",
    };
    let status: metrics::SharedString = match status {
        200 => "200".into(),
        201 => "201".into(),
        204 => "204".into(),
        400 => "400".into(),
        401 => "401".into(),
        404 => "404".into(),
        422 => "422".into(),
        429 => "429".into(),
        other => other.to_string().into(),
    };
    counter!("altair_http_requests_total", "route" => route, "method" => method, "status" => status)
        .increment(1);
    histogram!("altair_http_request_duration_seconds", "route" => route).record(took.as_secs_f64());
}

/// A pour stored.
pub fn pour_accepted(glass: &str, tap: u32) {
    counter!("altair_pours_accepted_total", "type" => glass.to_owned()).increment(1);
    counter!("altair_pours_accepted_by_tap_total", "tap" => tap_label(tap)).increment(1);
}

fn tap_label(tap: u32) -> String {
    static SEEN: Mutex<Option<HashSet<u32>>> = Mutex::new(None);
    let mut seen = SEEN.lock().unwrap_or_else(PoisonError::into_inner);
    let seen = seen.get_or_insert_with(HashSet::new);
    if seen.contains(&tap) || (seen.len() < MAX_TAP_SERIES && seen.insert(tap)) {
        tap.to_string()
    } else {
        "other".to_owned()
    }
}

/// A retry answered with the original pour.
pub fn idempotent_replay() {
    counter!("altair_idempotent_replays_total").increment(1);
}

/// A pour refused, by reason (`malformed`, `invalid`, `conflict`, `forbidden`, ...).
pub fn pour_rejected(reason: &'static str) {
    counter!("altair_pours_rejected_total", "reason" => reason).increment(1);
}

/// Frames written to subscribers.
pub fn frames_sent(n: usize) {
    counter!("altair_ws_frames_sent_total").increment(n as u64);
}

/// A subscriber dropped as a slow consumer.
pub fn subscriber_dropped_slow() {
    counter!("altair_ws_subscribers_dropped_slow_total").increment(1);
}

/// One durable commit (write and fsync of a journal frame) of `requests` requests.
pub fn commit(took: Duration, requests: usize, journal_bytes: u64) {
    histogram!("altair_store_commit_duration_seconds").record(took.as_secs_f64());
    histogram!("altair_store_commit_batch_size").record(requests as f64);
    gauge!("altair_store_journal_bytes").set(journal_bytes as f64);
}

/// Levels read at scrape time.
pub fn levels(subscribers: usize, pours: u64) {
    gauge!("altair_ws_subscribers").set(subscribers as f64);
    gauge!("altair_store_pours").set(pours as f64);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_templates() {
        assert_eq!(route_of("/api/beers/17"), "/api/beers/{id}");
        assert_eq!(route_of("/api/beers/17/x"), "unmatched");
        assert_eq!(route_of("/docs/index.css"), "/docs");
        assert_eq!(route_of("/wp-admin"), "unmatched");
    }
}
