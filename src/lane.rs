//! One subscriber's way to its socket, in one place: the [`Lane`] the hub offers frames to
//! (written at once while the socket takes them, else queued for the subscriber's task),
//! the stream as tungstenite's transport ([`Shared`]), and the task's writes ([`write`]).
//! The hub keeps the roster and the sweep; the socket module, the conversation.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Bytes;

use crate::frame::Frame;

/// The way from the hub to one subscriber's socket.
///
/// While the subscriber's task has nothing to write, the lane is *direct*: the hub writes
/// each frame to the socket itself, with one non-blocking system call and no task to wake.
/// When a write would block or comes out short, or the task needs the socket (a ping, the
/// pong tungstenite owes, the hello and replay), the lane is *held*: frames queue, up to the
/// queue's capacity, and the task writes them out and hands the socket back once the queue
/// is empty. Both switches happen under the lane's lock, so frames never interleave and
/// never leave out of order.
pub struct Lane {
    state: Mutex<LaneState>,
    /// Rung when the subscriber's task has frames to write.
    pub ready: Notify,
    /// Weak: the connection closes when its task lets go, even while the hub's roster
    /// still lists the lane.
    stream: Weak<TcpStream>,
}

#[derive(Default)]
struct LaneState {
    direct: bool,
    /// Over: nothing more is written or queued.
    closed: bool,
    queue: VecDeque<Frame>,
    /// The rest of a frame the hub wrote only part of: it goes first.
    unsent: Bytes,
    /// Pours at or below this were replayed or predate the subscription: not sent.
    floor: u64,
    /// The same for keg events, by sequence number.
    keg_floor: u64,
}

impl LaneState {
    /// Whether `frame` is still owed: not replayed already.
    fn owes(&self, frame: &Frame) -> bool {
        frame.pour_id.is_none_or(|id| id > self.floor)
            && frame.keg_seq.is_none_or(|seq| seq > self.keg_floor)
    }
}

pub enum Offer {
    /// This many frames went to the socket.
    Written(usize),
    Queued,
    Full,
}

/// Frames as one buffer; a lone frame is its own bytes, not a copy.
pub fn join<'a>(frames: impl Iterator<Item = &'a Frame>) -> Bytes {
    let mut frames = frames.peekable();
    let Some(first) = frames.next() else {
        return Bytes::new();
    };
    if frames.peek().is_none() {
        return first.wire.clone();
    }
    let mut joined = first.wire.to_vec();
    for frame in frames {
        joined.extend_from_slice(&frame.wire);
    }
    joined.into()
}

/// Frames taken from a held lane, to be written in one go.
pub struct Batch {
    pub bytes: Bytes,
    pub frames: usize,
}

impl Lane {
    pub fn new(stream: &Arc<TcpStream>) -> Lane {
        Lane {
            state: Mutex::default(),
            ready: Notify::new(),
            stream: Arc::downgrade(stream),
        }
    }

    fn state(&self) -> MutexGuard<'_, LaneState> {
        // Nothing panics while holding it; if something did, the state is still whole.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes the `frames` a subscriber is owed (those its filter admits; `joined` is all of
    /// them as one buffer when that is available): written with one system call, queued,
    /// or refused because the queue is full.
    pub fn offer<'a>(
        &self,
        frames: impl Iterator<Item = &'a Frame> + Clone,
        joined: Option<&Bytes>,
        capacity: usize,
    ) -> Offer {
        let mut state = self.state();
        let Some(stream) = self.stream.upgrade().filter(|_| !state.closed) else {
            return Offer::Queued;
        };
        let (floor, keg_floor) = (state.floor, state.keg_floor);
        let fresh = move |f: &&Frame| {
            f.pour_id.is_none_or(|id| id > floor) && f.keg_seq.is_none_or(|seq| seq > keg_floor)
        };
        if state.direct {
            let count = frames.clone().filter(fresh).count();
            let bytes = match joined {
                Some(joined) if count == frames.clone().count() => joined.clone(),
                _ => join(frames.clone().filter(fresh)),
            };
            if bytes.is_empty() {
                return Offer::Queued;
            }
            match stream.try_write(&bytes) {
                Ok(n) if n == bytes.len() => return Offer::Written(count),
                Ok(n) => state.unsent = bytes.slice(n..),
                // Would block, or broken: the task writes them, or finds out.
                Err(_) => state.queue.extend(frames.filter(fresh).cloned()),
            }
            state.direct = false;
        } else {
            let was_empty = state.queue.is_empty();
            for frame in frames.filter(fresh) {
                if state.queue.len() >= capacity {
                    return Offer::Full;
                }
                state.queue.push_back(frame.clone());
            }
            if !was_empty || state.queue.is_empty() {
                // Rung already for what was queued, and not yet taken; or nothing new.
                return Offer::Queued;
            }
        }
        drop(state);
        self.ready.notify_one();
        Offer::Queued
    }

    /// The subscriber's task is about to write through the socket itself: frames queue.
    pub fn hold(&self) {
        self.state().direct = false;
    }

    /// Raises the floor: pours at or below `floor` are not sent from now on.
    pub fn raise_floor(&self, floor: u64) {
        let mut state = self.state();
        state.floor = state.floor.max(floor);
    }

    /// Keg events up to `seq` are not sent from now on.
    pub fn raise_keg_floor(&self, seq: u64) {
        let mut state = self.state();
        state.keg_floor = state.keg_floor.max(seq);
    }

    /// What is queued (at most `max` frames) as one buffer; `None`, with the lane direct
    /// again, once nothing is left.
    pub fn take(&self, max: usize) -> Option<Batch> {
        let mut guard = self.state();
        let state = &mut *guard;
        if state.closed {
            return None;
        }
        let mut bytes = std::mem::take(&mut state.unsent);
        let mut joined: Option<Vec<u8>> = None;
        let mut frames = 0;
        while frames < max {
            let Some(frame) = state.queue.pop_front() else {
                break;
            };
            if !state.owes(&frame) {
                continue;
            }
            if bytes.is_empty() {
                // A lone frame goes out as the hub's own bytes, not a copy.
                bytes = frame.wire;
            } else {
                joined
                    .get_or_insert_with(|| Vec::from(&bytes[..]))
                    .extend_from_slice(&frame.wire);
            }
            frames += 1;
        }
        if let Some(joined) = joined {
            bytes = joined.into();
        }
        if bytes.is_empty() {
            // Only skipped frames stop short of `max`: the queue is empty.
            state.direct = true;
            return None;
        }
        Some(Batch { bytes, frames })
    }

    /// Ends the lane; returns the rest of a frame the hub cut short, which must go out
    /// before anything else is written.
    pub fn close(&self) -> Bytes {
        let mut state = self.state();
        state.closed = true;
        state.direct = false;
        state.queue.clear();
        std::mem::take(&mut state.unsent)
    }
}

/// The TCP stream as tungstenite's transport, shared with the hub, which writes frames to
/// it directly while the subscriber's lane is direct (see [`Lane`]). Reads and writes go
/// through readiness and `try_*`, which need only `&TcpStream`.
pub struct Shared(pub Arc<TcpStream>);

impl AsyncRead for Shared {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            ready!(self.0.poll_read_ready(cx))?;
            match self.0.try_read(buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for Shared {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.0.poll_write_ready(cx))?;
            match self.0.try_write(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                done => return Poll::Ready(done),
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// The connection closes when the last handle on the stream drops.
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Writes `unsent` (whole frames) straight to the TCP stream under tungstenite: at once if
/// the socket takes it, else as it does, leaving in `unsent` what has not gone out yet, so
/// that a caller that gives up still knows what must go out before anything else.
///
/// Safe past tungstenite because its own buffer is empty whenever this runs: every `send`
/// flushes, and a pong it queued on reading a ping is flushed right after the read. Safe
/// beside the hub because the lane is held meanwhile.
pub async fn write(stream: &Shared, unsent: &mut Bytes) -> io::Result<()> {
    while !unsent.is_empty() {
        match stream.0.try_write(unsent) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => *unsent = unsent.slice(n..),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => stream.0.writable().await?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
