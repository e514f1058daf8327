//! Each server's reader of the event log: every event after the last one it published, in
//! order, onto its own bus, once. It listens for the writers' notifications on a
//! connection of its own (a pooled one would drop them) and polls besides; when the
//! connection drops it reconnects with backoff and goes on from the last event it
//! published, so nothing is skipped or repeated.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::{Notify, watch};
use tokio_postgres::{AsyncMessage, NoTls};
use tokio_util::sync::CancellationToken;

use super::{CHANNEL, Glasses, Health, pour_from};
use crate::bus::Bus;

/// Events read per query at most.
const PAGE: i64 = 1024;
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// What the tailer is given.
pub struct Tailer {
    pub config: tokio_postgres::Config,
    pub bus: Bus,
    pub health: Arc<Health>,
    /// The last event published so far, for requests that wait for theirs.
    pub published: watch::Sender<u64>,
    /// This server's writer committed something.
    pub woken: Arc<Notify>,
    pub poll: Duration,
    pub stop: CancellationToken,
}

/// Publishes every event after the last one published until `stop`.
pub async fn run(tailer: Tailer) {
    let mut retry = RETRY_FIRST;
    loop {
        let ended = follow(&tailer).await;
        match ended {
            Ok(()) => return,
            Err(e) => tailer.health.down(&e.to_string()),
        }
        tokio::select! {
            _ = tailer.stop.cancelled() => return,
            _ = tokio::time::sleep(retry) => {}
        }
        retry = (retry * 2).min(RETRY_MAX);
    }
}

/// One connection's life: LISTEN, then read on every notification and every `poll`.
/// Ok on `stop`; Err when the connection fails.
async fn follow(tailer: &Tailer) -> Result<(), tokio_postgres::Error> {
    let Tailer {
        config,
        bus,
        health,
        published,
        poll,
        stop,
        ..
    } = tailer;
    let (client, mut connection) = config.connect(NoTls).await?;
    let woken = tailer.woken.clone();
    let closed = CancellationToken::new();
    // Driving the connection by hand is what delivers notifications.
    let driver = {
        let (woken, closed) = (woken.clone(), closed.clone());
        tokio::spawn(async move {
            let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(message) = messages.next().await {
                match message {
                    Ok(AsyncMessage::Notification(_)) => woken.notify_one(),
                    Ok(_) => {}
                    Err(e) => {
                        log::debug!("event listener connection: {e}");
                        break;
                    }
                }
            }
            closed.cancel();
        })
    };
    let result = async {
        client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
        let statement = client
            .prepare(
                "SELECT e.seq, e.deleted, p.id, p.tap_id, p.volume, p.glass, p.poured_at_ms
                 FROM altair_events e JOIN altair_pours p ON p.id = e.pour_id
                 WHERE e.seq > $1 ORDER BY e.seq LIMIT $2",
            )
            .await?;
        health.up();
        let mut glasses = Glasses::default();
        let mut tick = tokio::time::interval(*poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // Everything there is, page by page.
            loop {
                let mut last = *published.borrow();
                let after = i64::try_from(last).unwrap_or(i64::MAX);
                let rows = client.query(&statement, &[&after, &PAGE]).await?;
                for row in &rows {
                    let pour = pour_from(row, 2, &mut glasses);
                    if row.get::<_, bool>(1) {
                        bus.deleted(pour);
                    } else {
                        bus.poured(pour);
                    }
                    last = u64::try_from(row.get::<_, i64>(0)).unwrap_or(last);
                }
                published.send_replace(last);
                if (rows.len() as i64) < PAGE {
                    break;
                }
            }
            tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                _ = woken.notified() => {}
                _ = tick.tick() => {}
                // The next query reports why.
                _ = closed.cancelled() => {}
            }
        }
    }
    .await;
    driver.abort();
    result
}
