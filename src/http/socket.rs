//! WebSocket `/sockets/beers`: the handshake, the replay, and each subscriber's connection.
//!
//! The upgrade is done here rather than with `warp::ws` so that frames go out as the hub's
//! shared bytes (warp's `Message::text` copies into a `String` per subscriber) and so that
//! the socket's buffers can be sized for thousands of mostly idle subscribers.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::task::Poll;

use futures::{SinkExt, StreamExt};
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Bytes, Message};
use tokio_util::task::AbortOnDropHandle;
use warp::http::{HeaderMap, Response, StatusCode, header};
use warp::reply::Response as WarpResponse;

use super::error::ApiError;
use super::error::ErrorBody;
use super::request::{glass_param, tap_param, whole_number};
use super::scope::Scope;
use super::state::AppState;
use crate::auth::{Credential, Identity, TokenSet};
use crate::frame::{Frame, to_json};
use crate::glass::Glass;
use crate::hub::{Filter, Kick, Subscription};
use crate::lane::{self, Lane, Shared};
use crate::store::ListQuery;

/// Client frames larger than this close the connection (1009).
pub const MAX_CLIENT_FRAME: usize = 4096;
/// Pours read from the store per replay step.
const REPLAY_PAGE: usize = 512;
/// Frames taken from a held lane per write at most.
const BATCH: usize = 256;

type Socket = WebSocketStream<Shared>;

/// What a subscriber asked for when it connected.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SocketParams {
    /// `tapId=N`: the subscriber is tap N and is not sent its own pours...
    pub tap_id: Option<u32>,
    /// ...unless `echo=true`.
    pub echo: bool,
    /// `type=pint` (repeatable): only these glasses' pours.
    pub glasses: Vec<std::sync::Arc<str>>,
    /// `since=ID`: replay stored pours after this id first, and the keg events from there.
    pub since: Option<u64>,
    /// `eventsSince=SEQ`: replay exactly the keg, tap and alert events after this one.
    pub events_since: Option<u64>,
    /// `venue=ID` (repeatable): only these venues' events and reports.
    pub venues: Vec<String>,
    /// The venues it follows, as its token and `venue` allow (none: every venue).
    pub scope: Option<Vec<Arc<str>>>,
}

impl SocketParams {
    /// Parses the connect-time query string; unknown parameters are ignored.
    pub fn parse(query: &str, state: &AppState) -> Result<SocketParams, ApiError> {
        let mut params = SocketParams::default();
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            match &*key {
                "tapId" => params.tap_id = Some(tap_param(&value)?),
                "echo" => {
                    params.echo = match &*value {
                        "true" | "1" => true,
                        "false" | "0" => false,
                        _ => return Err(ApiError::BadRequest("echo must be true or false".into())),
                    }
                }
                "type" => params.glasses.push(glass_param(state, &value)?),
                "venue" => params.venues.push(value.into_owned()),
                "since" => {
                    params.since = Some(whole_number(&value).ok_or_else(|| {
                        ApiError::BadRequest("since must be a pour id (0 to 2^63-1)".into())
                    })?)
                }
                "eventsSince" => {
                    params.events_since = Some(whole_number(&value).ok_or_else(|| {
                        ApiError::BadRequest(
                            "eventsSince must be a keg event's seq (0 to 2^63-1)".into(),
                        )
                    })?)
                }
                _ => {}
            }
        }
        Ok(params)
    }

    fn filter(&self) -> Filter {
        Filter {
            own_tap: if self.echo { None } else { self.tap_id },
            glasses: self.glasses.clone(),
            venues: self.scope.clone(),
        }
    }
}

/// Follow the live feed
#[utoipa::path(
    get, path = "/sockets/beers", tag = "live",
    description = "WebSocket upgrade. Every frame is JSON text with an `event` field (schema `SocketEvent`): \
        `hello` first, then `pour`, `deleted` and `report` as they happen. Close codes: 1001 shutdown, \
        1002 protocol error, 1008 slow consumer, 1009 client frame over 4 KiB, 1013 overloaded (reconnect with since).",
    params(
        ("tapId" = Option<u32>, Query, description = "I am this tap: its pours are not sent"),
        ("echo" = Option<bool>, Query, description = "Send this tap's own pours after all"),
        ("type" = Option<Vec<String>>, Query, explode = true, description = "Only these glasses (repeatable)"),
        ("venue" = Option<Vec<String>>, Query, explode = true, description = "Only these venues' events, and their reports rather than the chain's (repeatable; a token confined to a venue follows its own)"),
        ("since" = Option<u64>, Query, description = "Replay stored pours above this id first, with the keg events from that pour on, then go live"),
        ("eventsSince" = Option<u64>, Query, description = "Replay exactly the keg, tap and alert events whose seq is above this one (with since, in their places among the pours)"),
        ("token" = Option<String>, Query, description = "Bearer token, for browsers that cannot set headers"),
    ),
    responses(
        (status = 101, description = "Switching to WebSocket; frames follow `SocketEvent`", body = SocketEvent),
        (status = 400, description = "A bad parameter or handshake header", body = ErrorBody),
        (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 403, description = "This token may not subscribe, or not to that venue", body = ErrorBody),
        (status = 404, description = "No such venue", body = ErrorBody),
        (status = 422, description = "Unknown glass type", body = ErrorBody),
        (status = 426, description = "Not a WebSocket upgrade", body = ErrorBody),
        (status = 503, description = "As many subscribers as the server takes", body = ErrorBody),
    )
)]
pub fn subscribe(
    headers: &HeaderMap,
    upgrade: Option<hyper::upgrade::OnUpgrade>,
    query: &str,
    state: &AppState,
    who: &Option<Identity>,
) -> Result<WarpResponse, ApiError> {
    // A token's subscriber is closed when a reload revokes the token.
    let credential = match who {
        Some(Identity::Token(credential)) => Some(credential.clone()),
        _ => None,
    };
    let mut params = SocketParams::parse(query, state)?;
    params.scope = Scope::of(state, who).read_many(state, &params.venues)?;
    handshake(headers, upgrade, params, state, credential)
}

/// `GET /sockets/beers`: checks the handshake and the query, answers 101, and serves the
/// connection in a task that shutdown waits for.
fn handshake(
    headers: &HeaderMap,
    on_upgrade: Option<OnUpgrade>,
    params: SocketParams,
    state: &AppState,
    credential: Option<Arc<Credential>>,
) -> Result<WarpResponse, ApiError> {
    let has_token = |name: header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str().is_ok_and(|v| {
                v.split(',')
                    .any(|part| part.trim().eq_ignore_ascii_case(token))
            })
        })
    };
    // The query was read first: a plain request with a bad one learns what is wrong.
    if !has_token(header::CONNECTION, "upgrade") || !has_token(header::UPGRADE, "websocket") {
        return Err(ApiError::UpgradeRequired);
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_none_or(|v| v != "13")
    {
        return Err(ApiError::BadRequest(
            "Sec-WebSocket-Version must be 13".into(),
        ));
    }
    let key = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .ok_or_else(|| ApiError::BadRequest("Sec-WebSocket-Key is missing".into()))?;
    let slot = state
        .hub
        .admit(state.socket.max_subscribers)
        .ok_or_else(|| {
            ApiError::Overloaded(
                "the server has as many subscribers as it takes; try again later".into(),
            )
        })?;
    let on_upgrade =
        on_upgrade.ok_or_else(|| ApiError::Internal("connection cannot be upgraded".into()))?;

    let accept = derive_accept_key(key.as_bytes());
    let (fanout, tasks) = (state.fanout.clone(), state.tasks.clone());
    let state = state.clone();
    // On the fan-out runtime: see `AppState::fanout`.
    fanout.spawn(tasks.track_future(async move {
        let _slot = slot;
        match on_upgrade.await {
            Ok(upgraded) => match socket(upgraded).await {
                Ok(socket) => serve(socket, params, credential, state).await,
                Err(e) => log::error!("WebSocket upgrade failed: {e}"),
            },
            Err(e) => log::debug!("WebSocket upgrade failed: {e}"),
        }
    }));

    let response = Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "upgrade")
        .header(header::UPGRADE, "websocket")
        .header(header::SEC_WEBSOCKET_ACCEPT, accept)
        .body(Default::default())
        .map_err(|e| ApiError::Internal(format!("building the 101 response: {e}")))?;
    Ok(response)
}

/// The upgraded connection as a WebSocket over the bare TCP stream, registered with the
/// fan-out runtime this runs on (it was accepted on the HTTP one). The bare stream is what
/// lets the hub write frames with one `try_write` each, past tungstenite's buffers.
async fn socket(upgraded: Upgraded) -> io::Result<Socket> {
    let parts = upgraded
        .downcast::<TokioIo<TcpStream>>()
        .map_err(|_| io::Error::other("the connection is not a TCP stream"))?;
    let tcp = Arc::new(TcpStream::from_std(parts.io.into_inner().into_std()?)?);
    let config = WebSocketConfig::default()
        // Clients send little: small read buffers keep idle subscribers cheap.
        .read_buffer_size(4096)
        .write_buffer_size(16 * 1024)
        .max_message_size(Some(MAX_CLIENT_FRAME))
        .max_frame_size(Some(MAX_CLIENT_FRAME));
    // Bytes the client sent right after its handshake are already in hyper's buffer.
    let early = parts.read_buf.to_vec();
    Ok(WebSocketStream::from_partially_read(Shared(tcp), early, Role::Server, Some(config)).await)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase", tag = "event", rename = "hello")]
struct Hello<'a> {
    last_id: u64,
    /// The last keg or tap event's seq: later ones follow.
    last_seq: u64,
    glasses: &'a [Glass],
    report_interval_seconds: f64,
    time_zone: &'static str,
}

/// How a connection ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Shutdown,
    Kicked(Kick),
    TooBig,
    ProtocolError,
    ClientClosed,
    Unresponsive,
    Broken,
}

impl End {
    fn close_frame(self) -> Option<CloseFrame> {
        let (code, reason) = match self {
            End::Shutdown => (CloseCode::Away, "server shutting down"),
            End::Kicked(Kick::SlowConsumer) => (CloseCode::Policy, "slow consumer"),
            End::Kicked(Kick::Overloaded) => {
                (CloseCode::Again, "server overloaded; reconnect with since")
            }
            End::TooBig => (CloseCode::Size, "message too big"),
            End::Kicked(Kick::Revoked) => (CloseCode::Policy, "token revoked"),
            End::ProtocolError => (CloseCode::Protocol, "protocol error"),
            End::ClientClosed | End::Unresponsive | End::Broken => return None,
        };
        Some(CloseFrame {
            code,
            reason: reason.into(),
        })
    }
}

/// Runs `work` unless shutdown or a kick comes first.
async fn unless_ended<T>(
    work: impl Future<Output = T>,
    kicked: &mut oneshot::Receiver<Kick>,
    state: &AppState,
) -> Result<T, End> {
    tokio::select! {
        biased;
        _ = state.shutdown.cancelled() => Err(End::Shutdown),
        why = kicked => Err(why.map_or(End::Shutdown, End::Kicked)),
        out = work => Ok(out),
    }
}

async fn serve(
    mut socket: Socket,
    params: SocketParams,
    credential: Option<Arc<Credential>>,
    state: AppState,
) {
    let filter = params.filter();
    let mut subscription = state.hub.subscribe(filter.clone(), &socket.get_ref().0);
    let _watch = credential.map(|credential| {
        let watch = state.gate.auth().watch();
        let revoke = kick_when_revoked(credential, watch, state.hub.clone(), subscription.id());
        // The watcher lives as long as its connection.
        AbortOnDropHandle::new(state.fanout.spawn(revoke))
    });
    let mut unsent = Bytes::new();
    let end = match converse(
        &mut socket,
        &mut subscription,
        &mut unsent,
        &params,
        &filter,
        &state,
    )
    .await
    {
        Ok(end) | Err(end) => end,
    };
    // From here the hub writes nothing more; whatever is still queued is discarded. Of a
    // frame cut short, by the hub or by this task (never both), the rest must go first.
    let cut = subscription.lane.close();
    drop(subscription);
    log::debug!("subscriber closed: {end:?}");
    if let Some(frame) = end.close_frame() {
        // The close frame gets a grace period to be taken; then the connection is dropped.
        let _ = tokio::time::timeout(state.socket.close_grace, async {
            socket.get_mut().write_all(&unsent).await?;
            socket.get_mut().write_all(&cut).await?;
            socket.send(Message::Close(Some(frame))).await?;
            while socket.next().await.is_some() {}
            Ok::<(), tungstenite::Error>(())
        })
        .await;
    } else if end == End::ClientClosed {
        // Flushes the close reply that tungstenite queued on reading the client's close.
        let _ = tokio::time::timeout(state.socket.close_grace, socket.flush()).await;
    }
}

/// Kicks subscriber `id` once a reload of the tokens no longer holds `credential`.
async fn kick_when_revoked(
    credential: Arc<Credential>,
    mut tokens: tokio::sync::watch::Receiver<Arc<TokenSet>>,
    hub: crate::hub::Hub,
    id: u64,
) {
    loop {
        if !tokens.borrow_and_update().holds(&credential) {
            log::info!(
                "subscriber {id}: token {:?} was revoked; closing",
                credential.name
            );
            crate::metrics::subscriber_revoked();
            hub.kick(id, Kick::Revoked);
            return;
        }
        if tokens.changed().await.is_err() {
            return;
        }
    }
}

/// The life of one connection: hello, replay, then live frames, pings and client frames.
async fn converse(
    socket: &mut Socket,
    subscription: &mut Subscription,
    unsent: &mut Bytes,
    params: &SocketParams,
    filter: &Filter,
    state: &AppState,
) -> Result<End, End> {
    let (lane, id) = (subscription.lane.clone(), subscription.id());
    let kicked = &mut subscription.kicked;
    // Registered before lastId is read: any pour above lastId reaches the lane.
    let last_id = match state.store.stats().await {
        Ok(stats) => stats.last_id,
        Err(e) => {
            log::error!("subscriber could not read the store: {e}");
            return Err(End::Broken);
        }
    };
    lane.raise_floor(last_id);
    // Likewise for keg events: those up to here may still be on their way through the
    // hub, and predate the subscription.
    let last_seq = state.bar.hold().last_seq();
    lane.raise_keg_floor(last_seq);
    let hello = Hello {
        last_id,
        last_seq,
        glasses: state.pouring.catalogue.glasses(),
        report_interval_seconds: state.socket.report_interval.as_secs_f64(),
        // A venue's follower reads times on its venue's clock.
        time_zone: match params.scope.as_deref() {
            Some([venue]) => state.bar.venues(|v| v.rules(venue).clock.zone.name()),
            _ => state.pouring.time_zone,
        },
    };
    unless_ended(
        socket.send(Message::Text(to_json(&hello).into())),
        kicked,
        state,
    )
    .await?
    .map_err(|_| End::Broken)?;
    crate::metrics::frames_sent(1);

    if params.since.is_some() || params.events_since.is_some() {
        let replayed = unless_ended(replay(socket, params, filter, state), kicked, state).await?;
        // Live pours and keg events the replay covered are not sent again.
        let (pours, kegs) = replayed.map_err(|_| End::Broken)?;
        lane.raise_floor(pours);
        lane.raise_keg_floor(kegs);
    }
    // What queued meanwhile goes out; then the hub writes to the socket itself.
    drain(socket, &lane, unsent, kicked, state).await?;

    let ping_every = state.socket.ping_interval;
    // The first ping comes between half and one and a half intervals in, spread by the
    // subscriber's id: subscribers that connected together must not all be pinged, and
    // answer, in the same millisecond, every interval, while the hub is writing to them.
    let spread = (id.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 54) as u32; // 0..1024
    let first = ping_every / 2 + ping_every * spread / 1024;
    let mut ping = tokio::time::interval_at(Instant::now() + first, ping_every);
    let mut last_heard = Instant::now();
    // Read once first: whatever came with the handshake is already buffered, and no
    // readiness will announce it.
    let mut read_first = true;
    let shutdown = state.shutdown.cancelled();
    tokio::pin!(shutdown);
    loop {
        let readable = std::future::poll_fn(|cx| match read_first {
            true => Poll::Ready(Ok(())),
            false => socket.get_ref().0.poll_read_ready(cx),
        });
        tokio::select! {
            biased;
            _ = &mut shutdown => return Ok(End::Shutdown),
            why = &mut *kicked => return Ok(why.map_or(End::Shutdown, End::Kicked)),
            _ = lane.ready.notified() => drain(socket, &lane, unsent, kicked, state).await?,
            ready = readable => {
                read_first = false;
                if ready.is_err() {
                    return Ok(End::Broken);
                }
                // Reading may make tungstenite write (a pong, a close reply).
                lane.hold();
                let mut pinged = false;
                // Every message that can be read now; then back to waiting for readiness.
                while let Some(message) = next_now(socket).await {
                    match message {
                        Some(Ok(Message::Close(_))) | None => return Ok(End::ClientClosed),
                        // Pongs and anything else the client says prove it is alive; text
                        // is ignored.
                        Some(Ok(message)) => {
                            pinged |= message.is_ping();
                            last_heard = Instant::now();
                        }
                        Some(Err(tungstenite::Error::Capacity(_))) => return Ok(End::TooBig),
                        Some(Err(tungstenite::Error::Protocol(_))) => return Ok(End::ProtocolError),
                        Some(Err(_)) => return Ok(End::Broken),
                    }
                }
                if pinged {
                    // tungstenite queued the pong: out before any frame written past it.
                    unless_ended(socket.flush(), kicked, state).await?.map_err(|_| End::Broken)?;
                }
                drain(socket, &lane, unsent, kicked, state).await?;
            }
            _ = ping.tick() => {
                if last_heard.elapsed() > state.socket.pong_timeout {
                    return Ok(End::Unresponsive);
                }
                lane.hold();
                let send = socket.send(Message::Ping(Bytes::new()));
                unless_ended(send, kicked, state).await?.map_err(|_| End::Broken)?;
                drain(socket, &lane, unsent, kicked, state).await?;
            }
        }
    }
}

/// Writes out what queued on the lane while it was held, then hands the socket back to the
/// hub.
async fn drain(
    socket: &mut Socket,
    lane: &Lane,
    unsent: &mut Bytes,
    kicked: &mut oneshot::Receiver<Kick>,
    state: &AppState,
) -> Result<(), End> {
    while let Some(batch) = lane.take(BATCH) {
        crate::metrics::frames_sent(batch.frames);
        write_frames(socket, batch.bytes, unsent, kicked, state).await?;
    }
    Ok(())
}

/// The next message if one can be read without waiting: `None` when the socket has nothing
/// more for now, `Some(None)` when the client is gone.
async fn next_now(socket: &mut Socket) -> Option<Option<tungstenite::Result<Message>>> {
    std::future::poll_fn(|cx| match socket.poll_next_unpin(cx) {
        Poll::Ready(message) => Poll::Ready(Some(message)),
        Poll::Pending => Poll::Ready(None),
    })
    .await
}

/// Writes whole frames straight to the socket ([`lane::write`]), giving up on shutdown or
/// a kick with what is left in `unsent` (empty when this is called), which the connection's
/// end writes before its close frame.
async fn write_frames(
    socket: &mut Socket,
    bytes: Bytes,
    unsent: &mut Bytes,
    kicked: &mut oneshot::Receiver<Kick>,
    state: &AppState,
) -> Result<(), End> {
    *unsent = bytes;
    let stream = socket.get_ref();
    unless_ended(lane::write(stream, unsent), kicked, state)
        .await?
        .map_err(|_| End::Broken)
}

/// Sends every stored pour after `since` that the filter admits, in id order, and the keg
/// events owed in their places among them; returns the highest pour id it looked at (0 if
/// none) and the last keg event's seq when it began.
async fn replay(
    socket: &mut Socket,
    params: &SocketParams,
    filter: &Filter,
    state: &AppState,
) -> Result<(u64, u64), ()> {
    // Taken after the subscription is registered: later events are queued for it too.
    let (events, keg_top) = state
        .bar
        .hold()
        .owed(params.since.unwrap_or(0), params.events_since);
    let mut events = events.into_iter().peekable();
    let mut seen = 0;
    if let Some(since) = params.since {
        let mut cursor = since;
        loop {
            let mut query = ListQuery::after(cursor, REPLAY_PAGE);
            // One venue's pours come from its own index.
            if let Some([venue]) = params.scope.as_deref() {
                query.venue = Some(venue.clone());
            }
            let page = state
                .store
                .list(&query)
                .await
                .map_err(|e| log::error!("replay could not read the store: {e}"))?;
            let (mut bytes, mut frames) = (Vec::new(), 0);
            for pour in &page.pours {
                while let Some(event) = events.next_if(|e| e.after() < pour.id) {
                    if filter.admits_notice(&event) {
                        bytes.extend_from_slice(&Frame::notice(&event).wire);
                        frames += 1;
                    }
                }
                if filter.admits(pour) {
                    bytes.extend_from_slice(&Frame::pour(pour).wire);
                    frames += 1;
                }
            }
            socket.get_mut().write_all(&bytes).await.map_err(|_| ())?;
            crate::metrics::frames_sent(frames);
            match page.pours.last() {
                Some(last) => {
                    seen = last.id;
                    cursor = last.id;
                }
                None => break,
            }
            if page.pours.len() < REPLAY_PAGE {
                break;
            }
        }
    }
    let (mut rest, mut frames) = (Vec::new(), 0);
    for event in events.filter(|e| filter.admits_notice(e)) {
        rest.extend_from_slice(&Frame::notice(&event).wire);
        frames += 1;
    }
    if frames > 0 {
        socket.get_mut().write_all(&rest).await.map_err(|_| ())?;
        crate::metrics::frames_sent(frames);
    }
    Ok((seen, keg_top))
}

/// The frames of `/sockets/beers`, as a schema. The hub writes them (`hub::Wire` and
/// `Hello` above); a test validates real frames against this.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(tag = "event", rename_all = "camelCase")]
pub enum SocketEvent {
    /// First, on connect: pours above `lastId` follow.
    #[serde(rename_all = "camelCase")]
    Hello {
        last_id: u64,
        /// The last keg, tap or alert event's `seq` (0 before the first): later ones
        /// follow.
        last_seq: u64,
        glasses: Vec<Glass>,
        report_interval_seconds: f64,
        /// The bar's time zone (IANA name, `--timezone`): clocks for people use it.
        time_zone: String,
    },
    /// A new pour (and, with `since`, each replayed one).
    Pour { beer: crate::pour::Pour },
    /// A pour was deleted.
    Deleted { id: u64 },
    /// The report, at the interval and every N pours.
    Report { report: crate::report::Report },
    /// Something happened to a keg: tapped, corrected, low, empty, finished; right after
    /// the pour or the change that caused it.
    #[serde(rename_all = "camelCase")]
    Keg {
        /// tapped, corrected, low, empty or finished.
        kind: crate::keg::KegEventKind,
        /// The keg, tap and alert events' own sequence, from 1, the same on every server.
        seq: u64,
        /// The id of the last pour before it.
        after: u64,
        tap_id: u32,
        keg: crate::keg::KegView,
    },
    /// A tap with a keg on went quiet (no pour for the quiet time while the bar was open),
    /// or poured again (back: right after that pour).
    #[serde(rename_all = "camelCase")]
    Tap {
        /// quiet or back.
        kind: crate::keg::KegEventKind,
        seq: u64,
        after: u64,
        tap_id: u32,
        /// The keg on the tap.
        keg: crate::keg::KegView,
    },
    /// An alert opened, grouped one more event (`updated`: live only, with `seq` 0), was
    /// acknowledged or resolved; right after the change that caused it.
    #[serde(rename_all = "camelCase")]
    Alert {
        change: crate::alert::Change,
        /// The keg, tap and alert events' sequence (0 for an update).
        seq: u64,
        after: u64,
        alert: crate::alert::Alert,
    },
}
