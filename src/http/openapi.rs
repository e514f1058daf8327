//! The OpenAPI document, generated from the handlers' `#[utoipa::path]` annotations and the
//! types' schemas, served at `/api/openapi.json`; the WebSocket frames' JSON Schema at
//! `/api/events.schema.json`; and Swagger UI at `/docs`, from assets inside the binary.

use std::sync::{Arc, OnceLock};

use serde_json::{Value, json};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use warp::Reply;
use warp::http::{StatusCode, header};
use warp::reply::Response;

use super::error::ApiError;
use super::{beers, operations, socket};

/// Every route the server serves, as (method, path template). The tests check that each
/// one is served and documented, and that nothing else is documented.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/api/beers"),
    ("POST", "/api/beers"),
    ("GET", "/api/beers/{id}"),
    ("DELETE", "/api/beers/{id}"),
    ("GET", "/api/glasses"),
    ("GET", "/api/report"),
    ("GET", "/health"),
    ("GET", "/metrics"),
    ("GET", "/sockets/beers"),
    ("GET", "/api/openapi.json"),
    ("GET", "/api/events.schema.json"),
];

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Altair",
        description = "Real-time telemetry for beer taps: pours in over REST, out over WebSockets. \
            With a tokens file, send `Authorization: Bearer <token>` (roles: tap, reader, admin); \
            every route but /health then also answers 401, 403 and 429.",
    ),
    paths(
        beers::create,
        beers::list,
        beers::show,
        beers::delete,
        operations::health,
        beers::glasses,
        beers::report,
        operations::metrics,
        socket::subscribe,
        openapi_json,
        events_schema_json,
    ),
    components(schemas(beers::PourRequest, socket::SocketEvent)),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "pours", description = "Pours and the report"),
        (name = "catalogue", description = "The glass catalogue"),
        (name = "live", description = "The WebSocket feed"),
        (name = "operations", description = "Health and metrics"),
        (name = "documentation", description = "This document"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The document as JSON, built once.
pub fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| {
        serde_json::to_value(ApiDoc::openapi()).unwrap_or_else(|e| {
            log::error!("OpenAPI document: {e}");
            json!({})
        })
    })
}

/// A JSON Schema (2020-12) for one WebSocket frame, from the document's components.
pub fn events_schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let schemas = document()["components"]["schemas"].clone();
        // OpenAPI 3.1 schemas are JSON Schema; only the reference prefix differs.
        let text = schemas
            .to_string()
            .replace("#/components/schemas/", "#/$defs/");
        json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": "https://altair.invalid/events.schema.json",
            "title": "Altair WebSocket frame",
            "$ref": "#/$defs/SocketEvent",
            "$defs": serde_json::from_str::<Value>(&text).unwrap_or_default(),
        })
    })
}

#[utoipa::path(
    get, path = "/api/openapi.json", tag = "documentation", security(()),
    responses((status = 200, description = "This document", content_type = "application/json"))
)]
pub fn openapi_json() -> Response {
    warp::reply::json(document()).into_response()
}

#[utoipa::path(
    get, path = "/api/events.schema.json", tag = "documentation", security(()),
    responses((status = 200, description = "JSON Schema of a WebSocket frame", content_type = "application/json"))
)]
pub fn events_schema_json() -> Response {
    warp::reply::json(events_schema()).into_response()
}

/// Swagger UI, from assets compiled into the binary (no CDN, no download at build time).
pub fn docs(full_path: &str, tail: &str) -> Response {
    static CONFIG: OnceLock<Arc<utoipa_swagger_ui::Config<'static>>> = OnceLock::new();
    if full_path == "/docs" {
        let mut response = Response::default();
        *response.status_mut() = StatusCode::MOVED_PERMANENTLY;
        response
            .headers_mut()
            .insert(header::LOCATION, header::HeaderValue::from_static("/docs/"));
        return response;
    }
    let config = CONFIG
        .get_or_init(|| Arc::new(utoipa_swagger_ui::Config::from("/api/openapi.json")))
        .clone();
    match utoipa_swagger_ui::serve(tail, config) {
        Ok(Some(file)) => {
            let mut response = Response::new(file.bytes.into_owned().into());
            if let Ok(value) = header::HeaderValue::from_str(&file.content_type) {
                response.headers_mut().insert(header::CONTENT_TYPE, value);
            }
            response
        }
        Ok(None) => ApiError::NotFound("no such documentation file".into()).into_response(),
        Err(e) => ApiError::Internal(format!("swagger ui: {e}")).into_response(),
    }
}
