//! Hostile input: each case gets its exact status or close code, the server keeps serving,
//! and nothing stored changes.

use futures::SinkExt;
use proptest::prelude::*;
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::helpers::{TestApp, assert_error, spawn_app, within};

/// The server still answers and still holds exactly `pours` pours.
async fn unharmed(app: &TestApp, pours: u64) {
    let (status, health) = app.get("/health").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(health["pours"], pours, "nothing stored changed");
}

/// Sends raw bytes as one HTTP request and returns the status code and the body.
async fn raw(app: &TestApp, request: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    within(stream.read_to_end(&mut answer)).await.unwrap();
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn post(body: &[u8]) -> Vec<u8> {
    let mut request = format!(
        "POST /api/beers HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    request
}

#[tokio::test]
async fn malformed_bodies_get_their_exact_status() {
    let app = spawn_app().await;
    // Deep, yet under the body limit: valid JSON that is no object (422), and a pour with
    // a deeply nested extra field, which is skipped without recursion like any unknown
    // field (201: no stack is at risk).
    let deep = format!("{}{}", "[".repeat(7000), "]".repeat(7000));
    let deep_field = format!(
        r#"{{"tapId":1,"volume":500,"x":{}{}}}"#,
        "[".repeat(5000),
        "]".repeat(5000)
    );
    let cases: Vec<(Vec<u8>, u16)> = vec![
        (br#"{"tapId": 1, "volume": 500"#.to_vec(), 400),
        (br#"{"tapId": 1, "vol"#.to_vec(), 400),
        (b"{}}".to_vec(), 400),
        (deep.into_bytes(), 422),
        (deep_field.into_bytes(), 201),
        (br#"{"tapId": 1, "volume": 1e400}"#.to_vec(), 422),
        (br#"{"tapId": 1, "volume": -1e400}"#.to_vec(), 422),
        (
            br#"{"tapId": 123456789012345678901234567890, "volume": 500}"#.to_vec(),
            422,
        ),
        (
            br#"{"tapId": 1, "volume": 123456789012345678901234567890}"#.to_vec(),
            422,
        ),
        (br#"{"tapId": 1, "volume": NaN}"#.to_vec(), 400),
        (br#"{"tapId": 1, "volume": nan}"#.to_vec(), 400),
        (br#"{"tapId": 1, "volume": Infinity}"#.to_vec(), 400),
        (br#"{"tapId": 1, "volume": -Infinity}"#.to_vec(), 400),
        (br#"{"tapId": 1, "volume": "NaN"}"#.to_vec(), 422),
        (br#"{"tapId": 1, "volume": "Infinity"}"#.to_vec(), 422),
        (br#"{"tapId": 1, "volume": "1e3"}"#.to_vec(), 422),
        (br#"{"tapId": "1", "volume": 500}"#.to_vec(), 422),
        (br#"{"tapId": [1], "volume": 500}"#.to_vec(), 422),
        (br#"{"tapId": {"n": 1}, "volume": 500}"#.to_vec(), 422),
        (br#"{"tapId": true, "volume": 500}"#.to_vec(), 422),
        (br#"{"tapId": 1, "tapId": 2, "volume": 500}"#.to_vec(), 422),
        (
            br#"{"tapId": 1, "volume": 500, "volume": 600}"#.to_vec(),
            422,
        ),
        (br#"[3, 500, null]"#.to_vec(), 422),
        (b"\"a string\"".to_vec(), 422),
        (b"42".to_vec(), 422),
        (
            b"{\"tapId\": 1, \"volume\": 500, \"timestamp\": \"2026\x01-01\"}".to_vec(),
            400,
        ),
        (
            b"{\"tapId\": 1, \"volume\": 500, \"note\": \"\xff\xfe\"}".to_vec(),
            400,
        ),
        (b"\xef\xbb\xbf{\"tapId\": 1, \"volume\": 500}".to_vec(), 400),
        (b"{\"tapId\": 1,\x00 \"volume\": 500}".to_vec(), 400),
        (vec![b' '; 16 * 1024 + 1], 413),
    ];
    let mut stored = 0;
    for (body, expected) in cases {
        let (status, answer) = raw(&app, &post(&body)).await;
        let shown = String::from_utf8_lossy(&body[..body.len().min(60)]).into_owned();
        assert_eq!(status, expected, "{shown}: {answer}");
        let json: serde_json::Value = serde_json::from_str(&answer).unwrap();
        if expected == 201 {
            stored += 1;
        } else {
            assert_eq!(json["status"], expected, "{shown}");
        }
        unharmed(&app, stored).await;
    }
}

#[tokio::test]
async fn wrong_content_types_are_400_and_parameters_on_json_are_fine() {
    let app = spawn_app().await;
    for content_type in [
        "text/plain",
        "application/xml",
        "multipart/form-data",
        "application/x-www-form-urlencoded",
        "json",
    ] {
        let response = app
            .post_as(Some(content_type), r#"{"tapId": 1, "volume": 500}"#)
            .await;
        let (status, body) = crate::helpers::read_json(response).await;
        assert_error(status, &body, 400);
    }
    unharmed(&app, 0).await;
    for content_type in ["application/json; charset=utf-8", "Application/JSON"] {
        let response = app
            .post_as(Some(content_type), r#"{"tapId": 1, "volume": 500}"#)
            .await;
        assert_eq!(response.status(), StatusCode::CREATED, "{content_type}");
    }
}

#[tokio::test]
async fn path_tricks_and_odd_queries_are_answered_plainly() {
    let app = spawn_app().await;
    app.pour(1, 500.0).await;
    let get = |target: &str| {
        format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").into_bytes()
    };
    for (target, expected) in [
        ("/api/beers/../health", 404),
        ("/api/beers/..%2F..%2Fhealth", 400),
        ("/api/beers/1%2F2", 400),
        ("/api/beers/%00", 400),
        ("/api/beers/%FF", 400),
        ("/api/beers/-1", 400),
        ("/api/beers/1.0", 400),
        ("/api/beers/0x1", 400),
        ("/api/beers/99999999999999999999999", 400),
        ("/api/beers/0", 404),
        ("/%2e%2e/etc/passwd", 404),
        ("/api//beers", 404),
        ("/api/beers/1?evil=%ZZ", 200),
        ("/api/beers?bogus=1&page=1", 200),
        ("/api/beers?page=%FF", 400),
        ("/api/beers?page=1e3", 400),
        ("/api/beers?page_size=-5", 400),
        ("/api/beers?page=18446744073709551616", 400),
        ("/api/beers?page=4294967296&page_size=1000", 200),
    ] {
        let (status, body) = raw(&app, &get(target)).await;
        assert_eq!(status, expected, "{target}: {body}");
        assert!(body.starts_with('{'), "{target}: JSON body");
    }
    unharmed(&app, 1).await;
}

const HANDSHAKE: &[u8] =
    b"GET /sockets/beers HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
      Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";

/// A raw WebSocket handshake, followed in the same write by `then`; returns the stream
/// after the 101 response.
async fn raw_socket_with(app: &TestApp, then: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    stream.write_all(&[HANDSHAKE, then].concat()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8];
        within(stream.read_exact(&mut byte)).await.unwrap();
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    stream
}

async fn raw_socket(app: &TestApp) -> TcpStream {
    raw_socket_with(app, b"").await
}

/// Reads one server frame (unmasked): its opcode and payload.
async fn raw_frame(stream: &mut TcpStream) -> (u8, Vec<u8>) {
    within(async {
        let mut head = [0u8; 2];
        stream.read_exact(&mut head).await.unwrap();
        let mut len = u64::from(head[1] & 0x7f);
        if len == 126 {
            let mut ext = [0u8; 2];
            stream.read_exact(&mut ext).await.unwrap();
            len = u64::from(u16::from_be_bytes(ext));
        } else if len == 127 {
            let mut ext = [0u8; 8];
            stream.read_exact(&mut ext).await.unwrap();
            len = u64::from_be_bytes(ext);
        }
        let mut payload = vec![0u8; len as usize];
        stream.read_exact(&mut payload).await.unwrap();
        (head[0] & 0x0f, payload)
    })
    .await
}

/// Reads server frames until a close frame; returns its code.
async fn close_code(stream: &mut TcpStream) -> u16 {
    loop {
        if let (0x8, payload) = raw_frame(stream).await {
            return u16::from_be_bytes([payload[0], payload[1]]);
        }
    }
}

#[tokio::test]
async fn a_frame_sent_with_the_handshake_is_answered() {
    let app = spawn_app().await;
    // A masked ping (zero mask) in the same packet as the upgrade request: the server has
    // it buffered before the socket is a WebSocket, and must still read it.
    let mut stream = raw_socket_with(&app, b"\x89\x84\x00\x00\x00\x00ping").await;
    let (opcode, hello) = raw_frame(&mut stream).await;
    assert_eq!(opcode, 0x1);
    assert!(hello.starts_with(br#"{"event":"hello""#));
    assert_eq!(raw_frame(&mut stream).await, (0xA, b"ping".to_vec()));
    // And frames go on after the pong, whole.
    let posted = app.pour(1, 500.0).await;
    let (opcode, pour) = raw_frame(&mut stream).await;
    assert_eq!(opcode, 0x1);
    let pour: serde_json::Value = serde_json::from_slice(&pour).unwrap();
    assert_eq!(pour["beer"], posted);
}

#[tokio::test]
async fn garbage_after_the_handshake_is_a_protocol_error() {
    let app = spawn_app().await;
    // A reserved opcode, HTTP where frames belong, an unmasked client frame.
    for garbage in [
        &b"\x8f\x80\x00\x00\x00\x00"[..],
        b"GET / HTTP/1.1\r\n\r\n",
        b"\x81\x05hello",
    ] {
        let mut stream = raw_socket(&app).await;
        stream.write_all(garbage).await.unwrap();
        assert_eq!(close_code(&mut stream).await, 1002, "{garbage:?}");
    }
    unharmed(&app, 0).await;
    let (_ok, _) = app.subscribe("").await;
}

#[tokio::test]
async fn binary_frames_and_ping_floods_change_nothing() {
    let app = spawn_app().await;
    let (mut subscriber, _) = app.subscribe("").await;
    subscriber
        .ws
        .send(Message::binary(vec![1u8, 2, 3]))
        .await
        .unwrap();
    for _ in 0..2000 {
        subscriber
            .ws
            .feed(Message::Ping(vec![7u8; 16].into()))
            .await
            .unwrap();
    }
    subscriber.ws.flush().await.unwrap();
    let posted = app.pour(1, 500.0).await;
    // Pongs may come first; the pour event must still arrive.
    assert_eq!(subscriber.next_pour().await, posted);
    unharmed(&app, 1).await;
}

#[tokio::test]
async fn an_oversized_frame_is_1009_and_the_server_goes_on() {
    let app = spawn_app().await;
    let (mut subscriber, _) = app.subscribe("").await;
    subscriber
        .ws
        .send(Message::binary(vec![0u8; 64 * 1024]))
        .await
        .unwrap();
    assert_eq!(subscriber.closed().await.code, CloseCode::Size);
    unharmed(&app, 0).await;
}

#[tokio::test]
async fn half_made_handshakes_are_refused_with_json() {
    let app = spawn_app().await;
    let handshake = |extra: &str| {
        format!("GET /sockets/beers HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{extra}\r\n")
            .into_bytes()
    };
    for (headers, expected) in [
        ("", 426),
        ("Upgrade: websocket\r\n", 426),
        ("Connection: Upgrade\r\n", 426),
        (
            "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n",
            400,
        ),
        (
            "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 8\r\nSec-WebSocket-Key: x\r\n",
            400,
        ),
        ("Upgrade: h2c\r\nConnection: Upgrade\r\n", 426),
    ] {
        // `Connection: close` and `Connection: Upgrade` both appear where given: the
        // server must find the upgrade token among them.
        let (status, body) = raw(&app, &handshake(headers)).await;
        assert_eq!(status, expected, "{headers:?}: {body}");
    }
    unharmed(&app, 0).await;
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(serde_json::Value::from),
        (0u32..2000).prop_map(serde_json::Value::from),
        "[ -~]{0,12}".prop_map(serde_json::Value::from),
        Just(serde_json::Value::from("2026-11-22T21:04:05Z")),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("tapId".to_owned()),
                    Just("volume".to_owned()),
                    Just("timestamp".to_owned()),
                    "[a-z]{1,6}"
                ],
                inner,
                0..4
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Any JSON body is a stored pour or a 4xx; never a 5xx, never a dead server.
    #[test]
    fn any_json_body_is_a_pour_or_a_4xx(body in json_value()) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let app = shared_app().await;
            let (status, answer) = app.post_raw(body.to_string()).await;
            prop_assert!(
                status == StatusCode::CREATED || status.is_client_error(),
                "{body} -> {status} {answer}"
            );
            if status == StatusCode::CREATED {
                let volume = answer["beer"]["volume"].as_f64().unwrap();
                prop_assert!(volume > 0.0 && volume <= 5000.0);
                let glass = answer["beer"]["type"].as_str().unwrap();
                let classified = (100.0..=1000.0).contains(&volume);
                prop_assert_eq!(glass == "unclassified", !classified, "{}", answer);
            }
            prop_assert_eq!(app.get("/health").await.0, StatusCode::OK);
            Ok(())
        })?;
    }
}

/// One server for every proptest case (each case has its own runtime, so the server runs
/// on a thread of its own).
async fn shared_app() -> &'static TestApp {
    static APP: std::sync::OnceLock<&'static TestApp> = std::sync::OnceLock::new();
    if let Some(app) = APP.get() {
        return app;
    }
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let app: &'static TestApp = Box::leak(Box::new(spawn_app().await));
            sender.send(app).unwrap();
            std::future::pending::<()>().await;
        });
    });
    let app = receiver.recv().unwrap();
    APP.get_or_init(|| app)
}

#[tokio::test]
async fn keg_bodies_get_their_exact_status_and_change_nothing() {
    let app = spawn_app().await;
    let deep = format!(
        r#"{{"tapId":1,"beverage":"x","size":"corny","x":{}{}}}"#,
        "[".repeat(5000),
        "]".repeat(5000)
    );
    let cases: Vec<(&str, String, u16, &str)> = vec![
        ("POST", "{".into(), 400, "not valid JSON"),
        ("POST", deep, 400, "not valid JSON"),
        ("POST", "[1]".into(), 422, "JSON object"),
        (
            "POST",
            r#"{"beverage": "Pils", "size": "corny"}"#.into(),
            422,
            "tapId",
        ),
        (
            "POST",
            r#"{"tapId": 0, "beverage": "Pils", "size": "corny"}"#.into(),
            422,
            "tapId",
        ),
        (
            "POST",
            r#"{"tapId": 1, "size": "corny"}"#.into(),
            422,
            "beverage",
        ),
        (
            "POST",
            r#"{"tapId": 1, "beverage": "  ", "size": "corny"}"#.into(),
            422,
            "beverage",
        ),
        (
            "POST",
            r#"{"tapId": 1, "beverage": "a\u0007b", "size": "corny"}"#.into(),
            422,
            "control",
        ),
        (
            "POST",
            format!(
                r#"{{"tapId": 1, "beverage": "{}", "size": "corny"}}"#,
                "x".repeat(101)
            ),
            422,
            "100",
        ),
        (
            "POST",
            r#"{"tapId": 1, "beverage": "Pils"}"#.into(),
            422,
            "size",
        ),
        (
            "POST",
            r#"{"tapId": 1, "beverage": "Pils", "size": "pony"}"#.into(),
            422,
            "euro-50",
        ),
        (
            "POST",
            r#"{"tapId": 1, "beverage": "Pils", "size": "corny", "sizeMl": 5}"#.into(),
            422,
            "not both",
        ),
        (
            "POST",
            r#"{"tapId": 1, "beverage": "Pils", "sizeMl": 0}"#.into(),
            422,
            "sizeMl",
        ),
        (
            "POST",
            r#"{"tapId": 1, "beverage": "Pils", "sizeMl": 1e309}"#.into(),
            400,
            "not valid JSON",
        ),
        (
            "POST",
            r#"{"tapId": 1, "beverage": "Pils", "sizeMl": 2000000}"#.into(),
            422,
            "sizeMl",
        ),
        (
            "POST",
            r#"{"tapId": 1, "beverage": "Pils", "sizeMl": 1000, "remainingMl": 1001}"#.into(),
            422,
            "more than the keg's size",
        ),
        (
            "POST",
            r#"{"tapId": 1, "beverage": "Pils", "sizeMl": 1000, "remainingMl": -1}"#.into(),
            422,
            "remainingMl",
        ),
    ];
    for (method, body, status, says) in cases {
        let (got, answer) = app.send_json(method, "/api/kegs", &body).await;
        let message = assert_error(got, &answer, status);
        assert!(message.contains(says), "{body}: {message}");
    }
    let (_, kegs) = app.get("/api/kegs").await;
    assert_eq!(kegs["kegs"], serde_json::json!([]), "nothing was tapped");
    // Corrections: something to change, each field as for a new keg.
    let (status, _) = app
        .post_json(
            "/api/kegs",
            r#"{"tapId": 1, "beverage": "Pils", "size": "corny"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    for (path, body, status) in [
        ("/api/kegs/1", r#"{"x": 1}"#, 422),
        ("/api/kegs/1", r#"{"spillMl": -5}"#, 422),
        ("/api/kegs/1", r#"{"size": "corny", "sizeMl": 100}"#, 422),
        ("/api/kegs/1", r#"{"beverage": ""}"#, 422),
        ("/api/kegs/2", r#"{"spillMl": 5}"#, 404),
        ("/api/kegs/x", r#"{"spillMl": 5}"#, 400),
        ("/api/kegs/99999999999999999999", r#"{"spillMl": 5}"#, 400),
    ] {
        let (got, answer) = app.send_json("PATCH", path, body).await;
        assert_error(got, &answer, status);
    }
    let (_, keg) = app.get("/api/kegs/1").await;
    assert_eq!(keg["keg"]["remainingMl"], 18_927.059, "unchanged: {keg}");
    let (status, answer) = app.send_json("DELETE", "/api/kegs/1", "").await;
    assert_error(status, &answer, 405);
    unharmed(&app, 0).await;
}
