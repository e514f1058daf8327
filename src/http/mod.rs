//! The HTTP API: one filter per route, in the order of the README's API reference.
//!
//! Handlers never reject: they answer errors themselves, so a rejection always means "this
//! route or method does not exist" and each path's last filter can answer 405 with `Allow`.

//!
//! Inside, modules only look down: [`error`] and [`gate`] know nothing of routes; [`state`]
//! holds what handlers share; [`request`] and [`reply`] are what every handler uses;
//! `beers`, `kegs`, `operations` and [`socket`] are the handlers; [`openapi`] documents them;
//! `page` serves the operations page's files; this file is the table of routes.

pub mod error;
pub mod gate;
pub mod openapi;
pub mod pipeline;
pub mod reply;
pub mod request;
pub mod request_log;
pub mod socket;
pub mod state;

mod beers;
mod kegs;
mod operations;
mod page;

use warp::filters::BoxedFilter;
use warp::http::{HeaderMap, Method};
use warp::reply::Response;
use warp::{Filter, Reply};

pub use error::{ApiError, ErrorBody, recover};
pub use gate::{Gate, GateSettings};
pub use pipeline::Pipeline;
pub use request::BodyHeaders;
pub use request_log::RequestLog;
pub use state::{AppState, Pouring, Shared, SocketSettings};

use crate::auth::{Identity, Need};
use reply::answer;
use request::{body_headers, body_limited, identity, not_allowed, raw_query, require, with_state};

/// Largest request body accepted.
pub const BODY_LIMIT: u64 = 16 * 1024;

/// Every route, with JSON errors for everything that matches none.
pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    let beers = warp::path!("api" / "beers").and(
        list(state.clone())
            .or(create(state.clone()))
            .unify()
            .or(not_allowed("GET, POST"))
            .unify(),
    );
    let beer = warp::path!("api" / "beers" / String)
        .and(warp::method())
        .and(with_state(state.clone()))
        .and(identity())
        .then(
            |id: String, method: Method, state: AppState, who: Option<Identity>| async move {
                match method {
                    Method::GET => answer(
                        async {
                            require(&who, Need::Read)?;
                            beers::show(&state, &id).await
                        }
                        .await,
                    ),
                    Method::DELETE => answer(
                        async {
                            require(&who, Need::Delete)?;
                            beers::delete(&state, &id).await
                        }
                        .await,
                    ),
                    _ => ApiError::MethodNotAllowed {
                        allow: "GET, DELETE",
                    }
                    .into_response(),
                }
            },
        );
    beers
        .or(beer)
        .unify()
        .or(glasses(state.clone()))
        .unify()
        .or(keg_routes(state.clone()))
        .unify()
        .or(report(state.clone()))
        .unify()
        .or(health(state.clone()))
        .unify()
        .or(metrics(state.clone()))
        .unify()
        .or(socket(state.clone()))
        .unify()
        .or(documentation(state))
        .unify()
        .or(page())
        .unify()
        .recover(recover)
        .unify()
        .boxed()
}

/// `GET /api/beers?page=&page_size=&type=&tapId=&from=&to=&after=`
fn list(state: AppState) -> BoxedFilter<(Response,)> {
    warp::get()
        .and(with_state(state))
        .and(raw_query())
        .and(identity())
        .then(
            |state: AppState, query: String, who: Option<Identity>| async move {
                answer(
                    async {
                        require(&who, Need::Read)?;
                        beers::list(&state, &query).await
                    }
                    .await,
                )
            },
        )
        .boxed()
}

/// `POST /api/beers` with `{"tapId", "volume", "timestamp"?}`
fn create(state: AppState) -> BoxedFilter<(Response,)> {
    warp::post()
        .and(with_state(state))
        .and(body_headers())
        .and(body_limited(BODY_LIMIT))
        .and(identity())
        .then(
            |state: AppState,
             headers: BodyHeaders,
             body: Result<bytes::Bytes, ApiError>,
             who: Option<Identity>| async move {
                answer(beers::create(&state, &headers, body, who).await)
            },
        )
        .boxed()
}

/// `/api/kegs`, `/api/kegs/sizes`, `/api/kegs/{id}`, `/api/kegs/{id}/finish`, `/api/taps`
fn keg_routes(state: AppState) -> BoxedFilter<(Response,)> {
    let read = |state: &AppState| with_state(state.clone()).and(identity());
    let all = warp::path!("api" / "kegs").and(
        warp::get()
            .and(read(&state))
            .and(raw_query())
            .map(|state: AppState, who: Option<Identity>, query: String| {
                answer(require(&who, Need::Read).and_then(|()| kegs::list(&state, &query)))
            })
            .or(warp::post()
                .and(read(&state))
                .and(body_headers())
                .and(body_limited(BODY_LIMIT))
                .then(
                    |state: AppState,
                     who: Option<Identity>,
                     headers: BodyHeaders,
                     body: Result<bytes::Bytes, ApiError>| async move {
                        answer(
                            async {
                                require(&who, Need::Manage)?;
                                kegs::create(&state, &headers, body).await
                            }
                            .await,
                        )
                    },
                ))
            .unify()
            .or(not_allowed("GET, POST"))
            .unify(),
    );
    let sizes = warp::path!("api" / "kegs" / "sizes").and(
        warp::get()
            .and(identity())
            .map(|who: Option<Identity>| answer(require(&who, Need::Read).map(|()| kegs::sizes())))
            .or(not_allowed("GET"))
            .unify(),
    );
    let one = warp::path!("api" / "kegs" / String)
        .and(warp::method())
        .and(read(&state))
        .and(body_headers())
        .and(body_limited(BODY_LIMIT))
        .then(
            |id: String,
             method: Method,
             state: AppState,
             who: Option<Identity>,
             headers: BodyHeaders,
             body: Result<bytes::Bytes, ApiError>| async move {
                match method {
                    Method::GET => {
                        answer(require(&who, Need::Read).and_then(|()| kegs::show(&state, &id)))
                    }
                    Method::PATCH => answer(
                        async {
                            require(&who, Need::Manage)?;
                            kegs::correct(&state, &id, &headers, body).await
                        }
                        .await,
                    ),
                    _ => ApiError::MethodNotAllowed {
                        allow: "GET, PATCH",
                    }
                    .into_response(),
                }
            },
        );
    let finish = warp::path!("api" / "kegs" / String / "finish")
        .and(warp::method())
        .and(read(&state))
        .and(body_headers())
        .then(
            |id: String,
             method: Method,
             state: AppState,
             who: Option<Identity>,
             headers: BodyHeaders| async move {
                if method != Method::POST {
                    return ApiError::MethodNotAllowed { allow: "POST" }.into_response();
                }
                answer(
                    async {
                        require(&who, Need::Manage)?;
                        kegs::finish(&state, &id, &headers).await
                    }
                    .await,
                )
            },
        );
    let tap = warp::path!("api" / "taps" / String)
        .and(warp::method())
        .and(read(&state))
        .and(body_headers())
        .and(body_limited(BODY_LIMIT))
        .then(
            |id: String,
             method: Method,
             state: AppState,
             who: Option<Identity>,
             headers: BodyHeaders,
             body: Result<bytes::Bytes, ApiError>| async move {
                match method {
                    Method::GET => {
                        answer(require(&who, Need::Read).and_then(|()| kegs::tap(&state, &id)))
                    }
                    Method::PATCH => answer(
                        async {
                            require(&who, Need::Manage)?;
                            kegs::set_tap(&state, &id, &headers, body).await
                        }
                        .await,
                    ),
                    _ => ApiError::MethodNotAllowed {
                        allow: "GET, PATCH",
                    }
                    .into_response(),
                }
            },
        );
    let taps = warp::path!("api" / "taps").and(
        warp::get()
            .and(read(&state))
            .map(|state: AppState, who: Option<Identity>| {
                answer(require(&who, Need::Read).map(|()| kegs::taps(&state)))
            })
            .or(not_allowed("GET"))
            .unify(),
    );
    all.or(sizes)
        .unify()
        .or(one)
        .unify()
        .or(finish)
        .unify()
        .or(taps)
        .unify()
        .or(tap)
        .unify()
        .boxed()
}

/// `GET /api/glasses`
fn glasses(state: AppState) -> BoxedFilter<(Response,)> {
    warp::path!("api" / "glasses")
        .and(
            warp::get()
                .and(with_state(state))
                .and(identity())
                .map(|state: AppState, who: Option<Identity>| answer(beers::glasses(&state, &who)))
                .or(not_allowed("GET"))
                .unify(),
        )
        .boxed()
}

/// `GET /api/report`
fn report(state: AppState) -> BoxedFilter<(Response,)> {
    warp::path!("api" / "report")
        .and(
            warp::get()
                .and(with_state(state))
                .and(identity())
                .map(|state: AppState, who: Option<Identity>| answer(beers::report(&state, &who)))
                .or(not_allowed("GET"))
                .unify(),
        )
        .boxed()
}

/// `GET /health`
fn health(state: AppState) -> BoxedFilter<(Response,)> {
    warp::path!("health")
        .and(
            warp::get()
                .and(with_state(state))
                .then(|state: AppState| async move { answer(operations::health(&state).await) })
                .or(not_allowed("GET"))
                .unify(),
        )
        .boxed()
}

/// `GET /metrics` (Prometheus text format)
fn metrics(state: AppState) -> BoxedFilter<(Response,)> {
    warp::path!("metrics")
        .and(
            warp::get()
                .and(with_state(state))
                .and(identity())
                .then(|state: AppState, who: Option<Identity>| async move {
                    answer(operations::metrics(&state, &who).await)
                })
                .or(not_allowed("GET"))
                .unify(),
        )
        .boxed()
}

/// `GET /` and `GET /ops/...`: the live operations page.
fn page() -> BoxedFilter<(Response,)> {
    let root = warp::path::end();
    let files = warp::path("ops")
        .and(warp::path::tail())
        .map(|_| ())
        .untuple_one();
    root.or(files)
        .unify()
        .and(
            warp::get()
                .and(warp::path::full())
                .and(warp::header::headers_cloned())
                .map(|path: warp::path::FullPath, headers: HeaderMap| {
                    page::serve(path.as_str(), &headers)
                })
                .or(not_allowed("GET"))
                .unify(),
        )
        .boxed()
}

/// `GET /api/openapi.json`, `GET /api/events.schema.json`, `GET /docs/...`
fn documentation(state: AppState) -> BoxedFilter<(Response,)> {
    let document = warp::path!("api" / "openapi.json").and(
        warp::get()
            .and(with_state(state))
            .map(|state: AppState| openapi::openapi_json(&state))
            .or(not_allowed("GET"))
            .unify(),
    );
    let events = warp::path!("api" / "events.schema.json").and(
        warp::get()
            .map(openapi::events_schema_json)
            .or(not_allowed("GET"))
            .unify(),
    );
    let ui = warp::path("docs").and(
        warp::get()
            .and(warp::path::full())
            .and(warp::path::tail())
            .map(|full: warp::path::FullPath, tail: warp::path::Tail| {
                openapi::docs(full.as_str(), tail.as_str())
            })
            .or(not_allowed("GET"))
            .unify(),
    );
    document.or(events).unify().or(ui).unify().boxed()
}

/// `GET /sockets/beers` (WebSocket)
fn socket(state: AppState) -> BoxedFilter<(Response,)> {
    warp::path!("sockets" / "beers")
        .and(
            warp::get()
                .and(warp::header::headers_cloned())
                .and(warp::ext::optional::<hyper::upgrade::OnUpgrade>())
                .and(raw_query())
                .and(with_state(state))
                .and(identity())
                .map(
                    |headers: HeaderMap,
                     upgrade: Option<hyper::upgrade::OnUpgrade>,
                     query: String,
                     state: AppState,
                     who: Option<Identity>| {
                        answer(socket::subscribe(&headers, upgrade, &query, &state, &who))
                    },
                )
                .or(not_allowed("GET"))
                .unify(),
        )
        .boxed()
}
