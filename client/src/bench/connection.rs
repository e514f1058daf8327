//! One keep-alive HTTP/1.1 connection, as the benches drive it: requests written whole,
//! one answer read at a time, nothing between the tool and the socket.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::measure::{auth_header, find, host_port};
use crate::config::Settings;

/// One keep-alive HTTP/1.1 connection with a fixed request.
pub struct Connection {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Connection {
    pub async fn open(addr: &str) -> std::io::Result<Connection> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Connection {
            stream,
            buf: Vec::with_capacity(4096),
        })
    }

    /// Sends `request` and reads one response; returns its status and body.
    pub async fn call(&mut self, request: &[u8]) -> std::io::Result<(u16, Vec<u8>)> {
        self.stream.write_all(request).await?;
        self.buf.clear();
        let head_end = loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                break end + 4;
            }
            let mut chunk = [0u8; 4096];
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).to_ascii_lowercase();
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        while self.buf.len() < head_end + length {
            let mut chunk = [0u8; 4096];
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
        Ok((status, self.buf[head_end..head_end + length].to_vec()))
    }
}

pub fn post_request(settings: &Settings, tap: u32, volume: u32) -> Vec<u8> {
    post_request_to(settings, "/api/beers", tap, volume)
}

pub fn post_request_to(settings: &Settings, path: &str, tap: u32, volume: u32) -> Vec<u8> {
    let body = format!(r#"{{"tapId": {tap}, "volume": {volume}}}"#);
    let auth = auth_header(settings);
    format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\n\r\n{body}",
        host_port(settings),
        body.len()
    )
    .into_bytes()
}

pub fn get_request(settings: &Settings, target: &str) -> Vec<u8> {
    let auth = auth_header(settings);
    format!(
        "GET {target} HTTP/1.1\r\nHost: {}\r\n{auth}\r\n",
        host_port(settings)
    )
    .into_bytes()
}

/// A request on one connection; its status and body, or why not.
pub async fn fetch(conn: &mut Connection, request: &[u8]) -> Result<(u16, Vec<u8>), String> {
    conn.call(request).await.map_err(|e| e.to_string())
}
