//! The real client binary against a real server on a real port.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use altair::{Config, RunningServer};
use clap::Parser;
use serde_json::Value;

const PATIENCE: Duration = Duration::from_secs(20);

/// An HTTP client whose requests fail after a while instead of hanging the test run.
fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(PATIENCE)
        .build()
        .unwrap()
}

/// A folder of the test's own, removed when the test ends, pass or fail.
struct TempDir(PathBuf);

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tempdir(name: &str) -> TempDir {
    let dir =
        std::env::temp_dir().join(format!("altair-client-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    TempDir(dir)
}

async fn server(bind: &str, data: Option<&Path>) -> RunningServer {
    let mut argv = vec!["altair-server".to_owned(), "--bind".into(), bind.into()];
    match data {
        Some(dir) => argv.extend(["--data-dir".into(), dir.display().to_string()]),
        None => argv.push("--ephemeral".into()),
    }
    RunningServer::start(Config::try_parse_from(argv).unwrap())
        .await
        .expect("server starts")
}

/// The client binary, its log lines collected as they come.
struct Tap {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Tap {
    fn spawn(server: SocketAddr, data: &Path, args: &[&str]) -> Tap {
        Tap::spawn_to(&format!("http://{server}"), data, args)
    }

    /// A tap given `--server servers` as written.
    fn spawn_to(servers: &str, data: &Path, args: &[&str]) -> Tap {
        let mut child = Command::new(env!("CARGO_BIN_EXE_altair-client"))
            .arg("--server")
            .arg(servers)
            .arg("--data-dir")
            .arg(data)
            .args(args)
            .env("RUST_LOG", "info")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Tap { child, lines }
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    fn count(&self, needle: &str) -> usize {
        self.lines().iter().filter(|l| l.contains(needle)).count()
    }

    /// Waits until `n` log lines contain `needle`.
    async fn await_lines(&self, needle: &str, n: usize) {
        let deadline = Instant::now() + PATIENCE;
        while self.count(needle) < n {
            assert!(
                Instant::now() < deadline,
                "waited for {n} lines with {needle:?}; log:\n{}",
                self.lines().join("\n")
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits for the process to exit by itself; returns its exit code.
    async fn exited(&mut self) -> i32 {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            assert!(
                Instant::now() < deadline,
                "client did not exit; log:\n{}",
                self.lines().join("\n")
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// By system call, never kill(1): procps reads a negative pid without `--` as -1.
    fn signal(&self, signal: rustix::process::Signal) {
        rustix::process::kill_process(rustix::process::Pid::from_child(&self.child), signal)
            .expect("the tap is ours to signal");
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every stored pour of `tap`.
async fn pours_of(server: SocketAddr, tap: u32) -> Vec<Value> {
    let body: Value = http()
        .get(format!(
            "http://{server}/api/beers?tapId={tap}&page_size=1000"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["beers"].as_array().unwrap().clone()
}

async fn post(server: SocketAddr, tap: u32) -> u64 {
    let response = http()
        .post(format!("http://{server}/api/beers"))
        .header("content-type", "application/json")
        .body(format!(r#"{{"tapId": {tap}, "volume": 500}}"#))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 201);
    let body: Value = response.json().await.unwrap();
    body["beer"]["id"].as_u64().unwrap()
}

fn outbox_files(data: &Path, tap: u32) -> usize {
    std::fs::read_dir(data.join(format!("tap-{tap}")))
        .map(|d| {
            d.filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "json"))
            })
            .count()
        })
        .unwrap_or(0)
}

/// Pour ids of `from_tap` that `listener` logged, in log order.
fn heard(tap: &Tap, listener: &str, from_tap: u32) -> Vec<u64> {
    let marker = format!("{listener} | pour #");
    let from = format!(" from tap {from_tap}:");
    tap.lines()
        .iter()
        .filter(|l| l.contains(&marker) && l.contains(&from))
        .map(|l| {
            let rest = &l[l.find(&marker).unwrap() + marker.len()..];
            rest[..rest.find(' ').unwrap()].parse().unwrap()
        })
        .collect()
}

#[tokio::test]
async fn a_tap_posts_hears_other_taps_and_logs_as_documented() {
    let server = server("127.0.0.1:0", None).await;
    let data = tempdir("basic");
    let mut tap = Tap::spawn(
        server.addr,
        &data,
        &[
            "--tap-id",
            "2",
            "--count",
            "20",
            "--interval",
            "0.05",
            "--volume",
            "500",
        ],
    );
    tap.await_lines("tap 2 | subscribed; the server is at pour #", 1)
        .await;
    let other = post(server.addr, 3).await;
    tap.await_lines(
        &format!("tap 2 | pour #{other} from tap 3: pint, 500 ml"),
        1,
    )
    .await;
    assert_eq!(tap.exited().await, 0, "{}", tap.lines().join("\n"));
    assert_eq!(pours_of(server.addr, 2).await.len(), 20);
    assert_eq!(tap.count("tap 2 | poured 500 ml"), 20);
    assert_eq!(tap.count("stored as #"), 20);
    assert!(
        heard(&tap, "tap 2", 2).is_empty(),
        "its own pours are not echoed"
    );
    assert_eq!(outbox_files(&data, 2), 0);
    server.shutdown().await;
}

#[tokio::test]
async fn a_tap_of_another_venue_pours_there_and_hears_only_its_venue() {
    let server = server("127.0.0.1:0", None).await;
    let made = http()
        .post(format!("http://{}/api/venues", server.addr))
        .header("content-type", "application/json")
        .body(r#"{"id": "dock", "name": "Dock", "timezone": "UTC"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(made.status().as_u16(), 201);
    let data = tempdir("venue");
    let mut tap = Tap::spawn(
        server.addr,
        &data,
        &[
            "--venue",
            "dock",
            "--tap-id",
            "2",
            "--count",
            "3",
            // Slow enough to be still pouring (and listening) when the dock's pour comes:
            // at 0.05 s a loaded machine saw the tap finish and leave before it.
            "--interval",
            "1",
            "--volume",
            "500",
        ],
    );
    tap.await_lines("tap 2 | subscribed; the server is at pour #", 1)
        .await;
    // Tap 3 of the default venue, then tap 3 of the dock: only the dock's is heard.
    let main = post(server.addr, 3).await;
    let dock: Value = http()
        .post(format!("http://{}/api/venues/dock/beers", server.addr))
        .header("content-type", "application/json")
        .body(r#"{"tapId": 3, "volume": 500}"#)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let dock = dock["beer"]["id"].as_u64().unwrap();
    tap.await_lines(&format!("tap 2 | pour #{dock} from tap 3: pint, 500 ml"), 1)
        .await;
    assert_eq!(tap.exited().await, 0, "{}", tap.lines().join("\n"));
    assert!(
        !tap.lines()
            .iter()
            .any(|l| l.contains(&format!("pour #{main} "))),
        "another venue's pour is not heard"
    );
    let page: Value = http()
        .get(format!(
            "http://{}/api/beers?venue=dock&tapId=2",
            server.addr
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["total"], 3, "{page}");
    assert!(
        pours_of(server.addr, 2)
            .await
            .iter()
            .all(|p| p["venue"] == "dock")
    );
    server.shutdown().await;
}

#[tokio::test]
async fn many_taps_share_one_subscription_when_asked() {
    let server = server("127.0.0.1:0", None).await;
    let data = tempdir("shared");
    let mut tap = Tap::spawn(
        server.addr,
        &data,
        &[
            "--tap-id",
            "2",
            "--taps",
            "2",
            "--shared-subscription",
            "--count",
            "3",
            "--interval",
            "0.05",
            "--volume",
            "500",
        ],
    );
    tap.await_lines("taps 2-3 | subscribed", 1).await;
    // One feed for both taps, which therefore hears both taps' pours.
    tap.await_lines(" from tap 2:", 1).await;
    tap.await_lines(" from tap 3:", 1).await;
    assert_eq!(tap.exited().await, 0);
    assert_eq!(tap.count("| subscribed"), 1);
    assert_eq!(pours_of(server.addr, 2).await.len(), 3);
    assert_eq!(pours_of(server.addr, 3).await.len(), 3);
    assert_eq!(
        outbox_files(&data, 2) + outbox_files(&data, 3),
        0,
        "each tap has its own outbox"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_server_restart_loses_nothing_and_repeats_nothing() {
    let data = tempdir("restart");
    let store = data.join("server");
    let first = server("127.0.0.1:0", Some(&store)).await;
    let addr = first.addr;
    let mut tap = Tap::spawn(
        addr,
        &data.join("client"),
        &["--tap-id", "5", "--interval", "0.05", "--volume", "500"],
    );
    tap.await_lines("tap 5 | subscribed", 1).await;
    let mut posted = Vec::new();
    for _ in 0..3 {
        posted.push(post(addr, 99).await);
    }
    tap.await_lines("stored as #", 10).await;
    first.shutdown().await;
    tap.await_lines("pour not delivered", 1).await;
    tap.await_lines("feed lost", 1).await;

    let second = server(&addr.to_string(), Some(&store)).await;
    // Posted before the tap has reconnected: only since= can bring these back.
    for _ in 0..3 {
        posted.push(post(addr, 99).await);
    }
    tap.await_lines("tap 5 | resubscribed; resuming after pour #", 1)
        .await;
    let last = *posted.last().unwrap();
    tap.await_lines(&format!("tap 5 | pour #{last} from tap 99"), 1)
        .await;
    assert_eq!(
        heard(&tap, "tap 5", 99),
        posted,
        "every event once, in order"
    );

    tap.signal(rustix::process::Signal::TERM);
    assert_eq!(tap.exited().await, 0);
    let generated = tap.count("tap 5 | poured 500 ml");
    let stored = pours_of(addr, 5).await;
    let left = outbox_files(&data.join("client"), 5);
    assert_eq!(
        stored.len() + left,
        generated,
        "every generated pour stored once or still pending"
    );
    let stamps: BTreeSet<&str> = stored
        .iter()
        .map(|p| p["timestamp"].as_str().unwrap())
        .collect();
    assert_eq!(stamps.len(), stored.len(), "no pour stored twice");
    second.shutdown().await;
}

#[tokio::test]
async fn with_several_servers_a_tap_moves_to_the_next_when_one_stops() {
    let data = tempdir("failover");
    let first = server("127.0.0.1:0", None).await;
    let second = server("127.0.0.1:0", None).await;
    let (a, b) = (first.addr, second.addr);
    let mut tap = Tap::spawn_to(
        &format!("http://{a}, http://{b}"),
        &data.join("client"),
        &[
            "--tap-id",
            "3",
            "--interval",
            "0.05",
            "--volume",
            "500",
            "--count",
            "40",
        ],
    );
    tap.await_lines("stored as #", 5).await;
    first.shutdown().await;
    assert_eq!(tap.exited().await, 0);
    let lines = tap.lines();
    let moved = lines
        .iter()
        .position(|l| l.contains(&format!("server http://{a}/ failed")))
        .unwrap_or_else(|| panic!("no move to the next server; log:\n{}", lines.join("\n")));
    assert!(
        lines[moved].ends_with(&format!("moving to http://{b}/")),
        "{}",
        lines[moved]
    );
    let stored = |lines: &[String]| lines.iter().filter(|l| l.contains("stored as #")).count();
    let (on_first, on_second) = (stored(&lines[..moved]), stored(&lines[moved..]));
    assert_eq!(on_first + on_second, 40, "every pour acknowledged once");
    assert_eq!(
        pours_of(b, 3).await.len(),
        on_second,
        "the rest stored on the second server"
    );
    second.shutdown().await;
}

#[tokio::test]
async fn count_n_with_server_restarts_stores_exactly_n() {
    let data = tempdir("count");
    let store = data.join("server");
    let mut running = server("127.0.0.1:0", Some(&store)).await;
    let addr = running.addr;
    let mut tap = Tap::spawn(
        addr,
        &data.join("client"),
        &[
            "--tap-id",
            "8",
            "--count",
            "30",
            "--interval",
            "0.03",
            "--volume",
            "250",
        ],
    );
    for delivered in [5, 15] {
        tap.await_lines("stored as #", delivered).await;
        running.shutdown().await;
        tap.await_lines("pour not delivered", 1).await;
        running = server(&addr.to_string(), Some(&store)).await;
    }
    assert_eq!(tap.exited().await, 0, "{}", tap.lines().join("\n"));
    assert_eq!(pours_of(addr, 8).await.len(), 30);
    running.shutdown().await;
}

#[tokio::test]
async fn a_killed_tap_delivers_its_outbox_when_it_comes_back() {
    // A port with nothing on it yet.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let data = tempdir("killed");
    let tap = Tap::spawn(
        addr,
        &data,
        &["--tap-id", "7", "--interval", "0.02", "--volume", "500"],
    );
    tap.await_lines("tap 7 | poured", 5).await;
    tap.await_lines("server not reachable", 1).await;
    drop(tap); // SIGKILL
    let pending = outbox_files(&data, 7);
    assert!(pending >= 5, "{pending}");

    let server = server(&addr.to_string(), None).await;
    let mut tap = Tap::spawn(
        addr,
        &data,
        &["--tap-id", "7", "--count", "1", "--volume", "500"],
    );
    assert_eq!(tap.exited().await, 0, "{}", tap.lines().join("\n"));
    assert_eq!(tap.count(&format!("{pending} pours left in the outbox")), 1);
    assert_eq!(pours_of(addr, 7).await.len(), pending + 1);
    assert_eq!(outbox_files(&data, 7), 0);
    server.shutdown().await;
}

#[tokio::test]
async fn sigterm_keeps_the_outbox_and_exits_cleanly() {
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let data = tempdir("sigterm");
    let mut tap = Tap::spawn(
        addr,
        &data,
        &["--tap-id", "4", "--interval", "0.02", "--volume", "500"],
    );
    tap.await_lines("tap 4 | poured", 3).await;
    tap.signal(rustix::process::Signal::TERM);
    assert_eq!(tap.exited().await, 0);
    assert_eq!(outbox_files(&data, 4), tap.count("tap 4 | poured"));
}

#[tokio::test]
async fn a_permanent_rejection_is_logged_and_dropped() {
    let server = server("127.0.0.1:0", None).await;
    let data = tempdir("rejected");
    // 6000 ml is more than a tap pours at once: 422, which no retry can fix.
    let mut tap = Tap::spawn(
        server.addr,
        &data,
        &[
            "--tap-id",
            "6",
            "--count",
            "2",
            "--interval",
            "0.02",
            "--volume",
            "6000",
        ],
    );
    assert_eq!(tap.exited().await, 1, "a --count run with rejections fails");
    assert_eq!(tap.count("SERVER REJECTED pour of 6000 ml"), 2);
    assert_eq!(tap.count("2 pours were rejected for good"), 1);
    assert_eq!(outbox_files(&data, 6), 0);
    assert!(pours_of(server.addr, 6).await.is_empty());
    server.shutdown().await;
}

#[tokio::test]
async fn a_token_is_sent_and_a_refused_one_keeps_the_pours() {
    let data = tempdir("token");
    let mut file = String::new();
    let (tap_token, entry) =
        altair::auth::new_token(altair::auth::Role::Tap(2), None, "tap-2").unwrap();
    file.push_str(&entry);
    let (reader_token, entry) =
        altair::auth::new_token(altair::auth::Role::Reader, None, "board").unwrap();
    file.push_str(&entry);
    let tokens = data.join("tokens.toml");
    std::fs::write(&tokens, file).unwrap();
    let argv = [
        "altair-server",
        "--bind",
        "127.0.0.1:0",
        "--ephemeral",
        "--tokens",
        tokens.to_str().unwrap(),
    ];
    let server = RunningServer::start(Config::try_parse_from(argv).unwrap())
        .await
        .unwrap();

    let mut tap = Tap::spawn(
        server.addr,
        &data.join("good"),
        &[
            "--tap-id",
            "2",
            "--count",
            "3",
            "--interval",
            "0.02",
            "--token",
            &tap_token,
        ],
    );
    assert_eq!(tap.exited().await, 0, "{}", tap.lines().join("\n"));
    assert_eq!(
        tap.count("tap 2 | subscribed"),
        1,
        "the feed took the token too"
    );
    assert!(
        !tap.lines().join("\n").contains(&tap_token),
        "the token is never logged"
    );

    // A reader may not pour: the pours wait in the outbox instead of being dropped.
    let refused = Tap::spawn(
        server.addr,
        &data.join("bad"),
        &[
            "--tap-id",
            "2",
            "--interval",
            "0.02",
            "--volume",
            "500",
            "--token",
            &reader_token,
        ],
    );
    refused
        .await_lines("SERVER REFUSED THE TOKEN (403 Forbidden", 1)
        .await;
    refused.signal(rustix::process::Signal::TERM);
    refused.await_lines("tap 2 | poured", 1).await;
    drop(refused);
    assert!(outbox_files(&data.join("bad"), 2) >= 1);
    let body: Value = http()
        .get(format!("http://{}/api/beers?tapId=2", server.addr))
        .bearer_auth(&reader_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["total"], 3);
    server.shutdown().await;
}

#[test]
fn bad_configuration_is_one_line_and_no_network() {
    for args in [
        &["--tap-id", "0"][..],
        &["--interval", "0"],
        &["--server", "ftp://x"],
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_altair-client"))
            .args(args)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.starts_with("altair-client: "), "{stderr}");
    }
}

#[tokio::test]
async fn a_second_client_for_the_same_tap_and_outbox_is_refused() {
    let server = server("127.0.0.1:0", None).await;
    let data = tempdir("two-clients");
    let args = ["--tap-id", "8", "--interval", "0.05", "--volume", "500"];
    let first = Tap::spawn(server.addr, &data, &args);
    first.await_lines("tap 8 | poured", 1).await;
    let mut second = Tap::spawn(server.addr, &data, &args);
    assert_eq!(second.exited().await, 1, "{}", second.lines().join("\n"));
    assert_eq!(
        second.count("in use by another client"),
        1,
        "{}",
        second.lines().join("\n")
    );
    first.await_lines("stored as", 2).await;
    drop(first);
    server.shutdown().await;
}
