//! What every handler shares: the store, the bar's state, the bus, the hub, the gate and
//! the settings. The
//! server builds it; the routes use it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::gate::{Gate, GateSettings};
use crate::anomaly::Rules;
use crate::auth::Auth;
use crate::bar::Bar;
use crate::bus::Bus;
use crate::config::Config;
use crate::feed::Feed;
use crate::glass::Catalogue;
use crate::hub::Hub;
pub use crate::pouring::{Pouring, intake};
use crate::store::Store;

/// Everything a handler needs; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    /// The bar as the log has it: kegs, taps and the report's counts.
    pub bar: Bar,
    /// What the hub reads events from.
    pub bus: Bus,
    /// Where reports are published from.
    pub feed: Feed,
    pub hub: Hub,
    /// How pours are classified, refused and flagged (one Arc: every route clones the state).
    pub pouring: Arc<Pouring>,
    pub started: Instant,
    pub socket: SocketSettings,
    /// CORS, origin checks, rate limits and authentication, before routing.
    pub gate: Arc<Gate>,
    /// The OpenAPI document as this server serves it (its auth mode, its glasses).
    pub openapi: bytes::Bytes,
    /// Renders `/metrics` (None if another recorder owns the process).
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// Cancelled when the server starts shutting down.
    pub shutdown: CancellationToken,
    /// WebSocket connections, which shutdown waits for.
    pub tasks: TaskTracker,
    /// The runtime of the WebSocket connections' tasks (hello, replay, pings, and the writes
    /// the hub hands over), apart from HTTP's, so that the OS scheduler, not a task queue
    /// thousands of connections long, decides when a POST runs.
    pub fanout: tokio::runtime::Handle,
    /// The webhooks and their delivery.
    pub courier: crate::courier::Courier,
    /// The link to the MQTT broker, with `--mqtt-url`.
    pub mqtt: Option<crate::mqtt::Link>,
}

/// What the server made before the handlers' state: the store and what it feeds, the
/// catalogue and the tokens.
pub struct Shared {
    pub store: Arc<dyn Store>,
    pub bar: Bar,
    pub bus: Bus,
    pub feed: Feed,
    pub catalogue: Catalogue,
    pub auth: Arc<Auth>,
    /// Glasses of stored pours that the catalogue no longer defines, with their pours.
    pub retired: Vec<(Arc<str>, u64)>,
    /// The OpenAPI document as this server serves it ([`super::openapi::served`]).
    pub openapi: bytes::Bytes,
    /// Sends the webhooks' messages.
    pub courier: crate::courier::Courier,
}

impl AppState {
    /// The handlers' state, as `config` sets it up; connections' tasks run on `fanout`.
    pub fn new(config: &Config, shared: Shared, fanout: tokio::runtime::Handle) -> AppState {
        if !shared.retired.is_empty() {
            let types: Vec<String> = shared
                .retired
                .iter()
                .map(|(glass, pours)| format!("{glass} ({} pours)", crate::human::count(*pours)))
                .collect();
            log::warn!(
                "glasses: stored pours have types the catalogue no longer defines: {}; they stay valid filters and stay in the report",
                types.join(", ")
            );
        }
        let metrics = crate::metrics::install();
        let glasses: Vec<&str> = shared
            .catalogue
            .glasses()
            .iter()
            .map(|g| &*g.name)
            .chain([crate::glass::UNCLASSIFIED])
            .collect();
        crate::metrics::start_at_zero(&glasses, &crate::pour::Flag::ALL.map(|f| f.name()));
        AppState {
            openapi: shared.openapi,
            courier: shared.courier,
            store: shared.store,
            bar: shared.bar,
            bus: shared.bus,
            feed: shared.feed,
            hub: Hub::new(config.subscriber_queue as usize),
            pouring: Arc::new(Pouring {
                catalogue: shared.catalogue,
                intake: intake(config),
                rules: Rules::from_config(config),
                quiet_after: config.quiet_after,
                alert_window: config.alert_window,
                time_zone: config.timezone.name(),
                default_venue: config.default_venue.as_str().into(),
                variance_goal: config.variance_goal,
                limits: crate::pouring::limits(config),
                clock_skew: config.clock_skew,
            }),
            started: Instant::now(),
            socket: SocketSettings {
                ping_interval: config.ping_interval,
                pong_timeout: config.pong_timeout,
                close_grace: config.close_grace,
                report_interval: config.report_interval,
                max_subscribers: config.max_subscribers,
            },
            gate: Arc::new(Gate::new(
                shared.auth,
                &GateSettings {
                    per_credential: config.rate_limit,
                    per_address: config.rate_limit_address,
                    cors_origins: config.cors_origin.clone(),
                },
            )),
            metrics,
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
            fanout,
            mqtt: config
                .mqtt_url
                .as_ref()
                .map(|_| crate::mqtt::Link::default()),
        }
    }
}

/// WebSocket timing settings, from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct SocketSettings {
    pub ping_interval: Duration,
    pub pong_timeout: Duration,
    pub close_grace: Duration,
    pub report_interval: Duration,
    /// Subscribers at once at most.
    pub max_subscribers: usize,
}
