//! A bench subscriber that reads WebSocket frames by hand.
//!
//! The fan-out bench reads every frame the server writes. Read through tungstenite, each
//! frame cost the tool about as much CPU as the server spent sending it, so at 1,000
//! subscribers the tool's own queue was part of the latency it reported. Here one read takes
//! every frame that has arrived on a socket, and they share one clock reading.
//!
//! Only what a subscriber needs: the handshake, server frames (fragmented or not), pongs for
//! pings, and the close frame.

use std::io;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

/// Frames longer than this end the subscription: no server event comes near it.
const MAX_FRAME: u64 = 16 << 20;

/// One frame's place at the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameAt {
    pub fin: bool,
    pub opcode: u8,
    /// Where the payload starts, and the whole frame's length.
    pub payload_at: usize,
    pub len: usize,
    pub mask: Option<[u8; 4]>,
}

/// Parses the frame at the start of `buf`: `None` until all of it has arrived.
pub fn parse_frame(buf: &[u8]) -> io::Result<Option<FrameAt>> {
    let [b0, b1, ..] = *buf else { return Ok(None) };
    let (mut at, len) = match b1 & 0x7f {
        126 => match buf.get(2..4) {
            Some(ext) => (4, u64::from(u16::from_be_bytes([ext[0], ext[1]]))),
            None => return Ok(None),
        },
        127 => match buf.get(2..10).and_then(|ext| <[u8; 8]>::try_from(ext).ok()) {
            Some(ext) => (10, u64::from_be_bytes(ext)),
            None => return Ok(None),
        },
        n => (2, u64::from(n)),
    };
    if len > MAX_FRAME {
        return Err(io::Error::other(format!("a {len}-byte frame")));
    }
    let mask = if b1 & 0x80 != 0 {
        let Some(key) = buf
            .get(at..at + 4)
            .and_then(|k| <[u8; 4]>::try_from(k).ok())
        else {
            return Ok(None);
        };
        at += 4;
        Some(key)
    } else {
        None
    };
    let total = at + len as usize;
    Ok((buf.len() >= total).then_some(FrameAt {
        fin: b0 & 0x80 != 0,
        opcode: b0 & 0x0f,
        payload_at: at,
        len: total,
        mask,
    }))
}

/// A subscribed socket.
pub struct Subscriber {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Bytes of `buf` before this are handled.
    start: usize,
    /// A fragmented message, until its last frame.
    message: Vec<u8>,
    quick_acks: bool,
}

impl Subscriber {
    /// Opens `ws://{host}{target}` through `addr`, with `extra` header lines; see
    /// `bench fanout --quick-acks`.
    pub async fn connect(
        addr: &str,
        host: &str,
        target: &str,
        extra: &str,
        quick_acks: bool,
    ) -> io::Result<Subscriber> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let key = "dGhlIHNhbXBsZSBub25jZQ==";
        let request = format!(
            "GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n{extra}\r\n"
        );
        let mut subscriber = Subscriber {
            stream,
            buf: Vec::with_capacity(4096),
            start: 0,
            message: Vec::new(),
            quick_acks,
        };
        subscriber.stream.write_all(request.as_bytes()).await?;
        let head_end = loop {
            if let Some(end) = super::measure::find(&subscriber.buf, b"\r\n\r\n") {
                break end + 4;
            }
            if subscriber.fill().await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        };
        let head = String::from_utf8_lossy(&subscriber.buf[..head_end]).to_ascii_lowercase();
        let accept = derive_accept_key(key.as_bytes()).to_ascii_lowercase();
        if !head.starts_with("http/1.1 101") || !head.contains(&accept) {
            let status = head.lines().next().unwrap_or("").to_owned();
            return Err(io::Error::other(format!("handshake refused: {status}")));
        }
        subscriber.start = head_end;
        Ok(subscriber)
    }

    /// Reads once into the buffer, after what it holds; returns the bytes read.
    async fn fill(&mut self) -> io::Result<usize> {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        if self.buf.capacity() - self.buf.len() < 1024 {
            self.buf.reserve(self.buf.capacity().max(4096));
        }
        // Into the spare capacity: nothing is zeroed first.
        let n = self.stream.read_buf(&mut self.buf).await?;
        if !self.quick_acks {
            // Not permanent (tcp(7)): set again after every read.
            let _ = self.stream.set_quickack(false);
        }
        Ok(n)
    }

    /// Waits for data, then hands every complete text or binary message to `message`;
    /// answers pings. `Ok(false)` once the server has closed.
    pub async fn read(&mut self, message: impl FnMut(&[u8])) -> io::Result<bool> {
        if self.fill().await? == 0 {
            return Ok(false);
        }
        self.take_frames(message).await
    }

    /// Waits for the server's hello: the subscription is live from there on (the 101 may
    /// come before the server has registered the subscriber).
    pub async fn hello(&mut self) -> io::Result<()> {
        let seen = std::cell::Cell::new(false);
        let note = |m: &[u8]| seen.set(seen.get() || m.starts_with(br#"{"event":"hello""#));
        // It may have come with the handshake's answer.
        let mut open = self.take_frames(note).await?;
        while !seen.get() && open {
            open = self.read(note).await?;
        }
        if seen.get() {
            Ok(())
        } else {
            Err(io::ErrorKind::UnexpectedEof.into())
        }
    }

    /// Hands every complete message in the buffer to `message` and answers pings;
    /// `Ok(false)` if the server closed.
    async fn take_frames(&mut self, mut message: impl FnMut(&[u8])) -> io::Result<bool> {
        let mut pongs = Vec::new();
        while let Some(frame) = parse_frame(&self.buf[self.start..])? {
            let payload = self.start + frame.payload_at..self.start + frame.len;
            if let Some(key) = frame.mask {
                for (i, byte) in self.buf[payload.clone()].iter_mut().enumerate() {
                    *byte ^= key[i % 4];
                }
            }
            let payload = &self.buf[payload];
            match frame.opcode {
                0x0..=0x2 if frame.fin && self.message.is_empty() => message(payload),
                0x0..=0x2 => {
                    self.message.extend_from_slice(payload);
                    if frame.fin {
                        message(&self.message);
                        self.message.clear();
                    }
                }
                0x8 => return Ok(false),
                0x9 => pongs.push(pong(payload)),
                _ => {}
            }
            self.start += frame.len;
        }
        for pong in pongs {
            self.stream.write_all(&pong).await?;
        }
        Ok(true)
    }
}

/// A client pong (masked, as client frames must be; the zero key leaves the payload as is).
fn pong(payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![0x8A, 0x80 | payload.len().min(125) as u8, 0, 0, 0, 0];
    frame.extend_from_slice(&payload[..payload.len().min(125)]);
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_found_only_when_whole() {
        let small = [&[0x81u8, 3][..], b"abc"].concat();
        assert_eq!(parse_frame(&small[..4]).unwrap(), None);
        let at = parse_frame(&small).unwrap().unwrap();
        assert_eq!((at.fin, at.opcode, at.payload_at, at.len), (true, 1, 2, 5));

        let mut medium = vec![0x01, 126, 0x01, 0x00];
        medium.extend(vec![b'x'; 256]);
        assert_eq!(parse_frame(&medium[..3]).unwrap(), None);
        let at = parse_frame(&medium).unwrap().unwrap();
        assert_eq!((at.fin, at.payload_at, at.len), (false, 4, 260));

        let mut large = vec![0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0];
        large.extend(vec![0u8; 65536]);
        assert_eq!(parse_frame(&large).unwrap().unwrap().len, 65546);

        let masked = [0x89, 0x82, 1, 2, 3, 4, b'h' ^ 1, b'i' ^ 2];
        let at = parse_frame(&masked).unwrap().unwrap();
        assert_eq!((at.mask, at.payload_at), (Some([1, 2, 3, 4]), 6));
    }

    #[test]
    fn absurd_lengths_are_errors() {
        assert!(parse_frame(&[0x81, 127, 0xff, 0, 0, 0, 0, 0, 0, 0]).is_err());
    }
}
