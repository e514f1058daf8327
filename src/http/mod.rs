//! The HTTP API. The router here serves [`routes::ROUTES`], the one table of routes: each
//! route's handler behind its path, then 405 with the route's `Allow`.
//!
//! Handlers never reject: they answer errors themselves, so a rejection after the path
//! matched always means "this method is not served here".
//!
//! Inside, modules only look down: [`routes`] (the table) and [`error`] know nothing of
//! handlers; [`gate`] checks a request against the table before routing; [`pipeline`]
//! carries each connection's requests through the gate to the router; [`state`] holds what
//! handlers share; [`request`] and [`reply`] are what every handler uses, and [`scope`]
//! which venues a caller sees; `beers`, `kegs`,
//! `venues`, `alerts`, `sales` (the till's sales and the variance), `operations` and
//! [`socket`] are the handlers; [`openapi`] documents them; `page` serves
//! the operations page's files; this file is the router.

pub mod error;
pub mod gate;
pub mod openapi;
pub mod pipeline;
pub mod reply;
pub mod request;
pub mod request_log;
pub mod routes;
pub mod scope;
pub mod socket;
pub mod state;

mod alerts;
mod beers;
mod csv;
mod export;
mod history;
mod kegcop;
mod kegs;
mod operations;
mod page;
mod sales;
mod temperatures;
mod venues;
mod webhooks;

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

use crate::auth::Identity;
use reply::answer;
use request::{body_headers, body_limited, identity, raw_query, with_state};
use routes::{Handler, Route};

/// Largest request body accepted.
pub const BODY_LIMIT: u64 = 16 * 1024;

/// Every route of the table, with JSON errors for everything that matches none.
pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    // Nested from the last route in, so that the first (`/api/beers`, where pours arrive)
    // is tried first and at no depth.
    let none = warp::any()
        .and_then(|| async { Err::<Response, _>(warp::reject::not_found()) })
        .boxed();
    routes::ROUTES
        .iter()
        .rev()
        .fold(none, |rest, route| {
            serve(route, &state).or(rest).unify().boxed()
        })
        .recover(recover)
        .unify()
        .boxed()
}

/// A route: its handler behind its path, then 405 with its `Allow` for any other method.
fn serve(route: &'static Route, state: &AppState) -> BoxedFilter<(Response,)> {
    let at = at(route);
    let state = state.clone();
    let handled = match route.handler {
        Handler::Beers => ignore(&at, list(state.clone()).or(create(state)).unify()),
        Handler::VenueBeers => venue_pour(&at, state),
        Handler::Export => ignore(&at, export(state)),
        Handler::AdminExport => ignore(&at, admin_export(state)),
        Handler::Beer => beer(&at, state),
        Handler::Glasses => ignore(&at, glasses(state)),
        Handler::Kegs => ignore(&at, kegs_list(state.clone()).or(keg_new(state)).unify()),
        Handler::KegSizes => ignore(&at, keg_sizes()),
        Handler::Keg => keg(&at, state),
        Handler::FinishKeg => keg_finish(&at, state),
        Handler::Taps => ignore(&at, taps(state)),
        Handler::Tap => tap(&at, state),
        Handler::TapCleaning => tap_cleaning(&at, state),
        Handler::KegCop => ignore(&at, kegcop(state)),
        Handler::Temperatures => ignore(
            &at,
            temperatures_list(state.clone())
                .or(temperature_new(state))
                .unify(),
        ),
        Handler::Venues => ignore(&at, venues_list(state.clone()).or(venue_new(state)).unify()),
        Handler::Venue => venue(&at, state),
        Handler::Alerts => ignore(&at, alerts_list(state)),
        Handler::Alert => alert(&at, state),
        Handler::AckAlert => alert_ack(&at, state),
        Handler::Webhooks => ignore(
            &at,
            webhooks_list(state.clone()).or(webhook_new(state)).unify(),
        ),
        Handler::Webhook => webhook(&at, state),
        Handler::TestWebhook => webhook_test(&at, state),
        Handler::WebhookDeliveries => webhook_deliveries(&at, state),
        Handler::Report => ignore(&at, report(state)),
        Handler::History => ignore(&at, history(state)),
        Handler::Sales => ignore(&at, sales_import(state)),
        Handler::SalesItems => ignore(&at, sales_items(state)),
        Handler::SalesItem => sales_item(&at, state),
        Handler::Variance => ignore(&at, variance(state)),
        Handler::Health => ignore(&at, health(state)),
        Handler::Metrics => ignore(&at, metrics(state)),
        Handler::Socket => ignore(&at, socket(state)),
        Handler::OpenApi => ignore(&at, openapi_document(state)),
        Handler::EventsSchema => ignore(&at, warp::get().map(openapi::events_schema_json)),
        Handler::Docs => ignore(&at, docs()),
        Handler::Page | Handler::PageFiles => ignore(&at, page()),
    };
    handled
        .or(at.map(move |_| ApiError::MethodNotAllowed { allow: route.allow }.into_response()))
        .unify()
        .boxed()
}

/// Matches the route's path; extracts the segment its `{name}` took (empty if none).
fn at(route: &'static Route) -> BoxedFilter<(String,)> {
    warp::path::full()
        .and_then(move |full: warp::path::FullPath| {
            let param = route.matches(full.as_str()).map(str::to_owned);
            std::future::ready(param.ok_or_else(warp::reject::not_found))
        })
        .boxed()
}

/// `filter` behind the path of a route that takes no `{name}`.
fn ignore<F>(at: &BoxedFilter<(String,)>, filter: F) -> BoxedFilter<(Response,)>
where
    F: Filter<Extract = (Response,), Error = warp::Rejection> + Clone + Send + Sync + 'static,
{
    at.clone()
        .and(filter)
        .map(|_: String, r: Response| r)
        .boxed()
}

/// `GET /api/beers?page=&page_size=&type=&tapId=&from=&to=&after=`
fn list(state: AppState) -> BoxedFilter<(Response,)> {
    warp::get()
        .and(with_state(state))
        .and(raw_query())
        .and(identity())
        .and(warp::header::headers_cloned())
        .then(
            |state: AppState, query: String, who: Option<Identity>, headers: HeaderMap| async move {
                answer(beers::list(&state, &query, &who, &headers).await)
            },
        )
        .boxed()
}

/// `GET /api/beers/export?...&format=csv|ndjson`
fn export(state: AppState) -> BoxedFilter<(Response,)> {
    warp::get()
        .and(with_state(state))
        .and(raw_query())
        .and(identity())
        .and(warp::header::headers_cloned())
        .then(
            |state: AppState, query: String, who: Option<Identity>, headers: HeaderMap| async move {
                answer(export::export(&state, &query, &who, &headers).await)
            },
        )
        .boxed()
}

fn admin_export(state: AppState) -> BoxedFilter<(Response,)> {
    warp::get()
        .and(with_state(state))
        .then(|state: AppState| async move { answer(export::whole_log(&state).await) })
        .boxed()
}

/// `POST /api/beers` with `{"tapId", "volume", "timestamp"?}`: the one route whose handler
/// checks the caller itself (a tap's token pours for its own tap, named in the body).
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
                answer(beers::create(&state, &headers, body, who, None).await)
            },
        )
        .boxed()
}

/// `POST /api/venues/{venue}/beers`: a pour for a venue named in the path.
fn venue_pour(at: &BoxedFilter<(String,)>, state: AppState) -> BoxedFilter<(Response,)> {
    at.clone()
        .and(warp::post())
        .and(with_state(state))
        .and(body_headers())
        .and(body_limited(BODY_LIMIT))
        .and(identity())
        .then(
            |venue: String,
             state: AppState,
             headers: BodyHeaders,
             body: Result<bytes::Bytes, ApiError>,
             who: Option<Identity>| async move {
                answer(beers::create(&state, &headers, body, who, Some(&venue)).await)
            },
        )
        .boxed()
}

/// `GET|DELETE /api/beers/{id}`
fn beer(at: &BoxedFilter<(String,)>, state: AppState) -> BoxedFilter<(Response,)> {
    at.clone()
        .and(warp::get().or(warp::delete()).unify())
        .and(warp::method())
        .and(with_state(state))
        .and(identity())
        .then(
            |id: String, method: Method, state: AppState, who: Option<Identity>| async move {
                if method == Method::DELETE {
                    answer(beers::delete(&state, &id, &who).await)
                } else {
                    answer(beers::show(&state, &id, &who).await)
                }
            },
        )
        .boxed()
}

/// `GET /api/kegs?tapId=&status=`
fn kegs_list(state: AppState) -> BoxedFilter<(Response,)> {
    warp::get()
        .and(with_state(state))
        .and(raw_query())
        .and(identity())
        .and(warp::header::headers_cloned())
        .map(
            |state: AppState, query: String, who: Option<Identity>, headers: HeaderMap| {
                answer(kegs::list(&state, &query, &who, &headers))
            },
        )
        .boxed()
}

/// `POST /api/kegs`
fn keg_new(state: AppState) -> BoxedFilter<(Response,)> {
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
                answer(kegs::create(&state, &headers, body, &who).await)
            },
        )
        .boxed()
}

/// `GET /api/kegs/sizes`
fn keg_sizes() -> BoxedFilter<(Response,)> {
    warp::get().map(|| answer(Ok(kegs::sizes()))).boxed()
}

/// `GET|PATCH /api/kegs/{id}`
fn keg(at: &BoxedFilter<(String,)>, state: AppState) -> BoxedFilter<(Response,)> {
    at.clone()
        .and(warp::get().or(warp::patch()).unify())
        .and(warp::method())
        .and(with_state(state))
        .and(body_headers())
        .and(body_limited(BODY_LIMIT))
        .and(identity())
        .then(
            |id: String,
             method: Method,
             state: AppState,
             headers: BodyHeaders,
             body: Result<bytes::Bytes, ApiError>,
             who: Option<Identity>| async move {
                if method == Method::PATCH {
                    answer(kegs::correct(&state, &id, &headers, body, &who).await)
                } else {
                    answer(kegs::show(&state, &id, &who))
                }
            },
        )
        .boxed()
}

/// `POST /api/kegs/{id}/finish`
fn keg_finish(at: &BoxedFilter<(String,)>, state: AppState) -> BoxedFilter<(Response,)> {
    at.clone()
        .and(warp::post())
        .and(with_state(state))
        .and(body_headers())
        .and(body_limited(BODY_LIMIT))
        .and(identity())
        .then(
            |id: String,
             state: AppState,
             headers: BodyHeaders,
             body: Result<bytes::Bytes, ApiError>,
             who: Option<Identity>| async move {
                answer(kegs::finish(&state, &id, &headers, body, &who).await)
            },
        )
        .boxed()
}

/// `GET /api/taps?venue=`
fn taps(state: AppState) -> BoxedFilter<(Response,)> {
    warp::get()
        .and(with_state(state))
        .and(raw_query())
        .and(identity())
        .then(
            |state: AppState, query: String, who: Option<Identity>| async move {
                answer(kegs::taps(&state, &query, &who).await)
            },
        )
        .boxed()
}

/// `POST /api/kegcop`
fn kegcop(state: AppState) -> BoxedFilter<(Response,)> {
    warp::post()
        .and(with_state(state))
        .and(raw_query())
        .and(body_headers())
        .and(body_limited(BODY_LIMIT))
        .and(identity())
        .then(
            |state: AppState,
             query: String,
             headers: BodyHeaders,
             body: Result<bytes::Bytes, ApiError>,
             who: Option<Identity>| async move {
                answer(kegcop::report(&state, &query, &headers, body, who).await)
            },
        )
        .boxed()
}

/// `GET /api/temperatures`
fn temperatures_list(state: AppState) -> BoxedFilter<(Response,)> {
    warp::get()
        .and(with_state(state))
        .and(raw_query())
        .and(identity())
        .then(
            |state: AppState, query: String, who: Option<Identity>| async move {
                answer(temperatures::list(&state, &query, &who).await)
            },
        )
        .boxed()
}

/// `POST /api/temperatures`
fn temperature_new(state: AppState) -> BoxedFilter<(Response,)> {
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
                answer(temperatures::record(&state, &headers, body, who).await)
            },
        )
        .boxed()
}

/// `GET /api/venues`
fn venues_list(state: AppState) -> BoxedFilter<(Response,)> {
    warp::get()
        .and(with_state(state))
        .and(identity())
        .map(|state: AppState, who: Option<Identity>| answer(Ok(venues::list(&state, &who))))
        .boxed()
}

/// `POST /api/venues`
fn venue_new(state: AppState) -> BoxedFilter<(Response,)> {
    warp::post()
        .and(with_state(state))
        .and(body_headers())
        .and(body_limited(BODY_LIMIT))
        .then(
            |state: AppState, headers: BodyHeaders, body: Result<bytes::Bytes, ApiError>| async move {
                answer(venues::create(&state, &headers, body).await)
            },
        )
        .boxed()
}

/// `GET|PATCH /api/venues/{id}`
fn venue(at: &BoxedFilter<(String,)>, state: AppState) -> BoxedFilter<(Response,)> {
    at.clone()
        .and(warp::get().or(warp::patch()).unify())
        .and(warp::method())
        .and(with_state(state))
        .and(body_headers())
        .and(body_limited(BODY_LIMIT))
        .and(identity())
        .then(
            |id: String,
             method: Method,
             state: AppState,
             headers: BodyHeaders,
             body: Result<bytes::Bytes, ApiError>,
             who: Option<Identity>| async move {
                match method {
                    Method::PATCH => {
                        answer(venues::change_settings(&state, &id, &headers, body).await)
                    }
                    _ => answer(venues::show(&state, &id, &who)),
                }
            },
        )
        .boxed()
}

/// `GET|PATCH /api/taps/{tapId}`
fn tap(at: &BoxedFilter<(String,)>, state: AppState) -> BoxedFilter<(Response,)> {
    at.clone()
        .and(
            warp::get()
                .or(warp::patch())
                .unify()
                .or(warp::delete())
                .unify(),
        )
        .and(warp::method())
        .and(with_state(state))
        .and(raw_query())
        .and(body_headers())
        .and(body_limited(BODY_LIMIT))
        .and(identity())
        .then(
            |id: String,
             method: Method,
             state: AppState,
             query: String,
             headers: BodyHeaders,
             body: Result<bytes::Bytes, ApiError>,
             who: Option<Identity>| async move {
                match method {
                    Method::PATCH => {
                        answer(kegs::set_tap(&state, &id, &query, &headers, body, &who).await)
                    }
                    Method::DELETE => {
                        answer(kegs::forget_tap(&state, &id, &query, &headers, &who).await)
                    }
                    _ => answer(kegs::tap(&state, &id, &query, &who)),
                }
            },
        )
        .boxed()
}

/// `GET /api/alerts?state=&tapId=&kind=&page=&page_size=`
fn alerts_list(state: AppState) -> BoxedFilter<(Response,)> {
    warp::get()
        .and(with_state(state))
        .and(raw_query())
        .and(identity())
        .map(|state: AppState, query: String, who: Option<Identity>| {
            answer(alerts::list(&state, &query, &who))
        })
        .boxed()
}

/// `GET /api/alerts/{id}`
fn alert(at: &BoxedFilter<(String,)>, state: AppState) -> BoxedFilter<(Response,)> {
    at.clone()
        .and(warp::get())
        .and(with_state(state))
        .and(identity())
        .map(|id: String, state: AppState, who: Option<Identity>| {
            answer(alerts::show(&state, &id, &who))
        })
        .boxed()
}

/// `POST /api/alerts/{id}/ack` with `{"note"?}`
fn alert_ack(at: &BoxedFilter<(String,)>, state: AppState) -> BoxedFilter<(Response,)> {
    at.clone()
        .and(warp::post())
        .and(with_state(state))
        .and(body_headers())
        .and(body_limited(BODY_LIMIT))
        .and(identity())
        .then(
            |id: String,
             state: AppState,
             headers: BodyHeaders,
             body: Result<bytes::Bytes, ApiError>,
             who: Option<Identity>| async move {
                answer(alerts::acknowledge(&state, &id, &headers, body, who).await)
            },
        )
        .boxed()
}

/// `GET /api/webhooks`
fn webhooks_list(state: AppState) -> BoxedFilter<(Response,)> {
    warp::get()
        .and(with_state(state))
        .then(|state: AppState| async move { answer(webhooks::list(&state).await) })
        .boxed()
}

/// `POST /api/webhooks`
fn webhook_new(state: AppState) -> BoxedFilter<(Response,)> {
    warp::post()
        .and(with_state(state))
        .and(body_headers())
        .and(body_limited(BODY_LIMIT))
        .then(
            |state: AppState, headers: BodyHeaders, body: Result<bytes::Bytes, ApiError>| async move {
                answer(webhooks::create(&state, &headers, body).await)
            },
        )
        .boxed()
}

/// `GET|PATCH|DELETE /api/webhooks/{id}`
fn webhook(at: &BoxedFilter<(String,)>, state: AppState) -> BoxedFilter<(Response,)> {
    at.clone()
        .and(
            warp::get()
                .or(warp::patch())
                .unify()
                .or(warp::delete())
                .unify(),
        )
        .and(warp::method())
        .and(with_state(state))
        .and(body_headers())
        .and(body_limited(BODY_LIMIT))
        .then(
            |id: String,
             method: Method,
             state: AppState,
             headers: BodyHeaders,
             body: Result<bytes::Bytes, ApiError>| async move {
                answer(match method {
                    Method::PATCH => webhooks::change(&state, &id, &headers, body).await,
                    Method::DELETE => webhooks::remove(&state, &id).await,
                    _ => webhooks::show(&state, &id).await,
                })
            },
        )
        .boxed()
}

/// `POST /api/webhooks/{id}/test`
fn webhook_test(at: &BoxedFilter<(String,)>, state: AppState) -> BoxedFilter<(Response,)> {
    at.clone()
        .and(warp::post())
        .and(with_state(state))
        .then(
            |id: String, state: AppState| async move { answer(webhooks::test(&state, &id).await) },
        )
        .boxed()
}

/// `GET /api/webhooks/{id}/deliveries?page=&page_size=`
fn webhook_deliveries(at: &BoxedFilter<(String,)>, state: AppState) -> BoxedFilter<(Response,)> {
    at.clone()
        .and(warp::get())
        .and(with_state(state))
        .and(raw_query())
        .then(|id: String, state: AppState, query: String| async move {
            answer(webhooks::deliveries(&state, &id, &query).await)
        })
        .boxed()
}

/// `GET /api/glasses`
fn glasses(state: AppState) -> BoxedFilter<(Response,)> {
    warp::get()
        .and(with_state(state))
        .map(|state: AppState| answer(beers::glasses(&state)))
        .boxed()
}

/// `GET /api/report?venue=`
fn report(state: AppState) -> BoxedFilter<(Response,)> {
    warp::get()
        .and(with_state(state))
        .and(raw_query())
        .and(identity())
        .map(|state: AppState, query: String, who: Option<Identity>| {
            answer(beers::report(&state, &query, &who))
        })
        .boxed()
}

/// `GET /api/history?venue=&from=&to=&bucket=&by=`
fn history(state: AppState) -> BoxedFilter<(Response,)> {
    warp::get()
        .and(with_state(state))
        .and(raw_query())
        .and(identity())
        .and(warp::header::headers_cloned())
        .map(
            |state: AppState, query: String, who: Option<Identity>, headers: HeaderMap| {
                answer(history::history(&state, &query, &who, &headers))
            },
        )
        .boxed()
}

/// `POST /api/taps/{tapId}/cleaning?venue=`
fn tap_cleaning(at: &BoxedFilter<(String,)>, state: AppState) -> BoxedFilter<(Response,)> {
    at.clone()
        .and(warp::post())
        .and(with_state(state))
        .and(raw_query())
        .and(body_headers())
        .and(body_limited(BODY_LIMIT))
        .and(identity())
        .then(
            |id: String,
             state: AppState,
             query: String,
             headers: BodyHeaders,
             body: Result<bytes::Bytes, ApiError>,
             who: Option<Identity>| async move {
                answer(kegs::cleaning(&state, &id, &query, &headers, body, &who).await)
            },
        )
        .boxed()
}

/// `POST /api/sales?format=&venue=` (a till's CSV export)
fn sales_import(state: AppState) -> BoxedFilter<(Response,)> {
    warp::post()
        .and(with_state(state))
        .and(raw_query())
        .and(warp::header::optional::<String>("content-type"))
        .and(body_limited(sales::SALES_LIMIT))
        .and(identity())
        .then(
            |state: AppState,
             query: String,
             content_type: Option<String>,
             body: Result<bytes::Bytes, ApiError>,
             who: Option<Identity>| async move {
                answer(sales::import(&state, &query, content_type.as_deref(), body, &who).await)
            },
        )
        .boxed()
}

/// `GET /api/sales/items?venue=&mapped=`
fn sales_items(state: AppState) -> BoxedFilter<(Response,)> {
    warp::get()
        .and(with_state(state))
        .and(raw_query())
        .and(identity())
        .map(|state: AppState, query: String, who: Option<Identity>| {
            answer(sales::items(&state, &query, &who))
        })
        .boxed()
}

/// `PUT|DELETE /api/sales/items/{item}?venue=`
fn sales_item(at: &BoxedFilter<(String,)>, state: AppState) -> BoxedFilter<(Response,)> {
    at.clone()
        .and(warp::put().or(warp::delete()).unify())
        .and(warp::method())
        .and(with_state(state))
        .and(raw_query())
        .and(body_headers())
        .and(body_limited(BODY_LIMIT))
        .and(identity())
        .then(
            |item: String,
             method: Method,
             state: AppState,
             query: String,
             headers: BodyHeaders,
             body: Result<bytes::Bytes, ApiError>,
             who: Option<Identity>| async move {
                match method {
                    Method::PUT => {
                        answer(sales::map_item(&state, &item, &query, &headers, body, &who).await)
                    }
                    _ => answer(sales::unmap_item(&state, &item, &query, &who).await),
                }
            },
        )
        .boxed()
}

/// `GET /api/variance?venue=&from=&to=&bucket=&by=&goal=`
fn variance(state: AppState) -> BoxedFilter<(Response,)> {
    warp::get()
        .and(with_state(state))
        .and(raw_query())
        .and(identity())
        .and(warp::header::headers_cloned())
        .then(
            |state: AppState, query: String, who: Option<Identity>, headers: HeaderMap| async move {
                answer(sales::variance(&state, &query, &who, &headers).await)
            },
        )
        .boxed()
}

/// `GET /health`
fn health(state: AppState) -> BoxedFilter<(Response,)> {
    warp::get()
        .and(with_state(state))
        .then(|state: AppState| async move { answer(operations::health(&state).await) })
        .boxed()
}

/// `GET /metrics` (Prometheus text format)
fn metrics(state: AppState) -> BoxedFilter<(Response,)> {
    warp::get()
        .and(with_state(state))
        .then(|state: AppState| async move { answer(operations::metrics(&state).await) })
        .boxed()
}

/// `GET /` and `GET /ops/...`: the live operations page.
fn page() -> BoxedFilter<(Response,)> {
    warp::get()
        .and(warp::path::full())
        .and(warp::header::headers_cloned())
        .map(|path: warp::path::FullPath, headers: HeaderMap| page::serve(path.as_str(), &headers))
        .boxed()
}

/// `GET /api/openapi.json`
fn openapi_document(state: AppState) -> BoxedFilter<(Response,)> {
    warp::get()
        .and(with_state(state))
        .map(|state: AppState| openapi::openapi_json(&state))
        .boxed()
}

/// `GET /docs/...`: Swagger UI.
fn docs() -> BoxedFilter<(Response,)> {
    warp::get()
        .and(warp::path::full())
        .map(|full: warp::path::FullPath| {
            let tail = full
                .as_str()
                .strip_prefix("/docs")
                .and_then(|rest| rest.strip_prefix('/'))
                .unwrap_or("");
            openapi::docs(full.as_str(), tail)
        })
        .boxed()
}

/// `GET /sockets/beers` (WebSocket)
fn socket(state: AppState) -> BoxedFilter<(Response,)> {
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
        .boxed()
}
