//! The README's HAProxy configuration, run for real in front of two servers: pours and
//! subscriptions pass through it, and a server that stops leaves the rotation without a
//! pour lost. Skipped, in one line, without `haproxy`; with `ALTAIR_TEST_HAPROXY=required`
//! (as `.ci/run` sets) that fails instead.

use std::process::{Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{Process, read_json, spawn_app, tempdir, within};

/// The configuration the README shows, after its `<!-- haproxy-check -->` marker.
fn readme_config() -> &'static str {
    let readme = include_str!("../../README.md");
    let at = readme
        .find("<!-- haproxy-check -->")
        .expect("the README's marker");
    let start = at + readme[at..].find("```text\n").expect("a text block") + "```text\n".len();
    let end = start + readme[start..].find("```").expect("the block ends");
    &readme[start..end]
}

fn haproxy_present() -> bool {
    if Command::new("haproxy").arg("-v").output().is_ok() {
        return true;
    }
    static SAID: std::sync::Once = std::sync::Once::new();
    let why = "no haproxy: apt-get install haproxy";
    crate::helpers::skip_unless_required(
        "ALTAIR_TEST_HAPROXY",
        "the load balancer example",
        why,
        &SAID,
    );
    false
}

/// A port nobody listens on now.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    listener.local_addr().expect("its address").port()
}

#[tokio::test]
async fn the_readme_s_haproxy_spreads_pours_and_routes_around_a_stopped_server() {
    if !haproxy_present() {
        return;
    }
    let (one, two) = (spawn_app().await, spawn_app().await);
    let front = free_port();
    let config = readme_config()
        .replace("bind :8330", &format!("bind 127.0.0.1:{front}"))
        .replace("127.0.0.1:8338", &one.addr.to_string())
        .replace("127.0.0.1:8339", &two.addr.to_string());
    let dir = tempdir("haproxy");
    let file = dir.join("haproxy.cfg");
    std::fs::write(&file, config).unwrap();
    let check = Command::new("haproxy")
        .arg("-c")
        .arg("-f")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "haproxy -c: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    // -db: in the foreground, so that it is this test's child and dies with it.
    let _haproxy = Process(
        Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let url = |path: &str| format!("http://127.0.0.1:{front}{path}");
    let post = |tap: u32| {
        http.post(url("/api/beers"))
            .header("content-type", "application/json")
            .body(json!({"tapId": tap, "volume": 500}).to_string())
            .send()
    };
    // Up once it answers; then pours go to each server in turn.
    within(async {
        while !matches!(http.get(url("/health")).send().await, Ok(r) if r.status() == StatusCode::OK) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    for _ in 0..10 {
        let (status, body) = read_json(post(1).await.unwrap()).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let total = |body: serde_json::Value| body["total"].as_u64().unwrap_or(0);
    let (_, first) = one.get("/api/beers?page_size=1").await;
    let (_, second) = two.get("/api/beers?page_size=1").await;
    assert_eq!(total(first.clone()) + total(second.clone()), 10);
    assert!(
        total(first.clone()) >= 4 && total(second.clone()) >= 4,
        "spread: {first} {second}"
    );

    // A subscription through it is a subscription.
    let (mut ws, _) = within(tokio_tungstenite::connect_async(format!(
        "ws://127.0.0.1:{front}/sockets/beers"
    )))
    .await
    .expect("the WebSocket handshake passes through");
    let hello = within(futures::StreamExt::next(&mut ws)).await;
    assert!(
        matches!(&hello, Some(Ok(m)) if m.to_text().unwrap_or("").contains("\"hello\"")),
        "{hello:?}"
    );

    // One server stops: every pour still lands, on the other.
    let (_, before) = two.get("/api/beers?page_size=1").await;
    one.shutdown().await;
    for _ in 0..20 {
        let (status, body) = read_json(post(2).await.unwrap()).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (_, after) = two.get("/api/beers?page_size=1").await;
    assert_eq!(
        total(after) - total(before),
        20,
        "the second server took every pour"
    );
    std::fs::remove_dir_all(dir).unwrap();
}
