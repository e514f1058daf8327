//! What every request passes before routing: CORS, rate limits, authentication.
//!
//! Authentication happens here, before any route matches, so that without a token an
//! unknown path and a known one look alike (401). So does authorization: the route table
//! says what each method of a route needs, and the gate checks it (403). A pour is the one
//! exception: which tap it is for is in its body, so its handler checks that.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use warp::Reply;
use warp::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use warp::reply::Response;

use super::error::ApiError;
use super::routes::{self, Route, SOCKET};
use crate::auth::{Auth, AuthFailure, Identity, Need};
use crate::pour::TapRef;

/// Requests per second, with bursts of twice that, per key.
fn limiter<K: std::hash::Hash + Eq + Clone>(per_second: u32) -> Option<DefaultKeyedRateLimiter<K>> {
    let rate = NonZeroU32::new(per_second)?;
    let burst = NonZeroU32::new(per_second.saturating_mul(2)).unwrap_or(rate);
    Some(RateLimiter::keyed(
        Quota::per_second(rate).allow_burst(burst),
    ))
}

/// The gate's settings.
#[derive(Debug, Clone, Default)]
pub struct GateSettings {
    /// Requests per second per credential (per tap when open); 0 for no limit.
    pub per_credential: u32,
    /// Requests per second per client address; 0 for no limit.
    pub per_address: u32,
    /// Origins allowed to call from a browser (CORS); empty for none.
    pub cors_origins: Vec<String>,
}

/// CORS, rate limits and authentication.
pub struct Gate {
    auth: Arc<Auth>,
    per_credential: Option<DefaultKeyedRateLimiter<String>>,
    per_address: Option<DefaultKeyedRateLimiter<IpAddr>>,
    cors_origins: Vec<HeaderValue>,
}

/// The WebSocket endpoint: the one GET that browsers from other origins may not make.
const CORS_METHODS: &str = "GET, POST, PATCH, DELETE";
const CORS_HEADERS: &str = "authorization, content-type, idempotency-key";

impl Gate {
    pub fn new(auth: Arc<Auth>, settings: &GateSettings) -> Gate {
        Gate {
            auth,
            per_credential: limiter(settings.per_credential),
            per_address: limiter(settings.per_address),
            cors_origins: settings
                .cors_origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o.trim_end_matches('/')).ok())
                .collect(),
        }
    }

    /// The authentication state (for SIGHUP reloads).
    pub fn auth(&self) -> &Arc<Auth> {
        &self.auth
    }

    /// Admits a request for `path`, which `route` serves (if any), or says why not (401,
    /// 403, 429).
    pub fn admit(
        &self,
        method: &Method,
        (path, route): (&str, Option<&Route>),
        query: Option<&str>,
        headers: &HeaderMap,
        peer: IpAddr,
    ) -> Result<Identity, ApiError> {
        if let Some(limiter) = &self.per_address {
            check(limiter, &peer)?;
        }
        self.check_origin(method, path, headers)?;
        // Documentation and the page's files hold no data.
        if !routes::needs_token(route) {
            return Ok(Identity::Anonymous);
        }
        // Browsers cannot set headers on a WebSocket, nor Keg Cop on its reports: those
        // alone take ?token= (the request log writes paths without their queries).
        let query_token = (path == SOCKET || path == routes::KEG_COP)
            .then(|| query_param(query?, "token"))
            .flatten();
        let identity = self
            .auth
            .identify(
                path,
                headers
                    .get(header::AUTHORIZATION)
                    .map(HeaderValue::as_bytes),
                query_token.as_deref(),
            )
            .map_err(ApiError::Unauthorized)?;
        if let (Some(limiter), Some(key)) = (&self.per_credential, identity.limit_key()) {
            check(limiter, &key)?;
        }
        if let Some(need) = route.and_then(|route| route.need(method.as_str())) {
            allowed(&identity, need)?;
        }
        Ok(identity)
    }

    /// With no tokens, pours are limited per tap instead of per credential.
    pub fn limit_tap(&self, identity: &Identity, tap: &TapRef) -> Result<(), ApiError> {
        match (&self.per_credential, identity) {
            (Some(limiter), Identity::Open) => {
                check(limiter, &format!("tap:{}/{}", tap.venue, tap.tap_id))
            }
            _ => Ok(()),
        }
    }

    /// A browser's request from a page of another origin that would change something or
    /// open the live feed: 403 unless that origin is allowed. A browser attaches `Origin`
    /// to every such request, and a "simple" POST (no preflight) still reaches the server,
    /// so CORS headers alone do not stop it. Devices and tools send no `Origin`.
    fn check_origin(
        &self,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
    ) -> Result<(), ApiError> {
        let Some(origin) = headers.get(header::ORIGIN) else {
            return Ok(());
        };
        let reads = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
        if (reads && path != SOCKET) || self.origin_allowed(origin, headers) {
            return Ok(());
        }
        Err(ApiError::Forbidden(
            "requests from a web page of another origin may not change data or subscribe \
             (allow the origin with --cors-origin)"
                .into(),
        ))
    }

    /// On the allow-list, or the server's own origin (its `Host`), as for a page it serves.
    fn origin_allowed(&self, origin: &HeaderValue, headers: &HeaderMap) -> bool {
        if self.cors_origins.contains(origin) {
            return true;
        }
        let authority = origin
            .to_str()
            .ok()
            .and_then(|o| o.split_once("://"))
            .map(|(_, a)| a);
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        matches!((authority, host), (Some(a), Some(h)) if a.eq_ignore_ascii_case(h))
    }

    /// Answers a CORS preflight, if this is one: 204 for an allowed origin, else 403.
    pub fn preflight(&self, method: &Method, headers: &HeaderMap) -> Option<Response> {
        if method != Method::OPTIONS || !headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
        {
            return None;
        }
        let origin = headers.get(header::ORIGIN)?;
        if !self.cors_origins.contains(origin) {
            return Some(
                ApiError::Forbidden("this origin may not call the API from a browser".into())
                    .into_response(),
            );
        }
        let mut response = Response::default();
        *response.status_mut() = StatusCode::NO_CONTENT;
        let h = response.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static(CORS_METHODS),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(CORS_HEADERS),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
        h.insert(header::VARY, HeaderValue::from_static("Origin"));
        Some(response)
    }

    /// Adds CORS headers to a response to an allowed origin.
    pub fn decorate(&self, origin: Option<&HeaderValue>, response: &mut Response) {
        if let Some(origin) = origin.filter(|o| self.cors_origins.contains(o)) {
            let h = response.headers_mut();
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
            h.insert(header::VARY, HeaderValue::from_static("Origin"));
        }
    }

    /// Forgets keys that have been quiet, so the limiters' memory stays bounded.
    pub fn forget_quiet_keys(&self) {
        if let Some(l) = &self.per_credential {
            l.retain_recent();
            l.shrink_to_fit();
        }
        if let Some(l) = &self.per_address {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }
}

fn check<K: std::hash::Hash + Eq + Clone>(
    limiter: &DefaultKeyedRateLimiter<K>,
    key: &K,
) -> Result<(), ApiError> {
    limiter.check_key(key).map_err(|not_until| {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        ApiError::TooManyRequests {
            retry_after_secs: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
        }
    })
}

fn query_param(query: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

impl From<AuthFailure> for ApiError {
    fn from(failure: AuthFailure) -> ApiError {
        ApiError::Unauthorized(failure)
    }
}

/// 403 unless `who` may do `need` (401 without a token).
pub fn require(who: &Option<Identity>, need: Need) -> Result<(), ApiError> {
    match who {
        Some(identity) => allowed(identity, need),
        None => Err(ApiError::Unauthorized(AuthFailure::Missing)),
    }
}

/// 403 unless `identity` may do `need`.
fn allowed(identity: &Identity, need: Need) -> Result<(), ApiError> {
    match identity {
        identity if identity.allows(need) => Ok(()),
        // Public paths admit reads without a token; anything more needs one: 401, not 403.
        Identity::Anonymous => Err(ApiError::Unauthorized(AuthFailure::Missing)),
        identity => Err(ApiError::Forbidden(format!(
            "{} may not {}",
            identity.describe(),
            match need {
                Need::Read => "read pours or reports".to_owned(),
                Need::Glasses => "read the glass list".to_owned(),
                Need::Subscribe => "subscribe".to_owned(),
                Need::Pour(tap) => format!("post pours for tap {tap}"),
                Need::Delete => "delete pours".to_owned(),
                Need::Manage => "change kegs or taps".to_owned(),
                Need::ChainRead => "read the whole chain's metrics".to_owned(),
                Need::ChainManage => {
                    "change the chain's venues or webhooks, or export its log".to_owned()
                }
            }
        ))),
    }
}
