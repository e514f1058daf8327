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
    pub severity: crate::alert::Severity,
}

/// The body of a message of `event` made at `timestamp`, carrying `data` (for programs)
/// and `words` (for people), in `format`.
pub fn body(
    format: Format,
    event: EventType,
    timestamp: crate::pour::Timestamp,
    data: &serde_json::Value,
    words: &Words,
) -> Body {
    use crate::alert::Severity;
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

/// Why a webhook's URL is refused.
pub fn check_url(text: &str) -> Result<url::Url, String> {
    const MAX_URL: usize = 2000;
    if text.len() > MAX_URL {
        return Err(format!("url must be at most {MAX_URL} characters"));
    }
    let url = url::Url::parse(text).map_err(|e| format!("url is not a URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("url must be http or https, not {}", url.scheme()));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("url must name a host".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        // They would be stored and shown; a token belongs in the URL's path or query.
        return Err("url must not carry a user name or password".into());
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::Severity;
    use crate::pour::Timestamp;

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
