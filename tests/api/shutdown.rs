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

    crate::helpers::signal(&child, rustix::process::Signal::TERM);
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

#[tokio::test]
async fn the_healthcheck_subcommand_says_whether_the_server_is_up() {
    let (mut child, addr) = spawn_binary(&["--ephemeral"]);
    let check = |addr: &str| {
        Command::new(env!("CARGO_BIN_EXE_altair-server"))
            .args(["--bind", addr, "healthcheck", "--timeout", "2"])
            .output()
            .unwrap()
    };
    let up = tokio::task::spawn_blocking({
        let addr = addr.clone();
        move || check(&addr)
    })
    .await
    .unwrap();
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let down = tokio::task::spawn_blocking(move || check(&addr))
        .await
        .unwrap();
    assert!(!down.status.success());
    assert!(String::from_utf8_lossy(&down.stderr).starts_with("unhealthy"));
}
