//! Graceful shutdown: sockets get their close frame and the server exits.

use std::process::Command;
use std::time::{Duration, Instant};

use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::helpers::{Subscriber, spawn_app, spawn_binary, within};

#[tokio::test]
async fn shutdown_closes_sockets_with_1001_and_stops() {
    let app = spawn_app().await;
    let (mut subscriber, _) = app.subscribe("").await;
    app.begin_shutdown();
    let close = subscriber.closed().await;
    assert_eq!(close.code, CloseCode::Away);
    assert_eq!(close.reason.as_str(), "server shutting down");
    let started = Instant::now();
    within(app.stopped()).await;
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn sigterm_stops_the_binary_cleanly() {
    let (mut child, addr) = spawn_binary(&["--ephemeral"]);
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/sockets/beers"))
        .await
        .unwrap();
    let mut subscriber = Subscriber { ws };
    subscriber.next_json().await;

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    assert_eq!(subscriber.closed().await.code, CloseCode::Away);

    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "server still running 5 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "{status}");
}
