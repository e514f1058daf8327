//! Configuration: every flag is also an `ALTAIR_*` environment variable.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// Real-time telemetry server for beer taps: pours in over REST, pushed out over WebSockets.
#[derive(Debug, Clone, Parser)]
#[command(name = "altair-server", version, about)]
pub struct Config {
    /// Address to listen on, e.g. 127.0.0.1:8338. Overrides --port.
    #[arg(long, env = "ALTAIR_BIND")]
    pub bind: Option<SocketAddr>,

    /// Port to listen on, on all interfaces (the prototype's PORT variable).
    #[arg(long, env = "PORT", default_value_t = 8338)]
    pub port: u16,

    /// Glass catalogue: a JSON list of {name, min, max}, or TOML with [[glass]] tables.
    /// Default: half 100-300 ml, pint 300-800 ml, stein 800-1000 ml.
    #[arg(long, global = true, env = "ALTAIR_GLASSES", value_name = "FILE")]
    pub glasses: Option<PathBuf>,

    /// Directory of the durable store (created if missing; one server at a time).
    /// Default: ./data, in the directory the server starts in.
    #[arg(long, global = true, env = "ALTAIR_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// PostgreSQL to keep pours in, shared by several servers: a URL
    /// (postgres://user@host/db) or key=value string (host=/run/postgresql dbname=altair).
    /// DATABASE_URL is read too, unless --ephemeral or --data-dir names another store.
    /// Without any, the embedded journal in --data-dir.
    #[arg(
        long,
        global = true,
        env = "ALTAIR_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,

    /// A file holding the database password (a docker secret, say); wins over one in the URL.
    #[arg(
        long,
        global = true,
        env = "ALTAIR_DATABASE_PASSWORD_FILE",
        value_name = "FILE"
    )]
    pub database_password_file: Option<PathBuf>,

    /// Seconds between each server's looks for new pours in the database when no
    /// notification has come.
    #[arg(long, env = "ALTAIR_DATABASE_POLL_INTERVAL", value_name = "SECS", default_value = "0.25", value_parser = seconds)]
    pub database_poll_interval: Duration,

    /// Keep pours in memory only: nothing survives a restart (demos, tests).
    #[arg(long, env = "ALTAIR_EPHEMERAL")]
    pub ephemeral: bool,

    /// Seconds an Idempotency-Key is remembered (at least a day by default).
    #[arg(long, global = true, env = "ALTAIR_IDEMPOTENCY_TTL", value_name = "SECS", default_value = "86400", value_parser = seconds)]
    pub idempotency_ttl: Duration,

    /// Journal size in bytes below which it is never compacted.
    #[arg(long, env = "ALTAIR_COMPACT_MIN_BYTES", value_name = "BYTES", default_value_t = 64 << 20)]
    pub compact_min_bytes: u64,

    /// Free bytes on the data directory's filesystem under which a warning is logged,
    /// once, before it runs out (0: never).
    #[arg(long, env = "ALTAIR_LOW_SPACE_WARNING", value_name = "BYTES", default_value_t = 1 << 30)]
    pub low_space_warning: u64,

    /// How often the data directory's free space is read for that warning.
    #[arg(long, env = "ALTAIR_SPACE_CHECK_INTERVAL", value_name = "SECS", default_value = "10", value_parser = seconds)]
    pub space_check_interval: Duration,

    /// Largest volume one pour can be (ml); more is a broken meter, refused with 422.
    #[arg(long, env = "ALTAIR_MAX_VOLUME", value_name = "ML", default_value = "5000", value_parser = millilitres)]
    pub max_volume: f64,

    /// Refuse pours whose volume no glass holds (422, as the prototype did) instead of
    /// storing them as type `unclassified`, flagged.
    #[arg(long, env = "ALTAIR_REJECT_UNCLASSIFIED")]
    pub reject_unclassified: bool,

    /// Pours below this volume (ml) are flagged `tiny`: ghost pours, drips the meter saw.
    #[arg(long, env = "ALTAIR_TINY_BELOW", value_name = "ML", default_value = "20", value_parser = millilitres)]
    pub tiny_below: f64,

    /// Pours more than this percentage above their glass's nominal serving are flagged
    /// `overPour`.
    #[arg(long, env = "ALTAIR_OVER_POUR_TOLERANCE", value_name = "PERCENT", default_value = "10", value_parser = percent)]
    pub over_pour_tolerance: f64,

    /// When the bar is open, in --timezone: daily windows, comma-separated, a window may
    /// cross midnight (16:00-02:00). Pours outside are flagged `afterHours`. Default:
    /// always open.
    #[arg(long, env = "ALTAIR_OPENING_HOURS", value_name = "HH:MM-HH:MM,...", value_parser = OpeningHours::parse)]
    pub opening_hours: Option<OpeningHours>,

    /// The venue of pours, kegs and taps that name none (devices in the field post
    /// `{"tapId", "volume"}`): a one-bar deployment's bar. Other venues are made through
    /// `POST /api/venues`.
    #[arg(long, global = true, env = "ALTAIR_DEFAULT_VENUE", value_name = "ID", default_value = "main", value_parser = venue_id)]
    pub default_venue: String,

    /// When the bar's business day starts (HH:MM, in --timezone): a night's pours after
    /// midnight count for the day before until then, in "today" and the history.
    #[arg(long, env = "ALTAIR_BUSINESS_DAY_STARTS", value_name = "HH:MM", default_value = "04:00", value_parser = time_of_day)]
    pub business_day_starts: u32,

    /// The bar's time zone (IANA name, e.g. Europe/Berlin), for opening hours.
    #[arg(long, env = "ALTAIR_TIMEZONE", value_name = "ZONE", default_value = "UTC", value_parser = time_zone)]
    pub timezone: chrono_tz::Tz,

    /// The fastest a tap pours (ml/s). A pour that ends sooner after its tap's previous
    /// one than its volume takes at this rate is flagged `burst`.
    #[arg(long, env = "ALTAIR_MAX_FLOW", value_name = "ML_PER_S", default_value = "200", value_parser = millilitres)]
    pub max_flow: f64,

    /// A keg is low (and subscribers hear so, once) at or under this percentage of its size.
    #[arg(long, env = "ALTAIR_KEG_LOW_PERCENT", value_name = "PERCENT", default_value = "15", value_parser = percent)]
    pub keg_low_percent: f64,

    /// How far from zero a variance (sold against poured) may be, in per cent, before it is
    /// over the goal.
    #[arg(long, env = "ALTAIR_VARIANCE_GOAL", value_name = "PERCENT", default_value = "2", value_parser = percent)]
    pub variance_goal: f64,

    /// Seconds without a pour after which a tap with a keg on is quiet, while the bar is
    /// open (--opening-hours).
    #[arg(long, env = "ALTAIR_QUIET_AFTER", value_name = "SECS", default_value = "1800", value_parser = seconds)]
    pub quiet_after: Duration,

    /// Beer above this temperature (°C) for --warm-for is too warm: an alert (it foams).
    #[arg(long, env = "ALTAIR_WARM_ABOVE", value_name = "CELSIUS", default_value = "3.3", value_parser = celsius)]
    pub warm_above: f64,

    /// Seconds beer may stay above --warm-above before it is an alert (a cooler door
    /// left open a minute is not).
    #[arg(long, env = "ALTAIR_WARM_FOR", value_name = "SECS", default_value = "900", value_parser = seconds)]
    pub warm_for: Duration,

    /// Beer above this temperature (°C) is a critical alert at once (it spoils).
    #[arg(long, env = "ALTAIR_HOT_ABOVE", value_name = "CELSIUS", default_value = "10", value_parser = celsius)]
    pub hot_above: f64,

    /// Seconds without a reading after which a temperature sensor is silent: an alert.
    #[arg(long, env = "ALTAIR_SENSOR_SILENT_AFTER", value_name = "SECS", default_value = "300", value_parser = seconds)]
    pub sensor_silent_after: Duration,

    /// Seconds after which an alert about events (flagged or after-hours pours on a tap)
    /// resolves when no new one came; a later one opens a new alert.
    #[arg(long, env = "ALTAIR_ALERT_WINDOW", value_name = "SECS", default_value = "3600", value_parser = seconds)]
    pub alert_window: Duration,

    /// Seconds to wait before each retry of a webhook message, comma-separated; the
    /// message fails after the last (Svix's schedule: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h,
    /// 10 h). Each wait is spread by up to a fifth either way.
    #[arg(long, env = "ALTAIR_WEBHOOK_RETRIES", value_name = "SECS,...", default_value = "5,300,1800,7200,18000,36000,36000", value_parser = retries)]
    pub webhook_retries: Retries,

    /// Seconds a webhook's receiver has to answer one message.
    #[arg(long, env = "ALTAIR_WEBHOOK_TIMEOUT", value_name = "SECS", default_value = "15", value_parser = seconds)]
    pub webhook_timeout: Duration,

    /// Seconds of failed attempts (and no delivery) after which a webhook is disabled.
    #[arg(long, env = "ALTAIR_WEBHOOK_DISABLE_AFTER", value_name = "SECS", default_value = "86400", value_parser = seconds)]
    pub webhook_disable_after: Duration,

    /// Seconds a pour's own timestamp may be ahead of the server's clock before the pour
    /// is flagged `future` (its device's clock is wrong).
    #[arg(long, env = "ALTAIR_CLOCK_SKEW", value_name = "SECS", default_value = "300", value_parser = seconds)]
    pub clock_skew: Duration,

    /// Seconds between reports pushed to subscribers.
    #[arg(long, env = "ALTAIR_REPORT_INTERVAL", value_name = "SECS", default_value = "10", value_parser = seconds)]
    pub report_interval: Duration,

    /// Also push a report after every N pours (0: only at the interval).
    #[arg(
        long,
        env = "ALTAIR_REPORT_EVERY",
        value_name = "N",
        default_value_t = 0
    )]
    pub report_every: u64,

    /// Seconds between WebSocket pings.
    #[arg(long, env = "ALTAIR_PING_INTERVAL", value_name = "SECS", default_value = "30", value_parser = seconds)]
    pub ping_interval: Duration,

    /// Seconds a subscriber may stay silent (no pong, no frame) before it is dropped.
    #[arg(long, env = "ALTAIR_PONG_TIMEOUT", value_name = "SECS", default_value = "60", value_parser = seconds)]
    pub pong_timeout: Duration,

    /// Frames queued per subscriber before it is closed as a slow consumer.
    #[arg(long, env = "ALTAIR_SUBSCRIBER_QUEUE", value_name = "FRAMES", default_value_t = 1024,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub subscriber_queue: u32,

    /// Seconds a closing subscriber gets to take its close frame before the connection drops.
    #[arg(long, env = "ALTAIR_CLOSE_GRACE", value_name = "SECS", default_value = "3", value_parser = seconds)]
    pub close_grace: Duration,

    /// Events the bus holds for the WebSocket hub when it falls behind.
    #[arg(long, env = "ALTAIR_BUS_CAPACITY", value_name = "EVENTS", default_value_t = 65536,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub bus_capacity: u32,

    /// Tokens file (TOML, SHA-256 hashes only); without it the server is open to anyone.
    /// Re-read on SIGHUP.
    #[arg(long, env = "ALTAIR_TOKENS_FILE", value_name = "FILE")]
    pub tokens: Option<PathBuf>,

    /// Refuse to start without a tokens file.
    #[arg(long, env = "ALTAIR_REQUIRE_AUTH")]
    pub require_auth: bool,

    /// Paths readable without a token once a tokens file is given (comma-separated).
    #[arg(
        long,
        env = "ALTAIR_PUBLIC",
        value_name = "PATHS",
        value_delimiter = ',',
        default_value = "/health"
    )]
    pub public: Vec<String>,

    /// Requests per second per token (per tap without tokens), bursts twice that; 0: no limit.
    #[arg(
        long,
        env = "ALTAIR_RATE_LIMIT",
        value_name = "N",
        default_value_t = 50
    )]
    pub rate_limit: u32,

    /// Requests per second per client address, bursts twice that; 0: no limit.
    #[arg(
        long,
        env = "ALTAIR_RATE_LIMIT_ADDRESS",
        value_name = "N",
        default_value_t = 2000
    )]
    pub rate_limit_address: u32,

    /// Most WebSocket subscribers at once; more are refused with 503.
    #[arg(
        long,
        env = "ALTAIR_MAX_SUBSCRIBERS",
        value_name = "N",
        default_value_t = 20_000
    )]
    pub max_subscribers: usize,

    /// Most open connections at once; more wait in the listen backlog.
    #[arg(long, env = "ALTAIR_MAX_CONNECTIONS", value_name = "N", default_value_t = 25_000,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,

    /// Seconds a client has to send a request's headers; also closes idle keep-alive
    /// connections (slowloris).
    #[arg(long, env = "ALTAIR_HEADER_TIMEOUT", value_name = "SECS", default_value = "10", value_parser = seconds)]
    pub header_timeout: Duration,

    /// Origins allowed to call the API from a browser (comma-separated); none by default.
    #[arg(
        long,
        env = "ALTAIR_CORS_ORIGINS",
        value_name = "ORIGINS",
        value_delimiter = ','
    )]
    pub cors_origin: Vec<String>,

    /// Which requests get an info log line: all, or errors (4xx/5xx) only, successful ones
    /// then at debug level (RUST_LOG=altair::request=debug shows them). One line per
    /// request costs ingest throughput at tens of thousands of requests per second.
    #[arg(long, env = "ALTAIR_REQUEST_LOG", value_name = "WHICH", default_value = "all",
          value_parser = ["all", "errors"])]
    pub request_log: String,

    /// Seconds between the log lines that sum up each address's refused requests (4xx past
    /// a few an interval, and every 429), which never get a line each.
    #[arg(long, env = "ALTAIR_REFUSAL_LOG_INTERVAL", value_name = "SECS", default_value = "10", value_parser = seconds)]
    pub refusal_log_interval: Duration,

    /// An MQTT broker to take pours from (and publish to): mqtt://host[:1883] or
    /// mqtts://host[:8883] (TLS, trusting the system's CA store); a user may be given as
    /// mqtt://user@host. Without it, no MQTT.
    #[arg(long, env = "ALTAIR_MQTT_URL", value_name = "URL", hide_env_values = true, value_parser = MqttUrl::parse)]
    pub mqtt_url: Option<MqttUrl>,

    /// A file holding the MQTT password (a docker secret, say); wins over one in the URL.
    #[arg(long, env = "ALTAIR_MQTT_PASSWORD_FILE", value_name = "FILE")]
    pub mqtt_password_file: Option<PathBuf>,

    /// The first level of Altair's MQTT topics: PREFIX/taps/{tapId}/pours and
    /// PREFIX/{venue}/taps/{tapId}/pours.
    #[arg(long, env = "ALTAIR_MQTT_PREFIX", value_name = "PREFIX", default_value = "altair", value_parser = mqtt_prefix)]
    pub mqtt_prefix: String,

    /// Announce each tap with a keg to Home Assistant (MQTT discovery) under this prefix:
    /// its level, remaining litres, last pour, pours today, low, empty and quiet.
    #[arg(long, env = "ALTAIR_MQTT_DISCOVERY", value_name = "PREFIX", num_args = 0..=1,
          default_missing_value = "homeassistant", value_parser = mqtt_prefix)]
    pub mqtt_discovery: Option<String>,

    /// This server's MQTT client id, which names its session on the broker: keep it the
    /// same across restarts, different for each server. Default: altair-HOSTNAME-PORT.
    #[arg(long, env = "ALTAIR_MQTT_CLIENT_ID", value_name = "ID")]
    pub mqtt_client_id: Option<String>,

    /// The MQTT the server speaks to its broker: 5, or 3.1.1 for a broker that speaks
    /// nothing newer (no Idempotency-Key user property then: the body's key works).
    #[arg(
        long,
        env = "ALTAIR_MQTT_PROTOCOL",
        value_name = "VERSION",
        default_value = "5"
    )]
    pub mqtt_protocol: MqttProtocol,

    /// A TOML file of counter devices: topics whose messages are a meter's running total
    /// (litres, millilitres or pulses), each for a tap, turned into pours.
    #[arg(long, env = "ALTAIR_MQTT_METERS", value_name = "FILE")]
    pub mqtt_meters: Option<PathBuf>,

    /// Seconds the broker keeps this server's session (and the messages owed to it) while
    /// the server is away.
    #[arg(long, env = "ALTAIR_MQTT_SESSION_EXPIRY", value_name = "SECS", default_value = "3600", value_parser = seconds)]
    pub mqtt_session_expiry: Duration,

    /// Seconds that shutdown waits for requests and sockets before it gives up on them.
    #[arg(long, env = "ALTAIR_SHUTDOWN_TIMEOUT", value_name = "SECS", default_value = "4", value_parser = seconds)]
    pub shutdown_timeout: Duration,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Tasks other than serving.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Manage API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Create or upgrade the database schema (--database-url), then exit. Servers do this
    /// at start too; this is for operators who run migrations as a step of their own.
    Migrate,
    /// Write the whole log of a stopped journal (--data-dir) or a database (--database-url)
    /// as a versioned NDJSON stream with a checksum: a backup, or the way to another store.
    Export {
        /// Write here instead of standard output (the file is replaced only when complete).
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// Keep the webhooks' signing secrets in the export (without: they come back
        /// disabled, and must be made again). The file is then a secret itself.
        #[arg(long)]
        include_secrets: bool,
    },
    /// Load an export into an empty store (--data-dir or --database-url), checking every
    /// line; nothing is kept unless the whole stream checks out.
    Import {
        /// Read this file instead of standard input.
        #[arg(long, value_name = "FILE")]
        input: Option<PathBuf>,
    },
    /// Ask the local server's /health; exit 0 if it answers 200 (for container health checks).
    Healthcheck {
        /// Seconds to wait for the answer.
        #[arg(long, default_value = "3", value_parser = seconds)]
        timeout: Duration,
    },
}

/// `altair-server token ...`
#[derive(Debug, Clone, clap::Subcommand)]
pub enum TokenCommand {
    /// Print a fresh random token and the tokens-file entry that admits it.
    New {
        /// tap, reader or admin.
        #[arg(long, value_parser = ["tap", "reader", "admin"])]
        role: String,
        /// The tap a tap token may pour for.
        #[arg(long, required_if_eq("role", "tap"), value_parser = clap::value_parser!(u32).range(1..))]
        tap_id: Option<u32>,
        /// The one venue it sees and acts in (default: a tap token's is the default venue's
        /// tap; a reader or admin token sees every venue).
        #[arg(long, value_parser = venue_id)]
        venue: Option<String>,
        /// A name for logs and rate limits (default: the role, the venue, and the tap id).
        #[arg(long)]
        name: Option<String>,
    },
}

impl Config {
    /// The database's connection string: --database-url or ALTAIR_DATABASE_URL, else
    /// DATABASE_URL, as most PostgreSQL tooling reads it.
    pub fn database(&self) -> Option<String> {
        self.database_or(std::env::var("DATABASE_URL").ok())
    }

    /// [`Config::database`] with `generic` as DATABASE_URL: a variable that other tools
    /// share, so it never overrides a store named here (--ephemeral, --data-dir).
    fn database_or(&self, generic: Option<String>) -> Option<String> {
        let named_here = self.ephemeral || self.data_dir.is_some();
        self.database_url
            .clone()
            .or(if named_here { None } else { generic })
            .filter(|url| !url.trim().is_empty())
    }

    /// The journal's directory: --data-dir, else ./data.
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("./data"))
    }

    /// The address to listen on: --bind, else all interfaces on --port.
    pub fn listen_addr(&self) -> SocketAddr {
        self.bind
            .unwrap_or_else(|| SocketAddr::from((Ipv4Addr::UNSPECIFIED, self.port)))
    }
}

/// What [`OpeningHours::parse`] takes.
pub const OPENING_HOURS_PATTERN: &str = "^ *([01]?[0-9]|2[0-3]):[0-5][0-9] *- *(([01]?[0-9]|2[0-3]):[0-5][0-9]|24:00) *(, *([01]?[0-9]|2[0-3]):[0-5][0-9] *- *(([01]?[0-9]|2[0-3]):[0-5][0-9]|24:00) *)*$";

/// Daily opening hours: windows of seconds since local midnight, `[start, end)`; a window
/// whose end is before its start crosses midnight, and one that ends where it starts is
/// the whole day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpeningHours {
    windows: Vec<(u32, u32)>,
}

impl OpeningHours {
    /// Parses `HH:MM-HH:MM[,HH:MM-HH:MM...]` (spaces around the times allowed, an hour of
    /// one digit too); `24:00` may end a window. What [`OPENING_HOURS_PATTERN`] says.
    pub fn parse(text: &str) -> Result<OpeningHours, String> {
        let clock = |part: &str, end: bool| -> Option<u32> {
            let (h, m) = part.trim_matches(' ').split_once(':')?;
            let digits = |s: &str, n: std::ops::RangeInclusive<usize>| {
                n.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
            };
            if !digits(h, 1..=2) || !digits(m, 2..=2) {
                return None;
            }
            let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
            let whole_day = end && h == 24 && m == 0;
            ((h < 24 && m < 60) || whole_day).then_some(h * 3600 + m * 60)
        };
        let windows = text
            .split(',')
            .map(|window| {
                let (start, end) = window.split_once('-')?;
                Some((clock(start, false)?, clock(end, true)?))
            })
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| {
                format!(
                    "{text:?} is not opening hours: expected HH:MM-HH:MM windows, comma-separated \
                     (16:00-02:00 crosses midnight)"
                )
            })?;
        Ok(OpeningHours { windows })
    }

    /// Whether `second` (since local midnight) lies in a window.
    pub fn contains(&self, second: u32) -> bool {
        self.windows.iter().any(|&(start, end)| {
            if start < end {
                (start..end).contains(&second)
            } else {
                second >= start || second < end
            }
        })
    }
}

impl std::fmt::Display for OpeningHours {
    /// As parsed: `16:00-02:00,11:30-14:00`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let clock = |s: u32| format!("{:02}:{:02}", s / 3600, s % 3600 / 60);
        let windows: Vec<String> = self
            .windows
            .iter()
            .map(|&(start, end)| format!("{}-{}", clock(start), clock(end)))
            .collect();
        f.write_str(&windows.join(","))
    }
}

/// The longest venue id.
pub const MAX_VENUE_ID: usize = 40;

/// A venue's id: 1 to 40 of `a-z`, `0-9` and `-`, as it appears in paths.
pub fn venue_id(text: &str) -> Result<String, String> {
    let fits = (1..=MAX_VENUE_ID).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    match fits {
        true => Ok(text.to_owned()),
        false => Err(format!(
            "{text:?} is not a venue id: 1 to {MAX_VENUE_ID} lowercase letters, digits and hyphens"
        )),
    }
}

/// A time zone by its IANA name.
pub fn time_zone(text: &str) -> Result<chrono_tz::Tz, String> {
    text.parse()
        .map_err(|_| format!("{text:?} is not an IANA time zone name (e.g. Europe/Berlin, UTC)"))
}

/// A time of day, `HH:MM` (00:00 to 23:59): seconds since midnight.
pub fn time_of_day(text: &str) -> Result<u32, String> {
    let parsed = text.split_once(':').and_then(|(h, m)| {
        let two = |s: &str| {
            let digits = s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit());
            digits.then(|| s.parse::<u32>().ok()).flatten()
        };
        let (h, m) = (two(h)?, two(m)?);
        (h < 24 && m < 60).then_some(h * 3600 + m * 60)
    });
    parsed.ok_or_else(|| format!("{text:?} is not a time of day (HH:MM, 00:00 to 23:59)"))
}

/// A positive, finite number of millilitres (or millilitres a second).
fn millilitres(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(ml) if ml > 0.0 && ml.is_finite() => Ok(ml),
        _ => Err(format!("{text:?} is not a positive number")),
    }
}

/// A percentage from 0 up.
fn percent(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(pct) if pct >= 0.0 && pct.is_finite() => Ok(pct),
        _ => Err(format!("{text:?} is not a percentage (0 or more)")),
    }
}

/// A positive number of seconds, fractions allowed: `10`, `0.25`.
/// Which MQTT the server speaks to its broker (`--mqtt-protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MqttProtocol {
    /// MQTT 5 (the default).
    #[value(name = "5")]
    V5,
    /// MQTT 3.1.1, for a broker that speaks nothing newer.
    #[value(name = "3.1.1")]
    V311,
}

/// Where the MQTT broker is: `--mqtt-url`. Its password never prints.
#[derive(Clone, PartialEq)]
pub struct MqttUrl {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    pub user: Option<String>,
    pub password: Option<String>,
}

impl MqttUrl {
    pub fn parse(text: &str) -> Result<MqttUrl, String> {
        let url = url::Url::parse(text).map_err(|e| format!("not a URL: {e}"))?;
        let tls = match url.scheme() {
            "mqtt" | "tcp" => false,
            "mqtts" | "ssl" => true,
            other => return Err(format!("scheme {other:?}: use mqtt:// or mqtts://")),
        };
        let host = match url.host() {
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            Some(host) => host.to_string(),
            None => return Err("no host".into()),
        };
        if !matches!(url.path(), "" | "/") || url.query().is_some() {
            return Err("only mqtt[s]://[user@]host[:port]".into());
        }
        let decode = |part: &str| {
            percent_decode(part).ok_or_else(|| "user or password: bad %-encoding".to_string())
        };
        Ok(MqttUrl {
            tls,
            host,
            port: url.port().unwrap_or(if tls { 8883 } else { 1883 }),
            user: Some(url.username())
                .filter(|u| !u.is_empty())
                .map(decode)
                .transpose()?,
            password: url.password().map(decode).transpose()?,
        })
    }
}

/// `%`-decoded text, if it decodes to UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes: Vec<u8> =
        form_urlencoded::parse(format!("x={}", text.replace('+', "%2B")).as_bytes())
            .next()
            .map(|(_, v)| v.into_owned().into_bytes())?;
    String::from_utf8(bytes).ok()
}

impl std::fmt::Display for MqttUrl {
    /// Host and port only: what a log line may say.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls { "mqtts" } else { "mqtt" };
        match self.host.contains(':') {
            true => write!(f, "{scheme}://[{}]:{}", self.host, self.port),
            false => write!(f, "{scheme}://{}:{}", self.host, self.port),
        }
    }
}

impl std::fmt::Debug for MqttUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self}")
    }
}

/// A topic level of letters, digits, `-` and `_` (no wildcard, no `/`, no `$` first).
fn mqtt_prefix(text: &str) -> Result<String, String> {
    let fine = !text.is_empty()
        && text.len() <= 64
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    match fine {
        true => Ok(text.to_owned()),
        false => Err("1 to 64 letters, digits, '-' or '_'".into()),
    }
}

fn celsius(text: &str) -> Result<f64, String> {
    let c: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a temperature in °C"))?;
    if c.is_finite() && (-40.0..=100.0).contains(&c) {
        Ok(c)
    } else {
        Err(format!("{text} must be from -40 to 100 °C"))
    }
}

fn seconds(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if !(secs > 0.0 && secs <= 31_536_000.0) {
        return Err(format!("{text} must be more than 0 and at most a year"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// The waits before a webhook message's retries.
#[derive(Debug, Clone, PartialEq)]
pub struct Retries(pub Vec<Duration>);

fn retries(text: &str) -> Result<Retries, String> {
    let waits = text
        .split(',')
        .map(|t| seconds(t.trim()))
        .collect::<Result<Vec<_>, _>>()?;
    if waits.len() > 20 {
        return Err("at most 20 retries".into());
    }
    Ok(Retries(waits))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_prototype() {
        let c = Config::try_parse_from(["altair-server", "--port", "8338"]).unwrap();
        assert_eq!(c.listen_addr(), "0.0.0.0:8338".parse().unwrap());
        assert_eq!(c.report_interval, Duration::from_secs(10));
        assert_eq!(c.subscriber_queue, 1024);
    }

    #[test]
    fn bind_overrides_port_and_durations_take_fractions() {
        let c = Config::try_parse_from([
            "altair-server",
            "--bind",
            "127.0.0.1:9000",
            "--port",
            "1",
            "--report-interval",
            "0.25",
        ])
        .unwrap();
        assert_eq!(c.listen_addr(), "127.0.0.1:9000".parse().unwrap());
        assert_eq!(c.report_interval, Duration::from_millis(250));
    }

    #[test]
    fn database_url_does_not_override_a_store_named_here() {
        let parse = |args: &[&str]| {
            let mut argv = vec!["altair-server"];
            argv.extend_from_slice(args);
            Config::try_parse_from(argv).unwrap()
        };
        let generic = || Some("host=/db".to_owned());
        assert_eq!(
            parse(&[]).database_or(generic()).as_deref(),
            Some("host=/db")
        );
        assert_eq!(parse(&["--ephemeral"]).database_or(generic()), None);
        assert_eq!(parse(&["--data-dir", "/d"]).database_or(generic()), None);
        assert_eq!(
            parse(&["--database-url", "host=/own"])
                .database_or(generic())
                .as_deref(),
            Some("host=/own")
        );
        assert_eq!(parse(&[]).data_dir(), PathBuf::from("./data"));
    }

    #[test]
    fn opening_hours_take_windows_that_may_cross_midnight() {
        let h = |hh: u32, mm: u32| hh * 3600 + mm * 60;
        let late = OpeningHours::parse("16:00-02:00").unwrap();
        assert!(late.contains(h(16, 0)) && late.contains(h(23, 59)) && late.contains(0));
        assert!(late.contains(h(2, 0) - 1) && !late.contains(h(2, 0)));
        assert!(!late.contains(h(15, 59)) && !late.contains(h(12, 0)));
        let split = OpeningHours::parse("11:30-14:00, 17:00-24:00").unwrap();
        assert!(split.contains(h(11, 30)) && !split.contains(h(14, 0)));
        assert!(split.contains(h(23, 59)) && !split.contains(0));
        for bad in [
            "",
            "16-02",
            "16:00",
            "25:00-02:00",
            "10:60-11:00",
            "24:00-02:00",
            "+1:00-02:00",
            "1:0-02:00",
            "\t16:00-02:00",
        ] {
            assert!(OpeningHours::parse(bad).is_err(), "{bad}");
        }
        // A window that ends where it starts is the whole day.
        let always = OpeningHours::parse("10:00-10:00").unwrap();
        assert!(always.contains(0) && always.contains(h(9, 59)) && always.contains(h(10, 0)));
        // Written back the one way, as a venue shows it.
        assert_eq!(
            OpeningHours::parse(" 9:00 - 17:00,22:00-24:00")
                .unwrap()
                .to_string(),
            "09:00-17:00,22:00-24:00"
        );
        let c = Config::try_parse_from(["altair-server", "--timezone", "Europe/Berlin"]).unwrap();
        assert_eq!(c.timezone, chrono_tz::Europe::Berlin);
        assert!(Config::try_parse_from(["altair-server", "--timezone", "Mars/Olympus"]).is_err());
    }

    #[test]
    fn an_mqtt_url_names_host_port_and_user_and_never_prints_its_password() {
        let url = MqttUrl::parse("mqtt://bar%40x:s%2Fcret@broker.local").unwrap();
        assert_eq!((url.tls, url.port), (false, 1883));
        assert_eq!(url.host, "broker.local");
        assert_eq!(url.user.as_deref(), Some("bar@x"));
        assert_eq!(url.password.as_deref(), Some("s/cret"));
        assert_eq!(
            format!("{url} {url:?}"),
            "mqtt://broker.local:1883 mqtt://broker.local:1883"
        );
        let tls = MqttUrl::parse("mqtts://[::1]").unwrap();
        assert_eq!(
            (tls.tls, tls.port, tls.to_string().as_str()),
            (true, 8883, "mqtts://[::1]:8883")
        );
        for bad in ["http://x", "mqtt://", "mqtt://x/topic", "x:1883"] {
            assert!(MqttUrl::parse(bad).is_err(), "{bad}");
        }
        assert!(Config::try_parse_from(["altair-server", "--mqtt-prefix", "a/b"]).is_err());
    }

    #[test]
    fn nonsense_durations_are_refused() {
        for bad in ["0", "-1", "soon", "NaN"] {
            assert!(
                Config::try_parse_from(["altair-server", "--ping-interval", bad]).is_err(),
                "{bad}"
            );
        }
    }
}
