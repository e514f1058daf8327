//! Prometheus metrics, served at `GET /metrics`.
//!
//! The `metrics` facade has one recorder per process; every server in the process (tests
//! start several) shares it. Label values are bounded: routes are templates, glass types
//! come from the catalogue, and per-tap series (labelled by `venue` and `tap`) stop at
//! [`MAX_TAP_SERIES`] taps across every venue.

use std::sync::{Arc, LazyLock, OnceLock};
use std::time::Duration;

use dashmap::DashMap;
use metrics::{Counter, Histogram, counter, gauge, histogram};
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

/// Every documented series that a scrape should show before its first event, at zero, so
/// that dashboards and alerts see a 0 and not a missing series. `glasses` are the types
/// pours are counted under, `flags` the flags.
pub fn start_at_zero(glasses: &[&str], flags: &[&'static str]) {
    for glass in glasses {
        counter!("altair_pours_accepted_total", "type" => glass.to_string()).increment(0);
    }
    for flag in flags {
        counter!("altair_pours_flagged_total", "flag" => *flag).increment(0);
    }
    for reason in REJECTION_REASONS {
        counter!("altair_pours_rejected_total", "reason" => *reason).increment(0);
    }
    for result in WEBHOOK_RESULTS {
        counter!("altair_webhook_attempts_total", "result" => *result).increment(0);
    }
    for name in [
        "altair_idempotent_replays_total",
        "altair_ws_frames_sent_total",
        "altair_ws_subscribers_dropped_slow_total",
        "altair_ws_subscribers_revoked_total",
        "altair_log_request_lines_suppressed_total",
    ] {
        counter!(name).increment(0);
    }
    // Registered, not set: servers in one process (tests) share the recorder.
    gauge!("altair_ws_subscribers").increment(0.0);
}

/// Why a pour is refused, as `altair_pours_rejected_total` labels it.
pub const REJECTION_REASONS: &[&str] = &[
    "malformed",
    "too_large",
    "invalid",
    "conflict",
    "forbidden",
    "rate_limited",
    "unavailable",
];

/// What a webhook attempt came to, as `altair_webhook_attempts_total` labels it.
pub const WEBHOOK_RESULTS: &[&str] = &["delivered", "retrying", "failed", "disabled"];

/// A webhook attempt that came to `result` (one of [`WEBHOOK_RESULTS`]).
pub fn webhook_attempt(result: &'static str) {
    counter!("altair_webhook_attempts_total", "result" => result).increment(1);
}

/// A route, method and status's request counter, and the route's latency histogram.
type RequestSeries = DashMap<(&'static str, &'static str, u16), (Counter, Histogram)>;

/// One answered request.
pub fn request(route: &'static str, method: &str, status: u16, took: Duration) {
    // Series handles are looked up once per label set: building a labelled key and finding
    // it in the recorder was about 3,500 instructions a request (callgrind).
    static SERIES: LazyLock<RequestSeries> = LazyLock::new(DashMap::new);
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
    let record = |(requests, latency): &(Counter, Histogram)| {
        requests.increment(1);
        latency.record(took.as_secs_f64());
    };
    let key = (route, method, status);
    match SERIES.get(&key) {
        Some(series) => record(&series),
        None => record(&SERIES.entry(key).or_insert_with(|| {
            (
                counter!("altair_http_requests_total", "route" => route, "method" => method, "status" => status.to_string()),
                histogram!("altair_http_request_duration_seconds", "route" => route),
            )
        })),
    }
}

/// A pour stored.
pub fn pour_accepted(glass: &str, venue: &Arc<str>, tap: u32) {
    static BY_GLASS: LazyLock<DashMap<Box<str>, Counter>> = LazyLock::new(DashMap::new);
    static BY_TAP: LazyLock<DashMap<(Arc<str>, u32), Counter>> = LazyLock::new(DashMap::new);
    static OTHER_TAPS: LazyLock<Counter> = LazyLock::new(
        || counter!("altair_pours_accepted_by_tap_total", "venue" => "other", "tap" => "other"),
    );
    match BY_GLASS.get(glass) {
        Some(counter) => counter.increment(1),
        None => BY_GLASS
            .entry(glass.into())
            .or_insert_with(|| counter!("altair_pours_accepted_total", "type" => glass.to_owned()))
            .increment(1),
    }
    let key = (venue.clone(), tap);
    match BY_TAP.get(&key) {
        Some(counter) => counter.increment(1),
        None if BY_TAP.len() < MAX_TAP_SERIES => BY_TAP
            .entry(key)
            .or_insert_with(
                || counter!("altair_pours_accepted_by_tap_total", "venue" => venue.to_string(), "tap" => tap.to_string()),
            )
            .increment(1),
        None => OTHER_TAPS.increment(1),
    }
}

/// Counts a flag of a pour this server stored: the flag's position (below 8) and name.
pub fn pour_flagged(position: usize, flag: &'static str) {
    // A handle per flag, made once: a lookup by labels costs more than the rest of a flag.
    static FLAGGED: [OnceLock<Counter>; 8] = [const { OnceLock::new() }; 8];
    match FLAGGED.get(position) {
        Some(cell) => cell
            .get_or_init(|| counter!("altair_pours_flagged_total", "flag" => flag))
            .increment(1),
        None => counter!("altair_pours_flagged_total", "flag" => flag).increment(1),
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

/// An MQTT message taken from the broker, on one of the topics the server reads.
pub fn mqtt_received() {
    counter!("altair_mqtt_messages_received_total").increment(1);
}

/// A pour stored from an MQTT message.
pub fn mqtt_pour() {
    counter!("altair_mqtt_pours_total").increment(1);
}

/// An MQTT message that made no pour, by reason (as `altair_pours_rejected_total`'s).
pub fn mqtt_rejected(reason: &'static str) {
    counter!("altair_mqtt_messages_rejected_total", "reason" => reason).increment(1);
}

/// The MQTT series, at zero, for a server with a broker (one without shows none).
pub fn mqtt_start_at_zero() {
    counter!("altair_mqtt_messages_received_total").increment(0);
    counter!("altair_mqtt_pours_total").increment(0);
    for reason in REJECTION_REASONS {
        counter!("altair_mqtt_messages_rejected_total", "reason" => *reason).increment(0);
    }
    // Registered, not set: servers in one process (tests) share the recorder.
    gauge!("altair_mqtt_connected").increment(0.0);
}

/// Whether the server is connected to its MQTT broker (only with `--mqtt-url`).
pub fn mqtt_connected(up: bool) {
    gauge!("altair_mqtt_connected").set(if up { 1.0 } else { 0.0 });
}

/// Event frames written to subscribers: hello, replayed and live pours, deletions, reports.
pub fn frames_sent(n: usize) {
    counter!("altair_ws_frames_sent_total").increment(n as u64);
}

/// A subscriber dropped as a slow consumer.
pub fn subscriber_dropped_slow() {
    counter!("altair_ws_subscribers_dropped_slow_total").increment(1);
}

/// A refusal counted in a summary line instead of a line of its own.
pub fn log_lines_suppressed() {
    counter!("altair_log_request_lines_suppressed_total").increment(1);
}

/// A subscriber closed because its token was revoked.
pub fn subscriber_revoked() {
    counter!("altair_ws_subscribers_revoked_total").increment(1);
}

/// One durable commit (write and fsync of a journal frame) of `requests` requests.
pub fn commit(took: Duration, requests: usize, journal_bytes: u64) {
    histogram!("altair_store_commit_duration_seconds").record(took.as_secs_f64());
    histogram!("altair_store_commit_batch_size").record(requests as f64);
    gauge!("altair_store_journal_bytes").set(journal_bytes as f64);
}

/// What the store can do, read at scrape time.
pub struct StoreState {
    /// `journal`, `memory` or `postgres`.
    pub kind: &'static str,
    /// It answers reads.
    pub readable: bool,
    /// It takes writes.
    pub writable: bool,
    /// Free bytes on its data directory's filesystem, if it has one.
    pub free_bytes: Option<u64>,
}

/// Levels read at scrape time.
pub fn levels(subscribers: usize, pours: Option<u64>, store: StoreState) {
    let one = |yes: bool| if yes { 1.0 } else { 0.0 };
    gauge!("altair_ws_subscribers").set(subscribers as f64);
    if let Some(pours) = pours {
        gauge!("altair_store_pours").set(pours as f64);
    }
    gauge!("altair_store_up", "store" => store.kind).set(one(store.readable));
    gauge!("altair_store_writable", "store" => store.kind).set(one(store.writable));
    if let Some(free) = store.free_bytes {
        gauge!("altair_store_free_bytes").set(free as f64);
    }
}

/// The alerts open now on this server's view of the log, by kind and severity (every kind
/// is set, so a 0 is a series and not a gap).
pub fn alerts_open(counts: &[AlertCount]) {
    for (venue, kind, severity, open) in counts {
        match venue {
            Some(venue) => gauge!("altair_alerts_open", "venue" => venue.to_string(), "kind" => *kind, "severity" => *severity),
            None => gauge!("altair_alerts_open", "kind" => *kind, "severity" => *severity),
        }
        .set(*open as f64);
    }
}

/// Open alerts of a venue (none: the chain's or a server's), by kind and severity.
pub type AlertCount = (Option<Arc<str>>, &'static str, &'static str, u64);

/// Venues with series of their own (a venue's alerts: kinds × venues); alerts of more
/// venues are not counted by venue.
pub const MAX_VENUE_SERIES: usize = 200;

/// A venue's tap, and what is left in its keg (ml and percent), if it has one.
pub type TapLevel = (Arc<str>, u32, Option<(f64, f64)>);

/// What is left in the keg on each tap: (tap, ml and percent of its size, or none when
/// the tap has no keg: NaN, which no threshold matches).
pub fn keg_levels(levels: &[TapLevel]) {
    for (venue, tap, level) in levels.iter().take(MAX_TAP_SERIES) {
        let (ml, percent) = level.unwrap_or((f64::NAN, f64::NAN));
        let (venue, tap) = (venue.to_string(), tap.to_string());
        gauge!("altair_keg_remaining_ml", "venue" => venue.clone(), "tap" => tap.clone()).set(ml);
        gauge!("altair_keg_remaining_percent", "venue" => venue, "tap" => tap).set(percent);
    }
}
