//! What every handler shares: the store, the bar's state, the bus, the hub, the gate and
//! the settings. The
//! server builds it; the routes use it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::gate::Gate;
use crate::anomaly::Rules;
use crate::bar::Bar;
use crate::bus::Bus;
use crate::feed::Feed;
use crate::glass::Catalogue;
use crate::hub::Hub;
use crate::pour::Intake;
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
}

/// How pours are judged, from the configuration.
pub struct Pouring {
    pub catalogue: Catalogue,
    /// What volumes are stored.
    pub intake: Intake,
    /// What flags a pour earns.
    pub rules: Rules,
    /// How long a tap with a keg on may go without a pour, while open, before it is quiet.
    pub quiet_after: Duration,
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
