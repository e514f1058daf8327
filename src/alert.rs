//! Alerts: one open problem about one subject (a keg low or empty, a tap quiet, a tap's
//! flagged or after-hours pours), kept until it clears.
//!
//! [`Alerts`] is a state machine fed the log in order, like the kegs: the keg events a
//! change caused, the flags of each pour, and the logged operations that acknowledge an
//! alert or close one whose events stopped. Every server that reads the same log holds the
//! same alerts, with the same ids and states, and each change is announced once. Times come
//! from the log (a pour's timestamp, an operation's), never from the clock of whoever
//! replays it.
//!
//! An alert about a condition resolves when the condition clears (a new keg, the tap pours
//! again). An alert about events (flagged pours, after-hours pours) groups them, one per
//! tap and kind, and resolves once no new one came for the window: a server logs that
//! ([`Alerts::due`]), since only the clock says when.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::keg::{KegError, KegEvent, KegEventKind, KegOp};
use crate::pour::{Flag, Pour, Timestamp};
use crate::temperature::Condition;

/// What an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum AlertKind {
    /// A keg is at or under its tap's low level.
    KegLow,
    /// A keg has nothing left.
    KegEmpty,
    /// A tap with a keg on has not poured for the quiet time while the bar was open.
    TapQuiet,
    /// Pours on one tap with one flag (tiny, unclassified, over-pour, burst).
    FlaggedPours,
    /// Pours outside opening hours on one tap.
    AfterHours,
    /// This server's store cannot write (this server's own alert).
    StoreFailing,
    /// This server's data directory is low on space (this server's own alert).
    DiskLow,
    /// The server disabled a webhook: its receiver is gone, or failed for a day.
    WebhookFailing,
    /// A venue's business day whose sales, as imported, are further from its pours than
    /// the variance goal.
    Variance,
    /// A tap's beer has been above the warm limit for longer than allowed (it foams).
    TooWarm,
    /// A tap's beer is above the hot limit (it spoils).
    TooHot,
    /// A tap's temperature sensor has sent nothing for the silent time.
    SensorSilent,
}

impl AlertKind {
    /// Every kind, in the order they are listed.
    pub const ALL: [AlertKind; 12] = [
        AlertKind::KegLow,
        AlertKind::KegEmpty,
        AlertKind::TapQuiet,
        AlertKind::FlaggedPours,
        AlertKind::AfterHours,
        AlertKind::StoreFailing,
        AlertKind::DiskLow,
        AlertKind::WebhookFailing,
        AlertKind::Variance,
        AlertKind::TooWarm,
        AlertKind::TooHot,
        AlertKind::SensorSilent,
    ];

    /// The kind's name in the API.
    pub fn name(self) -> &'static str {
        match self {
            AlertKind::KegLow => "kegLow",
            AlertKind::KegEmpty => "kegEmpty",
            AlertKind::TapQuiet => "tapQuiet",
            AlertKind::FlaggedPours => "flaggedPours",
            AlertKind::AfterHours => "afterHours",
            AlertKind::StoreFailing => "storeFailing",
            AlertKind::DiskLow => "diskLow",
            AlertKind::WebhookFailing => "webhookFailing",
            AlertKind::Variance => "variance",
            AlertKind::TooWarm => "tooWarm",
            AlertKind::TooHot => "tooHot",
            AlertKind::SensorSilent => "sensorSilent",
        }
    }

    /// The kind called `name`.
    pub fn parse(name: &str) -> Option<AlertKind> {
        AlertKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// How loud it is.
    pub fn severity(self) -> Severity {
        match self {
            AlertKind::KegEmpty | AlertKind::StoreFailing | AlertKind::TooHot => Severity::Critical,
            AlertKind::TooWarm | AlertKind::SensorSilent => Severity::Warning,
            AlertKind::KegLow
            | AlertKind::TapQuiet
            | AlertKind::AfterHours
            | AlertKind::DiskLow
            | AlertKind::WebhookFailing
            | AlertKind::Variance => Severity::Warning,
            AlertKind::FlaggedPours => Severity::Info,
        }
    }

    /// Whether an alert of this kind is about a venue's tap or keg (not the chain's, nor
    /// a server's).
    pub fn is_a_venue_s(self) -> bool {
        matches!(
            self,
            AlertKind::KegLow
                | AlertKind::KegEmpty
                | AlertKind::TapQuiet
                | AlertKind::FlaggedPours
                | AlertKind::AfterHours
                | AlertKind::Variance
                | AlertKind::TooWarm
                | AlertKind::TooHot
                | AlertKind::SensorSilent
        )
    }

    /// Whether it is about events, which stop, rather than a condition, which clears.
    pub fn is_about_events(self) -> bool {
        matches!(self, AlertKind::FlaggedPours | AlertKind::AfterHours)
    }
}

/// How loud an alert is.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 3] = [Severity::Info, Severity::Warning, Severity::Critical];

    pub fn name(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// Where an alert is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum AlertState {
    Open,
    /// Someone has seen it; it stays until it resolves, and is not sent again.
    Acknowledged,
    Resolved,
}

impl AlertState {
    pub fn name(self) -> &'static str {
        match self {
            AlertState::Open => "open",
            AlertState::Acknowledged => "acknowledged",
            AlertState::Resolved => "resolved",
        }
    }

    pub fn parse(name: &str) -> Option<AlertState> {
        [
            AlertState::Open,
            AlertState::Acknowledged,
            AlertState::Resolved,
        ]
        .into_iter()
        .find(|s| s.name() == name)
    }
}

/// One problem about one subject.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    /// From 1, the same on every server.
    pub id: u64,
    pub kind: AlertKind,
    pub severity: Severity,
    pub state: AlertState,
    /// The venue whose tap or keg it is about (none: the chain's, a webhook's or a
    /// server's).
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub venue: Option<Arc<str>>,
    /// The tap it is about.
    pub tap_id: Option<u32>,
    /// The keg it is about (for a tap's alert, the keg on it then).
    pub keg_id: Option<u64>,
    /// For `flaggedPours`: the flag the pours have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub flag: Option<Flag>,
    /// For a server's own alert (`storeFailing`, `diskLow`): the server's host name. Only
    /// that server shows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// For `webhookFailing`: the webhook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_id: Option<u64>,
    /// For `variance`: the business day, `YYYY-MM-DD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = Date)]
    pub day: Option<String>,
    /// For `tooWarm`, `tooHot` and `sensorSilent`: the tap's sensor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sensor: Option<String>,
    /// How many times it was seen: the pours it groups, or 1.
    pub count: u64,
    /// What is wrong, for people.
    pub message: String,
    #[schema(value_type = String, format = DateTime)]
    pub opened_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub last_seen_at: Timestamp,
    /// The last pour it saw (its cause, for most kinds; 0: none).
    pub last_pour_id: u64,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub acknowledged_at: Option<Timestamp>,
    /// Who acknowledged it: the token's name (none on a server without tokens, unless the
    /// acknowledgement named someone).
    pub acknowledged_by: Option<String>,
    /// The note left with the acknowledgement.
    pub note: Option<String>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub resolved_at: Option<Timestamp>,
}

impl Alert {
    /// The alert as readers see it: one about events counts them in its message, written
    /// here rather than once a pour.
    pub fn read(&self) -> Alert {
        let mut alert = self.clone();
        if alert.kind.is_about_events() {
            alert.message = events_message(&subject_of(&alert), alert.count);
        }
        alert
    }
}

/// What happened to an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum Change {
    Opened,
    /// It grouped more events (its count and last-seen time moved): said at most a few
    /// times a second, live only, not replayed.
    Updated,
    Acknowledged,
    Resolved,
}

impl Change {
    /// Whether subscribers that resume are owed it (an update is not: the alert's next
    /// change, or `GET /api/alerts`, carries its count).
    pub fn is_kept(self) -> bool {
        self != Change::Updated
    }
}

/// An alert's change, and the alert as it is after.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertEvent {
    pub change: Change,
    /// The bar's events' sequence (shared with keg and tap events), from 1, the same on
    /// every server; 0 for an update, which takes no place in it.
    pub seq: u64,
    /// The id of the last pour before it.
    pub after: u64,
    pub alert: Alert,
}

/// Settings.
#[derive(Debug, Clone, Copy)]
pub struct AlertSettings {
    /// An alert about events resolves once none came for this long (ms).
    pub window_ms: i64,
    /// A business day's variance further from zero than this, in per cent, is an alert.
    pub variance_goal: f64,
}

/// Which open alert a new problem joins: one per kind and subject.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Subject {
    kind: AlertKind,
    venue: Option<Arc<str>>,
    tap_id: Option<u32>,
    keg_id: Option<u64>,
    flag: Option<Flag>,
    webhook_id: Option<u64>,
    day: Option<String>,
    sensor: Option<String>,
}

impl Subject {
    fn sensor(kind: AlertKind, venue: Arc<str>, tap_id: u32, sensor: &str) -> Subject {
        Subject {
            kind,
            venue: Some(venue),
            tap_id: Some(tap_id),
            keg_id: None,
            flag: None,
            webhook_id: None,
            day: None,
            sensor: Some(sensor.to_owned()),
        }
    }

    fn webhook(id: u64) -> Subject {
        Subject {
            kind: AlertKind::WebhookFailing,
            venue: None,
            tap_id: None,
            keg_id: None,
            flag: None,
            webhook_id: Some(id),
            day: None,
            sensor: None,
        }
    }

    fn variance(venue: Arc<str>, day: String) -> Subject {
        Subject {
            kind: AlertKind::Variance,
            venue: Some(venue),
            tap_id: None,
            keg_id: None,
            flag: None,
            webhook_id: None,
            day: Some(day),
            sensor: None,
        }
    }
}

/// Filters for a list of alerts.
#[derive(Debug, Clone, Default)]
pub struct AlertFilter {
    pub state: Option<AlertState>,
    /// Only this venue's (an alert of none, the chain's, is every venue's).
    pub venue: Option<Arc<str>>,
    pub tap_id: Option<u32>,
    pub kind: Option<AlertKind>,
}

impl AlertFilter {
    /// Whether `alert` matches.
    pub fn admits(&self, alert: &Alert) -> bool {
        self.state.is_none_or(|s| alert.state == s)
            && self
                .venue
                .as_ref()
                .is_none_or(|v| alert.venue.as_ref().is_none_or(|a| a == v))
            && self.tap_id.is_none_or(|t| alert.tap_id == Some(t))
            && self.kind.is_none_or(|k| alert.kind == k)
    }
}

/// Every alert, as the log says.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Alerts {
    #[serde(skip, default = "no_settings")]
    settings: AlertSettings,
    /// The venue of a tap's alert that a snapshot from before venues names none.
    #[serde(skip, default = "no_venue")]
    default_venue: Arc<str>,
    /// Every alert, by id - 1.
    alerts: Vec<Alert>,
    /// The unresolved alert of each subject (an index into `alerts`): a short list,
    /// searched faster than a map's key is hashed.
    #[serde(skip)]
    unresolved: Vec<(Subject, usize)>,
    /// Alerts that grouped more events since [`Alerts::take_updates`] last looked.
    #[serde(skip)]
    touched: Vec<usize>,
}

fn no_settings() -> AlertSettings {
    AlertSettings {
        window_ms: 0,
        variance_goal: 2.0,
    }
}

fn no_venue() -> Arc<str> {
    "".into()
}

impl Alerts {
    /// No alerts; a tap's alerts in a snapshot that names no venue are `default_venue`'s.
    pub fn new(settings: AlertSettings, default_venue: Arc<str>) -> Alerts {
        Alerts {
            settings,
            default_venue,
            alerts: Vec::new(),
            unresolved: Vec::new(),
            touched: Vec::new(),
        }
    }

    /// A committed pour (the last pour is now `pour.id`), and the keg events it caused.
    pub fn poured(&mut self, pour: &Pour, keg_events: &[Arc<KegEvent>]) -> Vec<(Change, Alert)> {
        let mut changes = self.keg_events(keg_events, pour.timestamp, pour.id);
        // Water through a line being cleaned: whatever it looks like, nothing to look at.
        if pour.flags.contains(Flag::Cleaning) {
            return changes;
        }
        for flag in pour.flags.iter() {
            let (kind, flag) = match flag {
                Flag::AfterHours => (AlertKind::AfterHours, None),
                // Pours from an empty keg are the kegEmpty alert's business.
                Flag::EmptyKeg => continue,
                flag => (AlertKind::FlaggedPours, Some(flag)),
            };
            let subject = Subject {
                kind,
                venue: Some(pour.venue.clone()),
                tap_id: Some(pour.tap_id),
                keg_id: None,
                flag,
                webhook_id: None,
                day: None,
                sensor: None,
            };
            self.seen(&subject, pour.timestamp, pour.id, &mut changes);
        }
        changes
    }

    /// A committed operation logged after pour `after`, and the keg events it caused.
    pub fn keg_op(
        &mut self,
        op: &KegOp,
        after: u64,
        keg_events: &[Arc<KegEvent>],
    ) -> Vec<(Change, Alert)> {
        let at = op.at();
        let mut changes = self.keg_events(keg_events, at, after);
        match op {
            KegOp::AckAlert {
                alert_id, by, note, ..
            } => {
                if let Some(index) = self.unresolved_index(*alert_id) {
                    let alert = &mut self.alerts[index];
                    if alert.state == AlertState::Open {
                        alert.state = AlertState::Acknowledged;
                        alert.acknowledged_at = Some(at);
                        alert.acknowledged_by = by.clone();
                        alert.note = note.clone();
                        changes.push((Change::Acknowledged, self.view(index)));
                    }
                }
            }
            KegOp::CloseAlert { alert_id, .. } => {
                if let Some(index) = self.unresolved_index(*alert_id) {
                    self.resolve(index, at, &mut changes);
                }
            }
            KegOp::WebhookDown {
                webhook_id, reason, ..
            } => {
                let subject = Subject::webhook(*webhook_id);
                if self.unresolved_of(&subject).is_none() {
                    let message = format!("Webhook {webhook_id} is disabled: {reason}");
                    let index = self.push(subject, at, after, message);
                    changes.push((Change::Opened, self.alerts[index].clone()));
                }
            }
            KegOp::WebhookUp { webhook_id, .. } => {
                self.clear(Subject::webhook(*webhook_id), at, &mut changes);
            }
            KegOp::Temperature {
                venue,
                tap_id,
                sensor,
                condition,
                celsius,
                ..
            } => {
                let venue = venue.clone().unwrap_or_else(|| self.default_venue.clone());
                let wanted = kind_of(*condition);
                // What it was resolves before what it is opens.
                for kind in TEMPERATURE_KINDS.into_iter().filter(|&k| Some(k) != wanted) {
                    self.clear(
                        Subject::sensor(kind, venue.clone(), *tap_id, sensor),
                        at,
                        &mut changes,
                    );
                }
                if let Some(kind) = wanted {
                    let subject = Subject::sensor(kind, venue.clone(), *tap_id, sensor);
                    if self.unresolved_of(&subject).is_none() {
                        let message = temperature_message(kind, *tap_id, sensor, *celsius);
                        let index = self.push(subject, at, after, message);
                        changes.push((Change::Opened, self.alerts[index].clone()));
                    }
                }
            }
            _ => {}
        }
        changes
    }

    /// What a tap sensor's unresolved alerts say of it.
    pub fn sensor_condition(&self, venue: &Arc<str>, tap_id: u32, sensor: &str) -> Condition {
        TEMPERATURE_KINDS
            .into_iter()
            .find(|&kind| {
                self.unresolved_of(&Subject::sensor(kind, venue.clone(), tap_id, sensor))
                    .is_some()
            })
            .map_or(Condition::Fine, |kind| match kind {
                AlertKind::TooHot => Condition::Hot,
                AlertKind::SensorSilent => Condition::Silent,
                _ => Condition::Warm,
            })
    }

    fn keg_events(
        &mut self,
        events: &[Arc<KegEvent>],
        at: Timestamp,
        after: u64,
    ) -> Vec<(Change, Alert)> {
        let mut changes = Vec::new();
        for event in events {
            let keg = Some(event.keg.id);
            let tap = Some(event.tap_id);
            let subject = |kind| Subject {
                kind,
                venue: Some(event.venue.clone()),
                tap_id: tap,
                keg_id: keg,
                flag: None,
                webhook_id: None,
                day: None,
                sensor: None,
            };
            match event.kind {
                KegEventKind::Low => {
                    self.open(subject(AlertKind::KegLow), event, at, after, &mut changes)
                }
                KegEventKind::Empty => {
                    // One alert for the keg: empty takes over from low.
                    self.clear(subject(AlertKind::KegLow), at, &mut changes);
                    self.open(subject(AlertKind::KegEmpty), event, at, after, &mut changes);
                }
                KegEventKind::Quiet => {
                    self.open(subject(AlertKind::TapQuiet), event, at, after, &mut changes)
                }
                KegEventKind::Back => self.clear(subject(AlertKind::TapQuiet), at, &mut changes),
                KegEventKind::Finished => {
                    for kind in [AlertKind::KegLow, AlertKind::KegEmpty, AlertKind::TapQuiet] {
                        self.clear(subject(kind), at, &mut changes);
                    }
                }
                // A correction may lift the keg above its levels.
                KegEventKind::Corrected => {
                    if !event.keg.empty {
                        self.clear(subject(AlertKind::KegEmpty), at, &mut changes);
                    }
                    if !event.keg.low {
                        self.clear(subject(AlertKind::KegLow), at, &mut changes);
                    }
                }
                KegEventKind::Tapped => {}
            }
        }
        changes
    }

    /// A venue's business day judged against the variance goal, as of `at` (an import or a
    /// mapping, logged after pour `after`): over it, the day's alert opens (or, open, says
    /// the new figures); under it, the alert resolves.
    pub fn variance(
        &mut self,
        venue: Arc<str>,
        day: String,
        over: Option<String>,
        at: Timestamp,
        after: u64,
    ) -> Vec<(Change, Alert)> {
        let mut changes = Vec::new();
        let subject = Subject::variance(venue, day);
        match (over, self.unresolved_of(&subject)) {
            (Some(message), Some(index)) => {
                let alert = &mut self.alerts[index];
                if alert.message != message {
                    alert.message = message;
                    alert.last_seen_at = alert.last_seen_at.max(at);
                    alert.count += 1;
                    if !self.touched.contains(&index) {
                        self.touched.push(index);
                    }
                }
            }
            (Some(message), None) => {
                let index = self.push(subject, at, after, message);
                changes.push((Change::Opened, self.alerts[index].clone()));
            }
            (None, Some(index)) => self.resolve(index, at, &mut changes),
            (None, None) => {}
        }
        changes
    }

    /// The variance goal, in per cent.
    pub fn variance_goal(&self) -> f64 {
        self.settings.variance_goal
    }

    /// Opens an alert about a condition, unless its subject has one unresolved.
    fn open(
        &mut self,
        subject: Subject,
        event: &KegEvent,
        at: Timestamp,
        after: u64,
        changes: &mut Vec<(Change, Alert)>,
    ) {
        if self.unresolved_of(&subject).is_some() {
            return;
        }
        let message = condition_message(subject.kind, event);
        let index = self.push(subject, at, after, message);
        changes.push((Change::Opened, self.alerts[index].clone()));
    }

    /// One more event about `subject`: it joins the unresolved alert (said later, with
    /// others, by [`Alerts::take_updates`]: a burst of flagged pours is not a frame each),
    /// or opens one.
    fn seen(
        &mut self,
        subject: &Subject,
        at: Timestamp,
        pour: u64,
        changes: &mut Vec<(Change, Alert)>,
    ) {
        if let Some(index) = self.unresolved_of(subject) {
            let alert = &mut self.alerts[index];
            alert.count += 1;
            alert.last_seen_at = alert.last_seen_at.max(at);
            alert.last_pour_id = pour;
            // Its message (which counts) is written when it is read: not once a pour.
            // A short list: the alerts a burst touches are a few taps' worth.
            if !self.touched.contains(&index) {
                self.touched.push(index);
            }
            return;
        }
        let index = self.push(subject.clone(), at, pour, events_message(subject, 1));
        changes.push((Change::Opened, self.view(index)));
    }

    fn push(&mut self, subject: Subject, at: Timestamp, pour: u64, message: String) -> usize {
        let index = self.alerts.len();
        self.alerts.push(Alert {
            id: index as u64 + 1,
            kind: subject.kind,
            severity: subject.kind.severity(),
            state: AlertState::Open,
            venue: subject.venue.clone(),
            tap_id: subject.tap_id,
            keg_id: subject.keg_id,
            flag: subject.flag,
            server: None,
            webhook_id: subject.webhook_id,
            day: subject.day.clone(),
            sensor: subject.sensor.clone(),
            count: 1,
            message,
            opened_at: at,
            last_seen_at: at,
            last_pour_id: pour,
            acknowledged_at: None,
            acknowledged_by: None,
            note: None,
            resolved_at: None,
        });
        self.unresolved.push((subject, index));
        index
    }

    /// Resolves the unresolved alert of `subject`, if there is one.
    fn clear(&mut self, subject: Subject, at: Timestamp, changes: &mut Vec<(Change, Alert)>) {
        if let Some(index) = self.unresolved_of(&subject) {
            self.resolve(index, at, changes);
        }
    }

    fn resolve(&mut self, index: usize, at: Timestamp, changes: &mut Vec<(Change, Alert)>) {
        let alert = &mut self.alerts[index];
        alert.state = AlertState::Resolved;
        alert.resolved_at = Some(at);
        self.unresolved.retain(|&(_, i)| i != index);
        changes.push((Change::Resolved, self.view(index)));
    }

    fn unresolved_of(&self, subject: &Subject) -> Option<usize> {
        self.unresolved
            .iter()
            .find(|(s, _)| s == subject)
            .map(|&(_, i)| i)
    }

    /// The alert at `index`, as readers see it.
    fn view(&self, index: usize) -> Alert {
        self.alerts[index].read()
    }

    fn unresolved_index(&self, id: u64) -> Option<usize> {
        let index = usize::try_from(id.checked_sub(1)?).ok()?;
        let alert = self.alerts.get(index)?;
        (alert.state != AlertState::Resolved).then_some(index)
    }

    /// The unresolved alerts that grouped more events since the last call, as they are
    /// now: what to publish as `updated` (live only; a resolved one said its last word).
    pub fn take_updates(&mut self) -> Vec<Alert> {
        let touched = std::mem::take(&mut self.touched);
        touched
            .into_iter()
            .filter(|&i| self.alerts[i].state != AlertState::Resolved)
            .map(|i| self.view(i))
            .collect()
    }

    /// Whether `op` (an acknowledgement or a closing) applies now; the alert's id.
    pub fn check(&self, op: &KegOp) -> Result<u64, KegError> {
        let alert_id = match op {
            KegOp::AckAlert { alert_id, .. } | KegOp::CloseAlert { alert_id, .. } => alert_id,
            // Opens one unless one is open: logged either way, it changes nothing twice.
            KegOp::WebhookDown { .. } => return Ok(0),
            KegOp::WebhookUp { webhook_id, .. } => {
                return self
                    .unresolved_of(&Subject::webhook(*webhook_id))
                    .map(|i| self.alerts[i].id)
                    .ok_or(KegError::NoAlert(0));
            }
            // Once a change: every server looks, the first to say it is kept.
            KegOp::Temperature {
                venue,
                tap_id,
                sensor,
                condition,
                ..
            } => {
                let venue = venue.clone().unwrap_or_else(|| self.default_venue.clone());
                return match self.sensor_condition(&venue, *tap_id, sensor) == *condition {
                    true => Err(KegError::SensorUnchanged(sensor.clone())),
                    false => Ok(0),
                };
            }
            _ => return Err(KegError::NotAnAlert),
        };
        let alert = self
            .index(*alert_id)
            .map(|i| &self.alerts[i])
            .ok_or(KegError::NoAlert(*alert_id))?;
        match (op, alert.state) {
            (_, AlertState::Resolved) => Err(KegError::AlertResolved(*alert_id)),
            (KegOp::AckAlert { .. }, AlertState::Acknowledged) => {
                Err(KegError::AlertAcknowledged(*alert_id))
            }
            (KegOp::CloseAlert { count, .. }, _)
                if !alert.kind.is_about_events() || alert.count != *count =>
            {
                Err(KegError::NotDue(*alert_id))
            }
            _ => Ok(*alert_id),
        }
    }

    /// The alerts about events that none joined for the window by `now`, with their
    /// counts: what to log as [`KegOp::CloseAlert`].
    pub fn due(&self, now: Timestamp) -> Vec<(u64, u64)> {
        let cutoff = now.millis().saturating_sub(self.settings.window_ms);
        let mut due: Vec<(u64, u64)> = self
            .unresolved
            .iter()
            .map(|&(_, i)| &self.alerts[i])
            .filter(|a| a.kind.is_about_events() && a.last_seen_at.millis() <= cutoff)
            .map(|a| (a.id, a.count))
            .collect();
        due.sort_unstable();
        due
    }

    fn index(&self, id: u64) -> Option<usize> {
        let index = usize::try_from(id.checked_sub(1)?).ok()?;
        (index < self.alerts.len()).then_some(index)
    }

    /// The alert with this id.
    pub fn get(&self, id: u64) -> Option<Alert> {
        self.index(id).map(|i| self.view(i))
    }

    /// The alerts that match, newest first, as kept: give readers [`Alert::read`].
    pub fn list(&self, filter: &AlertFilter) -> impl Iterator<Item = &Alert> {
        let filter = filter.clone();
        self.alerts.iter().rev().filter(move |a| filter.admits(a))
    }

    /// Open alerts (not acknowledged, not resolved) of `venue`, with the chain's (or all).
    fn open_of<'a>(&'a self, venue: Option<&'a str>) -> impl Iterator<Item = &'a Alert> + 'a {
        self.unresolved
            .iter()
            .map(|&(_, i)| &self.alerts[i])
            .filter(|a| a.state == AlertState::Open)
            .filter(move |a| venue.is_none_or(|v| a.venue.as_deref().is_none_or(|a| a == v)))
    }

    /// Open alerts of `kind` about exactly `venue` (none: the chain's).
    pub fn open_of_kind(&self, venue: Option<&str>, kind: AlertKind) -> u64 {
        self.open_of(None)
            .filter(|a| a.kind == kind && a.venue.as_deref() == venue)
            .count() as u64
    }

    /// How many are open (not acknowledged, not resolved) in `venue` (none: all).
    pub fn open_total(&self, venue: Option<&str>) -> u64 {
        self.open_of(venue).count() as u64
    }

    /// Every alert, for a compacted journal (which drops the deleted pours some followed).
    pub fn snapshot(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Takes the alerts of a snapshot in place of those derived so far.
    pub fn restore(&mut self, snapshot: &str) -> Result<(), serde_json::Error> {
        let restored: Alerts = serde_json::from_str(snapshot)?;
        self.alerts = restored.alerts;
        for alert in &mut self.alerts {
            if alert.venue.is_none() && alert.tap_id.is_some() {
                alert.venue = Some(self.default_venue.clone());
            }
        }
        self.unresolved = self
            .alerts
            .iter()
            .enumerate()
            .filter(|(_, a)| a.state != AlertState::Resolved)
            .map(|(i, a)| (subject_of(a), i))
            .collect();
        self.touched.clear();
        Ok(())
    }
}

/// Alerts about one server's own condition (its store cannot write, its disk is nearly
/// full): not in the log, since the log may be what is failing. Kept in memory by the
/// server they are about, which alone shows them; their ids are from [`ServerAlerts::FIRST_ID`]
/// on, apart from the log's.
#[derive(Debug)]
pub struct ServerAlerts {
    server: String,
    /// Unresolved ones, and the last resolved ones (bounded).
    alerts: Vec<Alert>,
    next: u64,
}

/// Resolved server alerts kept for `GET /api/alerts?state=resolved`.
const SERVER_RESOLVED_KEPT: usize = 100;

impl ServerAlerts {
    /// Far above any id the log will give (2^52), and exact in JavaScript's numbers.
    pub const FIRST_ID: u64 = 1 << 52;

    pub fn new(server: String) -> ServerAlerts {
        ServerAlerts {
            server,
            alerts: Vec::new(),
            next: ServerAlerts::FIRST_ID,
        }
    }

    /// The condition `kind` holds now (`message` says how): opens its alert, unless one is
    /// unresolved; the alert opened.
    pub fn raise(&mut self, kind: AlertKind, message: String, now: Timestamp) -> Option<Alert> {
        if let Some(alert) = self.unresolved_mut(kind) {
            alert.last_seen_at = now;
            alert.message = message;
            return None;
        }
        let alert = Alert {
            id: self.next,
            kind,
            severity: kind.severity(),
            state: AlertState::Open,
            venue: None,
            tap_id: None,
            keg_id: None,
            webhook_id: None,
            day: None,
            sensor: None,
            flag: None,
            server: Some(self.server.clone()),
            count: 1,
            message,
            opened_at: now,
            last_seen_at: now,
            last_pour_id: 0,
            acknowledged_at: None,
            acknowledged_by: None,
            note: None,
            resolved_at: None,
        };
        self.next += 1;
        self.alerts.push(alert.clone());
        Some(alert)
    }

    /// The condition `kind` cleared: resolves its alert, if one is unresolved.
    pub fn clear(&mut self, kind: AlertKind, now: Timestamp) -> Option<Alert> {
        let alert = self.unresolved_mut(kind)?;
        alert.state = AlertState::Resolved;
        alert.resolved_at = Some(now);
        let resolved = alert.clone();
        let kept = self
            .alerts
            .iter()
            .filter(|a| a.state == AlertState::Resolved)
            .count();
        if kept > SERVER_RESOLVED_KEPT
            && let Some(oldest) = self
                .alerts
                .iter()
                .position(|a| a.state == AlertState::Resolved)
        {
            self.alerts.remove(oldest);
        }
        Some(resolved)
    }

    fn unresolved_mut(&mut self, kind: AlertKind) -> Option<&mut Alert> {
        self.alerts
            .iter_mut()
            .find(|a| a.kind == kind && a.state != AlertState::Resolved)
    }

    /// Acknowledges alert `id`, as [`KegOp::AckAlert`] does a logged one.
    pub fn acknowledge(
        &mut self,
        id: u64,
        by: Option<String>,
        note: Option<String>,
        now: Timestamp,
    ) -> Result<Alert, KegError> {
        let alert = self
            .alerts
            .iter_mut()
            .find(|a| a.id == id)
            .ok_or(KegError::NoAlert(id))?;
        match alert.state {
            AlertState::Resolved => Err(KegError::AlertResolved(id)),
            AlertState::Acknowledged => Err(KegError::AlertAcknowledged(id)),
            AlertState::Open => {
                alert.state = AlertState::Acknowledged;
                alert.acknowledged_at = Some(now);
                alert.acknowledged_by = by;
                alert.note = note;
                Ok(alert.clone())
            }
        }
    }

    /// The alert with this id.
    pub fn get(&self, id: u64) -> Option<&Alert> {
        self.alerts.iter().find(|a| a.id == id)
    }

    /// Those that match, newest first.
    pub fn list(&self, filter: &AlertFilter) -> impl Iterator<Item = &Alert> {
        let filter = filter.clone();
        self.alerts.iter().rev().filter(move |a| filter.admits(a))
    }

    /// The unresolved ones, for `/health`.
    pub fn unresolved(&self) -> Vec<Alert> {
        self.alerts
            .iter()
            .filter(|a| a.state != AlertState::Resolved)
            .cloned()
            .collect()
    }

    /// How many of `kind` are open (not acknowledged, not resolved).
    pub fn open(&self, kind: AlertKind) -> u64 {
        self.alerts
            .iter()
            .filter(|a| a.kind == kind && a.state == AlertState::Open)
            .count() as u64
    }
}

/// The kinds of a tap sensor's alerts: one at a time.
const TEMPERATURE_KINDS: [AlertKind; 3] = [
    AlertKind::TooWarm,
    AlertKind::TooHot,
    AlertKind::SensorSilent,
];

fn kind_of(condition: Condition) -> Option<AlertKind> {
    match condition {
        Condition::Fine => None,
        Condition::Warm => Some(AlertKind::TooWarm),
        Condition::Hot => Some(AlertKind::TooHot),
        Condition::Silent => Some(AlertKind::SensorSilent),
    }
}

fn temperature_message(kind: AlertKind, tap: u32, sensor: &str, celsius: Option<f64>) -> String {
    let reads = celsius.map_or(String::new(), |c| format!(": {sensor} reads {c} °C"));
    match kind {
        AlertKind::TooHot => format!("Tap {tap} is too hot{reads}; beer spoils above this"),
        AlertKind::SensorSilent => format!("Tap {tap}: sensor {sensor} has gone silent"),
        _ => format!("Tap {tap} has been too warm for a while{reads}; beer foams"),
    }
}

fn subject_of(alert: &Alert) -> Subject {
    Subject {
        kind: alert.kind,
        venue: alert.venue.clone(),
        tap_id: alert.tap_id,
        keg_id: if alert.kind.is_about_events() {
            None
        } else {
            alert.keg_id
        },
        flag: alert.flag,
        webhook_id: alert.webhook_id,
        day: alert.day.clone(),
        sensor: alert.sensor.clone(),
    }
}

fn condition_message(kind: AlertKind, event: &KegEvent) -> String {
    let keg = &event.keg;
    let tap = event.tap_id;
    match kind {
        AlertKind::KegLow => {
            let left = keg.remaining_ml.max(0.0);
            let left = if left < 1000.0 {
                format!("{left:.0} ml")
            } else {
                format!("{:.1} L", left / 1000.0)
            };
            format!(
                "{} on tap {tap} is low: {} % left ({left})",
                keg.beverage,
                keg.percent.round()
            )
        }
        AlertKind::KegEmpty => format!("{} on tap {tap} is empty", keg.beverage),
        AlertKind::TapQuiet => format!(
            "Tap {tap} ({}) has gone quiet while the bar is open",
            keg.beverage
        ),
        _ => format!("Tap {tap}: {}", kind.name()),
    }
}

fn events_message(subject: &Subject, count: u64) -> String {
    let tap = subject.tap_id.unwrap_or(0);
    let pours = if count == 1 { "pour" } else { "pours" };
    match (subject.kind, subject.flag) {
        (AlertKind::AfterHours, _) => format!("Tap {tap}: {count} {pours} after hours"),
        (_, Some(flag)) => format!("Tap {tap}: {count} {} {pours}", flag_words(flag)),
        _ => format!("Tap {tap}: {count} flagged {pours}"),
    }
}

fn flag_words(flag: Flag) -> &'static str {
    match flag {
        Flag::Tiny => "tiny",
        Flag::Unclassified => "unclassified",
        Flag::OverPour => "over-poured",
        Flag::AfterHours => "after-hours",
        Flag::Burst => "burst",
        Flag::EmptyKeg => "empty-keg",
        Flag::Future => "future-timed",
        Flag::Cleaning => "line-cleaning",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::glass::Catalogue;
    use crate::keg::{Cellar, CellarSettings};
    use crate::pour::Flags;

    const HOUR: i64 = 3_600_000;

    /// Kegs and alerts fed together, as the bar feeds them.
    struct Bar {
        kegs: Cellar,
        alerts: Alerts,
        pours: u64,
    }

    impl Bar {
        fn new() -> Bar {
            Bar {
                kegs: Cellar::new(
                    CellarSettings::new(&Catalogue::default()),
                    crate::venue::Venues::new(crate::venue::Defaults::standalone()),
                ),
                alerts: Alerts::new(
                    AlertSettings {
                        window_ms: HOUR,
                        variance_goal: 2.0,
                    },
                    "main".into(),
                ),
                pours: 0,
            }
        }

        fn op(&mut self, op: KegOp) -> Vec<(Change, Alert)> {
            let checked = if op.is_alert() {
                self.alerts.check(&op)
            } else {
                self.kegs.check(&op)
            };
            assert!(checked.is_ok(), "{op:?}: {checked:?}");
            let events: Vec<_> = self
                .kegs
                .apply_op(&op, self.pours)
                .into_iter()
                .map(Arc::new)
                .collect();
            self.alerts.keg_op(&op, self.pours, &events)
        }

        fn tap(&mut self, tap_id: u32, ml: i64) -> Vec<(Change, Alert)> {
            self.op(KegOp::Tap {
                venue: None,
                tap_id,
                beverage: "Stout".into(),
                size_ul: ml * 1000,
                start_ul: ml * 1000,
                at: Timestamp::from_millis(0),
            })
        }

        fn pour(&mut self, tap_id: u32, ml: f64, at: i64, flags: &[Flag]) -> Vec<(Change, Alert)> {
            self.pours += 1;
            let pour = Pour {
                venue: "main".into(),
                id: self.pours,
                tap_id,
                volume: ml,
                glass: "pint".into(),
                timestamp: Timestamp::from_millis(at),
                flags: flags.iter().fold(Flags::NONE, |f, &flag| f.with(flag)),
            };
            let events: Vec<_> = self
                .kegs
                .poured(&pour, pour.timestamp)
                .into_iter()
                .map(Arc::new)
                .collect();
            self.alerts.poured(&pour, &events)
        }
    }

    fn changes(changes: &[(Change, Alert)]) -> Vec<(Change, AlertKind, u64)> {
        changes.iter().map(|(c, a)| (*c, a.kind, a.id)).collect()
    }

    #[test]
    fn a_keg_goes_low_then_empty_then_a_new_keg_resolves_it() {
        let mut bar = Bar::new();
        bar.tap(1, 1000);
        assert!(bar.pour(1, 800.0, 1, &[]).is_empty());
        let low = bar.pour(1, 100.0, 2, &[]);
        assert_eq!(changes(&low), [(Change::Opened, AlertKind::KegLow, 1)]);
        assert_eq!(
            low[0].1.message,
            "Stout on tap 1 is low: 10 % left (100 ml)"
        );
        assert_eq!(low[0].1.severity, Severity::Warning);
        // Still low: nothing new.
        assert!(bar.pour(1, 50.0, 3, &[]).is_empty());
        let empty = bar.pour(1, 50.0, 4, &[]);
        assert_eq!(
            changes(&empty),
            [
                (Change::Resolved, AlertKind::KegLow, 1),
                (Change::Opened, AlertKind::KegEmpty, 2)
            ]
        );
        assert_eq!(empty[1].1.severity, Severity::Critical);
        let swapped = bar.tap(1, 1000);
        assert_eq!(
            changes(&swapped),
            [(Change::Resolved, AlertKind::KegEmpty, 2)]
        );
        assert_eq!(swapped[0].1.resolved_at, Some(Timestamp::from_millis(0)));
        assert_eq!(bar.alerts.open_total(None), 0);
    }

    #[test]
    fn a_hundred_flagged_pours_are_one_alert_per_tap_and_flag() {
        let mut bar = Bar::new();
        for i in 0..100 {
            bar.pour(1, 700.0, i, &[Flag::OverPour, Flag::Burst]);
        }
        bar.pour(2, 700.0, 100, &[Flag::OverPour]);
        let open: Vec<_> = bar
            .alerts
            .list(&AlertFilter::default())
            .map(|a| (a.tap_id, a.flag, a.count))
            .collect();
        assert_eq!(
            open,
            [
                (Some(2), Some(Flag::OverPour), 1),
                (Some(1), Some(Flag::Burst), 100),
                (Some(1), Some(Flag::OverPour), 100),
            ]
        );
        let one = bar.alerts.get(1).unwrap();
        assert_eq!(one.message, "Tap 1: 100 over-poured pours");
        assert_eq!(one.last_seen_at, Timestamp::from_millis(99));
        // Said as updates once, not once a pour (tap 2's just opened: nothing to add).
        let updated: Vec<_> = bar
            .alerts
            .take_updates()
            .iter()
            .map(|a| (a.id, a.count))
            .collect();
        assert_eq!(updated, [(1, 100), (2, 100)]);
        assert!(bar.alerts.take_updates().is_empty());
    }

    #[test]
    fn an_alert_about_events_closes_after_its_window_and_a_later_one_reopens() {
        let mut bar = Bar::new();
        bar.pour(3, 500.0, 0, &[Flag::AfterHours]);
        bar.pour(3, 500.0, 1000, &[Flag::AfterHours]);
        assert!(bar.alerts.due(Timestamp::from_millis(HOUR)).is_empty());
        assert_eq!(
            bar.alerts.due(Timestamp::from_millis(HOUR + 1000)),
            [(1, 2)]
        );
        // A pour joined after the server looked: the closing no longer applies.
        let stale = KegOp::CloseAlert {
            alert_id: 1,
            count: 1,
            at: Timestamp::from_millis(HOUR + 1000),
        };
        assert_eq!(bar.alerts.check(&stale), Err(KegError::NotDue(1)));
        let closed = bar.op(KegOp::CloseAlert {
            alert_id: 1,
            count: 2,
            at: Timestamp::from_millis(HOUR + 1000),
        });
        assert_eq!(
            changes(&closed),
            [(Change::Resolved, AlertKind::AfterHours, 1)]
        );
        let again = bar.pour(3, 500.0, 2 * HOUR, &[Flag::AfterHours]);
        assert_eq!(
            changes(&again),
            [(Change::Opened, AlertKind::AfterHours, 2)]
        );
    }

    #[test]
    fn an_acknowledged_alert_stays_until_it_resolves_and_is_acknowledged_once() {
        let mut bar = Bar::new();
        bar.tap(1, 1000);
        bar.op(KegOp::Quiet {
            venue: None,
            tap_id: 1,
            last_pour: 0,
            at: Timestamp::from_millis(5),
        });
        let ack = KegOp::AckAlert {
            alert_id: 1,
            by: Some("manager".into()),
            note: Some("on it".into()),
            at: Timestamp::from_millis(6),
        };
        let acked = bar.op(ack.clone());
        assert_eq!(
            changes(&acked),
            [(Change::Acknowledged, AlertKind::TapQuiet, 1)]
        );
        assert_eq!(acked[0].1.acknowledged_by.as_deref(), Some("manager"));
        assert_eq!(bar.alerts.check(&ack), Err(KegError::AlertAcknowledged(1)));
        assert_eq!(bar.alerts.open_total(None), 0, "acknowledged is not open");
        let back = bar.pour(1, 500.0, 7, &[]);
        assert_eq!(changes(&back), [(Change::Resolved, AlertKind::TapQuiet, 1)]);
        assert_eq!(bar.alerts.check(&ack), Err(KegError::AlertResolved(1)));
        assert_eq!(
            bar.alerts.check(&KegOp::AckAlert {
                alert_id: 9,
                by: None,
                note: None,
                at: Timestamp::from_millis(0)
            }),
            Err(KegError::NoAlert(9))
        );
        // A condition does not close by time.
        bar.op(KegOp::Quiet {
            venue: None,
            tap_id: 1,
            last_pour: 1,
            at: Timestamp::from_millis(8),
        });
        assert!(bar.alerts.due(Timestamp::from_millis(10 * HOUR)).is_empty());
    }

    #[test]
    fn a_snapshot_restores_every_alert_and_which_are_unresolved() {
        let mut bar = Bar::new();
        bar.pour(1, 700.0, 0, &[Flag::Tiny]);
        bar.pour(2, 700.0, 0, &[Flag::AfterHours]);
        let snapshot = bar.alerts.snapshot();
        let mut restored = Alerts::new(
            AlertSettings {
                window_ms: HOUR,
                variance_goal: 2.0,
            },
            "main".into(),
        );
        restored.restore(&snapshot).unwrap();
        let all = |a: &Alerts| a.list(&AlertFilter::default()).cloned().collect::<Vec<_>>();
        assert_eq!(all(&restored), all(&bar.alerts));
        bar.alerts = restored;
        // The restored alert is joined, not opened again.
        assert!(bar.pour(1, 700.0, 1, &[Flag::Tiny]).is_empty());
        let updated = bar.alerts.take_updates();
        assert_eq!((updated.len(), updated[0].id, updated[0].count), (1, 1, 2));
    }

    #[test]
    fn a_server_alert_opens_once_while_its_condition_holds_and_resolves_when_it_clears() {
        let mut own = ServerAlerts::new("bar-1".into());
        let at = |ms| Timestamp::from_millis(ms);
        let opened = own
            .raise(AlertKind::DiskLow, "80 KB free".into(), at(1))
            .unwrap();
        assert_eq!(
            (opened.id, opened.server.as_deref()),
            (ServerAlerts::FIRST_ID, Some("bar-1"))
        );
        assert!(
            own.raise(AlertKind::DiskLow, "60 KB free".into(), at(2))
                .is_none()
        );
        assert_eq!(own.get(opened.id).unwrap().message, "60 KB free");
        assert_eq!(own.open(AlertKind::DiskLow), 1);
        let acked = own.acknowledge(opened.id, None, None, at(3)).unwrap();
        assert_eq!(acked.state, AlertState::Acknowledged);
        assert_eq!(own.open(AlertKind::DiskLow), 0);
        assert!(own.clear(AlertKind::StoreFailing, at(4)).is_none());
        assert_eq!(
            own.clear(AlertKind::DiskLow, at(4)).unwrap().state,
            AlertState::Resolved
        );
        assert!(own.unresolved().is_empty());
        let again = own
            .raise(AlertKind::DiskLow, "50 KB free".into(), at(5))
            .unwrap();
        assert_eq!(
            again.id,
            ServerAlerts::FIRST_ID + 1,
            "a recurrence is a new alert"
        );
    }
}
