//! Kegs and taps: what is on each tap, how much is left, and the events a bar manager
//! wants to hear (tapped, low, empty, finished).
//!
//! The [`Cellar`] is a state machine fed the store's log in order: pours, deletions and
//! keg operations. It decides nothing the log does not already say, so every server that
//! reads the same log (a restart, a replica) holds the same kegs, derives the same events
//! at the same places, and announces each once. Operations are checked against it before
//! they are logged ([`Cellar::check`]), so the log holds only operations that apply.
//!
//! Volumes are kept in whole microlitres, so that drawing a pour and giving it back on
//! deletion cancel exactly, whatever the order.
//!
//! A tap is a venue's ([`TapRef`]): each venue numbers its own. The cellar keeps the
//! [`Venues`] too, since their settings (low levels, quiet time, opening hours) are what
//! its kegs and taps are judged by; an operation that names no venue is the default
//! venue's.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::glass::Catalogue;
use crate::pour::{Flag, Pour, TapRef, Timestamp, whole};
use crate::report::TypeTally;
pub use crate::venue::Change;
use crate::venue::{VenueChange, VenueRecord, Venues};

/// A keg size bars order by name.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KegSize {
    pub name: &'static str,
    pub ml: f64,
    pub description: &'static str,
}

/// A US gallon in ml.
const GALLON_ML: f64 = 3_785.411_784;

/// The sizes `POST /api/kegs` takes by name.
pub const SIZES: &[KegSize] = &[
    KegSize {
        name: "half-barrel",
        ml: 15.5 * GALLON_ML,
        description: "US half barrel, 15.5 gal (58.67 L)",
    },
    KegSize {
        name: "quarter-barrel",
        ml: 7.75 * GALLON_ML,
        description: "US quarter barrel, 7.75 gal (29.34 L)",
    },
    KegSize {
        name: "sixth-barrel",
        ml: 31.0 / 6.0 * GALLON_ML,
        description: "US sixth barrel, 5.17 gal (19.56 L)",
    },
    KegSize {
        name: "corny",
        ml: 5.0 * GALLON_ML,
        description: "Cornelius keg, 5 gal (18.93 L)",
    },
    KegSize {
        name: "euro-50",
        ml: 50_000.0,
        description: "European 50 L keg",
    },
    KegSize {
        name: "euro-30",
        ml: 30_000.0,
        description: "European 30 L keg",
    },
    KegSize {
        name: "euro-20",
        ml: 20_000.0,
        description: "European 20 L keg",
    },
];

/// The size called `name`.
pub fn size_named(name: &str) -> Option<&'static KegSize> {
    SIZES.iter().find(|s| s.name == name)
}

pub use crate::pour::microlitres;

fn ml(microlitres: i64) -> f64 {
    microlitres as f64 / 1000.0
}

/// A change to the kegs, as the log records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase")]
pub enum KegOp {
    /// A keg goes on a tap; the tap's previous keg is finished.
    #[serde(rename_all = "camelCase")]
    Tap {
        /// None: the default venue's.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        venue: Option<Arc<str>>,
        tap_id: u32,
        beverage: String,
        size_ul: i64,
        /// What it held when tapped (a part-used keg holds less than its size).
        start_ul: i64,
        at: Timestamp,
    },
    /// A correction: a new beverage name or size, or beer lost (a spill).
    #[serde(rename_all = "camelCase")]
    Correct {
        keg_id: u64,
        beverage: Option<String>,
        size_ul: Option<i64>,
        spill_ul: i64,
        at: Timestamp,
    },
    /// Taken off its tap, with what was found left in it if someone measured.
    #[serde(rename_all = "camelCase")]
    Finish {
        keg_id: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        left_ul: Option<i64>,
        at: Timestamp,
    },
    /// A change to a tap's settings: its name, and the level its kegs are low at (cleared:
    /// as configured).
    #[serde(rename_all = "camelCase")]
    TapSettings {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        venue: Option<Arc<str>>,
        tap_id: u32,
        name: Change<String>,
        low_pct: Change<f64>,
        at: Timestamp,
    },
    /// A tap with a keg on has not poured for the quiet time while the bar was open; its
    /// last pour was `last_pour` (0: none since the keg went on).
    #[serde(rename_all = "camelCase")]
    Quiet {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        venue: Option<Arc<str>>,
        tap_id: u32,
        last_pour: u64,
        at: Timestamp,
    },
    /// Someone has seen an alert: it stays until it resolves, and is not sent again.
    #[serde(rename_all = "camelCase")]
    AckAlert {
        alert_id: u64,
        /// Who: the token's name, if the server has tokens.
        by: Option<String>,
        note: Option<String>,
        at: Timestamp,
    },
    /// An alert about events had none for its window (it had `count` then): it resolves.
    #[serde(rename_all = "camelCase")]
    CloseAlert {
        alert_id: u64,
        count: u64,
        at: Timestamp,
    },
    /// The server disabled a webhook (its receiver is gone, or failed for a day).
    #[serde(rename_all = "camelCase")]
    WebhookDown {
        webhook_id: u64,
        reason: String,
        at: Timestamp,
    },
    /// A webhook the server disabled was enabled again, or deleted.
    #[serde(rename_all = "camelCase")]
    WebhookUp { webhook_id: u64, at: Timestamp },
    /// A tap with no keg and no stored pours (a mistyped tap id, say) is forgotten, its
    /// settings with it, until it pours again.
    #[serde(rename_all = "camelCase")]
    ForgetTap {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        venue: Option<Arc<str>>,
        tap_id: u32,
        at: Timestamp,
    },
    /// A new venue, a bar of the chain ([`crate::venue`] decides it).
    #[serde(rename_all = "camelCase")]
    AddVenue { venue: VenueRecord, at: Timestamp },
    /// A change to a venue's settings.
    #[serde(rename_all = "camelCase")]
    ChangeVenue { change: VenueChange, at: Timestamp },
    /// A tap's line is being cleaned from now (`on`), or no longer: its pours meanwhile
    /// are water, flagged `cleaning`.
    #[serde(rename_all = "camelCase")]
    Cleaning {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        venue: Option<Arc<str>>,
        tap_id: u32,
        on: bool,
        at: Timestamp,
    },
    /// Lines sold at the till, those of an import that were new (the variance ledger
    /// decides which): each row names its venue and item by index in the two tables.
    #[serde(rename_all = "camelCase")]
    Sales {
        venues: Vec<Arc<str>>,
        items: Vec<String>,
        rows: Vec<crate::sales::SoldRow>,
        at: Timestamp,
    },
    /// What one of a till's items pours (none: it maps to nothing any more).
    #[serde(rename_all = "camelCase")]
    MapItem {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        venue: Option<Arc<str>>,
        item: String,
        serving: Option<crate::sales::Serving>,
        at: Timestamp,
    },
    /// A counter device's mark moved ([`crate::meter`] decides it): move `seq` of
    /// `meter`, which counts for a tap; its count goes on from `total`, and a pour ended
    /// makes `pour` (stored under the move's own key).
    #[serde(rename_all = "camelCase")]
    Meter {
        meter: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        venue: Option<Arc<str>>,
        tap_id: u32,
        seq: u64,
        total: f64,
        why: crate::meter::Moved,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pour: Option<crate::meter::MeterPour>,
        /// A rise refused as a fault (ml).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        jump_ml: Option<f64>,
        at: Timestamp,
    },
    /// What a tap sensor's temperatures say changed ([`crate::alert`] decides it): too
    /// warm, too hot or silent opens an alert; fine resolves it.
    #[serde(rename_all = "camelCase")]
    Temperature {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        venue: Option<Arc<str>>,
        tap_id: u32,
        sensor: String,
        condition: crate::temperature::Condition,
        /// The latest reading then (none: silent).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        celsius: Option<f64>,
        at: Timestamp,
    },
}

impl KegOp {
    /// When it was made.
    pub fn at(&self) -> Timestamp {
        // One list of the variants' times (below); operations are rare, a clone is nothing.
        *self.clone().at_mut()
    }

    fn at_mut(&mut self) -> &mut Timestamp {
        match self {
            KegOp::Tap { at, .. }
            | KegOp::Correct { at, .. }
            | KegOp::Finish { at, .. }
            | KegOp::TapSettings { at, .. }
            | KegOp::Quiet { at, .. }
            | KegOp::AckAlert { at, .. }
            | KegOp::CloseAlert { at, .. }
            | KegOp::WebhookDown { at, .. }
            | KegOp::WebhookUp { at, .. }
            | KegOp::ForgetTap { at, .. }
            | KegOp::AddVenue { at, .. }
            | KegOp::ChangeVenue { at, .. }
            | KegOp::Sales { at, .. }
            | KegOp::MapItem { at, .. }
            | KegOp::Meter { at, .. }
            | KegOp::Temperature { at, .. }
            | KegOp::Cleaning { at, .. } => at,
        }
    }

    /// Whether it is about an alert ([`crate::alert`] decides it), not the kegs.
    pub fn is_alert(&self) -> bool {
        matches!(
            self,
            KegOp::AckAlert { .. }
                | KegOp::CloseAlert { .. }
                | KegOp::WebhookDown { .. }
                | KegOp::WebhookUp { .. }
                | KegOp::Temperature { .. }
        )
    }

    /// Whether it is about sales (the variance ledger decides it).
    pub fn is_sales(&self) -> bool {
        matches!(self, KegOp::Sales { .. } | KegOp::MapItem { .. })
    }

    /// Whether it is about a counter device ([`crate::meter`] decides it).
    pub fn is_meter(&self) -> bool {
        matches!(self, KegOp::Meter { .. })
    }

    /// Whether it is about a venue ([`crate::venue`] decides it).
    pub fn is_venue(&self) -> bool {
        matches!(self, KegOp::AddVenue { .. } | KegOp::ChangeVenue { .. })
    }

    /// The tap it is about, if it names one (`default`: the venue of one that names none).
    pub fn tap(&self, default: &Arc<str>) -> Option<TapRef> {
        match self {
            KegOp::Tap { venue, tap_id, .. }
            | KegOp::TapSettings { venue, tap_id, .. }
            | KegOp::Quiet { venue, tap_id, .. }
            | KegOp::ForgetTap { venue, tap_id, .. }
            | KegOp::Cleaning { venue, tap_id, .. } => Some(TapRef {
                venue: venue.clone().unwrap_or_else(|| default.clone()),
                tap_id: *tap_id,
            }),
            _ => None,
        }
    }

    /// The form the log stores.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// An operation from its stored form.
    pub fn from_json(text: &str) -> Option<KegOp> {
        serde_json::from_str(text).ok()
    }

    /// What "the same request" means for a retry with an idempotency key: the operation
    /// but for when it was made.
    pub fn fingerprint(&self) -> String {
        let mut op = self.clone();
        *op.at_mut() = Timestamp::from_millis(0);
        op.to_json()
    }
}

/// Why an operation cannot apply.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum KegError {
    #[error("no keg with id {0}")]
    NotFound(u64),
    #[error("keg {0} is finished; it cannot be changed or finished again")]
    Finished(u64),
    /// The tap is quiet already, has no keg, or poured since.
    #[error("tap {0} is not newly quiet")]
    NotQuiet(u32),
    #[error("no alert with id {0}")]
    NoAlert(u64),
    #[error("alert {0} is resolved")]
    AlertResolved(u64),
    #[error("alert {0} is acknowledged already")]
    AlertAcknowledged(u64),
    /// Its events went on, or it is about a condition: it does not close by time.
    #[error("alert {0} is not due to close")]
    NotDue(u64),
    #[error("not an alert operation")]
    NotAnAlert,
    #[error("no tap {0}")]
    NoTap(u32),
    /// It has a keg on, or stored pours.
    #[error("tap {0} {1}")]
    TapInUse(u32, &'static str),
    #[error("no venue {0:?}")]
    NoVenue(String),
    #[error("venue {0:?} exists already")]
    VenueExists(String),
    /// A venue operation the rules refuse for what it asks (not for the state it meets).
    #[error("{0}")]
    VenueRefused(String),
    /// An operation about sales the rules refuse for what it asks.
    #[error("{0}")]
    Refused(String),
    /// Every line of a sales import was imported before: there is nothing to log.
    #[error("every line was imported before")]
    NothingNew,
    /// Another move of this meter's mark was logged first.
    #[error("meter {0:?} moved since")]
    MeterMoved(String),
    /// The sensor's alerts say so already.
    #[error("sensor {0:?} is in that condition already")]
    SensorUnchanged(String),
}

/// One keg.
#[derive(Debug, Clone, PartialEq)]
struct Keg {
    id: u64,
    tap: TapRef,
    beverage: String,
    size_ul: i64,
    start_ul: i64,
    drawn_ul: i64,
    spilled_ul: i64,
    tapped_at: Timestamp,
    finished_at: Option<Timestamp>,
    /// It takes its tap's pours with ids above this one...
    after_pour: u64,
    /// ...up to this one, once finished.
    until_pour: Option<u64>,
    /// Low and empty are announced once in a keg's life.
    low_announced: bool,
    empty_announced: bool,
    /// Its pours: how many, how many flagged, and by glass (pours, µl).
    pours: u64,
    flagged: u64,
    by_glass: Vec<(Arc<str>, u64, i64)>,
    /// What was found left in it when it was finished, if someone measured.
    left_ul: Option<i64>,
}

impl Keg {
    fn yields(&self) -> KegYield {
        let left = self
            .finished_at
            .map(|_| self.left_ul.unwrap_or(self.remaining_ul().max(0)));
        let mut by_glass = self.by_glass.clone();
        by_glass.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let pct = |part: i64, whole: i64| {
            if whole > 0 {
                (part as f64 * 10_000.0 / whole as f64).round() / 100.0
            } else {
                0.0
            }
        };
        KegYield {
            poured_ml: ml(self.drawn_ul),
            pours: self.pours,
            by_type: by_glass
                .into_iter()
                .map(|(glass, pours, ul)| TypeTally {
                    glass,
                    pours,
                    volume_ml: ml(ul),
                })
                .collect(),
            flagged_pours: self.flagged,
            spilled_ml: ml(self.spilled_ul),
            yield_pct: pct(self.drawn_ul, self.start_ul),
            left_ml: left.map(ml),
            left_measured: self.finished_at.is_some() && self.left_ul.is_some(),
            unaccounted_ml: left
                .map(|left| ml(self.start_ul - self.drawn_ul - self.spilled_ul - left)),
            days_on_tap: self.finished_at.map(|end| {
                ((end.millis() - self.tapped_at.millis()) as f64 / 864_000.0).round() / 100.0
            }),
        }
    }

    /// Counts a pour it gave (`sign` 1) or takes one back (-1).
    fn count(&mut self, pour: &Pour, sign: i64) {
        // Water through the line: not the keg's.
        if pour.flags.contains(Flag::Cleaning) {
            return;
        }
        let volume = sign * microlitres(pour.volume);
        self.drawn_ul += volume;
        self.pours = self.pours.saturating_add_signed(sign);
        if !pour.flags.is_empty() {
            self.flagged = self.flagged.saturating_add_signed(sign);
        }
        match self
            .by_glass
            .iter()
            .position(|(g, _, _)| **g == *pour.glass)
        {
            Some(at) => {
                let glass = &mut self.by_glass[at];
                glass.1 = glass.1.saturating_add_signed(sign);
                glass.2 += volume;
                if glass.1 == 0 {
                    self.by_glass.remove(at);
                }
            }
            None if sign > 0 => self.by_glass.push((pour.glass.clone(), 1, volume)),
            None => {}
        }
    }

    fn remaining_ul(&self) -> i64 {
        self.start_ul - self.drawn_ul - self.spilled_ul
    }

    fn holds(&self, pour: &Pour) -> bool {
        pour.tap_id == self.tap.tap_id
            && *pour.venue == *self.tap.venue
            && pour.id > self.after_pour
            && self.until_pour.is_none_or(|until| pour.id <= until)
    }
}

/// A keg as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KegView {
    pub id: u64,
    /// The venue whose tap it is on.
    #[schema(value_type = String)]
    pub venue: Arc<str>,
    pub tap_id: u32,
    pub beverage: String,
    /// The keg's size in ml.
    pub size_ml: f64,
    /// What it held when tapped, in ml (less than its size if it was part-used).
    pub start_ml: f64,
    /// Drawn by stored pours (a deleted pour gives its volume back).
    pub drawn_ml: f64,
    /// Lost, as corrections reported.
    pub spilled_ml: f64,
    /// What is left: start, less drawn and spilled; below 0 when more was poured than
    /// the keg's stated size allows (its size is wrong).
    pub remaining_ml: f64,
    /// Remaining as a percentage of the size, 0 to 100.
    pub percent: f64,
    /// Whole servings of each glass with a nominal serving left.
    pub servings_left: Vec<Servings>,
    /// `current` while on its tap, else `finished`.
    pub status: &'static str,
    /// At or under the low level.
    pub low: bool,
    /// Nothing left.
    pub empty: bool,
    #[schema(value_type = String, format = DateTime)]
    pub tapped_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<Timestamp>,
    /// What it gave: its pours, by glass, and (once finished) what was left and what
    /// no pour, spill or remainder accounts for.
    #[serde(rename = "yield")]
    pub yields: KegYield,
}

/// What a keg gave.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KegYield {
    /// The volume of its stored pours (as `drawnMl`).
    pub poured_ml: f64,
    pub pours: u64,
    /// Its pours by glass, the most poured first: the servings it gave.
    pub by_type: Vec<TypeTally>,
    /// Its pours with at least one flag.
    pub flagged_pours: u64,
    pub spilled_ml: f64,
    /// Poured as a percentage of what it held when tapped (`startMl`).
    pub yield_pct: f64,
    /// Finished: what was left in it, as measured when it was finished (`leftMl`) or,
    /// if nobody measured, as the meters say (remaining, at least 0). Else null.
    pub left_ml: Option<f64>,
    /// Whether `leftMl` was measured.
    pub left_measured: bool,
    /// Finished: what it held when tapped, less poured, spilled and left: beer no meter
    /// saw (foam, a leak, a meter reading low), below 0 when the meters saw more than it
    /// held. Else null.
    pub unaccounted_ml: Option<f64>,
    /// Finished: from tapped to finished, in days (two decimals). Else null.
    pub days_on_tap: Option<f64>,
}

/// Servings of one glass.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Servings {
    #[serde(rename = "type")]
    pub glass: String,
    pub servings: u64,
}

/// Something that happened to a keg, or to a tap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum KegEventKind {
    Tapped,
    Corrected,
    Low,
    Empty,
    Finished,
    /// The tap has not poured for the quiet time while the bar was open.
    Quiet,
    /// A quiet tap poured again.
    Back,
}

impl KegEventKind {
    /// Whether it is news of a tap rather than of its keg.
    pub fn is_tap(self) -> bool {
        matches!(self, KegEventKind::Quiet | KegEventKind::Back)
    }
}

/// A keg event: what happened, the keg as it is after, and where in the log it happened.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KegEvent {
    pub kind: KegEventKind,
    /// The bar's events' sequence (keg, tap and alert events), from 1, the same on every
    /// server.
    pub seq: u64,
    /// The id of the last pour before it (the pour that caused it, for low, empty, back).
    pub after: u64,
    #[schema(value_type = String)]
    pub venue: Arc<str>,
    pub tap_id: u32,
    /// The keg, as it is after (for a tap's news, the keg on it).
    pub keg: KegView,
}

/// A tap's latest pours kept to find its last pour again after a deletion.
const LATEST_KEPT: usize = 16;

/// A tap's recent pours, for its pace.
#[derive(Debug, Default, Clone)]
struct TapLog {
    /// Live pours of the last hour by pour timestamp: (timestamp, id, µl).
    recent: VecDeque<(Timestamp, u64, i64)>,
    /// The latest timestamp of the tap's stored pours, those flagged `future` aside.
    last_pour: Option<Timestamp>,
    /// Its latest stored pours by timestamp, `future` ones aside, oldest first: what
    /// `last_pour` falls back to when the latest is deleted. Bounded: past [`LATEST_KEPT`]
    /// deletions in a row, `last_pour` stays where it was.
    latest: Vec<(Timestamp, u64, i64)>,
    /// Its last pour's id.
    last_pour_id: u64,
    pours: u64,
    /// Announced quiet, and not poured since.
    quiet: bool,
    /// Its line is being cleaned: its pours are water.
    cleaning: bool,
    /// Its settings.
    name: Option<String>,
    low_pct: Option<f64>,
}

/// A tap as `GET /api/taps` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TapView {
    #[schema(value_type = String)]
    pub venue: Arc<str>,
    pub tap_id: u32,
    /// Its name, if one was given.
    pub name: Option<String>,
    /// The level its kegs are low at, in per cent of their size.
    pub low_percent: f64,
    /// Its current keg, if one is tapped.
    pub keg: Option<KegView>,
    /// ml poured in the last hour.
    pub pace_ml_per_hour: f64,
    /// When the current keg runs out at that pace; none without a keg or a pace.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub forecast_empty_at: Option<Timestamp>,
    /// The latest timestamp the tap reported a pour at (deleted pours included: the tap
    /// did pour them).
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_pour_at: Option<Timestamp>,
    /// A keg is on, the bar is open, and nothing has poured for the quiet time.
    pub quiet: bool,
    /// Its line is being cleaned (`POST /api/taps/{tapId}/cleaning`): its pours are
    /// water, flagged `cleaning`. Only shown while true.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub cleaning: bool,
    /// Its temperature sensors' latest readings (of the last day), if it has any.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub temperatures: Vec<crate::temperature::SensorNow>,
}

/// What the kegs have announced, so that a log whose deleted pours were dropped
/// (compaction) announces nothing twice: the event count, and (keg, low, empty) for each
/// keg that announced something.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Marks {
    pub events: u64,
    #[serde(default)]
    pub announced: Vec<(u64, bool, bool)>,
}

/// Settings.
#[derive(Debug, Clone)]
pub struct CellarSettings {
    /// (glass, nominal µl) for servings left.
    pub servings: Vec<(String, i64)>,
}

impl CellarSettings {
    pub fn new(catalogue: &Catalogue) -> CellarSettings {
        CellarSettings {
            servings: catalogue
                .glasses()
                .iter()
                .filter_map(|g| Some((g.name.to_string(), microlitres(g.nominal?))))
                .filter(|(_, ul)| *ul > 0)
                .collect(),
        }
    }
}

const HOUR_MS: i64 = 3_600_000;

/// Which kegs a list shows.
#[derive(Debug, Clone, Default)]
pub struct KegFilter {
    pub venue: Option<Arc<str>>,
    pub tap_id: Option<u32>,
    /// Only finished kegs (true) or only current ones (false).
    pub finished: Option<bool>,
    /// Only kegs on tap at some moment from `from` to `to`.
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
}

/// Every keg and tap, as the log says.
#[derive(Debug)]
pub struct Cellar {
    settings: CellarSettings,
    venues: Venues,
    kegs: Vec<Keg>,
    /// Each tap's current keg (an index into `kegs`).
    current: BTreeMap<TapRef, usize>,
    taps: BTreeMap<TapRef, TapLog>,
    /// The last pour id the log has reached.
    last_pour: u64,
    /// Kegs by tap, for finding the keg a deleted pour drew from.
    by_tap: HashMap<TapRef, Vec<usize>>,
}

impl Cellar {
    pub fn new(settings: CellarSettings, venues: Venues) -> Cellar {
        Cellar {
            settings,
            venues,
            kegs: Vec::new(),
            current: BTreeMap::new(),
            taps: BTreeMap::new(),
            last_pour: 0,
            by_tap: HashMap::new(),
        }
    }

    /// Whether `op` applies now; the id the keg it makes or changes has.
    pub fn check(&self, op: &KegOp) -> Result<u64, KegError> {
        match op {
            // Not the kegs' business: the alerts, the venues and the ledger decide them.
            KegOp::AckAlert { .. }
            | KegOp::CloseAlert { .. }
            | KegOp::WebhookDown { .. }
            | KegOp::WebhookUp { .. }
            | KegOp::AddVenue { .. }
            | KegOp::ChangeVenue { .. }
            | KegOp::Sales { .. }
            | KegOp::Meter { .. }
            | KegOp::Temperature { .. }
            | KegOp::MapItem { .. } => Ok(0),
            KegOp::Tap { .. } => {
                self.venue_of(op)?;
                Ok(self.kegs.len() as u64 + 1)
            }
            // Settings apply to any tap; the keg on it, if any, is what they touch.
            KegOp::TapSettings { .. } => {
                let tap = self.venue_of(op)?;
                Ok(self.current.get(&tap).map_or(0, |&k| self.kegs[k].id))
            }
            KegOp::Quiet { last_pour, .. } => {
                let tap = self.venue_of(op)?;
                let not_quiet = || KegError::NotQuiet(tap.tap_id);
                let keg = self.current.get(&tap).ok_or_else(not_quiet)?;
                let log = self.taps.get(&tap);
                let announced = log.is_some_and(|t| t.quiet);
                let poured = log.map_or(0, |t| t.last_pour_id);
                if announced || poured != *last_pour {
                    return Err(not_quiet());
                }
                Ok(self.kegs[*keg].id)
            }
            // Any tap of an existing venue may be cleaned, with a keg on or not.
            KegOp::Cleaning { .. } => {
                let tap = self.venue_of(op)?;
                Ok(self.current.get(&tap).map_or(0, |&k| self.kegs[k].id))
            }
            KegOp::ForgetTap { .. } => {
                let tap = self.venue_of(op)?;
                if !self.known(&tap) {
                    return Err(KegError::NoTap(tap.tap_id));
                }
                if self.current.contains_key(&tap) {
                    return Err(KegError::TapInUse(
                        tap.tap_id,
                        "has a keg on: finish it first",
                    ));
                }
                if self.taps.get(&tap).is_some_and(|t| t.pours > 0) {
                    return Err(KegError::TapInUse(
                        tap.tap_id,
                        "has stored pours: delete them first",
                    ));
                }
                Ok(0)
            }
            KegOp::Correct { keg_id, .. } | KegOp::Finish { keg_id, .. } => {
                let keg = self.keg(*keg_id).ok_or(KegError::NotFound(*keg_id))?;
                match (op, keg.finished_at) {
                    // A finished keg's name or size may still be put right; nothing else.
                    (KegOp::Correct { spill_ul: 0, .. }, _) | (_, None) => Ok(*keg_id),
                    _ => Err(KegError::Finished(*keg_id)),
                }
            }
        }
    }

    /// The tap `op` names, in a venue that exists.
    fn venue_of(&self, op: &KegOp) -> Result<TapRef, KegError> {
        let tap = op
            .tap(self.venues.default_id())
            .ok_or(KegError::NotAnAlert)?;
        match self.venues.exists(&tap.venue) {
            true => Ok(tap),
            false => Err(KegError::NoVenue(tap.venue.to_string())),
        }
    }

    fn keg(&self, id: u64) -> Option<&Keg> {
        self.kegs.get(usize::try_from(id.checked_sub(1)?).ok()?)
    }

    /// The venues.
    pub fn venues(&self) -> &Venues {
        &self.venues
    }

    /// The tap `tap_id` of the venue stored as `venue` (none: the default venue).
    pub fn tap_ref(&self, venue: Option<&Arc<str>>, tap_id: u32) -> TapRef {
        TapRef {
            venue: self.venues.named(venue).clone(),
            tap_id,
        }
    }

    /// Whether a keg is on `tap`.
    pub fn has_keg(&self, tap: &TapRef) -> bool {
        self.current.contains_key(tap)
    }

    /// Whether the current keg of `tap` has nothing left once `pending` µl more are drawn
    /// (pours decided but not yet applied).
    pub fn empty_before(&self, tap: &TapRef, pending: i64) -> bool {
        self.current
            .get(tap)
            .is_some_and(|&k| self.kegs[k].remaining_ul() - pending <= 0)
    }

    /// Applies a logged operation at its place (after pour `after`); the events it makes.
    pub fn apply_op(&mut self, op: &KegOp, after: u64) -> Vec<KegEvent> {
        self.last_pour = self.last_pour.max(after);
        let mut events = Vec::new();
        let tap = op.tap(self.venues.default_id());
        match op {
            KegOp::Tap {
                beverage,
                size_ul,
                start_ul,
                at,
                ..
            } => {
                let Some(tap) = tap else { return events };
                if let Some(previous) = self.current.remove(&tap) {
                    self.finish(previous, *at, after, &mut events);
                }
                // Someone is at the tap: it is not quiet.
                self.taps.entry(tap.clone()).or_default().quiet = false;
                let index = self.kegs.len();
                self.kegs.push(Keg {
                    id: index as u64 + 1,
                    tap: tap.clone(),
                    beverage: beverage.clone(),
                    size_ul: *size_ul,
                    start_ul: *start_ul,
                    drawn_ul: 0,
                    spilled_ul: 0,
                    tapped_at: *at,
                    finished_at: None,
                    after_pour: after,
                    until_pour: None,
                    low_announced: false,
                    empty_announced: false,
                    pours: 0,
                    flagged: 0,
                    by_glass: Vec::new(),
                    left_ul: None,
                });
                self.current.insert(tap.clone(), index);
                self.by_tap.entry(tap).or_default().push(index);
                events.push(self.event(KegEventKind::Tapped, index));
                self.levels(index, &mut events);
            }
            KegOp::Correct {
                keg_id,
                beverage,
                size_ul,
                spill_ul,
                ..
            } => {
                let Some(index) = self.index(*keg_id) else {
                    return events;
                };
                let keg = &mut self.kegs[index];
                if let Some(beverage) = beverage {
                    keg.beverage = beverage.clone();
                }
                if let Some(size) = size_ul {
                    // A keg tapped full is still full at its corrected size.
                    if keg.start_ul == keg.size_ul {
                        keg.start_ul = *size;
                    }
                    keg.size_ul = *size;
                }
                keg.spilled_ul += spill_ul;
                events.push(self.event(KegEventKind::Corrected, index));
                self.levels(index, &mut events);
            }
            KegOp::Finish {
                keg_id,
                left_ul,
                at,
            } => {
                if let Some(index) = self.index(*keg_id) {
                    if self.kegs[index].finished_at.is_none() {
                        self.kegs[index].left_ul = *left_ul;
                    }
                    let tap = self.kegs[index].tap.clone();
                    if self.current.get(&tap) == Some(&index) {
                        self.current.remove(&tap);
                        self.taps.entry(tap).or_default().quiet = false;
                    }
                    self.finish(index, *at, after, &mut events);
                }
            }
            KegOp::TapSettings { name, low_pct, .. } => {
                let Some(tap) = tap else { return events };
                let log = self.taps.entry(tap.clone()).or_default();
                name.apply(&mut log.name);
                low_pct.apply(&mut log.low_pct);
                // The keg on it may be low at its new level.
                if let Some(&index) = self.current.get(&tap) {
                    self.levels(index, &mut events);
                }
            }
            KegOp::Quiet { .. } => {
                let Some(tap) = tap else { return events };
                if let Some(&index) = self.current.get(&tap) {
                    self.taps.entry(tap).or_default().quiet = true;
                    events.push(self.event(KegEventKind::Quiet, index));
                }
            }
            KegOp::ForgetTap { .. } => {
                if let Some(tap) = tap {
                    self.taps.remove(&tap);
                }
            }
            KegOp::Cleaning { on, .. } => match (tap, on) {
                (Some(tap), true) => self.taps.entry(tap).or_default().cleaning = true,
                // A tap never cleaned is not made known by stopping.
                (Some(tap), false) => {
                    if let Some(log) = self.taps.get_mut(&tap) {
                        log.cleaning = false;
                    }
                }
                (None, _) => {}
            },
            KegOp::Sales { .. }
            | KegOp::MapItem { .. }
            | KegOp::Meter { .. }
            | KegOp::Temperature { .. } => {}
            KegOp::AddVenue { venue, .. } => self.venues.add(venue),
            KegOp::ChangeVenue { change, .. } => {
                self.venues.change(change);
                // Its kegs may be low at its new level.
                let on: Vec<usize> = self
                    .current
                    .iter()
                    .filter(|(tap, _)| *tap.venue == *change.id)
                    .map(|(_, &index)| index)
                    .collect();
                for index in on {
                    self.levels(index, &mut events);
                }
            }
            KegOp::AckAlert { .. }
            | KegOp::CloseAlert { .. }
            | KegOp::WebhookDown { .. }
            | KegOp::WebhookUp { .. } => {}
        }
        events
    }

    fn index(&self, id: u64) -> Option<usize> {
        let index = usize::try_from(id.checked_sub(1)?).ok()?;
        (index < self.kegs.len()).then_some(index)
    }

    fn finish(&mut self, index: usize, at: Timestamp, after: u64, events: &mut Vec<KegEvent>) {
        let keg = &mut self.kegs[index];
        if keg.finished_at.is_some() {
            return;
        }
        keg.finished_at = Some(at);
        keg.until_pour = Some(after);
        events.push(self.event(KegEventKind::Finished, index));
    }

    /// Draws a stored pour from its tap's keg, at `now`; the events it causes.
    pub fn poured(&mut self, pour: &Pour, now: Timestamp) -> Vec<KegEvent> {
        self.last_pour = self.last_pour.max(pour.id);
        let volume = microlitres(pour.volume);
        let tap_ref = pour.tap();
        let tap = self.taps.entry(tap_ref.clone()).or_default();
        tap.pours += 1;
        // A device whose clock is ahead must not make its tap's last pour one yet to come.
        if !pour.flags.contains(Flag::Future) {
            let at = tap
                .latest
                .partition_point(|&(t, id, _)| (t, id) < (pour.timestamp, pour.id));
            tap.latest.insert(at, (pour.timestamp, pour.id, volume));
            if tap.latest.len() > LATEST_KEPT {
                tap.latest.remove(0);
            }
            tap.last_pour = tap.last_pour.max(Some(pour.timestamp));
        }
        tap.last_pour_id = pour.id;
        let back = std::mem::take(&mut tap.quiet);
        // Only the last hour counts for the pace (a pour timed in the future waits its turn).
        let hour_ago = now.millis() - HOUR_MS;
        if pour.timestamp.millis() > hour_ago && !pour.flags.contains(Flag::Cleaning) {
            tap.recent.push_back((pour.timestamp, pour.id, volume));
        }
        while tap
            .recent
            .front()
            .is_some_and(|(t, _, _)| t.millis() <= hour_ago)
        {
            tap.recent.pop_front();
        }
        let mut events = Vec::new();
        if let Some(&index) = self.current.get(&tap_ref) {
            if back {
                events.push(self.event(KegEventKind::Back, index));
            }
            self.kegs[index].count(pour, 1);
            self.levels(index, &mut events);
        }
        events
    }

    /// Gives a deleted pour's volume back to the keg it drew from.
    pub fn deleted(&mut self, pour: &Pour) {
        let tap_ref = pour.tap();
        if let Some(tap) = self.taps.get_mut(&tap_ref) {
            tap.recent.retain(|(_, id, _)| *id != pour.id);
            tap.pours = tap.pours.saturating_sub(1);
            let before = tap.latest.len();
            tap.latest.retain(|&(_, id, _)| id != pour.id);
            if tap.latest.len() < before || tap.pours == 0 {
                tap.last_pour = match tap.latest.last() {
                    Some(&(t, _, _)) => Some(t),
                    None if tap.pours == 0 => None,
                    // More of its latest pours deleted than are kept: the last known.
                    None => tap.last_pour,
                };
            }
        }
        let kegs = self.by_tap.get(&tap_ref).map_or(&[][..], Vec::as_slice);
        if let Some(&index) = kegs.iter().rev().find(|&&k| self.kegs[k].holds(pour)) {
            self.kegs[index].count(pour, -1);
        }
    }

    /// Announces low and empty, each once in a keg's life.
    fn levels(&mut self, index: usize, events: &mut Vec<KegEvent>) {
        let keg = &self.kegs[index];
        let low_ul = self.low_ul(keg);
        let (remaining, low_done, empty_done) =
            (keg.remaining_ul(), keg.low_announced, keg.empty_announced);
        if remaining <= low_ul && !low_done {
            self.kegs[index].low_announced = true;
            events.push(self.event(KegEventKind::Low, index));
        }
        if remaining <= 0 && !empty_done {
            self.kegs[index].empty_announced = true;
            events.push(self.event(KegEventKind::Empty, index));
        }
    }

    /// The level (µl) `keg` is low at: its tap's setting, else its venue's.
    fn low_ul(&self, keg: &Keg) -> i64 {
        whole(keg.size_ul as f64 * self.low_pct(&keg.tap) / 100.0)
    }

    fn low_pct(&self, tap: &TapRef) -> f64 {
        self.taps
            .get(tap)
            .and_then(|t| t.low_pct)
            .unwrap_or_else(|| self.venues.rules(&tap.venue).keg_low_percent)
    }

    /// An event about the keg at `index`, yet to be numbered (the bar's events share one
    /// sequence: see [`crate::bar`]).
    fn event(&self, kind: KegEventKind, index: usize) -> KegEvent {
        KegEvent {
            kind,
            seq: 0,
            after: self.last_pour,
            venue: self.kegs[index].tap.venue.clone(),
            tap_id: self.kegs[index].tap.tap_id,
            keg: self.view(index),
        }
    }

    fn view(&self, index: usize) -> KegView {
        let keg = &self.kegs[index];
        let remaining = keg.remaining_ul();
        let percent = if keg.size_ul > 0 {
            (remaining.max(0) as f64 * 10_000.0 / keg.size_ul as f64).round() / 100.0
        } else {
            0.0
        };
        let low_ul = self.low_ul(keg);
        KegView {
            id: keg.id,
            venue: keg.tap.venue.clone(),
            tap_id: keg.tap.tap_id,
            beverage: keg.beverage.clone(),
            size_ml: ml(keg.size_ul),
            start_ml: ml(keg.start_ul),
            drawn_ml: ml(keg.drawn_ul),
            spilled_ml: ml(keg.spilled_ul),
            remaining_ml: ml(remaining),
            percent: percent.min(100.0),
            servings_left: self
                .settings
                .servings
                .iter()
                .map(|(glass, nominal)| Servings {
                    glass: glass.clone(),
                    servings: u64::try_from(remaining.max(0) / nominal).unwrap_or(0),
                })
                .collect(),
            status: if keg.finished_at.is_some() {
                "finished"
            } else {
                "current"
            },
            low: remaining <= low_ul,
            empty: remaining <= 0,
            tapped_at: keg.tapped_at,
            finished_at: keg.finished_at,
            yields: keg.yields(),
        }
    }

    /// What has been announced (the event count is the bar's to fill in).
    pub fn marks(&self) -> Marks {
        Marks {
            events: 0,
            announced: self
                .kegs
                .iter()
                .filter(|k| k.low_announced || k.empty_announced)
                .map(|k| (k.id, k.low_announced, k.empty_announced))
                .collect(),
        }
    }

    /// Takes back what was announced before the log was compacted.
    pub fn restore(&mut self, marks: &Marks) {
        for &(id, low, empty) in &marks.announced {
            if let Some(index) = self.index(id) {
                let keg = &mut self.kegs[index];
                keg.low_announced |= low;
                keg.empty_announced |= empty;
            }
        }
    }

    /// The id of the keg `pour` drew from (0: none was on its tap).
    pub fn keg_of(&self, pour: &Pour) -> u64 {
        let kegs = self.by_tap.get(&pour.tap()).map_or(&[][..], Vec::as_slice);
        kegs.iter()
            .rev()
            .find(|&&k| self.kegs[k].holds(pour))
            .map_or(0, |&k| self.kegs[k].id)
    }

    /// Whether `tap`'s line is being cleaned: its pours are water.
    pub fn cleaning(&self, tap: &TapRef) -> bool {
        self.taps.get(tap).is_some_and(|t| t.cleaning)
    }

    /// The beverage of the keg with this id.
    pub fn beverage(&self, id: u64) -> Option<String> {
        self.index(id).map(|i| self.kegs[i].beverage.clone())
    }

    /// The keg with this id.
    pub fn get(&self, id: u64) -> Option<KegView> {
        self.index(id).map(|i| self.view(i))
    }

    /// Kegs in id order, as `filter` says.
    pub fn list(&self, filter: &KegFilter) -> Vec<KegView> {
        self.kegs
            .iter()
            .enumerate()
            .filter(|(_, k)| filter.venue.as_deref().is_none_or(|v| *k.tap.venue == *v))
            .filter(|(_, k)| filter.tap_id.is_none_or(|t| k.tap.tap_id == t))
            .filter(|(_, k)| filter.finished.is_none_or(|f| k.finished_at.is_some() == f))
            .filter(|(_, k)| filter.to.is_none_or(|to| k.tapped_at <= to))
            .filter(|(_, k)| {
                filter
                    .from
                    .is_none_or(|from| k.finished_at.is_none_or(|end| end >= from))
            })
            .map(|(i, _)| self.view(i))
            .collect()
    }

    /// Whether the log knows `tap` (a keg on it, a pour, settings).
    fn known(&self, tap: &TapRef) -> bool {
        self.taps.contains_key(tap) || self.current.contains_key(tap)
    }

    /// Every tap the log knows (a keg on it, a pour, settings) of `venue` (or of every
    /// venue), by venue and tap id.
    fn tap_refs(&self, venue: Option<&str>) -> Vec<TapRef> {
        let mut taps: Vec<TapRef> = self
            .taps
            .keys()
            .chain(self.current.keys())
            .filter(|tap| venue.is_none_or(|v| *tap.venue == *v))
            .cloned()
            .collect();
        taps.sort_unstable();
        taps.dedup();
        taps
    }

    /// What is left on each tap the log knows: (tap, ml and per cent left of its current
    /// keg, or none without one).
    pub fn tap_levels(&self) -> Vec<(TapRef, Option<(f64, f64)>)> {
        self.tap_refs(None)
            .into_iter()
            .map(|tap| {
                let keg = self.current.get(&tap).map(|&i| self.view(i));
                (tap, keg.map(|k| (k.remaining_ml, k.percent)))
            })
            .collect()
    }

    /// The current kegs of `venue` (or of every venue), by venue and tap.
    pub fn current(&self, venue: Option<&str>) -> Vec<KegView> {
        self.current
            .iter()
            .filter(|(tap, _)| venue.is_none_or(|v| *tap.venue == *v))
            .map(|(_, &i)| self.view(i))
            .collect()
    }

    /// The volume of `tap`'s latest stored pour by timestamp (ml), if it still has one.
    pub fn last_pour_ml(&self, tap: &TapRef) -> Option<f64> {
        let &(_, _, ul) = self.taps.get(tap)?.latest.last()?;
        Some(ul as f64 / 1000.0)
    }

    /// The latest timestamp a tap of `venue` (or of any venue) reported a pour at.
    pub fn last_pour_at(&self, venue: Option<&str>) -> Option<Timestamp> {
        self.taps
            .iter()
            .filter(|(tap, _)| venue.is_none_or(|v| *tap.venue == *v))
            .filter_map(|(_, log)| log.last_pour)
            .max()
    }

    /// Whether a tap with a keg on has gone quiet: no pour (nor the keg going on) in its
    /// venue's quiet time, with the venue open now and at its start.
    fn quiet_now(&self, tap: &TapRef, now: Timestamp) -> bool {
        let Some(&index) = self.current.get(tap) else {
            return false;
        };
        let rules = self.venues.rules(&tap.venue);
        let start = now.millis().saturating_sub(rules.quiet_after_ms);
        let last = self.taps.get(tap).and_then(|t| t.last_pour);
        let busy_since = last
            .map_or(i64::MIN, Timestamp::millis)
            .max(self.kegs[index].tapped_at.millis());
        busy_since <= start
            && rules.clock.open_at(now)
            && rules.clock.open_at(Timestamp::from_millis(start))
    }

    /// The taps that went quiet and have not been announced, with their last pour: what
    /// to log as [`KegOp::Quiet`].
    pub fn newly_quiet(&self, now: Timestamp) -> Vec<(TapRef, u64)> {
        self.current
            .keys()
            .filter(|tap| !self.taps.get(tap).is_some_and(|t| t.quiet))
            .filter(|tap| self.quiet_now(tap, now))
            .map(|tap| {
                let last = self.taps.get(tap).map_or(0, |t| t.last_pour_id);
                (tap.clone(), last)
            })
            .collect()
    }

    /// The tap as the API shows it, if it has a keg, has poured or has settings.
    pub fn tap(&mut self, tap: &TapRef, now: Timestamp) -> Option<TapView> {
        if !self.known(tap) {
            return None;
        }
        Some(self.tap_view(tap.clone(), now))
    }

    /// Every tap of `venue` (or of every venue) that has a keg, has poured or has
    /// settings, by venue and tap id.
    pub fn taps(&mut self, venue: Option<&str>, now: Timestamp) -> Vec<TapView> {
        self.tap_refs(venue)
            .into_iter()
            .map(|tap| self.tap_view(tap, now))
            .collect()
    }

    fn tap_view(&mut self, tap: TapRef, now: Timestamp) -> TapView {
        let since = now.millis() - HOUR_MS;
        let log = self.taps.entry(tap.clone()).or_default();
        // Forget what fell out of the hour.
        while log
            .recent
            .front()
            .is_some_and(|(t, _, _)| t.millis() <= since)
        {
            log.recent.pop_front();
        }
        let pace_ul: i64 = log
            .recent
            .iter()
            .filter(|(t, _, _)| t.millis() > since && t.millis() <= now.millis())
            .map(|(_, _, ul)| ul)
            .sum();
        let (last_pour_at, announced, name, cleaning) =
            (log.last_pour, log.quiet, log.name.clone(), log.cleaning);
        let keg = self.current.get(&tap).map(|&i| self.view(i));
        let forecast_empty_at = keg.as_ref().and_then(|k| {
            let remaining = microlitres(k.remaining_ml);
            (pace_ul > 0 && remaining > 0).then(|| {
                let ms = remaining as f64 / pace_ul as f64 * HOUR_MS as f64;
                Timestamp::from_millis(now.millis().saturating_add(ms as i64))
            })
        });
        TapView {
            cleaning,
            quiet: announced || self.quiet_now(&tap, now),
            low_percent: self.low_pct(&tap),
            venue: tap.venue,
            tap_id: tap.tap_id,
            name,
            keg,
            pace_ml_per_hour: ml(pace_ul),
            forecast_empty_at,
            last_pour_at,
            temperatures: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pour::Flags;

    fn cellar() -> Cellar {
        Cellar::new(
            CellarSettings::new(&Catalogue::default()),
            crate::venue::Venues::new(crate::venue::Defaults::standalone()),
        )
    }

    fn tap(cellar: &mut Cellar, tap_id: u32, litres: i64, after: u64) -> Vec<KegEvent> {
        let op = KegOp::Tap {
            venue: None,
            tap_id,
            beverage: "Pils".into(),
            size_ul: litres * 1_000_000,
            start_ul: litres * 1_000_000,
            at: Timestamp::from_millis(0),
        };
        cellar.check(&op).unwrap();
        cellar.apply_op(&op, after)
    }

    fn pour(id: u64, tap_id: u32, volume: f64) -> Pour {
        Pour {
            venue: "main".into(),
            id,
            tap_id,
            volume,
            glass: "pint".into(),
            timestamp: Timestamp::from_millis(id as i64 * 1000),
            flags: Flags::NONE,
        }
    }

    fn kinds(events: &[KegEvent]) -> Vec<KegEventKind> {
        events.iter().map(|e| e.kind).collect()
    }

    #[test]
    fn named_sizes_hold_what_they_say() {
        let litres = |name| (size_named(name).unwrap().ml / 10.0).round() / 100.0;
        assert_eq!(litres("half-barrel"), 58.67);
        assert_eq!(litres("quarter-barrel"), 29.34);
        assert!((litres("sixth-barrel") - 19.55).abs() <= 0.01);
        assert_eq!(litres("corny"), 18.93);
        assert_eq!(
            ["euro-50", "euro-30", "euro-20"].map(|n| size_named(n).unwrap().ml),
            [50_000.0, 30_000.0, 20_000.0]
        );
        assert!(size_named("pony").is_none());
    }

    #[test]
    fn pours_draw_down_and_deletions_give_back_exactly() {
        let mut c = cellar();
        tap(&mut c, 1, 20, 0);
        for id in 1..=3 {
            c.poured(&pour(id, 1, 333.3), Timestamp::now());
        }
        c.poured(&pour(4, 2, 500.0), Timestamp::now());
        c.deleted(&pour(2, 1, 333.3));
        let keg = c.get(1).unwrap();
        assert_eq!(keg.drawn_ml, 666.6);
        assert_eq!(keg.remaining_ml, 19_333.4);
        assert_eq!(keg.percent, 96.67);
        assert_eq!(
            keg.servings_left
                .iter()
                .map(|s| s.servings)
                .collect::<Vec<_>>(),
            [68, 34, 19]
        );
    }

    #[test]
    fn low_and_empty_are_announced_once_at_their_pour() {
        let mut c = cellar();
        assert_eq!(kinds(&tap(&mut c, 1, 1, 0)), [KegEventKind::Tapped]);
        // 15 % of a litre is 150 ml: low at 850 ml drawn, not at 849.999.
        assert!(c.poured(&pour(1, 1, 849.999), Timestamp::now()).is_empty());
        let low = c.poured(&pour(2, 1, 0.001), Timestamp::now());
        assert_eq!(kinds(&low), [KegEventKind::Low]);
        assert_eq!(low[0].after, 2);
        c.deleted(&pour(2, 1, 0.001));
        assert!(
            c.poured(&pour(3, 1, 0.001), Timestamp::now()).is_empty(),
            "low only once"
        );
        assert_eq!(
            kinds(&c.poured(&pour(4, 1, 150.0), Timestamp::now())),
            [KegEventKind::Empty]
        );
        assert!(c.empty_before(&c.tap_ref(None, 1), 0));
        assert!(c.poured(&pour(5, 1, 100.0), Timestamp::now()).is_empty());
        assert_eq!(c.get(1).unwrap().remaining_ml, -100.0);
        assert_eq!(c.get(1).unwrap().percent, 0.0);
    }

    #[test]
    fn a_new_keg_finishes_the_old_and_deletions_go_back_to_the_keg_that_gave() {
        let mut c = cellar();
        tap(&mut c, 1, 20, 0);
        c.poured(&pour(1, 1, 500.0), Timestamp::now());
        let events = tap(&mut c, 1, 30, 1);
        assert_eq!(
            kinds(&events),
            [KegEventKind::Finished, KegEventKind::Tapped]
        );
        c.poured(&pour(2, 1, 400.0), Timestamp::now());
        c.deleted(&pour(1, 1, 500.0));
        assert_eq!(c.get(1).unwrap().drawn_ml, 0.0);
        assert_eq!(c.get(1).unwrap().status, "finished");
        assert_eq!(c.get(2).unwrap().drawn_ml, 400.0);
        let filter = |venue: Option<&str>, finished| KegFilter {
            venue: venue.map(Arc::from),
            tap_id: Some(1),
            finished,
            ..KegFilter::default()
        };
        assert_eq!(c.list(&filter(None, Some(false))).len(), 1);
        assert_eq!(c.list(&filter(Some("main"), Some(false))).len(), 1);
        assert!(c.list(&filter(Some("dock"), None)).is_empty());
        let finish = KegOp::Finish {
            keg_id: 1,
            left_ul: None,
            at: Timestamp::from_millis(0),
        };
        assert_eq!(c.check(&finish), Err(KegError::Finished(1)));
        assert_eq!(
            c.check(&KegOp::Finish {
                keg_id: 9,
                left_ul: None,
                at: Timestamp::from_millis(0)
            }),
            Err(KegError::NotFound(9))
        );
    }

    #[test]
    fn corrections_change_size_and_count_spills() {
        let mut c = cellar();
        tap(&mut c, 1, 300, 0);
        c.poured(&pour(1, 1, 1000.0), Timestamp::now());
        // Kegbot's 30 L keg defined as 300 L, put right: the level follows.
        let op = KegOp::Correct {
            keg_id: 1,
            beverage: Some("Helles".into()),
            size_ul: Some(30_000_000),
            spill_ul: 500_000,
            at: Timestamp::from_millis(0),
        };
        let events = c.apply_op(&op, 1);
        assert_eq!(kinds(&events), [KegEventKind::Corrected]);
        let keg = c.get(1).unwrap();
        assert_eq!((keg.size_ml, keg.remaining_ml), (30_000.0, 28_500.0));
        assert_eq!(keg.beverage, "Helles");
    }

    #[test]
    fn pace_and_forecast_follow_the_last_hour() {
        let mut c = cellar();
        tap(&mut c, 1, 10, 0);
        let now = Timestamp::now();
        let at = |ago_min: i64| Timestamp::from_millis(now.millis() - ago_min * 60_000);
        for (id, ago) in [(1, 90), (2, 50), (3, 10)] {
            c.poured(
                &Pour {
                    timestamp: at(ago),
                    ..pour(id, 1, 1000.0)
                },
                Timestamp::now(),
            );
        }
        let taps = c.taps(None, now);
        assert_eq!(taps[0].pace_ml_per_hour, 2000.0);
        // 7 L left at 2 L an hour: 3.5 hours.
        assert_eq!(
            taps[0].forecast_empty_at,
            Some(Timestamp::from_millis(now.millis() + 35 * HOUR_MS / 10))
        );
        assert_eq!(taps[0].last_pour_at, Some(at(10)));
        assert!(!taps[0].quiet);
        let later = Timestamp::from_millis(now.millis() + 3 * HOUR_MS);
        let taps = c.taps(None, later);
        assert_eq!(taps[0].pace_ml_per_hour, 0.0);
        assert_eq!(taps[0].forecast_empty_at, None, "no pace, no forecast");
        assert!(taps[0].quiet);
    }

    /// A cellar whose default venue goes quiet after `quiet_min` minutes and is open from
    /// `hours.0` to `hours.1` minutes from `now` (always, without), with a keg on tap 1
    /// since two hours ago and a pour 40 minutes ago.
    fn quiet_cellar(now: Timestamp, quiet_min: u64, hours: Option<(i64, i64)>) -> Cellar {
        let clock = |m: i64| {
            let at = chrono::DateTime::from_timestamp_millis(now.millis() + m * 60_000).unwrap();
            at.format("%H:%M").to_string()
        };
        let defaults = crate::venue::Defaults {
            quiet_after: std::time::Duration::from_secs(quiet_min * 60),
            opening_hours: hours.map(|(from, to)| {
                crate::config::OpeningHours::parse(&format!("{}-{}", clock(from), clock(to)))
                    .unwrap()
            }),
            ..crate::venue::Defaults::standalone()
        };
        let mut c = Cellar::new(
            CellarSettings::new(&Catalogue::default()),
            Venues::new(defaults),
        );
        let minutes = |m: i64| Timestamp::from_millis(now.millis() + m * 60_000);
        let op = KegOp::Tap {
            venue: None,
            tap_id: 1,
            beverage: "Pils".into(),
            size_ul: 20_000_000,
            start_ul: 20_000_000,
            at: minutes(-120),
        };
        c.apply_op(&op, 0);
        c.poured(
            &Pour {
                timestamp: minutes(-40),
                ..pour(1, 1, 500.0)
            },
            Timestamp::now(),
        );
        c
    }

    #[test]
    fn a_quiet_tap_is_announced_once_and_back_with_its_next_pour() {
        let now = Timestamp::now();
        let mut c = quiet_cellar(now, 30, None);
        let tap_1 = c.tap_ref(None, 1);
        // Quiet after 30 minutes of an open bar; not while it is closed, nor when it
        // opened less than 30 minutes ago.
        assert_eq!(c.newly_quiet(now), [(tap_1.clone(), 1)]);
        let closed = quiet_cellar(now, 30, Some((60, 120)));
        assert!(closed.newly_quiet(now).is_empty());
        assert!(
            !quiet_cellar(now, 30, Some((60, 120))).taps(None, now)[0].quiet,
            "closed bars are not quiet"
        );
        let just_opened = quiet_cellar(now, 30, Some((-10, 60)));
        assert!(just_opened.newly_quiet(now).is_empty());
        assert!(quiet_cellar(now, 45, None).newly_quiet(now).is_empty());
        let quiet = KegOp::Quiet {
            venue: None,
            tap_id: 1,
            last_pour: 1,
            at: now,
        };
        assert_eq!(c.check(&quiet), Ok(1));
        assert_eq!(kinds(&c.apply_op(&quiet, 1)), [KegEventKind::Quiet]);
        assert_eq!(c.check(&quiet), Err(KegError::NotQuiet(1)), "once");
        assert!(c.newly_quiet(now).is_empty());
        assert!(c.taps(None, now)[0].quiet, "until it pours");
        let events = c.poured(
            &Pour {
                timestamp: now,
                ..pour(2, 1, 500.0)
            },
            Timestamp::now(),
        );
        assert_eq!(kinds(&events), [KegEventKind::Back]);
        assert_eq!((events[0].tap_id, events[0].after), (1, 2));
        assert!(!c.taps(None, now)[0].quiet);
        // A word from a server that had not seen pour 2 is stale.
        assert_eq!(c.check(&quiet), Err(KegError::NotQuiet(1)));
        // No keg, never quiet.
        assert_eq!(
            c.check(&KegOp::Quiet {
                venue: None,
                tap_id: 9,
                last_pour: 0,
                at: now
            }),
            Err(KegError::NotQuiet(9))
        );
    }
}
