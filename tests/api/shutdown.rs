//! Graceful shutdown: sockets get their close frame and the server exits.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::helpers::{Subscriber, spawn_app, within};

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
    let mut child = Command::new(env!("CARGO_BIN_EXE_altair-server"))
        .args(["--bind", "127.0.0.1:0"])
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|line| {
            line.split("listening on ")
                .nth(1)
                .and_then(|rest| rest.split(';').next())
                .map(str::to_owned)
        })
        .expect("the server logs its address");
    // Keep draining the log so the child never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));

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
