//! Altair: a real-time telemetry server for beer taps.
//!
//! Taps `POST` pours; the server classifies each by glass, stores it, and pushes every new
//! pour, and a metrics report at an interval, to WebSocket subscribers.
//!
//! The modules, in four layers and a base, top to bottom: each uses only modules listed
//! below it (`tests/api/architecture.rs` reads this list and keeps it so).
//!
//! **Serve**: requests in, answers and events out.
//! - [`server`]: composes the rest: builds the shared state, accepts connections, runs the
//!   background tasks, shuts down gracefully.
//! - [`tasks`]: the background chores on one ticking helper: reports at the interval,
//!   quiet taps, free space, and the request log's and rate limiter's upkeep.
//! - [`http`]: the gate (CORS, origins, rate limits, authentication), the shared state, the
//!   routes and their handlers, who sees which venue, the WebSocket endpoint (handshake, replay with `since`, each
//!   connection's loop), the OpenAPI document, the live operations page's files (`web/`),
//!   and the one JSON error type.
//! - [`mqtt`]: the MQTT link: pours from a broker's topics, each acknowledged once
//!   durable, answered on `…/accepted` or `…/rejected`; reconnects, and says how it is.
//! - [`courier`]: webhook delivery: the bar's events made into messages in the store's
//!   outbox, sent signed, one at a time per webhook, retried on a schedule; a server's own
//!   alerts sent from memory.
//!
//! **Keep**: what was decided, durably, in commit order.
//! - [`store`]: the async `Store` trait and its backends: the journal store (a
//!   group-committed journal behind an in-memory index, or memory only with `--ephemeral`)
//!   and PostgreSQL (shared by several servers, each publishing its own changes as it
//!   commits them and reading the others'); and each store's
//!   outbox, the webhooks and the messages owed to them; and the portable stream of the
//!   whole log that every store exports and imports (backups, moving between stores). A
//!   store decides nothing: it asks [`decide`] and keeps the answer.
//!
//! **Publish**: each kept change, once, to whoever follows.
//! - [`feed`]: applies each kept change to the bar's state and publishes it on the bus, in
//!   commit order; keeps and publishes this server's own alerts (its store, its disk).
//! - [`hub`]: fan-out: the roster of subscribers and the sweep that offers each event,
//!   serialized once, to every subscriber's lane.
//! - [`lane`]: one subscriber's way to its socket: written by the hub straight away while
//!   the socket takes it, else queued (bounded) for the subscriber's task; the stream as
//!   tungstenite's transport, and the task's writes.
//! - [`frame`]: an event as a WebSocket frame, serialized once, shared by every subscriber.
//! - [`bus`]: the event channel; it carries events and keeps nothing.
//! - [`bar`]: the bar's state as the log has it (kegs, taps, alerts, the report's counts),
//!   which handlers read and writers decide against; it numbers the events changes cause.
//!
//! **Decide**: the bar's rules, pure and synchronous.
//! - [`decide`]: what a pour, a deletion, a keg operation or an acknowledgement means: its
//!   id and flags, why it is refused, what a retried idempotency key stands for.
//! - [`webhook`]: webhooks as Standard Webhooks defines them: secrets, signatures, and
//!   the bodies for programs, Slack or Mattermost, and ntfy; whether an address will do.
//! - [`alert`]: alerts, one per open problem (a keg low or empty, a tap quiet, a tap's
//!   flagged or after-hours pours), a state machine fed the log: opened, grouped,
//!   acknowledged, resolved; and a server's own (its store cannot write, its disk is low).
//! - [`variance`]: poured against sold: every pour and every sold line kept by the quarter
//!   hour, the till's items mapped to beverages and servings, and the variance document cut
//!   by hour, day or week on each venue's clock; which sold lines are new.
//! - [`keg`]: kegs and taps (each tap a venue's), a state machine fed the log: levels,
//!   pace, forecasts, keg events, and whether a keg operation applies; it keeps the venues,
//!   whose settings judge its kegs and taps.
//! - [`meter`]: counter devices (running totals, not pours): each meter's mark as the log
//!   has it, whether a move of it applies (once, whichever server proposes it), and one
//!   server's reading of the totals into pours.
//! - [`venue`]: venues, the bars of a chain: their ids, their settings over the chain's
//!   (the flags), and whether an operation on one applies.
//! - [`history`]: every business day's pours, kept as they come and go, and the history
//!   document cut by day, week or month and grouped by beverage, tap or glass.
//! - [`sales`]: a till's CSV export (generic, Toast, Square) read into sold lines, each
//!   with the identity that makes a second import count it once.
//! - [`report`]: incremental metrics and the report document.
//! - [`pouring`]: how this server judges a pour (or a temperature reading) coming in, over
//!   HTTP or MQTT: read, classified and flagged as far as it can be on its own, from the
//!   configuration.
//! - [`temperature`]: the taps' temperature readings, the series they make (a day as
//!   read, then a mean a minute), and whether a sensor's beer is too warm, too hot, or
//!   its sensor silent.
//! - [`anomaly`]: the flags a pour earns on its own (tiny, over-pour), a venue's clock
//!   (after hours), and the burst rule.
//! - [`pour`]: the pour, its timestamp, and parsing a request body into one.
//! - [`glass`]: the glass catalogue that classifies a volume.
//!
//! **Base**: used by every layer.
//! - [`metrics`]: Prometheus counters, gauges and histograms, served at `/metrics`.
//! - [`human`]: counts, sizes and durations written for people in log lines.
//! - [`disk`]: free space on the data directory's filesystem, and the low-space warning.
//! - [`auth`]: bearer tokens with roles, from a file of SHA-256 hashes.
//! - [`config`]: flags and `ALTAIR_*` environment variables.

pub mod alert;
pub mod anomaly;
pub mod auth;
pub mod bar;
pub mod bus;
pub mod config;
pub mod courier;
pub mod decide;
pub mod disk;
pub mod feed;
pub mod frame;
pub mod glass;
pub mod history;
pub mod http;
pub mod hub;
pub mod human;
pub mod keg;
pub mod lane;
pub mod meter;
pub mod metrics;
pub mod mqtt;
pub mod pour;
pub mod pouring;
pub mod report;
pub mod sales;
pub mod server;
pub mod store;
pub mod tasks;
pub mod temperature;
pub mod variance;
pub mod venue;
pub mod webhook;

pub use config::Config;
pub use server::{RunningServer, Server};
