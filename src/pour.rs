//! Pours: what a tap reports, how a request body becomes one, and how one is written out.

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::de::{self, Deserializer};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::glass::Catalogue;

/// A moment, to the millisecond, written as RFC 3339 in UTC (`2026-11-22T21:04:05.123Z`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The current time.
    pub fn now() -> Timestamp {
        Timestamp(Utc::now().timestamp_millis())
    }

    /// Milliseconds since the Unix epoch.
    pub fn millis(self) -> i64 {
        self.0
    }

    /// The timestamp `millis` milliseconds after the Unix epoch.
    pub fn from_millis(millis: i64) -> Timestamp {
        Timestamp(millis)
    }

    /// Parses RFC 3339 (any offset); sub-millisecond digits are dropped.
    pub fn parse(text: &str) -> Option<Timestamp> {
        DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|t| Timestamp(t.timestamp_millis()))
    }
}

impl Timestamp {
    /// `YYYY-MM-DDTHH:MM:SS.mmmZ`, for years 0 to 9999. By hand: chrono's formatting was
    /// about 1,200 instructions a call, and every pour is written twice (answer and event).
    fn rfc3339(self) -> Option<[u8; 24]> {
        let (days, ms) = (self.0.div_euclid(86_400_000), self.0.rem_euclid(86_400_000));
        // The civil date of a day count from 1970-01-01 (Howard Hinnant's days_from_civil,
        // inverted), in eras of 400 years starting on March 1st.
        let z = days + 719_468;
        let (era, doe) = (z.div_euclid(146_097), z.rem_euclid(146_097));
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        if !(0..=9999).contains(&year) {
            return None;
        }
        let mut out = *b"0000-00-00T00:00:00.000Z";
        for (at, width, value) in [
            (0, 4, year),
            (5, 2, month),
            (8, 2, day),
            (11, 2, ms / 3_600_000),
            (14, 2, ms / 60_000 % 60),
            (17, 2, ms / 1000 % 60),
            (20, 3, ms % 1000),
        ] {
            let mut value = value;
            for byte in out[at..at + width].iter_mut().rev() {
                *byte = b'0' + (value % 10) as u8;
                value /= 10;
            }
        }
        Some(out)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(text) = self.rfc3339()
            && let Ok(text) = std::str::from_utf8(&text)
        {
            return f.write_str(text);
        }
        match DateTime::<Utc>::from_timestamp_millis(self.0) {
            Some(t) => f.write_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true)),
            // Only reachable for values no parser produced; still print something true.
            None => write!(f, "@{}ms", self.0),
        }
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Timestamp, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Timestamp::parse(&text).ok_or_else(|| de::Error::custom("expected an RFC 3339 date-time"))
    }
}

/// Something about a pour that a bar manager should look at. The pour is stored all the
/// same: it is beer that left the keg.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum Flag {
    /// Below the smallest real pour (`--tiny-below`): a ghost pour, a drip the meter saw.
    Tiny,
    /// No glass in the catalogue holds its volume.
    Unclassified,
    /// More than `--over-pour-tolerance` above its glass's nominal serving.
    OverPour,
    /// Poured outside `--opening-hours`, in `--timezone`.
    AfterHours,
    /// Closer to the tap's previous pour than the tap can pour its volume at
    /// `--max-flow`: a double report, or a meter gone wrong.
    Burst,
    /// Poured from a keg that had nothing left: the keg's size is wrong.
    EmptyKeg,
    /// Timed more than `--clock-skew` after the server's clock when it arrived: the
    /// device's clock is wrong. It does not count as the tap's last pour.
    Future,
    /// Poured while its tap's line was being cleaned: water through the meter, not beer.
    /// It draws no keg and is left out of litres (history, variance) and of alerts.
    Cleaning,
}

impl Flag {
    /// Every flag, in the order they are listed.
    pub const ALL: [Flag; 8] = [
        Flag::Tiny,
        Flag::Unclassified,
        Flag::OverPour,
        Flag::AfterHours,
        Flag::Burst,
        Flag::EmptyKeg,
        Flag::Future,
        Flag::Cleaning,
    ];

    /// The flag's name in the API.
    pub fn name(self) -> &'static str {
        match self {
            Flag::Tiny => "tiny",
            Flag::Unclassified => "unclassified",
            Flag::OverPour => "overPour",
            Flag::AfterHours => "afterHours",
            Flag::Burst => "burst",
            Flag::EmptyKeg => "emptyKeg",
            Flag::Future => "future",
            Flag::Cleaning => "cleaning",
        }
    }

    /// The flag called `name`, if there is one.
    pub fn parse(name: &str) -> Option<Flag> {
        Flag::ALL.into_iter().find(|f| f.name() == name)
    }

    /// The names, comma separated, for error messages.
    pub fn names() -> String {
        Flag::ALL.map(Flag::name).join(", ")
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// The set of flags a pour carries: one byte, as stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Flags(u8);

impl Flags {
    /// No flag.
    pub const NONE: Flags = Flags(0);

    /// The set stored as `bits`; bits no flag of this version uses are kept as they are.
    pub fn from_bits(bits: u8) -> Flags {
        Flags(bits)
    }

    /// The stored form.
    pub fn bits(self) -> u8 {
        self.0
    }

    /// This set with `flag` too.
    #[must_use]
    pub fn with(self, flag: Flag) -> Flags {
        Flags(self.0 | flag.bit())
    }

    /// Whether `flag` is in the set.
    pub fn contains(self, flag: Flag) -> bool {
        self.0 & flag.bit() != 0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The flags in the set, in [`Flag::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Flag> {
        Flag::ALL.into_iter().filter(move |f| self.contains(*f))
    }
}

impl FromIterator<Flag> for Flags {
    fn from_iter<I: IntoIterator<Item = Flag>>(flags: I) -> Flags {
        flags.into_iter().fold(Flags::NONE, Flags::with)
    }
}

impl Serialize for Flags {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Every set of flags as JSON, made once: serde_json (the only serializer pours go
        // through) writes a RawValue as it is, where a list is written name by name, and a
        // pour is written twice on its way out. Bits this version does not know, and
        // binary formats, get the list.
        static WRITTEN: std::sync::LazyLock<Vec<Box<RawValue>>> = std::sync::LazyLock::new(|| {
            (0..1u16 << Flag::ALL.len())
                .filter_map(|bits| {
                    let names: Vec<&str> = Flags(bits as u8).iter().map(Flag::name).collect();
                    serde_json::value::to_raw_value(&names).ok()
                })
                .collect()
        });
        match WRITTEN.get(usize::from(self.0)) {
            Some(json) if serializer.is_human_readable() => json.serialize(serializer),
            _ => serializer.collect_seq(self.iter()),
        }
    }
}

impl<'de> Deserialize<'de> for Flags {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Flags, D::Error> {
        Ok(Vec::<Flag>::deserialize(deserializer)?
            .into_iter()
            .collect())
    }
}

/// A stored pour, as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"id": 17, "venue": "main", "tapId": 3, "volume": 500.0, "type": "pint", "timestamp": "2026-11-22T21:04:05.123Z", "flags": []}))]
pub struct Pour {
    /// Assigned by the server: strictly increasing from 1, never reused.
    pub id: u64,
    /// The venue (bar) of its tap; pours stored before venues existed are the default
    /// venue's.
    #[serde(default)]
    #[schema(value_type = String)]
    pub venue: Arc<str>,
    /// The tap that poured.
    pub tap_id: u32,
    /// Volume in ml.
    pub volume: f64,
    /// The glass the volume classified as; `unclassified` when no glass holds it.
    #[serde(rename = "type")]
    #[schema(value_type = String)]
    pub glass: Arc<str>,
    /// When the device poured (or when the server received it, if the device did not say).
    #[schema(value_type = String, format = DateTime)]
    pub timestamp: Timestamp,
    /// What looked wrong about the pour when it arrived (empty for most); never changes.
    #[serde(default)]
    #[schema(value_type = Vec<Flag>)]
    pub flags: Flags,
}

/// A tap of a venue: each venue numbers its own taps.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TapRef {
    pub venue: Arc<str>,
    pub tap_id: u32,
}

impl fmt::Display for TapRef {
    /// `tap 3 of dock-street`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tap {} of {}", self.tap_id, self.venue)
    }
}

impl Pour {
    /// The tap that poured it.
    pub fn tap(&self) -> TapRef {
        TapRef {
            venue: self.venue.clone(),
            tap_id: self.tap_id,
        }
    }
}

/// A validated, classified pour that has no id yet.
#[derive(Debug, Clone, PartialEq)]
pub struct NewPour {
    pub venue: Arc<str>,
    pub tap_id: u32,
    pub volume: f64,
    pub glass: Arc<str>,
    pub timestamp: Timestamp,
    /// Whether the device sent the timestamp (else it is the time of arrival).
    pub device_timestamp: bool,
    /// Flags found so far; the store adds the ones that depend on earlier pours.
    pub flags: Flags,
}

impl NewPour {
    /// The tap that poured it.
    pub fn tap(&self) -> TapRef {
        TapRef {
            venue: self.venue.clone(),
            tap_id: self.tap_id,
        }
    }

    /// The pour as stored under `id`.
    pub fn with_id(self, id: u64) -> Pour {
        Pour {
            id,
            venue: self.venue,
            tap_id: self.tap_id,
            volume: self.volume,
            glass: self.glass,
            timestamp: self.timestamp,
            flags: self.flags,
        }
    }
}

/// Why a request body is not a pour.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PourError {
    /// Not JSON at all (400).
    #[error("{0}")]
    Malformed(String),
    /// JSON, but not an acceptable pour (422); the message names the field.
    #[error("{0}")]
    Invalid(String),
}

/// The body fields are taken raw so that each one gets its own precise message, and so that
/// numbers like `1e309` reach us as text instead of failing the whole parse.
#[derive(Deserialize)]
struct RawPour<'a> {
    #[serde(rename = "tapId", borrow)]
    tap_id: Option<&'a RawValue>,
    #[serde(borrow)]
    volume: Option<&'a RawValue>,
    #[serde(borrow)]
    timestamp: Option<&'a RawValue>,
}

/// `x` rounded half away from zero to a whole number (saturating at the ends): a cast,
/// not a call into libm, on the path of every pour.
pub fn whole(x: f64) -> i64 {
    (if x >= 0.0 { x + 0.5 } else { x - 0.5 }) as i64
}

/// Whole microlitres of `ml`: volumes are added, taken away and compared in these, so that
/// a pour and its deletion cancel exactly and 624.8 ml is the threshold a tap reports.
pub fn microlitres(ml: f64) -> i64 {
    whole(ml * 1000.0)
}

/// The smallest tap id. The bounds are stated once, here: the parsers and the OpenAPI
/// document both read them.
pub const TAP_ID_MIN: u32 = 1;
/// The largest tap id.
pub const TAP_ID_MAX: u32 = u32::MAX;

/// What a tap id must be, for error messages.
pub fn tap_id_rule() -> String {
    format!("tapId must be an integer from {TAP_ID_MIN} to {TAP_ID_MAX}")
}

/// A tap id from its JSON or decimal text, if it is one. `3.0` and `3e0` are 3: JSON
/// Schema counts a number with no fraction as an integer.
pub fn parse_tap_id(text: &str) -> Option<u32> {
    let id = match text.parse::<u32>() {
        Ok(id) => id,
        Err(_) => {
            let number = text
                .starts_with(|c: char| c.is_ascii_digit())
                .then(|| text.parse::<f64>().ok())
                .flatten()?;
            let whole = number.fract() == 0.0 && number <= f64::from(u32::MAX);
            // In range and whole: the cast is exact.
            whole.then_some(number as u32)?
        }
    };
    (TAP_ID_MIN..=TAP_ID_MAX).contains(&id).then_some(id)
}

/// A number as the client wrote it, cut short for a message: `1e308`, not 309 digits.
fn as_sent(text: &str) -> String {
    const MAX: usize = 24;
    match text.char_indices().nth(MAX) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// An idempotency key as sent, if it is a valid one: 1 to 128 printable ASCII characters.
pub fn idempotency_key(bytes: &[u8]) -> Option<String> {
    let printable = bytes.iter().all(|b| (0x20..=0x7e).contains(b));
    (!bytes.is_empty() && bytes.len() <= 128 && printable)
        .then(|| String::from_utf8_lossy(bytes).into_owned())
}

/// What an idempotency key must be, for error messages.
pub const IDEMPOTENCY_KEY_RULE: &str = "1 to 128 printable ASCII characters";

/// What a pour's volume must be to be stored.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Intake {
    /// No tap pours more at once (ml); above it is a broken meter, not beer.
    pub max_volume: f64,
    /// Refuse volumes no glass holds (422), as the prototype did, instead of storing them
    /// as `unclassified`.
    pub reject_unclassified: bool,
}

impl Default for Intake {
    fn default() -> Intake {
        Intake {
            max_volume: 5000.0,
            reject_unclassified: false,
        }
    }
}

/// Parses and validates a `POST /api/beers` body, classifying the volume with `catalogue`.
/// `now` is the timestamp used when the body has none; the pour is `venue`'s.
pub fn parse_new_pour(
    body: &[u8],
    catalogue: &Catalogue,
    intake: &Intake,
    now: Timestamp,
    venue: Arc<str>,
) -> Result<NewPour, PourError> {
    parse_pour(body, None, catalogue, intake, now, venue)
}

/// [`parse_new_pour`], for tap `tap` when the tap comes from elsewhere (an MQTT topic):
/// the body may leave `tapId` out, and may not name another.
pub fn parse_pour(
    body: &[u8],
    tap: Option<u32>,
    catalogue: &Catalogue,
    intake: &Intake,
    now: Timestamp,
    venue: Arc<str>,
) -> Result<NewPour, PourError> {
    // JSON is UTF-8; serde_json would not check the strings of fields it skips.
    let text = std::str::from_utf8(body)
        .map_err(|e| PourError::Malformed(format!("body is not valid JSON: not UTF-8 ({e})")))?;
    // Only an object: serde would also read a struct from an array (`[3, 500, null]`).
    if !text.trim_start().starts_with('{')
        && serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok()
    {
        return Err(PourError::Invalid(
            "body must be a JSON object with tapId and volume".into(),
        ));
    }
    let raw: RawPour = serde_json::from_str(text).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => PourError::Invalid(format!(
            "body must be a JSON object with tapId and volume: {e}"
        )),
        _ => PourError::Malformed(format!("body is not valid JSON: {e}")),
    })?;

    let tap_id = match (raw.tap_id.map(RawValue::get), tap) {
        (None, None) => return Err(PourError::Invalid("tapId is required".into())),
        (Some(text), given) => {
            let id = parse_tap_id(text).ok_or_else(|| PourError::Invalid(tap_id_rule()))?;
            if let Some(given) = given.filter(|&given| given != id) {
                return Err(PourError::Invalid(format!(
                    "tapId {id} is not this topic's tap, {given}"
                )));
            }
            id
        }
        (None, Some(given)) => given,
    };

    let volume_text = raw
        .volume
        .ok_or_else(|| PourError::Invalid("volume is required".into()))?
        .get();
    // A JSON number starts with a digit or '-'; strings, booleans, null, objects do not.
    let is_number = volume_text.starts_with(|c: char| c == '-' || c.is_ascii_digit());
    let volume = is_number
        .then(|| volume_text.parse::<f64>().ok())
        .flatten()
        .ok_or_else(|| PourError::Invalid("volume must be a number (ml)".into()))?;
    if !volume.is_finite() {
        return Err(PourError::Invalid(
            "volume must be a finite number (ml)".into(),
        ));
    }
    if volume <= 0.0 || volume > intake.max_volume {
        return Err(PourError::Invalid(format!(
            "volume must be more than 0 and at most {} ml (got {} ml)",
            intake.max_volume,
            as_sent(volume_text)
        )));
    }

    let (timestamp, device_timestamp) = match raw.timestamp.map(RawValue::get) {
        None | Some("null") => (now, false),
        Some(text) => serde_json::from_str::<String>(text)
            .ok()
            .and_then(|t| Timestamp::parse(&t))
            .map(|t| (t, true))
            .ok_or_else(|| {
                PourError::Invalid(
                    "timestamp must be an RFC 3339 date-time, e.g. 2026-11-22T21:04:05Z".into(),
                )
            })?,
    };

    let (glass, flags) = match catalogue.classify(volume) {
        Some(glass) => (glass.name.clone(), Flags::NONE),
        None if intake.reject_unclassified => {
            return Err(PourError::Invalid(format!(
                "no glass for {} ml; accepted {}",
                as_sent(volume_text),
                catalogue.accepted()
            )));
        }
        None => (
            catalogue.unclassified(),
            Flags::NONE.with(Flag::Unclassified),
        ),
    };

    Ok(NewPour {
        venue,
        tap_id,
        volume,
        glass,
        timestamp,
        device_timestamp,
        flags,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tap_id_is_any_whole_number_in_range_however_written() {
        for (text, id) in [
            ("3", Some(3)),
            ("3.0", Some(3)),
            ("3e0", Some(3)),
            ("4294967295.0", Some(u32::MAX)),
            ("3.5", None),
            ("0", None),
            ("0.0", None),
            ("-1.0", None),
            ("4294967296", None),
            ("4294967296.0", None),
            ("1e400", None),
            ("\"3\"", None),
        ] {
            assert_eq!(parse_tap_id(text), id, "{text}");
        }
    }

    const NOW: Timestamp = Timestamp(1_763_845_445_123);

    #[test]
    fn timestamps_print_as_chrono_does() {
        let chrono = |ms: i64| {
            DateTime::<Utc>::from_timestamp_millis(ms)
                .unwrap()
                .to_rfc3339_opts(SecondsFormat::Millis, true)
        };
        // The edges of the fast path, leap days, and a spread of instants in between.
        let mut cases = vec![
            0,
            -1,
            1,
            951_782_400_000,     // 2000-02-29
            4_107_542_399_999,   // 2100-02-28T23:59:59.999
            -62_167_219_200_000, // 0000-01-01
            253_402_300_799_999, // 9999-12-31T23:59:59.999
            -62_167_219_200_001, // the year -1: chrono's path
            253_402_300_800_000, // 10000-01-01: chrono's path
            NOW.0,
        ];
        let mut x: i64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            cases.push(x.rem_euclid(253_402_300_800_000 + 62_167_219_200_000) - 62_167_219_200_000);
        }
        for ms in cases {
            assert_eq!(Timestamp(ms).to_string(), chrono(ms), "{ms}");
        }
    }

    fn parse(body: &str) -> Result<NewPour, PourError> {
        parse_new_pour(
            body.as_bytes(),
            &Catalogue::default(),
            &Intake::default(),
            NOW,
            "main".into(),
        )
    }

    const STRICT: Intake = Intake {
        max_volume: 5000.0,
        reject_unclassified: true,
    };

    fn invalid(body: &str) -> String {
        invalid_with(body, &Intake::default())
    }

    fn invalid_with(body: &str, intake: &Intake) -> String {
        match parse_new_pour(
            body.as_bytes(),
            &Catalogue::default(),
            intake,
            NOW,
            "main".into(),
        ) {
            Err(PourError::Invalid(message)) => message,
            other => panic!("{body}: expected 422, got {other:?}"),
        }
    }

    #[test]
    fn a_plain_pour_is_classified_and_stamped_now() {
        let pour = parse(r#"{"tapId": 3, "volume": 500}"#).unwrap();
        assert_eq!(pour.tap_id, 3);
        assert_eq!(pour.volume, 500.0);
        assert_eq!(&*pour.glass, "pint");
        assert_eq!(pour.timestamp, NOW);
    }

    #[test]
    fn device_timestamp_is_kept_to_the_millisecond() {
        let pour =
            parse(r#"{"tapId":1,"volume":200,"timestamp":"2026-11-22T22:04:05.123456+01:00"}"#)
                .unwrap();
        assert_eq!(pour.timestamp.to_string(), "2026-11-22T21:04:05.123Z");
    }

    #[test]
    fn not_json_is_malformed() {
        for body in ["", "{", "tapId=3", r#"{"tapId": 3,}"#] {
            assert!(
                matches!(parse(body), Err(PourError::Malformed(_))),
                "{body}"
            );
        }
    }

    #[test]
    fn only_objects_of_utf8_are_pours() {
        assert!(invalid("[3, 500, null]").contains("JSON object"));
        assert!(invalid("null").contains("JSON object"));
        assert!(matches!(
            parse_new_pour(
                b"{\"tapId\":1,\"volume\":500,\"x\":\"\xff\"}",
                &Catalogue::default(),
                &Intake::default(),
                NOW,
                "main".into()
            ),
            Err(PourError::Malformed(_))
        ));
        assert!(matches!(parse("[1, 2"), Err(PourError::Malformed(_))));
    }

    #[test]
    fn each_bad_field_is_named() {
        assert!(invalid(r#"[1, 2]"#).contains("JSON object"));
        assert!(invalid(r#"{"volume": 500}"#).contains("tapId"));
        assert!(invalid(r#"{"tapId": 1}"#).contains("volume"));
        for tap in ["0", "-1", "1.5", "\"3\"", "4294967296", "null", "true"] {
            assert!(invalid(&format!(r#"{{"tapId": {tap}, "volume": 500}}"#)).contains("tapId"));
        }
        assert!(invalid(r#"{"tapId": 1, "volume": "500"}"#).contains("volume must be a number"));
        assert!(invalid(r#"{"tapId": 1, "volume": 1e309}"#).contains("finite"));
        for volume in ["-5", "0", "-0", "5000.001", "1e300"] {
            let message = invalid(&format!(r#"{{"tapId": 1, "volume": {volume}}}"#));
            assert!(
                message.contains("more than 0 and at most 5000 ml"),
                "{volume}: {message}"
            );
        }
        assert!(
            invalid(r#"{"tapId": 1, "volume": 500, "timestamp": "yesterday"}"#)
                .contains("timestamp")
        );
        assert!(invalid(r#"{"tapId": 1, "volume": 500, "timestamp": 17}"#).contains("timestamp"));
    }

    #[test]
    fn a_volume_no_glass_holds_is_stored_unclassified_unless_refused() {
        for volume in [6.0, 99.9, 1000.5, 5000.0] {
            let pour = parse(&format!(r#"{{"tapId": 1, "volume": {volume}}}"#)).unwrap();
            assert_eq!(&*pour.glass, "unclassified", "{volume}");
            assert_eq!(pour.flags.iter().collect::<Vec<_>>(), [Flag::Unclassified]);
        }
        assert!(
            parse(r#"{"tapId": 1, "volume": 500}"#)
                .unwrap()
                .flags
                .is_empty()
        );
        assert_eq!(
            invalid_with(r#"{"tapId": 1, "volume": 1500}"#, &STRICT),
            "no glass for 1500 ml; accepted 100 to 1000 ml"
        );
    }

    #[test]
    fn largest_tap_id_is_accepted() {
        assert_eq!(
            parse(r#"{"tapId":4294967295,"volume":100}"#)
                .unwrap()
                .tap_id,
            u32::MAX
        );
    }

    #[test]
    fn pour_serializes_as_the_api_documents() {
        let pour = parse(r#"{"tapId": 3, "volume": 500}"#).unwrap().with_id(17);
        assert_eq!(
            serde_json::to_string(&pour).unwrap(),
            r#"{"id":17,"venue":"main","tapId":3,"volume":500.0,"type":"pint","timestamp":"2025-11-22T21:04:05.123Z","flags":[]}"#
        );
        let back: Pour = serde_json::from_str(&serde_json::to_string(&pour).unwrap()).unwrap();
        assert_eq!(back, pour);
        let mut flagged = pour.clone();
        flagged.flags = Flags::NONE.with(Flag::Burst).with(Flag::Tiny);
        let json = serde_json::to_string(&flagged).unwrap();
        assert!(json.ends_with(r#""flags":["tiny","burst"]}"#), "{json}");
        assert_eq!(serde_json::from_str::<Pour>(&json).unwrap(), flagged);
        for flag in Flag::ALL {
            assert_eq!(Flag::parse(flag.name()), Some(flag));
            assert_eq!(serde_json::to_value(flag).unwrap(), flag.name());
        }
    }

    proptest::proptest! {
        /// Any bytes at all: a pour or an error, never a panic; a pour is always in a band.
        #[test]
        fn any_bytes_parse_or_fail_cleanly(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
            if let Ok(pour) = parse_new_pour(&body, &Catalogue::default(), &STRICT, NOW, "main".into()) {
                proptest::prop_assert!(pour.tap_id >= 1);
                proptest::prop_assert!((100.0..=1000.0).contains(&pour.volume));
            }
            if let Ok(pour) = parse_new_pour(&body, &Catalogue::default(), &Intake::default(), NOW, "main".into()) {
                proptest::prop_assert!(pour.volume > 0.0 && pour.volume <= 5000.0);
            }
        }

        /// Well-formed bodies with any numbers: accepted exactly when the fields are valid.
        #[test]
        fn numbers_are_judged_by_the_rules(tap in proptest::prelude::any::<i64>(), volume in proptest::prelude::any::<f64>()) {
            let body = format!(r#"{{"tapId": {tap}, "volume": {volume:?}}}"#);
            let tap_ok = (1..=i64::from(u32::MAX)).contains(&tap);
            let strict = parse_new_pour(body.as_bytes(), &Catalogue::default(), &STRICT, NOW, "main".into());
            let valid = tap_ok && (100.0..=1000.0).contains(&volume);
            proptest::prop_assert_eq!(strict.is_ok(), valid, "{}", body);
            let stored = parse_new_pour(body.as_bytes(), &Catalogue::default(), &Intake::default(), NOW, "main".into());
            let valid = tap_ok && volume > 0.0 && volume <= 5000.0;
            proptest::prop_assert_eq!(stored.is_ok(), valid, "{}", body);
        }
    }
}
