//! `GET /metrics`: Prometheus text that parses, and counters that move with pours.

use std::collections::HashMap;

use reqwest::StatusCode;

use crate::helpers::{scrape, spawn_with};

fn get(samples: &HashMap<String, f64>, series: &str) -> f64 {
    samples.get(series).copied().unwrap_or(0.0)
}

#[tokio::test]
async fn counters_move_when_pours_are_posted() {
    let app = spawn_with(&[]).await;
    // Metrics are per process and tests run side by side: this test's tap is its own.
    let by_tap = r#"altair_pours_accepted_by_tap_total{venue="main",tap="4711"}"#;
    let before = scrape(&app).await;
    app.pour(4711, 500.0).await;
    app.pour(4711, 900.0).await;
    let body = r#"{"tapId": 4711, "volume": 250}"#;
    assert_eq!(
        app.post_keyed("metrics-key", body).await.0,
        StatusCode::CREATED
    );
    assert_eq!(app.post_keyed("metrics-key", body).await.0, StatusCode::OK);
    assert_eq!(
        app.post_raw(r#"{"tapId": 4711, "volume": 5001}"#).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let (_subscriber, _) = app.subscribe("").await;
    let after = scrape(&app).await;

    assert_eq!(get(&after, by_tap) - get(&before, by_tap), 3.0);
    for (series, at_least) in [
        (r#"altair_pours_accepted_total{type="pint"}"#, 1.0),
        (r#"altair_pours_accepted_total{type="stein"}"#, 1.0),
        ("altair_idempotent_replays_total", 1.0),
        (r#"altair_pours_rejected_total{reason="invalid"}"#, 1.0),
        // 900 ml from tap 4711 a few ms after its 500 ml.
        (r#"altair_pours_flagged_total{flag="burst"}"#, 1.0),
        (
            r#"altair_http_requests_total{route="/api/beers",method="POST",status="201"}"#,
            3.0,
        ),
    ] {
        assert!(
            get(&after, series) - get(&before, series) >= at_least,
            "{series}"
        );
    }
    for series in [
        r#"altair_build_info{version="0.1.0"}"#,
        "altair_ws_subscribers",
        "altair_store_pours",
        r#"altair_http_request_duration_seconds_bucket{route="/api/beers",le="+Inf"}"#,
    ] {
        assert!(after.contains_key(series), "{series} is missing");
    }
    assert!(get(&after, "altair_ws_subscribers") >= 1.0);
}

/// The exposition of a server binary (a process of its own, so the values are its alone).
pub async fn scrape_binary(addr: &str) -> HashMap<String, f64> {
    let text = crate::helpers::http_client()
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .map(|(series, value)| (series.to_owned(), value.parse().unwrap()))
        .collect()
}

#[tokio::test]
async fn documented_series_start_at_zero_and_frames_count_hello_and_replay() {
    let (_server, addr) = crate::helpers::spawn_binary(&["--ephemeral"]);
    let fresh = scrape_binary(&addr).await;
    for series in [
        r#"altair_pours_accepted_total{type="half"}"#,
        r#"altair_pours_accepted_total{type="pint"}"#,
        r#"altair_pours_accepted_total{type="unclassified"}"#,
        r#"altair_pours_rejected_total{reason="invalid"}"#,
        r#"altair_pours_rejected_total{reason="rate_limited"}"#,
        r#"altair_pours_flagged_total{flag="tiny"}"#,
        r#"altair_pours_flagged_total{flag="burst"}"#,
        "altair_idempotent_replays_total",
        "altair_ws_frames_sent_total",
        "altair_ws_subscribers_dropped_slow_total",
        "altair_ws_subscribers_revoked_total",
        "altair_ws_subscribers",
    ] {
        assert_eq!(fresh.get(series), Some(&0.0), "{series} before any event");
    }
    crate::helpers::pour_to(&addr, &[500, 500, 500]).await;
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/sockets/beers?since=0"))
        .await
        .unwrap();
    let mut subscriber = crate::helpers::Subscriber { ws };
    subscriber.next_event("hello").await;
    for _ in 0..3 {
        subscriber.next_pour().await;
    }
    let after = scrape_binary(&addr).await;
    assert_eq!(
        after["altair_ws_frames_sent_total"], 5.0,
        "the hello, three replayed pours and the alert their bursts opened"
    );
}

#[tokio::test]
async fn every_route_of_the_table_is_served_and_counted_under_its_own_label() {
    let app = spawn_with(&[]).await;
    // 2 L fits no glass: alert 1.
    app.pour(1, 2000.0).await;
    let (tapped, _) = app
        .post_json(
            "/api/kegs",
            r#"{"tapId": 1, "beverage": "Pils", "size": "euro-50"}"#,
        )
        .await;
    assert_eq!(tapped, StatusCode::CREATED);
    let (made, _) = app
        .post_json("/api/webhooks", r#"{"url": "http://127.0.0.1:9/"}"#)
        .await;
    assert_eq!(made, StatusCode::CREATED);
    for route in altair::http::routes::ROUTES {
        let path = match route.path {
            "/docs" => "/docs/".to_owned(),
            "/ops" => "/ops/ops.js".to_owned(),
            // Venues are named; the default venue is always there.
            template if template.starts_with("/api/venues/") => template.replace("{id}", "main"),
            template => template.replace("{id}", "1").replace("{tapId}", "1"),
        };
        let method = route.methods().next().unwrap();
        let before = scrape(&app).await;
        let response = app
            .http
            .request(method.parse().unwrap(), app.url(&path))
            .send()
            .await
            .unwrap();
        let status = response.status();
        assert!(
            status != StatusCode::NOT_FOUND && status != StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}: {status}"
        );
        let series = format!(
            r#"altair_http_requests_total{{route="{}",method="{method}",status="{}"}}"#,
            route.path,
            status.as_u16()
        );
        let after = scrape(&app).await;
        assert!(
            get(&after, &series) > get(&before, &series),
            "{method} {path} is not counted as {series}"
        );
    }
}

#[tokio::test]
async fn open_alerts_and_what_is_left_in_each_keg_are_series_for_alertmanager() {
    let app = spawn_with(&[]).await;
    // A tap of this test's own: gauges are set by whichever server is scraped.
    let keg = r#"{"tapId": 4242, "beverage": "Stout", "sizeMl": 1000}"#;
    assert_eq!(app.post_json("/api/kegs", keg).await.0, StatusCode::CREATED);
    app.pour(4242, 900.0).await;
    let metrics = scrape(&app).await;
    assert_eq!(
        metrics[r#"altair_keg_remaining_ml{venue="main",tap="4242"}"#],
        100.0
    );
    assert_eq!(
        metrics[r#"altair_keg_remaining_percent{venue="main",tap="4242"}"#],
        10.0
    );
    for (kind, severity) in [
        ("kegLow", "warning"),
        ("kegEmpty", "critical"),
        ("tapQuiet", "warning"),
        ("flaggedPours", "info"),
        ("afterHours", "warning"),
    ] {
        let series =
            format!(r#"altair_alerts_open{{venue="main",kind="{kind}",severity="{severity}"}}"#);
        assert!(metrics.contains_key(&series), "{series}");
    }
    // Finished and not replaced: no level, which no threshold matches.
    assert_eq!(
        app.post_json("/api/kegs/1/finish", "").await.0,
        StatusCode::OK
    );
    let metrics = scrape(&app).await;
    assert!(metrics[r#"altair_keg_remaining_ml{venue="main",tap="4242"}"#].is_nan());
}
