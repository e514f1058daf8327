//! The one table of routes. Each route is declared once, here; the router
//! ([`super::routes`]), the request metrics' label, the gate (whether a token can ever be
//! asked for, and which role each method needs) and the OpenAPI document's shared parts
//! (the `Idempotency-Key` header) all read it, so they cannot drift apart.

use crate::auth::Need;

/// A route: a path template and what is served there.
#[derive(Debug)]
pub struct Route {
    /// The template: `{name}` stands for any one non-empty segment. Also the route's label
    /// in the request metrics.
    pub path: &'static str,
    /// Whether every path below it is served too (`/docs/...`); its label is the same.
    pub below: bool,
    /// The methods it answers, as `Allow` names them in a 405.
    pub allow: &'static str,
    /// Who may be asked for a token.
    pub access: Access,
    /// Whether `/api/openapi.json` describes it (the page and Swagger UI's files are not
    /// part of the API).
    pub documented: bool,
    /// The methods that take an `Idempotency-Key`.
    pub idempotent: &'static [&'static str],
    /// What each method needs of the caller, checked by the gate. A pour's (and a
    /// temperature reading's) is not here: which tap it is for is in its body, so its
    /// handler checks it.
    pub needs: &'static [(&'static str, Need)],
    /// What serves it.
    pub handler: Handler,
}

/// Whether a route can ever ask for a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// It holds no data (documentation, the page's files): never.
    Anyone,
    /// As the tokens file says (a public path takes reads without one).
    Tokens,
}

/// What serves a route; the router gives each its filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handler {
    Beers,
    VenueBeers,
    Beer,
    Glasses,
    Kegs,
    KegSizes,
    Keg,
    FinishKeg,
    Taps,
    Tap,
    TapCleaning,
    Temperatures,
    KegCop,
    Venues,
    Venue,
    Alerts,
    Alert,
    AckAlert,
    Webhooks,
    Webhook,
    TestWebhook,
    WebhookDeliveries,
    Report,
    Export,
    AdminExport,
    History,
    Sales,
    SalesItems,
    SalesItem,
    Variance,
    Health,
    Metrics,
    Socket,
    OpenApi,
    EventsSchema,
    Docs,
    Page,
    PageFiles,
}

/// The path of the WebSocket, the one route that takes its token in the query (browsers
/// cannot set headers on a WebSocket).
pub const SOCKET: &str = "/sockets/beers";

/// Where Keg Cop's reports come: a Keg Cop cannot send a header, so it may name its token
/// in the query, as the socket does.
pub const KEG_COP: &str = "/api/kegcop";

/// What the metrics call a path no route serves.
pub const UNMATCHED: &str = "unmatched";

const fn api(
    path: &'static str,
    allow: &'static str,
    needs: &'static [(&'static str, Need)],
    idempotent: &'static [&'static str],
    handler: Handler,
) -> Route {
    Route {
        path,
        below: false,
        allow,
        access: Access::Tokens,
        documented: true,
        idempotent,
        needs,
        handler,
    }
}

const fn open(path: &'static str, below: bool, documented: bool, handler: Handler) -> Route {
    Route {
        path,
        below,
        allow: "GET",
        access: Access::Anyone,
        documented,
        idempotent: &[],
        needs: &[],
        handler,
    }
}

/// Every route, in the order the router tries them (a fixed segment before a `{name}` one
/// where both would match: `/api/kegs/sizes` before `/api/kegs/{id}`).
#[rustfmt::skip]
pub const ROUTES: &[Route] = &[
    api("/api/beers", "GET, POST", &[("GET", Need::Read)], &["POST"], Handler::Beers),
    api("/api/beers/export", "GET", &[("GET", Need::Read)], &[], Handler::Export),
    api("/api/admin/export", "GET", &[("GET", Need::ChainManage)], &[], Handler::AdminExport),
    api("/api/beers/{id}", "GET, DELETE", &[("GET", Need::Read), ("DELETE", Need::Delete)], &[], Handler::Beer),
    api("/api/glasses", "GET", &[("GET", Need::Glasses)], &[], Handler::Glasses),
    api("/api/kegs", "GET, POST", &[("GET", Need::Read), ("POST", Need::Manage)], &["POST"], Handler::Kegs),
    api("/api/kegs/sizes", "GET", &[("GET", Need::Read)], &[], Handler::KegSizes),
    api("/api/kegs/{id}", "GET, PATCH", &[("GET", Need::Read), ("PATCH", Need::Manage)], &["PATCH"], Handler::Keg),
    api("/api/kegs/{id}/finish", "POST", &[("POST", Need::Manage)], &["POST"], Handler::FinishKeg),
    api("/api/taps", "GET", &[("GET", Need::Read)], &[], Handler::Taps),
    api("/api/taps/{tapId}", "GET, PATCH, DELETE", &[("GET", Need::Read), ("PATCH", Need::Manage), ("DELETE", Need::Manage)], &["PATCH"], Handler::Tap),
    api("/api/taps/{tapId}/cleaning", "POST", &[("POST", Need::Manage)], &[], Handler::TapCleaning),
    api(KEG_COP, "POST", &[], &[], Handler::KegCop),
    api("/api/temperatures", "GET, POST", &[("GET", Need::Read)], &[], Handler::Temperatures),
    api("/api/venues", "GET, POST", &[("GET", Need::Read), ("POST", Need::ChainManage)], &["POST"], Handler::Venues),
    api("/api/venues/{id}", "GET, PATCH", &[("GET", Need::Read), ("PATCH", Need::ChainManage)], &["PATCH"], Handler::Venue),
    api("/api/venues/{id}/beers", "POST", &[], &["POST"], Handler::VenueBeers),
    api("/api/alerts", "GET", &[("GET", Need::Read)], &[], Handler::Alerts),
    api("/api/alerts/{id}", "GET", &[("GET", Need::Read)], &[], Handler::Alert),
    api("/api/alerts/{id}/ack", "POST", &[("POST", Need::Manage)], &["POST"], Handler::AckAlert),
    api("/api/webhooks", "GET, POST", &[("GET", Need::ChainManage), ("POST", Need::ChainManage)], &[], Handler::Webhooks),
    api("/api/webhooks/{id}", "GET, PATCH, DELETE", &[("GET", Need::ChainManage), ("PATCH", Need::ChainManage), ("DELETE", Need::ChainManage)], &[], Handler::Webhook),
    api("/api/webhooks/{id}/test", "POST", &[("POST", Need::ChainManage)], &[], Handler::TestWebhook),
    api("/api/webhooks/{id}/deliveries", "GET", &[("GET", Need::ChainManage)], &[], Handler::WebhookDeliveries),
    api("/api/report", "GET", &[("GET", Need::Read)], &[], Handler::Report),
    api("/api/history", "GET", &[("GET", Need::Read)], &[], Handler::History),
    api("/api/sales", "POST", &[("POST", Need::Manage)], &[], Handler::Sales),
    api("/api/sales/items", "GET", &[("GET", Need::Read)], &[], Handler::SalesItems),
    api("/api/sales/items/{item}", "PUT, DELETE", &[("PUT", Need::Manage), ("DELETE", Need::Manage)], &[], Handler::SalesItem),
    api("/api/variance", "GET", &[("GET", Need::Read)], &[], Handler::Variance),
    api("/health", "GET", &[], &[], Handler::Health),
    api("/metrics", "GET", &[("GET", Need::ChainRead)], &[], Handler::Metrics),
    api(SOCKET, "GET", &[("GET", Need::Subscribe)], &[], Handler::Socket),
    open("/api/openapi.json", false, true, Handler::OpenApi),
    open("/api/events.schema.json", false, true, Handler::EventsSchema),
    open("/docs", true, false, Handler::Docs),
    open("/", false, false, Handler::Page),
    open("/venues", true, false, Handler::Page),
    open("/ops", true, false, Handler::PageFiles),
];

impl Route {
    /// Whether it serves `path`; if so, the segment its `{name}` took (empty if none).
    /// Byte by byte: every request is matched, twice (the router and the metrics label).
    pub fn matches<'p>(&self, path: &'p str) -> Option<&'p str> {
        if self.below {
            let rest = path.strip_prefix(self.path)?;
            return (rest.is_empty() || rest.starts_with('/')).then_some("");
        }
        let (template, bytes) = (self.path.as_bytes(), path.as_bytes());
        let (mut t, mut p) = (0, 0);
        let mut param = "";
        while t < template.len() {
            if template[t] == b'{' {
                let close = t + template[t..].iter().position(|&c| c == b'}')?;
                let end = p + bytes[p..]
                    .iter()
                    .position(|&c| c == b'/')
                    .unwrap_or(bytes.len() - p);
                if end == p {
                    return None;
                }
                param = path.get(p..end)?;
                (t, p) = (close + 1, end);
            } else if bytes.get(p) == Some(&template[t]) {
                (t, p) = (t + 1, p + 1);
            } else {
                return None;
            }
        }
        (p == bytes.len()).then_some(param)
    }

    /// What `method` needs of the caller here, if the gate checks anything (`HEAD` is
    /// `GET`).
    pub fn need(&self, method: &str) -> Option<Need> {
        let method = if method == "HEAD" { "GET" } else { method };
        self.needs
            .iter()
            .find(|(m, _)| *m == method)
            .map(|(_, need)| *need)
    }

    /// Its methods, one by one.
    pub fn methods(&self) -> impl Iterator<Item = &'static str> {
        self.allow.split(", ")
    }
}

/// The route that serves `path`, if one does.
pub fn find(path: &str) -> Option<&'static Route> {
    ROUTES.iter().find(|route| route.matches(path).is_some())
}

/// The route template of a path, so that ids do not make a metrics series each.
pub fn label(path: &str) -> &'static str {
    label_of(find(path))
}

/// The metrics label of what `route` serves (`None`: no route).
pub fn label_of(route: Option<&Route>) -> &'static str {
    route.map_or(UNMATCHED, |route| route.path)
}

/// Whether a request for `path` can ever need a token.
pub fn may_need_token(path: &str) -> bool {
    needs_token(find(path))
}

/// Whether a request for what `route` serves (`None`: no route) can ever need a token.
pub fn needs_token(route: Option<&Route>) -> bool {
    route.is_none_or(|route| route.access == Access::Tokens)
}

/// Every documented operation, as (method, path template).
pub fn documented() -> impl Iterator<Item = (&'static str, &'static str)> {
    ROUTES
        .iter()
        .filter(|route| route.documented)
        .flat_map(|route| route.methods().map(move |method| (method, route.path)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_finds_its_route_template() {
        let cases = [
            ("/api/beers", "/api/beers"),
            ("/api/beers/17", "/api/beers/{id}"),
            ("/api/beers/17/x", UNMATCHED),
            ("/api/beers/", UNMATCHED),
            ("/docs", "/docs"),
            ("/docs/index.css", "/docs"),
            ("/docsx", UNMATCHED),
            ("/wp-admin", UNMATCHED),
            ("/api/kegs/4", "/api/kegs/{id}"),
            ("/api/kegs/sizes", "/api/kegs/sizes"),
            ("/api/kegs/4/finish", "/api/kegs/{id}/finish"),
            ("/api/kegs/4/x", UNMATCHED),
            ("/api/kegs/", UNMATCHED),
            ("/api/taps/3", "/api/taps/{tapId}"),
            ("/api/taps/3/x", UNMATCHED),
            ("/api/taps/3/cleaning", "/api/taps/{tapId}/cleaning"),
            ("/api/venues", "/api/venues"),
            ("/api/venues/dock-street", "/api/venues/{id}"),
            ("/api/venues/dock-street/beers", "/api/venues/{id}/beers"),
            ("/api/alerts", "/api/alerts"),
            ("/api/alerts/7", "/api/alerts/{id}"),
            ("/api/alerts/7/ack", "/api/alerts/{id}/ack"),
            (
                "/api/webhooks/2/deliveries",
                "/api/webhooks/{id}/deliveries",
            ),
            ("/api/sales", "/api/sales"),
            ("/api/sales/items", "/api/sales/items"),
            ("/api/sales/items/Helles%20Pint", "/api/sales/items/{item}"),
            ("/api/sales/items/IPA%2FPint", "/api/sales/items/{item}"),
            ("/api/variance", "/api/variance"),
            ("/api/events.schema.json", "/api/events.schema.json"),
            ("/", "/"),
            ("/ops/ops.js", "/ops"),
            ("/venues/dock-street/", "/venues"),
            ("", UNMATCHED),
        ];
        for (path, template) in cases {
            assert_eq!(label(path), template, "{path}");
        }
    }

    #[test]
    fn a_route_hands_over_the_segment_its_name_took() {
        let keg = find("/api/kegs/12/finish").unwrap();
        assert_eq!(keg.matches("/api/kegs/12/finish"), Some("12"));
        assert_eq!(find("/api/beers").unwrap().matches("/api/beers"), Some(""));
    }

    #[test]
    fn every_method_of_an_api_route_says_what_it_needs_but_the_pours_readings_and_healths() {
        for route in ROUTES.iter().filter(|r| r.access == Access::Tokens) {
            for method in route.methods() {
                let exempt = matches!(
                    (method, route.path),
                    ("POST", "/api/beers")
                        | ("POST", "/api/venues/{id}/beers")
                        | ("POST", "/api/temperatures")
                        | ("POST", "/api/kegcop")
                        | ("GET", "/health")
                );
                assert_eq!(
                    route.need(method).is_none(),
                    exempt,
                    "{method} {} needs {:?}",
                    route.path,
                    route.need(method)
                );
            }
        }
        assert_eq!(find("/api/kegs/1").unwrap().need("HEAD"), Some(Need::Read));
        assert_eq!(
            find("/api/kegs/1").unwrap().need("PATCH"),
            Some(Need::Manage)
        );
    }

    #[test]
    fn only_documentation_and_the_page_never_ask_for_a_token() {
        for path in ["/api/openapi.json", "/docs/x", "/", "/ops/ops.css"] {
            assert!(!may_need_token(path), "{path}");
        }
        for path in [
            "/api/beers",
            "/health",
            SOCKET,
            "/nowhere",
            "/api/openapi.jsonx",
        ] {
            assert!(may_need_token(path), "{path}");
        }
    }
}
