//! The request pipeline: each connection's requests pass the gate, are routed, and are
//! counted in the metrics and logged, one line each.
//!
//! Connections are accepted by the server, not by `warp::serve`, so that each socket gets
//! `TCP_NODELAY` (small event frames must not wait for Nagle), each request is logged with
//! its peer, and header reads time out.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_service::Service;
use warp::Reply;
use warp::http::{Method, Request, header};

use super::gate::Gate;
use super::request::BodyHeaders;
use super::request_log::RequestLog;
use super::state::AppState;

/// What serves every connection: the routes, behind the gate, counted and logged.
#[derive(Clone)]
pub struct Pipeline {
    routes: warp::filters::BoxedFilter<(warp::reply::Response,)>,
    gate: Arc<Gate>,
    request_log: Arc<RequestLog>,
    header_timeout: Duration,
}

impl Pipeline {
    pub fn new(state: &AppState, request_log: Arc<RequestLog>, header_timeout: Duration) -> Self {
        Pipeline {
            routes: super::routes(state.clone()),
            gate: state.gate.clone(),
            request_log,
            header_timeout,
        }
    }

    /// Accepts connections and serves each in a task of its own until `stop` completes; the
    /// connections' tasks, which shutdown lets finish their request in flight. At most
    /// `max_connections` at once: past it, new ones wait in the listen backlog.
    pub async fn accept(
        &self,
        listener: &TcpListener,
        max_connections: u32,
        shutdown: &CancellationToken,
        stop: impl Future<Output = ()>,
    ) -> TaskTracker {
        let connections = TaskTracker::new();
        let open = Arc::new(tokio::sync::Semaphore::new(max_connections as usize));
        let mut stop = std::pin::pin!(stop);
        loop {
            let permit = tokio::select! {
                _ = &mut stop => break,
                permit = open.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => break,
                },
            };
            let (stream, peer) = tokio::select! {
                _ = &mut stop => break,
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
            let (pipeline, shutdown) = (self.clone(), shutdown.clone());
            connections.spawn(async move {
                let _permit = permit;
                pipeline.serve(stream, peer, shutdown).await;
            });
        }
        connections
    }

    /// Serves one connection until it closes; on `shutdown`, finishes the request in
    /// flight, then closes (idle connections close at once).
    async fn serve(&self, stream: TcpStream, peer: SocketAddr, shutdown: CancellationToken) {
        if let Err(e) = stream.set_nodelay(true) {
            log::debug!("TCP_NODELAY on {peer}: {e}");
        }
        let pipeline = self.clone();
        let handler = hyper::service::service_fn(move |request: Request<Incoming>| {
            let pipeline = pipeline.clone();
            async move { Ok::<_, Infallible>(pipeline.answer(request, peer).await) }
        });
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(self.header_timeout)
            .serve_connection(TokioIo::new(stream), handler)
            .with_upgrades();
        let mut connection = std::pin::pin!(connection);
        let result = tokio::select! {
            result = connection.as_mut() => result,
            _ = shutdown.cancelled() => {
                connection.as_mut().graceful_shutdown();
                connection.await
            }
        };
        if let Err(e) = result {
            log::debug!("connection from {peer}: {e}");
        }
    }

    /// One request: the gate, then the routes; counted and logged whatever the answer.
    async fn answer(
        &self,
        mut request: Request<Incoming>,
        peer: SocketAddr,
    ) -> warp::reply::Response {
        let started = Instant::now();
        let method = request.method().clone();
        // The path only: a WebSocket's ?token= must never reach the log.
        let path = request.uri().path().to_owned();
        let origin = request.headers().get(header::ORIGIN).cloned();
        let route = super::routes::find(&path);
        let gate = &self.gate;
        let admitted = match gate.preflight(&method, request.headers()) {
            Some(answer) => Err(answer),
            None => gate
                .admit(
                    &method,
                    (&path, route),
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
                // HEAD is GET without the body (load balancers check health with it);
                // hyper leaves the body out of a HEAD's answer.
                if method == Method::HEAD {
                    *request.method_mut() = Method::GET;
                }
                let mut service = warp::service(self.routes.clone());
                match service.call(request).await {
                    Ok(response) => response,
                    Err(never) => match never {},
                }
            }
            Err(answer) => answer,
        };
        gate.decorate(origin.as_ref(), &mut response);
        let status = response.status().as_u16();
        crate::metrics::request(
            super::routes::label_of(route),
            method.as_str(),
            status,
            started.elapsed(),
        );
        self.request_log
            .record(&method, &path, status, started.elapsed(), peer);
        response
    }
}
