//! `bench history` and `bench export`: the history of a long-running bar, and every pour
//! it ever stored streamed out.

use std::time::Instant;

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::connection::{Connection, fetch, get_request};
use super::measure::{Latency, auth_header, cpu_time, histogram, host_port, tool_cpu};
use crate::config::Settings;

/// Results of `bench history`.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryResult {
    pub scenario: &'static str,
    pub stored: u64,
    pub days: u32,
    pub taps: u32,
    pub requests: usize,
    /// A year of days by beverage.
    pub by_beverage: Latency,
    /// A year of days tap by tap.
    pub by_tap: Latency,
    /// A year by month, by glass.
    pub by_month: Latency,
    pub tool_cpu_percent: Option<f64>,
}

/// Stored pours, from the first page's total.
async fn stored(settings: &Settings, conn: &mut Connection) -> Result<u64, String> {
    let (_, body) = fetch(conn, &get_request(settings, "/api/beers?page_size=1")).await?;
    Ok(serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["total"].as_u64())
        .unwrap_or(0))
}

/// A 1,000 l keg (the largest) on each of `taps` taps (8 beverages between them), then
/// pours up to `pours` (past 1,000 l a tap's pours carry the empty-keg flag),
/// spread evenly over the last `days` days on every tap.
pub(super) async fn fill(
    settings: &Settings,
    pours: u64,
    taps: u32,
    days: u32,
) -> Result<u64, String> {
    let addr = host_port(settings);
    let mut conn = Connection::open(&addr).await.map_err(|e| e.to_string())?;
    let stored = stored(settings, &mut conn).await?;
    if stored == 0 {
        for tap in 1..=taps {
            let body = format!(
                r#"{{"tapId": {tap}, "beverage": "Lager {}", "sizeMl": 1000000}}"#,
                tap % 8
            );
            let request = format!(
                "POST /api/kegs HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n{}Content-Length: {}\r\n\r\n{body}",
                auth_header(settings),
                body.len()
            );
            let (status, answer) = fetch(&mut conn, request.as_bytes()).await?;
            if status != 201 {
                return Err(format!(
                    "POST /api/kegs answered {status}: {}",
                    String::from_utf8_lossy(&answer)
                ));
            }
        }
    }
    if stored >= pours {
        return Ok(stored);
    }
    // Every tap pours in turn at an even pace, the latest a minute ago.
    let step_ms = (i64::from(days) * 86_400_000) / pours as i64;
    let start = chrono::Utc::now() - chrono::Duration::days(i64::from(days));
    let connections = 32u64;
    let mut fillers = Vec::new();
    for c in 0..connections {
        let (addr, settings) = (addr.clone(), settings.clone());
        fillers.push(tokio::spawn(async move {
            let mut conn = Connection::open(&addr).await.map_err(|e| e.to_string())?;
            let mut i = stored + c;
            while i < pours {
                let tap = i % u64::from(taps) + 1;
                let at = start + chrono::Duration::milliseconds(i as i64 * step_ms);
                let volume = [500, 250, 500, 1000][(i % 4) as usize];
                let body = format!(
                    r#"{{"tapId": {tap}, "volume": {volume}, "timestamp": "{}"}}"#,
                    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                );
                let request = format!(
                    "POST /api/beers HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n{}Content-Length: {}\r\n\r\n{body}",
                    auth_header(&settings),
                    body.len()
                );
                let (status, answer) = fetch(&mut conn, request.as_bytes()).await?;
                if status != 201 {
                    return Err(format!(
                        "fill: POST answered {status}: {}",
                        String::from_utf8_lossy(&answer)
                    ));
                }
                i += connections;
            }
            Ok::<(), String>(())
        }));
    }
    for f in fillers {
        f.await.map_err(|e| e.to_string())??;
    }
    Ok(pours)
}

/// `bench history`: fills the store, then times a year of history three ways.
pub async fn history(
    settings: &Settings,
    pours: u64,
    taps: u32,
    days: u32,
    requests: usize,
) -> Result<HistoryResult, String> {
    let stored = fill(settings, pours, taps, days).await?;
    let mut conn = Connection::open(&host_port(settings))
        .await
        .map_err(|e| e.to_string())?;
    let today = chrono::Utc::now().date_naive();
    let from = today - chrono::Duration::days(364);
    let cpu = cpu_time();
    let started = Instant::now();
    let mut timed = [histogram(), histogram(), histogram()];
    for _ in 0..requests {
        for (n, (bucket, by)) in [("day", "beverage"), ("day", "tap"), ("month", "glass")]
            .into_iter()
            .enumerate()
        {
            let target = format!("/api/history?from={from}&to={today}&bucket={bucket}&by={by}");
            let sent = Instant::now();
            let (status, body) = fetch(&mut conn, &get_request(settings, &target)).await?;
            if status != 200 {
                return Err(format!(
                    "GET {target} answered {status}: {}",
                    String::from_utf8_lossy(&body)
                ));
            }
            timed[n].saturating_record(sent.elapsed().as_micros() as u64);
        }
    }
    Ok(HistoryResult {
        scenario: "history",
        stored,
        days,
        taps,
        requests,
        by_beverage: Latency::of(&timed[0]),
        by_tap: Latency::of(&timed[1]),
        by_month: Latency::of(&timed[2]),
        tool_cpu_percent: tool_cpu(cpu, started.elapsed()),
    })
}

/// Results of `bench export`.
#[derive(Debug, Clone, Serialize)]
pub struct ExportResult {
    pub scenario: &'static str,
    pub format: String,
    /// Rows (pours) received, the CSV header not counted.
    pub rows: u64,
    pub bytes: u64,
    pub seconds: f64,
    pub rows_per_second: f64,
    /// Time to the first byte of the body.
    pub first_byte_ms: f64,
    pub tool_cpu_percent: Option<f64>,
}

/// `bench export`: `GET /api/beers/export` once, read as fast as it comes, its rows
/// counted by line. HTTP/1.0, so that the body comes unframed, ended by the close.
pub async fn export(settings: &Settings, format: &str) -> Result<ExportResult, String> {
    let addr = host_port(settings);
    let mut stream = TcpStream::connect(&addr).await.map_err(|e| e.to_string())?;
    let request = format!(
        "GET /api/beers/export?format={format} HTTP/1.0\r\nHost: {addr}\r\n{}\r\n",
        auth_header(settings)
    );
    let cpu = cpu_time();
    let started = Instant::now();
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut head: Vec<u8> = Vec::new();
    let mut in_body = false;
    let (mut lines, mut bytes, mut first_byte) = (0u64, 0u64, None);
    loop {
        let n = stream.read(&mut buf).await.map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        let mut body = &buf[..n];
        if !in_body {
            let seen = head.len();
            head.extend_from_slice(body);
            let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            let status = String::from_utf8_lossy(&head[..end]).into_owned();
            if !status.contains(" 200 ") {
                return Err(format!("GET /api/beers/export answered: {status}"));
            }
            in_body = true;
            body = &buf[end + 4 - seen..n];
        }
        if !body.is_empty() {
            first_byte.get_or_insert_with(|| started.elapsed());
        }
        bytes += body.len() as u64;
        lines += body.iter().filter(|&&b| b == b'\n').count() as u64;
    }
    let seconds = started.elapsed().as_secs_f64();
    // The CSV's header row is not a pour.
    let rows = if format == "csv" {
        lines.saturating_sub(1)
    } else {
        lines
    };
    Ok(ExportResult {
        scenario: "export",
        format: format.to_owned(),
        rows,
        bytes,
        seconds,
        rows_per_second: (rows as f64 / seconds).round(),
        first_byte_ms: first_byte.map_or(0.0, |d| d.as_secs_f64() * 1000.0),
        tool_cpu_percent: tool_cpu(cpu, started.elapsed()),
    })
}
