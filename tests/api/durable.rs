//! The journal store's own matters: torn tails, its directory lock, compaction, what it
//! logs on opening, and a changed glass catalogue. What every store does is in
//! `contract.rs`.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{assert_error, spawn_durable, spawn_with, tempdir, within};

const BODY: &str = r#"{"tapId": 4, "volume": 500}"#;

fn journal(dir: &std::path::Path) -> std::path::PathBuf {
    dir.join("journal")
}

#[tokio::test]
async fn malformed_keys_are_422() {
    let app = spawn_with(&[]).await;
    for key in ["", &"k".repeat(129), "caf\u{e9}"] {
        let response = app
            .http
            .post(app.url("/api/beers"))
            .header("content-type", "application/json")
            .header(
                "idempotency-key",
                reqwest::header::HeaderValue::from_bytes(key.as_bytes()).unwrap(),
            )
            .body(BODY)
            .send()
            .await
            .unwrap();
        let (status, body) = crate::helpers::read_json(response).await;
        assert!(
            assert_error(status, &body, 422).contains("Idempotency-Key"),
            "{key:?}"
        );
    }
    assert_eq!(
        app.post_keyed(&"k".repeat(128), BODY).await.0,
        StatusCode::CREATED
    );
    let (_, list) = app.get("/api/beers").await;
    assert_eq!(list["total"], 1);
}

#[tokio::test]
async fn a_torn_tail_is_dropped_and_the_prefix_served() {
    let dir = tempdir("torn");
    let app = spawn_durable(&dir, &[]).await;
    for tap in 1..=5 {
        app.pour(tap, 500.0).await;
    }
    app.shutdown().await;
    // Cut the last record in half, as a power cut mid-write would.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(journal(&dir))
        .unwrap();
    let len = file.metadata().unwrap().len();
    file.set_len(len - 20).unwrap();
    drop(file);

    let app = spawn_durable(&dir, &[]).await;
    let (_, list) = app.get("/api/beers").await;
    let taps: Vec<&Value> = list["beers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| &b["tapId"])
        .collect();
    assert_eq!(taps, [1, 2, 3, 4]);
    let (_, report) = app.get("/api/report").await;
    assert_eq!(report["totalPours"], 4);
    assert_eq!(app.pour(6, 500.0).await["id"], 5);
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn a_second_server_on_the_same_directory_is_refused() {
    let dir = tempdir("locked");
    let _first = spawn_durable(&dir, &[]).await;
    let config = <altair::Config as clap::Parser>::try_parse_from([
        "altair-server",
        "--bind",
        "127.0.0.1:0",
        "--data-dir",
        dir.to_str().unwrap(),
    ])
    .unwrap();
    let error = altair::RunningServer::start(config)
        .await
        .err()
        .expect("refused");
    assert!(
        error
            .to_string()
            .contains("in use by another altair-server"),
        "{error}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn an_unusable_data_directory_is_one_clear_error_line_and_a_failed_exit() {
    let dir = tempdir("unusable");
    let not_a_dir = dir.join("file");
    std::fs::write(&not_a_dir, "x").unwrap();
    let journal_is_a_dir = dir.join("data");
    std::fs::create_dir_all(journal_is_a_dir.join("journal")).unwrap();
    for (data_dir, says) in [
        (not_a_dir.join("data"), "cannot create data directory"),
        (journal_is_a_dir, "cannot use"),
    ] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_altair-server"))
            .args(["--bind", "127.0.0.1:0", "--data-dir"])
            .arg(&data_dir)
            .env("RUST_LOG", "error")
            .output()
            .unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{stderr}");
        assert!(lines[0].contains(says), "{stderr}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn deleted_pours_and_their_bytes_are_compacted_away() {
    let dir = tempdir("compact");
    let app = spawn_durable(&dir, &["--compact-min-bytes", "4096"]).await;
    let keg = |tap: u32| {
        let body = format!(r#"{{"tapId": {tap}, "beverage": "Pils", "sizeMl": 1000}}"#);
        let app = &app;
        async move {
            assert_eq!(
                app.post_json("/api/kegs", &body).await.0,
                StatusCode::CREATED
            )
        }
    };
    // Kegs between the pours: each takes its tap's pours after it, and keeps them.
    keg(100).await;
    for tap in 1..=100 {
        // Tap 3's 2 L fits no glass: an alert counts the pour, deleted and compacted away.
        app.pour(tap, if tap == 3 { 2000.0 } else { 500.0 }).await;
        if tap == 50 {
            keg(98).await;
            keg(100).await;
        }
    }
    keg(99).await;
    let (status, keyed) = app.post_keyed("kept", BODY).await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, seven) = app.get("/api/beers/7").await;
    let seven = altair::pour::Timestamp::parse(seven["beer"]["timestamp"].as_str().unwrap());
    for id in 1..=95 {
        assert_eq!(
            app.delete(&format!("/api/beers/{id}")).await,
            StatusCode::NO_CONTENT
        );
    }
    // Uncompacted, the journal now holds about 8 KiB. Compaction runs in the background;
    // a later write puts it in place.
    within(async {
        loop {
            app.pour(1, 500.0).await;
            if std::fs::metadata(journal(&dir)).unwrap().len() < 4096 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    let (_, before) = app.get("/api/beers?page_size=1000").await;
    let (_, kegs_before) = app.get("/api/kegs").await;
    let (_, alerts_before) = app.get("/api/alerts?tapId=3").await;
    assert_eq!(alerts_before["alerts"][0]["count"], 1, "{alerts_before}");
    let (_, alerts_before) = app.get("/api/alerts").await;
    let app = app.restart().await;
    assert_eq!(
        app.get("/api/alerts").await.1,
        alerts_before,
        "alerts survive compaction"
    );
    let (_, after) = app.get("/api/beers?page_size=1000").await;
    assert_eq!(after, before);
    let (_, kegs_after) = app.get("/api/kegs").await;
    assert_eq!(kegs_after, kegs_before, "kegs survive compaction");
    let drawn: Vec<f64> = kegs_after["kegs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["drawnMl"].as_f64().unwrap())
        .collect();
    assert_eq!(drawn, [0.0, 500.0, 500.0, 0.0], "{kegs_after}");
    assert_eq!(
        app.post_keyed("kept", BODY).await.1,
        keyed,
        "keys survive compaction"
    );
    let last = before["beers"].as_array().unwrap().last().unwrap()["id"]
        .as_u64()
        .unwrap();
    assert_eq!(app.pour(1, 500.0).await["id"], last + 1);
    // Tap 7's pour is compacted away, but not when it last poured: a pour a second later is
    // still a burst.
    let second_later = altair::pour::Timestamp::from_millis(seven.unwrap().millis() + 1000);
    let body = format!(r#"{{"tapId": 7, "volume": 500, "timestamp": "{second_later}"}}"#);
    let (_, pour) = app.post_raw(body).await;
    assert_eq!(
        pour["beer"]["flags"],
        serde_json::json!(["burst"]),
        "{pour}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn the_log_says_which_data_directory_was_opened_and_what_it_held() {
    let dir = tempdir("where-data-lives");
    let absolute = std::fs::canonicalize(&dir).unwrap().join("data");
    let opened_line = |log: &std::sync::Mutex<Vec<String>>| {
        log.lock()
            .unwrap()
            .iter()
            .find(|l| l.contains("store: opened"))
            .cloned()
            .expect("a line says what was opened")
    };
    {
        // A relative --data-dir, as the default is.
        let (_server, addr, log) = crate::helpers::spawn_binary_in(&dir, &["--data-dir", "data"]);
        let line = opened_line(&log);
        assert!(
            line.contains(&format!("opened {}: empty", absolute.display())),
            "{line}"
        );
        crate::helpers::pour_to(&addr, &[500, 500, 500]).await;
    }
    let (_server, _, log) = crate::helpers::spawn_binary_in(&dir, &["--data-dir", "data"]);
    let line = opened_line(&log);
    assert!(
        line.contains(&format!(
            "opened {}: 3 pours, last id 3",
            absolute.display()
        )),
        "{line}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn types_of_stored_pours_stay_filters_and_in_the_report_when_the_catalogue_changes() {
    let dir = tempdir("catalogue-change");
    let data = dir.join("data");
    let data = data.to_str().unwrap();
    let http = crate::helpers::http_client();
    {
        let (_server, addr, _) = crate::helpers::spawn_binary_in(&dir, &["--data-dir", data]);
        crate::helpers::pour_to(&addr, &[500, 500, 250]).await;
    }
    // The bar drops the pint for a "schooner".
    let glasses = dir.join("glasses.json");
    std::fs::write(
        &glasses,
        r#"[{"name": "half", "min": 100, "max": 300}, {"name": "schooner", "min": 300, "max": 1000}]"#,
    )
    .unwrap();
    let (_server, addr, log) = crate::helpers::spawn_binary_in(
        &dir,
        &["--data-dir", data, "--glasses", glasses.to_str().unwrap()],
    );
    let get = |path: &str| {
        let request = http.get(format!("http://{addr}{path}")).send();
        async move {
            let response = request.await.unwrap();
            (response.status(), response.json::<Value>().await.unwrap())
        }
    };
    let (status, pints) = get("/api/beers?type=pint").await;
    assert_eq!(status, StatusCode::OK, "{pints}");
    assert_eq!(pints["total"], 2, "{pints}");
    let (_, report) = get("/api/report").await;
    let by_type = report["byType"].as_array().unwrap();
    let names: Vec<&str> = by_type
        .iter()
        .map(|t| t["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["half", "schooner", "unclassified", "pint"],
        "{report}"
    );
    let summed: u64 = by_type.iter().map(|t| t["pours"].as_u64().unwrap()).sum();
    assert_eq!(summed, report["totalPours"].as_u64().unwrap(), "{report}");
    let (status, _) = get("/api/beers?type=pilsner").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "still unknown");
    let warned = log
        .lock()
        .unwrap()
        .iter()
        .any(|l| l.contains("no longer defines: pint (2 pours)"));
    assert!(warned, "{:?}", log.lock().unwrap());
    std::fs::remove_dir_all(dir).unwrap();
}

/// Alerts and their acknowledgements are the log's: a server killed with SIGKILL comes back
/// with the same alerts, ids and states.
#[tokio::test]
async fn alerts_and_acknowledgements_survive_sigkill() {
    let dir = tempdir("alerts-sigkill");
    let data = dir.to_str().unwrap().to_owned();
    let http = crate::helpers::http_client();
    let send = |addr: String, method: &'static str, path: &'static str, body: &'static str| {
        let http = http.clone();
        async move {
            let response = http
                .request(method.parse().unwrap(), format!("http://{addr}{path}"))
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            crate::helpers::read_json(response).await
        }
    };
    let (server, addr) = crate::helpers::spawn_binary(&["--data-dir", &data]);
    let keg = r#"{"tapId": 1, "beverage": "Cider", "sizeMl": 1000}"#;
    assert_eq!(
        send(addr.clone(), "POST", "/api/kegs", keg).await.0,
        StatusCode::CREATED
    );
    // Empty (opening low, then empty in its place), and a pour no glass holds.
    for body in [
        r#"{"tapId": 1, "volume": 1000}"#,
        r#"{"tapId": 2, "volume": 2000}"#,
    ] {
        assert_eq!(
            send(addr.clone(), "POST", "/api/beers", body).await.0,
            StatusCode::CREATED
        );
    }
    let ack = r#"{"note": "changing it"}"#;
    let (status, acked) = send(addr.clone(), "POST", "/api/alerts/2/ack", ack).await;
    assert_eq!(status, StatusCode::OK, "{acked}");
    assert_eq!(acked["alert"]["kind"], "kegEmpty");
    let (_, before) = send(addr.clone(), "GET", "/api/alerts", "").await;
    assert_eq!(before["total"], 3, "{before}");
    drop(server); // SIGKILL
    let (_server, addr) = crate::helpers::spawn_binary(&["--data-dir", &data]);
    let (_, after) = send(addr.clone(), "GET", "/api/alerts", "").await;
    assert_eq!(after, before);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_taken_port_fails_the_start_before_anything_is_created() {
    let dir = tempdir("taken-port");
    let data = dir.join("data");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_altair-server"))
        .args(["--bind", &addr, "--data-dir"])
        .arg(&data)
        .env("RUST_LOG", "error")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot listen on"), "{stderr}");
    assert!(!data.exists(), "the data directory was created: {stderr}");
    std::fs::remove_dir_all(dir).unwrap();
}
