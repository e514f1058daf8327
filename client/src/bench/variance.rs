//! `bench variance`: poured versus sold for a bar with a long history. Fills the store as
//! `bench history` does (a keg of one of 8 beverages on each tap), imports as many sold
//! lines spread over the same days through `POST /api/sales` (files of 100,000 lines),
//! maps the 8 items, then times a year of variance by hour and by day.

use std::time::Instant;

use serde::Serialize;

use super::connection::{Connection, fetch, get_request};
use super::measure::{Latency, auth_header, cpu_time, histogram, host_port, tool_cpu};
use crate::config::Settings;

/// Lines in one sales file.
const FILE_LINES: u64 = 100_000;

/// Results of `bench variance`.
#[derive(Debug, Clone, Serialize)]
pub struct VarianceResult {
    pub scenario: &'static str,
    pub stored: u64,
    /// Sold lines imported now (0 when the store had them).
    pub imported: u64,
    pub import_seconds: f64,
    pub import_lines_per_second: f64,
    pub requests: usize,
    /// A year of hours by beverage: latency and the answer's size.
    pub by_hour: Latency,
    pub by_hour_bytes: usize,
    /// A year of days by beverage.
    pub by_day: Latency,
    pub tool_cpu_percent: Option<f64>,
}

fn request(settings: &Settings, method: &str, target: &str, kind: &str, body: &str) -> Vec<u8> {
    let addr = host_port(settings);
    format!(
        "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {kind}\r\n{}Content-Length: {}\r\n\r\n{body}",
        auth_header(settings),
        body.len()
    )
    .into_bytes()
}

/// `bench variance`.
pub async fn variance(
    settings: &Settings,
    pours: u64,
    lines: u64,
    taps: u32,
    days: u32,
    requests: usize,
) -> Result<VarianceResult, String> {
    let stored = super::history::fill(settings, pours, taps, days).await?;
    let mut conn = Connection::open(&host_port(settings))
        .await
        .map_err(|e| e.to_string())?;
    let (_, items) = fetch(&mut conn, &get_request(settings, "/api/sales/items")).await?;
    let sold: f64 = serde_json::from_slice::<serde_json::Value>(&items)
        .ok()
        .and_then(|v| {
            v.as_array()
                .map(|a| a.iter().filter_map(|i| i["sold"].as_f64()).sum())
        })
        .unwrap_or(0.0);
    let (mut imported, started) = (0u64, Instant::now());
    if sold == 0.0 {
        // Lines at an even pace over the days, the latest a minute ago; a line sells one
        // of 8 pints (the pours are half pints to litres: the variance is what it is).
        let step_ms = (i64::from(days) * 86_400_000) / lines as i64;
        let start = chrono::Utc::now() - chrono::Duration::days(i64::from(days));
        let mut at = 0;
        while at < lines {
            let end = (at + FILE_LINES).min(lines);
            let mut file = String::with_capacity(((end - at) * 48) as usize + 32);
            file.push_str("time,item,quantity\n");
            for i in at..end {
                let when = start + chrono::Duration::milliseconds(i as i64 * step_ms);
                file.push_str(&when.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
                file.push_str(&format!(",Lager {} Pint,1\n", i % 8));
            }
            let sent = request(
                settings,
                "POST",
                "/api/sales?format=generic",
                "text/csv",
                &file,
            );
            let (status, answer) = fetch(&mut conn, &sent).await?;
            if status != 200 {
                return Err(format!(
                    "POST /api/sales answered {status}: {}",
                    String::from_utf8_lossy(&answer)
                ));
            }
            imported += end - at;
            at = end;
        }
    }
    let import_seconds = started.elapsed().as_secs_f64();
    for k in 0..8 {
        let body = format!(r#"{{"beverage": "Lager {k}", "ml": 500}}"#);
        let target = format!("/api/sales/items/Lager%20{k}%20Pint");
        let (status, answer) = fetch(
            &mut conn,
            &request(settings, "PUT", &target, "application/json", &body),
        )
        .await?;
        if status != 200 {
            return Err(format!(
                "PUT {target} answered {status}: {}",
                String::from_utf8_lossy(&answer)
            ));
        }
    }
    let today = chrono::Utc::now().date_naive();
    let from = today - chrono::Duration::days(364);
    let cpu = cpu_time();
    let timing = Instant::now();
    let mut timed = [histogram(), histogram()];
    let mut by_hour_bytes = 0;
    for _ in 0..requests {
        for (n, bucket) in ["hour", "day"].into_iter().enumerate() {
            let target = format!("/api/variance?from={from}&to={today}&bucket={bucket}");
            let sent = Instant::now();
            let (status, body) = fetch(&mut conn, &get_request(settings, &target)).await?;
            if status != 200 {
                return Err(format!(
                    "GET {target} answered {status}: {}",
                    String::from_utf8_lossy(&body)
                ));
            }
            timed[n].saturating_record(sent.elapsed().as_micros() as u64);
            if n == 0 {
                by_hour_bytes = body.len();
            }
        }
    }
    Ok(VarianceResult {
        scenario: "variance",
        stored,
        imported,
        import_seconds,
        import_lines_per_second: if imported == 0 {
            0.0
        } else {
            (imported as f64 / import_seconds).round()
        },
        requests,
        by_hour: Latency::of(&timed[0]),
        by_hour_bytes,
        by_day: Latency::of(&timed[1]),
        tool_cpu_percent: tool_cpu(cpu, timing.elapsed()),
    })
}
