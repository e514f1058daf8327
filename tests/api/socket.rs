//! The WebSocket feed: hello, live pours, filters, replay, reports, back-pressure.

use std::sync::Arc;

use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::helpers::{assert_error, read_json, spawn_app, spawn_with, within};

#[tokio::test]
async fn hello_tells_the_last_id_glasses_and_report_interval() {
    let app = spawn_with(&["--report-interval", "7"]).await;
    app.pour(1, 500.0).await;
    app.pour(1, 500.0).await;
    let (_subscriber, hello) = app.subscribe("").await;
    assert_eq!(hello["lastId"], 2);
    assert_eq!(hello["reportIntervalSeconds"], 7.0);
    assert_eq!(hello["glasses"].as_array().unwrap().len(), 3);
    assert_eq!(hello["glasses"][1]["name"], "pint");
}

#[tokio::test]
async fn every_new_pour_reaches_every_subscriber() {
    let app = spawn_app().await;
    let (mut a, _) = app.subscribe("").await;
    let (mut b, _) = app.subscribe("").await;
    let posted = app.pour(3, 500.0).await;
    assert_eq!(a.next_pour().await, posted);
    assert_eq!(b.next_pour().await, posted);
}

#[tokio::test]
async fn a_tap_does_not_hear_its_own_pours_unless_it_asks() {
    let app = spawn_app().await;
    let (mut tap3, _) = app.subscribe("?tapId=3").await;
    let (mut tap3_echo, _) = app.subscribe("?tapId=3&echo=true").await;
    app.pour(3, 500.0).await;
    app.pour(4, 500.0).await;
    // Events arrive in id order, so had pour 1 been sent it would come first.
    assert_eq!(tap3.next_pour().await["id"], 2);
    assert_eq!(tap3_echo.next_pour().await["id"], 1);
    assert_eq!(tap3_echo.next_pour().await["id"], 2);
}

#[tokio::test]
async fn type_filters_pass_only_the_named_glasses() {
    let app = spawn_app().await;
    let (mut steins, _) = app.subscribe("?type=stein").await;
    let (mut small_or_big, _) = app.subscribe("?type=half&type=stein").await;
    app.pour(1, 500.0).await; // pint
    app.pour(1, 200.0).await; // half
    app.pour(1, 900.0).await; // stein
    assert_eq!(steins.next_pour().await["id"], 3);
    assert_eq!(small_or_big.next_pour().await["id"], 2);
    assert_eq!(small_or_big.next_pour().await["id"], 3);
}

#[tokio::test]
async fn bad_subscription_parameters_fail_the_handshake() {
    let app = spawn_app().await;
    for (query, expected) in [
        ("?type=goblet", 422),
        ("?tapId=0", 400),
        ("?since=x", 400),
        ("?echo=maybe", 400),
    ] {
        let url = format!("ws://{}/sockets/beers{query}", app.addr);
        match tokio_tungstenite::connect_async(url).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status().as_u16(), expected, "{query}");
                let body: Value =
                    serde_json::from_slice(response.body().as_deref().unwrap()).unwrap();
                assert_eq!(body["status"], expected);
            }
            other => panic!("{query}: expected an HTTP error, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_plain_get_on_the_socket_is_426() {
    let app = spawn_app().await;
    let (status, body) = app.get("/sockets/beers").await;
    assert_error(status, &body, 426);
}

#[tokio::test]
async fn deletions_are_announced() {
    let app = spawn_app().await;
    app.pour(1, 500.0).await;
    let (mut subscriber, _) = app.subscribe("").await;
    assert_eq!(app.delete("/api/beers/1").await, StatusCode::NO_CONTENT);
    let frame = subscriber.next_event("deleted").await;
    assert_eq!(frame, serde_json::json!({"event": "deleted", "id": 1}));
}

#[tokio::test]
async fn since_replays_then_goes_live_without_gap_or_duplicate() {
    let app = Arc::new(spawn_app().await);
    for _ in 0..40 {
        app.pour(1, 500.0).await;
    }
    // Pours keep arriving while the subscriber connects and replays.
    let writer = {
        let app = app.clone();
        tokio::spawn(async move {
            for _ in 0..160 {
                app.pour(2, 500.0).await;
            }
        })
    };
    let (mut subscriber, hello) = app.subscribe("?since=10").await;
    assert!(hello["lastId"].as_u64().unwrap() >= 40);
    let mut ids = Vec::new();
    while ids.last() != Some(&200) {
        ids.push(subscriber.next_pour().await["id"].as_u64().unwrap());
    }
    writer.await.unwrap();
    assert_eq!(ids, (11..=200).collect::<Vec<u64>>());
}

#[tokio::test]
async fn since_replay_respects_the_filters() {
    let app = spawn_app().await;
    app.pour(1, 500.0).await;
    app.pour(2, 200.0).await;
    app.pour(3, 500.0).await;
    let (mut subscriber, _) = app.subscribe("?since=0&tapId=3&type=pint").await;
    assert_eq!(subscriber.next_pour().await["id"], 1);
    app.pour(1, 600.0).await;
    assert_eq!(
        subscriber.next_pour().await["id"],
        4,
        "pour 2 is a half, pour 3 its own"
    );
}

#[tokio::test]
async fn reports_arrive_at_the_interval() {
    let app = spawn_with(&["--report-interval", "0.2"]).await;
    app.pour(1, 500.0).await;
    let (mut subscriber, _) = app.subscribe("").await;
    let frame = subscriber.next_event("report").await;
    let report = &frame["report"];
    assert_eq!(report["totalPours"], 1);
    assert_eq!(report["byTap"][0]["tapId"], 1);
    // And the next one, an interval later.
    let started = std::time::Instant::now();
    subscriber.next_event("report").await;
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
}

#[tokio::test]
async fn reports_follow_every_n_pours() {
    let app = spawn_with(&["--report-every", "2", "--report-interval", "3600"]).await;
    let (mut subscriber, _) = app.subscribe("").await;
    app.pour(1, 500.0).await;
    app.pour(2, 500.0).await;
    assert_eq!(subscriber.next_json().await["event"], "pour");
    assert_eq!(subscriber.next_json().await["event"], "pour");
    let frame = subscriber.next_json().await;
    assert_eq!(frame["event"], "report");
    assert_eq!(frame["report"]["totalPours"], 2);
}

#[tokio::test]
async fn a_client_frame_over_4_kib_closes_the_socket() {
    let app = spawn_app().await;
    let (mut subscriber, _) = app.subscribe("").await;
    subscriber
        .send_text("small frames are ignored".into())
        .await;
    subscriber.send_text("x".repeat(5000)).await;
    let close = subscriber.closed().await;
    assert_eq!(close.code, CloseCode::Size);
    // The server goes on serving.
    let (_other, hello) = app.subscribe("").await;
    assert_eq!(hello["lastId"], 0);
}

#[tokio::test]
async fn pings_are_sent_and_a_silent_client_is_dropped() {
    let app = spawn_with(&["--ping-interval", "0.1", "--pong-timeout", "0.5"]).await;
    let (mut live, _) = app.subscribe("").await;
    // A client that reads (and so answers pings) sees pings and stays.
    within(async {
        loop {
            if let Some(Ok(Message::Ping(_))) = live.ws.next().await {
                break;
            }
        }
    })
    .await;
    // One that never reads never answers, and is dropped.
    let (_silent, _) = app.subscribe("").await;
    app.await_subscribers(2).await;
    let keep_reading = tokio::spawn(async move { while let Some(Ok(_)) = live.ws.next().await {} });
    app.await_subscribers(1).await;
    keep_reading.abort();
}

#[tokio::test]
async fn a_subscriber_that_never_reads_is_dropped_while_others_get_everything() {
    // Reports listing many taps make big frames, so socket buffers fill quickly.
    let app = Arc::new(
        spawn_with(&[
            "--subscriber-queue",
            "64",
            "--report-every",
            "1",
            "--close-grace",
            "10",
        ])
        .await,
    );
    let (mut slow, _) = app.subscribe("").await;
    let (mut reader, _) = app.subscribe("").await;
    // The reader keeps up by doing little per frame: reports grow to tens of KiB here,
    // and ingest does not wait for fan-out, so a reader parsing every report in a debug
    // build would itself fall behind.
    let reading = tokio::spawn(async move {
        let mut pours = 0u64;
        while pours < 600 {
            match within(reader.ws.next()).await {
                Some(Ok(Message::Text(text))) if text.starts_with(r#"{"event":"pour""#) => {
                    pours += 1
                }
                Some(Ok(_)) => {}
                other => panic!("the reader lost its socket: {other:?}"),
            }
        }
        (pours, reader)
    });
    let writer = {
        let app = app.clone();
        tokio::spawn(async move {
            for tap in 1..=600 {
                app.pour(tap, 500.0).await;
            }
        })
    };
    // The slow one is dropped as soon as its queue overflows...
    app.await_subscribers(1).await;
    // ...and, reading now, finds the close frame after whatever was already in flight.
    let close = slow.closed().await;
    assert_eq!(close.code, CloseCode::Policy);
    assert_eq!(close.reason.as_str(), "slow consumer");
    writer.await.unwrap();
    let (pours, _reader) = within(reading).await.unwrap();
    assert_eq!(pours, 600, "the reader missed nothing");
    let response = app.http.get(app.url("/health")).send().await.unwrap();
    let (_, health) = read_json(response).await;
    assert_eq!(health["subscribers"], 1);
    assert_eq!(health["subscribersDroppedSlow"], 1);
}

#[tokio::test]
async fn a_client_that_closes_is_disconnected_at_once() {
    let app = spawn_app().await;
    let (mut subscriber, _) = app.subscribe("").await;
    // One pour, so the hub has written to this subscriber directly before it leaves.
    app.pour(1, 500.0).await;
    subscriber.next_pour().await;
    subscriber.ws.close(None).await.unwrap();
    // The server answers the close and drops the connection without waiting for anything
    // else to happen (no further event, no grace timeout).
    let ended = tokio::time::timeout(std::time::Duration::from_secs(1), async {
        while subscriber.ws.next().await.is_some() {}
    })
    .await;
    assert!(ended.is_ok(), "the connection stayed open after the close");
    app.await_subscribers(0).await;
}

#[tokio::test]
async fn frames_stay_whole_and_in_order_while_pings_take_the_socket_back_and_forth() {
    // A ping every 10 ms: each one hands the socket from the hub to the subscriber's task
    // and back, while pours are written from three posters at once.
    let app = Arc::new(spawn_with(&["--ping-interval", "0.01"]).await);
    let mut subscribers = Vec::new();
    for _ in 0..3 {
        subscribers.push(app.subscribe("").await.0);
    }
    app.pour_from_taps(3, 100).await;
    for mut subscriber in subscribers {
        // Reading answers the pings; every pour arrives once, in id order, as valid JSON.
        let mut last = 0;
        for _ in 0..300 {
            let id = subscriber.next_pour().await["id"].as_u64().unwrap();
            assert!(id > last, "pour {id} after {last}");
            last = id;
        }
        assert_eq!(last, 300);
    }
}

#[tokio::test]
async fn a_replay_larger_than_the_socket_buffers_arrives_whole_then_live() {
    let app = Arc::new(spawn_app().await);
    // 8,000 pours, about 1.2 MB of frames: more than the socket buffers hold, so the replay
    // has to wait for the client to read, several times.
    app.pour_from_taps(16, 500).await;
    let (mut subscriber, _) = app.subscribe("?since=0").await;
    for expected in 1..=8000u64 {
        assert_eq!(subscriber.next_pour().await["id"], expected);
    }
    let live = app.pour(1, 500.0).await;
    assert_eq!(subscriber.next_pour().await, live);
}

#[tokio::test]
async fn a_plain_request_with_a_bad_query_learns_what_is_wrong_before_426() {
    let app = crate::helpers::spawn_app().await;
    for (query, status) in [
        ("eventsSince=-1", 400),
        ("tapId=null", 400),
        ("type=goblet", 422),
        ("since=3", 426),
        ("", 426),
    ] {
        let (got, body) = app.get(&format!("/sockets/beers?{query}")).await;
        assert_eq!(got.as_u16(), status, "{query}: {body}");
        assert_eq!(body["status"], status, "{query}: {body}");
    }
}
