//! The load tool end to end, briefly: it runs, its JSON line parses, nothing is lost.
//! (Speed is measured by scripts/bench.sh, never asserted in a test.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use altair::{Config, RunningServer};
use clap::Parser;
use serde_json::Value;

fn bench(server: std::net::SocketAddr, args: &[&str]) -> Value {
    let output = Command::new(env!("CARGO_BIN_EXE_altair-client"))
        .arg("--server")
        .arg(format!("http://{server}"))
        .arg("bench")
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "a summary and a JSON line: {stdout}");
    serde_json::from_str(lines[1]).unwrap()
}

#[tokio::test]
async fn ingest_fanout_and_query_run_end_to_end() {
    let argv = [
        "altair-server",
        "--bind",
        "127.0.0.1:0",
        "--ephemeral",
        "--rate-limit",
        "0",
        "--rate-limit-address",
        "0",
    ];
    let server = RunningServer::start(Config::try_parse_from(argv).unwrap())
        .await
        .unwrap();
    let addr = server.addr;

    let ingest =
        tokio::task::spawn_blocking(move || bench(addr, &["ingest", "-c", "2", "-d", "0.5"]))
            .await
            .unwrap();
    assert_eq!(ingest["scenario"], "ingest");
    assert!(ingest["pours"].as_u64().unwrap() > 0);
    assert_eq!(ingest["errors"], 0);
    assert!(ingest["latency"]["p99_ms"].as_f64().unwrap() > 0.0);

    let fanout = tokio::task::spawn_blocking(move || {
        bench(addr, &["fanout", "-s", "5", "-r", "40", "-d", "0.5"])
    })
    .await
    .unwrap();
    assert_eq!(fanout["pours_posted"], 20);
    assert_eq!(fanout["deliveries"], 100, "5 subscribers x 20 pours");
    assert_eq!(
        (
            &fanout["lost"],
            &fanout["duplicated"],
            &fanout["out_of_order"]
        ),
        (&0.into(), &0.into(), &0.into())
    );

    let query =
        tokio::task::spawn_blocking(move || bench(addr, &["query", "-n", "300", "-q", "20"]))
            .await
            .unwrap();
    assert!(query["stored"].as_u64().unwrap() >= 300);
    assert!(query["cursor"]["p50_ms"].as_f64().unwrap() > 0.0);
    server.shutdown().await;
}
