//! Pours over REST: create, read, delete, and every way a request can be wrong.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{assert_error, read_json, spawn_app, spawn_with, tempdir};

fn is_rfc3339_millis_utc(text: &str) -> bool {
    // 2026-11-22T21:04:05.123Z
    text.len() == 24
        && text.ends_with('Z')
        && text.as_bytes()[19] == b'.'
        && text.as_bytes()[10] == b'T'
}

#[tokio::test]
async fn post_stores_a_classified_pour_and_says_where() {
    let app = spawn_app().await;
    let response = app
        .post_as(Some("application/json"), r#"{"tapId": 3, "volume": 500}"#)
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(response.headers()["location"], "/api/beers/1");
    let (_, body) = read_json(response).await;
    let beer = &body["beer"];
    assert_eq!(beer["id"], 1);
    assert_eq!(beer["tapId"], 3);
    assert_eq!(beer["volume"], 500.0);
    assert_eq!(beer["type"], "pint");
    assert!(
        is_rfc3339_millis_utc(beer["timestamp"].as_str().unwrap()),
        "{beer}"
    );

    let (status, fetched) = app.get("/api/beers/1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fetched["beer"], *beer);
    assert_eq!(app.pour(4, 200.0).await["id"], 2, "ids increase from 1");
}

#[tokio::test]
async fn device_timestamp_is_kept() {
    let app = spawn_app().await;
    let (status, body) = app
        .post_raw(r#"{"tapId":1,"volume":250,"timestamp":"2026-11-22T22:04:05.5+01:00"}"#)
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body["beer"]["timestamp"], "2026-11-22T21:04:05.500Z");
}

#[tokio::test]
async fn a_device_without_content_type_is_still_heard() {
    let app = spawn_app().await;
    let response = app.post_as(None, r#"{"tapId": 1, "volume": 500}"#).await;
    assert_eq!(response.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn bad_bodies_get_json_errors_and_store_nothing() {
    let app = spawn_app().await;
    let cases: &[(&str, u16, &str)] = &[
        ("not json", 400, "JSON"),
        (r#"{"tapId": 1, "volume": 500"#, 400, "JSON"),
        ("", 400, "JSON"),
        ("[1, 2]", 422, "object"),
        (r#"{"volume": 500}"#, 422, "tapId"),
        (r#"{"tapId": 1}"#, 422, "volume"),
        (r#"{"tapId": "1", "volume": 500}"#, 422, "tapId"),
        (r#"{"tapId": 0, "volume": 500}"#, 422, "tapId"),
        (r#"{"tapId": -1, "volume": 500}"#, 422, "tapId"),
        (r#"{"tapId": 1.5, "volume": 500}"#, 422, "tapId"),
        (r#"{"tapId": 4294967296, "volume": 500}"#, 422, "tapId"),
        (r#"{"tapId": 1, "volume": null}"#, 422, "volume"),
        (
            r#"{"tapId": 1, "volume": 500, "timestamp": "noon"}"#,
            422,
            "timestamp",
        ),
    ];
    for (body, expected, field) in cases {
        let (status, answer) = app.post_raw(*body).await;
        let message = assert_error(status, &answer, *expected);
        assert!(message.contains(field), "{body}: {message}");
    }
    let (_, list) = app.get("/api/beers").await;
    assert_eq!(list["total"], 0, "nothing was stored");
}

#[tokio::test]
async fn wrong_content_type_is_400() {
    let app = spawn_app().await;
    let response = app
        .post_as(Some("text/plain"), r#"{"tapId": 1, "volume": 500}"#)
        .await;
    let (status, body) = read_json(response).await;
    assert!(assert_error(status, &body, 400).contains("Content-Type"));
}

#[tokio::test]
async fn bodies_over_16_kib_are_413_with_or_without_length() {
    let app = spawn_app().await;
    let padding = " ".repeat(16 * 1024);
    let big = format!(r#"{{"tapId": 1, "volume": 500}}{padding}"#);
    let (status, body) = app.post_raw(big.clone()).await;
    assert_error(status, &body, 413);

    // Chunked: no Content-Length, so the limit must hold while reading.
    let chunks: Vec<Result<String, std::io::Error>> =
        vec![Ok(big[..9000].into()), Ok(big[9000..].into())];
    let stream = reqwest::Body::wrap_stream(futures::stream::iter(chunks));
    let (status, body) = app.post_raw(stream).await;
    assert_error(status, &body, 413);

    let just_fits = format!(
        r#"{{"tapId": 1, "volume": 500}}{}"#,
        " ".repeat(16 * 1024 - 27)
    );
    assert_eq!(just_fits.len(), 16 * 1024);
    assert_eq!(app.post_raw(just_fits).await.0, StatusCode::CREATED);
}

#[tokio::test]
async fn get_and_delete_by_id() {
    let app = spawn_app().await;
    app.pour(1, 500.0).await;
    app.pour(1, 200.0).await;

    let (status, body) = app.get("/api/beers/99").await;
    assert!(assert_error(status, &body, 404).contains("99"));
    for bad in ["abc", "-1", "1.5", "99999999999999999999999"] {
        let (status, body) = app.get(&format!("/api/beers/{bad}")).await;
        assert_error(status, &body, 400);
    }

    assert_eq!(app.delete("/api/beers/1").await, StatusCode::NO_CONTENT);
    let (status, body) = app.get("/api/beers/1").await;
    assert_error(status, &body, 404);
    assert_eq!(app.delete("/api/beers/1").await, StatusCode::NOT_FOUND);
    assert_eq!(app.delete("/api/beers/x").await, StatusCode::BAD_REQUEST);

    let (_, list) = app.get("/api/beers").await;
    assert_eq!(list["total"], 1);
    assert_eq!(list["beers"][0]["id"], 2);
    assert_eq!(app.pour(1, 300.0).await["id"], 3, "ids are never reused");
}

#[tokio::test]
async fn the_newest_id_is_not_reused_after_its_deletion() {
    let app = spawn_app().await;
    app.pour(1, 500.0).await;
    assert_eq!(app.delete("/api/beers/1").await, StatusCode::NO_CONTENT);
    assert_eq!(app.pour(1, 500.0).await["id"], 2);
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json() {
    let app = spawn_app().await;
    let (status, body) = app.get("/nope").await;
    assert_error(status, &body, 404);
    let (status, body) = app.get("/api/beers/1/extra").await;
    assert_error(status, &body, 404);

    for (method, path, allow) in [
        (reqwest::Method::PUT, "/api/beers", "GET, POST"),
        (reqwest::Method::DELETE, "/api/beers", "GET, POST"),
        (reqwest::Method::POST, "/api/beers/1", "GET, DELETE"),
        (reqwest::Method::PATCH, "/api/beers/1", "GET, DELETE"),
        (reqwest::Method::POST, "/health", "GET"),
        (reqwest::Method::DELETE, "/api/glasses", "GET"),
        (reqwest::Method::POST, "/api/report", "GET"),
    ] {
        let response = app
            .http
            .request(method.clone(), app.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(response.headers()["allow"], allow, "{method} {path}");
        let (status, body) = read_json(response).await;
        assert_error(status, &body, 405);
    }
}

#[tokio::test]
async fn health_counts_pours_and_subscribers() {
    let app = spawn_app().await;
    app.pour(1, 500.0).await;
    let (_subscriber, _) = app.subscribe("").await;
    let (status, health) = app.get("/health").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(health["status"], "up");
    assert_eq!(health["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(health["pours"], 1);
    assert_eq!(health["subscribers"], 1);
    assert!(health["uptimeSeconds"].is_u64());
}

#[tokio::test]
async fn report_endpoint_reflects_pours_and_deletions() {
    let app = spawn_app().await;
    app.pour(1, 500.0).await;
    app.pour(2, 250.0).await;
    app.pour(2, 900.0).await;
    assert_eq!(app.delete("/api/beers/3").await, StatusCode::NO_CONTENT);
    let (status, report) = app.get("/api/report").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(report["totalPours"], 2);
    assert_eq!(report["totalVolumeMl"], 750.0);
    assert_eq!(report["poursLastMinute"], 2);
    assert_eq!(report["poursLastHour"], 2);
    assert_eq!(
        report["byTap"],
        json!([
            {"venue": "main", "tapId": 1, "pours": 1, "volumeMl": 500.0, "sharePct": 50.0},
            {"venue": "main", "tapId": 2, "pours": 1, "volumeMl": 250.0, "sharePct": 50.0},
        ])
    );
    assert_eq!(
        report["byType"],
        json!([
            {"type": "half", "pours": 1, "volumeMl": 250.0},
            {"type": "pint", "pours": 1, "volumeMl": 500.0},
            {"type": "stein", "pours": 0, "volumeMl": 0.0},
            {"type": "unclassified", "pours": 0, "volumeMl": 0.0},
        ])
    );
    assert_eq!(
        report["flagged"],
        json!({"tiny": 0, "unclassified": 0, "overPour": 0, "afterHours": 0, "burst": 0, "emptyKeg": 0, "future": 0, "cleaning": 0})
    );
    assert!(report["generatedAt"].is_string());
}

#[tokio::test]
async fn glasses_are_served_and_configurable() {
    let app = spawn_app().await;
    let (_, body) = app.get("/api/glasses").await;
    assert_eq!(
        body["glasses"],
        json!([
            {"name": "half", "min": 100.0, "max": 300.0, "nominal": 284.0},
            {"name": "pint", "min": 300.0, "max": 800.0, "nominal": 568.0},
            {"name": "stein", "min": 800.0, "max": 1000.0, "nominal": 1000.0},
        ])
    );

    let dir = tempdir("glasses");
    let file = dir.join("glasses.toml");
    std::fs::write(
        &file,
        "[[glass]]\nname = \"shot\"\nmin = 20\nmax = 60\n\n[[glass]]\nname = \"mass\"\nmin = 900\nmax = 1100\n",
    )
    .unwrap();
    let app = spawn_with(&["--glasses", file.to_str().unwrap()]).await;
    let (_, body) = app.get("/api/glasses").await;
    let names: Vec<&Value> = body["glasses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| &g["name"])
        .collect();
    assert_eq!(names, ["shot", "mass"]);
    assert_eq!(app.pour(1, 1050.0).await["type"], "mass");
    assert_eq!(app.pour(2, 500.0).await["type"], "unclassified");
    let strict = spawn_with(&["--glasses", file.to_str().unwrap(), "--reject-unclassified"]).await;
    let (status, body) = strict.post_raw(r#"{"tapId": 1, "volume": 500}"#).await;
    assert_eq!(
        assert_error(status, &body, 422),
        "no glass for 500 ml; accepted 20 to 60, 900 to 1100 ml"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn overlapping_glasses_refuse_to_start() {
    let dir = tempdir("overlap");
    let file = dir.join("glasses.json");
    std::fs::write(
        &file,
        r#"[{"name": "a", "min": 100, "max": 500}, {"name": "b", "min": 400, "max": 800}]"#,
    )
    .unwrap();
    let config = <altair::Config as clap::Parser>::try_parse_from([
        "altair-server",
        "--bind",
        "127.0.0.1:0",
        "--ephemeral",
        "--glasses",
        file.to_str().unwrap(),
    ])
    .unwrap();
    let error = altair::RunningServer::start(config)
        .await
        .err()
        .expect("refused");
    assert!(error.to_string().contains("overlap"), "{error}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn head_answers_like_get_without_a_body() {
    let app = spawn_app().await;
    for path in ["/health", "/api/beers", "/api/glasses"] {
        let get = app.http.get(app.url(path)).send().await.unwrap();
        let head = app.http.head(app.url(path)).send().await.unwrap();
        assert_eq!(head.status(), get.status(), "{path}");
        assert_eq!(head.status(), StatusCode::OK, "{path}");
        assert_eq!(
            head.headers()["content-type"],
            get.headers()["content-type"]
        );
        assert!(head.bytes().await.unwrap().is_empty(), "{path}: no body");
    }
    let head = app.http.head(app.url("/nowhere")).send().await.unwrap();
    assert_eq!(head.status(), StatusCode::NOT_FOUND);
}
