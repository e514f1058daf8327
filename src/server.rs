//! The server's life: building the shared state, the accept loop, background tasks, graceful shutdown.
//!
//! Connections are accepted here, not by `warp::serve`, so that each socket gets
//! `TCP_NODELAY` (small event frames must not wait for Nagle), each request is logged with
//! its peer, and header reads time out.
//!
//! Three places where work runs: the caller's runtime serves HTTP; the hub has a thread per
//! core, each writing to its share of the subscribers, since a sweep of writes to thousands
//! of sockets runs for milliseconds without a pause; a second runtime (`AppState::fanout`)
//! runs each WebSocket connection's task. The
//! OS scheduler, not a task queue, shares the CPU among them, so ingest never queues behind
//! fan-out.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_service::Service;
use warp::Reply;
use warp::http::{Method, Request, header};

use crate::anomaly::Rules;
use crate::auth::{Auth, TokensError};
use crate::bar::Bar;
use crate::bus::Bus;
use crate::config::Config;
use crate::decide;
use crate::disk::{self, LowSpace};
use crate::feed::Feed;
use crate::glass::{Catalogue, CatalogueError};
use crate::http::{AppState, BodyHeaders, Gate, GateSettings, Pouring, RequestLog, SocketSettings};
use crate::hub::{Hub, Shard};
use crate::human;
use crate::keg::{CellarSettings, KegOp};
use crate::pour::{Intake, Timestamp};
use crate::store::postgres::PgError;
use crate::store::{JournalError, JournalSettings, JournalStore, PgSettings, PgStore, Store};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Catalogue(#[from] CatalogueError),
    #[error(transparent)]
    Store(#[from] JournalError),
    #[error(transparent)]
    Database(#[from] PgError),
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Tokens(#[from] TokensError),
    #[error("--require-auth is set but no tokens file is given (--tokens or ALTAIR_TOKENS_FILE)")]
    AuthRequired,
    #[error("cannot start the fan-out threads: {source}")]
    Runtime { source: std::io::Error },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A server bound to its address, not yet serving.
pub struct Server {
    listener: TcpListener,
    state: AppState,
    /// Owned here, shut down at the end of `run` (a runtime cannot be dropped in async code).
    fanout: tokio::runtime::Runtime,
    /// The hub threads' own single-threaded runtimes, one a core, moved to their threads
    /// by `run`.
    hubs: Vec<tokio::runtime::Runtime>,
    shutdown_timeout: Duration,
    report_interval: Duration,
    header_timeout: Duration,
    max_connections: u32,
    /// Free bytes under which the data directory is low on space, and how often to look.
    low_space: (u64, Duration),
    /// One line per request, refusals summed up per address.
    request_log: Arc<RequestLog>,
}

impl Server {
    /// Loads the catalogue, opens (and recovers) the store and binds the listening socket.
    pub async fn bind(config: Config) -> Result<Server, StartError> {
        Server::bind_with(config, None).await
    }

    /// [`Server::bind`], with the store `given` makes from the catalogue and the bus
    /// instead of the one the configuration names (tests give a store that fails).
    async fn bind_with(config: Config, given: Option<GivenStore>) -> Result<Server, StartError> {
        let catalogue = match &config.glasses {
            Some(path) => Catalogue::load(path)?,
            None => Catalogue::default(),
        };
        let bar = Bar::new(
            &catalogue,
            config.timezone,
            CellarSettings::new(config.keg_low_percent, &catalogue),
        );
        let bus = Bus::new(config.bus_capacity as usize);
        let feed = Feed::new(bar.clone(), bus.clone(), config.report_every);
        let auth = Arc::new(open_auth(&config)?);
        let store = match given {
            Some(make) => make(&catalogue, &feed),
            None => open_store(&config, &catalogue, &feed).await?,
        };
        let retired = bar.retired_glasses();
        if !retired.is_empty() {
            let types: Vec<String> = retired
                .iter()
                .map(|(glass, pours)| format!("{glass} ({} pours)", crate::human::count(*pours)))
                .collect();
            log::warn!(
                "glasses: stored pours have types the catalogue no longer defines: {}; they stay valid filters and stay in the report",
                types.join(", ")
            );
        }
        let addr = config.listen_addr();
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })?;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let fanout = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cores)
            .thread_name("altair-fanout")
            .enable_all()
            .build()
            .map_err(|source| StartError::Runtime { source })?;
        let hubs = (0..cores)
            .map(|_| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_time()
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|source| StartError::Runtime { source })?;
        let openapi = crate::http::openapi::document_for(&crate::http::openapi::Served {
            open: auth.is_open(),
            public: auth.public(),
            catalogue: &catalogue,
            types: catalogue
                .glasses()
                .iter()
                .map(|g| g.name.to_string())
                .chain([crate::glass::UNCLASSIFIED.to_owned()])
                .chain(retired.iter().map(|(g, _)| g.to_string()))
                .collect(),
            intake: intake(&config),
        });
        let metrics = crate::metrics::install();
        let glasses: Vec<&str> = catalogue
            .glasses()
            .iter()
            .map(|g| &*g.name)
            .chain([crate::glass::UNCLASSIFIED])
            .collect();
        crate::metrics::start_at_zero(&glasses, &crate::pour::Flag::ALL.map(|f| f.name()));
        let state = AppState {
            openapi: serde_json::to_vec(&openapi).unwrap_or_default().into(),
            store,
            bar,
            bus,
            feed,
            hub: Hub::new(config.subscriber_queue as usize),
            pouring: Arc::new(Pouring {
                catalogue,
                intake: intake(&config),
                rules: Rules::from_config(&config),
                quiet_after: config.quiet_after,
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
                auth,
                &GateSettings {
                    per_credential: config.rate_limit,
                    per_address: config.rate_limit_address,
                    cors_origins: config.cors_origin.clone(),
                },
            )),
            metrics,
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
            fanout: fanout.handle().clone(),
        };
        Ok(Server {
            listener,
            state,
            fanout,
            hubs,
            shutdown_timeout: config.shutdown_timeout,
            report_interval: config.report_interval,
            header_timeout: config.header_timeout,
            max_connections: config.max_connections,
            low_space: (config.low_space_warning, config.space_check_interval),
            request_log: Arc::new(RequestLog::new(
                config.request_log == "all",
                config.refusal_log_interval,
            )),
        })
    }

    /// The tokens in force, for reloading them (SIGHUP).
    pub fn auth(&self) -> Arc<Auth> {
        self.state.gate.auth().clone()
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` completes, then closes every WebSocket (1001), finishes
    /// in-flight requests, and returns within the shutdown timeout.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Ended {
        let Server {
            listener,
            state,
            fanout,
            hubs,
            shutdown_timeout,
            report_interval,
            header_timeout,
            max_connections,
            low_space,
            request_log,
        } = self;
        if let Ok(addr) = listener.local_addr() {
            log::info!(
                "listening on {addr}; store: {}; glasses: {}",
                state.store.kind(),
                state.pouring.catalogue.names()
            );
        }
        // Subscribed before the first request, so the hub sees every event.
        let count = hubs.len() as u64;
        let fan_out = |shard| {
            state
                .hub
                .clone()
                .run(shard, state.bus.subscribe(), state.shutdown.clone())
        };
        let mut hubs_stopped = Vec::new();
        for (index, runtime) in (0..count).zip(hubs) {
            let shard = Shard { index, count };
            let work = fan_out(shard);
            let (done, stopped) = tokio::sync::oneshot::channel::<()>();
            hubs_stopped.push(stopped);
            let thread = std::thread::Builder::new()
                .name(format!("altair-hub-{index}"))
                .spawn(move || {
                    runtime.block_on(work);
                    drop(done);
                });
            if let Err(e) = thread {
                // Still correct on the fan-out runtime, only slower to share the CPU fairly.
                log::warn!("cannot start hub thread {index} ({e}); it runs on the fan-out runtime");
                state.fanout.spawn(fan_out(shard));
            }
        }
        let reports = tokio::spawn(report_loop(
            state.feed.clone(),
            report_interval,
            state.shutdown.clone(),
        ));
        let quiet = tokio::spawn(watch_quiet_taps(state.clone()));
        let space = tokio::spawn(watch_space(state.clone(), low_space));
        let upkeep = tokio::spawn(upkeep(
            state.gate.clone(),
            request_log.clone(),
            state.shutdown.clone(),
        ));
        let service = warp::service(crate::http::routes(state.clone()));
        // HTTP connections, which shutdown lets finish their in-flight request.
        let connections = TaskTracker::new();
        // At most this many connections: past it, new ones wait in the listen backlog.
        let open = Arc::new(tokio::sync::Semaphore::new(max_connections as usize));
        // A store that cannot go on without a restart stops the server as a signal would.
        let store_broken = state.store.broken().unwrap_or_default();
        let broke = store_broken.clone();
        let shutdown = async move {
            tokio::select! {
                () = shutdown => {}
                () = broke.cancelled() => {}
            }
        };
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let permit = tokio::select! {
                _ = &mut shutdown => break,
                permit = open.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => break,
                },
            };
            let (stream, peer) = tokio::select! {
                _ = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        // Out of file descriptors and the like: wait, don't spin.
                        log::error!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            if let Err(e) = stream.set_nodelay(true) {
                log::debug!("TCP_NODELAY on {peer}: {e}");
            }
            let service = service.clone();
            let gate = state.gate.clone();
            let request_log = request_log.clone();
            let handler = hyper::service::service_fn(move |mut request: Request<Incoming>| {
                let service = service.clone();
                let gate = gate.clone();
                let request_log = request_log.clone();
                async move {
                    let started = Instant::now();
                    let method = request.method().clone();
                    // The path only: a WebSocket's ?token= must never reach the log.
                    let path = request.uri().path().to_owned();
                    let origin = request.headers().get(header::ORIGIN).cloned();
                    let admitted = match gate.preflight(&method, request.headers()) {
                        Some(answer) => Err(answer),
                        None => gate
                            .admit(
                                &method,
                                &path,
                                request.uri().query(),
                                request.headers(),
                                peer.ip(),
                            )
                            .map_err(|e| e.into_response()),
                    };
                    let mut response = match admitted {
                        Ok(identity) => {
                            request.extensions_mut().insert(identity);
                            let body_headers = BodyHeaders::of(request.headers());
                            request.extensions_mut().insert(body_headers);
                            // HEAD is GET without the body (load balancers check health
                            // with it); hyper leaves the body out of a HEAD's answer.
                            if method == Method::HEAD {
                                *request.method_mut() = Method::GET;
                            }
                            match service.clone().call(request).await {
                                Ok(response) => response,
                                Err(never) => match never {},
                            }
                        }
                        Err(answer) => answer,
                    };
                    gate.decorate(origin.as_ref(), &mut response);
                    crate::metrics::request(
                        crate::metrics::route_of(&path),
                        method.as_str(),
                        response.status().as_u16(),
                        started.elapsed(),
                    );
                    request_log.record(
                        &method,
                        &path,
                        response.status().as_u16(),
                        started.elapsed(),
                        peer,
                    );
                    Ok::<_, std::convert::Infallible>(response)
                }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .serve_connection(TokioIo::new(stream), handler)
                .with_upgrades();
            let shutdown = state.shutdown.clone();
            connections.spawn(async move {
                let _permit = permit;
                let mut connection = std::pin::pin!(connection);
                let result = tokio::select! {
                    result = connection.as_mut() => result,
                    _ = shutdown.cancelled() => {
                        // Finishes the request in flight, then closes; idle ones close now.
                        connection.as_mut().graceful_shutdown();
                        connection.await
                    }
                };
                if let Err(e) = result {
                    log::debug!("connection from {peer}: {e}");
                }
            });
        }

        drop(listener);
        log::info!("shutting down: closing WebSockets and finishing requests");
        state.shutdown.cancel();
        state.tasks.close();
        connections.close();
        let drained = tokio::time::timeout(shutdown_timeout, async {
            connections.wait().await;
            state.tasks.wait().await;
        })
        .await;
        if drained.is_err() {
            log::warn!(
                "shutdown: connections still open after {shutdown_timeout:?}; dropping them"
            );
        }
        let _ = tokio::join!(
            futures::future::join_all(hubs_stopped),
            reports,
            upkeep,
            quiet,
            space
        );
        state.store.close().await;
        fanout.shutdown_background();
        if store_broken.is_cancelled() {
            log::error!("stopped: the store cannot go on without a restart");
            return Ended::StoreBroken;
        }
        log::info!("stopped");
        Ended::Asked
    }
}

/// Makes a store from the catalogue and the feed.
type GivenStore = Box<dyn FnOnce(&Catalogue, &Feed) -> Arc<dyn Store> + Send>;

/// Why a server stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Shutdown was asked for (a signal).
    Asked,
    /// Its store lost a write and cannot go on: it drained and stopped, to be restarted.
    StoreBroken,
}

/// Tokens from the tokens file, or an open server (loudly) when there is none.
fn open_auth(config: &Config) -> Result<Auth, StartError> {
    match &config.tokens {
        Some(file) => {
            let auth = Auth::from_file(file, config.public.clone())?;
            log::info!(
                "auth: {} tokens from {}; public without a token: {}",
                auth.token_count(),
                file.display(),
                config.public.join(", ")
            );
            Ok(auth)
        }
        None if config.require_auth => Err(StartError::AuthRequired),
        None => {
            log::warn!(
                "NO TOKENS FILE: the server is open; anyone who can reach it may post pours as any tap and delete history (set --tokens, or --require-auth to forbid this)"
            );
            Ok(Auth::open())
        }
    }
}

/// Refusals are summed up in the log every interval; rate-limiter keys that went quiet are
/// forgotten every minute.
async fn upkeep(gate: Arc<Gate>, request_log: Arc<RequestLog>, shutdown: CancellationToken) {
    let every = request_log.interval();
    let mut summaries = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    let mut forget = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => {
                request_log.summarize();
                return;
            }
            _ = summaries.tick() => request_log.summarize(),
            _ = forget.tick() => gate.forget_quiet_keys(),
        }
    }
}

/// The database's settings from the configuration, its password read from its file.
pub fn database_settings(config: &Config) -> Result<Option<PgSettings>, StartError> {
    let Some(url) = config.database() else {
        return Ok(None);
    };
    let password = match &config.database_password_file {
        Some(file) => Some(
            std::fs::read_to_string(file)
                .map_err(|e| {
                    StartError::Config(format!(
                        "cannot read --database-password-file {}: {e}",
                        file.display()
                    ))
                })?
                .trim_end_matches(['\r', '\n'])
                .to_owned(),
        ),
        None => None,
    };
    Ok(Some(PgSettings {
        url,
        password,
        rules: decide::Settings::from_config(config),
        poll_interval: config.database_poll_interval,
    }))
}

/// What a pour's volume must be to be stored.
fn intake(config: &Config) -> Intake {
    Intake {
        max_volume: config.max_volume,
        reject_unclassified: config.reject_unclassified,
    }
}

/// The PostgreSQL store if a database is named; else the ephemeral store, or the durable
/// one recovered from the data directory.
async fn open_store(
    config: &Config,
    catalogue: &Catalogue,
    feed: &Feed,
) -> Result<Arc<dyn Store>, StartError> {
    if let Some(settings) = database_settings(config)? {
        if config.ephemeral {
            return Err(StartError::Config(
                "--ephemeral and --database-url name two different stores; choose one".into(),
            ));
        }
        let (store, opened) = PgStore::open(settings, feed.clone()).await?;
        let migrated = match opened.migrated.as_slice() {
            [] => String::new(),
            versions => format!(
                ", migrated now to {}",
                versions
                    .iter()
                    .map(|v| format!("v{v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        log::info!(
            "store: PostgreSQL at {} (schema v{}{migrated}): {} {}, last id {}; read in {:.0?}",
            opened.place,
            opened.schema,
            crate::human::count(opened.pours),
            if opened.pours == 1 { "pour" } else { "pours" },
            crate::human::count(opened.last_id),
            opened.took
        );
        return Ok(Arc::new(store));
    }
    let settings = JournalSettings {
        rules: decide::Settings::from_config(config),
        compact_min_bytes: config.compact_min_bytes,
    };
    if config.ephemeral {
        log::warn!("store: in memory only (--ephemeral); pours are lost when the server stops");
        return Ok(Arc::new(JournalStore::ephemeral(feed.clone(), settings)));
    }
    let dir = config.data_dir();
    let catalogue = catalogue.clone();
    let feed = feed.clone();
    // Recovery reads the whole journal: off the async workers.
    let opened =
        tokio::task::spawn_blocking(move || JournalStore::open(&dir, &catalogue, feed, settings))
            .await
            .map_err(|e| JournalError::Io {
                path: config.data_dir(),
                source: std::io::Error::other(e.to_string()),
            })??;
    let (ledger, opened) = opened;
    let last_id = ledger.stats().await.map_or(0, |s| s.last_id);
    // Absolute: a relative --data-dir follows the working directory, and an empty store
    // opened from the wrong folder must not look like lost pours.
    let dir = std::fs::canonicalize(config.data_dir()).unwrap_or_else(|_| config.data_dir());
    if opened.recovery.records == 0 {
        log::info!("store: opened {}: empty, a new journal", dir.display());
    } else {
        log::info!(
            "store: opened {}: {} {}, last id {}; {} idempotency keys; {} records read in {:.0?}",
            dir.display(),
            crate::human::count(opened.pours),
            if opened.pours == 1 { "pour" } else { "pours" },
            crate::human::count(last_id),
            crate::human::count(opened.keys as u64),
            crate::human::count(opened.recovery.records),
            opened.took
        );
    }
    Ok(Arc::new(ledger))
}

/// Logs each tap that goes quiet, once: every server looks, and the store takes the first
/// word for a tap and refuses the rest (the tap is quiet already), so subscribers hear it
/// once, from every server.
async fn watch_quiet_taps(state: AppState) {
    let quiet_ms = i64::try_from(state.pouring.quiet_after.as_millis()).unwrap_or(i64::MAX);
    let every =
        (state.pouring.quiet_after / 4).clamp(Duration::from_millis(100), Duration::from_secs(15));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = state.shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = Timestamp::now();
        let quiet = state
            .bar
            .cellar(|c| c.newly_quiet(now, quiet_ms, |at| state.pouring.rules.open_at(at)));
        for (tap_id, last_pour) in quiet {
            let op = KegOp::Quiet {
                tap_id,
                last_pour,
                at: now,
            };
            match state.store.keg(op, None).await {
                Ok(Ok(_)) => log::info!("tap {tap_id} is quiet"),
                // Another server said so first, or the tap poured meanwhile.
                Ok(Err(_)) => {}
                Err(e) => log::debug!("tap {tap_id} is quiet, but the store cannot say so: {e}"),
            }
        }
    }
}

/// Logs once when the data directory's filesystem runs low on space, and once when it
/// has room again: an operator hears of it before writes are refused.
async fn watch_space(state: AppState, (threshold, every): (u64, Duration)) {
    let Some(dir) = state.store.data_dir().map(std::path::Path::to_owned) else {
        return;
    };
    let mut low = LowSpace::new(threshold);
    let mut unreadable = false;
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = state.shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let free = match crate::disk::free_bytes(&dir) {
            Ok(free) => free,
            Err(e) => {
                if !std::mem::replace(&mut unreadable, true) {
                    log::warn!(
                        "store: cannot read the free space of {} ({e})",
                        dir.display()
                    );
                }
                continue;
            }
        };
        unreadable = false;
        match low.observe(free) {
            Some(disk::Change::Low) => log::warn!(
                "store: low on space: {} free on {} (warning under {}); writes are refused when it runs out",
                human::bytes(free),
                dir.display(),
                human::bytes(threshold)
            ),
            Some(disk::Change::Recovered) => log::info!(
                "store: space is back: {} free on {}",
                human::bytes(free),
                dir.display()
            ),
            None => {}
        }
    }
}

/// Publishes a report every `every` until shutdown.
async fn report_loop(feed: Feed, every: Duration, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => { feed.publish_report(); }
        }
    }
}

/// A server running in a background task: what tests and embedders start.
pub struct RunningServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its tokens, for reloading them as SIGHUP does.
    pub auth: Arc<Auth>,
    stop: CancellationToken,
    task: JoinHandle<Ended>,
}

impl RunningServer {
    /// Binds as `config` says and serves in a background task.
    pub async fn start(config: Config) -> Result<RunningServer, StartError> {
        let server = Server::bind(config).await?;
        let addr = server.local_addr().map_err(|source| StartError::Bind {
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            source,
        })?;
        let auth = server.auth();
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        let task = tokio::spawn(server.run(async move { stopped.cancelled().await }));
        Ok(RunningServer {
            addr,
            auth,
            stop,
            task,
        })
    }

    /// Begins a graceful shutdown, as SIGTERM does.
    pub fn begin_shutdown(&self) {
        self.stop.cancel();
    }

    /// Shuts down gracefully and waits until the server has stopped.
    pub async fn shutdown(self) {
        self.stop.cancel();
        self.stopped().await;
    }

    /// Waits until the server has stopped.
    pub async fn stopped(self) {
        if let Err(e) = self.task.await {
            log::error!("server task failed: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[tokio::test]
    async fn a_store_that_lost_a_write_stops_the_server_which_exits_non_zero() {
        let dir = std::env::temp_dir().join(format!("altair-server-fsync-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let config = Config::try_parse_from(["altair-server", "--bind", "127.0.0.1:0"]).unwrap();
        let journal_dir = dir.clone();
        let failing: GivenStore = Box::new(move |catalogue: &Catalogue, feed: &Feed| {
            let settings = JournalSettings {
                rules: decide::Settings {
                    key_ttl: decide::KeyTtl::new(Duration::from_secs(60)),
                    burst: crate::anomaly::Burst { max_flow: 200.0 },
                },
                compact_min_bytes: u64::MAX,
            };
            Arc::new(JournalStore::failing_syncs(
                &journal_dir,
                catalogue,
                feed.clone(),
                settings,
            ))
        });
        let server = Server::bind_with(config, Some(failing)).await.unwrap();
        let addr = server.local_addr().unwrap();
        let serving = tokio::spawn(server.run(std::future::pending()));
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let body = r#"{"tapId": 1, "volume": 500}"#;
        let request = format!(
            "POST /api/beers HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
        let ended = tokio::time::timeout(Duration::from_secs(10), serving)
            .await
            .expect("the server stops by itself")
            .unwrap();
        assert_eq!(
            ended,
            Ended::StoreBroken,
            "and says so, for a non-zero exit"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
