//! Who gets in: tokens and roles, public paths, reloads, rate limits, caps, CORS, timeouts.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use altair::auth::{Role, new_token};
use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::helpers::{TestApp, assert_error, read_json, scrape_as, spawn_with, tempdir, within};

/// A server with a tokens file holding a tap-3, a reader and an admin token (plus `flags`);
/// returns it, the folder to remove, and the tokens.
async fn spawn_with_tokens(name: &str, flags: &[&str]) -> (TestApp, PathBuf, [String; 3]) {
    let dir = tempdir(name);
    let (file, tokens) = tokens_file(&dir);
    let mut all = vec!["--tokens", file.to_str().unwrap()];
    all.extend_from_slice(flags);
    (spawn_with(&all).await, dir, tokens)
}

/// A tokens file with a tap-3, a reader and an admin token; returns it and the tokens.
pub fn tokens_file(dir: &Path) -> (PathBuf, [String; 3]) {
    let mut text = String::new();
    let mut tokens = Vec::new();
    for (role, name) in [
        (Role::Tap(3), "tap-3"),
        (Role::Reader, "board"),
        (Role::Admin, "ops"),
    ] {
        let (token, entry) = new_token(role, None, name).unwrap();
        text.push_str(&entry);
        tokens.push(token);
    }
    let file = dir.join("tokens.toml");
    std::fs::write(&file, text).unwrap();
    (file, tokens.try_into().unwrap())
}

async fn call(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (StatusCode, Value, reqwest::header::HeaderMap) {
    let mut request = app.http.request(method, app.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_owned());
    }
    let response = request.send().await.unwrap();
    let headers = response.headers().clone();
    let (status, body) = read_json(response).await;
    (status, body, headers)
}

const TAP3: &str = r#"{"tapId": 3, "volume": 500}"#;
const TAP4: &str = r#"{"tapId": 4, "volume": 500}"#;
const KEG: &str = r#"{"tapId": 3, "beverage": "Pils", "size": "euro-50"}"#;

const VENUE: &str = r#"{"id": "dock", "name": "Dock", "timezone": "UTC"}"#;

#[tokio::test]
async fn roles_decide_who_may_do_what() {
    use reqwest::Method as M;
    let (app, dir, [tap, reader, admin]) = spawn_with_tokens("roles", &[]).await;

    // (method, path, token, body, expected status)
    type Case<'a> = (M, &'a str, Option<&'a str>, Option<&'a str>, u16);
    let cases: Vec<Case> = vec![
        (M::GET, "/health", None, None, 200),
        (M::GET, "/api/beers", None, None, 401),
        (M::GET, "/nope", None, None, 401),
        (M::POST, "/api/beers", None, Some(TAP3), 401),
        (M::POST, "/api/beers", Some(&tap), Some(TAP3), 201),
        (M::POST, "/api/beers", Some(&tap), Some(TAP4), 403),
        (M::GET, "/api/beers", Some(&tap), None, 403),
        (M::GET, "/api/glasses", Some(&tap), None, 200),
        (M::DELETE, "/api/beers/1", Some(&tap), None, 403),
        (M::GET, "/api/beers", Some(&reader), None, 200),
        (M::GET, "/api/beers/1", Some(&reader), None, 200),
        (M::GET, "/api/report", Some(&reader), None, 200),
        (M::POST, "/api/beers", Some(&reader), Some(TAP3), 403),
        (M::DELETE, "/api/beers/1", Some(&reader), None, 403),
        (M::POST, "/api/beers", Some(&admin), Some(TAP4), 201),
        (M::DELETE, "/api/beers/1", Some(&admin), None, 204),
        // Kegs: admins change them, readers read them, taps do neither.
        (M::POST, "/api/kegs", None, Some(KEG), 401),
        (M::POST, "/api/kegs", Some(&tap), Some(KEG), 403),
        (M::POST, "/api/kegs", Some(&reader), Some(KEG), 403),
        (M::POST, "/api/kegs", Some(&admin), Some(KEG), 201),
        (M::GET, "/api/kegs", Some(&tap), None, 403),
        (M::GET, "/api/kegs/1", Some(&reader), None, 200),
        (M::GET, "/api/taps", Some(&reader), None, 200),
        (M::GET, "/api/taps", None, None, 401),
        (
            M::PATCH,
            "/api/kegs/1",
            Some(&reader),
            Some(r#"{"spillMl": 5}"#),
            403,
        ),
        (M::POST, "/api/kegs/1/finish", Some(&tap), None, 403),
        (M::POST, "/api/kegs/1/finish", Some(&admin), None, 200),
        (
            M::PATCH,
            "/api/taps/3",
            Some(&reader),
            Some(r#"{"name": "x"}"#),
            403,
        ),
        (
            M::PATCH,
            "/api/taps/3",
            Some(&admin),
            Some(r#"{"name": "x"}"#),
            200,
        ),
        (M::GET, "/api/taps/3", Some(&reader), None, 200),
        // Venues: admins make and change them, readers read them, taps do neither.
        (M::POST, "/api/venues", Some(&tap), Some(VENUE), 403),
        (M::POST, "/api/venues", Some(&reader), Some(VENUE), 403),
        (M::POST, "/api/venues", Some(&admin), Some(VENUE), 201),
        (M::GET, "/api/venues", Some(&tap), None, 403),
        (M::GET, "/api/venues", None, None, 401),
        (M::GET, "/api/venues/dock", Some(&reader), None, 200),
        (
            M::PATCH,
            "/api/venues/dock",
            Some(&reader),
            Some(r#"{"name": "x"}"#),
            403,
        ),
        (
            M::PATCH,
            "/api/venues/dock",
            Some(&admin),
            Some(r#"{"name": "x"}"#),
            200,
        ),
    ];
    for (method, path, token, body, expected) in cases {
        let (status, answer, headers) = call(&app, method.clone(), path, token, body).await;
        assert_eq!(
            status.as_u16(),
            expected,
            "{method} {path} {token:?}: {answer}"
        );
        if expected == 401 {
            assert_eq!(headers["www-authenticate"], "Bearer");
            assert_error(status, &answer, 401);
        }
        if expected == 403 {
            assert_error(status, &answer, 403);
        }
    }
    let (_, list, _) = call(&app, M::GET, "/api/beers", Some(&admin), None).await;
    assert_eq!(list["total"], 1, "refused requests stored nothing");
    let (_, kegs, _) = call(&app, M::GET, "/api/kegs", Some(&admin), None).await;
    assert_eq!(kegs["kegs"].as_array().unwrap().len(), 1, "{kegs}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn malformed_and_unknown_tokens_are_401() {
    let (app, dir, _) = spawn_with_tokens("malformed", &[]).await;
    for header in [
        "Bearer",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "altair_abc",
        "Bearer a b",
    ] {
        let response = app
            .http
            .get(app.url("/api/beers"))
            .header("authorization", header)
            .send()
            .await
            .unwrap();
        let (status, body) = read_json(response).await;
        assert!(
            assert_error(status, &body, 401).contains("malformed"),
            "{header:?}"
        );
    }
    let (status, body, headers) = call(
        &app,
        reqwest::Method::GET,
        "/api/beers",
        Some("altair_0000"),
        None,
    )
    .await;
    assert!(assert_error(status, &body, 401).contains("unknown"));
    assert_eq!(
        headers["www-authenticate"],
        "Bearer error=\"invalid_token\""
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn a_revoked_token_stops_working_after_a_reload() {
    let (app, dir, [_, reader, admin]) = spawn_with_tokens("revoke", &[]).await;
    let get = |token: String| {
        let app = &app;
        async move {
            call(app, reqwest::Method::GET, "/api/beers", Some(&token), None)
                .await
                .0
        }
    };
    assert_eq!(get(reader.clone()).await, StatusCode::OK);
    // Keep only the admin's entry.
    let file = dir.join("tokens.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    let kept: String = text
        .split("[[token]]")
        .filter(|e| e.contains("\"ops\""))
        .map(|e| format!("[[token]]{e}"))
        .collect();
    std::fs::write(&file, kept).unwrap();
    app.reload_tokens();
    assert_eq!(get(reader).await, StatusCode::UNAUTHORIZED);
    assert_eq!(get(admin).await, StatusCode::OK);
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn a_reload_closes_the_sockets_of_revoked_tokens_only() {
    let (app, dir, [tap, reader, admin]) = spawn_with_tokens("revoke-socket", &[]).await;
    let revoked_count = |samples: HashMap<String, f64>| {
        samples
            .get("altair_ws_subscribers_revoked_total")
            .copied()
            .unwrap_or_default()
    };
    let before = revoked_count(scrape_as(&app, Some(&admin)).await);
    let (mut kept, _) = app.subscribe(&format!("?token={tap}")).await;
    let (mut revoked, _) = app.subscribe(&format!("?token={reader}")).await;
    let file = dir.join("tokens.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    let without_reader: String = text
        .split("[[token]]")
        .filter(|e| !e.trim().is_empty() && !e.contains("\"board\""))
        .map(|e| format!("[[token]]{e}"))
        .collect();
    std::fs::write(&file, without_reader).unwrap();
    app.reload_tokens();

    let frame = revoked.closed().await;
    assert_eq!(u16::from(frame.code), 1008);
    assert_eq!(frame.reason, "token revoked");
    let (status, _, _) = call(
        &app,
        reqwest::Method::POST,
        "/api/beers",
        Some(&tap),
        Some(TAP3),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        kept.next_pour().await["tapId"],
        3,
        "the other token's socket lives on"
    );
    let after = revoked_count(scrape_as(&app, Some(&admin)).await);
    assert!(after > before, "counted: {before} -> {after}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn public_paths_are_configurable_and_read_only() {
    let (app, dir, _) = spawn_with_tokens("public", &["--public", "/api/glasses,/api/beers"]).await;
    let (status, _, _) = call(&app, reqwest::Method::GET, "/api/glasses", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = call(&app, reqwest::Method::GET, "/api/beers", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = call(&app, reqwest::Method::POST, "/api/beers", None, Some(TAP3)).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "writes always need a token"
    );
    let (status, _, _) = call(&app, reqwest::Method::GET, "/health", None, None).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "/health is no longer in the list"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn websockets_take_the_token_in_a_header_or_the_query() {
    let (app, dir, [tap, reader, _]) = spawn_with_tokens("wstoken", &[]).await;
    let url = format!("ws://{}/sockets/beers", app.addr);
    match tokio_tungstenite::connect_async(url.as_str()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 401)
        }
        other => panic!("expected 401, got {other:?}"),
    }
    let (mut by_query, _) = tokio_tungstenite::connect_async(format!("{url}?token={reader}"))
        .await
        .unwrap();
    let mut request = url.as_str().into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {tap}").parse().unwrap());
    let (mut by_header, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    for socket in [&mut by_query, &mut by_header] {
        use futures::StreamExt;
        let hello = within(socket.next()).await.unwrap().unwrap();
        assert!(hello.to_text().unwrap().contains("\"hello\""));
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn the_binary_reloads_tokens_on_sighup_and_never_logs_a_query_token() {
    let dir = tempdir("sighup");
    let (file, [_, reader, _]) = tokens_file(&dir);
    let (mut child, addr, log) =
        crate::helpers::spawn_binary_logged(&["--ephemeral", "--tokens", file.to_str().unwrap()]);
    let (_socket, _) =
        tokio_tungstenite::connect_async(format!("ws://{addr}/sockets/beers?token={reader}"))
            .await
            .unwrap();
    let get = || async {
        crate::helpers::http_client()
            .get(format!("http://{addr}/api/beers"))
            .bearer_auth(&reader)
            .send()
            .await
            .unwrap()
            .status()
    };
    assert_eq!(get().await, StatusCode::OK);
    // Only the admin's entry stays: the reader's token is revoked.
    let text = std::fs::read_to_string(&file).unwrap();
    let kept: String = text
        .split("[[token]]")
        .filter(|e| e.contains("\"ops\""))
        .map(|e| format!("[[token]]{e}"))
        .collect();
    std::fs::write(&file, kept).unwrap();
    crate::helpers::signal(&child, rustix::process::Signal::HUP);
    within(async {
        while get().await != StatusCode::UNAUTHORIZED {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let text = log.lock().unwrap().join("\n");
    assert!(text.contains("GET /sockets/beers 101"), "{text}");
    assert!(!text.contains(&reader), "a token reached the log:\n{text}");
    child.kill().unwrap();
    child.wait().unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn require_auth_without_tokens_refuses_to_start() {
    let config = <altair::Config as clap::Parser>::try_parse_from([
        "altair-server",
        "--bind",
        "127.0.0.1:0",
        "--ephemeral",
        "--require-auth",
    ])
    .unwrap();
    let error = altair::RunningServer::start(config)
        .await
        .err()
        .expect("refused");
    assert!(error.to_string().contains("--require-auth"), "{error}");
}

#[tokio::test]
async fn a_credential_over_its_rate_gets_429_with_retry_after() {
    let dir = tempdir("rate");
    let (file, [_, reader, admin]) = tokens_file(&dir);
    let app = spawn_with(&[
        "--tokens",
        file.to_str().unwrap(),
        "--rate-limit",
        "2",
        "--rate-limit-address",
        "0",
    ])
    .await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let (status, body, headers) = call(
            &app,
            reqwest::Method::GET,
            "/api/beers",
            Some(&reader),
            None,
        )
        .await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            assert_error(status, &body, 429);
            let wait: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
            assert!((1..=2).contains(&wait), "{wait}");
        }
        statuses.push(status.as_u16());
    }
    assert_eq!(
        statuses,
        [200, 200, 200, 200, 429],
        "a burst of twice the rate, then 429"
    );
    let (status, _, _) = call(&app, reqwest::Method::GET, "/api/beers", Some(&admin), None).await;
    assert_eq!(status, StatusCode::OK, "other credentials are not slowed");
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn without_tokens_each_tap_and_each_address_has_a_rate() {
    let app = spawn_with(&["--rate-limit", "1", "--rate-limit-address", "0"]).await;
    let statuses: Vec<u16> = {
        let mut s = Vec::new();
        for _ in 0..3 {
            s.push(app.post_raw(TAP3).await.0.as_u16());
        }
        s
    };
    assert_eq!(statuses, [201, 201, 429]);
    assert_eq!(
        app.post_raw(TAP4).await.0,
        StatusCode::CREATED,
        "tap 4 has its own rate"
    );

    let app = spawn_with(&["--rate-limit", "0", "--rate-limit-address", "2"]).await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(app.get("/health").await.0.as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 200, 429]);
}

#[tokio::test]
async fn subscribers_past_the_cap_get_503() {
    let app = spawn_with(&["--max-subscribers", "2"]).await;
    let (first, _) = app.subscribe("").await;
    let (_second, _) = app.subscribe("").await;
    let url = format!("ws://{}/sockets/beers", app.addr);
    match tokio_tungstenite::connect_async(url.as_str()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 503);
            let body: Value = serde_json::from_slice(response.body().as_deref().unwrap()).unwrap();
            assert_eq!(body["status"], 503);
        }
        other => panic!("expected 503, got {other:?}"),
    }
    drop(first);
    within(async {
        while tokio_tungstenite::connect_async(url.as_str())
            .await
            .is_err()
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn cors_is_off_by_default_and_follows_the_allow_list() {
    let health_from = |app: &TestApp, origin: &'static str| {
        app.http
            .get(app.url("/health"))
            .header("origin", origin)
            .send()
    };
    let app = spawn_with(&[]).await;
    let response = health_from(&app, "http://bar.example").await.unwrap();
    assert!(
        response
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );

    let (app, dir, _) = spawn_with_tokens("cors", &["--cors-origin", "http://bar.example"]).await;
    let preflight = |origin: &'static str| {
        app.http
            .request(reqwest::Method::OPTIONS, app.url("/api/beers"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
            .send()
    };
    let allowed = preflight("http://bar.example").await.unwrap();
    assert_eq!(
        allowed.status(),
        StatusCode::NO_CONTENT,
        "preflights carry no token"
    );
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "http://bar.example"
    );
    assert!(
        allowed.headers()["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .contains("authorization")
    );
    assert_eq!(
        preflight("http://evil.example").await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    let response = health_from(&app, "http://bar.example").await.unwrap();
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "http://bar.example"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// Reads until the server closes the connection; true if it did within the patience.
async fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 1024];
    within(async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return true,
                Ok(_) => continue,
            }
        }
    })
    .await
}

#[tokio::test]
async fn slow_headers_and_idle_connections_are_cut_off() {
    let app = spawn_with(&["--header-timeout", "0.3"]).await;
    let mut slowloris = TcpStream::connect(app.addr).await.unwrap();
    slowloris
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    let mut idle = TcpStream::connect(app.addr).await.unwrap();
    assert!(closed_by_server(&mut slowloris).await);
    assert!(closed_by_server(&mut idle).await);
    // And the server is still there for everyone else.
    assert_eq!(app.get("/health").await.0, StatusCode::OK);
}

#[tokio::test]
async fn connections_past_the_cap_wait_for_a_free_one() {
    let app = spawn_with(&["--max-connections", "1", "--header-timeout", "30"]).await;
    let mut holder = TcpStream::connect(app.addr).await.unwrap();
    holder
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 512];
    let n = holder.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // The connection is kept alive, so the one slot is taken.
    let mut waiting = TcpStream::connect(app.addr).await.unwrap();
    waiting
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let early = tokio::time::timeout(Duration::from_millis(300), waiting.read(&mut buf)).await;
    assert!(early.is_err(), "answered while the only slot was taken");
    drop(holder);
    let n = within(waiting.read(&mut buf)).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
}

#[test]
fn token_new_prints_a_token_and_its_entry() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_altair-server"))
        .args(["token", "new", "--role", "tap", "--tap-id", "3"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    let token = text.lines().find(|l| l.starts_with("altair_")).unwrap();
    let hash = altair::auth::hex(&altair::auth::sha256(token.as_bytes()));
    assert!(text.contains(&format!("sha256 = \"{hash}\"")), "{text}");
    assert!(text.contains("role = \"tap\"\ntap_id = 3"), "{text}");
    assert!(
        !text[text.find("[[token]]").unwrap()..].contains(token),
        "the file gets the hash only"
    );
    let missing = std::process::Command::new(env!("CARGO_BIN_EXE_altair-server"))
        .args(["token", "new", "--role", "tap"])
        .output()
        .unwrap();
    assert!(!missing.status.success());
    let stray = std::process::Command::new(env!("CARGO_BIN_EXE_altair-server"))
        .args(["token", "new", "--role", "reader", "--tap-id", "3"])
        .output()
        .unwrap();
    assert_eq!(
        stray.status.code(),
        Some(2),
        "a tap id on a reader is refused"
    );
    assert!(String::from_utf8_lossy(&stray.stderr).contains("--tap-id is for tap tokens only"));
    assert!(stray.stdout.is_empty(), "no token printed");
}

/// A foreign page's "simple" POST: no Content-Type, so the browser sends no preflight.
async fn post_from_page(app: &TestApp, origin: &str) -> (StatusCode, Value) {
    let response = app
        .http
        .post(app.url("/api/beers"))
        .header("origin", origin)
        .body(r#"{"tapId": 3, "volume": 500}"#)
        .send()
        .await
        .unwrap();
    read_json(response).await
}

/// A WebSocket handshake carrying `Origin`: the status the server answered with.
async fn handshake_from(app: &TestApp, origin: &str) -> u16 {
    let mut request = format!("ws://{}/sockets/beers", app.addr)
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("origin", origin.parse().unwrap());
    match tokio_tungstenite::connect_async(request).await {
        Ok((_, response)) => response.status().as_u16(),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(e) => panic!("handshake failed: {e}"),
    }
}

#[tokio::test]
async fn a_page_of_another_origin_can_neither_pour_nor_subscribe_in_open_mode() {
    let app = spawn_with(&["--cors-origin", "http://bar.example"]).await;
    let (status, body) = post_from_page(&app, "http://evil.example").await;
    let message = assert_error(status, &body, 403);
    assert!(message.contains("origin"), "{message}");
    let (status, body) = post_from_page(&app, "null").await;
    assert_error(status, &body, 403);
    let (_, listed) = app.get("/api/beers").await;
    assert_eq!(listed["total"], 0, "nothing was stored: {listed}");
    let delete = app
        .http
        .delete(app.url("/api/beers/1"))
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(delete.status(), StatusCode::FORBIDDEN);
    assert_eq!(handshake_from(&app, "http://evil.example").await, 403);

    // Devices send no Origin; allowed origins and the server's own pages pass.
    app.pour(3, 500.0).await;
    let (status, _) = post_from_page(&app, "http://bar.example").await;
    assert_eq!(status, StatusCode::CREATED);
    let own = format!("http://{}", app.addr);
    let (status, _) = post_from_page(&app, &own).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(handshake_from(&app, "http://bar.example").await, 101);
    assert_eq!(handshake_from(&app, &own).await, 101);
    // Reading from another origin is harmless: the browser keeps the answer from the page.
    let read = app
        .http
        .get(app.url("/api/beers"))
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), StatusCode::OK);
    assert!(read.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn a_page_of_another_origin_is_refused_even_with_a_valid_token() {
    let (app, dir, [_, reader, admin]) = spawn_with_tokens("origin-token", &[]).await;
    let response = app
        .http
        .delete(app.url("/api/beers/1"))
        .bearer_auth(&admin)
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    let (status, body) = read_json(response).await;
    assert_error(status, &body, 403);
    let mut request = format!("ws://{}/sockets/beers?token={reader}", app.addr)
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("origin", "http://evil.example".parse().unwrap());
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), StatusCode::FORBIDDEN)
        }
        other => panic!("expected 403, got {other:?}"),
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn a_preflight_from_an_origin_not_allowed_is_403_by_default() {
    let app = spawn_with(&[]).await;
    let response = app
        .http
        .request(reqwest::Method::OPTIONS, app.url("/api/beers"))
        .header("origin", "http://evil.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    let (status, body) = read_json(response).await;
    assert_error(status, &body, 403);
}

#[tokio::test]
async fn a_flood_of_refused_requests_is_summed_up_in_the_log_not_a_line_each() {
    let (_server, addr, log) = crate::helpers::spawn_binary_logged(&[
        "--ephemeral",
        "--rate-limit-address",
        "5",
        "--request-log",
        "errors",
        "--refusal-log-interval",
        "0.5",
    ]);
    // One client, one connection, for a second.
    let http = crate::helpers::http_client();
    let (mut refused, started) = (0u64, std::time::Instant::now());
    while started.elapsed() < Duration::from_secs(1) {
        let status = http
            .get(format!("http://{addr}/api/glasses"))
            .send()
            .await
            .unwrap()
            .status();
        refused += u64::from(status == StatusCode::TOO_MANY_REQUESTS);
    }
    assert!(refused > 100, "the flood was refused: {refused}");
    let summed = |lines: &[String]| -> u64 {
        lines
            .iter()
            .filter_map(|l| l.split("address 127.0.0.1: ").nth(1))
            .filter_map(|rest| rest.split(" requests refused").next())
            .map(|n| n.replace(',', "").parse::<u64>().unwrap())
            .sum()
    };
    within(async {
        while summed(&log.lock().unwrap()) < refused {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let lines = log.lock().unwrap().clone();
    assert_eq!(
        summed(&lines),
        refused,
        "the exact count:\n{}",
        lines.join("\n")
    );
    let request_lines = lines
        .iter()
        .filter(|l| l.contains("altair::request"))
        .count();
    assert!(
        request_lines <= 5,
        "{refused} refusals took {request_lines} lines:\n{}",
        lines.join("\n")
    );
    assert!(
        lines.iter().any(|l| l.contains("(429 ×")),
        "{}",
        lines.join("\n")
    );
}

/// The operations page holds no data: a server with tokens serves it to anyone, gzipped
/// where the browser takes it, with a validator that makes a reload a 304, and a policy
/// that lets it load nothing from elsewhere; the data behind it still needs a token.
#[tokio::test]
async fn the_operations_page_is_served_to_anyone_and_its_data_is_not() {
    let (app, dir, _) = spawn_with_tokens("ops-page", &[]).await;
    let page = app
        .http
        .get(app.url("/"))
        .header("accept-encoding", "gzip, br")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let headers = page.headers().clone();
    assert_eq!(headers["content-encoding"], "gzip");
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert_eq!(headers["cache-control"], "no-cache");
    let policy = headers["content-security-policy"].to_str().unwrap();
    assert!(policy.contains("default-src 'none'") && policy.contains("connect-src 'self'"));
    let zipped = page.bytes().await.unwrap();
    let mut html = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&zipped[..]), &mut html)
        .unwrap();
    assert!(html.contains(r#"<script type="module" src="/ops/ops.js">"#));
    // Nothing the page loads comes from another host.
    assert!(!html.contains("http://") && !html.contains("https://"));

    let again = app
        .http
        .get(app.url("/"))
        .header("if-none-match", headers["etag"].clone())
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    let script = app.http.get(app.url("/ops/ops.js")).send().await.unwrap();
    assert_eq!(script.status(), StatusCode::OK);
    assert!(
        script.headers().get("content-encoding").is_none(),
        "not asked for gzip"
    );
    assert_eq!(
        app.http
            .get(app.url("/ops/nothing"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(app.get("/api/report").await.0, StatusCode::UNAUTHORIZED);
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn a_reload_that_would_lock_everyone_out_or_drop_the_last_admin_is_refused() {
    let (app, dir, [_, reader, admin]) = spawn_with_tokens("lockout", &[]).await;
    let file = dir.join("tokens.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    let without_admin: String = text
        .split("[[token]]")
        .filter(|e| !e.trim().is_empty() && !e.contains("\"ops\""))
        .map(|e| format!("[[token]]{e}"))
        .collect();
    for (written, says) in [
        (String::new(), "has no tokens"),
        ("# everyone removed\n".to_owned(), "has no tokens"),
        (without_admin, "no admin token left"),
    ] {
        std::fs::write(&file, &written).unwrap();
        let refused = app.try_reload_tokens().unwrap_err();
        assert!(refused.contains(says), "{refused}");
        for token in [&reader, &admin] {
            let (status, _, _) =
                call(&app, reqwest::Method::GET, "/api/beers", Some(token), None).await;
            assert_eq!(status, StatusCode::OK, "the tokens in force stay");
        }
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn an_empty_tokens_file_stops_the_start() {
    let dir = tempdir("empty-tokens");
    let file = dir.join("tokens.toml");
    std::fs::write(&file, "").unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_altair-server"))
        .args(["--bind", "127.0.0.1:0", "--ephemeral", "--tokens"])
        .arg(&file)
        .env("RUST_LOG", "error")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("has no tokens"), "{stderr}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn a_token_of_a_venue_that_does_not_exist_yet_is_told_in_the_log() {
    let dir = tempdir("token-venue-log");
    let (_, admin_entry) = new_token(Role::Admin, None, "ops").unwrap();
    let (_, tap_entry) = new_token(Role::Tap(3), Some("harbour"), "harbour-tap-3").unwrap();
    let file = dir.join("tokens.toml");
    std::fs::write(&file, format!("{admin_entry}{tap_entry}")).unwrap();
    let (_server, _, log) =
        crate::helpers::spawn_binary_logged(&["--ephemeral", "--tokens", file.to_str().unwrap()]);
    let says = |log: &crate::helpers::Log| {
        log.lock()
            .unwrap()
            .iter()
            .any(|line| line.contains("venues that do not exist yet: harbour"))
    };
    within(async {
        while !says(&log) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let _ = std::fs::remove_dir_all(dir);
}
