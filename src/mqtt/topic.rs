//! Altair's MQTT topics: which ones the server reads, and what a topic it read names.

use crate::pour::parse_tap_id;

/// The group servers on one store share their subscriptions in (MQTT 5 `$share`), so
/// that each message is handled by one of them.
pub const SHARE_GROUP: &str = "altair";

/// What a topic the server reads names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target<'a> {
    /// The venue's id as the topic writes it; `None`: the default venue's topic.
    pub venue: Option<&'a str>,
    pub tap_id: u32,
    /// A pour, or a temperature reading.
    pub kind: Kind,
}

/// What a message on a tap's topic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `…/pours`
    Pour,
    /// `…/temperature`
    Temperature,
}

/// Why a topic names no tap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoTap(pub String);

/// The topic filters a server subscribes to under `prefix`: the default venue's taps and
/// every venue's; in a shared subscription when several servers read one store.
pub fn filters(prefix: &str, shared: bool) -> Vec<String> {
    let share = match shared {
        true => format!("$share/{SHARE_GROUP}/"),
        false => String::new(),
    };
    vec![
        format!("{share}{prefix}/taps/+/pours"),
        format!("{share}{prefix}/+/taps/+/pours"),
        format!("{share}{prefix}/taps/+/temperature"),
        format!("{share}{prefix}/+/taps/+/temperature"),
    ]
}

/// The venue and tap of a pour or temperature topic under `prefix`:
/// `PREFIX/taps/{tapId}/pours` or `PREFIX/{venue}/taps/{tapId}/pours`, and the same
/// ending `/temperature`.
pub fn pours<'a>(prefix: &str, topic: &'a str) -> Result<Target<'a>, NoTap> {
    let levels: Vec<&str> = topic.split('/').collect();
    let kind = |last: &str| match last {
        "pours" => Some(Kind::Pour),
        "temperature" => Some(Kind::Temperature),
        _ => None,
    };
    let (venue, tap, kind) = match levels.as_slice() {
        [p, "taps", tap, last] if *p == prefix && kind(last).is_some() => (None, *tap, kind(last)),
        [p, venue, "taps", tap, last] if *p == prefix && kind(last).is_some() => {
            (Some(*venue), *tap, kind(last))
        }
        _ => {
            return Err(NoTap(format!(
                "not a pour topic: {prefix}/taps/{{tapId}}/pours or {prefix}/{{venue}}/taps/{{tapId}}/pours"
            )));
        }
    };
    let kind = kind.unwrap_or(Kind::Pour);
    // Only digits: the topic is a name, not JSON (`3.0` is not tap 3's topic).
    let tap_id = tap
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| parse_tap_id(tap))
        .flatten()
        .ok_or_else(|| NoTap(format!("{tap:?} in the topic is not a tap id")))?;
    Ok(Target {
        venue,
        tap_id,
        kind,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pour_topic_names_its_tap_and_maybe_its_venue() {
        let t = |topic| pours("altair", topic);
        assert_eq!(
            t("altair/taps/3/pours"),
            Ok(Target {
                venue: None,
                tap_id: 3,
                kind: Kind::Pour,
            })
        );
        assert_eq!(
            t("altair/north/taps/12/pours"),
            Ok(Target {
                venue: Some("north"),
                tap_id: 12,
                kind: Kind::Pour,
            })
        );
        // A venue called "taps" is still a venue: the levels tell them apart.
        assert_eq!(
            t("altair/taps/taps/1/pours").map(|t| t.venue),
            Ok(Some("taps"))
        );
        for bad in [
            "altair/taps/0/pours",
            "altair/taps/3.0/pours",
            "altair/taps/+3/pours",
            "altair/taps/x/pours",
            "altair/taps/3/pours/accepted",
            "other/taps/3/pours",
            "altair/taps/4294967296/pours",
        ] {
            assert!(t(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn servers_on_one_store_share_their_subscriptions() {
        assert_eq!(
            filters("bar", true)[..2],
            [
                "$share/altair/bar/taps/+/pours",
                "$share/altair/bar/+/taps/+/pours"
            ]
        );
        assert_eq!(
            pours("bar", "bar/north/taps/2/temperature").map(|t| t.kind),
            Ok(Kind::Temperature)
        );
        assert_eq!(filters("bar", false)[0], "bar/taps/+/pours");
    }
}
