//! Venues: the bars of a chain, each with its name, clock and opening hours, and its own
//! quiet-tap and low-keg settings.
//!
//! A venue is made and changed by operations in the log (like the kegs), so every replica
//! derives the same venues. A setting a venue does not set follows the chain's default, from
//! the flags (`--timezone`, `--opening-hours`, `--quiet-after`, `--keg-low-percent`). The
//! default venue (`--default-venue`), where pours and kegs that name no venue belong,
//! always exists; its settings are the flags themselves (only its name is the log's), since
//! the rules its pours and taps are judged by read them there.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::anomaly::Clock;
use crate::config::{Config, OpeningHours};

pub use crate::config::{
    MAX_VENUE_ID as MAX_ID, time_of_day as parse_clock, time_zone as parse_timezone,
    venue_id as parse_id,
};

/// What a venue id must match, as the OpenAPI document says it.
pub const ID_PATTERN: &str = "^[a-z0-9-]{1,40}$";
/// What [`parse_clock`] takes.
pub const CLOCK_PATTERN: &str = "^([01][0-9]|2[0-3]):[0-5][0-9]$";

/// `HH:MM` of seconds since midnight.
pub fn clock(seconds: u32) -> String {
    format!("{:02}:{:02}", seconds / 3600, seconds % 3600 / 60)
}

/// A change to one setting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Change<T> {
    Keep,
    Clear,
    To(T),
}

impl<T: Clone> Change<T> {
    pub fn apply(&self, setting: &mut Option<T>) {
        match self {
            Change::Keep => {}
            Change::Clear => *setting = None,
            Change::To(value) => *setting = Some(value.clone()),
        }
    }

    /// The value it sets, if it sets one.
    pub fn into_set(self) -> Option<T> {
        match self {
            Change::To(value) => Some(value),
            Change::Keep | Change::Clear => None,
        }
    }

    pub fn is_keep(&self) -> bool {
        matches!(self, Change::Keep)
    }
}

/// A venue as the log records it: what it sets (checked before it was logged). Unset, a
/// setting is the chain's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VenueRecord {
    pub id: String,
    pub name: Option<String>,
    pub timezone: Option<String>,
    pub opening_hours: Option<String>,
    pub business_day_starts: Option<String>,
    pub quiet_after_secs: Option<u64>,
    pub keg_low_percent: Option<f64>,
}

/// A change to a venue's settings, as the log records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VenueChange {
    pub id: String,
    pub name: Change<String>,
    pub timezone: Change<String>,
    pub opening_hours: Change<String>,
    pub business_day_starts: Change<String>,
    pub quiet_after_secs: Change<u64>,
    pub keg_low_percent: Change<f64>,
}

/// The chain's settings, from the flags: every venue's where it sets none.
#[derive(Debug, Clone)]
pub struct Defaults {
    /// The venue pours without one belong to.
    pub venue: String,
    pub timezone: chrono_tz::Tz,
    pub opening_hours: Option<OpeningHours>,
    /// When a business day starts, in seconds after local midnight.
    pub business_day_starts: u32,
    pub quiet_after: Duration,
    pub keg_low_percent: f64,
}

impl Defaults {
    /// The flags'.
    pub fn of(config: &Config) -> Defaults {
        Defaults {
            venue: config.default_venue.clone(),
            timezone: config.timezone,
            opening_hours: config.opening_hours.clone(),
            business_day_starts: config.business_day_starts,
            quiet_after: config.quiet_after,
            keg_low_percent: config.keg_low_percent,
        }
    }

    /// One venue, `main`, on UTC's clock, always open (benchmarks, unit tests).
    pub fn standalone() -> Defaults {
        Defaults {
            venue: "main".into(),
            timezone: chrono_tz::UTC,
            opening_hours: None,
            business_day_starts: 0,
            quiet_after: Duration::from_secs(1800),
            keg_low_percent: 15.0,
        }
    }
}

/// A venue as it is: its settings, or the chain's where it sets none.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"id": "dock-street", "name": "Dock Street", "timezone": "America/New_York",
    "openingHours": "16:00-02:00", "businessDayStarts": "04:00", "quietAfterSeconds": 1800,
    "kegLowPercent": 15, "default": false}))]
pub struct VenueView {
    pub id: String,
    pub name: String,
    /// Its IANA time zone: its opening hours and days are on this clock.
    pub timezone: String,
    /// When it is open (`HH:MM-HH:MM`, comma-separated); null: always.
    pub opening_hours: Option<String>,
    /// When its business day starts (`HH:MM`): a night's pours after midnight count for
    /// the day before.
    pub business_day_starts: String,
    /// Seconds without a pour after which a tap with a keg on is quiet, while it is open.
    pub quiet_after_seconds: u64,
    /// Its kegs are low at or under this percentage of their size.
    pub keg_low_percent: f64,
    /// Whether pours that name no venue are its (`--default-venue`).
    pub default: bool,
}

/// Why a venue operation cannot apply.
#[derive(Debug, Clone, PartialEq)]
pub enum VenueError {
    Exists(String),
    NotFound(String),
    /// A change to the default venue's settings other than its name.
    Configured(String),
}

impl fmt::Display for VenueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VenueError::Exists(id) => write!(f, "venue {id:?} exists already"),
            VenueError::NotFound(id) => write!(f, "no venue {id:?}"),
            VenueError::Configured(id) => write!(
                f,
                "{id:?} is the default venue: its settings are the flags (--timezone, \
                 --opening-hours, --quiet-after, --keg-low-percent); only its name changes here"
            ),
        }
    }
}

/// A venue's rules as they stand: what deciding a pour and the kegs and taps read, pour by
/// pour, without parsing a setting.
#[derive(Debug, Clone)]
pub struct Rules {
    pub id: Arc<str>,
    /// Its opening hours on its wall clock.
    pub clock: Clock,
    /// When its business day starts, in seconds after local midnight.
    pub business_day_starts: u32,
    pub quiet_after_ms: i64,
    pub keg_low_percent: f64,
}

/// Every venue, as the log made them.
#[derive(Debug, Clone)]
pub struct Venues {
    defaults: Defaults,
    /// What the log set, by id (the default venue's only once it was changed).
    records: BTreeMap<String, VenueRecord>,
    /// Each venue's rules, the default venue's always among them.
    rules: HashMap<Arc<str>, Rules>,
    default_id: Arc<str>,
}

impl Venues {
    pub fn new(defaults: Defaults) -> Venues {
        let default_id: Arc<str> = defaults.venue.as_str().into();
        let mut venues = Venues {
            defaults,
            records: BTreeMap::new(),
            rules: HashMap::new(),
            default_id: default_id.clone(),
        };
        venues.resolve(&default_id);
        venues
    }

    pub fn exists(&self, id: &str) -> bool {
        self.rules.contains_key(id)
    }

    /// The venue of pours and operations that name none.
    pub fn default_id(&self) -> &Arc<str> {
        &self.default_id
    }

    /// The rules of venue `id`; the default venue's for one that does not exist (nothing
    /// names one: the checks refuse it first).
    pub fn rules(&self, id: &str) -> &Rules {
        match self.rules.get(id) {
            Some(rules) => rules,
            None => &self.rules[&self.default_id],
        }
    }

    /// Every venue's rules, in no order.
    pub fn all_rules(&self) -> impl Iterator<Item = &Rules> {
        self.rules.values()
    }

    /// The shared id of venue `id`, if it exists.
    pub fn id(&self, id: &str) -> Option<Arc<str>> {
        self.rules.get_key_value(id).map(|(id, _)| id.clone())
    }

    /// The venue as a pour or operation stores it: none for the default venue, so that
    /// `--default-venue` names whatever names none.
    pub fn stored(&self, id: &str) -> Option<Arc<str>> {
        if id == &*self.default_id {
            None
        } else {
            Some(self.id(id).unwrap_or_else(|| id.into()))
        }
    }

    /// A venue as stored ([`Venues::stored`]) by its id.
    pub fn named<'a>(&'a self, stored: Option<&'a Arc<str>>) -> &'a Arc<str> {
        stored.unwrap_or(&self.default_id)
    }

    /// Works out the rules of `id` again from what the log set and the flags.
    fn resolve(&mut self, id: &str) {
        let default = id == &*self.default_id;
        let record = self.records.get(id).cloned().unwrap_or(VenueRecord {
            id: id.to_owned(),
            ..VenueRecord::default()
        });
        let resolved = self.resolved(&record, default);
        let id: Arc<str> = self.id(id).unwrap_or_else(|| id.into());
        let rules = Rules {
            id: id.clone(),
            clock: Clock {
                zone: resolved.timezone,
                hours: resolved.opening_hours,
            },
            business_day_starts: resolved.business_day_starts,
            quiet_after_ms: i64::try_from(resolved.quiet_after.as_millis()).unwrap_or(i64::MAX),
            keg_low_percent: resolved.keg_low_percent,
        };
        self.rules.insert(id, rules);
    }

    /// Whether a new venue can be made.
    pub fn check_add(&self, venue: &VenueRecord) -> Result<(), VenueError> {
        match self.exists(&venue.id) {
            true => Err(VenueError::Exists(venue.id.clone())),
            false => Ok(()),
        }
    }

    /// Whether a venue's settings can be changed.
    pub fn check_change(&self, change: &VenueChange) -> Result<(), VenueError> {
        if !self.exists(&change.id) {
            return Err(VenueError::NotFound(change.id.clone()));
        }
        let only_name = change.timezone.is_keep()
            && change.opening_hours.is_keep()
            && change.business_day_starts.is_keep()
            && change.quiet_after_secs.is_keep()
            && change.keg_low_percent.is_keep();
        match change.id == self.defaults.venue && !only_name {
            true => Err(VenueError::Configured(change.id.clone())),
            false => Ok(()),
        }
    }

    /// A committed new venue (one that exists already is left as it is: the check
    /// refuses it before it is logged).
    pub fn add(&mut self, venue: &VenueRecord) {
        if !self.exists(&venue.id) {
            self.records.insert(venue.id.clone(), venue.clone());
            self.resolve(&venue.id);
        }
    }

    /// A committed change.
    pub fn change(&mut self, change: &VenueChange) {
        if !self.exists(&change.id) {
            return;
        }
        let record = self
            .records
            .entry(change.id.clone())
            .or_insert_with(|| VenueRecord {
                id: change.id.clone(),
                ..VenueRecord::default()
            });
        change.name.apply(&mut record.name);
        if change.id == self.defaults.venue {
            return;
        }
        change.timezone.apply(&mut record.timezone);
        change.opening_hours.apply(&mut record.opening_hours);
        change
            .business_day_starts
            .apply(&mut record.business_day_starts);
        change.quiet_after_secs.apply(&mut record.quiet_after_secs);
        change.keg_low_percent.apply(&mut record.keg_low_percent);
        self.resolve(&change.id);
    }

    /// If the venue `id` was made through the API as a venue of its own (with its own
    /// time zone), what it was made with: as the default venue, those settings give way to
    /// the flags.
    pub fn made_as_other(&self, id: &str) -> Option<String> {
        let record = self.records.get(id)?;
        let zone = record.timezone.as_deref()?;
        Some(format!("time zone {zone}"))
    }

    /// A venue as it is.
    pub fn get(&self, id: &str) -> Option<VenueView> {
        let default = id == self.defaults.venue;
        match self.records.get(id) {
            Some(record) => Some(self.view(record, default)),
            None if default => Some(self.view(
                &VenueRecord {
                    id: id.to_owned(),
                    ..VenueRecord::default()
                },
                true,
            )),
            None => None,
        }
    }

    /// Every venue, by id.
    pub fn list(&self) -> Vec<VenueView> {
        let mut ids: Vec<&str> = self.records.keys().map(String::as_str).collect();
        if let Err(at) = ids.binary_search(&self.defaults.venue.as_str()) {
            ids.insert(at, &self.defaults.venue);
        }
        ids.into_iter().filter_map(|id| self.get(id)).collect()
    }

    /// The settings of `record` over the chain's (the default venue's are the chain's). A
    /// setting the log holds that no longer parses (a time zone a later release renamed,
    /// say) is the chain's.
    fn resolved(&self, record: &VenueRecord, default: bool) -> Resolved {
        let d = &self.defaults;
        let named = VenueRecord {
            id: record.id.clone(),
            name: record.name.clone(),
            ..VenueRecord::default()
        };
        let record = if default { &named } else { record };
        let timezone = record
            .timezone
            .as_deref()
            .and_then(|tz| parse_timezone(tz).ok())
            .unwrap_or(d.timezone);
        let opening_hours = match &record.opening_hours {
            Some(text) => OpeningHours::parse(text).ok().or(d.opening_hours.clone()),
            None => d.opening_hours.clone(),
        };
        let business_day_starts = record
            .business_day_starts
            .as_deref()
            .and_then(|t| parse_clock(t).ok())
            .unwrap_or(d.business_day_starts);
        Resolved {
            name: record.name.clone().unwrap_or_else(|| record.id.clone()),
            timezone,
            opening_hours,
            business_day_starts,
            quiet_after: record
                .quiet_after_secs
                .map_or(d.quiet_after, Duration::from_secs),
            keg_low_percent: record.keg_low_percent.unwrap_or(d.keg_low_percent),
        }
    }

    fn view(&self, record: &VenueRecord, default: bool) -> VenueView {
        let r = self.resolved(record, default);
        VenueView {
            id: record.id.clone(),
            name: r.name,
            timezone: r.timezone.name().to_owned(),
            opening_hours: r.opening_hours.map(|hours| hours.to_string()),
            business_day_starts: clock(r.business_day_starts),
            quiet_after_seconds: r.quiet_after.as_secs(),
            keg_low_percent: r.keg_low_percent,
            default,
        }
    }
}

/// A venue's settings over the chain's.
struct Resolved {
    name: String,
    timezone: chrono_tz::Tz,
    opening_hours: Option<OpeningHours>,
    business_day_starts: u32,
    quiet_after: Duration,
    keg_low_percent: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Defaults {
        Defaults::standalone()
    }

    fn keep() -> VenueChange {
        VenueChange {
            id: "main".into(),
            name: Change::Keep,
            timezone: Change::Keep,
            opening_hours: Change::Keep,
            business_day_starts: Change::Keep,
            quiet_after_secs: Change::Keep,
            keg_low_percent: Change::Keep,
        }
    }

    #[test]
    fn ids_are_short_lowercase_slugs() {
        for good in ["main", "dock-street", "bar-2", "a", &"x".repeat(40)] {
            assert_eq!(parse_id(good).as_deref(), Ok(good));
        }
        for bad in [
            "",
            "Dock",
            "dock street",
            "dock_street",
            "bär",
            &"x".repeat(41),
            "a/b",
        ] {
            assert!(parse_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn times_of_day_are_two_digits_each() {
        assert_eq!(parse_clock("04:00"), Ok(4 * 3600));
        assert_eq!(parse_clock("23:59"), Ok(23 * 3600 + 59 * 60));
        for bad in ["4:00", "24:00", "04:60", "0400", "", "04:00:00", "+4:00"] {
            assert!(parse_clock(bad).is_err(), "{bad}");
        }
        assert_eq!(clock(4 * 3600 + 30 * 60), "04:30");
    }

    #[test]
    fn the_default_venue_exists_with_the_flags_settings_and_a_name_of_the_logs() {
        let mut venues = Venues::new(defaults());
        let main = venues.get("main").unwrap();
        assert!(main.default);
        assert_eq!(
            (
                main.name.as_str(),
                main.timezone.as_str(),
                main.opening_hours
            ),
            ("main", "UTC", None)
        );
        assert_eq!(main.business_day_starts, "00:00");
        assert_eq!(
            venues.check_add(&VenueRecord {
                id: "main".into(),
                ..VenueRecord::default()
            }),
            Err(VenueError::Exists("main".into()))
        );
        let renamed = VenueChange {
            name: Change::To("The Main Bar".into()),
            ..keep()
        };
        assert_eq!(venues.check_change(&renamed), Ok(()));
        venues.change(&renamed);
        assert_eq!(venues.get("main").unwrap().name, "The Main Bar");
        // Its rules read the flags: the log does not set them.
        let hours = VenueChange {
            opening_hours: Change::To("16:00-02:00".into()),
            ..keep()
        };
        assert_eq!(
            venues.check_change(&hours),
            Err(VenueError::Configured("main".into()))
        );
        venues.change(&hours);
        assert_eq!(venues.get("main").unwrap().opening_hours, None);
    }

    #[test]
    fn a_venue_sets_what_it_says_and_follows_the_chain_for_the_rest() {
        let mut venues = Venues::new(defaults());
        let dock = VenueRecord {
            id: "dock".into(),
            name: Some("Dock Street".into()),
            timezone: Some("America/New_York".into()),
            keg_low_percent: Some(20.0),
            ..VenueRecord::default()
        };
        assert_eq!(venues.check_add(&dock), Ok(()));
        venues.add(&dock);
        assert_eq!(
            venues.check_add(&dock),
            Err(VenueError::Exists("dock".into()))
        );
        let view = venues.get("dock").unwrap();
        assert_eq!(
            (
                view.timezone.as_str(),
                view.keg_low_percent,
                view.quiet_after_seconds
            ),
            ("America/New_York", 20.0, 1800)
        );
        assert!(!view.default);
        let ids: Vec<String> = venues.list().into_iter().map(|v| v.id).collect();
        assert_eq!(ids, ["dock", "main"]);
        let gone = VenueChange {
            id: "gone".into(),
            ..keep()
        };
        assert_eq!(
            venues.check_change(&gone),
            Err(VenueError::NotFound("gone".into()))
        );
        venues.change(&gone);
        assert!(venues.get("gone").is_none());
    }

    #[test]
    fn a_venue_made_through_the_api_then_named_the_default_is_told() {
        let mut venues = Venues::new(defaults());
        venues.add(&VenueRecord {
            id: "dock".into(),
            timezone: Some("America/New_York".into()),
            ..VenueRecord::default()
        });
        let mut named_default = Venues::new(Defaults {
            venue: "dock".into(),
            ..defaults()
        });
        named_default.records = venues.records.clone();
        named_default.resolve("dock");
        assert_eq!(
            named_default.made_as_other("dock").as_deref(),
            Some("time zone America/New_York")
        );
        let dock = named_default.get("dock").unwrap();
        assert!(dock.default);
        assert_eq!(dock.timezone, "UTC");
        // The default venue's own record holds a name only.
        venues.change(&VenueChange {
            name: Change::To("Main".into()),
            ..keep()
        });
        assert_eq!(venues.made_as_other("main"), None);
    }

    #[test]
    fn a_setting_that_no_longer_parses_is_the_chains() {
        let mut venues = Venues::new(defaults());
        venues.add(&VenueRecord {
            id: "old".into(),
            timezone: Some("Mars/Olympus".into()),
            ..VenueRecord::default()
        });
        assert_eq!(venues.get("old").unwrap().timezone, "UTC");
    }
}
