//! The server's background tasks, each a chore done at a tick until shutdown: reports at
//! the interval, quiet taps announced, alerts about events closed, the store's condition
//! and free space watched (this server's own alerts), tokens that name no venue told, and
//! the request log's and rate limiter's upkeep.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::alert::AlertKind;
use crate::disk::{self, LowSpace};
use crate::feed::Feed;
use crate::http::{AppState, Gate, RequestLog};
use crate::human;
use crate::keg::KegOp;
use crate::pour::Timestamp;
use crate::store::Condition;

/// Starts every chore; each task ends at shutdown.
pub fn start(
    state: &AppState,
    request_log: &Arc<RequestLog>,
    report_period: Duration,
    low_space: (u64, Duration),
) -> Vec<JoinHandle<()>> {
    let shutdown = &state.shutdown;
    vec![
        tokio::spawn(reports(state.feed.clone(), report_period, shutdown.clone())),
        tokio::spawn(alert_updates(state.feed.clone(), shutdown.clone())),
        tokio::spawn(quiet_taps(state.clone())),
        tokio::spawn(temperatures(state.clone())),
        tokio::spawn(closing_alerts(state.clone())),
        tokio::spawn(store_condition(
            state.clone(),
            low_space.1.min(Duration::from_secs(1)),
        )),
        tokio::spawn(free_space(state.clone(), low_space)),
        tokio::spawn(token_venues(state.clone())),
        tokio::spawn(upkeep(
            state.gate.clone(),
            request_log.clone(),
            shutdown.clone(),
        )),
    ]
}

/// Does `chore` every `period`, the first time after `first`, until `shutdown`. A chore
/// that overruns delays the next tick; ticks are never bunched up to catch up.
async fn every<F, Fut>(
    first: Duration,
    period: Duration,
    shutdown: &CancellationToken,
    mut chore: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + first, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => chore().await,
        }
    }
}

/// Publishes a report every `period` until shutdown.
async fn reports(feed: Feed, period: Duration, shutdown: CancellationToken) {
    every(period, period, &shutdown, || {
        feed.publish_report();
        std::future::ready(())
    })
    .await;
}

/// Alerts that grouped more pours are said a few times a second at most.
async fn alert_updates(feed: Feed, shutdown: CancellationToken) {
    let period = Duration::from_millis(250);
    every(period, period, &shutdown, || {
        feed.publish_alert_updates();
        std::future::ready(())
    })
    .await;
}

/// Refusals are summed up in the log every interval (and once more at shutdown);
/// rate-limiter keys that went quiet are forgotten every minute.
async fn upkeep(gate: Arc<Gate>, request_log: Arc<RequestLog>, shutdown: CancellationToken) {
    let period = request_log.interval();
    let summaries = every(period, period, &shutdown, || {
        request_log.summarize();
        std::future::ready(())
    });
    let forget = every(Duration::ZERO, Duration::from_secs(60), &shutdown, || {
        gate.forget_quiet_keys();
        std::future::ready(())
    });
    tokio::join!(summaries, forget);
    request_log.summarize();
}

/// Logs each tap that goes quiet, once: every server looks, and the store takes the first
/// word for a tap and refuses the rest (the tap is quiet already), so subscribers hear it
/// once, from every server.
async fn quiet_taps(state: AppState) {
    // Looked at often enough for the chain's quiet time (a venue's own is rarely shorter).
    let period =
        (state.pouring.quiet_after / 4).clamp(Duration::from_millis(100), Duration::from_secs(15));
    every(Duration::ZERO, period, &state.shutdown, || async {
        let now = Timestamp::now();
        let quiet = state.bar.cellar(|c| {
            let venues = c.venues();
            c.newly_quiet(now)
                .into_iter()
                .map(|(tap, last)| (venues.stored(&tap.venue), tap, last))
                .collect::<Vec<_>>()
        });
        for (venue, tap, last_pour) in quiet {
            let op = KegOp::Quiet {
                venue,
                tap_id: tap.tap_id,
                last_pour,
                at: now,
            };
            match state.store.keg(op, None).await {
                Ok(Ok(_)) => log::info!("{tap} is quiet"),
                // Another server said so first, or the tap poured meanwhile.
                Ok(Err(_)) => {}
                Err(e) => log::debug!("{tap} is quiet, but the store cannot say so: {e}"),
            }
        }
    })
    .await;
}

/// Logs each change of what a tap sensor's temperatures say (too warm, too hot, silent,
/// fine again), once: every server looks, the store keeps the first word. And folds the
/// readings a day old into one a minute, hourly.
async fn temperatures(state: AppState) {
    let limits = state.pouring.limits;
    let period = (limits.silent_after.min(limits.warm_for) / 4)
        .clamp(Duration::from_millis(200), Duration::from_secs(15));
    let judge = every(Duration::ZERO, period, &state.shutdown, || async {
        let now = Timestamp::now();
        let latest = match state
            .store
            .thermometer()
            .latest(limits.warm_above, now)
            .await
        {
            Ok(latest) => latest,
            Err(e) => return log::debug!("temperatures: cannot read the latest: {e}"),
        };
        for l in latest {
            let r = &l.reading;
            let condition = limits.judge(&l, now);
            let (logged, venue) = {
                let held = state.bar.hold();
                (
                    held.alerts()
                        .sensor_condition(&r.venue, r.tap_id, &r.sensor),
                    held.venues().stored(&r.venue),
                )
            };
            if condition == logged {
                continue;
            }
            let op = KegOp::Temperature {
                venue,
                tap_id: r.tap_id,
                sensor: r.sensor.clone(),
                condition,
                celsius: (condition != crate::temperature::Condition::Silent).then_some(r.celsius),
                at: now,
            };
            match state.store.keg(op, None).await {
                Ok(Ok(_)) => log::info!(
                    "tap {} sensor {:?} ({}): {condition:?} at {} °C",
                    r.tap_id,
                    r.sensor,
                    r.venue,
                    r.celsius
                ),
                // Another server said so first.
                Ok(Err(_)) => {}
                Err(e) => log::debug!("temperatures: the store cannot say so: {e}"),
            }
        }
    });
    let hour = Duration::from_secs(3600);
    let fold = every(Duration::ZERO, hour, &state.shutdown, || async {
        match state.store.thermometer().fold(Timestamp::now()).await {
            Ok(0) => {}
            Ok(n) => log::info!(
                "temperatures: folded {} readings a day old into one a minute",
                human::count(n)
            ),
            Err(e) => log::warn!("temperatures: cannot fold the old readings: {e}"),
        }
    });
    tokio::join!(judge, fold);
}

/// Says, at start and after each reload of the tokens file, which venues its tokens name
/// that do not exist (yet): those tokens match nothing until an admin adds the venue.
async fn token_venues(state: AppState) {
    let mut tokens = state.gate.auth().watch();
    loop {
        let named = tokens.borrow_and_update().venues();
        let missing: Vec<String> = state.bar.venues(|v| {
            named
                .iter()
                .filter(|venue| !v.exists(venue))
                .map(|venue| venue.to_string())
                .collect()
        });
        if !missing.is_empty() {
            log::warn!(
                "auth: tokens name venues that do not exist yet: {}; they see and pour nothing until an admin adds them (POST /api/venues)",
                missing.join(", ")
            );
        }
        tokio::select! {
            _ = state.shutdown.cancelled() => return,
            changed = tokens.changed() => if changed.is_err() { return },
        }
    }
}

/// Logs the closing of each alert about events that none joined for the window: like
/// quiet taps, every server looks and the store takes the first word (a closing that no
/// longer applies, because a pour joined meanwhile, is refused).
async fn closing_alerts(state: AppState) {
    let window = state.pouring.alert_window;
    let period = (window / 4).clamp(Duration::from_millis(100), Duration::from_secs(15));
    every(Duration::ZERO, period, &state.shutdown, || async {
        let now = Timestamp::now();
        let due = state.bar.alerts(|a| a.due(now));
        for (alert_id, count) in due {
            let op = KegOp::CloseAlert {
                alert_id,
                count,
                at: now,
            };
            match state.store.keg(op, None).await {
                Ok(Ok(_)) => log::info!("alert {alert_id} resolved: nothing new for the window"),
                Ok(Err(_)) => {}
                Err(e) => log::debug!(
                    "alert {alert_id} is due to close, but the store cannot say so: {e}"
                ),
            }
        }
    })
    .await;
}

/// Opens this server's `storeFailing` alert while its store cannot write, and resolves it
/// when it can again.
async fn store_condition(state: AppState, period: Duration) {
    every(Duration::ZERO, period, &state.shutdown, || {
        match state.store.condition() {
            Condition::Ready => state.feed.clear(AlertKind::StoreFailing),
            Condition::Degraded { reason, .. } => state.feed.raise(
                AlertKind::StoreFailing,
                format!("This server's store cannot write: {reason}"),
            ),
        }
        std::future::ready(())
    })
    .await;
}

/// Logs once when the data directory's filesystem runs low on space, and once when it
/// has room again: an operator hears of it before writes are refused.
async fn free_space(state: AppState, (threshold, period): (u64, Duration)) {
    let Some(dir) = state.store.data_dir().map(std::path::Path::to_owned) else {
        return;
    };
    let mut low = LowSpace::new(threshold);
    let mut unreadable = false;
    every(Duration::ZERO, period, &state.shutdown, || {
        match disk::free_bytes(&dir) {
            Err(e) => {
                if !std::mem::replace(&mut unreadable, true) {
                    log::warn!(
                        "store: cannot read the free space of {} ({e})",
                        dir.display()
                    );
                }
            }
            Ok(free) => {
                unreadable = false;
                match low.observe(free) {
                    Some(disk::Change::Low) => {
                        log::warn!(
                            "store: low on space: {} free on {} (warning under {}); writes are refused when it runs out",
                            human::bytes(free),
                            dir.display(),
                            human::bytes(threshold)
                        );
                        state.feed.raise(
                            AlertKind::DiskLow,
                            // No path: /health shows it to anyone.
                            format!(
                                "This server is low on disk space: {} free",
                                human::bytes(free)
                            ),
                        );
                    }
                    Some(disk::Change::Recovered) => {
                        log::info!(
                            "store: space is back: {} free on {}",
                            human::bytes(free),
                            dir.display()
                        );
                        state.feed.clear(AlertKind::DiskLow);
                    }
                    None => {}
                }
            }
        }
        std::future::ready(())
    })
    .await;
}
