//! Several servers on one PostgreSQL database: every behaviour of one server holds across
//! them, and every subscriber on every server hears every pour once, in order, whichever
//! server it was posted to, through lost notifications, held transactions and outages.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Subscriber, TestApp, assert_error, ids_of, spawn_with, within};
use crate::postgres::Postgres;

/// A server on the cluster's database, with extra flags.
async fn replica(pg: &Postgres, flags: &[&str]) -> Arc<TestApp> {
    let url = pg.url();
    let mut all = vec!["--database-url", url.as_str()];
    all.extend_from_slice(flags);
    Arc::new(spawn_with(&all).await)
}

async fn replicas(pg: &Postgres, n: usize) -> Vec<Arc<TestApp>> {
    let mut servers = Vec::new();
    for _ in 0..n {
        servers.push(replica(pg, &[]).await);
    }
    servers
}

/// The next `n` pour ids a subscriber hears.
async fn hear(subscriber: &mut Subscriber, n: usize) -> Vec<u64> {
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        ids.push(subscriber.next_pour().await["id"].as_u64().unwrap());
    }
    ids
}

/// Every stored pour's id, by REST.
async fn stored_ids(app: &TestApp) -> Vec<u64> {
    ids_of(&app.get("/api/beers?page_size=1000").await.1)
}

/// Posts `each` pours from each of `taps` taps, the taps spread over `servers`, all at once.
async fn pour_everywhere(servers: &[Arc<TestApp>], taps: u32, each: usize) {
    crate::helpers::pour_from_taps_on(servers, taps, each).await;
}

#[tokio::test]
async fn every_subscriber_on_every_server_hears_every_pour_once_in_order() {
    let Some(pg) = Postgres::start() else { return };
    let servers = replicas(&pg, 3).await;
    let mut subscribers = Vec::new();
    for server in &servers {
        for _ in 0..2 {
            subscribers.push(server.subscribe("").await.0);
        }
    }
    pour_everywhere(&servers, 6, 15).await;
    let stored = stored_ids(&servers[0]).await;
    assert_eq!(
        stored,
        (1..=90).collect::<Vec<_>>(),
        "ids are dense and ordered"
    );
    for server in &servers[1..] {
        assert_eq!(
            stored_ids(server).await,
            stored,
            "every server serves the same pours"
        );
    }
    for subscriber in &mut subscribers {
        assert_eq!(hear(subscriber, 90).await, stored);
    }
    // Reports count every pour, from whichever server.
    for server in &servers {
        let (_, report) = server.get("/api/report").await;
        assert_eq!(report["totalPours"], 90, "{report}");
    }
}

#[tokio::test]
async fn a_deletion_on_one_server_reaches_the_subscribers_and_reports_of_all() {
    let Some(pg) = Postgres::start() else { return };
    let servers = replicas(&pg, 2).await;
    let (mut far, _) = servers[1].subscribe("").await;
    servers[0].pour(1, 500.0).await;
    assert_eq!(far.next_pour().await["id"], 1);
    assert_eq!(
        servers[0].delete("/api/beers/1").await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(far.next_event("deleted").await["id"], 1);
    let (status, body) = servers[1].get("/api/beers/1").await;
    assert_error(status, &body, 404);
    let (_, report) = servers[1].get("/api/report").await;
    assert_eq!(report["totalPours"], 0, "{report}");
}

#[tokio::test]
async fn a_dropped_listen_connection_delays_nothing_for_good() {
    let Some(pg) = Postgres::start() else { return };
    let servers = replicas(&pg, 2).await;
    let (mut far, _) = servers[1].subscribe("").await;
    pour_everywhere(&servers[..1], 2, 5).await;
    assert_eq!(hear(&mut far, 10).await, (1..=10).collect::<Vec<_>>());
    let db = pg.client().await;
    let killed = db
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'altair-tailer'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(killed.len(), 2, "both servers' listeners");
    pour_everywhere(&servers[..1], 2, 5).await;
    assert_eq!(hear(&mut far, 10).await, (11..=20).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_writer_holding_its_transaction_makes_the_others_wait_and_no_id_is_skipped() {
    let Some(pg) = Postgres::start() else { return };
    let servers = replicas(&pg, 2).await;
    let (mut subscriber, _) = servers[1].subscribe("").await;
    servers[0].pour(1, 500.0).await;
    // Another writer's transaction, held open with the counters row locked.
    let held = pg.client().await;
    held.batch_execute("BEGIN; SELECT * FROM altair_counters FOR UPDATE")
        .await
        .unwrap();
    let posting = tokio::spawn({
        let servers = servers.clone();
        async move { pour_everywhere(&servers, 4, 3).await }
    });
    // Wait until both servers' writers are queued behind the held lock.
    let db = pg.client().await;
    within(async {
        loop {
            let waiting: i64 = db
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'altair-writer' AND wait_event_type = 'Lock'",
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            if waiting == 2 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    held.batch_execute("COMMIT").await.unwrap();
    posting.await.unwrap();
    assert_eq!(
        hear(&mut subscriber, 13).await,
        (1..=13).collect::<Vec<_>>()
    );
    assert_eq!(stored_ids(&servers[0]).await, (1..=13).collect::<Vec<_>>());
}

#[tokio::test]
async fn since_on_another_server_replays_exactly_then_goes_live() {
    let Some(pg) = Postgres::start() else { return };
    let servers = replicas(&pg, 2).await;
    let (mut first, _) = servers[0].subscribe("").await;
    pour_everywhere(&servers, 2, 5).await;
    assert_eq!(hear(&mut first, 4).await, [1, 2, 3, 4]);
    drop(first);
    let (mut again, hello) = servers[1].subscribe("?since=4").await;
    assert_eq!(hello["lastId"], 10);
    assert_eq!(hear(&mut again, 6).await, (5..=10).collect::<Vec<_>>());
    servers[0].pour(3, 250.0).await;
    assert_eq!(hear(&mut again, 1).await, [11]);
}

#[tokio::test]
async fn an_idempotency_key_retried_on_another_server_returns_the_original() {
    let Some(pg) = Postgres::start() else { return };
    let servers = replicas(&pg, 3).await;
    let body = r#"{"tapId": 2, "volume": 500}"#;
    let (status, first) = servers[0].post_keyed("tap-2-pour-1", body).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, again) = servers[1].post_keyed("tap-2-pour-1", body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again, first);
    let (status, other) = servers[2]
        .post_keyed("tap-2-pour-1", r#"{"tapId": 2, "volume": 250}"#)
        .await;
    assert_error(status, &other, 409);
    assert_eq!(stored_ids(&servers[2]).await, [1]);
}

/// Posts pours with keys until `stop`, retrying each until it is stored, as the tap client
/// does; returns the ids acknowledged and how many answers were 503.
async fn post_until(
    app: Arc<TestApp>,
    tap: u32,
    stop: tokio_util::sync::CancellationToken,
) -> (Vec<u64>, usize) {
    let (mut ids, mut unavailable) = (Vec::new(), 0);
    let mut n = 0;
    while !stop.is_cancelled() {
        n += 1;
        let key = format!("tap-{tap}-{n}");
        let body = json!({"tapId": tap, "volume": 500}).to_string();
        loop {
            let response = app
                .http
                .post(app.url("/api/beers"))
                .header("idempotency-key", &key)
                .body(body.clone())
                .send()
                .await;
            let Ok(response) = response else { continue };
            let status = response.status();
            if status == StatusCode::SERVICE_UNAVAILABLE {
                unavailable += 1;
                assert!(response.headers().contains_key("retry-after"));
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
            let answer: Value = response.json().await.unwrap();
            assert!(status.is_success(), "{status}: {answer}");
            ids.push(answer["beer"]["id"].as_u64().unwrap());
            break;
        }
    }
    (ids, unavailable)
}

#[tokio::test]
async fn postgres_stopped_and_started_mid_load_loses_nothing_and_subscribers_resume() {
    let Some(pg) = Postgres::start() else { return };
    let servers = replicas(&pg, 2).await;
    let mut subscribers = Vec::new();
    for server in &servers {
        subscribers.push(server.subscribe("").await.0);
    }
    let stop = tokio_util::sync::CancellationToken::new();
    let posters: Vec<_> = servers
        .iter()
        .enumerate()
        .map(|(i, server)| tokio::spawn(post_until(server.clone(), i as u32 + 1, stop.clone())))
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    pg.stop();
    // While it is down: /health says so, with a status a load balancer acts on.
    within(async {
        loop {
            let (status, health) = servers[0].get("/health").await;
            if status == StatusCode::SERVICE_UNAVAILABLE {
                assert_eq!(health["status"], "degraded", "{health}");
                assert!(
                    health["reason"].as_str().unwrap().contains("database"),
                    "{health}"
                );
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let metrics = crate::helpers::scrape_as(&servers[0], None).await;
    assert_eq!(metrics[r#"altair_store_up{store="postgres"}"#], 0.0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    pg.start_server();
    within(async {
        while servers[0].get("/health").await.0 != StatusCode::OK {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let metrics = crate::helpers::scrape_as(&servers[0], None).await;
    assert_eq!(metrics[r#"altair_store_up{store="postgres"}"#], 1.0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.cancel();
    let mut acknowledged = BTreeSet::new();
    let mut refused = 0;
    for poster in posters {
        let (ids, unavailable) = poster.await.unwrap();
        refused += unavailable;
        acknowledged.extend(ids);
    }
    assert!(refused > 0, "writes during the outage were answered 503");
    let stored = stored_ids(&servers[1]).await;
    assert_eq!(
        stored.iter().copied().collect::<BTreeSet<_>>(),
        acknowledged,
        "every acknowledged pour is stored, once"
    );
    assert_eq!(stored, (1..=stored.len() as u64).collect::<Vec<_>>());
    for subscriber in &mut subscribers {
        assert_eq!(
            hear(subscriber, stored.len()).await,
            stored,
            "no gap across the outage"
        );
    }
}

#[tokio::test]
async fn a_schema_newer_than_the_server_is_refused_in_one_line() {
    let Some(pg) = Postgres::start() else { return };
    drop(replica(&pg, &[]).await);
    pg.client()
        .await
        .batch_execute("INSERT INTO altair_schema (version) VALUES (999)")
        .await
        .unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_altair-server"))
        .args(["--bind", "127.0.0.1:0", "--database-url", &pg.url()])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let log = String::from_utf8_lossy(&output.stderr);
    let errors: Vec<&str> = log.lines().filter(|l| l.contains("ERROR")).collect();
    assert_eq!(errors.len(), 1, "{log}");
    assert!(
        errors[0].contains("version 999, newer than this server knows"),
        "{log}"
    );
}

#[tokio::test]
async fn migrate_creates_the_schema_and_says_so_without_the_password() {
    let Some(pg) = Postgres::start() else { return };
    let dir = crate::helpers::tempdir("pg-password");
    let secret = dir.join("password");
    std::fs::write(&secret, "s3cret-not-for-logs\n").unwrap();
    let migrate = |url: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_altair-server"))
            .args(["--database-url", url, "--database-password-file"])
            .arg(&secret)
            .arg("migrate")
            .output()
            .unwrap()
    };
    let first = migrate(&pg.url());
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let said = String::from_utf8_lossy(&first.stdout).into_owned();
    assert!(
        said.contains("applied v1, v2, v3, v4, v5, v6, v7, v8, v9"),
        "{said}"
    );
    assert!(!said.contains("s3cret"));
    let again = migrate(&pg.url());
    assert!(String::from_utf8_lossy(&again.stdout).contains("up to date (v9)"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn a_server_killed_under_load_loses_no_acknowledged_pour() {
    let Some(pg) = Postgres::start() else { return };
    let url = pg.url();
    let (mut doomed, doomed_addr) = crate::helpers::spawn_binary(&["--database-url", &url]);
    let (_survivor, survivor_addr) = crate::helpers::spawn_binary(&["--database-url", &url]);
    let http = crate::helpers::http_client();
    let stop = tokio_util::sync::CancellationToken::new();
    // Each poster starts on the doomed server and, like a load balancer, fails over to the
    // other with the same key when it does not answer.
    let posters: Vec<_> = (1..=4u32)
        .map(|tap| {
            let (http, stop) = (http.clone(), stop.clone());
            let addrs = [doomed_addr.clone(), survivor_addr.clone()];
            tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                let mut n = 0;
                while !stop.is_cancelled() {
                    n += 1;
                    let key = format!("tap-{tap}-{n}");
                    for attempt in 0.. {
                        let addr = &addrs[usize::from(attempt > 0)];
                        let sent = http
                            .post(format!("http://{addr}/api/beers"))
                            .header("idempotency-key", &key)
                            .body(json!({"tapId": tap, "volume": 500}).to_string())
                            .timeout(Duration::from_secs(5))
                            .send()
                            .await;
                        if let Ok(response) = sent
                            && response.status().is_success()
                        {
                            let answer: Value = response.json().await.unwrap();
                            acknowledged.push(answer["beer"]["id"].as_u64().unwrap());
                            break;
                        }
                    }
                }
                acknowledged
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(400)).await;
    doomed.kill().unwrap();
    doomed.wait().unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.cancel();
    let mut acknowledged = BTreeSet::new();
    for poster in posters {
        acknowledged.extend(poster.await.unwrap());
    }
    let page: Value = http
        .get(format!("http://{survivor_addr}/api/beers?page_size=1000"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let stored: BTreeSet<u64> = ids_of(&page).into_iter().collect();
    assert!(
        acknowledged.len() > 20,
        "the load ran: {}",
        acknowledged.len()
    );
    // Every acknowledged pour is there; and nothing else: a retry of a pour the killed
    // server had committed got the same pour back, not a second one.
    assert_eq!(stored, acknowledged);
    assert_eq!(stored.len() as u64, page["total"].as_u64().unwrap());
}

#[tokio::test]
async fn a_server_started_before_its_database_waits_for_it() {
    let Some(pg) = Postgres::start() else { return };
    let pg = Arc::new(pg);
    pg.stop();
    let starter = std::thread::spawn({
        let pg = pg.clone();
        move || {
            std::thread::sleep(Duration::from_millis(700));
            pg.start_server();
        }
    });
    let (_server, addr, log) = crate::helpers::spawn_binary_logged(&["--database-url", &pg.url()]);
    starter.join().unwrap();
    assert!(
        log.lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("waiting for PostgreSQL")),
        "{:?}",
        log.lock().unwrap()
    );
    let health = crate::helpers::http_client()
        .get(format!("http://{addr}/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
}

#[tokio::test]
async fn pours_and_deletions_reach_every_server_in_the_order_they_happened() {
    let Some(pg) = Postgres::start() else { return };
    let servers = replicas(&pg, 2).await;
    let (mut far, _) = servers[1].subscribe("").await;
    let mut happened = Vec::new();
    // Alternating servers: pour, pour, delete, pour, delete, delete, pour.
    for (i, step) in ["p", "p", "d1", "p", "d3", "d2", "p"].iter().enumerate() {
        let server = &servers[i % 2];
        if let Some(id) = step.strip_prefix('d') {
            assert_eq!(
                server.delete(&format!("/api/beers/{id}")).await,
                StatusCode::NO_CONTENT
            );
            happened.push(format!("deleted {id}"));
        } else {
            let pour = server.pour(1, 500.0).await;
            happened.push(format!("pour {}", pour["id"]));
        }
    }
    let mut heard = Vec::new();
    while heard.len() < happened.len() {
        let frame = far.next_json().await;
        match frame["event"].as_str() {
            Some("pour") => heard.push(format!("pour {}", frame["beer"]["id"])),
            Some("deleted") => heard.push(format!("deleted {}", frame["id"])),
            _ => {}
        }
    }
    assert_eq!(heard, happened);
}

#[tokio::test]
async fn bursts_are_judged_against_the_tap_s_previous_pour_on_any_server() {
    let Some(pg) = Postgres::start() else { return };
    let servers = replicas(&pg, 2).await;
    let post = |server: usize, at: &str| {
        let body = format!(r#"{{"tapId": 9, "volume": 500, "timestamp": "{at}"}}"#);
        let server = servers[server].clone();
        async move {
            let (status, body) = server.post_raw(body).await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
            body["beer"]["flags"].clone()
        }
    };
    // 500 ml takes 2.5 s at 200 ml/s.
    assert_eq!(post(0, "2026-11-20T20:00:00Z").await, json!([]));
    assert_eq!(post(1, "2026-11-20T20:00:01Z").await, json!(["burst"]));
    assert_eq!(post(0, "2026-11-20T20:00:03.500Z").await, json!([]));
    for server in &servers {
        let (_, page) = server.get("/api/beers?flag=burst").await;
        assert_eq!(ids_of(&page), [2], "{page}");
    }
}

#[tokio::test]
async fn a_database_from_before_flags_is_migrated_and_keeps_its_pours() {
    let Some(pg) = Postgres::start() else { return };
    let client = pg.client().await;
    // The schema and rows as the release before flags left them.
    let at = |second: u32| {
        altair::pour::Timestamp::parse(&format!("2026-11-20T20:00:{second:02}Z"))
            .unwrap()
            .millis()
    };
    client
        .batch_execute(&format!(
            "CREATE TABLE altair_schema (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now());
             {}
             INSERT INTO altair_schema (version) VALUES (1);
             INSERT INTO altair_pours (id, tap_id, volume, glass, poured_at_ms, device_time)
                 VALUES (1, 1, 500, 'pint', {}, true), (2, 2, 250, 'half', {}, true);
             INSERT INTO altair_counts (tap_id, glass, pours) VALUES (1, 'pint', 1), (2, 'half', 1);
             UPDATE altair_counters SET last_pour_id = 2;",
            include_str!("../../src/store/postgres/migrations/0001_pours.sql"),
            at(0),
            at(10),
        ))
        .await
        .unwrap();
    let server = replica(&pg, &[]).await;
    let (_, page) = server.get("/api/beers").await;
    assert_eq!(ids_of(&page), [1, 2]);
    assert_eq!(page["beers"][0]["flags"], json!([]), "{page}");
    let (_, report) = server.get("/api/report").await;
    assert_eq!(report["totalPours"], 2);
    // Tap 1 last poured at :00, as the old rows say: a pint at :01 is a burst.
    let body = r#"{"tapId": 1, "volume": 500, "timestamp": "2026-11-20T20:00:01Z"}"#;
    let (status, pour) = server.post_raw(body).await;
    assert_eq!(status, StatusCode::CREATED, "{pour}");
    assert_eq!(pour["beer"]["id"], 3);
    assert_eq!(pour["beer"]["flags"], json!(["burst"]));
    let version: i32 = client
        .query_one("SELECT max(version) FROM altair_schema", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(version, altair::store::postgres::schema_version());
}

#[tokio::test]
async fn kegs_are_the_same_on_every_server_and_each_event_is_heard_once_everywhere() {
    let Some(pg) = Postgres::start() else { return };
    let servers = replicas(&pg, 2).await;
    let mut subscribers = Vec::new();
    for server in &servers {
        subscribers.push(server.subscribe("").await.0);
    }
    let (status, body) = servers[0]
        .post_json(
            "/api/kegs",
            r#"{"tapId": 4, "beverage": "Pils", "sizeMl": 1000}"#,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // Pours from either server draw the same keg: low at 850 ml, empty at 1000.
    servers[1].pour(4, 500.0).await;
    servers[0].pour(4, 400.0).await;
    servers[1].pour(4, 100.0).await;
    // The keg is empty, though the last pour was posted to the other server.
    let (_, over) = servers[0].post_raw(r#"{"tapId": 4, "volume": 200}"#).await;
    let flags = over["beer"]["flags"].as_array().unwrap();
    assert!(flags.contains(&json!("emptyKeg")), "{over}");
    let mut heard_by = Vec::new();
    for subscriber in &mut subscribers {
        // Keg and alert events: (what, after which pour, seq).
        let mut events = Vec::new();
        let mut pours = 0;
        while pours < 4 {
            let frame = subscriber.next_change().await;
            let what = match frame["event"].as_str() {
                Some("pour") => {
                    pours += 1;
                    continue;
                }
                Some("keg") => format!("keg {}", frame["kind"].as_str().unwrap()),
                // Updates are said a few times a second by each server on its own clock.
                Some("alert") if frame["change"] == "updated" => continue,
                Some("alert") => format!(
                    "alert {} {}",
                    frame["change"].as_str().unwrap(),
                    frame["alert"]["kind"].as_str().unwrap()
                ),
                _ => continue,
            };
            events.push((
                what,
                frame["after"].as_u64().unwrap(),
                frame["seq"].as_u64().unwrap(),
            ));
        }
        // The ones about the keg (pours posted back to back also open alerts about bursts).
        let about_the_keg: Vec<(&str, u64)> = events
            .iter()
            .filter(|(what, _, _)| !what.ends_with("flaggedPours"))
            .map(|(what, after, _)| (what.as_str(), *after))
            .collect();
        assert_eq!(
            about_the_keg,
            [
                ("keg tapped", 0),
                ("keg low", 2),
                ("alert opened kegLow", 2),
                ("keg empty", 3),
                ("alert resolved kegLow", 3),
                ("alert opened kegEmpty", 3),
            ]
        );
        heard_by.push(events);
    }
    assert_eq!(heard_by[0], heard_by[1], "the same events, numbered alike");
    // A server that starts now reads the same kegs off the log.
    let late = replica(&pg, &[]).await;
    let keg = |server: Arc<TestApp>| async move { server.get("/api/kegs/1").await.1 };
    let first = keg(servers[0].clone()).await;
    assert_eq!(first["keg"]["remainingMl"], -200.0, "{first}");
    assert_eq!(keg(servers[1].clone()).await, first);
    assert_eq!(keg(late.clone()).await, first);
    let (_, alerts) = servers[0].get("/api/alerts").await;
    assert_eq!(servers[1].get("/api/alerts").await.1, alerts);
    assert_eq!(late.get("/api/alerts").await.1, alerts, "alerts too");
}

#[tokio::test]
async fn a_quiet_tap_is_announced_once_though_every_server_watches() {
    let Some(pg) = Postgres::start() else { return };
    let mut servers = Vec::new();
    for _ in 0..2 {
        servers.push(replica(&pg, &["--quiet-after", "0.3"]).await);
    }
    let mut subscribers = Vec::new();
    for server in &servers {
        subscribers.push(server.subscribe("").await.0);
    }
    let keg = r#"{"tapId": 6, "beverage": "Pils", "size": "euro-20"}"#;
    assert_eq!(
        servers[0].post_json("/api/kegs", keg).await.0,
        StatusCode::CREATED
    );
    // An event in short: `keg tapped`, `alert opened`.
    let short = |frame: serde_json::Value| {
        let what = frame["kind"].as_str().or(frame["change"].as_str());
        let what = what.map_or(String::new(), |k| format!(" {k}"));
        format!("{}{what}", frame["event"].as_str().unwrap())
    };
    let mut heard_by = Vec::new();
    for subscriber in &mut subscribers {
        let mut kinds = Vec::new();
        while kinds.len() < 3 {
            kinds.push(short(subscriber.next_change().await));
        }
        heard_by.push(kinds);
    }
    // Both servers saw the tap go quiet; the second to say so was refused.
    servers[1].pour(6, 500.0).await;
    for (subscriber, kinds) in subscribers.iter_mut().zip(&mut heard_by) {
        for _ in 0..3 {
            kinds.push(short(subscriber.next_change().await));
        }
        assert_eq!(
            *kinds,
            [
                "keg tapped",
                "tap quiet",
                "alert opened",
                "pour",
                "tap back",
                "alert resolved"
            ]
        );
    }
}

/// A database that is not there: the server says which, in the database's own words, not
/// the driver's "db error", and exits.
#[tokio::test]
async fn a_missing_database_is_named_in_the_error() {
    let Some(pg) = Postgres::start() else { return };
    let url = pg.url().replace("dbname=altair", "dbname=nowhere");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_altair-server"))
        .args(["--bind", "127.0.0.1:0", "--database-url", &url])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(
        log.contains(r#"database "nowhere" does not exist (3D000)"#),
        "{log}"
    );
}

#[tokio::test]
async fn a_database_nobody_listens_for_is_said_with_its_cause_at_each_retry() {
    // A port nothing listens on (bound, then let go).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://altair@127.0.0.1:{port}/altair");
    let mut child = crate::helpers::Process(
        std::process::Command::new(env!("CARGO_BIN_EXE_altair-server"))
            .args(["--bind", "127.0.0.1:0", "--database-url", &url])
            .env("RUST_LOG", "warn")
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stderr = child.stderr.take().unwrap();
    let lines = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .filter(|l| l.contains("waiting for PostgreSQL"))
            .take(3)
            .collect::<Vec<_>>()
    });
    let lines = within(lines).await.unwrap();
    for line in &lines {
        assert!(line.contains("Connection refused"), "the cause: {line}");
        assert!(
            line.contains("again in") && line.contains("giving up in"),
            "{line}"
        );
    }
    child.kill().unwrap();
}

#[tokio::test]
async fn a_venue_made_on_one_server_is_the_same_on_every_server() {
    let Some(pg) = Postgres::start() else { return };
    let servers = replicas(&pg, 2).await;
    let harbour = r#"{"id": "harbour", "name": "Harbour", "timezone": "Pacific/Auckland"}"#;
    let (status, made) = servers[0].post_json("/api/venues", harbour).await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    // Read your writes on the server that made it; the other has it once it has read the
    // log, and refuses the same id.
    let (status, body) = servers[1].post_json("/api/venues", harbour).await;
    assert_error(status, &body, 409);
    assert_eq!(servers[1].get("/api/venues/harbour").await.1, made);
    let (status, renamed) = servers[1]
        .send_json("PATCH", "/api/venues/harbour", r#"{"name": "The Harbour"}"#)
        .await;
    assert_eq!(status, StatusCode::OK, "{renamed}");
    // A write decides after the whole log: once refused, server 0 has the new name too.
    let (status, body) = servers[0].post_json("/api/venues", harbour).await;
    assert_error(status, &body, 409);
    assert_eq!(
        servers[0].get("/api/venues").await.1,
        servers[1].get("/api/venues").await.1
    );
}

#[tokio::test]
async fn pours_stored_before_venues_are_the_default_venues_after_the_upgrade() {
    let Some(pg) = Postgres::start() else { return };
    let server = replica(&pg, &[]).await;
    for tap in [1, 2] {
        server.pour(tap, 500.0).await;
    }
    Arc::try_unwrap(server).ok().unwrap().shutdown().await;
    // The database as the release before venues left it: schema 5, no venue column.
    pg.client()
        .await
        .batch_execute(
            "ALTER TABLE altair_pours DROP COLUMN venue;
             ALTER TABLE altair_counts DROP CONSTRAINT altair_counts_pkey;
             ALTER TABLE altair_counts DROP COLUMN venue;
             ALTER TABLE altair_counts ADD PRIMARY KEY (tap_id, glass);
             ALTER TABLE altair_pours DROP COLUMN kept_for_key;
             DROP TABLE altair_restored;
             DROP TABLE altair_temperatures;
             DELETE FROM altair_schema WHERE version >= 6",
        )
        .await
        .unwrap();
    let server = replica(&pg, &["--default-venue", "dock-street"]).await;
    let (_, page) = server.get("/api/beers").await;
    let venues: Vec<&Value> = page["beers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["venue"])
        .collect();
    assert_eq!(
        venues,
        [&json!("dock-street"), &json!("dock-street")],
        "{page}"
    );
    assert_eq!(server.pour(3, 500.0).await["id"], 3);
    // The counts kept before venues are the default venue's.
    let (_, page) = server.get("/api/beers?venue=dock-street").await;
    assert_eq!(page["total"], 3, "{page}");
}

#[tokio::test]
async fn a_venue_s_reader_on_one_server_sees_only_its_venue_whatever_server_took_the_pours() {
    let Some(pg) = Postgres::start() else { return };
    let dir = crate::helpers::tempdir("replica-venues");
    let (file, tokens) = crate::contract::venue_tokens(&dir);
    let flags = ["--tokens", file.to_str().unwrap()];
    let (a, b) = (replica(&pg, &flags).await, replica(&pg, &flags).await);
    let [chain, dock_reader, dock_tap, main_tap] = [0, 2, 4, 5].map(|i| Some(tokens[i].as_str()));
    let dock = r#"{"id": "dock", "name": "Dock", "timezone": "UTC"}"#;
    assert_eq!(
        a.call("POST", "/api/venues", chain, Some(dock)).await.0,
        StatusCode::CREATED
    );
    // B learns of the venue from the log: its reader may follow it.
    let (mut dock_on_b, _) = within(async {
        loop {
            let (status, _) = b.call("GET", "/api/venues/dock", chain, None).await;
            if status == StatusCode::OK {
                return b.subscribe(&format!("?token={}", tokens[2])).await;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let pour = r#"{"tapId": 3, "volume": 500}"#;
    let (_, main_pour) = a.call("POST", "/api/beers", main_tap, Some(pour)).await;
    let (_, dock_pour) = a.call("POST", "/api/beers", dock_tap, Some(pour)).await;
    let heard = dock_on_b.next_pour().await;
    assert_eq!(heard["id"], dock_pour["beer"]["id"], "not {main_pour}");
    assert_eq!(heard["venue"], "dock");
    let (_, page) = b.call("GET", "/api/beers", dock_reader, None).await;
    assert_eq!(
        ids_of(&page),
        [dock_pour["beer"]["id"].as_u64().unwrap()],
        "{page}"
    );
    let path = format!("/api/beers/{}", main_pour["beer"]["id"]);
    let (status, body) = b.call("GET", &path, dock_reader, None).await;
    assert_error(status, &body, 404);
    let _ = std::fs::remove_dir_all(dir);
}
