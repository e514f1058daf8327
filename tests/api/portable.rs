//! `altair-server export` and `import`: the whole log out of a stopped journal and into an
//! empty one, run as the binary an operator runs; what a server on the copy answers; and
//! every stream the import must refuse, with the line, keeping nothing.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::helpers::{Process, TestApp, signal, spawn_durable, tempdir, within};

fn server(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_altair-server"))
        .args(args)
        .output()
        .expect("the server binary runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 temp path")
}

/// `export --output` from the journal in `dir`: the stream.
fn export(dir: &Path) -> String {
    export_with(dir, &[])
}

/// [`export`] with more flags.
fn export_with(dir: &Path, flags: &[&str]) -> String {
    let file = dir.with_extension("ndjson");
    let mut args = vec!["--data-dir", path(dir), "export", "--output", path(&file)];
    args.extend_from_slice(flags);
    let output = server(&args);
    assert!(
        output.status.success(),
        "export failed: {}",
        stderr(&output)
    );
    assert!(
        stderr(&output).contains("sha256 "),
        "export says its checksum: {}",
        stderr(&output)
    );
    std::fs::read_to_string(&file).expect("the export is written")
}

/// `import` of `stream` (on standard input) into `dir`.
fn import(dir: &Path, stream: &str) -> Output {
    import_into(&["--data-dir", path(dir)], stream)
}

/// `import` of `stream` (on standard input) into the store that `store` names.
fn import_into(store: &[&str], stream: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_altair-server"))
        .args(store)
        .arg("import")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the server binary runs");
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let bytes = stream.as_bytes().to_owned();
    // Written from a thread: a refusal closes standard input early.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&bytes);
    });
    let output = child.wait_with_output().expect("import ends");
    let _ = writer.join();
    output
}

/// What a user sees: every list, the report and the history, without the moment of
/// the answer itself.
async fn answers(app: &TestApp) -> Vec<(String, Value)> {
    let mut seen = Vec::new();
    for path in [
        "/api/beers?page_size=1000",
        "/api/beers?venue=dock&page_size=1000",
        "/api/beers?flag=emptyKeg&page_size=1000",
        "/api/kegs",
        "/api/kegs?status=finished",
        "/api/taps",
        "/api/alerts?page_size=1000",
        "/api/venues",
        "/api/webhooks",
        "/api/report",
        "/api/report?venue=dock",
        "/api/history?by=tap",
        "/api/history?by=glass&bucket=month",
        "/api/variance?bucket=hour",
        "/api/variance?by=tap",
        "/api/sales/items",
    ] {
        let (status, mut body) = app.get(path).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        strip(&mut body);
        seen.push((path.to_owned(), body));
    }
    // The events so far, by number: a subscriber resumes with `eventsSince` on the copy.
    let (_, hello) = app.subscribe("").await;
    seen.push((
        "hello: lastId, lastSeq".into(),
        serde_json::json!([hello["lastId"], hello["lastSeq"]]),
    ));
    seen
}

/// Drops what depends on the moment a document was made rather than on the log (checked:
/// without this, only `generatedAt` and `forecastEmptyAt` differed; the rest moves when a
/// minute turns between the two answers).
fn strip(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for volatile in [
                "generatedAt",
                "forecastEmptyAt",
                "paceMlPerHour",
                "poursPerMinute",
                "poursLastMinute",
                "poursLastHour",
                "localTime",
                "open",
            ] {
                map.remove(volatile);
            }
            map.values_mut().for_each(strip);
        }
        Value::Array(items) => items.iter_mut().for_each(strip),
        _ => {}
    }
}

fn journal_len(dir: &Path) -> u64 {
    std::fs::metadata(dir.join("journal")).map_or(0, |m| m.len())
}

/// A bar's log with everything in it: two venues, kegs, keyed pours, deletions enough for
/// the journal to compact (its records of what it dropped), alerts and an acknowledgement,
/// a finished keg, and records after the compaction.
async fn a_bar(dir: &Path) -> (Vec<(String, Value)>, Value) {
    let app = spawn_durable(dir, &["--compact-min-bytes", "1"]).await;
    let (status, _) = app
        .post_json(
            "/api/venues",
            r#"{"id": "dock", "name": "Dock Street", "timezone": "America/New_York"}"#,
        )
        .await;
    assert_eq!(status, 201);
    let (status, hook) = app
        .post_json(
            "/api/webhooks",
            r#"{"url": "http://127.0.0.1:9/altair", "events": ["keg.tapped"], "description": "Office"}"#,
        )
        .await;
    assert_eq!(status, 201, "{hook}");
    for body in [
        r#"{"tapId": 1, "beverage": "Helles", "sizeMl": 10000}"#,
        r#"{"venue": "dock", "tapId": 2, "beverage": "Stout", "sizeMl": 30000}"#,
    ] {
        assert_eq!(app.post_json("/api/kegs", body).await.0, 201);
    }
    let mut ids = Vec::new();
    for n in 0..40 {
        let body = format!(r#"{{"tapId": 1, "volume": {}}}"#, 300 + n * 10);
        let (status, pour) = if n % 8 == 0 {
            app.post_keyed(&format!("key-{n}"), &body).await
        } else {
            app.post_json("/api/beers", &body).await
        };
        assert_eq!(status, 201, "{pour}");
        ids.push(pour["beer"]["id"].as_u64().unwrap());
    }
    for id in &ids[..30] {
        assert_eq!(app.delete(&format!("/api/beers/{id}")).await, 204);
    }
    // More batches after the deletions: the journal compacts (a shutdown waits for it).
    for n in 0..5 {
        let body = format!(r#"{{"tapId": 2, "volume": {}}}"#, 400 + n);
        assert_eq!(app.post_json("/api/venues/dock/beers", &body).await.0, 201);
    }
    app.shutdown().await;
    // And goes on, never to compact again here: what follows stays as it was logged.
    let app = spawn_durable(dir, &[]).await;
    for n in 5..10 {
        let body = format!(r#"{{"tapId": 2, "volume": {}}}"#, 400 + n);
        assert_eq!(app.post_json("/api/venues/dock/beers", &body).await.0, 201);
    }
    let (_, kept) = app
        .post_keyed("key-kept", r#"{"tapId": 1, "volume": 500}"#)
        .await;
    // The till's sales, one line in each venue, and what an item pours.
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let sales =
        format!("time,item,quantity,venue\n{now},Helles Pint,3,\n{now},Stout Pint,2,dock\n");
    let (status, imported) = crate::sales::import(&app, "generic", "main", &sales).await;
    assert_eq!(
        (status.as_u16(), &imported["imported"]),
        (200, &2.into()),
        "{imported}"
    );
    let mapping = r#"{"beverage": "Helles", "ml": 568}"#;
    assert_eq!(
        app.send_json("PUT", "/api/sales/items/Helles%20Pint", mapping)
            .await
            .0,
        200
    );
    let (status, alerts) = app.get("/api/alerts?state=open").await;
    assert_eq!(status, 200);
    let alert = alerts["alerts"][0]["id"].as_u64().expect("an open alert");
    assert_eq!(
        app.post_json(&format!("/api/alerts/{alert}/ack"), "")
            .await
            .0,
        200
    );
    let (_, kegs) = app.get("/api/kegs?venue=dock").await;
    let keg = kegs["kegs"][0]["id"].as_u64().unwrap();
    let (status, body) = app
        .post_json(&format!("/api/kegs/{keg}/finish"), r#"{"leftMl": 20000}"#)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(app.delete(&format!("/api/beers/{}", ids[35])).await, 204);
    let seen = answers(&app).await;
    app.shutdown().await;
    (seen, kept)
}

#[tokio::test]
async fn a_journal_moves_through_an_export_into_another_and_answers_the_same() {
    let (from, to) = (tempdir("export-from"), tempdir("export-to"));
    let (before, kept) = a_bar(&from).await;
    let stream = export(&from);
    let header: Value = serde_json::from_str(stream.lines().next().unwrap()).unwrap();
    assert_eq!(header["t"], "header");
    assert_eq!(header["version"], 1);
    assert_eq!(header["source"], "journal");
    assert_eq!(header["lastId"], 51);
    for kind in [
        "pour",
        "keg",
        "delete",
        "sequence",
        "marks",
        "alerts",
        "deletedKey",
    ] {
        assert!(
            header["counts"][kind].as_u64().is_some_and(|n| n > 0),
            "the log holds {kind} records (a compacted journal and what followed): {header}"
        );
    }

    let output = import(&to, &stream);
    assert!(output.status.success(), "import: {}", stderr(&output));
    assert!(stderr(&output).contains("imported"), "{}", stderr(&output));
    let copy = spawn_durable(&to, &[]).await;
    let mut after = answers(&copy).await;
    // Exported without its secret, the webhook comes back disabled, saying why.
    let hooks = &mut after
        .iter_mut()
        .find(|(p, _)| p == "/api/webhooks")
        .unwrap()
        .1;
    let hook = &mut hooks["webhooks"][0];
    assert_eq!(hook["enabled"], false);
    assert!(
        hook["disabledReason"]
            .as_str()
            .unwrap()
            .contains("imported without its secret"),
        "{hook}"
    );
    hook["enabled"] = true.into();
    hook["disabledReason"] = Value::Null;
    // And with a new secret, which nobody knows.
    let before_hook = &before.iter().find(|(p, _)| p == "/api/webhooks").unwrap().1;
    assert_ne!(
        hook["secretPrefix"],
        before_hook["webhooks"][0]["secretPrefix"]
    );
    hook["secretPrefix"] = before_hook["webhooks"][0]["secretPrefix"].clone();
    for ((path, a), (_, b)) in before.iter().zip(&after) {
        assert_eq!(a, b, "GET {path} answers the same on the copy");
    }
    // A device's retry after the move is still the pour it made.
    let (status, again) = copy
        .post_keyed("key-kept", r#"{"tapId": 1, "volume": 500}"#)
        .await;
    assert_eq!(status, 200);
    assert_eq!(again["beer"], kept["beer"]);
    // Ids go on from the source's.
    assert_eq!(copy.pour(3, 500.0).await["id"], 52);
    copy.shutdown().await;

    // The copy's export is the source's record for record, plus that pour.
    let again = export(&to);
    // (The webhook is the one line that differs: disabled, above.)
    let lines = |s: &str| {
        s.lines()
            .skip(1)
            .filter(|l| !l.starts_with(r#"{"t":"webhook""#))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let (first, second) = (lines(&stream), lines(&again));
    assert_eq!(
        first[..first.len() - 1],
        second[..first.len() - 1],
        "the same records in the same order"
    );
}

#[tokio::test]
async fn an_export_is_the_same_checksum_from_its_copy() {
    let (from, to) = (tempdir("checksum-from"), tempdir("checksum-to"));
    a_bar(&from).await;
    let stream = export_with(&from, &["--include-secrets"]);
    assert!(import(&to, &stream).status.success());
    let copy = export_with(&to, &["--include-secrets"]);
    assert_eq!(
        stream.lines().last(),
        copy.lines().last(),
        "the same trailer"
    );
}

/// `stream` with line `n` (from 1) changed by `f`.
fn with_line(stream: &str, n: usize, f: impl Fn(&str) -> String) -> String {
    let mut lines: Vec<String> = stream.lines().map(str::to_owned).collect();
    lines[n - 1] = f(&lines[n - 1]);
    lines.join("\n") + "\n"
}

fn refused(dir: &Path, stream: &str, expected: &str) {
    let output = import(dir, stream);
    let said = stderr(&output);
    assert!(!output.status.success(), "refused: {said}");
    assert!(said.contains(expected), "says {expected:?}: {said}");
    assert!(said.contains("nothing kept"), "{said}");
    assert!(journal_len(dir) <= 8, "the target stays empty: {said}");
    assert!(
        !dir.join("journal.import").exists(),
        "nothing is left behind"
    );
}

#[tokio::test]
async fn import_refuses_a_changed_truncated_reordered_or_newer_stream_naming_the_line() {
    let (from, to) = (tempdir("refuse-from"), tempdir("refuse-to"));
    a_bar(&from).await;
    let stream = export(&from);
    let total = stream.lines().count();
    let pour_line = stream
        .lines()
        .position(|l| l.starts_with(r#"{"t":"pour""#))
        .unwrap()
        + 1;

    // A volume changed by hand: only the checksum can tell, at the trailer.
    let changed = with_line(&stream, pour_line, |l| {
        assert!(l.contains(r#""volume":"#), "{l}");
        l.replacen(r#""volume":"#, r#""volume":1"#, 1)
    });
    refused(
        &to,
        &changed,
        &format!("line {total}: the checksum does not match"),
    );
    // The trailer lost, or the last line cut short.
    let without_trailer: String = stream
        .lines()
        .take(total - 1)
        .map(|l| format!("{l}\n"))
        .collect();
    refused(
        &to,
        &without_trailer,
        &format!("line {}: the stream ends before its trailer", total - 1),
    );
    refused(
        &to,
        &stream[..stream.len() - 10],
        &format!("line {total}: the stream ends inside a line"),
    );
    // Two pours swapped.
    let mut lines: Vec<&str> = stream.lines().collect();
    lines.swap(pour_line - 1, pour_line);
    let swapped = lines.join("\n") + "\n";
    refused(&to, &swapped, &format!("line {}: pour", pour_line + 1));
    // A line that is no record.
    refused(
        &to,
        &with_line(&stream, 3, |_| "{\"t\":\"pour\"".into()),
        "line 3: not a record",
    );
    // A newer format, or not an export at all.
    refused(
        &to,
        &with_line(&stream, 1, |l| {
            l.replace(r#""version":1"#, r#""version":2"#)
        }),
        "line 1: format version 2 is newer",
    );
    refused(&to, "id,venue,tapId\n", "line 1: not an Altair export");
    // Another default venue would move the source's pours to a venue the target lacks.
    let output = Command::new(env!("CARGO_BIN_EXE_altair-server"))
        .args([
            "--data-dir",
            path(&to),
            "--default-venue",
            "harbour",
            "import",
            "--input",
        ])
        .arg(from.with_extension("ndjson"))
        .output()
        .unwrap();
    assert!(
        stderr(&output).contains("line 1: exported with --default-venue main"),
        "{}",
        stderr(&output)
    );

    // And into a store that holds something, never.
    let output = import(&from, &stream);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("import only into an empty store"),
        "{}",
        stderr(&output)
    );
    // The untouched stream still goes in.
    assert!(import(&to, &stream).status.success());
}

/// A stream of `n` pours made with the library's own writer.
fn big_stream(n: u64) -> String {
    use altair::store::portable::{Counts, Header, Line, VERSION, Writer};
    let header = Header {
        format: "altair-log".into(),
        version: VERSION,
        source: "journal".into(),
        exported_at: altair::pour::Timestamp::now(),
        default_venue: "main".into(),
        last_id: n,
        counts: Counts::from([("pour".to_owned(), n)]),
    };
    let mut writer = Writer::start(Vec::new(), &header).unwrap();
    let base = altair::pour::Timestamp::now().millis() - 86_400_000;
    for id in 1..=n {
        let pour: altair::pour::Pour = serde_json::from_value(serde_json::json!({
            "id": id, "venue": "main", "tapId": id % 12 + 1, "volume": 500.0, "type": "pint",
            "timestamp": altair::pour::Timestamp::from_millis(base + id as i64).to_string(),
            "flags": [],
        }))
        .unwrap();
        writer.record(&Line::Pour { pour, key: None }).unwrap();
    }
    String::from_utf8(writer.finish().unwrap().0).unwrap()
}

#[tokio::test]
async fn an_import_killed_midway_leaves_an_empty_store_and_the_next_import_completes() {
    let dir = tempdir("import-killed");
    let stream = big_stream(100_000);
    let mut child = Process(
        Command::new(env!("CARGO_BIN_EXE_altair-server"))
            .args(["--data-dir", path(&dir), "import"])
            .stdin(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(&stream.as_bytes()[..stream.len() / 2])
        .unwrap();
    // Killed while it writes: its file of imported frames has grown.
    let importing: PathBuf = dir.join("journal.import");
    within(async {
        while std::fs::metadata(&importing).map_or(0, |m| m.len()) == 0 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    })
    .await;
    signal(&child, rustix::process::Signal::KILL);
    let _ = child.wait();
    drop(stdin);
    assert!(journal_len(&dir) <= 8, "the journal itself is still empty");

    // A server there starts empty (and clears what the import left).
    let app = spawn_durable(&dir, &[]).await;
    assert_eq!(app.get("/api/beers?page_size=1").await.1["total"], 0);
    app.shutdown().await;
    assert!(!importing.exists());
    // The next import completes: every pour, the ids as they were.
    let output = import(&dir, &stream);
    assert!(output.status.success(), "{}", stderr(&output));
    let app = spawn_durable(&dir, &[]).await;
    let (_, page) = app.get("/api/beers?page_size=1").await;
    assert_eq!(page["total"], 100_000);
    assert_eq!(app.get("/api/beers/100000").await.1["beer"]["tapId"], 5);
    app.shutdown().await;
}

/// `import` of `stream` into the database at `url`.
fn import_to_database(url: &str, stream: &str) -> Output {
    import_into(&["--database-url", url], stream)
}

#[tokio::test]
async fn a_journal_moves_to_postgresql_and_back_with_the_same_checksum_and_answers() {
    let Some(pg) = crate::postgres::Postgres::start() else {
        return;
    };
    let (from, back) = (tempdir("to-pg-from"), tempdir("to-pg-back"));
    let (before, kept) = a_bar(&from).await;
    // With the webhooks' secrets: they move as they were, enabled.
    let stream = export_with(&from, &["--include-secrets"]);
    assert!(
        stream
            .lines()
            .nth(1)
            .unwrap()
            .contains(r#""secret":"whsec_"#)
    );

    let output = import_to_database(&pg.url(), &stream);
    assert!(output.status.success(), "import: {}", stderr(&output));
    assert!(
        stderr(&output).contains("imported into the database"),
        "{}",
        stderr(&output)
    );
    // Into a database that holds something, never.
    let again = import_to_database(&pg.url(), &stream);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("import only into an empty store"),
        "{}",
        stderr(&again)
    );

    let url = pg.url();
    let server = crate::helpers::spawn_with(&["--database-url", &url]).await;
    let after = answers(&server).await;
    for ((path, a), (_, b)) in before.iter().zip(&after) {
        assert_eq!(a, b, "GET {path} answers the same on PostgreSQL");
    }
    let (status, retried) = server
        .post_keyed("key-kept", r#"{"tapId": 1, "volume": 500}"#)
        .await;
    assert_eq!(status, 200, "{retried}");
    assert_eq!(retried["beer"], kept["beer"]);
    server.shutdown().await;

    // PostgreSQL's export is the journal's, record for record and checksum.
    let out = from.with_extension("pg.ndjson");
    let output = server_export_database(&url, &out);
    assert!(output.status.success(), "export: {}", stderr(&output));
    let from_pg = std::fs::read_to_string(&out).unwrap();
    // But for how far the webhook's messages were made: the server on PostgreSQL caught
    // up with the last events, which the source had stopped before it made into messages.
    let records = |s: &str| {
        s.lines()
            .skip(1)
            .map(|l| {
                let mut line: Value = serde_json::from_str(l).unwrap();
                if line["t"] == "webhook" {
                    line["hook"]["cursor"] = Value::Null;
                }
                if line["t"] == "trailer" {
                    line["sha256"] = Value::Null;
                }
                line
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(records(&stream), records(&from_pg));
    let header: Value = serde_json::from_str(from_pg.lines().next().unwrap()).unwrap();
    assert_eq!(header["source"], "postgres");
    // And back into a journal: the same again.
    assert!(import(&back, &from_pg).status.success());
    assert_eq!(
        records(&export_with(&back, &["--include-secrets"])),
        records(&stream)
    );
}

fn server_export_database(url: &str, out: &Path) -> Output {
    server(&[
        "--database-url",
        url,
        "export",
        "--output",
        path(out),
        "--include-secrets",
    ])
}

#[tokio::test]
async fn a_database_import_killed_midway_commits_nothing_and_the_next_completes() {
    let Some(pg) = crate::postgres::Postgres::start() else {
        return;
    };
    let stream = big_stream(100_000);
    let mut child = Process(
        Command::new(env!("CARGO_BIN_EXE_altair-server"))
            .args(["--database-url", &pg.url(), "import"])
            .stdin(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(&stream.as_bytes()[..stream.len() / 2])
        .unwrap();
    // Killed inside its transaction: pours are written, not committed.
    let client = pg.client().await;
    within(async {
        loop {
            let writing: i64 = client
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity
                     WHERE state = 'idle in transaction' AND pid <> pg_backend_pid()",
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            if writing > 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    })
    .await;
    signal(&child, rustix::process::Signal::KILL);
    let _ = child.wait();
    drop(stdin);
    let output = import_to_database(&pg.url(), &stream);
    assert!(output.status.success(), "{}", stderr(&output));
    let url = pg.url();
    let server = crate::helpers::spawn_with(&["--database-url", &url]).await;
    let (_, page) = server.get("/api/beers?page_size=1").await;
    assert_eq!(page["total"], 100_000);
    assert_eq!(server.pour(2, 500.0).await["id"], 100_001);
    server.shutdown().await;
}

/// The README's backup block, each command run by `sh` as written, in a folder where a
/// server kept a journal in `data`.
#[tokio::test]
async fn the_readme_backup_block_runs_as_written() {
    let readme = include_str!("../../README.md");
    let block = readme
        .split("<!-- backup-check -->\n```sh\n")
        .nth(1)
        .and_then(|rest| rest.split("\n```").next())
        .expect("the README has the backup block");
    let cwd = tempdir("readme-backup");
    let (before, _) = a_bar(&cwd.join("data")).await;
    let bin = Path::new(env!("CARGO_BIN_EXE_altair-server"))
        .parent()
        .unwrap()
        .to_owned();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for command in block
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let output = Command::new("sh")
            .args(["-c", command])
            .current_dir(&cwd)
            .env("PATH", &path)
            .output()
            .unwrap();
        assert!(output.status.success(), "{command}: {}", stderr(&output));
    }
    let restored = spawn_durable(&cwd.join("restored"), &[]).await;
    let after = answers(&restored).await;
    assert_eq!(
        before, after,
        "the restored store answers as the backed-up one did"
    );
    restored.shutdown().await;
}

/// `GET /api/admin/export` while pours keep arriving: every pour up to where the snapshot
/// was taken, once and in order, none after; and it imports into an empty journal.
async fn a_running_server_exports_a_consistent_snapshot(app: TestApp) {
    let app = std::sync::Arc::new(app);
    for n in 0..300 {
        app.pour(n % 5 + 1, 500.0).await;
    }
    let stop = tokio_util::sync::CancellationToken::new();
    let pourer = {
        let (app, stop) = (app.clone(), stop.clone());
        tokio::spawn(async move {
            let mut n = 0u32;
            while !stop.is_cancelled() {
                app.pour(n % 4 + 6, 250.0).await;
                n += 1;
            }
            n
        })
    };
    // Some pours in flight before and during the export.
    while app.get("/api/beers?page_size=1").await.1["total"]
        .as_u64()
        .unwrap()
        < 320
    {
        tokio::task::yield_now().await;
    }
    let response = app
        .http
        .get(app.url("/api/admin/export"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    let stream = response.text().await.unwrap();
    stop.cancel();
    let poured_meanwhile = pourer.await.unwrap();
    let lines: Vec<Value> = stream
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["t"], "header");
    assert_eq!(lines[0]["source"], "server");
    assert_eq!(lines.last().unwrap()["t"], "trailer");
    let ids: Vec<u64> = lines
        .iter()
        .filter(|l| l["t"] == "pour")
        .map(|l| l["pour"]["id"].as_u64().unwrap())
        .collect();
    let last = *ids.last().unwrap();
    assert!(last >= 320, "the pours stored before it began are in it");
    assert_eq!(
        ids,
        (1..=last).collect::<Vec<_>>(),
        "each pour up to the snapshot once, in order"
    );
    assert_eq!(lines[0]["lastId"], last, "and none after it");
    assert!(poured_meanwhile > 0);
    let copy = tempdir("admin-export-copy");
    let output = import(&copy, &stream);
    assert!(output.status.success(), "{}", stderr(&output));
    let app = std::sync::Arc::try_unwrap(app).ok().unwrap();
    app.shutdown().await;
    let copy = spawn_durable(&copy, &[]).await;
    assert_eq!(
        copy.get("/api/beers?page_size=1").await.1["total"],
        last,
        "the copy holds the snapshot's pours"
    );
    copy.shutdown().await;
}

#[tokio::test]
async fn a_running_journal_server_exports_a_consistent_snapshot_under_ingest() {
    let dir = tempdir("admin-export-journal");
    a_running_server_exports_a_consistent_snapshot(spawn_durable(&dir, &[]).await).await;
}

#[tokio::test]
async fn a_running_postgresql_server_exports_a_consistent_snapshot_under_ingest() {
    let Some(pg) = crate::postgres::Postgres::start() else {
        return;
    };
    let url = pg.url();
    a_running_server_exports_a_consistent_snapshot(
        crate::helpers::spawn_with(&["--database-url", &url]).await,
    )
    .await;
}
