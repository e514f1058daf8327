//! How this server judges a pour that comes in (over HTTP or MQTT): its body read and
//! classified, its own flags earned, from the configuration.

use std::sync::Arc;
use std::time::Duration;

use crate::anomaly::Rules;
use crate::config::Config;
use crate::glass::Catalogue;
use crate::pour::{Intake, NewPour, PourError, Timestamp, parse_pour};
use crate::temperature::{Limits, Reading, parse_reading};

/// What a pour's volume must be to be stored.
pub fn intake(config: &Config) -> Intake {
    Intake {
        max_volume: config.max_volume,
        reject_unclassified: config.reject_unclassified,
    }
}

/// How pours are judged, from the configuration.
pub struct Pouring {
    pub catalogue: Catalogue,
    /// What volumes are stored.
    pub intake: Intake,
    /// What flags a pour earns.
    pub rules: Rules,
    /// How long a tap with a keg on may go without a pour, while open, before it is quiet.
    pub quiet_after: Duration,
    /// An alert about events resolves once none came for this long.
    pub alert_window: Duration,
    /// The bar's time zone (`--timezone`), for the page's clocks.
    pub time_zone: &'static str,
    /// The venue of pours that name none (`--default-venue`).
    pub default_venue: Arc<str>,
    /// How far from zero a variance may be, in per cent (`--variance-goal`).
    pub variance_goal: f64,
    /// When beer is too warm or too hot, and a sensor silent.
    pub limits: Limits,
    /// How far ahead of the server's clock a device's timestamp may be (`--clock-skew`).
    pub clock_skew: Duration,
}

impl Pouring {
    /// The pour a body describes, for `venue`, flagged as far as it can be on its own;
    /// `tap` is the tap when something other than the body names it (an MQTT topic).
    pub fn judge(
        &self,
        body: &[u8],
        tap: Option<u32>,
        venue: Arc<str>,
        now: Timestamp,
    ) -> Result<NewPour, PourError> {
        let mut pour = parse_pour(body, tap, &self.catalogue, &self.intake, now, venue)?;
        self.rules.assess(&mut pour, &self.catalogue);
        Ok(pour)
    }

    /// The temperature reading a body describes, for `venue`; `tap` as for [`Pouring::judge`].
    pub fn reading(
        &self,
        body: &[u8],
        tap: Option<u32>,
        venue: Arc<str>,
        now: Timestamp,
    ) -> Result<Reading, PourError> {
        parse_reading(body, tap, venue, now, self.clock_skew)
    }
}

/// The temperature limits the configuration sets.
pub fn limits(config: &Config) -> Limits {
    Limits {
        warm_above: config.warm_above,
        warm_for: config.warm_for,
        hot_above: config.hot_above,
        silent_after: config.sensor_silent_after,
    }
}
