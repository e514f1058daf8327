//! The disk fills up: the server says so (503 with Retry-After, a degraded /health, one log
//! line), keeps serving reads, and takes writes again by itself once there is space, with
//! nothing acknowledged lost or doubled.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{Log, http_client, read_json, spawn_binary_logged, tempdir, within};
use crate::metrics::scrape_binary;

/// A small tmpfs of the test's own, unmounted when the test ends.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts one of `size` (as mount takes it: `1m`), or returns None (saying so once)
    /// where mounting is not allowed and the test may skip.
    fn mount(name: &str, size: &str) -> Option<Tmpfs> {
        let dir = tempdir(name);
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        if mounted {
            return Some(Tmpfs(dir));
        }
        static SAID: std::sync::Once = std::sync::Once::new();
        let why = "cannot mount a tmpfs here: it needs root";
        crate::helpers::skip_unless_required("ALTAIR_TEST_TMPFS", "the disk-full test", why, &SAID);
        None
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn post(http: &reqwest::Client, addr: &str, tap: u32) -> (StatusCode, Value, Option<String>) {
    post_body(http, addr, format!(r#"{{"tapId": {tap}, "volume": 500}}"#)).await
}

async fn post_body(
    http: &reqwest::Client,
    addr: &str,
    body: String,
) -> (StatusCode, Value, Option<String>) {
    let response = http
        .post(format!("http://{addr}/api/beers"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let retry = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let (status, body) = read_json(response).await;
    (status, body, retry)
}

async fn stored_ids(http: &reqwest::Client, addr: &str) -> Vec<u64> {
    let response = http
        .get(format!("http://{addr}/api/beers?page_size=1000"))
        .send()
        .await
        .unwrap();
    let (_, page) = read_json(response).await;
    crate::helpers::ids_of(&page)
}

/// How many of a server's log lines so far contain `what`.
fn said(log: &Log, what: &str) -> usize {
    log.lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains(what))
        .count()
}

/// Waits until a log line contains `what`.
async fn until_said(log: &Log, what: &str) {
    within(async {
        while said(log, what) == 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
}

async fn health(http: &reqwest::Client, addr: &str) -> (StatusCode, Value) {
    let response = http
        .get(format!("http://{addr}/health"))
        .send()
        .await
        .unwrap();
    read_json(response).await
}

async fn get_json(http: &reqwest::Client, addr: &str, path: &str) -> (StatusCode, Value) {
    let response = http
        .get(format!("http://{addr}{path}"))
        .send()
        .await
        .unwrap();
    (response.status(), response.json().await.unwrap())
}

/// Waits until `/health` lists exactly these kinds of this server's own alerts, in this
/// order (by kind's name); returns them.
async fn until_own_alerts(http: &reqwest::Client, addr: &str, kinds: &[&str]) -> Vec<Value> {
    within(async {
        loop {
            let (_, health) = health(http, addr).await;
            let mut alerts = health["alerts"].as_array().cloned().unwrap_or_default();
            alerts.sort_by_key(|a| a["kind"].as_str().unwrap_or("").to_owned());
            let named: Vec<&str> = alerts
                .iter()
                .map(|a| a["kind"].as_str().unwrap_or(""))
                .collect();
            if named == kinds {
                return alerts;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await
}

/// Waits until `/health` answers 200, as a load balancer would.
async fn until_healthy(http: &reqwest::Client, addr: &str) {
    within(async {
        while health(http, addr).await.0 != StatusCode::OK {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
}

/// A pour on `tap` timed `hour` hours and `second` seconds into 2026: pours an hour
/// apart on a tap are never a burst.
fn timed(tap: u32, hour: u32, second: u32) -> String {
    let at = chrono::DateTime::from_timestamp(1_767_225_600 + i64::from(hour * 3600 + second), 0)
        .unwrap()
        .to_rfc3339();
    format!(r#"{{"tapId": {tap}, "volume": 500, "timestamp": "{at}"}}"#)
}

/// Pours from 16 taps in turn until one is refused: the ids acknowledged, the number of
/// the refused pour, and its answer.
async fn pour_until_refused(
    http: &reqwest::Client,
    addr: &str,
) -> (Vec<u64>, u32, (StatusCode, Value, Option<String>)) {
    let mut acked = Vec::new();
    for n in 0..100_000u32 {
        let (status, body, retry) = post_body(http, addr, timed(n % 16 + 1, n, 0)).await;
        if status != StatusCode::CREATED {
            return (acked, n, (status, body, retry));
        }
        acked.push(body["beer"]["id"].as_u64().unwrap());
    }
    panic!("the disk never filled");
}

/// Pours until the disk is full, then checks what a tap and a load balancer see: 503 with
/// Retry-After for this and every write after it, and a degraded /health. Returns the ids
/// acknowledged, the number of the refused pour and /health's answer.
async fn fill(http: &reqwest::Client, addr: &str) -> (Vec<u64>, u32, Value) {
    let (acked, refused_at, (status, body, retry)) = pour_until_refused(http, addr).await;
    assert!(!acked.is_empty(), "some pours fit");
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(retry.is_some(), "503 says when to come back");
    for _ in 0..20 {
        assert_eq!(post(http, addr, 1).await.0, StatusCode::SERVICE_UNAVAILABLE);
    }
    let (status, health) = health(http, addr).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{health}");
    assert_eq!(health["status"], "degraded");
    assert_eq!(health["writable"], false);
    assert!(
        health["reason"].as_str().unwrap().contains("no space left"),
        "{health}"
    );
    (acked, refused_at, health)
}

/// Reads and subscriptions go on while writes are refused.
async fn reads_go_on(http: &reqwest::Client, addr: &str, acked: &[u64]) {
    assert_eq!(stored_ids(http, addr).await, acked);
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/sockets/beers"))
        .await
        .unwrap();
    let mut subscriber = crate::helpers::Subscriber { ws };
    assert_eq!(
        subscriber.next_json().await["lastId"],
        *acked.last().unwrap()
    );
}

#[tokio::test]
async fn a_full_disk_refuses_writes_keeps_reads_and_resumes_by_itself() {
    let Some(tmpfs) = Tmpfs::mount("full-disk", "256k") else {
        return;
    };
    let data = tmpfs.0.join("data");
    let data_arg = data.to_str().unwrap().to_owned();
    let http = http_client();
    // Warned under 200,000 bytes free, looked at ten times a second.
    let (server, addr, log) = spawn_binary_logged(&[
        "--data-dir",
        &data_arg,
        "--low-space-warning",
        "200000",
        "--space-check-interval",
        "0.1",
    ]);
    // Alerts go to a webhook: this server's own from its memory, the store being full.
    let receiver = crate::receiver::Receiver::start().await;
    let (status, made) = read_json(
        http.post(format!("http://{addr}/api/webhooks"))
            .header("content-type", "application/json")
            .body(
                serde_json::json!({"url": receiver.url("/"), "events": ["alert.opened", "alert.resolved"]})
                    .to_string(),
            )
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let own_kind = |kind: &'static str, event: &'static str| {
        move |r: &crate::receiver::Received| {
            let body = r.json();
            body["type"] == event && body["data"]["alert"]["kind"] == kind
        }
    };
    let free =
        |metrics: &std::collections::HashMap<String, f64>| metrics["altair_store_free_bytes"];
    let before = scrape_binary(&addr).await;
    assert_eq!(before[r#"altair_store_writable{store="journal"}"#], 1.0);
    assert!(free(&before) > 200_000.0, "{}", free(&before));
    // Room for the journal's first few hundred pours, then none.
    let filler = tmpfs.0.join("filler");
    std::fs::write(&filler, vec![0u8; 232 * 1024]).unwrap();
    // The operator hears of it before a write is refused.
    until_said(&log, "low on space").await;
    let (mut acked, refused_at, health) = fill(&http, &addr).await;
    assert!(
        health["freeBytes"].as_u64().unwrap() < 64 * 1024,
        "{health}"
    );
    let full = scrape_binary(&addr).await;
    assert_eq!(full[r#"altair_store_writable{store="journal"}"#], 0.0);
    assert_eq!(
        full[r#"altair_store_up{store="journal"}"#], 1.0,
        "reads go on"
    );
    assert!(free(&full) < 64.0 * 1024.0);
    reads_go_on(&http, &addr, &acked).await;
    assert_eq!(
        said(&log, "no space left on"),
        1,
        "said once, not once a request"
    );
    assert_eq!(said(&log, "low on space"), 1);
    assert_eq!(
        said(&log, "/api/beers 503"),
        0,
        "refusals for a full disk are summed up, not a line each"
    );
    // This server's own alerts: in its /health, and among the alerts it lists.
    let own = until_own_alerts(&http, &addr, &["diskLow", "storeFailing"]).await;
    assert!(
        own[0]["server"].as_str().is_some_and(|s| !s.is_empty()),
        "{own:?}"
    );
    assert_eq!(own[1]["severity"], "critical");
    let (_, listed) = get_json(&http, &addr, "/api/alerts?kind=storeFailing").await;
    assert_eq!(listed["alerts"][0]["id"], own[1]["id"], "{listed}");
    // Sent while the disk is full: from memory, not the store.
    for kind in ["diskLow", "storeFailing"] {
        let sent = receiver.wait_for(1, own_kind(kind, "alert.opened")).await;
        assert_eq!(sent[0].json()["data"]["alert"]["server"], own[0]["server"]);
    }
    assert!(
        own[1]["id"].as_u64().unwrap() >= 1 << 52,
        "apart from the log's ids"
    );
    // Acknowledged in this server's memory: the store it would log to cannot write.
    let ack = format!("http://{addr}/api/alerts/{}/ack", own[1]["id"]);
    let (status, answer) = read_json(http.post(&ack).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["alert"]["state"], "acknowledged");

    // Space comes back: writes resume without a restart, ids going on.
    std::fs::remove_file(&filler).unwrap();
    until_healthy(&http, &addr).await;
    until_own_alerts(&http, &addr, &[]).await;
    let (_, resolved) = get_json(&http, &addr, "/api/alerts?state=resolved").await;
    assert_eq!(resolved["total"], 2, "both resolved: {resolved}");
    receiver
        .wait_for(1, own_kind("storeFailing", "alert.resolved"))
        .await;
    receiver
        .wait_for(1, own_kind("diskLow", "alert.resolved"))
        .await;
    assert_eq!(said(&log, "writable again after"), 1);
    let back = scrape_binary(&addr).await;
    assert_eq!(back[r#"altair_store_writable{store="journal"}"#], 1.0);
    until_said(&log, "space is back").await;
    // A pour a second after the refused one, on its tap: the refused pour left no trace,
    // not even in how fast the tap seems to pour.
    let (status, body, _) =
        post_body(&http, &addr, timed(refused_at % 16 + 1, refused_at, 1)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["beer"]["flags"], serde_json::json!([]), "not a burst");
    let next = body["beer"]["id"].as_u64().unwrap();
    assert_eq!(next, acked.last().unwrap() + 1, "ids go on");
    acked.push(next);

    // Everything acknowledged is on disk, once.
    drop(server); // SIGKILL
    let (_server, addr, _) = spawn_binary_logged(&["--data-dir", &data_arg]);
    assert_eq!(stored_ids(&http, &addr).await, acked);
}

/// PostgreSQL's disk fills (its tables live on a small tmpfs, its write-ahead log does
/// not): writes answer 503, /health says the database cannot write, reads go on, and
/// writes resume by themselves once there is room.
#[tokio::test]
async fn a_full_database_disk_refuses_writes_and_resumes_by_itself() {
    let Some(tmpfs) = Tmpfs::mount("pg-full", "512k") else {
        return;
    };
    let Some(pg) = crate::postgres::Postgres::start() else {
        return;
    };
    let tablespace = tmpfs.0.join("tables");
    std::fs::create_dir(&tablespace).unwrap();
    pg.give_to_server(&tablespace);
    let db = pg.client().await;
    db.batch_execute(&format!(
        "CREATE TABLESPACE small LOCATION '{}'",
        tablespace.display()
    ))
    .await
    .unwrap();
    db.batch_execute("ALTER DATABASE altair SET default_tablespace = small")
        .await
        .unwrap();
    let http = http_client();
    let url = pg.url();
    let (server, addr, log) = spawn_binary_logged(&["--database-url", &url]);
    // Room for a few hundred pours, then none.
    let filler = tmpfs.0.join("filler");
    let free = altair::disk::free_bytes(&tmpfs.0).unwrap();
    std::fs::write(&filler, vec![0u8; (free - 96 * 1024) as usize]).unwrap();
    let (mut acked, _, _) = fill(&http, &addr).await;
    let full = scrape_binary(&addr).await;
    assert_eq!(full[r#"altair_store_writable{store="postgres"}"#], 0.0);
    assert_eq!(full[r#"altair_store_up{store="postgres"}"#], 1.0);
    reads_go_on(&http, &addr, &acked).await;
    assert_eq!(said(&log, "PostgreSQL cannot write"), 1, "said once");
    let own = until_own_alerts(&http, &addr, &["storeFailing"]).await;
    assert!(
        own[0]["message"].as_str().unwrap().contains("cannot write"),
        "{own:?}"
    );

    // Room again: the server finds out by itself, with no write to try.
    std::fs::remove_file(&filler).unwrap();
    until_healthy(&http, &addr).await;
    assert_eq!(said(&log, "PostgreSQL is writable again after"), 1);
    let (status, body, _) = post(&http, &addr, 1).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let next = body["beer"]["id"].as_u64().unwrap();
    assert_eq!(next, acked.last().unwrap() + 1, "ids go on");
    acked.push(next);
    drop(server); // SIGKILL
    let (_server, addr, _) = spawn_binary_logged(&["--database-url", &url]);
    assert_eq!(stored_ids(&http, &addr).await, acked);
}
