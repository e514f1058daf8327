//! The bar, published: each tap's state and the open alerts as retained messages, the
//! servers' availability, and Home Assistant's discovery of each tap with a keg on.
//!
//! What is published is computed from the bar's state, the same on every server, and
//! compared with what the broker keeps (the server reads its own retained topics back):
//! several servers publishing it is harmless, a restarted one corrects what changed while
//! it was away, and a tap that lost its keg has its Home Assistant entities removed.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use rumqttc::v5::mqttbytes::QoS;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::bar::Bar;
use crate::bus::Bus;
use crate::history::{self, Bucket, By};
use crate::keg::TapView;
use crate::pour::{TapRef, Timestamp};
use crate::report::DayClock;

/// How often the state is compared with what the broker keeps, when something changed.
const TICK: Duration = Duration::from_secs(1);

/// ...and when nothing did (a tap goes quiet, a day ends).
const IDLE_TICK: Duration = Duration::from_secs(15);

/// A retained topic this server no longer calls for, about a tap it does not know, is
/// removed only after this long: another server may know a tap this one has yet to hear
/// of.
const FORGET_AFTER: Duration = Duration::from_secs(30);

/// Retained messages by topic; an empty payload is none (it removes one).
pub type Retained = BTreeMap<String, Vec<u8>>;

/// What the server publishes, and where.
#[derive(Debug, Clone)]
pub struct Out {
    pub prefix: String,
    /// Home Assistant's discovery prefix, with `--mqtt-discovery`.
    pub discovery: Option<String>,
}

/// A tap's entities in Home Assistant: (component, key, name, the rest of its config).
fn entities() -> [(&'static str, &'static str, &'static str, Value); 7] {
    let on_off = |field: &str| format!("{{{{ 'ON' if value_json.{field} else 'OFF' }}}}");
    [
        (
            "sensor",
            "level",
            "Level",
            json!({"unit_of_measurement": "%", "state_class": "measurement",
                   "value_template": "{{ value_json.percent }}", "icon": "mdi:glass-mug-variant"}),
        ),
        (
            "sensor",
            "remaining",
            "Remaining",
            json!({"device_class": "volume_storage", "unit_of_measurement": "L",
                   "state_class": "measurement", "suggested_display_precision": 1,
                   "value_template": "{{ value_json.remainingLitres }}"}),
        ),
        (
            "sensor",
            "last_pour",
            "Last pour",
            json!({"device_class": "volume", "unit_of_measurement": "mL",
                   "value_template": "{{ value_json.lastPourMl }}"}),
        ),
        (
            "sensor",
            "pours_today",
            "Pours today",
            json!({"state_class": "total_increasing", "unit_of_measurement": "pours",
                   "icon": "mdi:beer", "value_template": "{{ value_json.poursToday }}"}),
        ),
        (
            "binary_sensor",
            "low",
            "Low",
            json!({"device_class": "problem", "value_template": on_off("low")}),
        ),
        (
            "binary_sensor",
            "empty",
            "Empty",
            json!({"device_class": "problem", "value_template": on_off("empty")}),
        ),
        (
            "binary_sensor",
            "quiet",
            "Quiet",
            json!({"icon": "mdi:timer-sand", "value_template": on_off("quiet")}),
        ),
    ]
}

impl Out {
    /// Where the servers say whether they are up: `online`, or `offline` (a server's last
    /// will, or its goodbye).
    pub fn status_topic(&self) -> String {
        format!("{}/status", self.prefix)
    }

    /// A tap's retained state: `PREFIX/taps/{tapId}/state` for the default venue's taps,
    /// `PREFIX/{venue}/taps/{tapId}/state` for others'.
    pub fn tap_topic(&self, default_venue: &str, tap: &TapRef) -> String {
        match &*tap.venue == default_venue {
            true => format!("{}/taps/{}/state", self.prefix, tap.tap_id),
            false => format!("{}/{}/taps/{}/state", self.prefix, tap.venue, tap.tap_id),
        }
    }

    /// The open alerts, retained.
    pub fn alerts_topic(&self) -> String {
        format!("{}/alerts", self.prefix)
    }

    fn discovery_topic(&self, discovery: &str, component: &str, tap: &TapRef, key: &str) -> String {
        format!(
            "{discovery}/{component}/{}/{}_tap{}_{key}/config",
            self.prefix, tap.venue, tap.tap_id
        )
    }

    /// The filters that read back what the broker keeps of this server's topics.
    pub fn filters(&self) -> Vec<String> {
        let p = &self.prefix;
        let mut filters = vec![
            format!("{p}/taps/+/state"),
            format!("{p}/+/taps/+/state"),
            self.alerts_topic(),
            self.status_topic(),
        ];
        if let Some(d) = &self.discovery {
            filters.push(format!("{d}/sensor/{p}/+/config"));
            filters.push(format!("{d}/binary_sensor/{p}/+/config"));
        }
        filters
    }

    /// Whether `topic` is one of those [`Out::filters`] read.
    pub fn owns(&self, topic: &str) -> bool {
        let levels: Vec<&str> = topic.split('/').collect();
        let p = self.prefix.as_str();
        match levels.as_slice() {
            [a, "taps", _, "state"] | [a, _, "taps", _, "state"] => *a == p,
            [a, b] => *a == p && (*b == "alerts" || *b == "status"),
            [d, "sensor" | "binary_sensor", node, _, "config"] => {
                self.discovery.as_deref() == Some(*d) && *node == p
            }
            _ => false,
        }
    }

    /// Everything the bar calls for now, and the topics of each tap it knows.
    pub fn wanted(&self, bar: &Bar, now: Timestamp) -> (Retained, HashMap<String, TapRef>) {
        let (taps, last_ml) = bar.cellar(|c| {
            let taps = c.taps(None, now);
            let last: Vec<Option<f64>> = taps.iter().map(|t| c.last_pour_ml(&tap_ref(t))).collect();
            (taps, last)
        });
        let (default_venue, names, clocks) = bar.venues(|v| {
            let names: HashMap<String, String> = v
                .list()
                .into_iter()
                .map(|view| (view.id, view.name))
                .collect();
            let clocks: HashMap<Arc<str>, DayClock> = v
                .all_rules()
                .map(|r| {
                    let clock = DayClock {
                        zone: r.clock.zone,
                        starts: r.business_day_starts,
                    };
                    (r.id.clone(), clock)
                })
                .collect();
            (v.default_id().clone(), names, clocks)
        });
        let today = self.today(bar, &taps, &clocks, now);
        let mut retained = Retained::new();
        let mut known = HashMap::new();
        retained.insert(self.status_topic(), b"online".to_vec());
        // Unresolved (open or acknowledged), oldest first.
        let mut alerts: Vec<crate::alert::Alert> = bar.alerts(|a| {
            a.list(&crate::alert::AlertFilter::default())
                .filter(|alert| alert.state != crate::alert::AlertState::Resolved)
                .map(crate::alert::Alert::read)
                .collect()
        });
        alerts.reverse();
        retained.insert(
            self.alerts_topic(),
            json!({"open": alerts.len(), "alerts": alerts})
                .to_string()
                .into_bytes(),
        );
        for (view, last_ml) in taps.iter().zip(last_ml) {
            let tap = tap_ref(view);
            let topic = self.tap_topic(&default_venue, &tap);
            let (pours, litres) = today.get(&tap).copied().unwrap_or((0, 0.0));
            retained.insert(
                topic.clone(),
                state(view, last_ml, pours, litres).into_bytes(),
            );
            known.insert(topic.clone(), tap.clone());
            let Some(discovery) = &self.discovery else {
                continue;
            };
            let venue_name = names
                .get(&*tap.venue)
                .cloned()
                .unwrap_or_else(|| tap.venue.to_string());
            for (component, key, name, rest) in entities() {
                let config_topic = self.discovery_topic(discovery, component, &tap, key);
                known.insert(config_topic.clone(), tap.clone());
                if view.keg.is_none() {
                    continue; // not wanted: a tap without a keg has no entities
                }
                let config = self.config(&tap, &topic, &venue_name, view, (key, name, rest));
                retained.insert(config_topic, config.into_bytes());
            }
        }
        (retained, known)
    }

    /// Each tap's pours and litres today, on its venue's clock.
    fn today(
        &self,
        bar: &Bar,
        taps: &[TapView],
        clocks: &HashMap<Arc<str>, DayClock>,
        now: Timestamp,
    ) -> HashMap<TapRef, (u64, f64)> {
        let mut days: BTreeMap<Arc<str>, NaiveDate> = BTreeMap::new();
        for tap in taps {
            if let Some(clock) = clocks.get(&tap.venue) {
                days.insert(tap.venue.clone(), clock.date_of(now));
            }
        }
        let held = bar.hold();
        let mut today = HashMap::new();
        for (venue, day) in days {
            let document = held.history(&history::Query {
                venue: Some(venue),
                from: day,
                to: day,
                bucket: Bucket::Day,
                by: By::Tap,
            });
            for bucket in document.buckets {
                for group in bucket.groups {
                    if let (Some(venue), Some(tap_id)) = (group.venue, group.tap_id) {
                        let litres = group.counts.volume_ml / 1000.0;
                        today.insert(TapRef { venue, tap_id }, (group.counts.pours, litres));
                    }
                }
            }
        }
        today
    }

    /// One entity's discovery config, as Home Assistant's MQTT discovery reads it.
    fn config(
        &self,
        tap: &TapRef,
        state_topic: &str,
        venue_name: &str,
        view: &TapView,
        (key, name, rest): (&str, &str, Value),
    ) -> String {
        let p = &self.prefix;
        let device_name = match &view.name {
            Some(tap_name) => format!("{venue_name} {tap_name}"),
            None => format!("{venue_name} tap {}", tap.tap_id),
        };
        let mut config = json!({
            "name": name,
            "unique_id": format!("{p}_{}_tap{}_{key}", tap.venue, tap.tap_id),
            "state_topic": state_topic,
            "availability_topic": self.status_topic(),
            "payload_available": "online",
            "payload_not_available": "offline",
            "device": {
                "identifiers": [format!("{p}_{}_tap{}", tap.venue, tap.tap_id)],
                "name": device_name,
                "manufacturer": "Altair",
                "model": "Beer tap",
                "sw_version": env!("CARGO_PKG_VERSION"),
            },
            "origin": {"name": "Altair", "sw_version": env!("CARGO_PKG_VERSION")},
        });
        if let (Some(config), Value::Object(rest)) = (config.as_object_mut(), rest) {
            config.extend(rest);
        }
        config.to_string()
    }
}

fn tap_ref(view: &TapView) -> TapRef {
    TapRef {
        venue: view.venue.clone(),
        tap_id: view.tap_id,
    }
}

/// A tap's state message.
fn state(view: &TapView, last_pour_ml: Option<f64>, pours_today: u64, litres_today: f64) -> String {
    let keg = view.keg.as_ref();
    let round = |x: f64, places: i32| {
        let scale = 10f64.powi(places);
        (x * scale).round() / scale
    };
    json!({
        "venue": view.venue,
        "tapId": view.tap_id,
        "name": view.name,
        "beverage": keg.map(|k| &k.beverage),
        "kegId": keg.map(|k| k.id),
        "remainingMl": keg.map(|k| round(k.remaining_ml, 1)),
        "remainingLitres": keg.map(|k| round(k.remaining_ml / 1000.0, 3)),
        "percent": keg.map(|k| round(k.percent, 1)),
        "low": keg.is_some_and(|k| k.low),
        "empty": keg.is_some_and(|k| k.empty),
        "quiet": view.quiet,
        "cleaning": view.cleaning,
        "lastPourAt": view.last_pour_at,
        "lastPourMl": last_pour_ml,
        "poursToday": pours_today,
        "litresToday": round(litres_today, 3),
    })
    .to_string()
}

/// Keeps the broker's retained topics as the bar calls for, until `shutdown`; then says
/// this server is offline. `kept` brings what the broker keeps (read back), `connected`
/// each new connection.
pub(super) async fn publish(
    out: Out,
    bar: Bar,
    bus: Bus,
    client: super::Client,
    mut kept: mpsc::Receiver<(String, Vec<u8>)>,
    mut connected: watch::Receiver<u64>,
    shutdown: CancellationToken,
) {
    let mut events = bus.subscribe();
    // What the broker keeps of our topics, as far as this server knows.
    let mut broker: Retained = Retained::new();
    let mut unwanted_since: HashMap<String, Instant> = HashMap::new();
    let mut dirty = true;
    let mut last = Instant::now();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            event = events.recv() => match event {
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => dirty = true,
                Err(broadcast::error::RecvError::Closed) => break,
            },
            message = kept.recv() => match message {
                Some((topic, payload)) => {
                    broker.insert(topic, payload);
                    dirty = true;
                }
                None => break,
            },
            changed = connected.changed() => {
                if changed.is_err() {
                    break;
                }
                // A new connection reads the broker's retained messages back afresh.
                broker.clear();
                dirty = true;
            }
            _ = tick.tick() => {
                if *connected.borrow() == 0 || (!dirty && last.elapsed() < IDLE_TICK) {
                    continue;
                }
                dirty = false;
                last = Instant::now();
                let (wanted, known) = out.wanted(&bar, Timestamp::now());
                let changes = changes(&wanted, &known, &broker, &mut unwanted_since, Instant::now());
                for (topic, payload) in changes {
                    if client
                        .publish(topic.clone(), QoS::AtLeastOnce, true, payload.clone())
                        .await
                        .is_err()
                    {
                        break;
                    }
                    broker.insert(topic, payload);
                }
            }
        }
    }
    // This server's goodbye; another one still up says `online` again when it reads it.
    let _ = client.try_publish(out.status_topic(), QoS::AtLeastOnce, true, "offline");
}

/// What to publish for the broker to keep what `wanted` says: new and changed messages,
/// discovery configs before states, then removals (empty payloads) of what is no longer
/// wanted: at once for a tap this server knows, after [`FORGET_AFTER`] for another.
fn changes(
    wanted: &Retained,
    known: &HashMap<String, TapRef>,
    broker: &Retained,
    unwanted_since: &mut HashMap<String, Instant>,
    now: Instant,
) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = wanted
        .iter()
        .filter(|(topic, payload)| broker.get(*topic) != Some(*payload))
        .map(|(topic, payload)| (topic.clone(), payload.clone()))
        .collect();
    // Configs first: Home Assistant then reads the state a config names.
    out.sort_by_key(|(topic, _)| !topic.ends_with("/config"));
    let mut stale = Vec::new();
    for (topic, payload) in broker {
        if payload.is_empty() || wanted.contains_key(topic) {
            unwanted_since.remove(topic);
            continue;
        }
        let since = *unwanted_since.entry(topic.clone()).or_insert(now);
        if known.contains_key(topic) || now.duration_since(since) >= FORGET_AFTER {
            stale.push((topic.clone(), Vec::new()));
        }
    }
    for (topic, _) in &stale {
        unwanted_since.remove(topic);
    }
    out.extend(stale);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out() -> Out {
        Out {
            prefix: "altair".into(),
            discovery: Some("homeassistant".into()),
        }
    }

    #[test]
    fn the_server_reads_back_only_its_own_topics() {
        let out = out();
        for topic in [
            "altair/taps/3/state",
            "altair/north/taps/3/state",
            "altair/alerts",
            "altair/status",
            "homeassistant/sensor/altair/main_tap3_level/config",
            "homeassistant/binary_sensor/altair/main_tap3_low/config",
        ] {
            assert!(out.owns(topic), "{topic}");
        }
        for topic in [
            "altair/taps/3/pours",
            "other/taps/3/state",
            "homeassistant/sensor/other/x/config",
            "homeassistant/light/altair/x/config",
        ] {
            assert!(!out.owns(topic), "{topic}");
        }
    }

    #[test]
    fn what_is_no_longer_wanted_is_removed_at_once_if_known_else_after_a_while() {
        let t0 = Instant::now();
        let wanted: Retained = [("a".to_string(), b"1".to_vec())].into();
        let broker: Retained = [
            ("a".to_string(), b"0".to_vec()),
            ("known".to_string(), b"x".to_vec()),
            ("stranger".to_string(), b"y".to_vec()),
            ("gone".to_string(), Vec::new()),
        ]
        .into();
        let tap = TapRef {
            venue: "main".into(),
            tap_id: 1,
        };
        let known: HashMap<String, TapRef> = [("known".to_string(), tap)].into();
        let mut since = HashMap::new();
        let first = changes(&wanted, &known, &broker, &mut since, t0);
        assert_eq!(
            first,
            [
                ("a".to_string(), b"1".to_vec()),
                ("known".to_string(), Vec::new())
            ]
        );
        let later = changes(&wanted, &known, &broker, &mut since, t0 + FORGET_AFTER);
        assert!(
            later.contains(&("stranger".to_string(), Vec::new())),
            "{later:?}"
        );
    }
}
