//! Webhooks, against a receiver run by the test: signed as the Standard Webhooks library
//! verifies, retried under one id, kept across a kill, sent once by two servers, and a
//! hostile receiver costs one bounded attempt. (What every store keeps alike is in the
//! contract suite.)

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, spawn_with, tempdir};
use crate::postgres::Postgres;
use crate::receiver::{Receiver, Reply, any, of_type};

/// A server's API by address: in-process or a spawned binary alike.
pub struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    pub fn at(addr: &str) -> Api {
        Api {
            base: format!("http://{addr}"),
            http: crate::helpers::http_client(),
        }
    }

    pub fn of(app: &TestApp) -> Api {
        Api::at(&app.addr.to_string())
    }

    pub async fn send_json(&self, method: &str, path: &str, body: &str) -> (StatusCode, Value) {
        let response = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        crate::helpers::read_json(response).await
    }

    pub async fn post_json(&self, path: &str, body: &str) -> (StatusCode, Value) {
        self.send_json("POST", path, body).await
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        crate::helpers::read_json(response).await
    }

    pub async fn delete(&self, path: &str) -> StatusCode {
        self.http
            .delete(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
            .status()
    }

    pub async fn pour(&self, tap: u32, volume: f64) -> Value {
        let (status, body) = self
            .post_json(
                "/api/beers",
                &json!({"tapId": tap, "volume": volume}).to_string(),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["beer"].clone()
    }
}

/// Makes a webhook on `app`: its id and secret.
pub async fn webhook(app: &Api, body: Value) -> (u64, String) {
    let (status, made) = app.post_json("/api/webhooks", &body.to_string()).await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    (
        made["webhook"]["id"].as_u64().unwrap(),
        made["secret"].as_str().unwrap().to_owned(),
    )
}

/// Taps a 1-litre keg on `tap` and pours it low: an `alert.opened` (kegLow) follows.
pub async fn keg_low(app: &Api, tap: u32) {
    let (status, body) = app
        .post_json(
            "/api/kegs",
            &json!({"tapId": tap, "beverage": "Stout", "sizeMl": 1000}).to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    app.pour(tap, 900.0).await;
}

/// What is missing to verify with the npm library, if anything (it is installed here,
/// with the browser tests' packages, where Node and npm are).
fn library_missing(_dir: &Path) -> Option<String> {
    crate::helpers::node_packages().err()
}

/// Each message verified by the Standard Webhooks library, as it read them; `None` (said
/// once) where Node or the library is missing, unless the browser tests are required.
fn verified_by_the_library(secret: &str, got: &[crate::receiver::Received]) -> Option<Vec<Value>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    if let Some(why) = library_missing(&dir) {
        static SAID: std::sync::Once = std::sync::Once::new();
        let what = "verifying with the Standard Webhooks library (Node)";
        crate::helpers::skip_unless_required("ALTAIR_TEST_BROWSER", what, &why, &SAID);
        return None;
    }
    let input = json!({
        "secret": secret,
        "messages": got.iter().map(|r| json!({"headers": r.headers, "body": r.body})).collect::<Vec<_>>(),
    });
    let mut node = crate::helpers::Process(
        Command::new("node")
            .arg("verify-webhooks.mjs")
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    node.stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let mut out = String::new();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut node.stdout.take().unwrap(), &mut out).unwrap();
    std::io::Read::read_to_string(&mut node.stderr.take().unwrap(), &mut err).unwrap();
    let status = node.wait().unwrap();
    assert!(status.success(), "the library refused a message: {err}");
    Some(
        out.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect(),
    )
}

#[tokio::test]
async fn messages_are_signed_as_the_standard_webhooks_library_verifies_and_the_secret_is_never_logged()
 {
    let receiver = Receiver::start().await;
    let (_server, addr, log) = crate::helpers::spawn_binary_logged(&["--ephemeral"]);
    let app = Api::at(&addr);
    let (id, secret) = webhook(
        &app,
        json!({"url": receiver.url("/hooks/altair"), "events": ["alert.opened", "alert.acknowledged", "keg.tapped"], "description": "Office"}),
    )
    .await;
    assert!(secret.starts_with("whsec_"), "{secret}");
    keg_low(&app, 2).await;
    let (status, _) = app
        .post_json("/api/alerts/1/ack", r#"{"note": "on it"}"#)
        .await;
    assert_eq!(status, StatusCode::OK);
    receiver.wait_for(3, any).await;
    let (status, queued) = app.post_json(&format!("/api/webhooks/{id}/test"), "").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
    let got = receiver.wait_for(4, any).await;
    let types: Vec<String> = got
        .iter()
        .map(|r| r.json()["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        types,
        ["keg.tapped", "alert.opened", "alert.acknowledged", "ping"],
        "in the order they happened"
    );
    for r in &got {
        assert_eq!(r.path, "/hooks/altair");
        assert_eq!(r.headers["content-type"], "application/json");
        assert!(r.id().starts_with("msg_"), "{:?}", r.headers);
        let sent_at: i64 = r.headers["webhook-timestamp"].parse().unwrap();
        assert!(
            (sent_at - chrono_now()).abs() < 60,
            "unix seconds: {sent_at}"
        );
    }
    assert_eq!(got[3].id(), queued["messageId"]);
    let opened = got[1].json();
    assert_eq!(opened["data"]["alert"]["kind"], "kegLow");
    assert_eq!(opened["data"]["alert"]["tapId"], 2);
    assert_eq!(got[2].json()["data"]["alert"]["note"], "on it");
    if let Some(verified) = verified_by_the_library(&secret, &got) {
        assert_eq!(verified.len(), 4);
        assert_eq!(verified[1]["data"]["alert"]["kind"], "kegLow");
    }
    // A tampered body fails the same check, so the check is a real one.
    let mut forged = got[1].clone();
    forged.body = forged.body.replace("kegLow", "kegEmpty");
    if library_missing(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")).is_none() {
        let refused = std::panic::catch_unwind(|| verified_by_the_library(&secret, &[forged]));
        assert!(refused.is_err(), "a forged body must not verify");
    }
    // Shown once: never again by the API, never in a log line.
    let (_, listed) = app.get("/api/webhooks").await;
    assert!(!listed.to_string().contains(&secret[6..]), "{listed}");
    assert_eq!(
        listed["webhooks"][0]["secretPrefix"],
        format!("{}…", &secret[..10])
    );
    let lines = log.lock().unwrap().clone();
    assert!(
        lines.iter().any(|l| l.contains("webhook 1 created")),
        "{lines:#?}"
    );
    assert!(
        !lines.iter().any(|l| l.contains(&secret[6..20])),
        "the secret reached the log"
    );
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test]
async fn a_message_pending_when_the_server_is_killed_is_sent_after_the_restart() {
    let dir = tempdir("webhook-kill");
    let data = dir.to_str().unwrap();
    let receiver = Receiver::start().await;
    receiver.otherwise(Reply::Status(503));
    let flags = ["--data-dir", data, "--webhook-retries", "1"];
    let (mut server, addr) = crate::helpers::spawn_binary(&flags);
    let app = Api::at(&addr);
    webhook(
        &app,
        json!({"url": receiver.url("/"), "events": ["alert.opened"]}),
    )
    .await;
    keg_low(&app, 1).await;
    let first = receiver.wait_for(1, any).await;
    // Killed with the message waiting for its second attempt: once the attempt is on disk
    // (the API shows it a moment before).
    let file = dir.join("webhooks.json");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(&file).is_ok_and(|t| t.contains(r#""status":503"#)) {
        assert!(Instant::now() < deadline, "the attempt was never written");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.kill().unwrap();
    server.wait().unwrap();
    receiver.otherwise(Reply::Status(204));
    let (_server, addr) = crate::helpers::spawn_binary(&flags);
    let app = Api::at(&addr);
    let got = receiver.wait_for(2, any).await;
    assert_eq!(got[1].id(), first[0].id(), "the same message");
    assert_eq!(got[1].body, first[0].body, "the same body");
    let deliveries = wait_for_attempts(&app, 1, 2).await;
    assert_eq!(deliveries["deliveries"][0]["status"], 204);
    assert_eq!(deliveries["deliveries"][0]["state"], "delivered");
    assert_eq!(deliveries["deliveries"][1]["status"], 503);
    assert_eq!(deliveries["pending"], 0);
    // Nothing more: it was delivered once.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(receiver.got().len(), 2);
    let _ = std::fs::remove_dir_all(dir);
}

/// The one alert of `kind` once it is in `state`.
async fn wait_for_alert(app: &Api, kind: &str, state: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, list) = app
            .get(&format!("/api/alerts?kind={kind}&state={state}"))
            .await;
        if let Some(alert) = list["alerts"].as_array().and_then(|a| a.first()) {
            return alert.clone();
        }
        assert!(Instant::now() < deadline, "no {state} {kind} alert: {list}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The webhook's deliveries once it has `n` attempts.
pub async fn wait_for_attempts(app: &Api, webhook: u64, n: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = app
            .get(&format!("/api/webhooks/{webhook}/deliveries"))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if body["total"].as_u64().unwrap() >= n {
            return body;
        }
        assert!(Instant::now() < deadline, "{n} attempts: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn two_servers_on_one_database_send_each_message_once() {
    let Some(pg) = Postgres::start() else { return };
    let url = pg.url();
    let receiver = Receiver::start().await;
    // Slow answers keep each server's sender busy, so both compete for every message.
    let flags = ["--database-url", url.as_str()];
    let (server_a, server_b) = (spawn_with(&flags).await, spawn_with(&flags).await);
    let a = Arc::new(Api::of(&server_a));
    let b = Arc::new(Api::of(&server_b));
    webhook(
        &a,
        json!({"url": receiver.url("/"), "events": ["alert.opened", "keg.tapped"]}),
    )
    .await;
    let taps = 12u32;
    let mut posting = Vec::new();
    for tap in 1..=taps {
        let server = if tap % 2 == 0 { a.clone() } else { b.clone() };
        posting.push(tokio::spawn(async move { keg_low(&server, tap).await }));
    }
    for p in posting {
        p.await.unwrap();
    }
    let expected = 2 * taps as usize;
    receiver.wait_for(expected, any).await;
    // Time for a second sender to repeat one, were there one.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let got = receiver.got();
    let mut ids: BTreeMap<String, usize> = BTreeMap::new();
    for r in &got {
        *ids.entry(r.id().to_owned()).or_default() += 1;
    }
    let twice: Vec<_> = ids.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "sent more than once: {twice:?}");
    assert_eq!(got.len(), expected, "{ids:?}");
    assert_eq!(
        receiver
            .got()
            .iter()
            .filter(|r| of_type("keg.tapped")(r))
            .count(),
        taps as usize
    );
}

#[tokio::test]
async fn a_server_killed_mid_send_leaves_the_message_to_another_when_its_lease_runs_out() {
    let Some(pg) = Postgres::start() else { return };
    let url = pg.url();
    let receiver = Receiver::start().await;
    receiver.plan(&[Reply::Hang]);
    // A lease is the timeout and 10 s: 12 s here.
    let flags = ["--database-url", url.as_str(), "--webhook-timeout", "2"];
    let (mut doomed, addr) = crate::helpers::spawn_binary(&flags);
    let doomed_api = Api::at(&addr);
    let (id, _) = webhook(
        &doomed_api,
        json!({"url": receiver.url("/"), "events": ["alert.opened"]}),
    )
    .await;
    let (_, ping) = doomed_api
        .post_json(&format!("/api/webhooks/{id}/test"), "")
        .await;
    // The doomed server is waiting for the answer; the other starts, then it dies.
    let first = receiver.wait_for(1, any).await;
    let survivor = spawn_with(&flags).await;
    doomed.kill().unwrap();
    doomed.wait().unwrap();
    let killed = Instant::now();
    let got = receiver.wait_for(2, any).await;
    assert!(
        killed.elapsed() > Duration::from_secs(5),
        "not before the lease ran out: {:?}",
        killed.elapsed()
    );
    assert_eq!(first[0].id(), ping["messageId"]);
    assert_eq!(got[1].id(), first[0].id(), "the same message, sent again");
    let deliveries = wait_for_attempts(&Api::of(&survivor), id, 1).await;
    assert_eq!(deliveries["deliveries"][0]["status"], 200);
    assert_eq!(deliveries["total"], 1, "the killed server recorded nothing");
}

#[tokio::test]
async fn a_receiver_that_redirects_hangs_or_floods_costs_one_bounded_attempt() {
    let receiver = Receiver::start().await;
    let server = spawn_with(&["--webhook-timeout", "1", "--webhook-retries", "60"]).await;
    let app = Api::of(&server);
    let redirect = webhook(&app, json!({"url": receiver.url("/moved")}))
        .await
        .0;
    let flood = webhook(&app, json!({"url": receiver.url("/flood")}))
        .await
        .0;
    // Accepts and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_url = format!("http://{}/", silent.local_addr().unwrap());
    let held = tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            let (socket, _) = silent.accept().await.unwrap();
            held.push(socket);
        }
    });
    let hang = webhook(&app, json!({"url": silent_url})).await.0;
    receiver.plan(&[Reply::Redirect("/elsewhere"), Reply::Big(10 << 20)]);
    // One at a time, so that the plan's answers go where they are meant to.
    app.post_json(&format!("/api/webhooks/{redirect}/test"), "")
        .await;
    receiver.wait_for(1, any).await;
    app.post_json(&format!("/api/webhooks/{flood}/test"), "")
        .await;
    let started = Instant::now();
    app.post_json(&format!("/api/webhooks/{hang}/test"), "")
        .await;

    let moved = wait_for_attempts(&app, redirect, 1).await;
    assert_eq!(moved["deliveries"][0]["status"], 302);
    assert_eq!(moved["deliveries"][0]["state"], "pending", "retried later");
    assert_eq!(moved["pending"], 1);
    let flooded = wait_for_attempts(&app, flood, 1).await;
    assert_eq!(flooded["deliveries"][0]["status"], 200);
    assert_eq!(flooded["deliveries"][0]["state"], "delivered");
    let hung = wait_for_attempts(&app, hang, 1).await;
    assert_eq!(hung["deliveries"][0]["status"], Value::Null);
    assert_eq!(hung["deliveries"][0]["error"], "no answer within 1 s");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let paths: Vec<String> = receiver.got().iter().map(|r| r.path.clone()).collect();
    assert_eq!(paths, ["/moved", "/flood"], "the redirect was not followed");
    held.abort();
}

#[tokio::test]
async fn gone_disables_a_webhook_and_so_does_a_day_of_failures() {
    let receiver = Receiver::start().await;
    let server = spawn_with(&[
        "--webhook-retries",
        "0.2,0.2,0.2,0.2,0.2,0.2,0.2,0.2",
        "--webhook-disable-after",
        "0.5",
    ])
    .await;
    let app = Api::of(&server);
    let gone = webhook(&app, json!({"url": receiver.url("/gone")})).await.0;
    receiver.plan(&[Reply::Status(410)]);
    app.post_json(&format!("/api/webhooks/{gone}/test"), "")
        .await;
    wait_for_attempts(&app, gone, 1).await;
    let (_, shown) = app.get(&format!("/api/webhooks/{gone}")).await;
    assert_eq!(shown["webhook"]["enabled"], false);
    assert_eq!(
        shown["webhook"]["disabledReason"],
        "the receiver answered 410 Gone"
    );
    // An alert of its own, which other webhooks and the page carry.
    let alert = wait_for_alert(&app, "webhookFailing", "open").await;
    assert_eq!(alert["webhookId"], gone);
    assert_eq!(
        alert["message"],
        format!("Webhook {gone} is disabled: the receiver answered 410 Gone")
    );
    // Deleted, its alert resolves.
    assert_eq!(
        app.delete(&format!("/api/webhooks/{gone}")).await,
        StatusCode::NO_CONTENT
    );
    wait_for_alert(&app, "webhookFailing", "resolved").await;

    // Failing: 500 on every attempt, retried every 0.2 s, for longer than 0.5 s.
    let failing = webhook(&app, json!({"url": receiver.url("/failing")}))
        .await
        .0;
    receiver.otherwise(Reply::Status(500));
    app.post_json(&format!("/api/webhooks/{failing}/test"), "")
        .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let shown = loop {
        let (_, shown) = app.get(&format!("/api/webhooks/{failing}")).await;
        if shown["webhook"]["enabled"] == false {
            break shown;
        }
        assert!(Instant::now() < deadline, "{shown}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        shown["webhook"]["disabledReason"]
            .as_str()
            .unwrap()
            .starts_with("every attempt failed for"),
        "{shown}"
    );
    let (_, deliveries) = app
        .get(&format!("/api/webhooks/{failing}/deliveries"))
        .await;
    assert_eq!(deliveries["deliveries"][0]["state"], "failed");
    assert!(deliveries["total"].as_u64().unwrap() >= 2, "{deliveries}");
    // Enabled again, it sends what waited (a new test message here).
    receiver.otherwise(Reply::Status(200));
    let (status, enabled) = app
        .send_json(
            "PATCH",
            &format!("/api/webhooks/{failing}"),
            r#"{"enabled": true}"#,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{enabled}");
    assert_eq!(enabled["webhook"]["disabledReason"], Value::Null);
    let (_, open) = app.get("/api/alerts?kind=webhookFailing&state=open").await;
    assert_eq!(
        open["total"], 0,
        "enabled again, its alert resolved: {open}"
    );
    let (_, resolved) = app
        .get("/api/alerts?kind=webhookFailing&state=resolved")
        .await;
    assert_eq!(resolved["total"], 2, "{resolved}");
    let before = receiver.got().len();
    app.post_json(&format!("/api/webhooks/{failing}/test"), "")
        .await;
    receiver.wait_for(before + 1, any).await;
}

#[tokio::test]
async fn bad_webhooks_are_refused_with_the_field_named() {
    let server = spawn_with(&[]).await;
    let app = Api::of(&server);
    for (body, says) in [
        (json!({"url": "ftp://example.com/"}), "http or https"),
        (
            json!({"url": "https://user:pw@example.com/"}),
            "user name or password",
        ),
        (json!({"url": "https://example.com/#top"}), "no fragment"),
        (json!({}), "url"),
        (
            json!({"url": "https://example.com/", "events": []}),
            "events must be",
        ),
        (
            json!({"url": "https://example.com/", "events": ["ping"]}),
            "events must be",
        ),
        (
            json!({"url": "https://example.com/", "events": ["keg.low"]}),
            "events must be",
        ),
        (
            json!({"url": "https://example.com/", "format": "email"}),
            "format must be",
        ),
        (
            json!({"url": "https://example.com/", "secret": "mine"}),
            "secret is not a webhook field",
        ),
        (
            json!({"url": "https://example.com/", "description": "a\u{7}b"}),
            "description",
        ),
    ] {
        let (status, answer) = app.post_json("/api/webhooks", &body.to_string()).await;
        let message = assert_error(status, &answer, 422);
        assert!(message.contains(says), "{body}: {message}");
    }
    let (status, answer) = app.get("/api/webhooks/9").await;
    assert_error(status, &answer, 404);
    let (status, answer) = app
        .send_json("PATCH", "/api/webhooks/9", r#"{"enabled": false}"#)
        .await;
    assert_error(status, &answer, 404);
    assert_eq!(app.delete("/api/webhooks/9").await, StatusCode::NOT_FOUND);
    let (id, _) = webhook(
        &app,
        json!({"url": "https://ntfy.sh/altair-test", "format": "ntfy"}),
    )
    .await;
    let (status, shown) = app.get(&format!("/api/webhooks/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        shown["webhook"]["events"],
        json!(["alert.opened", "alert.acknowledged", "alert.resolved"]),
        "alerts by default"
    );
    assert_eq!(
        app.delete(&format!("/api/webhooks/{id}")).await,
        StatusCode::NO_CONTENT
    );
    let (status, answer) = app.get(&format!("/api/webhooks/{id}")).await;
    assert_error(status, &answer, 404);
}

#[tokio::test]
async fn a_reader_token_cannot_see_or_make_webhooks() {
    let dir = tempdir("webhook-tokens");
    let (file, [_, reader, admin]) = crate::security::tokens_file(&dir);
    let app = spawn_with(&["--tokens", file.to_str().unwrap()]).await;
    for (method, path) in [
        ("GET", "/api/webhooks"),
        ("POST", "/api/webhooks"),
        ("GET", "/api/webhooks/1/deliveries"),
    ] {
        let response = app
            .http
            .request(method.parse().unwrap(), app.url(path))
            .bearer_auth(&reader)
            .header("content-type", "application/json")
            .body(r#"{"url": "https://example.com/"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{method} {path}");
    }
    let response = app
        .http
        .post(app.url("/api/webhooks"))
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body(r#"{"url": "https://example.com/"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let _ = std::fs::remove_dir_all(dir);
}

/// A Python that has the Standard Webhooks library: `ALTAIR_PYTHON`, else `python3`;
/// `None` (said once) where there is none, unless `ALTAIR_TEST_PYTHON=required`.
fn python_with_the_library() -> Option<String> {
    let python = std::env::var("ALTAIR_PYTHON").unwrap_or_else(|_| "python3".into());
    let found = Command::new(&python)
        .args(["-c", "import standardwebhooks"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if found {
        return Some(python);
    }
    let why = format!("{python} cannot import standardwebhooks (pip install standardwebhooks)");
    static SAID: std::sync::Once = std::sync::Once::new();
    crate::helpers::skip_unless_required(
        "ALTAIR_TEST_PYTHON",
        "the README's webhook receiver",
        &why,
        &SAID,
    );
    None
}

#[tokio::test]
async fn the_readme_s_receiver_verifies_what_the_server_sends() {
    let Some(python) = python_with_the_library() else {
        return;
    };
    let readme = include_str!("../../README.md");
    let start = readme
        .find("# receiver.py:")
        .expect("the README has the receiver");
    let script = &readme[start..start + readme[start..].find("```").unwrap()];
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listening = format!(r#"("127.0.0.1", {port})"#);
    let script = script.replace(r#"("", 9000)"#, &listening);
    assert!(script.contains(&listening), "the receiver listens on 9000");
    let dir = tempdir("readme-receiver");
    std::fs::write(dir.join("receiver.py"), &script).unwrap();

    let server = spawn_with(&[]).await;
    let app = Api::of(&server);
    let url = format!("http://127.0.0.1:{port}/altair");
    let (id, secret) = webhook(&app, json!({"url": url, "events": ["alert.opened"]})).await;
    let mut receiver = crate::helpers::Process(
        Command::new(&python)
            .arg("receiver.py")
            .current_dir(&dir)
            .env("WEBHOOK_SECRET", &secret)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let printed = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let lines = std::io::BufRead::lines(std::io::BufReader::new(receiver.stdout.take().unwrap()));
    let sink = printed.clone();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "the receiver did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.post_json(&format!("/api/webhooks/{id}/test"), "").await;
    keg_low(&app, 3).await;
    let deliveries = wait_for_attempts(&app, id, 2).await;
    for attempt in deliveries["deliveries"].as_array().unwrap() {
        assert_eq!(attempt["status"], 204, "{deliveries}");
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while printed.lock().unwrap().len() < 2 {
        assert!(Instant::now() < deadline, "{:?}", printed.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let printed = printed.lock().unwrap().clone();
    assert_eq!(printed[0], format!("ping {{'webhookId': {id}}}"));
    assert!(
        printed[1].starts_with("alert.opened {'alert': {"),
        "{printed:?}"
    );
    assert!(printed[1].contains("'kind': 'kegLow'"), "{printed:?}");
    // And it turns away what this server did not sign.
    let forged = reqwest::Client::new()
        .post(&url)
        .header("webhook-id", "msg_forged")
        .header("webhook-timestamp", chrono_now().to_string())
        .header("webhook-signature", "v1,bm90IGEgc2lnbmF0dXJl")
        .body(r#"{"type":"ping"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
    receiver.kill().unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn an_unreadable_webhooks_file_stops_the_start_in_one_line() {
    let dir = tempdir("webhooks-unreadable");
    std::fs::write(dir.join("webhooks.json"), "{not json").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_altair-server"))
        .args(["--bind", "127.0.0.1:0", "--data-dir"])
        .arg(&dir)
        .env("RUST_LOG", "error")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].contains("webhooks.json: unreadable"), "{stderr}");
    let _ = std::fs::remove_dir_all(dir);
}

/// Runs `openssl` with `args` in `dir`.
fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn an_https_receiver_is_trusted_through_the_system_s_ca_store_and_only_so() {
    if Command::new("openssl").arg("version").output().is_err() {
        assert!(
            std::env::var("ALTAIR_TEST_OPENSSL").as_deref() != Ok("required"),
            "openssl is required (ALTAIR_TEST_OPENSSL=required) but not installed"
        );
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: https webhooks (no openssl to make a CA)"
        );
        return;
    }
    let dir = tempdir("webhook-https");
    // A CA of the test's own, and a certificate for localhost that it signs.
    openssl(
        &dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=Altair test CA",
        ],
    );
    openssl(
        &dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    std::fs::write(dir.join("san.ext"), "subjectAltName=DNS:localhost\n").unwrap();
    openssl(
        &dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ],
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let receiver = format!(
        r#"
import http.server, ssl
class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"])); self.send_response(204); self.end_headers()
    def log_message(self, *args): pass
server = http.server.HTTPServer(("127.0.0.1", {port}), Receiver)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); context.load_cert_chain("server.pem", "server.key")
server.socket = context.wrap_socket(server.socket, server_side=True)
server.serve_forever()
"#
    );
    let _receiver = crate::helpers::Process(
        Command::new("python3")
            .args(["-c", &receiver])
            .current_dir(&dir)
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "the https receiver did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let url = format!("https://localhost:{port}/altair");
    let ca = dir.join("ca.pem");
    // The system's store, where the operator put the bar's CA (here: SSL_CERT_FILE).
    for (trusted, env) in [
        (true, vec![("SSL_CERT_FILE", ca.as_os_str())]),
        (false, vec![]),
    ] {
        let (_server, addr, _) = crate::helpers::spawn_binary_with(
            &dir,
            &["--ephemeral", "--webhook-retries", "60"],
            &env,
        );
        let app = Api::at(&addr);
        let (id, _) = webhook(&app, json!({"url": url})).await;
        app.post_json(&format!("/api/webhooks/{id}/test"), "").await;
        let attempt = wait_for_attempts(&app, id, 1).await["deliveries"][0].clone();
        if trusted {
            assert_eq!(attempt["status"], 204, "{attempt}");
        } else {
            assert_eq!(attempt["status"], Value::Null, "{attempt}");
            let error = attempt["error"].as_str().unwrap();
            assert!(error.contains("certificate"), "{error}");
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}
