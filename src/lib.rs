//! Altair: a real-time telemetry server for beer taps.
//!
//! Taps `POST` pours; the server classifies each by glass, stores it, and pushes every new
//! pour, and a metrics report at an interval, to WebSocket subscribers.
//!
//! The modules, top to bottom: each uses only modules listed below it (a test in
//! `tests/api/architecture.rs` keeps it so).
//!
//! - [`server`]: builds the shared state; the accept loop, background tasks and graceful
//!   shutdown.
//! - [`http`]: the gate (CORS, origins, rate limits, authentication), the shared state, the
//!   routes and their handlers, the WebSocket endpoint (handshake, replay with `since`, each
//!   connection's loop), the OpenAPI document, the live operations page's files (`web/`),
//!   and the one JSON error type.
//! - [`hub`]: fan-out of each event, serialized once, written by the hub straight to each
//!   subscriber's socket, or to its bounded queue when the socket is busy.
//! - [`store`]: the async `Store` trait; an in-memory index behind a group-committing
//!   journal writer (durable) or none (`--ephemeral`); it publishes on the bus.
//! - [`bus`]: the event bus; the report aggregator observes it inline, the hub through a
//!   channel.
//! - [`keg`]: kegs and taps, a state machine fed the store's log: levels, pace, forecasts,
//!   and keg events.
//! - [`report`]: incremental metrics and the report document.
//! - [`anomaly`]: the rules that flag a pour (tiny, over-pour, after hours, burst).
//! - [`pour`]: the pour, its timestamp, and parsing a request body into one.
//! - [`glass`]: the glass catalogue that classifies a volume.
//! - [`metrics`]: Prometheus counters, gauges and histograms, served at `/metrics`.
//! - [`human`]: counts, sizes and durations written for people in log lines.
//! - [`disk`]: free space on the data directory's filesystem, and the low-space warning.
//! - [`auth`]: bearer tokens with roles, from a file of SHA-256 hashes.
//! - [`config`]: flags and `ALTAIR_*` environment variables.

pub mod anomaly;
pub mod auth;
pub mod bus;
pub mod config;
pub mod disk;
pub mod glass;
pub mod http;
pub mod hub;
pub mod human;
pub mod keg;
pub mod metrics;
pub mod pour;
pub mod report;
pub mod server;
pub mod store;

pub use config::Config;
pub use server::{RunningServer, Server};
