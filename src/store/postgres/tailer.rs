//! Each server's reader of the log: it publishes what other servers commit (this server's
//! writer publishes its own). It listens for the writers' notifications on a connection of
//! its own (a pooled one would drop them), each saying where the log ends, and polls
//! besides; when the connection drops it reconnects with backoff and goes on from the
//! last event published, so nothing is skipped or repeated.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::{Notify, watch};
use tokio_postgres::{AsyncMessage, NoTls};
use tokio_util::sync::CancellationToken;

use super::events::{self, Publisher};
use super::{CHANNEL, Health, Position};

const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// What the tailer is given.
pub struct Tailer {
    pub config: tokio_postgres::Config,
    pub publisher: Arc<Publisher>,
    pub health: Arc<Health>,
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

/// One connection's life: LISTEN, then read on every notification of a change not yet
/// published and every `poll`. Ok on `stop`; Err when the connection fails.
async fn follow(tailer: &Tailer) -> Result<(), tokio_postgres::Error> {
    let Tailer {
        config,
        publisher,
        health,
        poll,
        stop,
    } = tailer;
    let (client, mut connection) = config.connect(NoTls).await?;
    let woken = Arc::new(Notify::new());
    // The furthest end of the log a notification told of, and whether one told of none.
    let told = watch::Sender::new(Position::default());
    let untold = Arc::new(AtomicBool::new(false));
    let closed = CancellationToken::new();
    // Driving the connection by hand is what delivers notifications.
    let driver = {
        let (woken, closed, publisher) = (woken.clone(), closed.clone(), publisher.clone());
        let (told, untold) = (told.clone(), untold.clone());
        tokio::spawn(async move {
            let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(message) = messages.next().await {
                match message {
                    Ok(AsyncMessage::Notification(n)) => {
                        // This server's own commits, and changes its writer has read
                        // already, need no read.
                        match Position::from_payload(n.payload()) {
                            Some(end) if publisher.covers(end) => {}
                            Some(end) => {
                                told.send_modify(|told| *told = told.furthest(end));
                                woken.notify_one();
                            }
                            None => {
                                untold.store(true, Ordering::Relaxed);
                                woken.notify_one();
                            }
                        }
                    }
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
        let statement = events::prepare(&client).await?;
        health.up();
        let mut tick = tokio::time::interval(*poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // At first, and at each poll, everything there is; on a notification, up to the
        // end it told of, which this server's writer may have read meanwhile.
        let mut end = None;
        loop {
            publisher
                .read_to(&client, &statement, end, usize::MAX)
                .await?;
            end = tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                _ = woken.notified() => {
                    (!untold.swap(false, Ordering::Relaxed)).then(|| *told.borrow())
                }
                _ = tick.tick() => None,
                // The next query reports why.
                _ = closed.cancelled() => None,
            };
        }
    }
    .await;
    driver.abort();
    result
}
