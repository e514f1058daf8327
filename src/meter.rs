//! Counter devices: meters that publish a running total (litres or pulses since they
//! booted) instead of pours.
//!
//! The log keeps, for each meter, its mark: the total its next pour is measured from, and
//! how many times the mark has moved. A move is logged once: several servers following one
//! meter propose the same move, and [`Meters::applies`] keeps the first (a move names the
//! count it follows, and only the current one applies). A move that ends a pour names the
//! pour, which is stored under a key made from the move, so that whoever stores it (the
//! server that moved the mark, or any other that sees the move in the log) stores it once.
//!
//! [`Follower`] is one server's reading of a meter: the totals as they come, a pour open
//! while the total rises and ended after the meter's idle time, a total that falls (the
//! device restarted) taken as the new mark with no pour, and a rise larger than a tap pours
//! at once flagged and not poured. It keeps only what the log does not: the latest total
//! and when it last rose.

use std::collections::HashMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::pour::Timestamp;

/// Why a meter's mark moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Moved {
    /// The first total the server read: where counting starts.
    Adopted,
    /// A pour ended: the total stopped rising for the meter's idle time.
    Poured,
    /// The total fell: the device restarted (a pour it had open is poured first).
    Restarted,
    /// The total rose by more than a tap pours at once: flagged, not poured.
    Jumped,
}

/// The pour a move of the mark makes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MeterPour {
    /// Millilitres, to a tenth.
    pub volume_ml: f64,
    /// When the total last rose.
    pub at: Timestamp,
}

/// Where a meter's count stands, as the log has it.
#[derive(Debug, Clone, PartialEq)]
pub struct Mark {
    /// How many moves the log holds: the next one names this.
    pub seq: u64,
    /// The total (in the meter's unit) its next pour is measured from.
    pub total: f64,
    pub why: Moved,
    /// The pour the last move made, and the key it is stored under.
    pub owed: Option<(MeterPour, String)>,
    /// When the last move was logged.
    pub at: Timestamp,
}

/// Every meter's mark.
#[derive(Debug, Clone, Default)]
pub struct Meters(HashMap<String, Mark>);

impl Meters {
    pub fn get(&self, meter: &str) -> Option<&Mark> {
        self.0.get(meter)
    }

    /// Whether move `seq` of `meter` applies: it follows the log's last one of it.
    pub fn applies(&self, meter: &str, seq: u64) -> bool {
        seq == self.0.get(meter).map_or(0, |m| m.seq)
    }

    /// Applies a logged move.
    pub fn apply(&mut self, meter: &str, logged: &Proposal, at: Timestamp) {
        self.0.insert(
            meter.to_owned(),
            Mark {
                seq: logged.seq + 1,
                total: logged.total,
                why: logged.why,
                owed: logged.pour.map(|p| (p, pour_key(meter, logged.seq))),
                at,
            },
        );
    }
}

/// The idempotency key of the pour that move `seq` of `meter` makes: the same on every
/// server, at most 128 characters whatever the meter's name.
pub fn pour_key(meter: &str, seq: u64) -> String {
    let digest = Sha256::digest(meter.as_bytes());
    let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    format!("meter-{hex}-{seq}")
}

/// How a meter's totals turn into pours.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gauge {
    /// Millilitres per unit of the total.
    pub ml_per_unit: f64,
    /// A pour ends once the total has not risen for this long.
    pub idle: Duration,
    /// No tap pours more at once (ml): a larger rise is a fault, flagged, not poured.
    pub max_ml: f64,
}

/// A move of the mark: proposed by a server, kept once by the log.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Proposal {
    /// The log's move count it follows.
    pub seq: u64,
    /// The new mark.
    pub total: f64,
    pub why: Moved,
    pub pour: Option<MeterPour>,
    /// With [`Moved::Jumped`]: the rise refused, in ml.
    pub jump_ml: Option<f64>,
}

/// One server's reading of one meter.
#[derive(Debug, Clone, Default)]
pub struct Follower {
    /// The latest total read, and the log's move count then.
    latest: Option<(f64, u64)>,
    /// When the total last rose (a pour is open if it is above the mark).
    rose_at: Option<Timestamp>,
}

impl Follower {
    /// The latest total, reconciled with the log's mark: a mark another server moved past
    /// what this one read is taken, and so is one it moved down (a restart or a jump it
    /// saw first).
    fn latest(&mut self, mark: &Mark) -> f64 {
        let latest = match self.latest {
            Some((latest, seq)) if seq == mark.seq => latest,
            Some((latest, _)) if mark.why == Moved::Poured => latest.max(mark.total),
            _ => mark.total,
        };
        self.latest = Some((latest, mark.seq));
        latest
    }

    /// Reads a total `value` at `now`; what to log, if anything.
    pub fn read(
        &mut self,
        mark: Option<&Mark>,
        value: f64,
        now: Timestamp,
        gauge: &Gauge,
    ) -> Option<Proposal> {
        let Some(mark) = mark else {
            self.latest = Some((value, 0));
            return Some(Proposal {
                seq: 0,
                total: value,
                why: Moved::Adopted,
                pour: None,
                jump_ml: None,
            });
        };
        let latest = self.latest(mark);
        if value == latest {
            return None;
        }
        let open = self.open(mark, latest, gauge);
        let step_ml = (value - latest) * gauge.ml_per_unit;
        let why = if value < latest {
            Moved::Restarted
        } else if step_ml > gauge.max_ml {
            Moved::Jumped
        } else {
            self.latest = Some((value, mark.seq));
            self.rose_at = Some(now);
            return None;
        };
        self.latest = Some((value, mark.seq));
        self.rose_at = None;
        Some(Proposal {
            seq: mark.seq,
            total: value,
            why,
            pour: open,
            jump_ml: (why == Moved::Jumped).then_some(round(step_ml)),
        })
    }

    /// At `now`: the pour to end, if one is open and the total has not risen for the
    /// idle time. A pour larger than a tap pours is flagged, not poured.
    pub fn due(&mut self, mark: Option<&Mark>, now: Timestamp, gauge: &Gauge) -> Option<Proposal> {
        let mark = mark?;
        let latest = self.latest(mark);
        let rose_at = self.rose_at?;
        let idle = i64::try_from(gauge.idle.as_millis()).unwrap_or(i64::MAX);
        if latest <= mark.total || now.millis().saturating_sub(rose_at.millis()) < idle {
            return None;
        }
        let pour = self.open(mark, latest, gauge)?;
        let too_much = pour.volume_ml > gauge.max_ml;
        Some(Proposal {
            seq: mark.seq,
            total: latest,
            why: if too_much {
                Moved::Jumped
            } else {
                Moved::Poured
            },
            pour: (!too_much).then_some(pour),
            jump_ml: too_much.then_some(pour.volume_ml),
        })
    }

    /// The pour open since the mark, if the total rose past it.
    fn open(&self, mark: &Mark, latest: f64, gauge: &Gauge) -> Option<MeterPour> {
        let volume_ml = round((latest - mark.total) * gauge.ml_per_unit);
        (volume_ml > 0.0).then(|| MeterPour {
            volume_ml,
            at: self.rose_at.unwrap_or(mark.at),
        })
    }
}

/// To a tenth of a millilitre: a total in litres is a float (0.3 - 0.1 is not 0.2).
fn round(ml: f64) -> f64 {
    (ml * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    const LITRES: Gauge = Gauge {
        ml_per_unit: 1000.0,
        idle: Duration::from_secs(3),
        max_ml: 5000.0,
    };

    fn at(s: i64) -> Timestamp {
        Timestamp::from_millis(1_000_000 + s * 1000)
    }

    /// A meter as the log has it, fed the moves a follower proposes (each kept).
    struct Log {
        meters: Meters,
        pours: Vec<f64>,
    }

    impl Log {
        fn new() -> Log {
            Log {
                meters: Meters::default(),
                pours: Vec::new(),
            }
        }

        fn keep(&mut self, proposal: Option<Proposal>, now: Timestamp) -> Option<Moved> {
            let proposal = proposal?;
            if !self.meters.applies("m", proposal.seq) {
                return None;
            }
            self.meters.apply("m", &proposal, now);
            self.pours.extend(proposal.pour.map(|p| p.volume_ml));
            Some(proposal.why)
        }

        fn read(&mut self, f: &mut Follower, value: f64, s: i64) -> Option<Moved> {
            let p = f.read(self.meters.get("m"), value, at(s), &LITRES);
            self.keep(p, at(s))
        }

        fn tick(&mut self, f: &mut Follower, s: i64) -> Option<Moved> {
            let p = f.due(self.meters.get("m"), at(s), &LITRES);
            self.keep(p, at(s))
        }
    }

    #[test]
    fn a_rise_is_a_pour_once_the_total_stops_for_the_idle_time() {
        let (mut log, mut f) = (Log::new(), Follower::default());
        assert_eq!(log.read(&mut f, 12.0, 0), Some(Moved::Adopted));
        assert_eq!(log.read(&mut f, 12.1, 1), None);
        assert_eq!(log.read(&mut f, 12.3, 2), None);
        assert_eq!(
            log.read(&mut f, 12.3, 3),
            None,
            "a repeated total adds nothing"
        );
        assert_eq!(log.tick(&mut f, 4), None, "2 s since the last rise");
        assert_eq!(log.tick(&mut f, 5), Some(Moved::Poured));
        assert_eq!(log.pours, vec![300.0]);
        assert_eq!(log.tick(&mut f, 9), None, "once");
        assert_eq!(
            log.read(&mut f, 12.3, 10),
            None,
            "a redelivered total adds nothing"
        );
        assert_eq!(log.read(&mut f, 12.8, 11), None);
        assert_eq!(log.tick(&mut f, 14), Some(Moved::Poured));
        assert_eq!(log.pours, vec![300.0, 500.0]);
    }

    #[test]
    fn a_total_that_falls_is_a_restart_with_no_negative_pour() {
        let (mut log, mut f) = (Log::new(), Follower::default());
        log.read(&mut f, 5.0, 0);
        log.read(&mut f, 5.2, 1);
        // Restarted mid-pour: the open pour is poured, the new total is the mark.
        assert_eq!(log.read(&mut f, 0.0, 2), Some(Moved::Restarted));
        assert_eq!(log.pours, vec![200.0]);
        log.read(&mut f, 0.33, 3);
        assert_eq!(log.tick(&mut f, 6), Some(Moved::Poured));
        assert_eq!(log.pours, vec![200.0, 330.0]);
    }

    #[test]
    fn a_rise_larger_than_a_tap_pours_is_flagged_not_poured() {
        let (mut log, mut f) = (Log::new(), Follower::default());
        log.read(&mut f, 1.0, 0);
        assert_eq!(log.read(&mut f, 100.0, 1), Some(Moved::Jumped));
        assert!(log.pours.is_empty());
        log.read(&mut f, 100.5, 2);
        assert_eq!(log.tick(&mut f, 5), Some(Moved::Poured));
        assert_eq!(log.pours, vec![500.0], "counting goes on from the jump");
    }

    #[test]
    fn two_servers_following_one_meter_log_each_move_once() {
        let mut log = Log::new();
        let (mut a, mut b) = (Follower::default(), Follower::default());
        assert_eq!(log.read(&mut a, 3.0, 0), Some(Moved::Adopted));
        assert_eq!(log.read(&mut b, 3.0, 0), None, "b sees a's adoption");
        for (value, s) in [(3.2, 1), (3.4, 2)] {
            log.read(&mut a, value, s);
            log.read(&mut b, value, s);
        }
        assert_eq!(log.tick(&mut a, 5), Some(Moved::Poured));
        assert_eq!(log.tick(&mut b, 5), None, "a's move is in the log");
        assert_eq!(log.pours, vec![400.0]);
        // b saw the restart first; a's view of it is the log's.
        log.read(&mut b, 0.1, 6);
        assert_eq!(log.read(&mut a, 0.1, 6), None);
        log.read(&mut a, 0.2, 7);
        log.read(&mut b, 0.2, 7);
        log.tick(&mut b, 10);
        log.tick(&mut a, 10);
        assert_eq!(log.pours, vec![400.0, 100.0]);
    }

    #[test]
    fn a_server_that_starts_late_measures_from_the_logged_mark() {
        let mut log = Log::new();
        let mut a = Follower::default();
        log.read(&mut a, 7.0, 0);
        log.read(&mut a, 7.25, 1);
        // a stops mid-pour; b starts and reads the next total.
        let mut b = Follower::default();
        log.read(&mut b, 7.5, 2);
        assert_eq!(log.tick(&mut b, 5), Some(Moved::Poured));
        assert_eq!(log.pours, vec![500.0]);
    }

    #[test]
    fn a_pour_larger_than_a_tap_pours_is_flagged() {
        let (mut log, mut f) = (Log::new(), Follower::default());
        log.read(&mut f, 0.0, 0);
        for s in 1..=6 {
            log.read(&mut f, s as f64, s);
        }
        assert_eq!(log.tick(&mut f, 10), Some(Moved::Jumped));
        assert!(log.pours.is_empty());
    }

    #[test]
    fn a_pours_key_is_the_same_everywhere_and_short() {
        assert_eq!(pour_key("tap1", 4), pour_key("tap1", 4));
        assert_ne!(pour_key("tap1", 4), pour_key("tap1", 5));
        assert!(pour_key(&"x".repeat(1000), u64::MAX).len() <= 128);
    }
}
