//! Configuration: the prototype's `INET_ADDR` and `TAP_ID`, and flags that override them.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use clap::Parser;
use reqwest::Url;

/// Plays one beer tap (or many) against an Altair server: posts a pour every interval,
/// never losing one, and logs what the live feed says.
#[derive(Debug, Clone, Parser)]
#[command(name = "altair-client", version, about)]
pub struct Args {
    /// Server URL, e.g. http://localhost:8338, or several separated by commas: requests
    /// go to the first, and to the next when the one in use cannot be reached or answers
    /// 5xx. Overrides INET_ADDR.
    #[arg(long, env = "ALTAIR_SERVER", value_name = "URL[,URL...]")]
    pub server: Option<String>,

    /// Server as host:port (the prototype's variable); used when --server is not given.
    #[arg(long, env = "INET_ADDR", value_name = "HOST:PORT")]
    pub inet_addr: Option<String>,

    /// This tap's id (the first of them with --taps).
    #[arg(long, env = "TAP_ID", default_value_t = 1)]
    pub tap_id: u32,

    /// The venue (bar) whose tap this is, on a server without tokens; with a token, the
    /// token names it. Default: the server's default venue.
    #[arg(long, env = "VENUE", value_name = "ID")]
    pub venue: Option<String>,

    /// Seconds between pours. Default: 3, or as long as a tap takes to pour the last
    /// volume if longer (a stein takes about 7 s), so that no pour looks like a burst.
    #[arg(long, env = "ALTAIR_INTERVAL", value_name = "SECS")]
    pub interval: Option<f64>,

    /// Pour this many times, then exit once all of them (and anything left in the outbox
    /// from an earlier run) are acknowledged. Default: pour until stopped.
    #[arg(long, env = "ALTAIR_COUNT", value_name = "N")]
    pub count: Option<u64>,

    /// Pour this volume (ml) every time. Default: a realistic mix over the server's glasses.
    #[arg(long, env = "ALTAIR_VOLUME", value_name = "ML")]
    pub volume: Option<f64>,

    /// Simulate this many taps, ids TAP_ID to TAP_ID+N-1, each with its own outbox.
    #[arg(long, env = "ALTAIR_TAPS", value_name = "N", default_value_t = 1)]
    pub taps: u32,

    /// With --taps: one subscription for all of them instead of one each.
    #[arg(long, env = "ALTAIR_SHARED_SUBSCRIPTION")]
    pub shared_subscription: bool,

    /// Bearer token for a server that requires one (`altair-server token new`).
    #[arg(
        long,
        env = "ALTAIR_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,

    /// A file holding the bearer token (a docker secret, say); used when --token is not.
    #[arg(long, env = "ALTAIR_TOKEN_FILE", value_name = "FILE")]
    pub token_file: Option<PathBuf>,

    /// Where outboxes live (one folder per tap inside).
    #[arg(
        long,
        env = "ALTAIR_CLIENT_DATA_DIR",
        value_name = "DIR",
        default_value = "./altair-client"
    )]
    pub data_dir: PathBuf,
}

/// Seconds between pours when `--interval` is not given.
const DEFAULT_INTERVAL: f64 = 3.0;

/// A checked configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The servers, in order (`http://host:port` with no path): at least one.
    pub servers: Vec<Url>,
    /// Which of them requests go to; shared by every tap, so that one failure moves all.
    current: Arc<AtomicUsize>,
    pub taps: Vec<u32>,
    /// The venue pours are for (none: the token's, else the server's default).
    pub venue: Option<String>,
    pub interval: Duration,
    /// The interval was not given: each pour also waits as long as a tap takes to pour
    /// the one before.
    pub paced: bool,
    pub count: Option<u64>,
    pub volume: Option<f64>,
    pub shared_subscription: bool,
    pub data_dir: PathBuf,
    /// Sent as `Authorization: Bearer`; never logged.
    pub token: Option<String>,
}

/// A configuration that cannot work; said in one line before anything touches the network.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(String);

impl Args {
    /// Checks everything that can be checked without the server.
    pub fn settings(&self) -> Result<Settings, ConfigError> {
        let bad = |m: String| Err(ConfigError(m));
        let text = match (&self.server, &self.inet_addr) {
            (Some(url), _) => url.clone(),
            (None, Some(addr)) => format!("http://{addr}"),
            (None, None) => "http://localhost:8338".to_owned(),
        };
        let mut servers = Vec::new();
        for text in text.split(',').map(str::trim) {
            match Url::parse(text) {
                Ok(url) if url.scheme() == "http" && url.host_str().is_some() => servers.push(url),
                Ok(url) if url.scheme() != "http" => {
                    return bad(format!(
                        "server URL {text:?}: only http:// is supported (terminate TLS in front of the server)"
                    ));
                }
                Ok(_) => return bad(format!("server URL {text:?} has no host")),
                Err(e) => return bad(format!("server URL {text:?} is not a URL: {e}")),
            }
        }
        let token = match (&self.token, &self.token_file) {
            (Some(token), _) => Some(token.clone()),
            (None, Some(file)) => match std::fs::read_to_string(file) {
                Ok(text) => Some(text.trim().to_owned()),
                Err(e) => return bad(format!("--token-file {}: {e}", file.display())),
            },
            (None, None) => None,
        };
        if let Some(token) = &token
            && (token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()))
        {
            return bad("--token must be printable ASCII without spaces".into());
        }
        if self.tap_id == 0 {
            return bad("tap id must be 1 or more".into());
        }
        if let Some(venue) = &self.venue {
            let slug = venue
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if venue.is_empty() || venue.len() > 40 || !slug {
                return bad(format!(
                    "--venue {venue:?} is not a venue id: 1 to 40 lowercase letters, digits and hyphens"
                ));
            }
        }
        if self.taps == 0 {
            return bad("--taps must be 1 or more".into());
        }
        let Some(last) = self.tap_id.checked_add(self.taps - 1) else {
            return bad(format!(
                "taps {} to {} go past the largest tap id",
                self.tap_id,
                u64::from(self.tap_id) + u64::from(self.taps) - 1
            ));
        };
        let interval = self.interval.unwrap_or(DEFAULT_INTERVAL);
        if !(interval.is_finite() && interval > 0.0 && interval <= 86_400.0) {
            return bad(format!(
                "--interval {interval} must be more than 0 and at most a day"
            ));
        }
        if let Some(v) = self.volume
            && !(v.is_finite() && v > 0.0)
        {
            return bad(format!("--volume {v} must be a positive number of ml"));
        }
        Ok(Settings {
            servers,
            current: Arc::new(AtomicUsize::new(0)),
            taps: (self.tap_id..=last).collect(),
            venue: self.venue.clone(),
            interval: Duration::from_secs_f64(interval),
            paced: self.interval.is_none(),
            count: self.count,
            volume: self.volume,
            shared_subscription: self.shared_subscription,
            data_dir: self.data_dir.clone(),
            token,
        })
    }
}

impl Settings {
    /// The place in [`Settings::servers`] of the server requests go to now.
    pub fn place(&self) -> usize {
        self.current.load(Ordering::Relaxed) % self.servers.len()
    }

    /// The server at `place`.
    pub fn server(&self, place: usize) -> &Url {
        &self.servers[place % self.servers.len()]
    }

    /// The server at `place` failed a request of `who`'s (`why`): requests go to the next
    /// one, said in the log. Several taps seeing the same failure move once. The server
    /// moved to, if there is another.
    pub fn fail_over(&self, who: impl std::fmt::Display, place: usize, why: &str) -> Option<&Url> {
        if self.servers.len() < 2 {
            return None;
        }
        let next = (place + 1) % self.servers.len();
        self.current
            .compare_exchange(place, next, Ordering::Relaxed, Ordering::Relaxed)
            .ok()?;
        let (failed, next) = (self.server(place), self.server(next));
        log::warn!("{who} | server {failed} failed ({why}); moving to {next}");
        Some(next)
    }

    /// `http://host:port/path` on the server at `place`.
    pub fn http(&self, place: usize, path: &str) -> String {
        let base = self.server(place).as_str().trim_end_matches('/');
        format!("{base}{path}")
    }

    /// The WebSocket URL of the feed on the server at `place`, with a query string.
    pub fn feed(&self, place: usize, query: &str) -> String {
        let base = self.server(place).as_str().trim_end_matches('/');
        format!("ws{}/sockets/beers{query}", base.trim_start_matches("http"))
    }

    /// Where pours are posted: the venue's, if one is named.
    pub fn pours_path(&self) -> String {
        match &self.venue {
            Some(venue) => format!("/api/venues/{venue}/beers"),
            None => "/api/beers".to_owned(),
        }
    }

    /// The outbox folder of one tap (of its venue, if one is named).
    pub fn outbox_dir(&self, tap: u32) -> PathBuf {
        match &self.venue {
            Some(venue) => self.data_dir.join(format!("{venue}-tap-{tap}")),
            None => self.data_dir.join(format!("tap-{tap}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Settings, String> {
        let mut argv = vec!["altair-client"];
        argv.extend_from_slice(args);
        Args::try_parse_from(argv)
            .map_err(|e| e.to_string())?
            .settings()
            .map_err(|e| e.to_string())
    }

    #[test]
    fn a_venue_names_where_pours_go_and_whose_outbox_it_is() {
        let s = parse(&["--venue", "dock-street", "--tap-id", "3"]).unwrap();
        assert_eq!(s.pours_path(), "/api/venues/dock-street/beers");
        assert!(s.outbox_dir(3).ends_with("dock-street-tap-3"));
        let s = parse(&["--tap-id", "3"]).unwrap();
        assert_eq!(s.pours_path(), "/api/beers");
        assert!(s.outbox_dir(3).ends_with("tap-3"));
        let bad = parse(&["--venue", "Dock Street"]).unwrap_err();
        assert!(bad.contains("not a venue id"), "{bad}");
    }

    #[test]
    fn inet_addr_is_the_fallback_and_server_wins() {
        let s = parse(&["--inet-addr", "beer:9000"]).unwrap();
        assert_eq!(s.http(0, "/api/beers"), "http://beer:9000/api/beers");
        assert_eq!(
            s.feed(0, "?tapId=1"),
            "ws://beer:9000/sockets/beers?tapId=1"
        );
        let s = parse(&["--inet-addr", "beer:9000", "--server", "http://x:1/"]).unwrap();
        assert_eq!(s.http(0, "/health"), "http://x:1/health");
        assert_eq!(
            s.fail_over("tap 1", 0, "down"),
            None,
            "one server: nowhere to go"
        );
    }

    #[test]
    fn several_servers_are_tried_in_turn_and_one_failure_moves_once() {
        let s = parse(&["--server", "http://a:1, http://b:2"]).unwrap();
        assert_eq!(s.place(), 0);
        assert_eq!(s.http(s.place(), "/health"), "http://a:1/health");
        let fail = |place| s.fail_over("tap 1", place, "down").map(Url::to_string);
        assert_eq!(fail(0).as_deref(), Some("http://b:2/"));
        // A second tap that saw the same failure does not move it on again.
        assert_eq!(fail(0), None);
        assert_eq!(s.place(), 1);
        assert_eq!(fail(1).as_deref(), Some("http://a:1/"));
        let error = parse(&["--server", "http://a:1,ftp://b"]).unwrap_err();
        assert!(error.contains("\"ftp://b\""), "{error}");
    }

    #[test]
    fn a_token_file_is_read_and_trimmed() {
        let file = std::env::temp_dir().join(format!("altair-token-{}", std::process::id()));
        std::fs::write(&file, "altair_abc\n").unwrap();
        let s = parse(&["--token-file", file.to_str().unwrap()]).unwrap();
        assert_eq!(s.token.as_deref(), Some("altair_abc"));
        std::fs::remove_file(&file).unwrap();
        assert!(
            parse(&["--token-file", "/nonexistent/token"])
                .unwrap_err()
                .contains("--token-file")
        );
    }

    #[test]
    fn taps_run_from_the_first_id() {
        assert_eq!(
            parse(&["--tap-id", "5", "--taps", "3"]).unwrap().taps,
            [5, 6, 7]
        );
    }

    #[test]
    fn bad_configuration_is_one_clear_message() {
        for (args, says) in [
            (&["--tap-id", "0"][..], "tap id"),
            (&["--interval", "0"][..], "--interval"),
            (&["--interval=-2"][..], "--interval"),
            (&["--server", "not a url"][..], "not a URL"),
            (&["--server", "https://x"][..], "only http"),
            (&["--taps", "0"][..], "--taps"),
            (
                &["--tap-id", "4294967295", "--taps", "2"][..],
                "largest tap id",
            ),
            (&["--volume=-1"][..], "--volume"),
        ] {
            let error = parse(args).unwrap_err();
            assert!(error.contains(says), "{args:?}: {error}");
            assert_eq!(error.lines().count(), 1, "{error}");
        }
    }
}
