//! Following `/sockets/beers`: one readable log line per event, and a reconnect that
//! resumes with `since=<last id seen>`, so that no pour event is missed or repeated.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::config::Settings;
use crate::protocol::{Event, Report};
use crate::random::Rng;
use crate::tap::RETRY_CAP;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Who is listening: one tap (its own pours are not echoed) or several sharing one feed.
#[derive(Debug, Clone)]
pub struct Listener {
    /// `tap 3`, or `taps 1-5`.
    pub label: String,
    /// Sent as `tapId` so the server does not echo this tap's own pours.
    pub tap_id: Option<u32>,
}

/// The line logged for an event (None for events not worth a line).
pub fn line(label: &str, event: &Event) -> Option<String> {
    Some(match event {
        Event::Pour { beer } => format!(
            "{label} | pour #{} from tap {}: {}, {} ml",
            beer.id, beer.tap_id, beer.glass, beer.volume
        ),
        Event::Deleted { id } => format!("{label} | pour #{id} deleted"),
        Event::Report { report } => format!("{label} | {}", summary(report)),
        Event::Hello { .. } | Event::Unknown => return None,
    })
}

/// A report in one line: totals, the last minute, and the busiest tap.
pub fn summary(report: &Report) -> String {
    let busiest = report
        .by_tap
        .iter()
        .max_by_key(|t| t.pours)
        .map(|t| format!("; busiest tap {} ({:.1}%)", t.tap_id, t.share_pct))
        .unwrap_or_default();
    format!(
        "report: {} pours, {:.1} l; {} in the last minute{busiest}",
        report.total_pours,
        report.total_volume_ml / 1000.0,
        report.pours_last_minute
    )
}

/// Follows the feed until `stop`, reconnecting with backoff; closes politely at the end.
pub async fn follow(settings: &Settings, listener: Listener, stop: CancellationToken) {
    let label = listener.label;
    let mut backoff = Backoff::new(
        Duration::from_millis(200),
        RETRY_CAP,
        Rng::new(u64::from(listener.tap_id.unwrap_or(0)) + 3),
    );
    // The last pour id this listener has seen; None until the first hello.
    let mut last: Option<u64> = None;
    loop {
        let mut query = Vec::new();
        if let Some(tap) = listener.tap_id {
            query.push(format!("tapId={tap}"));
        }
        if let Some(venue) = &settings.venue {
            query.push(format!("venue={venue}"));
        }
        if let Some(id) = last {
            query.push(format!("since={id}"));
        }
        let place = settings.place();
        let url = settings.feed(
            place,
            &if query.is_empty() {
                String::new()
            } else {
                format!("?{}", query.join("&"))
            },
        );
        let request = match request(&url, settings.token.as_deref()) {
            Ok(request) => request,
            Err(e) => {
                log::error!("{label} | cannot build the subscription request: {e}");
                return;
            }
        };
        let connected = tokio::select! {
            _ = stop.cancelled() => return,
            c = tokio::time::timeout(CONNECT_TIMEOUT, tokio_tungstenite::connect_async(request)) => c,
        };
        let why = match connected {
            Ok(Ok((mut socket, _))) => {
                backoff.reset();
                match read(&mut socket, &label, &mut last, &stop).await {
                    Ended::Stopped => {
                        let close = CloseFrame {
                            code: CloseCode::Normal,
                            reason: "tap stopping".into(),
                        };
                        let _ = tokio::time::timeout(Duration::from_secs(2), async {
                            socket.send(Message::Close(Some(close))).await?;
                            // Read on until the server's reply closes the connection.
                            while socket.next().await.is_some() {}
                            Ok::<(), tokio_tungstenite::tungstenite::Error>(())
                        })
                        .await;
                        return;
                    }
                    Ended::Lost(why) => why,
                }
            }
            Ok(Err(e)) => {
                let why = format!("cannot connect: {e}");
                settings.fail_over(&label, place, &why);
                why
            }
            Err(_) => {
                let why = "cannot connect: timed out".to_owned();
                settings.fail_over(&label, place, &why);
                why
            }
        };
        let delay = backoff.next_delay();
        log::warn!(
            "{label} | feed lost ({why}); reconnecting in {:.1} s{}",
            delay.as_secs_f64(),
            last.map(|id| format!(" to resume after #{id}"))
                .unwrap_or_default()
        );
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

/// The handshake request, with the token as a header (never in the URL, which servers log).
fn request(
    url: &str,
    token: Option<&str>,
) -> Result<
    tokio_tungstenite::tungstenite::handshake::client::Request,
    tokio_tungstenite::tungstenite::Error,
> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::http::HeaderValue;
    let mut request = url.into_client_request()?;
    if let Some(token) = token {
        let value = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|e| tokio_tungstenite::tungstenite::Error::HttpFormat(e.into()))?;
        request.headers_mut().insert("authorization", value);
    }
    Ok(request)
}

enum Ended {
    Stopped,
    Lost(String),
}

async fn read<S>(
    socket: &mut S,
    label: &str,
    last: &mut Option<u64>,
    stop: &CancellationToken,
) -> Ended
where
    S: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        let message = tokio::select! {
            _ = stop.cancelled() => return Ended::Stopped,
            m = socket.next() => m,
        };
        let text = match message {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(frame))) => {
                return Ended::Lost(match frame {
                    Some(f) => format!("server closed: {} {}", u16::from(f.code), f.reason),
                    None => "server closed".into(),
                });
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Ended::Lost(e.to_string()),
            None => return Ended::Lost("connection closed".into()),
        };
        let event = match serde_json::from_str::<Event>(&text) {
            Ok(event) => event,
            Err(e) => {
                log::warn!("{label} | unreadable frame ({e}): {text}");
                continue;
            }
        };
        match &event {
            Event::Hello { last_id } => match last {
                None => {
                    *last = Some(*last_id);
                    log::info!("{label} | subscribed; the server is at pour #{last_id}");
                }
                Some(id) => log::info!("{label} | resubscribed; resuming after pour #{id}"),
            },
            Event::Pour { beer } => {
                // The server sends each pour once per subscription; this guards the seam
                // between two subscriptions all the same.
                if last.is_some_and(|id| beer.id <= id) {
                    continue;
                }
                *last = Some(beer.id);
            }
            _ => {}
        }
        if let Some(line) = line(label, &event) {
            log::info!("{line}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_read_as_documented() {
        let pour: Event = serde_json::from_str(
            r#"{"event":"pour","beer":{"id":17,"tapId":3,"volume":500.0,"type":"pint","timestamp":"2026-11-22T21:04:05.123Z"}}"#,
        )
        .unwrap();
        assert_eq!(
            line("tap 2", &pour).unwrap(),
            "tap 2 | pour #17 from tap 3: pint, 500 ml"
        );
        let report: Event = serde_json::from_str(
            r#"{"event":"report","report":{"totalPours":120,"totalVolumeMl":54321.0,"byTap":[{"tapId":1,"pours":20,"volumeMl":1.0,"sharePct":16.67},{"tapId":3,"pours":100,"volumeMl":1.0,"sharePct":83.33}],"byType":[],"poursLastMinute":4,"poursLastHour":9,"generatedAt":"x"}}"#,
        )
        .unwrap();
        assert_eq!(
            line("tap 2", &report).unwrap(),
            "tap 2 | report: 120 pours, 54.3 l; 4 in the last minute; busiest tap 3 (83.3%)"
        );
        let deleted: Event = serde_json::from_str(r#"{"event":"deleted","id":9}"#).unwrap();
        assert_eq!(
            line("taps 1-3", &deleted).unwrap(),
            "taps 1-3 | pour #9 deleted"
        );
        let future: Event = serde_json::from_str(r#"{"event":"party","x":1}"#).unwrap();
        assert!(line("tap 1", &future).is_none());
    }
}
