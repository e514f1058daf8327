//! Shared test helpers: a real server on port 0, and HTTP and WebSocket clients for it.

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use altair::{Config, RunningServer};
use clap::Parser;
use futures::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long any single awaited event may take before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// An HTTP client whose requests fail after a while instead of hanging the test run.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(3 * PATIENCE)
        .build()
        .expect("an HTTP client")
}

/// A server running in this process, and a client for it.
pub struct TestApp {
    pub addr: std::net::SocketAddr,
    pub http: reqwest::Client,
    server: RunningServer,
    flags: Vec<String>,
}

/// A server with default settings.
pub async fn spawn_app() -> TestApp {
    spawn_with(&[]).await
}

/// Tests post faster than any tap: no rate limits, unless `args` set their own.
fn unlimited_unless_set(args: &[&str]) -> &'static [&'static str] {
    if args.iter().any(|f| f.starts_with("--rate-limit")) {
        &[]
    } else {
        &["--rate-limit", "0", "--rate-limit-address", "0"]
    }
}

/// A server with extra command-line flags; in memory unless they name a `--data-dir` or a
/// `--database-url`.
pub async fn spawn_with(flags: &[&str]) -> TestApp {
    let mut argv = vec!["altair-server", "--bind", "127.0.0.1:0"];
    if !flags.contains(&"--data-dir") && !flags.contains(&"--database-url") {
        argv.push("--ephemeral");
    }
    argv.extend_from_slice(unlimited_unless_set(flags));
    argv.extend_from_slice(flags);
    let config = Config::try_parse_from(argv).expect("test flags parse");
    let server = RunningServer::start(config).await.expect("server starts");
    TestApp {
        addr: server.addr,
        http: http_client(),
        server,
        flags: flags.iter().map(|f| f.to_string()).collect(),
    }
}

/// A durable server with its data in `dir`, plus extra flags.
pub async fn spawn_durable(dir: &std::path::Path, flags: &[&str]) -> TestApp {
    let mut all = vec!["--data-dir", dir.to_str().expect("UTF-8 temp path")];
    all.extend_from_slice(flags);
    spawn_with(&all).await
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Posts a JSON body as a device would, with the JSON content type.
    pub async fn post_raw(&self, body: impl Into<reqwest::Body>) -> (StatusCode, Value) {
        read_json(self.post_as(Some("application/json"), body).await).await
    }

    /// Posts a body to `/api/beers` with this `Content-Type` (or none).
    pub async fn post_as(
        &self,
        content_type: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> reqwest::Response {
        let mut request = self.http.post(self.url("/api/beers")).body(body);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        request.send().await.expect("POST reaches the server")
    }

    /// Posts a pour that must be accepted; returns the stored pour.
    /// Taps 1 to `taps` each post `each` pours at once, from tasks of their own.
    pub async fn pour_from_taps(self: &Arc<Self>, taps: u32, each: usize) {
        pour_from_taps_on(std::slice::from_ref(self), taps, each).await;
    }

    pub async fn pour(&self, tap_id: u32, volume: f64) -> Value {
        let (status, body) = self
            .post_raw(json!({"tapId": tap_id, "volume": volume}).to_string())
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["beer"].clone()
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        let response = self
            .http
            .get(self.url(path))
            .send()
            .await
            .expect("GET reaches the server");
        read_json(response).await
    }

    /// A request with a token (or none) and a JSON body (or none): its answer.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (StatusCode, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
        let mut request = self.http.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_owned());
        }
        read_json(
            request
                .send()
                .await
                .expect("the request reaches the server"),
        )
        .await
    }

    pub async fn delete(&self, path: &str) -> StatusCode {
        self.http
            .delete(self.url(path))
            .send()
            .await
            .expect("DELETE reaches the server")
            .status()
    }

    /// Opens a WebSocket subscription and reads its hello frame.
    pub async fn subscribe(&self, query: &str) -> (Subscriber, Value) {
        let mut subscriber = self.connect(query).await;
        let hello = subscriber.next_json().await;
        assert_eq!(hello["event"], "hello", "{hello}");
        (subscriber, hello)
    }

    /// Opens a WebSocket without reading anything.
    pub async fn connect(&self, query: &str) -> Subscriber {
        let url = format!("ws://{}/sockets/beers{}", self.addr, query);
        let (ws, response) = within(tokio_tungstenite::connect_async(url))
            .await
            .expect("WebSocket handshake succeeds");
        assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
        Subscriber { ws }
    }

    /// Polls `/health` until `subscribers` equals `n`.
    pub async fn await_subscribers(&self, n: u64) {
        within(async {
            loop {
                let (_, health) = self.get("/health").await;
                if health["subscribers"] == n {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
    }

    /// Stops the server gracefully and starts it again with the same flags.
    pub async fn restart(self) -> TestApp {
        let flags = self.flags.clone();
        self.server.shutdown().await;
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        spawn_with(&flags).await
    }

    /// Posts a pour with an `Idempotency-Key`.
    pub async fn post_keyed(&self, key: &str, body: &str) -> (StatusCode, Value) {
        let response = self
            .http
            .post(self.url("/api/beers"))
            .header("content-type", "application/json")
            .header("idempotency-key", key)
            .body(body.to_owned())
            .send()
            .await
            .expect("POST reaches the server");
        read_json(response).await
    }

    /// Sends a JSON body with `method` (POST, PATCH) to `path`.
    pub async fn send_json(&self, method: &str, path: &str, body: &str) -> (StatusCode, Value) {
        let response = self
            .http
            .request(method.parse().expect("a method"), self.url(path))
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .expect("the request reaches the server");
        read_json(response).await
    }

    /// Sends a JSON body with `method` to `path` under an `Idempotency-Key`.
    pub async fn send_keyed(
        &self,
        method: &str,
        path: &str,
        key: &str,
        body: &str,
    ) -> (StatusCode, Value) {
        let response = self
            .http
            .request(method.parse().expect("a method"), self.url(path))
            .header("content-type", "application/json")
            .header("idempotency-key", key)
            .body(body.to_owned())
            .send()
            .await
            .expect("the request reaches the server");
        read_json(response).await
    }

    /// POSTs a JSON body to `path`.
    pub async fn post_json(&self, path: &str, body: &str) -> (StatusCode, Value) {
        self.send_json("POST", path, body).await
    }

    /// Re-reads the tokens file, as SIGHUP does.
    pub fn reload_tokens(&self) {
        self.server.auth.reload().expect("tokens file reloads");
    }

    /// Re-reads the tokens file; why it was refused, if it was.
    pub fn try_reload_tokens(&self) -> Result<usize, String> {
        self.server.auth.reload().map_err(|e| e.to_string())
    }

    /// Stops the server gracefully.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }

    pub fn begin_shutdown(&self) {
        self.server.begin_shutdown();
    }

    pub async fn stopped(self) {
        self.server.stopped().await;
    }
}

pub async fn read_json(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let bytes = response.bytes().await.expect("body arrives");
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {bytes:?}"))
    };
    (status, body)
}

/// Asserts an error answer: the status, and the JSON body `{"status": N, "message": ...}`.
pub fn assert_error(status: StatusCode, body: &Value, expected: u16) -> String {
    assert_eq!(status.as_u16(), expected, "{body}");
    assert_eq!(body["status"], expected, "{body}");
    let message = body["message"].as_str().expect("message is a string");
    assert!(!message.is_empty());
    message.to_owned()
}

/// Awaits `future`, failing the test if it takes longer than [`PATIENCE`].
pub async fn within<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, future)
        .await
        .expect("timed out waiting for an event")
}

/// A spawned process, killed when dropped: a test that fails leaves nothing running (and
/// nothing holding the test's output pipes open).
pub struct Process(pub std::process::Child);

impl std::ops::Deref for Process {
    type Target = std::process::Child;
    fn deref(&self) -> &std::process::Child {
        &self.0
    }
}

impl std::ops::DerefMut for Process {
    fn deref_mut(&mut self) -> &mut std::process::Child {
        &mut self.0
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Sends `signal` to `child` by system call. Never through kill(1): procps reads a
/// negative pid without `--` as -1, and as root that signals every process there is.
pub fn signal(child: &std::process::Child, signal: rustix::process::Signal) {
    rustix::process::kill_process(rustix::process::Pid::from_child(child), signal)
        .expect("the child is ours to signal");
}

/// SIGKILLs the process group that `leader` leads (spawned with `process_group(0)`).
/// Refuses group 1, which the kernel takes as every process but init.
pub fn kill_group(leader: &std::process::Child) {
    let pid = rustix::process::Pid::from_child(leader);
    assert!(!pid.is_init(), "never kill(-1)");
    let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
}

/// Starts the server binary with `args` and returns it with the address it listens on,
/// read from its log. Its log is drained in the background so it never blocks on stderr.
pub fn spawn_binary(args: &[&str]) -> (Process, String) {
    let (child, addr, _) = spawn_binary_logged(args);
    (child, addr)
}

/// [`spawn_binary`], keeping every log line.
pub fn spawn_binary_logged(args: &[&str]) -> (Process, String, Log) {
    spawn_binary_in(&std::env::current_dir().expect("a working directory"), args)
}

/// A process's log lines, collected as they come.
pub type Log = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

/// [`spawn_binary_logged`], started in the folder `cwd`.
pub fn spawn_binary_in(cwd: &std::path::Path, args: &[&str]) -> (Process, String, Log) {
    spawn_binary_with(cwd, args, &[])
}

/// [`spawn_binary_in`], with more environment variables.
pub fn spawn_binary_with(
    cwd: &std::path::Path,
    args: &[&str],
    env: &[(&str, &std::ffi::OsStr)],
) -> (Process, String, Log) {
    use std::io::{BufRead, BufReader};
    let mut child = Process(
        std::process::Command::new(env!("CARGO_BIN_EXE_altair-server"))
            .current_dir(cwd)
            .args(["--bind", "127.0.0.1:0"])
            .args(unlimited_unless_set(args))
            .args(args)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("the server binary starts"),
    );
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut lines = BufReader::new(child.stderr.take().expect("stderr is piped")).lines();
    let mut addr = None;
    for line in lines.by_ref().map_while(Result::ok) {
        let found = line
            .split("listening on ")
            .nth(1)
            .and_then(|rest| rest.split(';').next())
            .map(str::to_owned);
        log.lock().expect("log lock").push(line);
        if found.is_some() {
            addr = found;
            break;
        }
    }
    let addr = addr.expect("the server logs its address");
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            sink.lock().expect("log lock").push(line);
        }
    });
    (child, addr, log)
}

/// Taps 1 to `taps` each post `each` pours at once, from tasks of their own, the taps spread
/// over `servers`.
pub async fn pour_from_taps_on(servers: &[Arc<TestApp>], taps: u32, each: usize) {
    let posters: Vec<_> = (1..=taps)
        .map(|tap| {
            let app = servers[tap as usize % servers.len()].clone();
            tokio::spawn(async move {
                for _ in 0..each {
                    app.pour(tap, 500.0).await;
                }
            })
        })
        .collect();
    for poster in posters {
        poster.await.unwrap();
    }
}

/// The ids of a page of pours (`{"beers": [...]}`), in order.
pub fn ids_of(page: &Value) -> Vec<u64> {
    page["beers"]
        .as_array()
        .expect("a page of pours")
        .iter()
        .map(|p| p["id"].as_u64().expect("a pour id"))
        .collect()
}

/// Posts pours of these volumes for tap 1 to the server at `addr` (a binary's, say), as a
/// device does; each must be stored.
pub async fn pour_to(addr: &str, volumes: &[u32]) {
    let http = http_client();
    for volume in volumes {
        let response = http
            .post(format!("http://{addr}/api/beers"))
            .body(format!(r#"{{"tapId": 1, "volume": {volume}}}"#))
            .send()
            .await
            .expect("POST reaches the server");
        assert_eq!(response.status(), StatusCode::CREATED);
    }
}

/// A WebSocket subscriber.
pub struct Subscriber {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Subscriber {
    /// The next text frame, parsed (pings are skipped).
    pub async fn next_json(&mut self) -> Value {
        within(async {
            loop {
                match self.ws.next().await {
                    Some(Ok(Message::Text(text))) => {
                        return serde_json::from_str(&text).expect("frames are JSON");
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    other => panic!("expected a text frame, got {other:?}"),
                }
            }
        })
        .await
    }

    /// The next frame of kind `event`, skipping others (reports, say).
    pub async fn next_event(&mut self, event: &str) -> Value {
        loop {
            let frame = self.next_json().await;
            if frame["event"] == event {
                return frame;
            }
        }
    }

    /// The next frame that is not a report (reports come at their interval, whatever
    /// else happens).
    pub async fn next_change(&mut self) -> Value {
        loop {
            let frame = self.next_json().await;
            if frame["event"] != "report" {
                return frame;
            }
        }
    }

    /// The next pour event's pour.
    pub async fn next_pour(&mut self) -> Value {
        self.next_event("pour").await["beer"].clone()
    }

    /// Reads on until the server's close frame, which is returned.
    pub async fn closed(&mut self) -> CloseFrame {
        within(async {
            loop {
                match self.ws.next().await {
                    Some(Ok(Message::Close(Some(frame)))) => {
                        // Reading on sends our close reply, as a polite client does.
                        while self.ws.next().await.is_some() {}
                        return frame;
                    }
                    Some(Ok(Message::Close(None))) => panic!("close frame without a code"),
                    Some(Ok(_)) => continue,
                    other => panic!("connection ended without a close frame: {other:?}"),
                }
            }
        })
        .await
    }

    pub async fn send_text(&mut self, text: String) {
        self.ws
            .send(Message::Text(text.into()))
            .await
            .expect("send to server");
    }
}

/// A new empty folder under the system's temporary directory, unique to this test.
pub fn tempdir(name: &str) -> std::path::PathBuf {
    static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("altair-test-{}-{name}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Every sample of the exposition, by its full series name (`name{labels}`).
pub async fn scrape(app: &TestApp) -> HashMap<String, f64> {
    scrape_as(app, None).await
}

/// [`scrape`] with a bearer token.
pub async fn scrape_as(app: &TestApp, token: Option<&str>) -> HashMap<String, f64> {
    let mut request = app.http.get(app.url("/metrics"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = response.text().await.unwrap();
    let mut samples = HashMap::new();
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("not a sample: {line}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("not a number: {line}"));
        let name = series.split('{').next().unwrap();
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name: {line}"
        );
        samples.insert(series.to_owned(), value);
    }
    samples
}

/// `tests/browser`, with its pinned npm packages (playwright-core, axe-core, the Standard
/// Webhooks library) installed: by `npm ci` here, once, if Node and npm are present and
/// they are not yet. Why not, if they cannot be.
pub fn node_packages() -> Result<std::path::PathBuf, String> {
    static INSTALLED: std::sync::Mutex<Option<Result<(), String>>> = std::sync::Mutex::new(None);
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let ran = |program: &str| {
        std::process::Command::new(program)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !ran("node") {
        return Err("node is not installed (apt-get install nodejs npm)".into());
    }
    let mut installed = INSTALLED.lock().unwrap_or_else(|e| e.into_inner());
    let result = installed.get_or_insert_with(|| {
        let present = ["playwright-core", "axe-core", "standardwebhooks"]
            .iter()
            .all(|p| dir.join("node_modules").join(p).exists());
        if present {
            return Ok(());
        }
        if !ran("npm") {
            return Err("npm is not installed (apt-get install npm)".into());
        }
        let _ = writeln!(
            std::io::stderr(),
            "installing the browser tests' pinned npm packages (npm ci --prefix tests/browser)"
        );
        npm_ci(&dir)
    });
    result.clone().map(|()| dir)
}

/// `npm ci` in `dir`: the versions its package-lock.json pins.
pub fn npm_ci(dir: &std::path::Path) -> Result<(), String> {
    let output = std::process::Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .output();
    match output {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(format!(
            "npm ci in {} failed: {}",
            dir.display(),
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Err(format!("npm ci did not run: {e}")),
    }
}

/// What a test does where something it needs is missing: it fails if `var` is `required`
/// (as `.ci/run` sets it), else it is skipped, and says so once, in one line.
pub fn skip_unless_required(var: &str, what: &str, why: &str, said: &'static std::sync::Once) {
    if std::env::var(var).as_deref() == Ok("required") {
        panic!("{what}: required ({var}=required), but {why}");
    }
    said.call_once(|| {
        // Straight to the terminal: the test harness captures println!.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: {what} ({why}; set {var}=required to fail instead)"
        );
    });
}

impl TestApp {
    /// A GET with an `Accept` header (or none): its status, content type and body text.
    pub async fn get_text(&self, path: &str, accept: Option<&str>) -> (StatusCode, String, String) {
        let mut request = self.http.get(self.url(path));
        if let Some(accept) = accept {
            request = request.header("accept", accept);
        }
        let response = request.send().await.expect("GET reaches the server");
        let status = response.status();
        let kind = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let text = response.text().await.expect("a body");
        (status, kind, text)
    }
}

/// CSV read back by Python's `csv` module (as a spreadsheet would), rows of cells; `None`
/// (the test skipped, or failed where `ALTAIR_TEST_PYTHON=required`) without Python.
pub fn parse_csv(text: &str) -> Option<Vec<Vec<String>>> {
    static SAID: std::sync::Once = std::sync::Once::new();
    let python = std::env::var("ALTAIR_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = "import csv, io, json, sys\n\
        rows = list(csv.reader(io.TextIOWrapper(sys.stdin.buffer, encoding='utf-8', newline=''), strict=True))\n\
        json.dump(rows, sys.stdout)";
    let child = std::process::Command::new(&python)
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) => {
            let why = format!("{python} did not start: {e}");
            skip_unless_required("ALTAIR_TEST_PYTHON", "CSV read back by Python", &why, &SAID);
            return None;
        }
    };
    child
        .stdin
        .take()
        .expect("a stdin pipe")
        .write_all(text.as_bytes())
        .expect("Python reads the CSV");
    let out = child.wait_with_output().expect("Python ends");
    assert!(
        out.status.success(),
        "Python's csv module refused the CSV: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_slice(&out.stdout).expect("rows as JSON"))
}
