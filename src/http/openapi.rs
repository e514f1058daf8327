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
use super::routes;
use super::state::AppState;
use super::{
    alerts, beers, csv, export, history, kegcop, kegs, operations, sales, socket, temperatures,
    venues, webhooks,
};
use crate::auth::Auth;
use crate::config::Config;
use crate::glass::Catalogue;
use crate::pour::Intake;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Altair",
        description = "Real-time telemetry for beer taps: pours in over REST, out over WebSockets.",
    ),
    paths(
        beers::create,
        beers::create_in_venue,
        beers::list,
        export::export,
        export::whole_log,
        beers::show,
        beers::delete,
        operations::health,
        beers::glasses,
        beers::report,
        history::history,
        sales::import,
        sales::items,
        sales::map_item,
        sales::unmap_item,
        sales::variance,
        kegs::create,
        kegs::list,
        kegs::sizes,
        kegs::show,
        kegs::correct,
        kegs::finish,
        kegs::taps,
        kegs::tap,
        kegs::set_tap,
        kegs::forget_tap,
        kegs::cleaning,
        temperatures::record,
        kegcop::report,
        temperatures::list,
        venues::list,
        venues::create,
        venues::show,
        venues::change_settings,
        alerts::list,
        alerts::show,
        alerts::acknowledge,
        webhooks::create,
        webhooks::list,
        webhooks::show,
        webhooks::change,
        webhooks::remove,
        webhooks::test,
        webhooks::deliveries,
        operations::metrics,
        socket::subscribe,
        openapi_json,
        events_schema_json,
    ),
    components(schemas(
        beers::PourRequest,
        socket::SocketEvent,
        kegs::KegStatus,
        csv::ListFormat,
        csv::ExportFormat
    )),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "pours", description = "Pours and the report"),
        (name = "catalogue", description = "The glass catalogue"),
        (name = "kegs", description = "Kegs on taps, their levels, and the taps"),
        (name = "temperatures", description = "The taps' temperature readings: kept a day as they came, then a mean a minute"),
        (name = "venues", description = "The bars of a chain: each one's name, clock, opening hours and settings"),
        (name = "alerts", description = "Open problems: kegs low or empty, quiet taps, flagged and after-hours pours"),
        (name = "webhooks", description = "Alerts and keg news posted to other services, signed as Standard Webhooks says"),
        (name = "live", description = "The WebSocket feed"),
        (name = "operations", description = "Health and metrics"),
        (name = "sales", description = "Poured versus sold: the till's sales, what each item pours, and the variance"),
        (name = "admin", description = "The whole log, for backups and moving between stores"),
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

/// What the served document says of the server it describes, which its configuration
/// decides.
pub struct Served<'a> {
    /// No tokens file: no route asks for a token.
    pub open: bool,
    /// Paths readable without a token when there are tokens.
    pub public: &'a [String],
    /// The glasses, whose bands bound an acceptable volume.
    pub catalogue: &'a Catalogue,
    /// Every valid `type` filter: the catalogue's glasses and the types stored pours have
    /// from an older catalogue.
    pub types: Vec<String>,
    /// The volumes stored.
    pub intake: Intake,
}

/// The document as generated from the code, with the bounds of [`crate::pour`]: the same
/// for every server.
pub fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| {
        let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_else(|e| {
            log::error!("OpenAPI document: {e}");
            json!({})
        });
        bound_tap_ids(&mut doc);
        require_one_size(&mut doc);
        describe_venues(&mut doc);
        shared_parts(&mut doc);
        doc
    })
}

/// The document as this server serves it (its tokens, its glasses, its intake),
/// serialized once.
pub fn served(
    config: &Config,
    auth: &Auth,
    catalogue: &Catalogue,
    retired: &[(Arc<str>, u64)],
) -> bytes::Bytes {
    let document = document_for(&Served {
        open: auth.is_open(),
        public: auth.public(),
        catalogue,
        types: catalogue
            .glasses()
            .iter()
            .map(|g| g.name.to_string())
            .chain([crate::glass::UNCLASSIFIED.to_owned()])
            .chain(retired.iter().map(|(g, _)| g.to_string()))
            .collect(),
        intake: super::state::intake(config),
    });
    serde_json::to_vec(&document).unwrap_or_default().into()
}

/// The document as this server serves it: its auth mode and its glass catalogue.
pub fn document_for(served: &Served) -> Value {
    let mut doc = document().clone();
    bound_volumes(&mut doc, served.catalogue, &served.intake);
    enumerate_types(&mut doc, &served.types);
    if served.open {
        describe_open(&mut doc);
    } else {
        describe_tokens(&mut doc, served.public);
    }
    doc
}

/// What JSON Schema can say of the keg bodies and utoipa's attributes cannot: a new keg
/// names its size once (`size` or `sizeMl`); a correction changes something, and names a
/// size at most once.
fn require_one_size(doc: &mut Value) {
    let required = |fields: &[&str]| -> Vec<Value> {
        fields.iter().map(|f| json!({"required": [f]})).collect()
    };
    let sizes: Vec<&str> = crate::keg::SIZES.iter().map(|s| s.name).collect();
    for (schema, new) in [("NewKeg", true), ("KegCorrection", false)] {
        let Some(keg) = doc.pointer_mut(&format!("/components/schemas/{schema}")) else {
            continue;
        };
        keg["properties"]["size"]["enum"] = json!(sizes);
        keg["properties"]["beverage"]["pattern"] = json!(kegs::BEVERAGE_PATTERN);
        if new {
            keg["oneOf"] = json!(required(&["size", "sizeMl"]));
        } else {
            keg["anyOf"] = json!(required(&["beverage", "size", "sizeMl", "spillMl"]));
            keg["not"] = json!({"required": ["size", "sizeMl"]});
        }
    }
    if let Some(note) = doc.pointer_mut("/components/schemas/Acknowledgement/properties/note") {
        note["pattern"] = json!(alerts::NOTE_PATTERN);
    }
    // A webhook asks for events; a ping it always takes.
    let subscribable: Vec<&str> = crate::webhook::EventType::SUBSCRIBABLE
        .iter()
        .map(|e| e.name())
        .collect();
    for schema in ["WebhookRequest", "WebhookPatch"] {
        // A misspelt field is refused, not ignored: it would pass for a setting kept.
        if let Some(hook) = doc.pointer_mut(&format!("/components/schemas/{schema}")) {
            hook["additionalProperties"] = json!(false);
        }
        if let Some(hook) = doc.pointer_mut(&format!("/components/schemas/{schema}/properties")) {
            hook["url"]["pattern"] = json!(crate::webhook::URL_PATTERN);
            hook["events"]["items"] = json!({"type": "string", "enum": subscribable});
            hook["events"]["uniqueItems"] = json!(true);
        }
    }
    // What was left, or nothing: another field is a mistake, refused.
    if let Some(finish) = doc.pointer_mut("/components/schemas/KegFinish") {
        finish["additionalProperties"] = json!(false);
    }
    if let Some(cleaning) = doc.pointer_mut("/components/schemas/Cleaning") {
        cleaning["additionalProperties"] = json!(false);
    }
    if let Some(item) = doc.pointer_mut("/components/schemas/ItemMapping") {
        item["additionalProperties"] = json!(false);
        item["properties"]["beverage"]["pattern"] = json!(kegs::BEVERAGE_PATTERN);
    }
    if let Some(tap) = doc.pointer_mut("/components/schemas/TapSettings") {
        tap["anyOf"] = json!(required(&["name", "lowPercent"]));
        // A string must be a name; null clears it.
        let name = &mut tap["properties"]["name"];
        name["pattern"] = json!(kegs::BEVERAGE_PATTERN);
    }
}

/// What JSON Schema can say of a venue's fields and utoipa's attributes cannot: the
/// forms [`crate::venue`] and [`crate::config::OpeningHours`] parse, the time zones
/// there are, no field besides them, and a change that changes something.
fn describe_venues(doc: &mut Value) {
    let zones: Vec<Value> = chrono_tz::TZ_VARIANTS
        .iter()
        .map(|tz| json!(tz.name()))
        .collect();
    let mut nullable_zones = zones.clone();
    nullable_zones.push(Value::Null);
    let name = json!({"type": "string", "minLength": 1, "maxLength": 100, "pattern": kegs::BEVERAGE_PATTERN});
    for (schema, new) in [("NewVenue", true), ("VenueSettings", false)] {
        let Some(venue) = doc.pointer_mut(&format!("/components/schemas/{schema}")) else {
            continue;
        };
        venue["additionalProperties"] = json!(false);
        let fields = &mut venue["properties"];
        fields["name"] = name.clone();
        fields["timezone"]["enum"] = json!(if new { &zones } else { &nullable_zones });
        fields["openingHours"]["pattern"] = json!(crate::config::OPENING_HOURS_PATTERN);
        fields["businessDayStarts"]["pattern"] = json!(crate::venue::CLOCK_PATTERN);
        if new {
            fields["id"]["pattern"] = json!(crate::venue::ID_PATTERN);
        } else {
            let any: Vec<Value> = venues::SETTINGS
                .iter()
                .map(|f| json!({"required": [f]}))
                .collect();
            venue["anyOf"] = json!(any);
        }
    }
    for method in ["get", "patch"] {
        let pointer = format!("/paths/~1api~1venues~1{{id}}/{method}/parameters/0/schema");
        if let Some(param) = doc.pointer_mut(&pointer) {
            param["pattern"] = json!(crate::venue::ID_PATTERN);
        }
    }
}

/// Every `tapId`, parameter or property, as the parsers take it.
fn bound_tap_ids(value: &mut Value) {
    let schema = || {
        json!({
            "type": "integer",
            "format": "int64",
            "minimum": crate::pour::TAP_ID_MIN,
            "maximum": crate::pour::TAP_ID_MAX,
        })
    };
    match value {
        Value::Object(map) => {
            if map.get("name").and_then(Value::as_str) == Some("tapId")
                && map.contains_key("schema")
            {
                map.insert("schema".into(), schema());
            }
            if let Some(Value::Object(properties)) = map.get_mut("properties")
                && let Some(Value::Object(tap)) = properties.get_mut("tapId")
            {
                let description = tap.remove("description");
                let Value::Object(mut bounded) = schema() else {
                    return;
                };
                if let Some(description) = description {
                    bounded.insert("description".into(), description);
                }
                *tap = bounded;
            }
            map.values_mut().for_each(bound_tap_ids);
        }
        Value::Array(items) => items.iter_mut().for_each(bound_tap_ids),
        _ => {}
    }
}

/// Every `type` parameter (a glass) takes one of `types`.
fn enumerate_types(doc: &mut Value, types: &[String]) {
    for (_, _, operation) in each_operation(doc) {
        let Some(Value::Array(parameters)) = operation.get_mut("parameters") else {
            continue;
        };
        for parameter in parameters.iter_mut().filter(|p| p["name"] == "type") {
            let schema = &mut parameter["schema"];
            let target = match schema["type"].as_str() {
                Some("array") => &mut schema["items"],
                _ => schema,
            };
            target["enum"] = json!(types);
        }
    }
}

/// A posted volume: more than 0 and at most the maximum; with `--reject-unclassified`,
/// within the catalogue's bands too.
fn bound_volumes(doc: &mut Value, catalogue: &Catalogue, intake: &Intake) {
    let Some(volume) = doc.pointer_mut("/components/schemas/PourRequest/properties/volume") else {
        return;
    };
    let Some(volume) = volume.as_object_mut() else {
        return;
    };
    volume.remove("minimum");
    volume.insert("exclusiveMinimum".into(), json!(0));
    volume.insert("maximum".into(), json!(intake.max_volume));
    let description = if intake.reject_unclassified {
        let glasses = catalogue.glasses();
        let min = glasses.iter().map(|g| g.min).fold(f64::INFINITY, f64::min);
        let max = glasses.iter().map(|g| g.max).fold(0.0, f64::max);
        if min > 0.0 {
            volume.remove("exclusiveMinimum");
            volume.insert("minimum".into(), json!(min));
        }
        volume.insert("maximum".into(), json!(max.min(intake.max_volume)));
        format!(
            "Volume in ml; classified by the glass catalogue, which accepts {}; others are refused.",
            catalogue.accepted()
        )
    } else {
        format!(
            "Volume in ml, more than 0 and at most {} ml; classified by the glass catalogue ({}), \
             any other volume is stored as type `unclassified`, flagged.",
            intake.max_volume,
            catalogue.accepted()
        )
    };
    volume.insert("description".into(), json!(description));
}

/// No tokens file: nothing asks for a token, and nothing answers 401.
fn describe_open(doc: &mut Value) {
    if let Some(doc) = doc.as_object_mut() {
        doc.remove("security");
    }
    if let Some(Value::Object(components)) = doc.get_mut("components") {
        components.remove("securitySchemes");
    }
    for (_, _, operation) in each_operation(doc) {
        operation.remove("security");
        if let Some(Value::Object(responses)) = operation.get_mut("responses") {
            responses.remove("401");
        }
    }
    doc["info"]["description"] = json!(format!(
        "{} This server is open: no route asks for a token.",
        doc["info"]["description"].as_str().unwrap_or_default()
    ));
}

/// A tokens file: every route needs a bearer token but the documentation, and reads of
/// the public paths, which take one or none.
fn describe_tokens(doc: &mut Value, public: &[String]) {
    for (path, method, operation) in each_operation(doc) {
        let anyone = !routes::may_need_token(&path);
        if anyone {
            operation.insert("security".into(), json!([{}]));
            if let Some(Value::Object(responses)) = operation.get_mut("responses") {
                responses.remove("401");
            }
        } else if method == "get" && public.contains(&path) {
            operation.insert("security".into(), json!([{}, {"bearer": []}]));
        } else {
            // The document's default: a bearer token.
            operation.remove("security");
            if let Some(Value::Object(responses)) = operation.get_mut("responses") {
                responses
                    .entry("401")
                    .or_insert_with(|| json!({"description": "No or unknown token"}));
            }
        }
    }
    doc["info"]["description"] = json!(format!(
        "{} Send `Authorization: Bearer <token>` (roles: tap, reader, admin); without one, \
         every route answers 401 but the documentation and the public paths ({}), which \
         may be read without.",
        doc["info"]["description"].as_str().unwrap_or_default(),
        public.join(", ")
    ));
}

/// Every operation of the document, with its path and method.
/// What operations share, written once: every one may be refused by a rate limit (the
/// per-address limit applies to any path), and the writes the route table marks take an
/// `Idempotency-Key`.
fn shared_parts(doc: &mut Value) {
    let idempotency_key = json!({
        "name": "Idempotency-Key",
        "in": "header",
        "required": false,
        "description": "1 to 128 printable ASCII characters. A retry with the same key and \
            request stores or changes nothing again and answers as the first time did; with \
            another request, 409",
        "schema": {"type": "string", "minLength": 1, "maxLength": 128, "pattern": "^[!-~]([ -~]*[!-~])?$"}
    });
    let rate_limited = json!({
        "description": "Over a rate limit; see Retry-After",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    });
    for (path, method, operation) in each_operation(doc) {
        if let Some(Value::Object(responses)) = operation.get_mut("responses") {
            responses.insert("429".into(), rate_limited.clone());
        }
        let idempotent = routes::find(&path).is_some_and(|route| {
            route
                .idempotent
                .iter()
                .any(|m| m.eq_ignore_ascii_case(&method))
        });
        if idempotent {
            let parameters = operation.entry("parameters").or_insert_with(|| json!([]));
            if let Value::Array(parameters) = parameters {
                parameters.push(idempotency_key.clone());
            }
        }
    }
}

fn each_operation(doc: &mut Value) -> Vec<(String, String, &mut serde_json::Map<String, Value>)> {
    let Some(Value::Object(paths)) = doc.get_mut("paths") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for (path, item) in paths.iter_mut() {
        let Value::Object(methods) = item else {
            continue;
        };
        for (method, operation) in methods.iter_mut() {
            if let Value::Object(operation) = operation {
                found.push((path.clone(), method.clone(), operation));
            }
        }
    }
    found
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

/// This document
#[utoipa::path(
    get, path = "/api/openapi.json", tag = "documentation", security(()),
    responses((status = 200, description = "This document", content_type = "application/json"))
)]
pub fn openapi_json(state: &AppState) -> Response {
    let mut response = Response::new(state.openapi.clone().into());
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

/// The JSON Schema of a WebSocket frame
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
