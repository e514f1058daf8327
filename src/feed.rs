//! Where the log's committed changes go: each is applied to the [`Bar`]'s state and
//! published on the [`Bus`], with the keg and alert events it causes, in commit order.
//! Also what this server says of itself: its own alerts ([`ServerAlerts`]: its store
//! cannot write, its disk is nearly full), which are not in the log.
//!
//! Stores feed it while they still hold their write lock, so events leave in commit order
//! (pour ids ascending); the bar's lock is held across the send, so that a reader of the
//! bar (a subscriber's replay, a report) never sees a change the channel has not carried.

use std::sync::{Arc, Mutex, PoisonError};

use crate::alert::{Alert, AlertEvent, AlertKind, AlertSettings, Change, ServerAlerts};
use crate::bar::{Bar, Held, Notice};
use crate::bus::{Bus, Event};
use crate::glass::Catalogue;
use crate::keg::{CellarSettings, KegError, KegOp};
use crate::pour::{Pour, Timestamp};
use crate::report::Report;
use crate::venue::Defaults;

/// A cheap-to-clone handle: the bar's state and the bus it publishes on. One pointer:
/// every request's state holds one, and request futures move it around by value.
#[derive(Clone)]
pub struct Feed(Arc<Parts>);

struct Parts {
    bar: Bar,
    bus: Bus,
    /// A report follows every this many pours (0: only at the interval).
    report_every: u64,
    // std Mutex: held for a lookup or a change, never across .await.
    server_alerts: Mutex<ServerAlerts>,
}

impl Feed {
    pub fn new(bar: Bar, bus: Bus, report_every: u64) -> Feed {
        Feed(Arc::new(Parts {
            bar,
            bus,
            report_every,
            server_alerts: Mutex::new(ServerAlerts::new(host_name())),
        }))
    }

    /// A feed for a store on its own (benchmarks, unit tests): a bar on UTC's clock whose
    /// kegs are low at 15 % and whose alerts about events close after an hour, a small
    /// bus, and reports only when asked.
    pub fn standalone(catalogue: &Catalogue) -> Feed {
        let kegs = CellarSettings::new(catalogue);
        let alerts = AlertSettings {
            window_ms: 3_600_000,
            variance_goal: 2.0,
        };
        Feed::new(
            Bar::new(catalogue, Defaults::standalone(), kegs, alerts),
            Bus::new(16),
            0,
        )
    }

    /// The bar's state this feed keeps.
    pub fn bar(&self) -> &Bar {
        &self.0.bar
    }

    /// Applies and publishes a committed pour (call in commit order), then the keg and
    /// alert events it causes.
    pub fn poured(&self, pour: Pour) {
        let mut state = self.0.bar.hold();
        let now = Timestamp::now();
        let events = state.poured(&pour, now);
        self.0.bus.send(Event::Poured(pour));
        self.send_notices(events);
        let every = self.0.report_every;
        if every > 0 && state.total_pours().is_multiple_of(every) {
            self.send_report(&state, now);
        }
    }

    /// Applies and publishes a committed deletion.
    pub fn deleted(&self, pour: Pour) {
        let mut state = self.0.bar.hold();
        state.deleted(&pour);
        self.0.bus.send(Event::Deleted(pour));
    }

    /// Applies an operation logged after pour `after` and publishes the events it caused.
    pub fn keg_op(&self, op: &KegOp, after: u64) {
        let mut state = self.0.bar.hold();
        let events = state.keg_op(op, after);
        self.send_notices(events);
    }

    /// Publishes the current report and returns it.
    pub fn publish_report(&self) -> Arc<Report> {
        let state = self.0.bar.hold();
        self.send_report(&state, Timestamp::now())
    }

    /// Publishes the chain's report, then each venue's (for those who follow a venue:
    /// they never hear the chain's totals); returns the chain's.
    fn send_report(&self, state: &Held<'_>, now: Timestamp) -> Arc<Report> {
        let report = Arc::new(state.report(None, now));
        self.0.bus.send(Event::Report(report.clone()));
        let mut venues: Vec<Arc<str>> = state.venues().all_rules().map(|r| r.id.clone()).collect();
        venues.sort_unstable();
        for venue in venues {
            let of_venue = state.report(Some(&venue), now);
            self.0.bus.send(Event::Report(Arc::new(of_venue)));
        }
        report
    }

    /// Publishes the alerts that grouped more events since the last call (a few times a
    /// second: a burst of flagged pours is one frame, not one a pour).
    pub fn publish_alert_updates(&self) {
        let mut state = self.0.bar.hold();
        for alert in state.alert_updates() {
            let after = alert.last_pour_id;
            self.0.bus.send(Event::Alert(Arc::new(AlertEvent {
                change: Change::Updated,
                seq: 0,
                after,
                alert,
            })));
        }
    }

    /// This server's condition `kind` holds (`message` says how): its alert opens and is
    /// published, unless it is open already.
    pub fn raise(&self, kind: AlertKind, message: String) {
        let opened = self.own_alerts().raise(kind, message, Timestamp::now());
        if let Some(alert) = opened {
            // The cause was logged where it was found: not said twice.
            log::warn!("alert {} opened: {}", alert.id, kind.name());
            self.send_server_alert(Change::Opened, alert);
        }
    }

    /// This server's condition `kind` cleared: its alert resolves and is published.
    pub fn clear(&self, kind: AlertKind) {
        let resolved = self.own_alerts().clear(kind, Timestamp::now());
        if let Some(alert) = resolved {
            log::info!("alert {} resolved: {}", alert.id, kind.name());
            self.send_server_alert(Change::Resolved, alert);
        }
    }

    /// Acknowledges one of this server's own alerts and publishes that.
    pub fn acknowledge(
        &self,
        id: u64,
        by: Option<String>,
        note: Option<String>,
    ) -> Result<Alert, KegError> {
        let acknowledged = self
            .own_alerts()
            .acknowledge(id, by, note, Timestamp::now())?;
        self.send_server_alert(Change::Acknowledged, acknowledged.clone());
        Ok(acknowledged)
    }

    /// Reads this server's own alerts.
    pub fn server_alerts<T>(&self, read: impl FnOnce(&ServerAlerts) -> T) -> T {
        read(&self.own_alerts())
    }

    fn own_alerts(&self) -> std::sync::MutexGuard<'_, ServerAlerts> {
        self.0
            .server_alerts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Live only (no place in the log's sequence): a subscriber that resumes reads them
    /// from `GET /api/alerts`.
    fn send_server_alert(&self, change: Change, alert: Alert) {
        self.0.bus.send(Event::Alert(Arc::new(AlertEvent {
            change,
            seq: 0,
            after: 0,
            alert,
        })));
    }

    fn send_notices(&self, notices: Vec<Notice>) {
        for notice in notices {
            self.0.bus.send(match notice {
                Notice::Keg(event) => Event::Keg(event),
                Notice::Alert(event) => Event::Alert(event),
            });
        }
    }
}

/// This machine's name, for the alerts about it (a container's is its id, as Docker sets it).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "this server".to_owned())
}
