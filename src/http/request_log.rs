//! One log line per request, but never a volume that a client controls.
//!
//! Successful requests get a line each (at info, or debug with `--request-log errors`):
//! they are bounded by the rate limits and cost a credential. Refusals (4xx) are what a
//! flood produces, so each client address gets a few lines an interval; past that, and
//! for every 429 and 503 at all (a 503's cause, a full disk say, is logged once where it is
//! found), its refusals are counted and said in one line per address at the end of the
//! interval. `/metrics` keeps the exact counts by status.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use warp::http::Method;

use crate::human;

/// Refusals logged one by one per address and interval.
const LINES_PER_ADDRESS: u32 = 5;
/// Addresses tracked per interval; refusals from more are counted together.
const MAX_ADDRESSES: usize = 256;
/// Summary lines per interval at most; the rest are added up in one more.
const MAX_SUMMARIES: usize = 20;

/// The request log.
pub struct RequestLog {
    log_successes: bool,
    interval: Duration,
    refusals: Mutex<Refusals>,
}

#[derive(Default)]
struct Refusals {
    by_address: HashMap<IpAddr, Tally>,
    /// Refusals from addresses past [`MAX_ADDRESSES`].
    others: Tally,
}

/// One address's refusals in this interval.
#[derive(Default, Clone)]
struct Tally {
    logged: u32,
    /// Refusals not logged one by one, by status.
    unlogged: Vec<(u16, u64)>,
}

impl Tally {
    fn count(&mut self, status: u16, n: u64) {
        match self.unlogged.iter_mut().find(|(s, _)| *s == status) {
            Some((_, m)) => *m += n,
            None => self.unlogged.push((status, n)),
        }
    }

    fn total(&self) -> u64 {
        self.unlogged.iter().map(|(_, n)| n).sum()
    }

    /// `429 ×21,000, 404 ×60`
    fn by_status(&self) -> String {
        let mut parts = self.unlogged.clone();
        parts.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        parts
            .iter()
            .map(|(status, n)| format!("{status} ×{}", human::count(*n)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl RequestLog {
    /// Successful requests at info if `log_successes`, else at debug; refusals summed up
    /// every `interval`.
    pub fn new(log_successes: bool, interval: Duration) -> RequestLog {
        RequestLog {
            log_successes,
            interval,
            refusals: Mutex::default(),
        }
    }

    /// How often [`RequestLog::summarize`] should run.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// One answered request.
    pub fn record(
        &self,
        method: &Method,
        path: &str,
        status: u16,
        took: Duration,
        peer: SocketAddr,
    ) {
        let line = || {
            format!(
                "{method} {path} {status} {:.2}ms {peer}",
                took.as_secs_f64() * 1000.0
            )
        };
        // 503 is a known condition (the store cannot write, subscribers are at the cap):
        // refused like 4xx, it must not write a line per request to a disk that is full.
        if !(400..500).contains(&status) && status != 503 {
            let level = if self.log_successes || status >= 500 {
                log::Level::Info
            } else {
                log::Level::Debug
            };
            if log::log_enabled!(target: "altair::request", level) {
                log::log!(target: "altair::request", level, "{}", line());
            }
            return;
        }
        if self.note_refusal(peer.ip(), status) {
            log::info!(target: "altair::request", "{}", line());
        } else {
            crate::metrics::log_lines_suppressed();
        }
    }

    /// Counts a refusal; true if it gets a line of its own.
    fn note_refusal(&self, address: IpAddr, status: u16) -> bool {
        let mut refusals = self.refusals.lock().unwrap_or_else(PoisonError::into_inner);
        let full = refusals.by_address.len() >= MAX_ADDRESSES;
        let tally = match refusals.by_address.contains_key(&address) || !full {
            true => refusals.by_address.entry(address).or_default(),
            false => &mut refusals.others,
        };
        // A 429 answers a flood by definition, a 503 a condition already logged: never a
        // line each.
        if status != 429 && status != 503 && tally.logged < LINES_PER_ADDRESS && !full {
            tally.logged += 1;
            return true;
        }
        tally.count(status, 1);
        false
    }

    /// Logs, and forgets, the refusals of the interval that were not logged one by one.
    pub fn summarize(&self) {
        let refusals =
            std::mem::take(&mut *self.refusals.lock().unwrap_or_else(PoisonError::into_inner));
        let secs = self.interval.as_secs_f64();
        let mut offenders: Vec<(IpAddr, Tally)> = refusals
            .by_address
            .into_iter()
            .filter(|(_, t)| t.total() > 0)
            .collect();
        offenders.sort_unstable_by_key(|(address, t)| (std::cmp::Reverse(t.total()), *address));
        let mut rest = refusals.others;
        let mut rest_addresses = 0;
        for (i, (address, tally)) in offenders.into_iter().enumerate() {
            if i < MAX_SUMMARIES {
                log::warn!(
                    target: "altair::request",
                    "address {address}: {} requests refused in the last {secs:.0} s ({})",
                    human::count(tally.total()),
                    tally.by_status()
                );
            } else {
                rest_addresses += 1;
                for (status, n) in tally.unlogged {
                    rest.count(status, n);
                }
            }
        }
        if rest.total() > 0 {
            log::warn!(
                target: "altair::request",
                "{} more addresses: {} requests refused in the last {secs:.0} s ({})",
                if rest_addresses > 0 { human::count(rest_addresses) } else { "other".into() },
                human::count(rest.total()),
                rest.by_status()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_from_one_address_is_a_few_lines_and_one_count() {
        let log = RequestLog::new(false, Duration::from_secs(10));
        let flood: IpAddr = "10.0.0.7".parse().unwrap();
        let logged = (0..21_060)
            .filter(|i| log.note_refusal(flood, if i % 2 == 0 { 429 } else { 404 }))
            .count();
        assert_eq!(
            logged, LINES_PER_ADDRESS as usize,
            "404s get a few lines, 429s none"
        );
        let refusals = log.refusals.lock().unwrap();
        let tally = &refusals.by_address[&flood];
        assert_eq!(tally.total() + u64::from(LINES_PER_ADDRESS), 21_060);
        assert_eq!(tally.by_status(), "429 ×10,530, 404 ×10,525");
    }

    #[test]
    fn refusals_for_a_known_condition_are_only_counted() {
        let log = RequestLog::new(false, Duration::from_secs(10));
        let tap: IpAddr = "10.0.0.8".parse().unwrap();
        let logged = (0..200).filter(|_| log.note_refusal(tap, 503)).count();
        assert_eq!(logged, 0, "a full disk is said once, where it is found");
        let refusals = log.refusals.lock().unwrap();
        assert_eq!(refusals.by_address[&tap].by_status(), "503 ×200");
    }

    #[test]
    fn many_addresses_are_bounded_too() {
        let log = RequestLog::new(false, Duration::from_secs(10));
        let logged = (0..10_000u32)
            .filter(|i| log.note_refusal(IpAddr::from(i.to_be_bytes()), 401))
            .count();
        assert_eq!(
            logged, MAX_ADDRESSES,
            "a line each for the addresses tracked"
        );
        let refusals = log.refusals.lock().unwrap();
        assert_eq!(refusals.by_address.len(), MAX_ADDRESSES);
        assert_eq!(refusals.others.total(), 10_000 - MAX_ADDRESSES as u64);
    }
}
