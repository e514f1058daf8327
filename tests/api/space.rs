//! The disk fills up: the server says so (503 with Retry-After, a degraded /health, one log
//! line), keeps serving reads, and takes writes again by itself once there is space, with
//! nothing acknowledged lost or doubled.

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::beers::tempdir;
use crate::helpers::{http_client, read_json, spawn_binary_logged, within};
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
        if std::env::var("ALTAIR_TEST_TMPFS").as_deref() == Ok("required") {
            panic!("a tmpfs is required (ALTAIR_TEST_TMPFS=required) but mount failed");
        }
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: the disk-full test (cannot mount a tmpfs here: it needs root; set ALTAIR_TEST_TMPFS=required to fail instead)"
        );
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
    let said = |what: &str| {
        log.lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(what))
            .count()
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
    within(async {
        while said("low on space") == 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let mut acked = Vec::new();
    let (mut status, mut body, mut retry) = (StatusCode::CREATED, Value::Null, None);
    // Pours from 16 taps in turn, an hour apart (none a burst), until the disk is full.
    let timed = |tap: u32, hour: u32, second: u32| {
        let at =
            chrono::DateTime::from_timestamp(1_767_225_600 + i64::from(hour * 3600 + second), 0)
                .unwrap()
                .to_rfc3339();
        format!(r#"{{"tapId": {tap}, "volume": 500, "timestamp": "{at}"}}"#)
    };
    let mut refused_at = 0;
    for n in 0..10_000u32 {
        (status, body, retry) = post_body(&http, &addr, timed(n % 16 + 1, n, 0)).await;
        if status != StatusCode::CREATED {
            refused_at = n;
            break;
        }
        acked.push(body["beer"]["id"].as_u64().unwrap());
    }
    assert!(!acked.is_empty(), "some pours fit");
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(retry.is_some(), "503 says when to come back");
    for _ in 0..20 {
        assert_eq!(
            post(&http, &addr, 1).await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
    let health = http
        .get(format!("http://{addr}/health"))
        .send()
        .await
        .unwrap();
    let (status, health) = read_json(health).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{health}");
    assert_eq!(health["status"], "degraded");
    assert!(
        health["reason"].as_str().unwrap().contains("no space left"),
        "{health}"
    );
    assert_eq!(health["writable"], false);
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
    // Reads go on, and so do subscriptions.
    assert_eq!(stored_ids(&http, &addr).await, acked);
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/sockets/beers"))
        .await
        .unwrap();
    let mut subscriber = crate::helpers::Subscriber { ws };
    assert_eq!(
        subscriber.next_json().await["lastId"],
        *acked.last().unwrap()
    );
    assert_eq!(said("no space left on"), 1, "said once, not once a request");
    assert_eq!(said("low on space"), 1);

    // Space comes back: writes resume without a restart, ids going on.
    std::fs::remove_file(&filler).unwrap();
    within(async {
        loop {
            let health = http
                .get(format!("http://{addr}/health"))
                .send()
                .await
                .unwrap();
            if health.status() == StatusCode::OK {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert_eq!(said("writable again after"), 1);
    let back = scrape_binary(&addr).await;
    assert_eq!(back[r#"altair_store_writable{store="journal"}"#], 1.0);
    within(async {
        while said("space is back") == 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
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
