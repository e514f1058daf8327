//! What every scenario measures with: latency histograms, the tool's own CPU, pour ids
//! read out of frames, and where the server is. A leaf: it uses no other bench module.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::config::Settings;

/// Latency summary in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Latency {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// Microsecond latencies from 1 µs to 10 min, 3 significant digits.
#[allow(clippy::expect_used)]
pub fn histogram() -> Histogram<u64> {
    // Constant bounds within what hdrhistogram documents as valid: this cannot fail.
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid constant histogram bounds")
}

impl Latency {
    pub fn of(h: &Histogram<u64>) -> Latency {
        let ms = |us: u64| us as f64 / 1000.0;
        Latency {
            p50_ms: ms(h.value_at_quantile(0.50)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            max_ms: ms(h.max()),
        }
    }
}

/// The CPU time (user + system) this process has used, from /proc (Linux).
pub fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on every Linux this runs on.
    Some(Duration::from_millis(ticks * 10))
}

/// How much of one core the tool used over `wall`, in percent.
pub fn tool_cpu(start: Option<Duration>, wall: Duration) -> Option<f64> {
    let used = cpu_time()?.checked_sub(start?)?;
    Some((used.as_secs_f64() / wall.as_secs_f64() * 1000.0).round() / 10.0)
}

/// The pour id in a frame that carries a pour (`{"event":"pour","beer":{"id":..}}`), found
/// without parsing the whole frame: the tool must stay cheaper than the server it measures.
pub fn pour_id(frame: &str) -> Option<u64> {
    let beer = frame.find("\"beer\"")?;
    let rest = &frame[beer..];
    let at = rest.find("\"id\"")? + 4;
    let digits = rest[at..].trim_start_matches([' ', ':']);
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    digits[..end].parse().ok()
}

pub fn host_port(settings: &Settings) -> String {
    let host = settings.server(0).host_str().unwrap_or("localhost");
    let port = settings.server(0).port_or_known_default().unwrap_or(8338);
    format!("{host}:{port}")
}

/// The `Authorization` header line, if there is a token.
pub fn auth_header(settings: &Settings) -> String {
    settings
        .token
        .as_ref()
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default()
}

/// Where `needle` first is in `haystack`.
pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
