//! Each server's reader of the event log: every event after the last one it published, in
//! order, to its own bar and bus, once. It listens for the writers' notifications on a
//! connection of its own (a pooled one would drop them) and polls besides; when the
//! connection drops it reconnects with backoff and goes on from the last event it
//! published, so nothing is skipped or repeated.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::{Notify, watch};
use tokio_postgres::{AsyncMessage, NoTls};
use tokio_util::sync::CancellationToken;

use super::{CHANNEL, Glasses, Health, Position, pour_from};
use crate::feed::Feed;
use crate::keg::KegOp;

/// Events read per query at most.
const PAGE: i64 = 1024;
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// What the tailer is given.
pub struct Tailer {
    pub config: tokio_postgres::Config,
    pub feed: Feed,
    pub health: Arc<Health>,
    /// How far the log is published, for requests that wait for their event.
    pub published: watch::Sender<Position>,
    /// This server's writer committed something.
    pub woken: Arc<Notify>,
    pub poll: Duration,
    pub stop: CancellationToken,
}

fn db_position(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
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
        feed,
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
        // The next events: pours by id and deletions by number, merged in log order (a
        // deletion after the pour that was last when it committed). Each side is read in
        // its own order, which is the merged order's: the first PAGE of the merge needs
        // no more than the first PAGE of each.
        let statement = client
            .prepare(
                "SELECT kind, seq, id, tap_id, volume, glass, poured_at_ms, flags, op, at FROM (
                     (SELECT 0 AS kind, id AS at, 0::bigint AS seq, id, tap_id, volume, glass, poured_at_ms, flags, NULL::text AS op
                      FROM altair_pours WHERE id > $1 ORDER BY id LIMIT $3)
                     UNION ALL
                     (SELECT 1, d.after_pour_id, d.seq, p.id, p.tap_id, p.volume, p.glass, p.poured_at_ms, p.flags, NULL
                      FROM altair_deletions d JOIN altair_pours p ON p.id = d.pour_id
                      WHERE d.seq > $2 ORDER BY d.seq LIMIT $3)
                     UNION ALL
                     (SELECT 2, after_pour_id, seq, NULL, NULL, NULL, NULL, NULL, NULL, op
                      FROM altair_keg_ops WHERE seq > $4 ORDER BY seq LIMIT $3)
                 ) AS events ORDER BY at, kind, seq LIMIT $3",
            )
            .await?;
        health.up();
        let mut glasses = Glasses::default();
        let mut tick = tokio::time::interval(*poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // Everything there is, page by page.
            loop {
                let mut at = *published.borrow();
                let (pours, deletions, ops) = (
                    db_position(at.pour),
                    db_position(at.deletion),
                    db_position(at.keg_op),
                );
                let rows = client
                    .query(&statement, &[&pours, &deletions, &PAGE, &ops])
                    .await?;
                for row in &rows {
                    let seq = u64::try_from(row.get::<_, i64>(1)).unwrap_or(0);
                    match row.get::<_, i32>(0) {
                        0 => {
                            let pour = pour_from(row, 2, &mut glasses);
                            at.pour = pour.id;
                            feed.poured(pour);
                        }
                        1 => {
                            at.deletion = seq;
                            feed.deleted(pour_from(row, 2, &mut glasses));
                        }
                        _ => {
                            at.keg_op = seq;
                            let after = u64::try_from(row.get::<_, i64>(9)).unwrap_or(0);
                            match KegOp::from_json(row.get(8)) {
                                Some(op) => {
                                    feed.keg_op(&op, after);
                                }
                                None => log::error!("keg operation {seq} is unreadable; skipped"),
                            }
                        }
                    }
                }
                published.send_replace(at);
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
