//! The API's one error type and the one place that turns rejections into JSON errors.

use std::convert::Infallible;

use serde::Serialize;
use warp::http::{StatusCode, header};
use warp::reject::Reject;
use warp::{Rejection, Reply};

/// Everything a request can fail with. Each variant's doc names its status.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed (not JSON, bad query or path value, wrong content type).
    #[error("{0}")]
    BadRequest(String),
    /// 401: no token, a malformed one, or one that is not (or no longer) in the tokens file.
    #[error("{0}")]
    Unauthorized(crate::auth::AuthFailure),
    /// 403: the token is known but may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// 404: no such route or resource.
    #[error("{0}")]
    NotFound(String),
    /// 405: the route exists, the method does not; `allow` lists the methods that do
    /// (empty when unknown).
    #[error("method not allowed{}", allowed(allow))]
    MethodNotAllowed { allow: &'static str },
    /// 413: the body is over the limit.
    #[error("body is larger than {limit} bytes")]
    PayloadTooLarge { limit: u64 },
    /// 409: the idempotency key was used before with a different request.
    #[error("{0}")]
    Conflict(String),
    /// 422: well-formed, but not acceptable; the message names the field.
    #[error("{0}")]
    Unprocessable(String),
    /// 422: a file with lines that cannot be read (the first 100, and how many).
    #[error("{total} line{} cannot be read; nothing was imported", if *total == 1 { "" } else { "s" })]
    BadLines {
        lines: Vec<crate::sales::BadLine>,
        total: usize,
    },
    /// 426: a plain request to a WebSocket endpoint.
    #[error("this endpoint speaks WebSocket only; send an upgrade request")]
    UpgradeRequired,
    /// 429: over a rate limit; `Retry-After` says when to come back.
    #[error("too many requests; retry in {retry_after_secs} s")]
    TooManyRequests { retry_after_secs: u64 },
    /// 503: a capacity limit (subscribers) is reached; the message says which.
    #[error("{0}")]
    Overloaded(String),
    /// 500: our fault. The cause is logged; the client gets a generic message.
    #[error("internal server error")]
    Internal(String),
    /// 503: the store cannot take writes now. The cause is logged, not sent.
    #[error("storage unavailable; try again later")]
    Unavailable(String),
}

impl ApiError {
    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Overloaded(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unprocessable(_) | ApiError::BadLines { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::UpgradeRequired => StatusCode::UPGRADE_REQUIRED,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

fn allowed(allow: &str) -> String {
    if allow.is_empty() {
        String::new()
    } else {
        format!("; use {allow}")
    }
}

impl Reject for ApiError {}

/// A body that is not JSON is a 400; one that is, but not an acceptable pour or reading,
/// a 422 naming the field.
impl From<crate::pour::PourError> for ApiError {
    fn from(e: crate::pour::PourError) -> ApiError {
        match e {
            crate::pour::PourError::Malformed(m) => ApiError::BadRequest(m),
            crate::pour::PourError::Invalid(m) => ApiError::Unprocessable(m),
        }
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> ApiError {
        ApiError::Unavailable(e.to_string())
    }
}

/// The body of every error answer.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(example = json!({"status": 422, "message": "no glass for 1500 ml; accepted 100 to 1000 ml"}))]
pub struct ErrorBody {
    /// The HTTP status, repeated.
    pub status: u16,
    /// What was wrong, for a person.
    pub message: String,
    /// A file's lines that cannot be read, the first 100 (`POST /api/sales` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lines: Option<Vec<crate::sales::BadLine>>,
}

impl Reply for ApiError {
    fn into_response(self) -> warp::reply::Response {
        match &self {
            ApiError::Internal(cause) => log::error!("internal error: {cause}"),
            // The store says when it stops and starts serving, once; a line per refused
            // request would let the taps' retries fill the log (and the disk).
            ApiError::Unavailable(cause) => log::debug!("store unavailable: {cause}"),
            _ => {}
        }
        let status = self.status();
        let body = ErrorBody {
            status: status.as_u16(),
            message: self.to_string(),
            lines: match &self {
                ApiError::BadLines { lines, .. } => Some(lines.clone()),
                _ => None,
            },
        };
        let mut response =
            warp::reply::with_status(warp::reply::json(&body), status).into_response();
        let headers = response.headers_mut();
        if let ApiError::MethodNotAllowed { allow } = self
            && !allow.is_empty()
        {
            headers.insert(header::ALLOW, header::HeaderValue::from_static(allow));
        }
        match &self {
            ApiError::Unauthorized(failure) => {
                let challenge = match failure {
                    crate::auth::AuthFailure::Unknown => "Bearer error=\"invalid_token\"",
                    _ => "Bearer",
                };
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    header::HeaderValue::from_static(challenge),
                );
            }
            ApiError::TooManyRequests { retry_after_secs } => {
                headers.insert(
                    header::RETRY_AFTER,
                    header::HeaderValue::from(*retry_after_secs),
                );
            }
            // The store comes back by itself (a database restarting, say): try again soon.
            ApiError::Unavailable(_) => {
                headers.insert(header::RETRY_AFTER, header::HeaderValue::from(2u64));
            }
            _ => {}
        }
        if status == StatusCode::UPGRADE_REQUIRED {
            headers.insert(
                header::UPGRADE,
                header::HeaderValue::from_static("websocket"),
            );
        }
        response
    }
}

/// Turns any rejection into the JSON error body; the last filter of the route tree.
pub async fn recover(rejection: Rejection) -> Result<warp::reply::Response, Infallible> {
    let error = if let Some(e) = rejection.find::<ApiError>() {
        e.clone()
    } else if rejection.is_not_found() {
        ApiError::NotFound("no such route".into())
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        ApiError::MethodNotAllowed { allow: "" }
    } else {
        ApiError::Internal(format!("unhandled rejection: {rejection:?}"))
    };
    Ok(error.into_response())
}
