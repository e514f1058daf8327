//! Pours over MQTT, against a real Mosquitto started per test on a free port: stored,
//! pushed and answered; refused with the reason; keyed redeliveries stored once, across a
//! SIGKILL between receiving and acknowledging; the broker going away and coming back;
//! two servers sharing the subscription. Skipped, in one line, without `mosquitto`; with
//! `ALTAIR_TEST_MQTT=required` (as `.ci/run` sets) that fails instead.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Packet, PublishProperties};
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::helpers::{Process, TestApp, spawn_binary_logged, spawn_with, tempdir, within};

/// A Mosquitto of this test's own, on a port of its own.
pub struct Broker {
    pub port: u16,
    dir: PathBuf,
    process: Option<Process>,
}

fn mosquitto() -> Option<PathBuf> {
    [
        "/usr/sbin/mosquitto",
        "/usr/bin/mosquitto",
        "/usr/local/sbin/mosquitto",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

impl Broker {
    /// Starts one, or returns None (and says why, once) if Mosquitto is not installed.
    pub fn start() -> Option<Broker> {
        if mosquitto().is_none() {
            static SAID: std::sync::Once = std::sync::Once::new();
            crate::helpers::skip_unless_required(
                "ALTAIR_TEST_MQTT",
                "the MQTT tests",
                "no mosquitto: apt-get install mosquitto",
                &SAID,
            );
            return None;
        }
        let mut broker = Broker {
            port: free_port(),
            dir: tempdir("mosquitto"),
            process: None,
        };
        broker.run();
        Some(broker)
    }

    /// Starts it (again) on its port.
    pub fn run(&mut self) {
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
        let config = self.dir.join("mosquitto.conf");
        std::fs::write(
            &config,
            format!(
                "listener {} 127.0.0.1\nallow_anonymous true\npersistence false\n{}",
                self.port,
                if root { "user root\n" } else { "" }
            ),
        )
        .unwrap();
        let process = Process(
            Command::new(mosquitto().unwrap())
                .arg("-c")
                .arg(&config)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "mosquitto listens");
            std::thread::sleep(Duration::from_millis(20));
        }
        self.process = Some(process);
    }

    /// Stops it (what it held is gone: no persistence).
    pub fn stop(&mut self) {
        self.process = None;
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }
}

/// A device or a listener on the broker: publishes at QoS 1 and waits for the broker's
/// acknowledgement; hears what its subscriptions bring.
pub struct Device {
    client: AsyncClient,
    // Unbounded: the event loop's task never waits for the test to read.
    acked: mpsc::UnboundedReceiver<()>,
    heard: mpsc::UnboundedReceiver<(String, Value)>,
}

impl Device {
    pub async fn connect(port: u16, subscriptions: &[&str]) -> Device {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let id = format!(
            "test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut options = MqttOptions::new(id, "127.0.0.1", port);
        options.set_outgoing_inflight_upper_limit(1000);
        let (client, mut events) = AsyncClient::new(options, 64);
        let (ack, acked) = mpsc::unbounded_channel();
        let (hear, heard) = mpsc::unbounded_channel();
        let (ready, subscribed) = tokio::sync::oneshot::channel();
        let mut ready = Some(ready);
        let wanted = subscriptions.len();
        for topic in subscriptions {
            client.subscribe(*topic, QoS::AtLeastOnce).await.unwrap();
        }
        if wanted == 0 {
            let _ = ready.take().map(|r| r.send(()));
        }
        tokio::spawn(async move {
            let mut subacks = 0;
            while let Ok(event) = events.poll().await {
                match event {
                    Event::Incoming(Packet::PubAck(_)) => {
                        let _ = ack.send(());
                    }
                    Event::Incoming(Packet::SubAck(_)) => {
                        subacks += 1;
                        if subacks == wanted {
                            let _ = ready.take().map(|r| r.send(()));
                        }
                    }
                    Event::Incoming(Packet::Publish(p)) => {
                        let topic = String::from_utf8_lossy(&p.topic).into_owned();
                        let body = serde_json::from_slice(&p.payload).unwrap_or(Value::Null);
                        let _ = hear.send((topic, body));
                    }
                    _ => {}
                }
            }
        });
        within(subscribed).await.unwrap();
        Device {
            client,
            acked,
            heard,
        }
    }

    /// Publishes `payload` on `topic` at QoS 1 and waits for the broker to take it.
    pub async fn publish(&mut self, topic: &str, payload: impl Into<Vec<u8>>) {
        self.publish_with(topic, payload, None).await;
    }

    pub async fn publish_with(
        &mut self,
        topic: &str,
        payload: impl Into<Vec<u8>>,
        properties: Option<PublishProperties>,
    ) {
        let payload: Vec<u8> = payload.into();
        match properties {
            Some(p) => self
                .client
                .publish_with_properties(topic, QoS::AtLeastOnce, false, payload, p)
                .await
                .unwrap(),
            None => self
                .client
                .publish(topic, QoS::AtLeastOnce, false, payload)
                .await
                .unwrap(),
        }
        within(self.acked.recv()).await.unwrap();
    }

    /// Publishes each of `messages` at QoS 1 without waiting, then waits for the broker to
    /// have taken them all.
    pub async fn burst(&mut self, messages: &[(String, String)]) {
        let publishing = async {
            for (topic, payload) in messages {
                self.client
                    .publish(topic, QoS::AtLeastOnce, false, payload.clone())
                    .await
                    .unwrap();
            }
        };
        tokio::time::timeout(Duration::from_secs(60), publishing)
            .await
            .expect("the broker takes the messages");
        for _ in messages {
            within(self.acked.recv()).await.unwrap();
        }
    }

    /// The next message its subscriptions bring.
    pub async fn next(&mut self) -> (String, Value) {
        within(self.heard.recv()).await.unwrap()
    }
}

/// A server reading `broker`, with extra flags.
async fn server(broker: &Broker, flags: &[&str]) -> TestApp {
    let url = broker.url();
    let mut all = vec!["--mqtt-url", url.as_str()];
    all.extend_from_slice(flags);
    let app = spawn_with(&all).await;
    connected(&app, true).await;
    app
}

/// Waits until `/health` says the link is (or is not) up, and returns its `mqtt`.
pub async fn connected(app: &TestApp, up: bool) -> Value {
    binary_link(&app.addr.to_string(), up).await["mqtt"].clone()
}

/// Waits until the server has stored `n` pours, and returns them.
async fn pours(app: &TestApp, n: u64) -> Vec<Value> {
    binary_pours(&app.addr.to_string(), n).await
}

#[tokio::test]
async fn a_pour_message_is_stored_pushed_to_subscribers_and_answered() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let app = server(&broker, &[]).await;
    let (mut subscriber, _) = app.subscribe("").await;
    let mut device =
        Device::connect(broker.port, &["altair/+/+/pours/#", "altair/+/+/+/pours/#"]).await;
    let (status, venue) = app
        .send_json(
            "POST",
            "/api/venues",
            r#"{"id": "north", "name": "North", "timezone": "UTC"}"#,
        )
        .await;
    assert_eq!(status.as_u16(), 201, "{venue}");

    device
        .publish("altair/taps/3/pours", r#"{"volume": 500}"#)
        .await;
    let pushed = subscriber.next_pour().await;
    assert_eq!(
        (pushed["tapId"].as_u64(), pushed["volume"].as_f64()),
        (Some(3), Some(500.0))
    );
    assert_eq!(
        (pushed["type"].as_str(), pushed["venue"].as_str()),
        (Some("pint"), Some("main"))
    );
    // The device hears its own message, then the answer with the stored pour.
    let (topic, _) = device.next().await;
    assert_eq!(topic, "altair/taps/3/pours");
    let (topic, answer) = device.next().await;
    assert_eq!(topic, "altair/taps/3/pours/accepted");
    assert_eq!(answer["beer"], pushed);

    // A venue's topic, with the REST body's other fields.
    device
        .publish(
            "altair/north/taps/2/pours",
            r#"{"volume": 330, "timestamp": "2026-12-04T20:00:00Z"}"#,
        )
        .await;
    let pushed = subscriber.next_pour().await;
    assert_eq!(
        (pushed["venue"].as_str(), pushed["tapId"].as_u64()),
        (Some("north"), Some(2))
    );
    assert_eq!(pushed["timestamp"], "2026-12-04T20:00:00.000Z");
    let stored = pours(&app, 2).await;
    assert_eq!(stored.len(), 2);
    let health = connected(&app, true).await;
    assert_eq!(
        (health["messages"].as_u64(), health["pours"].as_u64()),
        (Some(2), Some(2))
    );
    let metrics = crate::helpers::scrape(&app).await;
    assert!(metrics.get("altair_mqtt_pours_total") >= Some(&2.0));
}

#[tokio::test]
async fn a_message_that_makes_no_pour_is_answered_with_why_and_stores_nothing() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let app = server(&broker, &[]).await;
    let mut device = Device::connect(
        broker.port,
        &["altair/+/+/+/rejected", "altair/+/+/+/+/rejected"],
    )
    .await;
    for (topic, payload, status, says) in [
        ("altair/taps/3/pours", "volume=500", 400, "not valid JSON"),
        (
            "altair/taps/3/pours",
            r#"{"volume": -5}"#,
            422,
            "more than 0",
        ),
        (
            "altair/taps/3/pours",
            r#"{"tapId": 4, "volume": 500}"#,
            422,
            "not this topic's tap",
        ),
        (
            "altair/taps/x/pours",
            r#"{"volume": 500}"#,
            404,
            "not a tap id",
        ),
        (
            "altair/nowhere/taps/3/pours",
            r#"{"volume": 500}"#,
            404,
            "no venue \"nowhere\"",
        ),
        (
            "altair/taps/3/pours",
            r#"{"volume": 500, "idempotencyKey": 7}"#,
            422,
            "idempotencyKey",
        ),
    ] {
        device.publish(topic, payload).await;
        let (heard, answer) = device.next().await;
        assert_eq!(heard, format!("{topic}/rejected"));
        assert_eq!(answer["status"], status, "{payload}: {answer}");
        let message = answer["message"].as_str().unwrap();
        assert!(message.contains(says), "{payload}: {message}");
    }
    let (_, page) = app.get("/api/beers").await;
    assert_eq!(page["total"], 0);
    let health = connected(&app, true).await;
    assert_eq!(
        (health["messages"].as_u64(), health["rejected"].as_u64()),
        (Some(6), Some(6))
    );
}

#[tokio::test]
async fn a_redelivered_keyed_message_is_stored_once() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let app = server(&broker, &[]).await;
    let mut device = Device::connect(broker.port, &["altair/taps/5/pours/+"]).await;
    let body = r#"{"volume": 400, "idempotencyKey": "tap5-0001"}"#;
    device.publish("altair/taps/5/pours", body).await;
    device.publish("altair/taps/5/pours", body).await;
    // The MQTT 5 user property does as well as the body's field.
    let keyed = || PublishProperties {
        user_properties: vec![("Idempotency-Key".into(), "tap5-0002".into())],
        ..Default::default()
    };
    for _ in 0..2 {
        device
            .publish_with("altair/taps/5/pours", r#"{"volume": 410}"#, Some(keyed()))
            .await;
    }
    let mut ids = Vec::new();
    for _ in 0..4 {
        let (topic, answer) = device.next().await;
        assert_eq!(topic, "altair/taps/5/pours/accepted");
        ids.push(answer["beer"]["id"].as_u64().unwrap());
    }
    assert_eq!(ids[0], ids[1]);
    assert_eq!(ids[2], ids[3]);
    assert_ne!(ids[0], ids[2]);
    let (_, page) = app.get("/api/beers").await;
    assert_eq!(page["total"], 2);
    // The same key with another body stores nothing, and says so.
    device
        .publish(
            "altair/taps/5/pours",
            r#"{"volume": 999, "idempotencyKey": "tap5-0001"}"#,
        )
        .await;
    let (topic, answer) = device.next().await;
    assert_eq!(topic, "altair/taps/5/pours/rejected");
    assert_eq!(answer["status"], 409);
}

/// A TCP relay between a server and the broker that can hold what the server sends: its
/// acknowledgements then never reach the broker.
struct Relay {
    port: u16,
    hold: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    async fn start(to: u16) -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let hold = Arc::new(AtomicBool::new(false));
        let held = hold.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let held = held.clone();
                tokio::spawn(async move {
                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(("127.0.0.1", to)).await
                    else {
                        return;
                    };
                    let (mut in_read, mut in_write) = inbound.split();
                    let (mut out_read, mut out_write) = outbound.split();
                    let up = async {
                        let mut buf = [0u8; 4096];
                        loop {
                            let n = match in_read.read(&mut buf).await {
                                Ok(0) | Err(_) => break,
                                Ok(n) => n,
                            };
                            if held.load(Ordering::SeqCst) {
                                continue; // dropped: as if the server never sent it
                            }
                            if out_write.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    };
                    let down = tokio::io::copy(&mut out_read, &mut in_write);
                    tokio::select! {
                        () = up => {}
                        _ = down => {}
                    }
                });
            }
        });
        Relay { port, hold, task }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Waits for the server at `addr` (a spawned binary) to read its topics.
async fn binary_connected(addr: &str) {
    binary_link(addr, true).await;
}

/// Waits for the link of the server at `addr` (a spawned binary) to be up or down, and
/// returns `/health`.
async fn binary_link(addr: &str, up: bool) -> Value {
    poll(addr, "/health", |health| health["mqtt"]["connected"] == up).await
}

/// Asks the server at `addr` for `path` until its JSON answer is `done`, and returns it.
async fn poll(addr: &str, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    let http = crate::helpers::http_client();
    within(async {
        loop {
            if let Ok(response) = http.get(format!("http://{addr}{path}")).send().await {
                let answer: Value = response.json().await.unwrap_or(Value::Null);
                if done(&answer) {
                    return answer;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

/// The value of the metric line `name` of the server at `addr` (a spawned binary).
async fn binary_metric(addr: &str, name: &str) -> Option<f64> {
    let http = crate::helpers::http_client();
    let text = http
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// Waits for the server at `addr` (a spawned binary) to have `n` pours.
async fn binary_pours(addr: &str, n: u64) -> Vec<Value> {
    let page = poll(addr, "/api/beers?page_size=1000", |page| {
        page["total"].as_u64() >= Some(n)
    })
    .await;
    page["beers"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_server_killed_before_acknowledging_stores_the_pour_once_after_restart() {
    killed_before_acknowledging("5").await;
}

/// The same over MQTT 3.1.1 (`--mqtt-protocol 3.1.1`), for a broker that speaks nothing
/// newer: a persistent session, acknowledgements once durable, answers.
#[tokio::test]
async fn over_mqtt_3_1_1_a_killed_server_stores_the_pour_once_after_restart() {
    killed_before_acknowledging("3.1.1").await;
}

async fn killed_before_acknowledging(protocol: &str) {
    let Some(broker) = Broker::start() else {
        return;
    };
    let relay = Relay::start(broker.port).await;
    let dir = tempdir("mqtt-kill");
    let data = dir.to_str().unwrap().to_owned();
    let through_relay = format!("mqtt://127.0.0.1:{}", relay.port);
    let args = |url: &str| {
        vec![
            "--data-dir".to_owned(),
            data.clone(),
            "--mqtt-url".to_owned(),
            url.to_owned(),
            "--mqtt-client-id".to_owned(),
            "altair-kill-test".to_owned(),
            "--mqtt-protocol".to_owned(),
            protocol.to_owned(),
        ]
    };
    let first = args(&through_relay);
    let first: Vec<&str> = first.iter().map(String::as_str).collect();
    let (mut child, addr, log) = spawn_binary_logged(&first);
    binary_connected(&addr).await;
    let spoken = format!("(MQTT {protocol}, new session)");
    assert!(
        log.lock().unwrap().iter().any(|l| l.contains(&spoken)),
        "the server says it speaks MQTT {protocol}"
    );
    let mut device = Device::connect(broker.port, &["altair/taps/+/pours/accepted"]).await;
    // A first message shows the subscription is in place.
    device
        .publish("altair/taps/1/pours", r#"{"volume": 300}"#)
        .await;
    assert_eq!(device.next().await.0, "altair/taps/1/pours/accepted");

    // The server's acknowledgement of the next message never reaches the broker.
    relay.hold.store(true, Ordering::SeqCst);
    device
        .publish(
            "altair/taps/2/pours",
            r#"{"volume": 500, "idempotencyKey": "kill-1"}"#,
        )
        .await;
    let stored = binary_pours(&addr, 2).await;
    let held = stored.iter().find(|p| p["tapId"] == 2).unwrap()["id"].clone();
    crate::helpers::signal(&child, rustix::process::Signal::KILL);
    let _ = child.wait();
    drop(relay);

    // Restarted on the same session: the broker delivers the message again.
    let again = args(&broker.url());
    let again: Vec<&str> = again.iter().map(String::as_str).collect();
    let (_child, addr, _log) = spawn_binary_logged(&again);
    let (topic, answer) = device.next().await;
    assert_eq!(
        topic, "altair/taps/2/pours/accepted",
        "the redelivery is answered"
    );
    assert_eq!(
        answer["beer"]["id"], held,
        "with the pour stored before the kill"
    );
    device
        .publish("altair/taps/3/pours", r#"{"volume": 250}"#)
        .await;
    assert_eq!(device.next().await.0, "altair/taps/3/pours/accepted");
    let stored = binary_pours(&addr, 3).await;
    let taps: Vec<u64> = stored
        .iter()
        .map(|p| p["tapId"].as_u64().unwrap())
        .collect();
    assert_eq!(taps, [1, 2, 3], "each pour once");
}

#[tokio::test]
async fn the_broker_going_away_shows_in_health_and_pours_resume_when_it_is_back() {
    let Some(mut broker) = Broker::start() else {
        return;
    };
    // A process of its own: its metrics are its alone. With a user and passwords that no
    // log line may show.
    let url = format!("mqtt://bar:url-secret@127.0.0.1:{}", broker.port);
    let secret = tempdir("mqtt-secret").join("password");
    std::fs::write(&secret, "file-secret\n").unwrap();
    let (_child, addr, log) = spawn_binary_logged(&[
        "--ephemeral",
        "--mqtt-url",
        &url,
        "--mqtt-password-file",
        secret.to_str().unwrap(),
    ]);
    binary_connected(&addr).await;
    assert_eq!(
        binary_metric(&addr, "altair_mqtt_connected").await,
        Some(1.0)
    );
    let mut device = Device::connect(broker.port, &[]).await;
    device
        .publish("altair/taps/1/pours", r#"{"volume": 500}"#)
        .await;
    binary_pours(&addr, 1).await;

    broker.stop();
    let health = binary_link(&addr, false).await;
    assert!(health["mqtt"]["error"].as_str().is_some(), "{health}");
    // HTTP takes pours all the same, and the server is healthy.
    assert_eq!(health["status"], "up");
    crate::helpers::pour_to(&addr, &[330]).await;
    assert_eq!(
        binary_metric(&addr, "altair_mqtt_connected").await,
        Some(0.0)
    );

    broker.run();
    binary_connected(&addr).await;
    assert_eq!(
        binary_metric(&addr, "altair_mqtt_connected").await,
        Some(1.0)
    );
    let mut device = Device::connect(broker.port, &[]).await;
    // The broker forgot everything (no persistence): the server subscribed again.
    device
        .publish("altair/taps/3/pours", r#"{"volume": 250}"#)
        .await;
    let stored = binary_pours(&addr, 3).await;
    assert_eq!(stored.last().unwrap()["tapId"], 3);
    // One line when it went, one when it came back: not one per try.
    let lines: Vec<String> = log
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("altair::mqtt"))
        .cloned()
        .collect();
    assert!(lines.len() <= 5, "{lines:#?}");
    let everything = log.lock().unwrap().join("\n");
    assert!(!everything.contains("secret"), "{everything}");
}

#[tokio::test]
async fn two_servers_on_one_database_share_the_subscription_and_store_each_message_once() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let Some(pg) = crate::postgres::Postgres::start() else {
        return;
    };
    let url = pg.url();
    let one = server(
        &broker,
        &["--database-url", &url, "--mqtt-client-id", "altair-a"],
    )
    .await;
    let two = server(
        &broker,
        &["--database-url", &url, "--mqtt-client-id", "altair-b"],
    )
    .await;
    let mut device = Device::connect(broker.port, &[]).await;
    // Subscriptions are in place once a message on each has come through.
    let mut sent = 0;
    while one.get("/health").await.1["mqtt"]["pours"] == 0
        || two.get("/health").await.1["mqtt"]["pours"] == 0
    {
        sent += 1;
        device
            .publish(
                "altair/taps/1/pours",
                format!(r#"{{"volume": {}}}"#, 100 + sent),
            )
            .await;
        pours(&one, sent).await;
        assert!(sent < 100, "both servers take messages");
    }
    for n in 0..40 {
        device
            .publish(
                &format!("altair/taps/{}/pours", 2 + n % 4),
                r#"{"volume": 500}"#,
            )
            .await;
    }
    let total = sent + 40;
    // Every message handled by one server or the other, not both.
    let handled = within(async {
        loop {
            let (a, b) = (connected(&one, true).await, connected(&two, true).await);
            let handled = a["messages"].as_u64().unwrap() + b["messages"].as_u64().unwrap();
            if handled >= total {
                return handled;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(handled, total, "each message handled once");
    let stored = pours(&two, total).await;
    assert_eq!(stored.len() as u64, total, "each message stored once");
}

#[tokio::test]
async fn a_message_the_store_cannot_take_is_not_acknowledged_and_comes_again() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let Some(pg) = crate::postgres::Postgres::start() else {
        return;
    };
    let url = pg.url();
    let mqtt = broker.url();
    let args = [
        "--database-url",
        &url,
        "--mqtt-url",
        &mqtt,
        "--mqtt-client-id",
        "altair-store-down",
    ];
    let (mut child, addr, log) = spawn_binary_logged(&args);
    binary_connected(&addr).await;
    let mut device = Device::connect(broker.port, &["altair/taps/+/pours/accepted"]).await;

    pg.stop();
    device
        .publish("altair/taps/4/pours", r#"{"volume": 500}"#)
        .await;
    within(async {
        while !log
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("the store cannot take a pour now"))
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    // Killed while the message waits: the broker never had an acknowledgement.
    crate::helpers::signal(&child, rustix::process::Signal::KILL);
    let _ = child.wait();
    pg.start_server();

    let (_child, addr, _log) = spawn_binary_logged(&args);
    let (topic, answer) = device.next().await;
    assert_eq!(topic, "altair/taps/4/pours/accepted");
    let stored = binary_pours(&addr, 1).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(answer["beer"], stored[0]);
}

#[tokio::test]
async fn a_flood_of_messages_is_stored_whole_and_in_order() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let app = server(&broker, &[]).await;
    let mut device = Device::connect(broker.port, &[]).await;
    // Far more than the server holds at once, and than its client's queue: answers and
    // acknowledgements must not wait on each other.
    const N: u64 = 20_000;
    let messages: Vec<(String, String)> = (0..N)
        .map(|n| {
            let topic = format!("altair/taps/{}/pours", 1 + n % 7);
            (topic, format!(r#"{{"volume": {}}}"#, 100 + n % 900))
        })
        .collect();
    device.burst(&messages).await;
    let health = within(async {
        loop {
            let health = connected(&app, true).await;
            if health["pours"].as_u64() >= Some(N) {
                return health;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert_eq!(health["pours"].as_u64(), Some(N));
    // The last of them is the last stored: the order they came in.
    let (_, page) = app.get(&format!("/api/beers/{N}")).await;
    assert_eq!(page["beer"]["volume"], 100.0 + ((N - 1) % 900) as f64);
    assert_eq!(page["beer"]["tapId"], 1 + (N - 1) % 7);
}

/// Waits for a message on `topic` that `done` accepts, skipping the others.
async fn until(device: &mut Device, topic: &str, done: impl Fn(&Value) -> bool) -> Value {
    within(async {
        loop {
            let (heard, body) = device.heard.recv().await.unwrap();
            if heard == topic && done(&body) {
                return body;
            }
        }
    })
    .await
}

#[tokio::test]
async fn a_tap_s_state_is_retained_and_follows_its_keg_and_pours() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let app = server(&broker, &[]).await;
    let (status, _) = app
        .send_json(
            "POST",
            "/api/kegs",
            r#"{"tapId": 3, "beverage": "Helles", "size": "euro-50"}"#,
        )
        .await;
    assert_eq!(status.as_u16(), 201);
    let mut watcher = Device::connect(broker.port, &["altair/taps/3/state"]).await;
    let mut alerts_watcher = Device::connect(broker.port, &["altair/alerts"]).await;
    let state = until(&mut watcher, "altair/taps/3/state", |s| {
        s["beverage"] == "Helles"
    })
    .await;
    assert_eq!(state["remainingMl"], 50000.0);
    assert_eq!(
        (state["percent"].as_f64(), state["low"].as_bool()),
        (Some(100.0), Some(false))
    );
    assert_eq!(state["poursToday"], 0);

    let mut device = Device::connect(broker.port, &[]).await;
    device
        .publish("altair/taps/3/pours", r#"{"volume": 500}"#)
        .await;
    let state = until(&mut watcher, "altair/taps/3/state", |s| {
        s["poursToday"] == 1
    })
    .await;
    assert_eq!(
        (state["remainingMl"].as_f64(), state["lastPourMl"].as_f64()),
        (Some(49500.0), Some(500.0))
    );
    assert_eq!(state["remainingLitres"], 49.5);
    assert_eq!(state["litresToday"], 0.5);
    assert_eq!(state["lastPourAt"].as_str().map(str::len), Some(24));

    // Drawn below the low level: low, and the alert is in the retained list.
    app.send_json("PATCH", "/api/kegs/1", r#"{"spillMl": 45000}"#)
        .await;
    let state = until(&mut watcher, "altair/taps/3/state", |s| s["low"] == true).await;
    assert_eq!(state["percent"], 9.0);
    let alerts = until(&mut alerts_watcher, "altair/alerts", |a| a["open"] == 1).await;
    assert_eq!(alerts["alerts"][0]["kind"], "kegLow");
    assert_eq!(alerts["alerts"][0]["tapId"], 3);

    // One who connects later gets the state at once: it is retained.
    let mut late = Device::connect(broker.port, &["altair/taps/3/state"]).await;
    let (topic, state) = late.next().await;
    assert_eq!(
        (topic.as_str(), state["low"].as_bool()),
        ("altair/taps/3/state", Some(true))
    );
}

/// What a Home Assistant entity's `value_template` reads of the state: `value_json.X`.
fn field_of(template: &str) -> &str {
    let at = template
        .find("value_json.")
        .expect("the template reads the state")
        + 11;
    let rest = &template[at..];
    &rest[..rest
        .find(|c: char| !c.is_ascii_alphanumeric())
        .unwrap_or(rest.len())]
}

#[tokio::test]
async fn home_assistant_finds_each_tap_with_a_keg_and_loses_it_when_the_keg_is_finished() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let app = server(&broker, &["--mqtt-discovery"]).await;
    app.send_json(
        "POST",
        "/api/venues",
        r#"{"id": "north", "name": "North", "timezone": "UTC"}"#,
    )
    .await;
    app.send_json(
        "POST",
        "/api/kegs",
        r#"{"venue": "north", "tapId": 2, "beverage": "Stout", "size": "sixth-barrel"}"#,
    )
    .await;
    let mut ha = Device::connect(
        broker.port,
        &[
            "homeassistant/#",
            "altair/status",
            "altair/north/taps/2/state",
        ],
    )
    .await;
    let mut configs = BTreeMap::new();
    let mut state = Value::Null;
    let mut status = String::new();
    within(async {
        while configs.len() < 7 || state.is_null() || status.is_empty() {
            let (topic, body) = ha.heard.recv().await.unwrap();
            match topic.as_str() {
                "altair/status" => status = "seen".into(),
                "altair/north/taps/2/state" => state = body,
                _ => drop(configs.insert(topic, body)),
            }
        }
    })
    .await;
    // Home Assistant's MQTT discovery: <prefix>/<component>/<node_id>/<object_id>/config,
    // each with a unique id, a state topic, availability, and the device it belongs to.
    let expected = [
        ("sensor", "level", Some("%"), None, Some("measurement")),
        (
            "sensor",
            "remaining",
            Some("L"),
            Some("volume_storage"),
            Some("measurement"),
        ),
        ("sensor", "last_pour", Some("mL"), Some("volume"), None),
        (
            "sensor",
            "pours_today",
            Some("pours"),
            None,
            Some("total_increasing"),
        ),
        ("binary_sensor", "low", None, Some("problem"), None),
        ("binary_sensor", "empty", None, Some("problem"), None),
        ("binary_sensor", "quiet", None, None, None),
    ];
    let mut unique = std::collections::BTreeSet::new();
    for (component, key, unit, class, state_class) in expected {
        let topic = format!("homeassistant/{component}/altair/north_tap2_{key}/config");
        let config = configs
            .get(&topic)
            .unwrap_or_else(|| panic!("{topic} in {configs:#?}"));
        assert!(
            config["name"].as_str().is_some_and(|n| !n.is_empty()),
            "{config}"
        );
        assert!(unique.insert(config["unique_id"].as_str().unwrap().to_owned()));
        assert_eq!(config["state_topic"], "altair/north/taps/2/state");
        assert_eq!(config["availability_topic"], "altair/status");
        assert_eq!(
            (
                config["payload_available"].as_str(),
                config["payload_not_available"].as_str()
            ),
            (Some("online"), Some("offline"))
        );
        assert_eq!(config["unit_of_measurement"].as_str(), unit, "{topic}");
        assert_eq!(config["device_class"].as_str(), class, "{topic}");
        assert_eq!(config["state_class"].as_str(), state_class, "{topic}");
        assert_eq!(
            config["device"]["identifiers"],
            json!(["altair_north_tap2"])
        );
        assert_eq!(config["device"]["name"], "North tap 2");
        assert_eq!(config["device"]["manufacturer"], "Altair");
        assert_eq!(config["origin"]["name"], "Altair");
        // The template reads a field the state has.
        let template = config["value_template"].as_str().unwrap();
        let field = field_of(template);
        assert!(
            state.get(field).is_some(),
            "{topic}: {field} not in {state}"
        );
        if component == "binary_sensor" {
            assert!(
                template.contains("'ON'") && template.contains("'OFF'"),
                "{template}"
            );
        }
    }
    assert_eq!(state["beverage"], "Stout");

    // The keg comes off: each entity's config is emptied, which removes it.
    app.send_json("POST", "/api/kegs/1/finish", "{}").await;
    let mut removed = std::collections::BTreeSet::new();
    within(async {
        while removed.len() < 7 {
            let (topic, body) = ha.heard.recv().await.unwrap();
            if topic.ends_with("/config") && body.is_null() {
                removed.insert(topic);
            }
        }
    })
    .await;
    assert_eq!(
        removed.into_iter().collect::<Vec<_>>(),
        configs.keys().cloned().collect::<Vec<_>>()
    );
}

/// A meters file (`--mqtt-meters`) holding `text`; its path.
fn meters_file(text: &str) -> String {
    let path = tempdir("meters").join("meters.toml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

/// The volumes of `pours`, in order.
fn volumes(pours: &[Value]) -> Vec<f64> {
    pours
        .iter()
        .map(|p| p["volume"].as_f64().unwrap())
        .collect()
}

/// Waits for the next answer `device` hears, and says it is `outcome` (accepted or
/// rejected); returns its body.
async fn answered(device: &mut Device, outcome: &str) -> Value {
    let (topic, body) = device.next().await;
    assert!(
        topic.ends_with(&format!("/pours/{outcome}")),
        "{topic}: {body}"
    );
    body
}

#[tokio::test]
async fn an_esphome_total_in_litres_becomes_pours_across_a_restart_a_duplicate_and_a_jump() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let file = meters_file(
        "[[meter]]\ntopic = \"bar/sensor/tap_1_total/state\"\ntap = 1\nunit = \"l\"\nidle_seconds = 0.3\n",
    );
    let app = server(&broker, &["--mqtt-meters", &file]).await;
    let (mut subscriber, _) = app.subscribe("").await;
    let mut device = Device::connect(broker.port, &["altair/taps/1/pours/#"]).await;
    let total = "bar/sensor/tap_1_total/state";

    // The first total is where counting starts; a repeated one adds nothing.
    for value in ["12.0", "12.1", "12.3", "12.3"] {
        device.publish(total, value).await;
    }
    let beer = answered(&mut device, "accepted").await["beer"].clone();
    assert_eq!(
        (beer["tapId"].as_u64(), beer["volume"].as_f64()),
        (Some(1), Some(300.0))
    );
    assert_eq!(subscriber.next_pour().await["id"], beer["id"], "pushed");

    // The device restarts mid-pour: what it poured before is a pour, the fall none.
    device.publish(total, "12.5").await;
    device.publish(total, "0.0").await;
    let beer = answered(&mut device, "accepted").await;
    assert_eq!(beer["beer"]["volume"], 200.0);
    device.publish(total, "0.5").await;
    assert_eq!(
        answered(&mut device, "accepted").await["beer"]["volume"],
        500.0
    );
    // Delivered again (QoS 1): nothing.
    device.publish(total, "0.5").await;

    // A jump no tap pours is flagged, not poured; counting goes on from it.
    device.publish(total, "900").await;
    let refused = answered(&mut device, "rejected").await;
    assert_eq!(refused["status"], 422);
    let message = refused["message"].as_str().unwrap();
    assert!(
        message.contains("899500 ml at once") && message.contains("not poured"),
        "{message}"
    );
    device.publish(total, "900.33").await;
    assert_eq!(
        answered(&mut device, "accepted").await["beer"]["volume"],
        330.0
    );
    device.publish(total, "lots").await;
    assert_eq!(answered(&mut device, "rejected").await["status"], 400);

    assert_eq!(volumes(&pours(&app, 4).await), [300.0, 200.0, 500.0, 330.0]);
    let health = connected(&app, true).await;
    assert_eq!(
        (health["messages"].as_u64(), health["pours"].as_u64()),
        (Some(11), Some(4))
    );
}

#[tokio::test]
async fn a_tasmota_counter_in_pulses_pours_for_its_venue() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let file = meters_file(
        "[[meter]]\nname = \"north tap 2\"\ntopic = \"tele/tap2/SENSOR\"\nvenue = \"north\"\ntap = 2\n\
         unit = \"pulses\"\npulses_per_litre = 2000\npointer = \"/COUNTER/C1\"\nidle_seconds = 0.3\n",
    );
    let app = server(&broker, &["--mqtt-meters", &file]).await;
    let (status, venue) = app
        .send_json(
            "POST",
            "/api/venues",
            r#"{"id": "north", "name": "North", "timezone": "UTC"}"#,
        )
        .await;
    assert_eq!(status.as_u16(), 201, "{venue}");
    let mut device = Device::connect(broker.port, &["altair/north/taps/2/pours/#"]).await;
    let counter =
        |pulses: u32| format!(r#"{{"Time":"2026-12-04T21:00:00","COUNTER":{{"C1":{pulses}}}}}"#);

    for pulses in [100, 400, 700] {
        device.publish("tele/tap2/SENSOR", counter(pulses)).await;
    }
    let beer = answered(&mut device, "accepted").await["beer"].clone();
    assert_eq!(
        (
            beer["venue"].as_str(),
            beer["tapId"].as_u64(),
            beer["volume"].as_f64()
        ),
        (Some("north"), Some(2), Some(300.0))
    );
    // Rebooted: the counter starts again at 0.
    for pulses in [0, 660, 660] {
        device.publish("tele/tap2/SENSOR", counter(pulses)).await;
    }
    assert_eq!(
        answered(&mut device, "accepted").await["beer"]["volume"],
        330.0
    );
    device
        .publish("tele/tap2/SENSOR", r#"{"COUNTER":{}}"#)
        .await;
    let refused = answered(&mut device, "rejected").await;
    assert!(
        refused["message"].as_str().unwrap().contains("/COUNTER/C1"),
        "{refused}"
    );
    let stored = pours(&app, 2).await;
    assert_eq!(volumes(&stored), [300.0, 330.0]);
}

#[tokio::test]
async fn a_meter_s_count_survives_a_server_killed_mid_pour() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let file = meters_file(
        "[[meter]]\ntopic = \"bar/sensor/tap_5_total/state\"\ntap = 5\nunit = \"l\"\nidle_seconds = 2\n",
    );
    let dir = tempdir("meter-kill");
    let args = [
        "--data-dir",
        dir.to_str().unwrap(),
        "--mqtt-url",
        &broker.url(),
        "--mqtt-meters",
        &file,
    ];
    let (child, addr, _log) = spawn_binary_logged(&args);
    binary_connected(&addr).await;
    let mut device = Device::connect(broker.port, &["altair/taps/5/pours/accepted"]).await;
    let total = "bar/sensor/tap_5_total/state";
    device.publish(total, "5.0").await;
    device.publish(total, "5.2").await;
    assert_eq!(device.next().await.1["beer"]["volume"], 200.0);

    // A pour is open (5.2 to 5.3) when the server is killed; the next total comes to
    // the restarted one, which measures from where the log says counting stood.
    device.publish(total, "5.3").await;
    crate::helpers::signal(&child, rustix::process::Signal::KILL);
    drop(child);
    let (_child, addr, _log) = spawn_binary_logged(&args);
    binary_connected(&addr).await;
    device.publish(total, "5.5").await;
    assert_eq!(device.next().await.1["beer"]["volume"], 300.0);
    assert_eq!(volumes(&binary_pours(&addr, 2).await), [200.0, 300.0]);
}

#[tokio::test]
async fn two_servers_following_one_meter_store_each_pour_once() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let Some(pg) = crate::postgres::Postgres::start() else {
        return;
    };
    let url = pg.url();
    let file = meters_file(
        "[[meter]]\ntopic = \"bar/sensor/tap_1_total/state\"\ntap = 1\nunit = \"l\"\nidle_seconds = 0.3\n",
    );
    let flags = |id| {
        vec![
            "--database-url",
            url.as_str(),
            "--mqtt-client-id",
            id,
            "--mqtt-meters",
            file.as_str(),
        ]
    };
    let one = server(&broker, &flags("altair-a")).await;
    let two = server(&broker, &flags("altair-b")).await;
    let mut device = Device::connect(broker.port, &["altair/taps/1/pours/accepted"]).await;
    let total = "bar/sensor/tap_1_total/state";
    for value in ["1.0", "1.2", "1.4"] {
        device.publish(total, value).await;
    }
    assert_eq!(device.next().await.1["beer"]["volume"], 400.0);
    for value in ["2.0", "2.3"] {
        device.publish(total, value).await;
    }
    assert_eq!(device.next().await.1["beer"]["volume"], 900.0);
    assert_eq!(
        volumes(&pours(&one, 2).await),
        [400.0, 900.0],
        "each pour once"
    );
    assert_eq!(volumes(&pours(&two, 2).await), [400.0, 900.0]);
    // Both read every total.
    for app in [&one, &two] {
        assert_eq!(connected(app, true).await["messages"], 5);
    }
}

#[tokio::test]
async fn temperatures_come_on_a_tap_s_topic_or_as_a_bare_number_on_a_mapped_one() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let file = meters_file(
        "[[thermometer]]\ntopic = \"cellar/cooler/temperature\"\ntap = 2\nsensor = \"cooler\"\nlocation = \"cooler\"\n",
    );
    let app = server(&broker, &["--mqtt-meters", &file]).await;
    let mut device = Device::connect(
        broker.port,
        &["altair/taps/2/temperature/+", "cellar/cooler/temperature/+"],
    )
    .await;
    device
        .publish(
            "altair/taps/2/temperature",
            r#"{"sensor": "keg", "celsius": 3.25}"#,
        )
        .await;
    let (topic, answer) = device.next().await;
    assert_eq!(topic, "altair/taps/2/temperature/accepted");
    assert_eq!(
        (
            answer["temperature"]["tapId"].as_u64(),
            answer["temperature"]["celsius"].as_f64()
        ),
        (Some(2), Some(3.25))
    );
    device.publish("cellar/cooler/temperature", "4.2").await;
    let (topic, answer) = device.next().await;
    assert_eq!(topic, "cellar/cooler/temperature/accepted");
    assert_eq!(answer["temperature"]["location"], "cooler");
    device
        .publish("altair/taps/2/temperature", r#"{"celsius": 400}"#)
        .await;
    let (topic, answer) = device.next().await;
    assert_eq!(topic, "altair/taps/2/temperature/rejected");
    assert_eq!(answer["status"], 422);
    device.publish("cellar/cooler/temperature", "warm").await;
    assert_eq!(device.next().await.0, "cellar/cooler/temperature/rejected");

    let (_, read) = app.get("/api/temperatures?tapId=2").await;
    let sensors: Vec<(&str, f64)> = read["temperatures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["sensor"].as_str().unwrap(),
                r["celsius"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(sensors, [("keg", 3.25), ("cooler", 4.2)]);
}
