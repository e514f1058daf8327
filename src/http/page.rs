//! The live operations page at `/`: a few static files compiled into the binary (no CDN,
//! nothing fetched at run time), served with an ETag so a reload costs a 304, and gzipped
//! once at first use for browsers that take it.

use std::sync::LazyLock;

use warp::Reply as _;
use warp::http::StatusCode;
use warp::http::header::{self, HeaderMap, HeaderValue};
use warp::reply::Response;

use super::error::ApiError;

/// A file of the page.
struct Asset {
    /// Its path on the server.
    path: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
    /// The bytes gzipped, where that makes them smaller.
    gzipped: Option<Vec<u8>>,
    etag: HeaderValue,
}

/// The page may only load what it is served with, and talk to its own server.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; \
    frame-ancestors 'none'";

static ASSETS: LazyLock<Vec<Asset>> = LazyLock::new(|| {
    [
        (
            "/",
            "text/html; charset=utf-8",
            &include_bytes!("../../web/ops/index.html")[..],
        ),
        (
            "/ops/ops.js",
            "text/javascript; charset=utf-8",
            include_bytes!("../../web/ops/ops.js"),
        ),
        (
            "/ops/chain.js",
            "text/javascript; charset=utf-8",
            include_bytes!("../../web/ops/chain.js"),
        ),
        (
            "/ops/connection.js",
            "text/javascript; charset=utf-8",
            include_bytes!("../../web/ops/connection.js"),
        ),
        (
            "/ops/draw.js",
            "text/javascript; charset=utf-8",
            include_bytes!("../../web/ops/draw.js"),
        ),
        (
            "/ops/history.js",
            "text/javascript; charset=utf-8",
            include_bytes!("../../web/ops/history.js"),
        ),
        (
            "/ops/variance.js",
            "text/javascript; charset=utf-8",
            include_bytes!("../../web/ops/variance.js"),
        ),
        (
            "/ops/state.js",
            "text/javascript; charset=utf-8",
            include_bytes!("../../web/ops/state.js"),
        ),
        (
            "/ops/words.js",
            "text/javascript; charset=utf-8",
            include_bytes!("../../web/ops/words.js"),
        ),
        (
            "/ops/ops.css",
            "text/css; charset=utf-8",
            include_bytes!("../../web/ops/ops.css"),
        ),
        (
            "/ops/icon.svg",
            "image/svg+xml",
            include_bytes!("../../web/ops/icon.svg"),
        ),
    ]
    .into_iter()
    .map(|(path, content_type, bytes)| Asset {
        path,
        content_type,
        bytes,
        gzipped: gzip(bytes).filter(|g| g.len() < bytes.len()),
        etag: etag(bytes),
    })
    .collect()
});

fn gzip(bytes: &[u8]) -> Option<Vec<u8>> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).ok()?;
    encoder.finish().ok()
}

/// A strong validator: a hash of the bytes, so it changes exactly when they do.
fn etag(bytes: &[u8]) -> HeaderValue {
    let hash = crate::auth::sha256(bytes);
    let hex: String = hash[..12].iter().map(|b| format!("{b:02x}")).collect();
    HeaderValue::from_str(&format!("\"{hex}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
}

/// Whether a request's `Accept-Encoding` takes gzip (and does not refuse it with `q=0`).
fn takes_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|part| {
            let mut pieces = part.split(';').map(str::trim);
            let coding = pieces.next().unwrap_or_default();
            let refused = pieces.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
            });
            (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !refused
        })
}

/// `GET /`, `GET /venues/{venue}/` (the same page, for one bar) and `GET /ops/{file}`.
pub fn serve(path: &str, headers: &HeaderMap) -> Response {
    let path = if path == "/venues" || path.starts_with("/venues/") {
        "/"
    } else {
        path
    };
    let Some(asset) = ASSETS.iter().find(|a| a.path == path) else {
        return ApiError::NotFound("no such file of the page".into()).into_response();
    };
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| {
            tags.split(',')
                .any(|t| t.trim().trim_start_matches("W/") == asset.etag)
        });
    let gzipped = asset.gzipped.as_ref().filter(|_| takes_gzip(headers));
    let mut response = if fresh {
        let mut r = Response::default();
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        match gzipped {
            Some(bytes) => {
                let mut r = Response::new(bytes.clone().into());
                r.headers_mut()
                    .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
                r
            }
            None => Response::new(asset.bytes.into()),
        }
    };
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    h.insert(header::ETAG, asset.etag.clone());
    // Kept, but asked about each time: a new release shows at the next load.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepting(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_str(value).unwrap(),
        );
        h
    }

    #[test]
    fn gzip_only_where_it_is_taken() {
        assert!(takes_gzip(&accepting("gzip, deflate, br")));
        assert!(takes_gzip(&accepting("br;q=1.0, gzip;q=0.8")));
        assert!(takes_gzip(&accepting("*")));
        assert!(!takes_gzip(&accepting("gzip;q=0")));
        assert!(!takes_gzip(&accepting("br")));
        assert!(!takes_gzip(&HeaderMap::new()));
    }

    #[test]
    fn the_page_is_small_and_its_text_compresses() {
        let total: usize = ASSETS.iter().map(|a| a.bytes.len()).sum();
        assert!(total < 150 * 1024, "the page weighs {total} bytes");
        for asset in ASSETS
            .iter()
            .filter(|a| a.content_type.starts_with("text/"))
        {
            assert!(asset.gzipped.is_some(), "{} is not gzipped", asset.path);
        }
    }

    #[test]
    fn a_known_etag_is_a_304_and_an_unknown_path_a_404() {
        let first = serve("/", &HeaderMap::new());
        assert_eq!(first.status(), StatusCode::OK);
        let etag = first.headers()[header::ETAG].clone();
        let mut again = HeaderMap::new();
        again.insert(header::IF_NONE_MATCH, etag);
        assert_eq!(serve("/", &again).status(), StatusCode::NOT_MODIFIED);
        assert_eq!(
            serve("/ops/nothing.js", &HeaderMap::new()).status(),
            StatusCode::NOT_FOUND
        );
    }
}
