//! The server's life: it composes the rest. It builds the shared state, starts the hub's
//! threads and the background tasks, serves connections, and shuts down gracefully.
//!
//! Three places where work runs: the caller's runtime serves HTTP; the hub has a thread per
//! core, each writing to its share of the subscribers, since a sweep of writes to thousands
//! of sockets runs for milliseconds without a pause; a second runtime (`AppState::fanout`)
//! runs each WebSocket connection's task. The OS scheduler, not a task queue, shares the
//! CPU among them, so ingest never queues behind fan-out.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::alert::AlertSettings;
use crate::auth::{Auth, TokensError};
use crate::bar::Bar;
use crate::bus::Bus;
use crate::config::Config;
use crate::courier::Courier;
use crate::feed::Feed;
use crate::glass::{Catalogue, CatalogueError};
use crate::http::{AppState, Pipeline, RequestLog, Shared};
use crate::keg::CellarSettings;
use crate::store::{OpenError, Store};
use crate::tasks;
use crate::venue::Defaults;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Catalogue(#[from] CatalogueError),
    #[error(transparent)]
    Store(#[from] OpenError),
    #[error(transparent)]
    Tokens(#[from] TokensError),
    #[error(transparent)]
    Courier(#[from] crate::courier::CourierError),
    #[error(transparent)]
    Mqtt(#[from] crate::mqtt::SettingsError),
    #[error("cannot start the fan-out threads: {source}")]
    Runtime { source: std::io::Error },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// The webhooks' delivery schedule the configuration sets.
fn schedule(config: &Config) -> crate::webhook::Schedule {
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    crate::webhook::Schedule {
        delays_ms: config.webhook_retries.0.iter().map(|d| ms(*d)).collect(),
        disable_after_ms: ms(config.webhook_disable_after),
        timeout_ms: ms(config.webhook_timeout),
    }
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
    /// How to reach the MQTT broker, with `--mqtt-url`.
    mqtt: Option<crate::mqtt::Settings>,
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
            Defaults::of(&config),
            CellarSettings::new(&catalogue),
            AlertSettings {
                window_ms: i64::try_from(config.alert_window.as_millis()).unwrap_or(i64::MAX),
                variance_goal: config.variance_goal,
            },
        );
        let bus = Bus::new(config.bus_capacity as usize);
        let feed = Feed::new(bar.clone(), bus.clone(), config.report_every);
        let auth = Arc::new(Auth::from_config(&config)?);
        // Before the store: a port that is taken must not leave a data directory behind.
        // Connections wait in the backlog while the store recovers.
        let addr = config.listen_addr();
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })?;
        let port = listener.local_addr().map_or(addr.port(), |a| a.port());
        // Before the store too: a password file that cannot be read creates nothing.
        let mut mqtt = crate::mqtt::Settings::of(&config, port)?;
        let store = match given {
            Some(make) => make(&catalogue, &feed),
            None => crate::store::open(&config, &catalogue, &feed).await?,
        };
        if let Some(mqtt) = &mut mqtt {
            mqtt.shared = store.kind() == "postgres";
        }
        let retired = bar.retired_glasses();
        if let Some(made) = bar.venues(|v| v.made_as_other(&config.default_venue)) {
            log::warn!(
                "--default-venue {} names a venue made through the API ({made}); as the default \
                 venue its settings are the flags, and what it was made with is set aside",
                config.default_venue
            );
        }
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
        let openapi = crate::http::openapi::served(&config, &auth, &catalogue, &retired);
        let courier = Courier::new(store.clone(), feed.clone(), schedule(&config))?;
        let state = AppState::new(
            &config,
            Shared {
                store,
                bar,
                bus,
                feed,
                catalogue,
                auth,
                retired,
                openapi,
                courier,
            },
            fanout.handle().clone(),
        );
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
            mqtt,
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
            mqtt,
        } = self;
        if let Ok(addr) = listener.local_addr() {
            log::info!(
                "listening on {addr}; store: {}; glasses: {}",
                state.store.kind(),
                state.pouring.catalogue.names()
            );
        }
        let hubs_stopped = state
            .hub
            .start(hubs, &state.bus, &state.shutdown, &state.fanout);
        let mut chores = tasks::start(&state, &request_log, report_interval, low_space);
        chores.push(tokio::spawn(
            state.courier.clone().run(state.shutdown.child_token()),
        ));
        if let (Some(settings), Some(link)) = (mqtt, state.mqtt.clone()) {
            let intake = crate::mqtt::Intake {
                store: state.store.clone(),
                bar: state.bar.clone(),
                bus: state.bus.clone(),
                pouring: state.pouring.clone(),
                thermometers: settings.thermometers(),
            };
            chores.push(tokio::spawn(crate::mqtt::run(
                settings,
                intake,
                link,
                state.shutdown.child_token(),
            )));
        }
        // A store that cannot go on without a restart stops the server as a signal would.
        let store_broken = state.store.broken().unwrap_or_default();
        let broke = store_broken.clone();
        let shutdown = async move {
            tokio::select! {
                () = shutdown => {}
                () = broke.cancelled() => {}
            }
        };
        let pipeline = Pipeline::new(&state, request_log.clone(), header_timeout);
        let connections = pipeline
            .accept(&listener, max_connections, &state.shutdown, shutdown)
            .await;
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
            futures::future::join_all(chores)
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
    use crate::decide;
    use crate::store::{JournalSettings, JournalStore};

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
                default_venue: "main".into(),
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
