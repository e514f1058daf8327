//! The OpenAPI document and the WebSocket frame schema against what the server really does.

use std::collections::BTreeSet;

use altair::http::routes;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_with};

async fn document(app: &TestApp) -> Value {
    let (status, doc) = app.get("/api/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    doc
}

/// A validator for `schema`, a schema out of the document, with the document's components
/// as `$defs`.
fn validator(doc: &Value, schema: &Value) -> jsonschema::Validator {
    let rewrite = |v: &Value| -> Value {
        serde_json::from_str(&v.to_string().replace("#/components/schemas/", "#/$defs/")).unwrap()
    };
    let mut root = rewrite(schema);
    let object = root.as_object_mut().expect("schemas are objects");
    object.insert(
        "$schema".into(),
        json!("https://json-schema.org/draft/2020-12/schema"),
    );
    object.insert("$defs".into(), rewrite(&doc["components"]["schemas"]));
    jsonschema::validator_for(&root).expect("the document's schemas compile")
}

/// Checks a real answer against the document: its status must be documented for the route,
/// and its JSON body must match the documented schema.
fn check(doc: &Value, method: &str, template: &str, status: StatusCode, body: &Value) {
    let documented = &doc["paths"][template][method.to_lowercase()]["responses"][status.as_str()];
    assert!(
        documented.is_object(),
        "{method} {template} answered {status}, which is not documented"
    );
    if let Some(schema) = documented["content"]["application/json"].get("schema") {
        let validator = validator(doc, schema);
        let errors: Vec<String> = validator.iter_errors(body).map(|e| e.to_string()).collect();
        assert!(
            errors.is_empty(),
            "{method} {template} {status}: {body}\n{errors:?}"
        );
    }
}

#[tokio::test]
async fn every_route_is_served_and_documented_and_nothing_else_is() {
    let app = spawn_with(&[]).await;
    let doc = document(&app).await;
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .map(move |method| (method.to_uppercase(), path.clone()))
        })
        .collect();
    let served: BTreeSet<(String, String)> = routes::documented()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(documented, served);

    app.pour(1, 500.0).await;
    for (method, template) in routes::documented() {
        // Venues are named; the default venue is always there.
        let id = if template.starts_with("/api/venues/") {
            "main"
        } else {
            "1"
        };
        let mut path = template.replace("{id}", id).replace("{tapId}", "1");
        if template.starts_with("/api/webhooks/{id}") {
            // A webhook of its own: a DELETE before the others must not leave them a 404.
            let (status, made) = app
                .post_json("/api/webhooks", r#"{"url": "http://127.0.0.1:9/"}"#)
                .await;
            assert_eq!(status, StatusCode::CREATED, "{made}");
            path = template.replace("{id}", &made["webhook"]["id"].to_string());
        }
        let request = app
            .http
            .request(method.parse().unwrap(), app.url(&path))
            .header("content-type", "application/json");
        let request = match (method, template) {
            ("POST", "/api/beers") => request.body(r#"{"tapId": 1, "volume": 500}"#),
            ("POST", "/api/kegs") => {
                request.body(r#"{"tapId": 1, "beverage": "Pils", "size": "euro-50"}"#)
            }
            ("PATCH", _) => request.body(r#"{"spillMl": 100}"#),
            _ => request,
        };
        let status = request.send().await.unwrap().status();
        assert!(
            status != StatusCode::NOT_FOUND && status != StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}: {status}"
        );
    }
}

#[tokio::test]
async fn real_answers_match_their_documented_schemas() {
    let app = spawn_with(&[]).await;
    let doc = document(&app).await;
    let json_post = |body: &'static str, key: Option<&'static str>| {
        let mut request = app
            .http
            .post(app.url("/api/beers"))
            .header("content-type", "application/json")
            .body(body);
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        request.send()
    };
    let mut answers = Vec::new();
    for (body, key) in [
        (r#"{"tapId": 3, "volume": 500}"#, None),
        (
            r#"{"tapId": 3, "volume": 250, "timestamp": "2026-11-22T21:04:05Z"}"#,
            Some("k"),
        ),
        (
            r#"{"tapId": 3, "volume": 250, "timestamp": "2026-11-22T21:04:05Z"}"#,
            Some("k"),
        ),
        (r#"{"tapId": 3, "volume": 300}"#, Some("k")),
        (r#"{"tapId": 3, "volume": 1500}"#, None),
        (r#"{"tapId": 3"#, None),
    ] {
        answers.push(("POST", "/api/beers", json_post(body, key).await.unwrap()));
    }
    let keg_post = |path: String, body: &'static str| {
        app.http
            .post(app.url(&path))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    for body in [
        r#"{"tapId": 3, "beverage": "Helles", "size": "half-barrel", "remainingMl": 20000}"#,
        r#"{"tapId": 3, "beverage": "Helles", "size": "pony"}"#,
    ] {
        let answer = keg_post("/api/kegs".into(), body).await.unwrap();
        answers.push(("POST", "/api/kegs", answer));
    }
    for _ in 0..2 {
        let answer = keg_post("/api/kegs/1/finish".into(), "").await.unwrap();
        answers.push(("POST", "/api/kegs/{id}/finish", answer));
    }
    let patch = app
        .http
        .patch(app.url("/api/kegs/1"))
        .header("content-type", "application/json")
        .body(r#"{"beverage": "Dunkel"}"#)
        .send()
        .await
        .unwrap();
    answers.push(("PATCH", "/api/kegs/{id}", patch));
    for (path, template) in [
        ("/api/kegs", "/api/kegs"),
        ("/api/kegs?status=finished", "/api/kegs"),
        ("/api/kegs/1", "/api/kegs/{id}"),
        ("/api/kegs/9", "/api/kegs/{id}"),
        ("/api/kegs/sizes", "/api/kegs/sizes"),
        ("/api/taps", "/api/taps"),
        ("/api/beers", "/api/beers"),
        ("/api/beers?type=pint&page_size=1", "/api/beers"),
        ("/api/beers?page=0", "/api/beers"),
        ("/api/beers?type=goblet", "/api/beers"),
        ("/api/beers/1", "/api/beers/{id}"),
        ("/api/beers/99", "/api/beers/{id}"),
        ("/api/beers/x", "/api/beers/{id}"),
        ("/api/glasses", "/api/glasses"),
        ("/api/report", "/api/report"),
        ("/health", "/health"),
        ("/sockets/beers", "/sockets/beers"),
        ("/sockets/beers?type=goblet", "/sockets/beers"),
    ] {
        answers.push((
            "GET",
            template,
            app.http.get(app.url(path)).send().await.unwrap(),
        ));
    }
    for path in ["/api/beers/2", "/api/beers/2"] {
        answers.push((
            "DELETE",
            "/api/beers/{id}",
            app.http.delete(app.url(path)).send().await.unwrap(),
        ));
    }
    let mut statuses = BTreeSet::new();
    for (method, template, response) in answers {
        let status = response.status();
        let text = response.text().await.unwrap();
        let body: Value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        };
        check(&doc, method, template, status, &body);
        statuses.insert(status.as_u16());
    }
    assert_eq!(
        statuses,
        BTreeSet::from([200, 201, 204, 400, 404, 409, 422, 426]),
        "the answers cover these statuses"
    );
}

#[tokio::test]
async fn websocket_frames_match_the_event_schema() {
    let app = spawn_with(&["--report-interval", "0.1", "--quiet-after", "0.2"]).await;
    let (status, schema) = app.get("/api/events.schema.json").await;
    assert_eq!(status, StatusCode::OK);
    let validator = jsonschema::validator_for(&schema).expect("the event schema compiles");
    app.pour(1, 500.0).await;
    let mut subscriber = app.connect("?since=0").await;
    app.pour(2, 900.0).await;
    assert_eq!(app.delete("/api/beers/1").await, StatusCode::NO_CONTENT);
    let (status, body) = app
        .post_json(
            "/api/kegs",
            r#"{"tapId": 2, "beverage": "Pils", "sizeMl": 1000}"#,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let expected =
        BTreeSet::from(["hello", "pour", "deleted", "report", "keg", "tap"].map(String::from));
    let mut seen = BTreeSet::new();
    while !expected.is_subset(&seen) {
        let frame = subscriber.next_json().await;
        let errors: Vec<String> = validator
            .iter_errors(&frame)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{frame}: {errors:?}");
        seen.insert(frame["event"].as_str().unwrap().to_owned());
    }
    // A quiet tap's alert may come too (on a slow machine, before the rest): it is
    // checked against the schema like every frame.
    seen.remove("alert");
    assert_eq!(seen, expected);
    assert!(
        !validator.is_valid(&json!({"event": "pour", "beer": {"id": "seventeen"}})),
        "the schema can fail"
    );
}

#[tokio::test]
async fn swagger_ui_is_served_from_the_binary() {
    // With tokens: the documentation needs none.
    let dir = crate::helpers::tempdir("swagger");
    let (tokens, _) = crate::security::tokens_file(&dir);
    let app = spawn_with(&["--tokens", tokens.to_str().unwrap()]).await;
    let page = app.http.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(
        page.status(),
        StatusCode::OK,
        "documentation needs no token"
    );
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(page.text().await.unwrap().contains("swagger-ui"));
    let init = app
        .http
        .get(app.url("/docs/swagger-initializer.js"))
        .send()
        .await
        .unwrap();
    assert!(init.text().await.unwrap().contains("/api/openapi.json"));
    assert_eq!(document(&app).await["openapi"], "3.1.0");
    let (status, _) = app.get("/api/beers").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "but the API still does");
}

/// Each operation's security requirement as the document states it (its own, else the
/// document's).
fn security_of(doc: &Value, method: &str, path: &str) -> Value {
    doc["paths"][path][method]
        .get("security")
        .unwrap_or(&doc["security"])
        .clone()
}

#[tokio::test]
async fn an_open_server_documents_no_token_at_all() {
    let app = spawn_with(&[]).await;
    let doc = document(&app).await;
    for (method, path) in routes::documented() {
        let method = method.to_lowercase();
        assert!(
            security_of(&doc, &method, path).is_null(),
            "{method} {path} asks for a token on an open server"
        );
        assert!(
            doc["paths"][path][&method]["responses"]
                .get("401")
                .is_none(),
            "{method} {path} documents a 401 it never answers"
        );
    }
    assert!(doc["components"].get("securitySchemes").is_none());
}

#[tokio::test]
async fn a_server_with_tokens_documents_them_where_it_asks_for_them() {
    let dir = crate::helpers::tempdir("openapi-tokens");
    let (_, entry) = altair::auth::new_token(altair::auth::Role::Admin, None, "ops").unwrap();
    let file = dir.join("tokens.toml");
    std::fs::write(&file, entry).unwrap();
    let app = spawn_with(&[
        "--tokens",
        file.to_str().unwrap(),
        "--public",
        "/health,/api/glasses",
    ])
    .await;
    let doc = document(&app).await;
    let bearer = json!([{"bearer": []}]);
    assert_eq!(security_of(&doc, "post", "/api/beers"), bearer);
    assert_eq!(security_of(&doc, "get", "/api/beers"), bearer);
    assert_eq!(security_of(&doc, "get", "/metrics"), bearer);
    assert!(
        doc["paths"]["/api/beers"]["get"]["responses"]
            .get("401")
            .is_some()
    );
    // Public paths read with a token or without; documentation needs none.
    assert_eq!(
        security_of(&doc, "get", "/health"),
        json!([{}, {"bearer": []}])
    );
    assert_eq!(
        security_of(&doc, "get", "/api/glasses"),
        json!([{}, {"bearer": []}])
    );
    assert_eq!(security_of(&doc, "get", "/api/openapi.json"), json!([{}]));
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn tap_id_bounds_are_the_parsers_everywhere_the_document_names_a_tap() {
    let app = spawn_with(&[]).await;
    let doc = document(&app).await;
    let mut seen = 0;
    let mut walk = vec![&doc];
    while let Some(value) = walk.pop() {
        match value {
            Value::Object(map) => {
                let schema = if map.get("name") == Some(&json!("tapId")) {
                    map.get("schema")
                } else {
                    None
                };
                let property = map.get("properties").and_then(|p| p.get("tapId"));
                for tap in schema.into_iter().chain(property) {
                    seen += 1;
                    assert_eq!(tap["minimum"], u64::from(altair::pour::TAP_ID_MIN), "{tap}");
                    assert_eq!(tap["maximum"], u64::from(altair::pour::TAP_ID_MAX), "{tap}");
                }
                walk.extend(map.values());
            }
            Value::Array(items) => walk.extend(items),
            _ => {}
        }
    }
    assert!(seen >= 4, "query, socket, request body and pour: {seen}");
    // And the server takes the largest.
    let (status, _) = app.get("/api/beers?tapId=4294967295").await;
    assert_eq!(status, StatusCode::OK);
    app.pour(u32::MAX, 500.0).await;
}

/// Every `$ref` in `value`, with where it was found.
fn refs(value: &Value, at: &str, found: &mut Vec<(String, String)>) {
    match value {
        Value::Object(fields) => {
            for (key, field) in fields {
                match (key.as_str(), field) {
                    ("$ref", Value::String(target)) => found.push((at.to_owned(), target.clone())),
                    _ => refs(field, &format!("{at}/{key}"), found),
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                refs(item, &format!("{at}/{i}"), found);
            }
        }
        _ => {}
    }
}

#[tokio::test]
async fn every_reference_in_the_document_resolves() {
    let app = spawn_with(&[]).await;
    let doc = document(&app).await;
    let mut found = Vec::new();
    refs(&doc, "", &mut found);
    assert!(
        found.len() > 20,
        "the document uses references: {}",
        found.len()
    );
    let dangling: Vec<_> = found
        .iter()
        .filter(|(_, target)| {
            target
                .strip_prefix('#')
                .is_none_or(|pointer| doc.pointer(pointer).is_none())
        })
        .collect();
    assert!(dangling.is_empty(), "references to nothing: {dangling:?}");
}
