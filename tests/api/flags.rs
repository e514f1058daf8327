//! Anomaly flags end to end: what a bar manager sees of a pour that looked wrong, and the
//! switches that change what is flagged or refused.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{assert_error, ids_of, spawn_with};

#[tokio::test]
async fn a_volume_no_glass_holds_is_stored_flagged_and_pushed() {
    let app = spawn_with(&[]).await;
    let (mut subscriber, _) = app.subscribe("").await;
    let (status, body) = app.post_raw(r#"{"tapId": 4, "volume": 1500}"#).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["beer"]["type"], "unclassified");
    assert_eq!(body["beer"]["flags"], json!(["unclassified"]));
    let heard = subscriber.next_pour().await;
    assert_eq!(
        heard, body["beer"],
        "subscribers get the same pour, flags and all"
    );
    // Still refused: not a positive number, or more than a tap can pour.
    for volume in ["0", "-1", "5000.5"] {
        let (status, body) = app
            .post_raw(format!(r#"{{"tapId": 4, "volume": {volume}}}"#))
            .await;
        assert!(
            assert_error(status, &body, 422).contains("more than 0 and at most 5000 ml"),
            "{volume}: {body}"
        );
    }
    let (_, page) = app.get("/api/beers").await;
    assert_eq!(ids_of(&page), [1], "refused volumes store nothing");
}

#[tokio::test]
async fn reject_unclassified_keeps_the_prototype_s_422() {
    let app = spawn_with(&["--reject-unclassified"]).await;
    let (status, body) = app.post_raw(r#"{"tapId": 1, "volume": 1500}"#).await;
    assert_eq!(
        assert_error(status, &body, 422),
        "no glass for 1500 ml; accepted 100 to 1000 ml"
    );
    let (status, body) = app.post_raw(r#"{"tapId": 1, "volume": 99.9}"#).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (_, page) = app.get("/api/beers").await;
    assert_eq!(page["total"], 0);
    let (_, doc) = app.get("/api/openapi.json").await;
    let volume = &doc["components"]["schemas"]["PourRequest"]["properties"]["volume"];
    assert_eq!(
        (&volume["minimum"], &volume["maximum"]),
        (&json!(100.0), &json!(1000.0))
    );
}

#[tokio::test]
async fn thresholds_are_configurable() {
    let app = spawn_with(&[
        "--tiny-below",
        "150",
        "--over-pour-tolerance",
        "0",
        "--max-flow",
        "1000",
        "--max-volume",
        "2000",
    ])
    .await;
    let post = |tap: u32, volume: f64, second: u32| {
        let body = format!(
            r#"{{"tapId": {tap}, "volume": {volume}, "timestamp": "2026-11-20T20:00:{second:02}Z"}}"#
        );
        let app = &app;
        async move {
            let (status, body) = app.post_raw(body).await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
            body["beer"]["flags"].clone()
        }
    };
    assert_eq!(post(1, 149.0, 0).await, json!(["tiny"]));
    assert_eq!(post(2, 150.0, 0).await, json!([]));
    // Not a single ml over the nominal pint (568 ml).
    assert_eq!(post(3, 569.0, 0).await, json!(["overPour"]));
    assert_eq!(post(4, 568.0, 0).await, json!([]));
    // 1000 ml/s: 568 ml a second after the last pour of tap 4 is possible.
    assert_eq!(post(4, 568.0, 1).await, json!([]));
    assert_eq!(post(5, 1999.0, 0).await, json!(["unclassified"]));
    let (status, body) = app.post_raw(r#"{"tapId": 1, "volume": 2000.5}"#).await;
    assert_error(status, &body, 422);
}

#[tokio::test]
async fn opening_hours_follow_the_bar_s_time_zone() {
    let app = spawn_with(&[
        "--opening-hours",
        "17:00-02:30",
        "--timezone",
        "Europe/Berlin",
    ])
    .await;
    // 01:10 UTC on the night the clocks go forward is 03:10 in Berlin: closed.
    for (at, expected) in [
        ("2026-03-29T00:40:00Z", json!([])),
        ("2026-03-29T01:10:00Z", json!(["afterHours"])),
        ("2026-03-29T14:30:00Z", json!(["afterHours"])),
        ("2026-03-29T15:30:00-02:00", json!([])),
    ] {
        let body = format!(r#"{{"tapId": 1, "volume": 500, "timestamp": "{at}"}}"#);
        let (status, body) = app.post_raw(body).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["beer"]["flags"], expected, "{at}");
    }
    let (_, page) = app.get("/api/beers?flag=afterHours").await;
    assert_eq!(ids_of(&page), [2, 3]);
}

#[tokio::test]
async fn a_pour_timed_in_the_future_is_flagged_and_never_the_tap_s_last_pour() {
    let app = crate::helpers::spawn_with(&["--clock-skew", "60"]).await;
    let (status, body) = app
        .post_json(
            "/api/beers",
            r#"{"tapId": 8, "volume": 500, "timestamp": "2025-06-01T20:00:00Z"}"#,
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{body}");
    assert_eq!(body["beer"]["flags"], serde_json::json!([]));
    let (status, future) = app
        .post_json(
            "/api/beers",
            r#"{"tapId": 8, "volume": 500, "timestamp": "2099-01-01T00:00:00Z"}"#,
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{future}");
    assert_eq!(future["beer"]["flags"], serde_json::json!(["future"]));
    let (_, tap) = app.get("/api/taps/8").await;
    assert_eq!(
        tap["tap"]["lastPourAt"], "2025-06-01T20:00:00.000Z",
        "{tap}"
    );
    // A later pour, then deleted: the last pour is the one before it again.
    let (_, later) = app
        .post_json(
            "/api/beers",
            r#"{"tapId": 8, "volume": 500, "timestamp": "2025-06-01T21:00:00Z"}"#,
        )
        .await;
    let (_, tap) = app.get("/api/taps/8").await;
    assert_eq!(tap["tap"]["lastPourAt"], "2025-06-01T21:00:00.000Z");
    let id = later["beer"]["id"].as_u64().unwrap();
    assert_eq!(
        app.delete(&format!("/api/beers/{id}")).await,
        reqwest::StatusCode::NO_CONTENT
    );
    let (_, tap) = app.get("/api/taps/8").await;
    assert_eq!(
        tap["tap"]["lastPourAt"], "2025-06-01T20:00:00.000Z",
        "{tap}"
    );
    let (_, flagged) = app.get("/api/beers?flag=future").await;
    assert_eq!(flagged["total"], 1);
    let (_, report) = app.get("/api/report").await;
    assert_eq!(report["flagged"]["future"], 1);
    // Nor is it what the tap's next pours are judged against: a double report still shows.
    for (timestamp, flags) in [
        ("2025-06-02T10:00:00Z", serde_json::json!([])),
        ("2099-01-01T00:00:00Z", serde_json::json!(["future"])),
        ("2025-06-02T10:00:01Z", serde_json::json!(["burst"])),
    ] {
        let (_, poured) = app
            .post_json(
                "/api/beers",
                &serde_json::json!({"tapId": 10, "volume": 500, "timestamp": timestamp})
                    .to_string(),
            )
            .await;
        assert_eq!(poured["beer"]["flags"], flags, "{poured}");
    }
    // Within the skew: a device a little ahead is not flagged.
    let soon = chrono::Utc::now() + chrono::Duration::seconds(30);
    let (_, near) = app
        .post_json(
            "/api/beers",
            &serde_json::json!({"tapId": 9, "volume": 500, "timestamp": soon.to_rfc3339()})
                .to_string(),
        )
        .await;
    assert_eq!(near["beer"]["flags"], serde_json::json!([]), "{near}");
}
