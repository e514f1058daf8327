//! Counter devices over MQTT (`--mqtt-meters meters.toml`): topics whose messages are a
//! meter's running total, a bare number or a field of a JSON document, in millilitres,
//! litres or pulses. [`crate::meter`] turns the totals into pours; this task reads the
//! topics, logs the moves it proposes, and stores the pours the log owes.
//!
//! The topics are read at QoS 0 and not shared between servers: every server follows every
//! meter (a total says everything before it, so a reading missed is nothing lost), and the
//! log keeps each move once. A server that was away gets no backlog of old totals.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rumqttc::v5::mqttbytes::QoS;
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::decide::Inserted;
use crate::keg::{KegError, KegOp};
use crate::meter::{Follower, Gauge, Mark, Moved, Proposal};
use crate::metrics;
use crate::pour::{PourError, Timestamp, parse_tap_id, tap_id_rule};
use crate::temperature::{Location, MAX_SENSOR_LEN, Reading, checked_celsius};

use super::{Intake, Link};

/// How often open pours are checked for their end.
const TICK: Duration = Duration::from_millis(200);

/// A meter's complaints (unreadable totals, faults) reach the log at most this often.
const COMPLAIN_EVERY: Duration = Duration::from_secs(60);

/// What one meter publishes, and for which tap.
#[derive(Debug, Clone)]
pub struct Meter {
    /// Its name in the log: `name`, or its topic.
    pub name: String,
    pub topic: String,
    /// The venue the file names (`None`: the default venue).
    pub venue: Option<String>,
    pub tap_id: u32,
    /// Where the total is in a JSON message (`None`: the message is the number).
    pointer: Option<String>,
    pub gauge: Gauge,
}

/// A unit of a meter's total.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Unit {
    Ml,
    L,
    Pulses,
}

/// One `[[meter]]` of the file, as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    topic: String,
    tap: serde_json::Value,
    venue: Option<String>,
    name: Option<String>,
    unit: Unit,
    pulses_per_litre: Option<f64>,
    pointer: Option<String>,
    idle_seconds: Option<f64>,
    max_ml: Option<f64>,
}

/// One `[[thermometer]]` of the file, as written: a topic whose messages are a sensor's
/// reading in °C, a bare number or a field of a JSON document.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ThermometerEntry {
    topic: String,
    tap: serde_json::Value,
    venue: Option<String>,
    sensor: Option<String>,
    location: Option<String>,
    pointer: Option<String>,
}

/// A temperature sensor that publishes a bare reading, and for which tap.
#[derive(Debug, Clone)]
pub struct Thermometer {
    pub topic: String,
    /// The venue the file names (`None`: the default venue).
    pub venue: Option<String>,
    tap_id: u32,
    sensor: String,
    location: Location,
    pointer: Option<String>,
}

impl Thermometer {
    /// The reading a message holds, for `venue`, timed `now`.
    pub fn reading(
        &self,
        payload: &[u8],
        venue: Arc<str>,
        now: Timestamp,
    ) -> Result<Reading, PourError> {
        let celsius = number(payload, self.pointer.as_deref())
            .and_then(checked_celsius)
            .map_err(PourError::Invalid)?;
        Ok(Reading {
            venue,
            tap_id: self.tap_id,
            sensor: self.sensor.clone(),
            location: self.location,
            celsius,
            timestamp: now,
            samples: 1,
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    meter: Vec<Entry>,
    #[serde(default)]
    thermometer: Vec<ThermometerEntry>,
}

/// Reads the meters file: its meters and its thermometers; `max_ml`: the server's largest
/// pour, a meter's default limit.
pub fn load(path: &Path, max_ml: f64) -> Result<(Vec<Meter>, Vec<Thermometer>), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read it: {e}"))?;
    let file: File = toml::from_str(&text).map_err(|e| e.to_string())?;
    let meters = meters_of(file.meter, max_ml)?;
    let mut thermometers: Vec<Thermometer> = Vec::new();
    for (i, entry) in file.thermometer.into_iter().enumerate() {
        let which = format!("thermometer {} (topic {:?})", i + 1, entry.topic);
        let t = entry.check().map_err(|e| format!("{which}: {e}"))?;
        if meters.iter().any(|m| m.topic == t.topic)
            || thermometers.iter().any(|o| o.topic == t.topic)
        {
            return Err(format!("{which}: another device reads this topic"));
        }
        thermometers.push(t);
    }
    Ok((meters, thermometers))
}

impl ThermometerEntry {
    fn check(self) -> Result<Thermometer, String> {
        one_topic(&self.topic)?;
        let tap_id = tap_of(&self.tap)?;
        let location = match self.location.as_deref() {
            None => Location::Keg,
            Some(l) => Location::parse(l).ok_or("location must be keg, cooler, tower or room")?,
        };
        let sensor = self.sensor.unwrap_or_else(|| "probe".to_owned());
        if sensor.is_empty() || sensor.chars().count() > MAX_SENSOR_LEN {
            return Err(format!("sensor must be 1 to {MAX_SENSOR_LEN} characters"));
        }
        pointer_of(self.pointer.as_deref())?;
        Ok(Thermometer {
            topic: self.topic,
            venue: self.venue,
            tap_id,
            sensor,
            location,
            pointer: self.pointer,
        })
    }
}

/// A topic names one device's messages: no wildcards, not the broker's own.
fn one_topic(topic: &str) -> Result<(), String> {
    if topic.is_empty() || topic.contains(['+', '#']) || topic.starts_with('$') {
        return Err("a topic names one device's messages: no wildcards (+, #), not $…".into());
    }
    Ok(())
}

fn tap_of(tap: &serde_json::Value) -> Result<u32, String> {
    match tap {
        serde_json::Value::Number(n) => parse_tap_id(&n.to_string()),
        _ => None,
    }
    .ok_or_else(|| format!("tap must be {}", tap_id_rule()))
}

fn pointer_of(pointer: Option<&str>) -> Result<(), String> {
    match pointer {
        Some(p) if !p.starts_with('/') => {
            Err("pointer is a JSON pointer: it starts with / (/COUNTER/C1)".into())
        }
        _ => Ok(()),
    }
}

/// The number a message holds: itself, or the field at `pointer` of its JSON.
fn number(payload: &[u8], pointer: Option<&str>) -> Result<f64, String> {
    let text = std::str::from_utf8(payload).map_err(|_| "the message is not UTF-8")?;
    let value = match pointer {
        None => text.trim().parse::<f64>().ok(),
        Some(pointer) => {
            let doc: serde_json::Value =
                serde_json::from_str(text).map_err(|e| format!("the message is not JSON: {e}"))?;
            match doc.pointer(pointer) {
                Some(serde_json::Value::Number(n)) => n.as_f64(),
                Some(serde_json::Value::String(s)) => s.trim().parse::<f64>().ok(),
                Some(_) => None,
                None => return Err(format!("the message has nothing at {pointer}")),
            }
        }
    };
    value.filter(|v| v.is_finite()).ok_or_else(|| {
        format!(
            "the message must be a number{}",
            pointer.map(|p| format!(" (at {p})")).unwrap_or_default()
        )
    })
}

#[cfg(test)]
fn parse(text: &str, max_ml: f64) -> Result<Vec<Meter>, String> {
    let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
    meters_of(file.meter, max_ml)
}

fn meters_of(entries: Vec<Entry>, max_ml: f64) -> Result<Vec<Meter>, String> {
    let mut meters: Vec<Meter> = Vec::new();
    for (i, entry) in entries.into_iter().enumerate() {
        let which = format!("meter {} (topic {:?})", i + 1, entry.topic);
        let meter = entry.check(max_ml).map_err(|e| format!("{which}: {e}"))?;
        if meters.iter().any(|m| m.topic == meter.topic) {
            return Err(format!("{which}: another meter reads this topic"));
        }
        if meters.iter().any(|m| m.name == meter.name) {
            return Err(format!("{which}: another meter is named {:?}", meter.name));
        }
        meters.push(meter);
    }
    Ok(meters)
}

impl Entry {
    fn check(self, max_ml: f64) -> Result<Meter, String> {
        if self.topic.is_empty() || self.topic.contains(['+', '#']) || self.topic.starts_with('$') {
            return Err("a topic names one device's total: no wildcards (+, #), not $…".into());
        }
        let tap_id = match &self.tap {
            serde_json::Value::Number(n) => parse_tap_id(&n.to_string()),
            _ => None,
        }
        .ok_or_else(|| format!("tap must be {}", tap_id_rule()))?;
        let ml_per_unit = match (self.unit, self.pulses_per_litre) {
            (Unit::Ml, None) => 1.0,
            (Unit::L, None) => 1000.0,
            (Unit::Pulses, Some(p)) if p.is_finite() && p > 0.0 => 1000.0 / p,
            (Unit::Pulses, _) => {
                return Err("unit = \"pulses\" needs pulses_per_litre, a number above 0".into());
            }
            (_, Some(_)) => return Err("pulses_per_litre is for unit = \"pulses\"".into()),
        };
        pointer_of(self.pointer.as_deref())?;
        let idle = self.idle_seconds.unwrap_or(3.0);
        if !(0.1..=600.0).contains(&idle) {
            return Err("idle_seconds must be from 0.1 to 600".into());
        }
        let max_ml = self.max_ml.unwrap_or(max_ml);
        if !(max_ml.is_finite() && max_ml > 0.0) {
            return Err("max_ml must be a number above 0".into());
        }
        let name = self.name.unwrap_or_else(|| self.topic.clone());
        if name.is_empty() || name.len() > 200 {
            return Err("name must be 1 to 200 characters".into());
        }
        Ok(Meter {
            name,
            topic: self.topic,
            venue: self.venue,
            tap_id,
            pointer: self.pointer,
            gauge: Gauge {
                ml_per_unit,
                idle: Duration::from_secs_f64(idle),
                max_ml,
            },
        })
    }
}

impl Meter {
    /// The total a message holds.
    pub fn reading(&self, payload: &[u8]) -> Result<f64, String> {
        let v = number(payload, self.pointer.as_deref())?;
        if v >= 0.0 {
            Ok(v)
        } else {
            Err("the total must be 0 or more".into())
        }
    }

    /// Where the tap's pours are answered: its `…/pours/accepted` or `…/rejected`.
    fn answer_topic(&self, prefix: &str, outcome: &str) -> String {
        match &self.venue {
            Some(venue) => format!("{prefix}/{venue}/taps/{}/pours/{outcome}", self.tap_id),
            None => format!("{prefix}/taps/{}/pours/{outcome}", self.tap_id),
        }
    }
}

/// The meters, found by topic.
pub struct Meters {
    pub list: Arc<[Meter]>,
    by_topic: HashMap<String, usize>,
}

impl Meters {
    pub fn new(list: Vec<Meter>) -> Meters {
        let by_topic = list
            .iter()
            .enumerate()
            .map(|(i, m)| (m.topic.clone(), i))
            .collect();
        Meters {
            list: list.into(),
            by_topic,
        }
    }

    pub fn index(&self, topic: &str) -> Option<usize> {
        self.by_topic.get(topic).copied()
    }
}

/// One meter as this server follows it.
#[derive(Default)]
struct Follow {
    follower: Follower,
    /// A move proposed and not yet logged (the store could not take it).
    wanted: Option<Proposal>,
    /// The log's move count whose pour this server has seen stored.
    settled: u64,
    /// When this meter may next complain in the log.
    complain_after: Option<Instant>,
}

/// What the task needs besides the readings.
pub struct Task {
    pub meters: Arc<[Meter]>,
    pub intake: Intake,
    pub client: super::Client,
    pub prefix: String,
    pub link: Link,
    /// How long an idempotency key stands: an owed pour older than half of it is not
    /// stored again (its key may be gone).
    pub key_ttl: Duration,
}

/// Follows the meters' totals until `shutdown`.
pub async fn follow(
    task: Task,
    mut readings: mpsc::Receiver<(usize, bytes::Bytes)>,
    shutdown: CancellationToken,
) {
    let mut follows: Vec<Follow> = task.meters.iter().map(|_| Follow::default()).collect();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            reading = readings.recv() => {
                let Some((i, payload)) = reading else { break };
                task.link.0.received.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                metrics::mqtt_received();
                let meter = &task.meters[i];
                let follow = &mut follows[i];
                match meter.reading(&payload) {
                    Ok(value) => {
                        let mark = task.mark(meter);
                        if let Some(p) = follow.follower.read(mark.as_ref(), value, Timestamp::now(), &meter.gauge) {
                            follow.wanted = Some(p);
                        }
                        task.settle(meter, follow).await;
                    }
                    Err(why) => {
                        let message = format!("meter {:?}: {why}", meter.name);
                        task.refuse(meter, follow, 400, "malformed", message);
                    }
                }
            }
            _ = tick.tick() => {
                for (meter, follow) in task.meters.iter().zip(follows.iter_mut()) {
                    if follow.wanted.is_none() {
                        let mark = task.mark(meter);
                        follow.wanted = follow.follower.due(mark.as_ref(), Timestamp::now(), &meter.gauge);
                    }
                    task.settle(meter, follow).await;
                }
            }
        }
    }
}

impl Task {
    fn mark(&self, meter: &Meter) -> Option<Mark> {
        self.intake.bar.hold().meter(&meter.name)
    }

    /// Logs the move `follow` wants, then stores the pour the log's last move owes, if
    /// this server has not seen it stored. Either waits for a later turn when the store
    /// cannot take it.
    async fn settle(&self, meter: &Meter, follow: &mut Follow) {
        if let Some(wanted) = follow.wanted {
            let logged = self.mark(meter).map_or(0, |m| m.seq);
            if wanted.seq != logged {
                // Another server moved the mark first.
                follow.wanted = None;
            } else {
                let op = KegOp::Meter {
                    meter: meter.name.clone(),
                    venue: meter.venue.as_deref().map(Arc::from),
                    tap_id: meter.tap_id,
                    seq: wanted.seq,
                    total: wanted.total,
                    why: wanted.why,
                    pour: wanted.pour,
                    jump_ml: wanted.jump_ml,
                    at: Timestamp::now(),
                };
                match self.intake.store.keg(op, None).await {
                    Ok(Ok(_)) => {
                        follow.wanted = None;
                        if let (Moved::Jumped, Some(ml)) = (wanted.why, wanted.jump_ml) {
                            let message = format!(
                                "meter {:?}: the total rose by {ml} ml at once, more than a tap pours ({} ml): flagged, not poured; counting goes on from {}",
                                meter.name, meter.gauge.max_ml, wanted.total
                            );
                            self.refuse(meter, follow, 422, "invalid", message);
                        } else if wanted.why == Moved::Restarted {
                            log::info!(
                                "mqtt: meter {:?} restarted (its total fell to {}): counting goes on from there",
                                meter.name,
                                wanted.total
                            );
                        }
                    }
                    Ok(Err(KegError::MeterMoved(_))) => follow.wanted = None,
                    Ok(Err(e)) => {
                        follow.wanted = None;
                        let message = format!("meter {:?}: {e}", meter.name);
                        self.refuse(meter, follow, 404, "forbidden", message);
                    }
                    Err(e) => {
                        log::debug!(
                            "mqtt: meter {:?}: the store cannot log a move now: {e}",
                            meter.name
                        );
                        return;
                    }
                }
            }
        }
        let Some(mark) = self.mark(meter) else { return };
        if mark.seq <= follow.settled {
            return;
        }
        let Some((pour, key)) = &mark.owed else {
            follow.settled = mark.seq;
            return;
        };
        let age = Timestamp::now().millis().saturating_sub(mark.at.millis());
        if u128::try_from(age).unwrap_or(0) > self.key_ttl.as_millis() / 2 {
            follow.settled = mark.seq;
            return;
        }
        let venue = match &meter.venue {
            None => self.intake.pouring.default_venue.clone(),
            Some(named) => match self.intake.bar.venues(|v| v.id(named)) {
                Some(venue) => venue,
                None => {
                    follow.settled = mark.seq;
                    let message = format!("meter {:?}: no venue {named:?}", meter.name);
                    return self.refuse(meter, follow, 404, "forbidden", message);
                }
            },
        };
        let body = serde_json::json!({ "volume": pour.volume_ml, "timestamp": pour.at });
        let judged = self.intake.pouring.judge(
            body.to_string().as_bytes(),
            Some(meter.tap_id),
            venue,
            Timestamp::now(),
        );
        let new = match judged {
            Ok(new) => new,
            Err(PourError::Malformed(m) | PourError::Invalid(m)) => {
                follow.settled = mark.seq;
                let message = format!("meter {:?}: {m}", meter.name);
                return self.refuse(meter, follow, 422, "invalid", message);
            }
        };
        match self.intake.store.insert(new, Some(key.clone())).await {
            Ok(Inserted::Created(pour)) => {
                follow.settled = mark.seq;
                self.link
                    .0
                    .pours
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                metrics::mqtt_pour();
                metrics::pour_accepted(&pour.glass, &pour.venue, pour.tap_id);
                for flag in pour.flags.iter() {
                    metrics::pour_flagged(flag as usize, flag.name());
                }
                let body = serde_json::json!({ "beer": pour }).to_string();
                let topic = meter.answer_topic(&self.prefix, "accepted");
                let _ = self.client.try_publish(topic, QoS::AtMostOnce, false, body);
            }
            // Stored before (by this server or another), or stored and deleted since.
            Ok(Inserted::Replayed(_) | Inserted::Deleted(_) | Inserted::Conflict) => {
                follow.settled = mark.seq;
            }
            Err(e) => {
                log::debug!(
                    "mqtt: meter {:?}: the store cannot take a pour now: {e}",
                    meter.name
                );
            }
        }
    }

    /// Answers on the tap's `…/pours/rejected`, counts it, and says it in the log at most
    /// once a minute for the meter (a device must not set the log's volume).
    fn refuse(
        &self,
        meter: &Meter,
        follow: &mut Follow,
        status: u16,
        reason: &'static str,
        message: String,
    ) {
        self.link
            .0
            .rejected
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        metrics::mqtt_rejected(reason);
        let now = Instant::now();
        if follow.complain_after.is_none_or(|t| now >= t) {
            log::warn!("mqtt: {message}");
            follow.complain_after = Some(now + COMPLAIN_EVERY);
        } else {
            log::debug!("mqtt: {message}");
        }
        let body = serde_json::json!({ "status": status, "message": message }).to_string();
        let topic = meter.answer_topic(&self.prefix, "rejected");
        let _ = self.client.try_publish(topic, QoS::AtMostOnce, false, body);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Result<Meter, String> {
        parse(text, 5000.0).map(|mut m| m.remove(0))
    }

    #[test]
    fn a_meter_reads_a_bare_number_or_a_field_of_json_in_its_unit() {
        let esphome =
            one("[[meter]]\ntopic = \"bar/sensor/tap_1_total/state\"\ntap = 1\nunit = \"l\"\n")
                .unwrap();
        assert_eq!(esphome.reading(b" 12.5\n"), Ok(12.5));
        assert_eq!(esphome.gauge.ml_per_unit, 1000.0);
        assert_eq!(esphome.gauge.idle, Duration::from_secs(3));
        assert!(esphome.reading(b"nan").is_err());
        assert!(esphome.reading(b"-1").is_err());
        assert!(esphome.reading(b"{\"v\": 1}").is_err());
        let tasmota = one(
            "[[meter]]\ntopic = \"tele/tap2/SENSOR\"\ntap = 2\nunit = \"pulses\"\npulses_per_litre = 5600\npointer = \"/COUNTER/C1\"\nvenue = \"dock\"\nidle_seconds = 1.5\n",
        )
        .unwrap();
        assert_eq!(
            tasmota.reading(br#"{"Time":"x","COUNTER":{"C1":1234}}"#),
            Ok(1234.0)
        );
        assert!(
            tasmota
                .reading(br#"{"COUNTER":{}}"#)
                .unwrap_err()
                .contains("/COUNTER/C1")
        );
        assert_eq!(
            tasmota.answer_topic("altair", "rejected"),
            "altair/dock/taps/2/pours/rejected"
        );
    }

    #[test]
    fn a_wrong_meters_file_is_refused_with_the_meter_and_the_reason() {
        for (text, says) in [
            (
                "[[meter]]\ntopic = \"a/+\"\ntap = 1\nunit = \"l\"\n",
                "wildcards",
            ),
            (
                "[[meter]]\ntopic = \"a\"\ntap = 0\nunit = \"l\"\n",
                "tap must be",
            ),
            (
                "[[meter]]\ntopic = \"a\"\ntap = 1\nunit = \"pulses\"\n",
                "pulses_per_litre",
            ),
            (
                "[[meter]]\ntopic = \"a\"\ntap = 1\nunit = \"gallons\"\n",
                "unknown variant",
            ),
            (
                "[[meter]]\ntopic = \"a\"\ntap = 1\nunit = \"l\"\ncolour = 1\n",
                "unknown field",
            ),
            (
                "[[meter]]\ntopic = \"a\"\ntap = 1\nunit = \"l\"\n[[meter]]\ntopic = \"a\"\ntap = 2\nunit = \"l\"\n",
                "another meter",
            ),
        ] {
            let e = parse(text, 5000.0).unwrap_err();
            assert!(e.contains(says), "{text}: {e}");
        }
    }
}
