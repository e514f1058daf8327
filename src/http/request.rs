//! What the routes take from a request: the caller's identity, the query string, the body
//! (bounded), and the query values several routes share.

use std::convert::Infallible;

use warp::Filter;

use super::error::ApiError;
use super::state::AppState;
use crate::auth::Identity;

/// Who is asking, as the gate found out (absent only if the gate did not run).
pub fn identity() -> impl Filter<Extract = (Option<Identity>,), Error = Infallible> + Clone {
    warp::ext::optional::<Identity>()
}

pub fn with_state(
    state: AppState,
) -> impl Filter<Extract = (AppState,), Error = Infallible> + Clone {
    warp::any().map(move || state.clone())
}

/// The query string, empty when there is none.
pub fn raw_query() -> impl Filter<Extract = (String,), Error = Infallible> + Clone {
    warp::query::raw().or(warp::any().map(String::new)).unify()
}

/// The request body, at most `limit` bytes, with or without a Content-Length; reads no
/// further than the limit.
pub fn body_limited(
    limit: u64,
) -> impl Filter<Extract = (Result<bytes::Bytes, ApiError>,), Error = warp::Rejection> + Clone {
    warp::header::optional::<u64>("content-length")
        .and(warp::body::stream())
        .then(move |length: Option<u64>, body| read_limited(length, body, limit))
}

async fn read_limited<B: warp::Buf>(
    length: Option<u64>,
    body: impl futures::Stream<Item = Result<B, warp::Error>>,
    limit: u64,
) -> Result<bytes::Bytes, ApiError> {
    use futures::StreamExt;
    if length.is_some_and(|n| n > limit) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    let mut body = std::pin::pin!(body);
    let mut collected = bytes::BytesMut::new();
    while let Some(chunk) = body.next().await {
        let mut chunk =
            chunk.map_err(|e| ApiError::BadRequest(format!("could not read the body: {e}")))?;
        if (collected.len() + chunk.remaining()) as u64 > limit {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            collected.extend_from_slice(part);
            let n = part.len();
            chunk.advance(n);
        }
    }
    Ok(collected.freeze())
}

/// A `type` query value: a glass in the catalogue, or a type that stored pours still have
/// from an older catalogue; else 422 listing the valid ones.
pub fn glass_param(state: &AppState, value: &str) -> Result<std::sync::Arc<str>, ApiError> {
    if let Some(glass) = state.pouring.catalogue.get(value) {
        return Ok(glass.name.clone());
    }
    if value == crate::glass::UNCLASSIFIED {
        return Ok(state.pouring.catalogue.unclassified());
    }
    let retired = state.bar.retired_glasses();
    if let Some((glass, _)) = retired.into_iter().find(|(g, _)| &**g == value) {
        return Ok(glass);
    }
    Err(ApiError::Unprocessable(format!(
        "unknown type {value:?}; valid types: {}, {}",
        state.pouring.catalogue.names(),
        crate::glass::UNCLASSIFIED
    )))
}

/// A whole number from 0 to 2^63-1: what the document's `int64` promises for ids and
/// pages, and what a 64-bit signed column (PostgreSQL's `bigint`) holds.
pub fn whole_number(value: &str) -> Option<u64> {
    value
        .parse::<u64>()
        .ok()
        .filter(|&n| i64::try_from(n).is_ok())
}

/// The id in a path (`what`: "keg", "alert"), else 400.
pub fn id_param(what: &str, text: &str) -> Result<u64, ApiError> {
    whole_number(text).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "{what} id must be an integer from 0 to 2^63-1, not {text:?}"
        ))
    })
}

/// The largest `page_size` a list takes.
pub const MAX_PAGE_SIZE: usize = 1000;

/// A `page` query value (from 1), else 400.
pub fn page_param(value: &str) -> Result<usize, ApiError> {
    whole_number(value)
        .and_then(|p| usize::try_from(p).ok())
        .filter(|&p| p >= 1)
        .ok_or_else(|| ApiError::BadRequest("page must be an integer from 1 to 2^63-1".into()))
}

/// A `page_size` query value (1 to [`MAX_PAGE_SIZE`]), else 400.
pub fn page_size_param(value: &str) -> Result<usize, ApiError> {
    value
        .parse()
        .ok()
        .filter(|n| (1..=MAX_PAGE_SIZE).contains(n))
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "page_size must be an integer from 1 to {MAX_PAGE_SIZE}"
            ))
        })
}

/// A `tapId` query value, else 400.
pub fn tap_param(value: &str) -> Result<u32, ApiError> {
    crate::pour::parse_tap_id(value).ok_or_else(|| ApiError::BadRequest(crate::pour::tap_id_rule()))
}

/// What routes that take a JSON body need of the request's headers: read once, before
/// routing, and handed over as a request extension (a clone of the whole header map per
/// request cost more than a pour's flags and kegs together).
#[derive(Debug, Clone)]
pub struct BodyHeaders {
    /// The `Content-Type` is JSON, or absent: devices that send none at all are accepted,
    /// as the prototype did.
    json: bool,
    /// The `Idempotency-Key`, if it is one header of 1 to 128 printable ASCII characters.
    key: Result<Option<String>, ()>,
}

impl Default for BodyHeaders {
    fn default() -> BodyHeaders {
        BodyHeaders {
            json: true,
            key: Ok(None),
        }
    }
}

impl BodyHeaders {
    /// Reads them off a request's headers.
    pub fn of(headers: &warp::http::HeaderMap) -> BodyHeaders {
        let json = headers
            .get(warp::http::header::CONTENT_TYPE)
            .is_none_or(|content_type| {
                let essence = content_type.to_str().unwrap_or("").split(';').next();
                essence
                    .unwrap_or("")
                    .trim()
                    .eq_ignore_ascii_case("application/json")
            });
        let mut values = headers.get_all("idempotency-key").iter();
        let key = match values.next() {
            None => Ok(None),
            Some(_) if values.next().is_some() => Err(()),
            Some(value) => crate::pour::idempotency_key(value.as_bytes())
                .map(Some)
                .ok_or(()),
        };
        BodyHeaders { json, key }
    }

    /// 400 unless the body is declared JSON (or not declared).
    pub fn require_json(&self) -> Result<(), ApiError> {
        if self.json {
            Ok(())
        } else {
            Err(ApiError::BadRequest(
                "Content-Type must be application/json".into(),
            ))
        }
    }

    /// The `Idempotency-Key`, or 422 if it is not a valid one.
    pub fn idempotency_key(&self) -> Result<Option<String>, ApiError> {
        self.key.clone().map_err(|()| {
            ApiError::Unprocessable(format!(
                "Idempotency-Key must be one header of {}",
                crate::pour::IDEMPOTENCY_KEY_RULE
            ))
        })
    }
}

/// The request's [`BodyHeaders`], which the server reads before routing.
pub fn body_headers() -> impl Filter<Extract = (BodyHeaders,), Error = Infallible> + Clone {
    warp::ext::optional::<BodyHeaders>().map(Option::unwrap_or_default)
}
