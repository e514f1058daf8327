//! Webhooks as the Standard Webhooks specification (1.0) defines them: a secret
//! (`whsec_` and base64), and each message signed with HMAC-SHA256 over
//! `{id}.{timestamp}.{body}`, sent in the `webhook-id`, `webhook-timestamp` and
//! `webhook-signature` headers, so that receivers verify it with the specification's own
//! libraries. Also the bodies for the places bar managers already look: Slack or
//! Mattermost, and ntfy (a push to a phone with no account).
//!
//! Pure: nothing here sends anything.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::alert::{AlertEvent, AlertKind, Change, Severity};
use crate::keg::{KegEvent, KegEventKind};
use crate::pour::Timestamp;

/// The prefix the specification gives secrets.
const SECRET_PREFIX: &str = "whsec_";

/// Random bytes in a new secret (the specification asks for 24 to 64).
const SECRET_BYTES: usize = 32;

/// A signing secret: its key bytes. Never logged: `Debug` shows its prefix only.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({})", self.prefix())
    }
}

impl Secret {
    /// A new random secret.
    pub fn generate() -> Result<Secret, getrandom::Error> {
        let mut key = vec![0u8; SECRET_BYTES];
        getrandom::fill(&mut key)?;
        Ok(Secret(key))
    }

    /// A secret as the specification writes it (`whsec_` and base64); `None` if it is not.
    pub fn parse(text: &str) -> Option<Secret> {
        let key = STANDARD.decode(text.strip_prefix(SECRET_PREFIX)?).ok()?;
        (!key.is_empty()).then_some(Secret(key))
    }

    /// As the specification writes it: shown once, when the webhook is made.
    pub fn reveal(&self) -> String {
        format!("{SECRET_PREFIX}{}", STANDARD.encode(&self.0))
    }

    /// Enough to tell secrets apart, nothing to sign with: `whsec_C2FV…`.
    pub fn prefix(&self) -> String {
        let shown: String = self
            .reveal()
            .chars()
            .take(SECRET_PREFIX.len() + 4)
            .collect();
        format!("{shown}…")
    }

    /// The `webhook-signature` header's value for a message.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        // An HMAC takes a key of any length.
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

/// What a message is about: its `type`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
pub enum EventType {
    #[serde(rename = "alert.opened")]
    AlertOpened,
    #[serde(rename = "alert.acknowledged")]
    AlertAcknowledged,
    #[serde(rename = "alert.resolved")]
    AlertResolved,
    #[serde(rename = "keg.tapped")]
    KegTapped,
    #[serde(rename = "keg.finished")]
    KegFinished,
    /// `POST /api/webhooks/{id}/test`.
    #[serde(rename = "ping")]
    Ping,
}

impl EventType {
    /// The events a webhook may ask for (a ping it always takes).
    pub const SUBSCRIBABLE: [EventType; 5] = [
        EventType::AlertOpened,
        EventType::AlertAcknowledged,
        EventType::AlertResolved,
        EventType::KegTapped,
        EventType::KegFinished,
    ];

    pub fn name(self) -> &'static str {
        match self {
            EventType::AlertOpened => "alert.opened",
            EventType::AlertAcknowledged => "alert.acknowledged",
            EventType::AlertResolved => "alert.resolved",
            EventType::KegTapped => "keg.tapped",
            EventType::KegFinished => "keg.finished",
            EventType::Ping => "ping",
        }
    }

    pub fn parse(name: &str) -> Option<EventType> {
        EventType::SUBSCRIBABLE
            .into_iter()
            .chain([EventType::Ping])
            .find(|e| e.name() == name)
    }
}

/// How a webhook's bodies are written.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    serde::Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum Format {
    /// `{"type", "timestamp", "data"}`, signed: for programs.
    #[default]
    Standard,
    /// A Slack or Mattermost incoming webhook: `{"text"}` for people.
    Slack,
    /// ntfy (ntfy.sh or your own): the text, with a title and a priority, to a phone.
    Ntfy,
}

/// A message as it goes out: the body and the headers its format adds (the signature's
/// come on top, the same for every format).
#[derive(Debug, Clone, PartialEq)]
pub struct Body {
    pub bytes: Vec<u8>,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
}

/// What a message says, for people: a title and a line (the alert's message, say) and how
/// loud it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Words {
    pub title: String,
    pub text: String,
    pub severity: Severity,
}

/// The body of a message of `event` made at `timestamp`, carrying `data` (for programs)
/// and `words` (for people), in `format`.
pub fn body(
    format: Format,
    event: EventType,
    timestamp: Timestamp,
    data: &serde_json::Value,
    words: &Words,
) -> Body {
    match format {
        Format::Standard => Body {
            bytes: serde_json::to_vec(&serde_json::json!({
                "type": event.name(),
                "timestamp": timestamp,
                "data": data,
            }))
            .unwrap_or_default(),
            content_type: "application/json",
            headers: Vec::new(),
        },
        Format::Slack => {
            let mark = match words.severity {
                Severity::Critical => ":red_circle:",
                Severity::Warning => ":warning:",
                Severity::Info => ":information_source:",
            };
            Body {
                bytes: serde_json::to_vec(&serde_json::json!({
                    "text": format!("{mark} *{}*: {}", slack_escape(&words.title), slack_escape(&words.text)),
                }))
                .unwrap_or_default(),
                content_type: "application/json",
                headers: Vec::new(),
            }
        }
        Format::Ntfy => {
            let (priority, tag) = match words.severity {
                Severity::Critical => ("urgent", "rotating_light"),
                Severity::Warning => ("high", "warning"),
                Severity::Info => ("default", "beer"),
            };
            Body {
                bytes: words.text.clone().into_bytes(),
                content_type: "text/plain; charset=utf-8",
                headers: vec![
                    // Header values are ASCII on the wire: ntfy reads RFC 2047 for the rest.
                    ("Title", header_text(&words.title)),
                    ("Priority", priority.to_owned()),
                    ("Tags", tag.to_owned()),
                ],
            }
        }
    }
}

/// Slack's markup characters, escaped as its documentation asks.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// `text` as a header value: as it is if printable ASCII, else RFC 2047 (`=?UTF-8?B?…?=`).
fn header_text(text: &str) -> String {
    if text.chars().all(|c| c == ' ' || c.is_ascii_graphic()) {
        text.to_owned()
    } else {
        format!("=?UTF-8?B?{}?=", STANDARD.encode(text.as_bytes()))
    }
}

/// What a webhook's URL must match (the OpenAPI document publishes it): http or https; a
/// lowercase host name or an IPv4 address; a port; a path and a query; no user name or
/// password (they would be stored and shown: a token belongs in the path or query), no
/// fragment.
pub const URL_PATTERN: &str = concat!(
    r"^https?://(",
    r"((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])",
    r"|([a-z0-9]+(-[a-z0-9]+)*\.)*[a-z][a-z0-9]*(-[a-z0-9]+)*",
    r")(:([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?",
    r"(/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*)?(\?[A-Za-z0-9._~!$&'()*+,;=:@%/?-]*)?$",
);

/// The longest URL taken.
pub const MAX_URL: usize = 2000;

/// Why a webhook's URL is refused.
pub fn check_url(text: &str) -> Result<url::Url, String> {
    static RULE: std::sync::OnceLock<Option<regex::Regex>> = std::sync::OnceLock::new();
    if text.len() > MAX_URL {
        return Err(format!("url must be at most {MAX_URL} characters"));
    }
    let parsed = url::Url::parse(text).map_err(|e| format!("url is not a URL ({e})"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!(
            "url must be http or https, not {}",
            parsed.scheme()
        ));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("url must not carry a user name or password".into());
    }
    let rule = RULE.get_or_init(|| regex::Regex::new(URL_PATTERN).ok());
    if !rule.as_ref().is_some_and(|r| r.is_match(text)) {
        return Err(
            "url must be http(s)://host[:port][/path][?query]: a lowercase host name or an IPv4 address, no fragment"
                .into(),
        );
    }
    Ok(parsed)
}

/// A webhook as kept: where, what, how, and its secret.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Hook {
    pub id: u64,
    /// Random, and part of every message id: a receiver that de-duplicates never mistakes
    /// a message for one from a webhook made before it (on a new store, say).
    pub uid: String,
    pub url: String,
    /// The venue whose events it takes (none: every venue's, and the servers' own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub venue: Option<String>,
    pub events: Vec<EventType>,
    pub description: String,
    pub format: Format,
    #[serde(with = "secret_text")]
    pub secret: Secret,
    pub enabled: bool,
    /// Why it was disabled, if the server did it.
    pub disabled_reason: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// The bar's events up to this `seq` are messages already (or were not for it).
    pub cursor: u64,
    /// Since when every attempt failed: none since the last one delivered.
    pub failing_since: Option<Timestamp>,
}

impl Hook {
    /// Whether it takes messages of `event`.
    pub fn wants(&self, event: EventType) -> bool {
        self.enabled && self.events.contains(&event)
    }

    /// Whether it takes what happens in `venue` (none: the chain's or a server's own).
    pub fn follows(&self, venue: Option<&str>) -> bool {
        match (&self.venue, venue) {
            (None, _) => true,
            (Some(own), Some(venue)) => own == venue,
            (Some(_), None) => false,
        }
    }
}

/// A new webhook's settings, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct NewHook {
    pub url: String,
    pub venue: Option<String>,
    pub events: Vec<EventType>,
    pub description: String,
    pub format: Format,
    pub secret: Secret,
    pub uid: String,
    pub cursor: u64,
}

impl NewHook {
    /// The webhook it makes under `id`, at `now`: enabled, and failing since never.
    pub fn into_hook(self, id: u64, now: Timestamp) -> Hook {
        Hook {
            id,
            uid: self.uid,
            url: self.url,
            venue: self.venue,
            events: self.events,
            description: self.description,
            format: self.format,
            secret: self.secret,
            enabled: true,
            disabled_reason: None,
            created_at: now,
            updated_at: now,
            cursor: self.cursor,
            failing_since: None,
        }
    }
}

/// What a `PATCH` changes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HookChange {
    pub url: Option<String>,
    pub events: Option<Vec<EventType>>,
    pub description: Option<String>,
    pub format: Option<Format>,
    /// Turned on (again, clearing why it was off) or off.
    pub enabled: Option<bool>,
    /// Turned off by the server, and why.
    pub disabled_reason: Option<String>,
}

impl HookChange {
    /// Applies the change to `hook`, as of `now`.
    pub fn apply(&self, hook: &mut Hook, now: Timestamp) {
        if let Some(url) = &self.url {
            hook.url.clone_from(url);
        }
        if let Some(events) = &self.events {
            hook.events.clone_from(events);
        }
        if let Some(description) = &self.description {
            hook.description.clone_from(description);
        }
        if let Some(format) = self.format {
            hook.format = format;
        }
        if let Some(enabled) = self.enabled {
            hook.enabled = enabled;
            if enabled {
                hook.disabled_reason = None;
                hook.failing_since = None;
            }
        }
        if self.disabled_reason.is_some() {
            hook.disabled_reason.clone_from(&self.disabled_reason);
        }
        hook.updated_at = now;
    }
}

mod secret_text {
    use super::Secret;

    pub fn serialize<S: serde::Serializer>(secret: &Secret, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&secret.reveal())
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Secret, D::Error> {
        let text = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
        Secret::parse(&text).ok_or_else(|| serde::de::Error::custom("not a whsec_ secret"))
    }
}

/// A message's content, fixed when it is made: every attempt sends the same body.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Letter {
    /// `webhook-id`: the same on every attempt, so receivers de-duplicate.
    pub id: String,
    pub webhook_id: u64,
    /// The bar's event it tells of (0: a ping, or a server's own alert).
    pub seq: u64,
    pub event: EventType,
    pub created_at: Timestamp,
    pub data: serde_json::Value,
    pub title: String,
    pub text: String,
    pub severity: Severity,
}

impl Letter {
    /// The body for `format`.
    pub fn body(&self, format: Format) -> Body {
        body(
            format,
            self.event,
            self.created_at,
            &self.data,
            &Words {
                title: self.title.clone(),
                text: self.text.clone(),
                severity: self.severity,
            },
        )
    }
}

/// The message id of the bar's event `seq` for the webhook `uid`.
pub fn message_id(uid: &str, seq: u64) -> String {
    format!("msg_{uid}_{seq}")
}

/// The letter that tells of an alert's change, if a webhook may want one.
pub fn alert_letter(event: &AlertEvent) -> Option<(EventType, serde_json::Value, Words)> {
    let alert = event.alert.read();
    let (kind, title) = match event.change {
        Change::Opened => (EventType::AlertOpened, kind_words(alert.kind).to_owned()),
        Change::Acknowledged => (
            EventType::AlertAcknowledged,
            format!("Acknowledged: {}", kind_words(alert.kind)),
        ),
        Change::Resolved => (
            EventType::AlertResolved,
            format!("Resolved: {}", kind_words(alert.kind)),
        ),
        Change::Updated => return None,
    };
    let mut text = alert.message.clone();
    if event.change == Change::Acknowledged {
        match (&alert.acknowledged_by, &alert.note) {
            (Some(by), Some(note)) => text.push_str(&format!(" (acknowledged by {by}: {note})")),
            (Some(by), None) => text.push_str(&format!(" (acknowledged by {by})")),
            (None, Some(note)) => text.push_str(&format!(" ({note})")),
            (None, None) => {}
        }
    }
    let words = Words {
        title,
        text,
        severity: alert.severity,
    };
    Some((kind, serde_json::json!({ "alert": alert }), words))
}

/// The letter that tells of a keg tapped or finished, if a webhook may want one.
pub fn keg_letter(event: &KegEvent) -> Option<(EventType, serde_json::Value, Words)> {
    let keg = &event.keg;
    let litres = |ml: f64| format!("{:.1} l", ml / 1000.0);
    let (kind, title, text) = match event.kind {
        KegEventKind::Tapped => (
            EventType::KegTapped,
            "Keg tapped",
            format!(
                "{} tapped on tap {} ({})",
                keg.beverage,
                event.tap_id,
                litres(keg.size_ml)
            ),
        ),
        KegEventKind::Finished => (
            EventType::KegFinished,
            "Keg finished",
            format!(
                "{} on tap {} finished: {} poured",
                keg.beverage,
                event.tap_id,
                litres(keg.drawn_ml)
            ),
        ),
        _ => return None,
    };
    let words = Words {
        title: title.to_owned(),
        text,
        severity: Severity::Info,
    };
    Some((
        kind,
        serde_json::json!({ "tapId": event.tap_id, "keg": keg }),
        words,
    ))
}

fn kind_words(kind: AlertKind) -> &'static str {
    match kind {
        AlertKind::KegLow => "Keg low",
        AlertKind::KegEmpty => "Keg empty",
        AlertKind::TapQuiet => "Tap quiet",
        AlertKind::FlaggedPours => "Flagged pours",
        AlertKind::AfterHours => "Pours after hours",
        AlertKind::StoreFailing => "Store failing",
        AlertKind::DiskLow => "Disk low",
        AlertKind::WebhookFailing => "Webhook failing",
        AlertKind::Variance => "Beer not sold",
        AlertKind::TooWarm => "Beer too warm",
        AlertKind::TooHot => "Beer too hot",
        AlertKind::SensorSilent => "Sensor silent",
    }
}

/// Where a message stands.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum MessageState {
    /// Not delivered yet: waiting for its next attempt.
    Pending,
    Delivered,
    /// Given up: the last attempt failed, the receiver answered 410, or the webhook was
    /// disabled.
    Failed,
}

/// A message and where it stands.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    pub letter: Letter,
    pub state: MessageState,
    /// Attempts made.
    pub attempts: u32,
    /// When it is due next (while pending).
    pub next_at: Timestamp,
}

/// One attempt to deliver a message, as `GET /api/webhooks/{id}/deliveries` shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    /// Its message's `webhook-id`.
    pub message_id: String,
    #[serde(rename = "type")]
    pub event: EventType,
    /// 1 for the first attempt.
    pub attempt: u32,
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    pub duration_ms: u64,
    /// The receiver's HTTP status, if it answered.
    pub status: Option<u16>,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// What the message's state became.
    pub state: MessageState,
    /// When the next attempt is due, if there is one.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub next_at: Option<Timestamp>,
}

/// What an attempt met.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The receiver answered with this status, and a `Retry-After` in seconds if it gave
    /// one.
    Status {
        status: u16,
        retry_after: Option<u64>,
    },
    /// No answer: a timeout, a refused connection, a TLS error.
    Error(String),
}

/// What follows an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    Delivered,
    /// Again in this many milliseconds.
    Retry(u64),
    Failed,
    /// The message failed, and the webhook is disabled, for this reason.
    Disable(String),
}

/// The delays between attempts, and when a failing webhook is given up on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    /// The delay before each attempt after the first (Svix's: 5 s, 5 min, 30 min, 2 h,
    /// 5 h, 10 h, 10 h); the message fails after the last.
    pub delays_ms: Vec<u64>,
    /// A webhook whose every attempt failed for this long is disabled.
    pub disable_after_ms: u64,
    /// How long one attempt may take.
    pub timeout_ms: u64,
}

impl Default for Schedule {
    fn default() -> Schedule {
        const S: u64 = 1000;
        Schedule {
            delays_ms: vec![
                5 * S,
                300 * S,
                1800 * S,
                7200 * S,
                18_000 * S,
                36_000 * S,
                36_000 * S,
            ],
            disable_after_ms: 86_400 * S,
            timeout_ms: 15 * S,
        }
    }
}

/// The longest `Retry-After` honoured: a receiver cannot park a message for a week.
const MAX_RETRY_AFTER_MS: u64 = 36_000_000;

impl Schedule {
    /// What follows attempt number `attempt` (from 1) of a message that met `answer`, on a
    /// webhook failing since `failing_since` (none: it was not) as of `now`. `jitter` (0 to
    /// 1) spreads retries so that a receiver coming back is not met by all of them at once.
    pub fn next(
        &self,
        answer: &Answer,
        attempt: u32,
        failing_since: Option<Timestamp>,
        now: Timestamp,
        jitter: f64,
    ) -> Next {
        let retry_after = match answer {
            Answer::Status { status, .. } if (200..300).contains(status) => return Next::Delivered,
            Answer::Status { status: 410, .. } => {
                return Next::Disable("the receiver answered 410 Gone".into());
            }
            Answer::Status {
                status: 429 | 503,
                retry_after,
            } => retry_after.map(|s| s.saturating_mul(1000).min(MAX_RETRY_AFTER_MS)),
            _ => None,
        };
        let since = failing_since.unwrap_or(now);
        if now.millis().saturating_sub(since.millis()) >= self.disable_after_ms as i64 {
            let days = self.disable_after_ms / 86_400_000;
            let how_long = match (days, self.disable_after_ms % 86_400_000) {
                (1, 0) => "1 day".to_owned(),
                (days, 0) => format!("{days} days"),
                _ => {
                    crate::human::duration(std::time::Duration::from_millis(self.disable_after_ms))
                }
            };
            return Next::Disable(format!("every attempt failed for {how_long}"));
        }
        let Some(&delay) = self.delays_ms.get(attempt.saturating_sub(1) as usize) else {
            return Next::Failed;
        };
        // Up to a fifth either way.
        let spread = (delay as f64 * 0.2 * (2.0 * jitter.clamp(0.0, 1.0) - 1.0)) as i64;
        let delay = (delay as i64 + spread).max(0) as u64;
        Next::Retry(delay.max(retry_after.unwrap_or(0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words() -> Words {
        Words {
            title: "Cider is empty".into(),
            text: "Cider on tap 4 is empty <now>".into(),
            severity: Severity::Critical,
        }
    }

    #[test]
    fn each_format_writes_the_body_its_receiver_reads() {
        let data = serde_json::json!({"alert": {"id": 7}});
        let at = Timestamp::from_millis(1_800_000_000_000);
        let standard = body(
            Format::Standard,
            EventType::AlertOpened,
            at,
            &data,
            &words(),
        );
        assert_eq!(
            String::from_utf8(standard.bytes).unwrap(),
            r#"{"data":{"alert":{"id":7}},"timestamp":"2027-01-15T08:00:00.000Z","type":"alert.opened"}"#
        );
        let slack = body(Format::Slack, EventType::AlertOpened, at, &data, &words());
        assert_eq!(
            String::from_utf8(slack.bytes).unwrap(),
            r#"{"text":":red_circle: *Cider is empty*: Cider on tap 4 is empty &lt;now&gt;"}"#
        );
        let ntfy = body(Format::Ntfy, EventType::AlertOpened, at, &data, &words());
        assert_eq!(ntfy.bytes, b"Cider on tap 4 is empty <now>");
        assert_eq!(ntfy.content_type, "text/plain; charset=utf-8");
        assert_eq!(
            ntfy.headers,
            [
                ("Title", "Cider is empty".to_owned()),
                ("Priority", "urgent".to_owned()),
                ("Tags", "rotating_light".to_owned())
            ]
        );
        let accents = Words {
            title: "Kölsch ist leer".into(),
            ..words()
        };
        let ntfy = body(Format::Ntfy, EventType::AlertOpened, at, &data, &accents);
        assert_eq!(ntfy.headers[0].1, "=?UTF-8?B?S8O2bHNjaCBpc3QgbGVlcg==?=");
    }

    #[test]
    fn a_url_is_http_or_https_with_a_host_and_no_credentials() {
        for good in [
            "https://hooks.slack.com/services/T0/B0/x",
            "http://10.0.0.5:8080/ntfy/bar",
            "https://ntfy.sh/altair-bar-42",
        ] {
            assert!(check_url(good).is_ok(), "{good}");
        }
        for (bad, why) in [
            ("ftp://example.com/x", "http or https"),
            ("https://user:pw@example.com/", "user name or password"),
            ("https://token@example.com/", "user name or password"),
            ("not a url", "not a URL"),
            ("http://", "not a URL"),
            ("mailto:bar@example.com", "http or https"),
        ] {
            let refused = check_url(bad).unwrap_err();
            assert!(refused.contains(why), "{bad}: {refused}");
        }
        assert!(check_url(&format!("https://x.example/{}", "a".repeat(2000))).is_err());
    }

    #[test]
    fn the_schedule_retries_waits_for_retry_after_gives_up_and_disables() {
        let schedule = Schedule {
            delays_ms: vec![5_000, 300_000],
            disable_after_ms: 86_400_000,
            timeout_ms: 15_000,
        };
        let now = Timestamp::from_millis(1_800_000_000_000);
        let status = |status| Answer::Status {
            status,
            retry_after: None,
        };
        let next = |answer: &Answer, attempt, since: Option<i64>, jitter| {
            schedule.next(
                answer,
                attempt,
                since.map(|ago| Timestamp::from_millis(now.millis() - ago)),
                now,
                jitter,
            )
        };
        assert_eq!(next(&status(204), 1, None, 0.5), Next::Delivered);
        assert_eq!(next(&status(500), 1, None, 0.5), Next::Retry(5_000));
        assert_eq!(
            next(&status(302), 2, Some(5_000), 0.5),
            Next::Retry(300_000)
        );
        assert_eq!(
            next(&status(500), 3, Some(305_000), 0.5),
            Next::Failed,
            "after the last"
        );
        // Jitter: a fifth either way, never more.
        assert_eq!(next(&status(500), 1, None, 0.0), Next::Retry(4_000));
        assert_eq!(next(&status(500), 1, None, 1.0), Next::Retry(6_000));
        let timeout = Answer::Error("no answer within 15 s".into());
        assert_eq!(next(&timeout, 1, None, 0.5), Next::Retry(5_000));
        // Retry-After on 429 and 503 only, and bounded.
        let busy = |status, secs| Answer::Status {
            status,
            retry_after: Some(secs),
        };
        assert_eq!(next(&busy(429, 120), 1, None, 0.5), Next::Retry(120_000));
        assert_eq!(
            next(&busy(503, 1), 1, None, 0.5),
            Next::Retry(5_000),
            "never sooner"
        );
        assert_eq!(next(&busy(500, 120), 1, None, 0.5), Next::Retry(5_000));
        assert_eq!(
            next(&busy(429, 99_999_999), 1, None, 0.5),
            Next::Retry(36_000_000)
        );
        assert_eq!(
            next(&status(410), 1, None, 0.5),
            Next::Disable("the receiver answered 410 Gone".into())
        );
        assert_eq!(
            next(&status(500), 1, Some(86_400_000), 0.5),
            Next::Disable("every attempt failed for 1 day".into())
        );
        assert_eq!(
            next(&status(200), 1, Some(86_400_000), 0.5),
            Next::Delivered
        );
    }

    #[test]
    fn the_url_rule_is_the_documented_pattern() {
        for good in [
            "http://localhost:9000/hook?x=1",
            "https://hooks.example-bar.co.uk/T0/B0/XyZ_%20",
            "http://192.168.1.20/",
            "https://a.b",
        ] {
            assert!(check_url(good).is_ok(), "{good}");
        }
        for bad in [
            "https://Example.com/",
            "https://example.com/#top",
            "http://999.1.1.1/",
            "http://1.2.3.4.5/",
            "https://exa mple.com/",
            "https://example.com:0/",
            "https://example.com:65536/",
            "http://[::1]/",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_specifications_test_vector_signs_as_it_says() {
        let secret = Secret::parse("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
        let body = br#"{"email":"test@example.com","username":"test_user"}"#;
        assert_eq!(
            secret.sign("msg_27UH4WbU6Z5A5EzD8u03UvzRbpk", 1649367553, body),
            "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
        );
    }

    #[test]
    fn a_new_secret_reads_back_and_shows_only_its_prefix() {
        let secret = Secret::generate().unwrap();
        let written = secret.reveal();
        assert!(
            written.starts_with("whsec_") && written.len() > 40,
            "{written}"
        );
        assert_eq!(Secret::parse(&written), Some(secret.clone()));
        assert_eq!(
            format!("{secret:?}"),
            format!("Secret({}…)", &written[..10])
        );
        assert!(!format!("{secret:?}").contains(&written[10..]));
        for bad in [
            "",
            "whsec_",
            "C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
            "whsec_!!!",
        ] {
            assert_eq!(Secret::parse(bad), None, "{bad}");
        }
    }
}
