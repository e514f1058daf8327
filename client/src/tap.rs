//! One simulated tap: it pours every interval into its outbox, and a sender delivers the
//! outbox to the server in order, retrying until each pour is acknowledged.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use reqwest::StatusCode;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::config::Settings;
use crate::outbox::{Outbox, Pending};
use crate::protocol::{Glass, Glasses, NewPour};
use crate::random::Rng;

/// The longest wait between two attempts at the same pour.
pub const RETRY_CAP: Duration = Duration::from_secs(30);
const RETRY_BASE: Duration = Duration::from_millis(200);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a tap stopped early.
#[derive(Debug, thiserror::Error)]
pub enum TapError {
    #[error("tap {tap}: outbox {dir}: {source}")]
    Outbox {
        tap: u32,
        dir: String,
        source: std::io::Error,
    },
    /// It finished, but the server rejected some pours for good (each logged as it came).
    #[error(
        "tap {tap}: {rejected} pours were rejected for good by the server (see SERVER REJECTED above)"
    )]
    Rejected { tap: u32, rejected: u64 },
}

/// What the sender decided about one attempt.
enum Delivery {
    /// The server has the pour (201, or 200 for a retry it recognised).
    Acknowledged(u64),
    /// A 4xx that will never succeed: dropped, loudly.
    Rejected(StatusCode, String),
    /// Worth retrying: the server is busy (429, 408) or answered oddly.
    Retry(String),
    /// Worth retrying, on the next server if there are several: this one cannot be
    /// reached, timed out, or answered 5xx.
    Unavailable(String),
    /// The server refused the token (401/403): the pour is fine, the configuration is
    /// not, so the pour stays in the outbox until someone fixes the token.
    Refused(StatusCode, String),
}

/// A tap: pours and delivers until `stop`, or until `count` pours are delivered.
pub async fn run(
    tap: u32,
    settings: Arc<Settings>,
    http: reqwest::Client,
    stop: CancellationToken,
) -> Result<(), TapError> {
    let dir = settings.outbox_dir(tap);
    let outbox_error = |source| TapError::Outbox {
        tap,
        dir: dir.display().to_string(),
        source,
    };
    let outbox = {
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || Outbox::open(&dir))
            .await
            .map_err(|e| outbox_error(std::io::Error::other(e)))?
            .map_err(outbox_error)?
    };
    if !outbox.is_empty() {
        log::info!(
            "tap {tap} | {} pours left in the outbox from an earlier run; sending them first",
            outbox.len()
        );
    }
    let outbox = Arc::new(Mutex::new(outbox));
    let wake = Arc::new(Notify::new());
    // Pouring stops at `stop`, or by itself once `count` pours are made.
    let pouring_done = CancellationToken::new();
    let pourer = tokio::spawn(pour_loop(
        tap,
        settings.clone(),
        http.clone(),
        outbox.clone(),
        wake.clone(),
        stop.clone(),
        pouring_done.clone(),
    ));
    let sent = send_loop(tap, &settings, &http, &outbox, &wake, &stop, &pouring_done).await;
    pouring_done.cancel();
    match pourer.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(outbox_error(e)),
        Err(e) => return Err(outbox_error(std::io::Error::other(e))),
    }
    // A run that finished by itself (--count) says whether all its pours were stored; a
    // stopped one was asked to stop, and rejections are in its log.
    match sent.map_err(outbox_error)? {
        rejected if rejected > 0 && !stop.is_cancelled() => {
            Err(TapError::Rejected { tap, rejected })
        }
        _ => Ok(()),
    }
}

fn lock(outbox: &Mutex<Outbox>) -> std::sync::MutexGuard<'_, Outbox> {
    // Outbox methods leave it consistent or return an error; a poisoned lock is still usable.
    outbox.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn pour_loop(
    tap: u32,
    settings: Arc<Settings>,
    http: reqwest::Client,
    outbox: Arc<Mutex<Outbox>>,
    wake: Arc<Notify>,
    stop: CancellationToken,
    done: CancellationToken,
) -> std::io::Result<()> {
    let mut rng = Rng::new(u64::from(tap));
    let glasses = match settings.volume {
        Some(_) => Vec::new(),
        None => match glasses(tap, &settings, &http, &stop).await {
            Some(glasses) => glasses,
            None => return Ok(()),
        },
    };
    let mut made = 0u64;
    let mut next = tokio::time::Instant::now();
    while settings.count.is_none_or(|n| made < n) {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep_until(next) => {}
        }
        let volume = match settings.volume {
            Some(v) => v,
            None => rng.volume(&glasses).unwrap_or(500.0),
        };
        // The next pour waits the interval; by default, or as long as a tap takes to pour
        // this one.
        next = tokio::time::Instant::now()
            + if settings.paced {
                crate::random::gap(settings.interval, volume)
            } else {
                settings.interval
            };
        let now = Utc::now();
        let pour = NewPour {
            tap_id: tap,
            volume,
            timestamp: now.to_rfc3339_opts(SecondsFormat::Millis, true),
        };
        let outbox = outbox.clone();
        let pending = tokio::task::spawn_blocking(move || {
            let mut outbox = lock(&outbox);
            // Unique across runs: the outbox sequence restarts when it empties.
            let key = format!("tap{tap}-{}-{}", now.timestamp_millis(), made + 1);
            outbox.push(key, pour)
        })
        .await
        .map_err(std::io::Error::other)??;
        made += 1;
        log::info!(
            "tap {tap} | poured {} ml (outbox #{})",
            pending.pour.volume,
            pending.seq
        );
        wake.notify_one();
    }
    done.cancel();
    wake.notify_one();
    Ok(())
}

/// The server's glasses, retried until it answers (None if stopped first).
async fn glasses(
    tap: u32,
    settings: &Settings,
    http: &reqwest::Client,
    stop: &CancellationToken,
) -> Option<Vec<Glass>> {
    let mut backoff = Backoff::new(RETRY_BASE, RETRY_CAP, Rng::new(u64::from(tap) + 1));
    loop {
        let place = settings.place();
        let answer = authorized(http.get(settings.http(place, "/api/glasses")), settings)
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await;
        let failure = match answer {
            Ok(r) if r.status().is_success() => match r.json::<Glasses>().await {
                Ok(g) if !g.glasses.is_empty() => return Some(g.glasses),
                Ok(_) => "the server has no glasses".to_owned(),
                Err(e) => format!("unreadable glasses: {e}"),
            },
            Ok(r) => format!("glasses: HTTP {}", r.status()),
            Err(e) => describe(&e),
        };
        settings.fail_over(format_args!("tap {tap}"), place, &failure);
        let delay = backoff.next_delay();
        log::warn!(
            "tap {tap} | cannot read the glass list ({failure}); retrying in {:.1} s",
            delay.as_secs_f64()
        );
        tokio::select! {
            _ = stop.cancelled() => return None,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

async fn send_loop(
    tap: u32,
    settings: &Settings,
    http: &reqwest::Client,
    outbox: &Arc<Mutex<Outbox>>,
    wake: &Notify,
    stop: &CancellationToken,
    pouring_done: &CancellationToken,
) -> std::io::Result<u64> {
    let mut backoff = Backoff::new(RETRY_BASE, RETRY_CAP, Rng::new(u64::from(tap) + 2));
    let mut rejected = 0;
    loop {
        // Between sends, never during one: a stop keeps the rest in the outbox.
        if stop.is_cancelled() {
            return Ok(rejected);
        }
        let next = lock(outbox).front().cloned();
        let Some(pending) = next else {
            if pouring_done.is_cancelled() {
                return Ok(rejected);
            }
            tokio::select! {
                _ = stop.cancelled() => return Ok(rejected),
                _ = wake.notified() => continue,
            }
        };
        let place = settings.place();
        let delivered = deliver(settings, place, http, &pending).await;
        match &delivered {
            Delivery::Acknowledged(id) => {
                backoff.reset();
                log::info!(
                    "tap {tap} | pour {} ml stored as #{id}",
                    pending.pour.volume
                );
                forget(outbox).await?;
            }
            Delivery::Rejected(status, message) => {
                backoff.reset();
                log::error!(
                    "tap {tap} | SERVER REJECTED pour of {} ml at {} for good ({status}: {message}); dropping it from the outbox",
                    pending.pour.volume,
                    pending.pour.timestamp
                );
                rejected += 1;
                forget(outbox).await?;
            }
            Delivery::Refused(status, message) => {
                let delay = backoff.next_delay();
                log::error!(
                    "tap {tap} | SERVER REFUSED THE TOKEN ({status}: {message}); the pour stays in the outbox, retrying in {:.1} s",
                    delay.as_secs_f64()
                );
                tokio::select! {
                    _ = stop.cancelled() => return Ok(rejected),
                    _ = tokio::time::sleep(delay) => {}
                }
            }
            Delivery::Unavailable(why) | Delivery::Retry(why) => {
                if let Delivery::Unavailable(why) = &delivered {
                    settings.fail_over(format_args!("tap {tap}"), place, why);
                }
                let delay = backoff.next_delay();
                log::warn!(
                    "tap {tap} | pour not delivered ({why}); attempt {} failed, retrying in {:.1} s",
                    backoff.failures(),
                    delay.as_secs_f64()
                );
                tokio::select! {
                    _ = stop.cancelled() => return Ok(rejected),
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}

async fn forget(outbox: &Arc<Mutex<Outbox>>) -> std::io::Result<()> {
    let outbox = outbox.clone();
    tokio::task::spawn_blocking(move || lock(&outbox).pop())
        .await
        .map_err(std::io::Error::other)?
}

async fn deliver(
    settings: &Settings,
    place: usize,
    http: &reqwest::Client,
    pending: &Pending,
) -> Delivery {
    let sent = authorized(
        http.post(settings.http(place, &settings.pours_path())),
        settings,
    )
    .timeout(REQUEST_TIMEOUT)
    .header("content-type", "application/json")
    .header("idempotency-key", &pending.key)
    .json(&pending.pour)
    .send()
    .await;
    let response = match sent {
        Ok(r) => r,
        Err(e) => return Delivery::Unavailable(describe(&e)),
    };
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    if status.is_success() {
        return match body["beer"]["id"].as_u64() {
            Some(id) => Delivery::Acknowledged(id),
            None => Delivery::Retry(format!("{status} without a pour id")),
        };
    }
    let message = body["message"].as_str().unwrap_or("").to_owned();
    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        return Delivery::Refused(status, message);
    }
    let permanent = status.is_client_error()
        && status != StatusCode::REQUEST_TIMEOUT
        && status != StatusCode::TOO_MANY_REQUESTS;
    let why = format!("HTTP {status} {message}").trim().to_owned();
    if permanent {
        Delivery::Rejected(status, message)
    } else if status.is_server_error() {
        Delivery::Unavailable(why)
    } else {
        Delivery::Retry(why)
    }
}

/// Adds the bearer token, if there is one.
fn authorized(request: reqwest::RequestBuilder, settings: &Settings) -> reqwest::RequestBuilder {
    match &settings.token {
        Some(token) => request.bearer_auth(token),
        None => request,
    }
}

/// A transport error in a few words.
pub fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "server not reachable".into()
    } else {
        let mut text = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            text = format!("{text}: {s}");
            source = s.source();
        }
        text
    }
}
