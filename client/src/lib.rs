//! `altair-client`: a tap for the Altair server, and a worked example of its protocol.
//!
//! - [`config`]: `INET_ADDR`, `TAP_ID` and the flags that override them.
//! - [`tap`]: one tap: pours into its outbox every interval; a sender delivers the outbox
//!   in order with an `Idempotency-Key`, retrying with backoff until acknowledged.
//! - [`outbox`]: pending pours on disk, one file each, so that none is lost to a restart.
//! - [`feed`]: the WebSocket subscription, one log line per event, resumed with `since`.
//! - [`protocol`]: the server's JSON, as much as a tap needs.
//! - [`backoff`], [`random`]: retry delays with jitter, and simulated volumes.
//! - [`bench`]: `altair-client bench`, the load tool.

pub mod backoff;
pub mod bench;
pub mod config;
pub mod feed;
pub mod outbox;
pub mod protocol;
pub mod random;
pub mod tap;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use config::Settings;
use feed::Listener;

/// Runs every tap and its feed until `stop` (or until `--count` is done); returns the first
/// tap failure, if any: an outbox it could not keep, or pours the server rejected for good.
pub async fn run(settings: Settings, stop: CancellationToken) -> Result<(), tap::TapError> {
    let settings = Arc::new(settings);
    let http = reqwest::Client::new();
    // Feeds outlive the taps by a little: they stop when the taps are done or on `stop`.
    let feeds_stop = stop.child_token();
    let listeners: Vec<Listener> = if settings.shared_subscription {
        vec![Listener {
            label: label(&settings.taps),
            tap_id: None,
        }]
    } else {
        settings
            .taps
            .iter()
            .map(|&tap| Listener {
                label: format!("tap {tap}"),
                tap_id: Some(tap),
            })
            .collect()
    };
    let feeds: Vec<_> = listeners
        .into_iter()
        .map(|listener| {
            let settings = settings.clone();
            let stop = feeds_stop.clone();
            tokio::spawn(async move { feed::follow(&settings, listener, stop).await })
        })
        .collect();
    let taps: Vec<_> = settings
        .taps
        .iter()
        .map(|&tap| tokio::spawn(tap::run(tap, settings.clone(), http.clone(), stop.clone())))
        .collect();
    let mut result = Ok(());
    for tap in taps {
        match tap.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                log::error!("{e}");
                // A tap that could not keep its outbox stops the rest; one whose pours
                // were rejected is done, and the others carry on.
                if !matches!(e, tap::TapError::Rejected { .. }) {
                    stop.cancel();
                }
                if result.is_ok() {
                    result = Err(e);
                }
            }
            Err(e) => log::error!("a tap task failed: {e}"),
        }
    }
    feeds_stop.cancel();
    for feed in feeds {
        let _ = feed.await;
    }
    result
}

/// `tap 3`, or `taps 1-5`.
fn label(taps: &[u32]) -> String {
    match (taps.first(), taps.last()) {
        (Some(first), Some(last)) if first != last => format!("taps {first}-{last}"),
        (Some(tap), _) => format!("tap {tap}"),
        _ => "taps".into(),
    }
}
