//! `GET /api/beers/export`: every matching pour, streamed as CSV or NDJSON in id order,
//! page by page from the store into a bounded queue, so that memory stays flat however
//! many pours there are and a slow reader slows the reads instead of filling memory.

use futures::stream;
use warp::Reply as _;
use warp::http::{HeaderMap, HeaderValue, header};
use warp::reply::Response;

use super::beers::{parse_list_query, zone_of};
use super::csv::{self, Format, Rows};
use super::error::{ApiError, ErrorBody};
use super::scope::{Scope, venue_param};
use super::state::AppState;
use crate::auth::Identity;
use crate::pour::Flag;
use crate::store::Start;

/// Pours read from the store at a time.
const PAGE: usize = 1000;
/// Chunks written ahead of the reader.
const QUEUE: usize = 4;

/// Export pours
///
/// Every pour that matches the filters, in id order, without a page limit: CSV (one
/// header row; the time in UTC and on the venue's clock; flags joined by `;`) or NDJSON
/// (one pour, as the API writes it, a line). It covers the pours stored when it began;
/// pours stored meanwhile are left for the next export (`after`).
#[utoipa::path(
    get, path = "/api/beers/export", tag = "pours",
    params(
        ("venue" = Option<String>, Query, description = "Only this venue's pours"),
        ("after" = Option<u64>, Query, description = "Only pours with an id above this one"),
        ("type" = Option<String>, Query, description = "Only this glass (or `unclassified`)"),
        ("flag" = Option<Flag>, Query, description = "Only pours with this flag"),
        ("tapId" = Option<u32>, Query, description = "Only this tap"),
        ("from" = Option<String>, Query, format = DateTime, description = "Pour timestamp at or after"),
        ("to" = Option<String>, Query, format = DateTime, description = "Pour timestamp at or before"),
        ("format" = Option<csv::ExportFormat>, Query, description = "`csv` (default, or `Accept: text/csv`) or `ndjson` (or `Accept: application/x-ndjson`)"),
    ),
    responses(
        (status = 200, description = "The pours, streamed",
         content((String = "text/csv"), (String = "application/x-ndjson"))),
        (status = 400, description = "A bad parameter value", body = ErrorBody),
        (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 403, description = "This token may not read, or not that venue", body = ErrorBody),
        (status = 404, description = "No such venue", body = ErrorBody),
        (status = 422, description = "Unknown glass type or flag", body = ErrorBody),
    )
)]
pub async fn export(
    state: &AppState,
    raw_query: &str,
    who: &Option<Identity>,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let format = csv::format(headers, raw_query, true)?;
    let (mut query, _) = parse_list_query(state, raw_query)?;
    query.venue = Scope::of(state, who).read(state, venue_param(raw_query).as_deref())?;
    (query.limit, query.count_total, query.start.offset) = (PAGE, false, 0);
    let until = state.store.stats().await?.last_id;
    let (sender, mut chunks) = tokio::sync::mpsc::channel::<std::io::Result<Vec<u8>>>(QUEUE);
    let state = state.clone();
    tokio::spawn(async move {
        let mut zones = csv::Zones::new();
        let mut first = format == Format::Csv;
        loop {
            let page = match state.store.list(&query).await {
                Ok(page) => page,
                Err(e) => {
                    log::error!("export stopped: {e}");
                    let _ = sender
                        .send(Err(std::io::Error::other("store failure")))
                        .await;
                    return;
                }
            };
            let mut done = page.pours.len() < query.limit;
            let mut rows = if first {
                Rows::new().header(csv::POUR_COLUMNS)
            } else {
                Rows::new()
            };
            first = false;
            let mut lines = Vec::new();
            for pour in &page.pours {
                if pour.id > until {
                    done = true;
                    break;
                }
                match format {
                    Format::Ndjson => {
                        if serde_json::to_writer(&mut lines, pour).is_ok() {
                            lines.push(b'\n');
                        }
                    }
                    _ => csv::pour_row(&mut rows, pour, zone_of(&state, &mut zones, &pour.venue)),
                }
                query.start = Start::after(pour.id);
            }
            let chunk = if format == Format::Ndjson {
                lines
            } else {
                rows.take()
            };
            // The reader hung up: stop reading.
            if !chunk.is_empty() && sender.send(Ok(chunk)).await.is_err() {
                return;
            }
            if done {
                return;
            }
        }
    });
    let body = stream::poll_fn(move |cx| chunks.poll_recv(cx));
    let mut response = warp::reply::stream(body).into_response();
    let (kind, name) = match format {
        Format::Ndjson => (
            "application/x-ndjson",
            "attachment; filename=\"pours.ndjson\"",
        ),
        _ => (
            "text/csv; charset=utf-8",
            "attachment; filename=\"pours.csv\"",
        ),
    };
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    headers.insert(header::CONTENT_DISPOSITION, HeaderValue::from_static(name));
    Ok(response)
}

/// The whole log, streamed
///
/// Everything the store keeps, as `altair-server export` writes it: a header, a record a
/// line, a trailer with the counts and a SHA-256 (see the README's "Backup and
/// restore"). One consistent snapshot, taken when it starts, while pours go on being
/// stored. From a journal server it is the live log as a compacted journal holds it
/// (deleted pours gone, what they caused kept). Webhooks come without their secrets (an
/// import brings them back disabled). `altair-server import` loads it into an empty
/// store. A stream that ends without its trailer was cut short: the import refuses
/// it.
#[utoipa::path(
    get, path = "/api/admin/export", tag = "admin",
    responses(
        (status = 200, description = "The stream", content((String = "application/x-ndjson"))),
        (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 403, description = "Only the chain's admin tokens may export", body = ErrorBody),
    )
)]
pub async fn whole_log(state: &AppState) -> Result<Response, ApiError> {
    let (sender, mut chunks) = tokio::sync::mpsc::channel::<std::io::Result<Vec<u8>>>(QUEUE);
    let store = state.store.clone();
    let out = ChunkWriter {
        sender: sender.clone(),
        buf: Vec::with_capacity(CHUNK),
    };
    tokio::spawn(async move {
        match store.export(Box::new(out)).await {
            Ok(trailer) => log::info!(
                "exported the whole log: {} records, sha256 {}",
                trailer.counts.values().sum::<u64>(),
                trailer.sha256
            ),
            Err(e) => {
                log::error!("the export of the whole log stopped: {e}");
                let _ = sender
                    .send(Err(std::io::Error::other("store failure")))
                    .await;
            }
        }
    });
    let body = stream::poll_fn(move |cx| chunks.poll_recv(cx));
    let mut response = warp::reply::stream(body).into_response();
    let name = format!(
        "attachment; filename=\"altair-{}.ndjson\"",
        crate::pour::Timestamp::now().to_string().replace(':', "-")
    );
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    if let Ok(name) = HeaderValue::from_str(&name) {
        headers.insert(header::CONTENT_DISPOSITION, name);
    }
    Ok(response)
}

/// Bytes written in one chunk of the response.
const CHUNK: usize = 64 * 1024;

/// A blocking writer (the export's thread) into the response's bounded queue: a slow
/// reader holds the export back rather than fill memory.
struct ChunkWriter {
    sender: tokio::sync::mpsc::Sender<std::io::Result<Vec<u8>>>,
    buf: Vec<u8>,
}

impl ChunkWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        // Not `blocking_send`: PostgreSQL's export writes from inside a runtime of its
        // own, where tokio refuses to block; this waits all the same.
        futures::executor::block_on(self.sender.send(Ok(chunk)))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the reader hung up"))
    }
}

impl std::io::Write for ChunkWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(bytes);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

impl Drop for ChunkWriter {
    fn drop(&mut self) {
        let _ = self.send();
    }
}
