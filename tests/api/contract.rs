//! The store contract: what a user of the API observes of the store, written once and run
//! against every store the server has (the journal, memory only, and PostgreSQL), so they
//! cannot drift. Every decision of `crate::decide` shows here: ids, flags, keg levels and
//! events, idempotency keys' answers, deletions. Memory keeps nothing across a restart, so
//! a contract's part after one runs on the other two.

use std::sync::Arc;

use reqwest::StatusCode;

use crate::helpers::{TestApp, assert_error, ids_of, spawn_with, tempdir, within};
use crate::postgres::Postgres;
use crate::sales::{
    a_day_over_the_goal_is_an_alert_until_an_import_brings_it_under,
    line_cleaning_pours_water_that_no_keg_variance_or_history_counts,
    variance_is_sold_against_poured_exactly_once_and_kept,
};

/// Where a server under test keeps its pours.
pub enum Backend {
    Journal(std::path::PathBuf),
    Memory,
    Postgres(Postgres),
}

impl Backend {
    fn memory(_: &str) -> Option<Backend> {
        Some(Backend::Memory)
    }

    fn journal(name: &str) -> Option<Backend> {
        Some(Backend::Journal(tempdir(&format!("contract-{name}"))))
    }

    fn postgres(_: &str) -> Option<Backend> {
        Postgres::start().map(Backend::Postgres)
    }

    /// A server on this store (a new one on the same data after a restart).
    pub async fn server(&self) -> TestApp {
        self.server_with(&[]).await
    }

    /// A server on this store, with more flags.
    pub async fn server_with(&self, flags: &[&str]) -> TestApp {
        let url;
        let mut argv = match self {
            Backend::Journal(dir) => vec!["--data-dir", dir.to_str().unwrap()],
            // What `spawn_with` starts on unless told otherwise.
            Backend::Memory => Vec::new(),
            Backend::Postgres(pg) => {
                url = pg.url();
                vec!["--database-url", &url]
            }
        };
        argv.extend_from_slice(flags);
        spawn_with(&argv).await
    }

    /// `app` stopped, and a new server on the same data; `None` for memory, which keeps
    /// nothing: the contract ends there.
    pub async fn restart(&self, app: TestApp, flags: &[&str]) -> Option<TestApp> {
        app.shutdown().await;
        match self {
            Backend::Memory => None,
            _ => Some(self.server_with(flags).await),
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        if let Backend::Journal(dir) = self {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Each contract as a test per store.
macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod journal {
            $(
                #[tokio::test]
                async fn $name() {
                    if let Some(backend) = super::Backend::journal(stringify!($name)) {
                        super::$name(&backend).await;
                    }
                }
            )*
        }
        mod memory {
            $(
                #[tokio::test]
                async fn $name() {
                    if let Some(backend) = super::Backend::memory(stringify!($name)) {
                        super::$name(&backend).await;
                    }
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    if let Some(backend) = super::Backend::postgres(stringify!($name)) {
                        super::$name(&backend).await;
                    }
                }
            )*
        }
    };
}

contract!(
    ids_increase_from_one_and_are_never_reused,
    a_pour_is_read_deleted_and_gone,
    pages_filters_and_totals,
    idempotency_keys_replay_conflict_and_race,
    subscribers_hear_pours_and_deletions_in_order_and_since_replays,
    the_report_counts_every_pour_and_deletion,
    everything_survives_a_restart,
    flags_are_stored_filtered_counted_and_kept_across_a_restart,
    kegs_draw_down_announce_each_level_once_and_survive_a_restart,
    keg_levels_are_exact_under_concurrent_pours_deletions_and_a_keg_change,
    keg_events_are_replayed_in_their_places_by_since_and_events_since,
    a_quiet_tap_is_announced_once_and_back_with_its_next_pour,
    keg_changes_retried_under_an_idempotency_key_happen_once,
    tap_settings_name_a_tap_and_move_its_low_level_and_are_kept,
    alerts_open_group_acknowledge_and_resolve_and_are_the_same_after_a_restart,
    an_alert_about_pours_resolves_after_its_window_and_a_later_pour_opens_another,
    webhooks_are_kept_changed_and_deleted_and_never_show_their_secret,
    a_webhook_message_is_retried_under_one_id_until_delivered,
    each_webhook_format_posts_the_body_its_receiver_reads,
    a_gone_receiver_disables_its_webhook_with_an_alert_that_outlives_a_restart,
    a_mistyped_tap_is_forgotten_once_its_pours_are_deleted,
    venues_are_made_listed_renamed_and_kept,
    pours_name_their_venue_and_the_default_one_is_whichever_the_flag_names,
    a_venue_s_people_see_and_change_only_their_venue,
    each_venue_judges_after_hours_and_today_on_its_own_clock,
    a_venue_s_webhook_hears_its_venue_and_the_chain_s_hears_every_venue_by_name,
    history_counts_business_days_by_beverage_tap_and_glass_and_forgets_deletions,
    a_keg_s_yield_counts_its_pours_spills_deletions_and_what_was_left,
    pours_history_and_kegs_read_as_csv_as_they_read_as_json,
    the_export_streams_every_pour_stored_when_it_began,
    variance_is_sold_against_poured_exactly_once_and_kept,
    line_cleaning_pours_water_that_no_keg_variance_or_history_counts,
    a_day_over_the_goal_is_an_alert_until_an_import_brings_it_under,
    temperatures_are_kept_read_a_mean_a_minute_after_a_day_and_alert_once,
);

async fn ids_increase_from_one_and_are_never_reused(backend: &Backend) {
    let app = backend.server().await;
    for expected in 1..=3 {
        assert_eq!(app.pour(1, 500.0).await["id"], expected);
    }
    assert_eq!(app.delete("/api/beers/3").await, StatusCode::NO_CONTENT);
    assert_eq!(app.pour(1, 500.0).await["id"], 4, "3 is not given again");
}

async fn a_pour_is_read_deleted_and_gone(backend: &Backend) {
    let app = backend.server().await;
    let pour = app.pour(7, 250.0).await;
    assert_eq!(pour["type"], "half");
    let (status, body) = app.get("/api/beers/1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["beer"], pour);
    assert_eq!(app.delete("/api/beers/1").await, StatusCode::NO_CONTENT);
    let (status, body) = app.get("/api/beers/1").await;
    assert_error(status, &body, 404);
    assert_eq!(app.delete("/api/beers/1").await, StatusCode::NOT_FOUND);
    assert_eq!(app.delete("/api/beers/99").await, StatusCode::NOT_FOUND);
}

async fn pages_filters_and_totals(backend: &Backend) {
    let app = backend.server().await;
    // Ids 1..=9: taps 1, 2, 3 in turn; halves, pints and steins in turn; an hour apart.
    for i in 0..9u32 {
        let volume = [250, 500, 900][(i % 3) as usize];
        let body = format!(
            r#"{{"tapId": {}, "volume": {volume}, "timestamp": "2026-01-01T{:02}:00:00Z"}}"#,
            i % 3 + 1,
            i + 10
        );
        assert_eq!(app.post_raw(body).await.0, StatusCode::CREATED);
    }
    assert_eq!(app.delete("/api/beers/5").await, StatusCode::NO_CONTENT);
    for (query, expected, total) in [
        ("page_size=3", vec![1, 2, 3], 8),
        ("page=2&page_size=3", vec![4, 6, 7], 8),
        ("after=4&page_size=2", vec![6, 7], 8),
        ("after=4&page=2&page_size=2", vec![8, 9], 8),
        ("tapId=1", vec![1, 4, 7], 3),
        ("type=pint", vec![2, 8], 2),
        ("tapId=2&type=pint", vec![2, 8], 2),
        ("tapId=3&type=stein", vec![3, 6, 9], 3),
        (
            "from=2026-01-01T12:00:00Z&to=2026-01-01T15:00:00Z",
            vec![3, 4, 6],
            3,
        ),
        ("from=2026-01-01T12:00:00Z&tapId=1&page_size=1", vec![4], 2),
        ("page=9", vec![], 8),
    ] {
        let (status, page) = app.get(&format!("/api/beers?{query}")).await;
        assert_eq!(status, StatusCode::OK, "{query}: {page}");
        assert_eq!(ids_of(&page), expected, "{query}: {page}");
        assert_eq!(page["total"], total, "{query}: {page}");
    }
    let (_, health) = app.get("/health").await;
    assert_eq!(health["pours"], 8);
}

async fn idempotency_keys_replay_conflict_and_race(backend: &Backend) {
    let app = Arc::new(backend.server().await);
    let body = r#"{"tapId": 4, "volume": 500}"#;
    let (status, first) = app.post_keyed("k-1", body).await;
    assert_eq!(status, StatusCode::CREATED);
    let (mut subscriber, _) = app.subscribe("").await;
    let (status, again) = app.post_keyed("k-1", body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again, first);
    // Same meaning, other bytes: still the same request.
    let (status, again) = app
        .post_keyed("k-1", r#"{ "volume": 500.0, "tapId": 4 }"#)
        .await;
    assert_eq!((status, &again), (StatusCode::OK, &first));
    let (status, other) = app
        .post_keyed("k-1", r#"{"tapId": 4, "volume": 501}"#)
        .await;
    assert!(assert_error(status, &other, 409).contains("k-1"));
    app.pour(9, 300.0).await;
    assert_eq!(
        subscriber.next_pour().await["tapId"],
        9,
        "the retries broadcast nothing"
    );
    // A key is bound to the device's timestamp too.
    let timed = r#"{"tapId": 4, "volume": 500, "timestamp": "2026-01-01T00:00:00Z"}"#;
    assert_eq!(app.post_keyed("k-t", timed).await.0, StatusCode::CREATED);
    assert_eq!(app.post_keyed("k-t", timed).await.0, StatusCode::OK);
    assert_eq!(app.post_keyed("k-t", body).await.0, StatusCode::CONFLICT);
    // Twenty at once with one key: one pour.
    let racers: Vec<_> = (0..20)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move { app.post_keyed("k-race", body).await })
        })
        .collect();
    let mut created = 0;
    let mut ids = std::collections::BTreeSet::new();
    for racer in racers {
        let (status, answer) = racer.await.unwrap();
        created += usize::from(status == StatusCode::CREATED);
        ids.insert(answer["beer"]["id"].as_u64().unwrap());
    }
    assert_eq!(
        (created, ids.len()),
        (1, 1),
        "one pour, one answer: {ids:?}"
    );
    let id = *ids.first().unwrap();
    assert_eq!(
        app.delete(&format!("/api/beers/{id}")).await,
        StatusCode::NO_CONTENT
    );
    let (status, body) = app.post_keyed("k-race", body).await;
    let message = assert_error(status, &body, 409);
    assert!(message.contains("deleted"), "{message}");
    let (_, page) = app.get("/api/beers").await;
    assert_eq!(
        page["total"], 3,
        "k-1, k-t and tap 9's; nothing stored again: {page}"
    );
}

async fn subscribers_hear_pours_and_deletions_in_order_and_since_replays(backend: &Backend) {
    let app = Arc::new(backend.server().await);
    let (mut live, hello) = app.subscribe("").await;
    assert_eq!(hello["lastId"], 0);
    app.pour_from_taps(3, 10).await;
    let mut heard = Vec::new();
    for _ in 0..30 {
        heard.push(live.next_pour().await["id"].as_u64().unwrap());
    }
    assert_eq!(
        heard,
        (1..=30).collect::<Vec<_>>(),
        "every pour once, in order"
    );
    assert_eq!(app.delete("/api/beers/7").await, StatusCode::NO_CONTENT);
    assert_eq!(live.next_event("deleted").await["id"], 7);
    let (mut late, _) = app.subscribe("?since=25").await;
    for expected in 26..=30 {
        assert_eq!(late.next_pour().await["id"], expected);
    }
    app.pour(9, 500.0).await;
    assert_eq!(
        late.next_pour().await["id"],
        31,
        "then live, no gap, no repeat"
    );
    assert_eq!(live.next_pour().await["id"], 31);
}

async fn the_report_counts_every_pour_and_deletion(backend: &Backend) {
    let app = backend.server().await;
    for (tap, volume) in [(1, 500.0), (1, 250.0), (2, 900.0), (2, 500.0)] {
        app.pour(tap, volume).await;
    }
    assert_eq!(app.delete("/api/beers/1").await, StatusCode::NO_CONTENT);
    // Once answered, a change is in this server's report, whatever the store.
    let (_, report) = app.get("/api/report").await;
    assert_eq!(report["totalPours"], 3, "{report}");
    assert_eq!(report["totalVolumeMl"], 1650.0, "{report}");
    let by_type: Vec<(String, u64)> = report["byType"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["type"].as_str().unwrap().to_owned(),
                t["pours"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        by_type,
        [
            ("half".into(), 1),
            ("pint".into(), 1),
            ("stein".into(), 1),
            ("unclassified".into(), 0)
        ]
    );
    let taps: Vec<u64> = report["byTap"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["pours"].as_u64().unwrap())
        .collect();
    assert_eq!(taps, [1, 2], "{report}");
}

async fn everything_survives_a_restart(backend: &Backend) {
    let app = backend.server().await;
    app.pour(1, 500.0).await;
    app.pour(2, 250.0).await;
    assert_eq!(
        app.post_keyed("k-restart", r#"{"tapId": 5, "volume": 500}"#)
            .await
            .0,
        StatusCode::CREATED
    );
    assert_eq!(app.delete("/api/beers/1").await, StatusCode::NO_CONTENT);
    let Some(app) = backend.restart(app, &[]).await else {
        return;
    };
    let (_, page) = app.get("/api/beers").await;
    assert_eq!(ids_of(&page), [2, 3]);
    assert_eq!(
        app.post_keyed("k-restart", r#"{"tapId": 5, "volume": 500}"#)
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(app.pour(1, 500.0).await["id"], 4);
    let (_, report) = app.get("/api/report").await;
    assert_eq!(report["totalPours"], 3, "{report}");
}

/// The flags of a pour as the API shows them.
fn flags_of(pour: &serde_json::Value) -> Vec<&str> {
    pour["flags"]
        .as_array()
        .unwrap_or_else(|| panic!("no flags in {pour}"))
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect()
}

async fn flags_are_stored_filtered_counted_and_kept_across_a_restart(backend: &Backend) {
    // The pours are timed days ago: a year's window keeps their alerts open.
    const HOURS: &[&str] = &[
        "--opening-hours",
        "16:00-02:00",
        "--alert-window",
        "31536000",
    ];
    let app = backend.server_with(HOURS).await;
    let post = |tap: u32, volume: f64, at: &str| {
        let body = format!(r#"{{"tapId": {tap}, "volume": {volume}, "timestamp": "{at}"}}"#);
        let app = &app;
        async move {
            let (status, body) = app.post_raw(body).await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
            body["beer"].clone()
        }
    };
    // A ghost drip; a pint poured to 650 ml a second later (it takes 3.25 s at 200 ml/s);
    // a pint at 03:10; a litre and a half; a plain pint.
    let ghost = post(1, 6.0, "2026-11-20T20:00:00Z").await;
    assert_eq!(ghost["type"], "unclassified");
    assert_eq!(flags_of(&ghost), ["tiny", "unclassified"]);
    assert_eq!(
        flags_of(&post(1, 650.0, "2026-11-20T20:00:01Z").await),
        ["overPour", "burst"]
    );
    assert_eq!(
        flags_of(&post(2, 500.0, "2026-11-21T03:10:00Z").await),
        ["afterHours"]
    );
    assert_eq!(
        flags_of(&post(2, 1500.0, "2026-11-21T20:00:00Z").await),
        ["unclassified"]
    );
    assert!(flags_of(&post(3, 500.0, "2026-11-20T20:00:00Z").await).is_empty());

    let listed = |query: &'static str| {
        let app = &app;
        async move {
            let (status, page) = app.get(&format!("/api/beers?{query}")).await;
            assert_eq!(status, StatusCode::OK, "{query}: {page}");
            (ids_of(&page), page["total"].as_u64().unwrap())
        }
    };
    assert_eq!(listed("flag=burst").await, (vec![2], 1));
    assert_eq!(listed("flag=unclassified").await, (vec![1, 4], 2));
    assert_eq!(listed("type=unclassified").await, (vec![1, 4], 2));
    assert_eq!(listed("flag=unclassified&tapId=2").await, (vec![4], 1));
    assert_eq!(listed("flag=tiny&page_size=1&page=2").await, (vec![], 1));
    let (status, body) = app.get("/api/beers?flag=ghost").await;
    assert!(
        assert_error(status, &body, 422).contains("overPour"),
        "{body}"
    );

    // One alert per tap and flag, the after-hours pour one of its own kind.
    let alerts = |page: serde_json::Value| -> Vec<String> {
        let mut all: Vec<String> = page["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                format!(
                    "{} tap {} {} {}",
                    a["kind"], a["tapId"], a["flag"], a["count"]
                )
            })
            .collect();
        all.reverse();
        all
    };
    let expected_alerts = [
        r#""flaggedPours" tap 1 "tiny" 1"#,
        r#""flaggedPours" tap 1 "unclassified" 1"#,
        r#""flaggedPours" tap 1 "overPour" 1"#,
        r#""flaggedPours" tap 1 "burst" 1"#,
        r#""afterHours" tap 2 null 1"#,
        r#""flaggedPours" tap 2 "unclassified" 1"#,
    ];
    assert_eq!(alerts(app.get("/api/alerts").await.1), expected_alerts);

    let flagged = |report: &serde_json::Value| report["flagged"].clone();
    let expected = serde_json::json!({"tiny": 1, "unclassified": 2, "overPour": 1, "afterHours": 1, "burst": 1, "emptyKeg": 0, "future": 0, "cleaning": 0});
    assert_eq!(flagged(&app.get("/api/report").await.1), expected);
    assert_eq!(app.delete("/api/beers/4").await, StatusCode::NO_CONTENT);
    let (_, report) = app.get("/api/report").await;
    assert_eq!(report["flagged"]["unclassified"], 1, "{report}");

    let Some(app) = backend.restart(app, HOURS).await else {
        return;
    };
    let (_, one) = app.get("/api/beers/2").await;
    assert_eq!(flags_of(&one["beer"]), ["overPour", "burst"]);
    // A deleted pour's alert stays: it was seen.
    assert_eq!(alerts(app.get("/api/alerts").await.1), expected_alerts);
    let (_, report) = app.get("/api/report").await;
    assert_eq!(report["flagged"]["unclassified"], 1, "{report}");
    assert_eq!(report["flagged"]["burst"], 1, "{report}");
    // Tap 1's latest pour (20:00:01) is remembered: half a litre a second later is a burst.
    let body = r#"{"tapId": 1, "volume": 500, "timestamp": "2026-11-20T20:00:02Z"}"#;
    let (_, again) = app.post_raw(body).await;
    assert_eq!(flags_of(&again["beer"]), ["burst"]);
}

/// What a subscriber heard next, in short: `pour 3`, `keg low 1 #2`, `deleted 2`,
/// `alert opened kegLow 1 #3`. Alerts about flagged and after-hours pours are passed over
/// (they have contracts of their own), though they take their numbers in the sequence.
async fn heard(subscriber: &mut crate::helpers::Subscriber) -> String {
    loop {
        let frame = subscriber.next_change().await;
        let kind = frame["alert"]["kind"].as_str().unwrap_or("");
        if !matches!(kind, "flaggedPours" | "afterHours") {
            return short(&frame);
        }
    }
}

/// A frame, in short (see [`heard`]).
fn short(frame: &serde_json::Value) -> String {
    match frame["event"].as_str().unwrap() {
        "pour" => format!("pour {}", frame["beer"]["id"]),
        "deleted" => format!("deleted {}", frame["id"]),
        "keg" => format!(
            "keg {} {} #{}",
            frame["kind"].as_str().unwrap(),
            frame["keg"]["id"],
            frame["seq"]
        ),
        "tap" => format!(
            "tap {} {} #{}",
            frame["kind"].as_str().unwrap(),
            frame["tapId"],
            frame["seq"]
        ),
        "alert" => format!(
            "alert {} {} {} #{}",
            frame["change"].as_str().unwrap(),
            frame["alert"]["kind"].as_str().unwrap(),
            frame["alert"]["id"],
            frame["seq"]
        ),
        other => panic!("unexpected {other}: {frame}"),
    }
}

async fn kegs_draw_down_announce_each_level_once_and_survive_a_restart(backend: &Backend) {
    let app = backend.server().await;
    let (mut subscriber, _) = app.subscribe("").await;
    let (status, tapped) = app
        .post_json(
            "/api/kegs",
            r#"{"tapId": 1, "beverage": "Pils", "sizeMl": 1000}"#,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{tapped}");
    let keg = &tapped["keg"];
    assert_eq!(
        (keg["id"].as_u64(), keg["remainingMl"].as_f64()),
        (Some(1), Some(1000.0))
    );
    assert_eq!(
        (keg["percent"].as_f64(), keg["status"].as_str()),
        (Some(100.0), Some("current"))
    );
    assert_eq!(heard(&mut subscriber).await, "keg tapped 1 #1");
    // 15 % of a litre is 150 ml: low once 850 ml are drawn, empty at 1000.
    app.pour(1, 500.0).await;
    app.pour(1, 349.0).await;
    assert_eq!(heard(&mut subscriber).await, "pour 1");
    assert_eq!(heard(&mut subscriber).await, "pour 2");
    // (#2: 349 ml fits no glass, an alert passed over here.)
    app.pour(1, 1.0).await;
    assert_eq!(heard(&mut subscriber).await, "pour 3");
    assert_eq!(heard(&mut subscriber).await, "keg low 1 #3");
    assert_eq!(heard(&mut subscriber).await, "alert opened kegLow 2 #4");
    let last = app.pour(1, 150.0).await;
    assert!(
        !last["flags"]
            .as_array()
            .unwrap()
            .contains(&"emptyKeg".into())
    );
    assert_eq!(heard(&mut subscriber).await, "pour 4");
    assert_eq!(heard(&mut subscriber).await, "keg empty 1 #7");
    assert_eq!(heard(&mut subscriber).await, "alert resolved kegLow 2 #8");
    assert_eq!(heard(&mut subscriber).await, "alert opened kegEmpty 5 #9");
    // Timed two minutes on (within the clock skew), so that it is not a burst.
    let later = chrono::Utc::now() + chrono::Duration::seconds(120);
    let (_, over) = app
        .post_raw(
            serde_json::json!({"tapId": 1, "volume": 100, "timestamp": later.to_rfc3339()})
                .to_string(),
        )
        .await;
    assert_eq!(
        over["beer"]["flags"],
        serde_json::json!(["emptyKeg"]),
        "{over}"
    );
    assert_eq!(heard(&mut subscriber).await, "pour 5");
    let (_, keg) = app.get("/api/kegs/1").await;
    assert_eq!(keg["keg"]["remainingMl"], -100.0);
    assert_eq!(
        (keg["keg"]["low"].as_bool(), keg["keg"]["empty"].as_bool()),
        (Some(true), Some(true))
    );
    assert_eq!(app.delete("/api/beers/5").await, StatusCode::NO_CONTENT);
    assert_eq!(heard(&mut subscriber).await, "deleted 5");
    let (_, keg) = app.get("/api/kegs/1").await;
    assert_eq!(
        keg["keg"]["remainingMl"], 0.0,
        "a deleted pour gives its volume back"
    );

    // Kegbot's mistake, put right: the keg was twice that size. 1000 ml left of 2000.
    let (status, corrected) = app
        .send_json(
            "PATCH",
            "/api/kegs/1",
            r#"{"sizeMl": 2000, "beverage": "Pils vom Fass"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{corrected}");
    assert_eq!(corrected["keg"]["remainingMl"], 1000.0);
    assert_eq!(corrected["keg"]["percent"], 50.0);
    assert_eq!(heard(&mut subscriber).await, "keg corrected 1 #10");
    assert_eq!(
        heard(&mut subscriber).await,
        "alert resolved kegEmpty 5 #11",
        "it has beer again"
    );
    let (status, body) = app.send_json("PATCH", "/api/kegs/1", r#"{}"#).await;
    assert_error(status, &body, 422);
    let (_, before) = app.get("/api/kegs/1").await;

    drop(subscriber);
    let Some(app) = backend.restart(app, &[]).await else {
        return;
    };
    let (_, after) = app.get("/api/kegs/1").await;
    assert_eq!(
        after, before,
        "kegs are what the log says, after a restart too"
    );
    let (mut subscriber, _) = app.subscribe("").await;
    // 200 ml left of 2000 is under 15 %, but the keg said it was low already. (#12: the
    // pour opens an alert about a flag, passed over here.)
    app.pour(1, 800.0).await;
    assert_eq!(heard(&mut subscriber).await, "pour 6");
    let (status, second) = app
        .post_json(
            "/api/kegs",
            r#"{"tapId": 1, "beverage": "Helles", "size": "euro-30"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    assert_eq!(second["keg"]["id"], 2);
    assert_eq!(second["keg"]["sizeMl"], 30_000.0);
    assert_eq!(
        heard(&mut subscriber).await,
        "keg finished 1 #13",
        "not low again"
    );
    assert_eq!(heard(&mut subscriber).await, "keg tapped 2 #14");
    let (status, body) = app.post_json("/api/kegs/1/finish", "").await;
    assert!(assert_error(status, &body, 409).contains("finished"));
    let (status, body) = app.post_json("/api/kegs/99/finish", "").await;
    assert_error(status, &body, 404);
    let ids = |body: &serde_json::Value| -> Vec<u64> {
        body["kegs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["id"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(ids(&app.get("/api/kegs?status=current").await.1), [2]);
    assert_eq!(ids(&app.get("/api/kegs?status=finished").await.1), [1]);
    assert_eq!(ids(&app.get("/api/kegs?tapId=1").await.1), [1, 2]);
    app.pour(1, 500.0).await;
    let (_, taps) = app.get("/api/taps").await;
    let tap = &taps["taps"][0];
    assert_eq!(
        (tap["tapId"].as_u64(), tap["keg"]["id"].as_u64()),
        (Some(1), Some(2))
    );
    assert_eq!(tap["keg"]["remainingMl"], 29_500.0);
    assert!(tap["paceMlPerHour"].as_f64().unwrap() >= 500.0, "{taps}");
    assert!(tap["forecastEmptyAt"].is_string(), "{taps}");
    let (_, report) = app.get("/api/report").await;
    assert_eq!(report["levels"][0]["kegId"], 2, "{report}");
    assert_eq!(report["levels"][0]["remainingMl"], 29_500.0, "{report}");
}

async fn keg_levels_are_exact_under_concurrent_pours_deletions_and_a_keg_change(backend: &Backend) {
    let app = Arc::new(backend.server().await);
    let (status, _) = app
        .post_json(
            "/api/kegs",
            r#"{"tapId": 1, "beverage": "Pils", "size": "euro-50"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    // Pours of 333.3 ml from tap 1 and tap 2, and a new keg on tap 1, all at once.
    let mut tasks = Vec::new();
    for i in 0..40u32 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            app.pour(1 + i % 2, 333.3).await["id"].as_u64().unwrap()
        }));
    }
    let changed = {
        let app = app.clone();
        tokio::spawn(async move {
            app.post_json(
                "/api/kegs",
                r#"{"tapId": 1, "beverage": "Dunkel", "sizeMl": 20000}"#,
            )
            .await
        })
    };
    let mut ids = Vec::new();
    for task in tasks {
        ids.push(task.await.unwrap());
    }
    assert_eq!(changed.await.unwrap().0, StatusCode::CREATED);
    // Delete every third pour, concurrently.
    let deletions: Vec<_> = ids
        .iter()
        .filter(|id| *id % 3 == 0)
        .map(|id| {
            let app = app.clone();
            let path = format!("/api/beers/{id}");
            tokio::spawn(async move { app.delete(&path).await })
        })
        .collect();
    for deletion in deletions {
        assert_eq!(deletion.await.unwrap(), StatusCode::NO_CONTENT);
    }
    // Whatever the interleaving, both kegs hold exactly what their tap's live pours took.
    let (_, one) = app.get("/api/kegs/1").await;
    let (_, two) = app.get("/api/kegs/2").await;
    let (_, live) = app.get("/api/beers?tapId=1&page_size=1000").await;
    let tap_one = live["beers"].as_array().unwrap().len() as f64;
    let drawn = one["keg"]["drawnMl"].as_f64().unwrap() + two["keg"]["drawnMl"].as_f64().unwrap();
    assert_eq!(
        (drawn * 1000.0).round(),
        (tap_one * 333_300.0).round(),
        "{one} {two}"
    );
    for keg in [&one["keg"], &two["keg"]] {
        let (start, drawn, left) = (
            keg["startMl"].as_f64().unwrap(),
            keg["drawnMl"].as_f64().unwrap(),
            keg["remainingMl"].as_f64().unwrap(),
        );
        assert_eq!(
            ((start - drawn) * 1000.0).round(),
            (left * 1000.0).round(),
            "{keg}"
        );
    }
    assert_eq!(one["keg"]["status"], "finished");
    // And a server that reads the log afresh finds the same.
    let app = Arc::into_inner(app).expect("the tasks are done");
    let Some(app) = backend.restart(app, &[]).await else {
        return;
    };
    assert_eq!(app.get("/api/kegs/1").await.1, one);
    assert_eq!(app.get("/api/kegs/2").await.1, two);
}

async fn keg_events_are_replayed_in_their_places_by_since_and_events_since(backend: &Backend) {
    let app = backend.server().await;
    let keg = r#"{"tapId": 1, "beverage": "Pils", "sizeMl": 1000}"#;
    assert_eq!(app.post_json("/api/kegs", keg).await.0, StatusCode::CREATED);
    for volume in [500.0, 350.0, 150.0] {
        app.pour(1, volume).await;
    }
    assert_eq!(
        app.post_json("/api/kegs/1/finish", "").await.0,
        StatusCode::OK
    );
    // Keg, tap and alert events share one sequence (#4: 350 ml fits no glass, an alert
    // passed over here).
    let everything = [
        "keg tapped 1 #1",
        "pour 1",
        "pour 2",
        "keg low 1 #2",
        "alert opened kegLow 1 #3",
        "pour 3",
        "keg empty 1 #5",
        "alert resolved kegLow 1 #6",
        "alert opened kegEmpty 3 #7",
        "keg finished 1 #8",
        "alert resolved kegEmpty 3 #9",
    ];
    let mut subscribers = Vec::new();
    for (query, expected) in [
        ("since=0", &everything[..]),
        // From pour 2 on: the events after it, in their places (the low one may be a
        // repeat for whoever heard pour 2: its seq says so).
        ("since=2", &everything[3..]),
        // Exactly the events after #4.
        ("since=2&eventsSince=4", &everything[5..]),
        ("eventsSince=7", &everything[9..]),
    ] {
        let (mut subscriber, _) = app.subscribe(&format!("?{query}")).await;
        let mut got = Vec::new();
        for _ in 0..expected.len() {
            got.push(heard(&mut subscriber).await);
        }
        assert_eq!(got, expected, "{query}");
        subscribers.push(subscriber);
    }
    // Then live, with nothing repeated.
    let keg = r#"{"tapId": 2, "beverage": "Helles", "sizeMl": 1000}"#;
    assert_eq!(app.post_json("/api/kegs", keg).await.0, StatusCode::CREATED);
    for subscriber in &mut subscribers {
        assert_eq!(heard(subscriber).await, "keg tapped 2 #10");
    }
    // A server that reads the log afresh replays the same events, with the same numbers.
    drop(subscribers);
    let Some(app) = backend.restart(app, &[]).await else {
        return;
    };
    let (mut subscriber, _) = app.subscribe("?since=0").await;
    for expected in everything.iter().chain(&["keg tapped 2 #10"]) {
        assert_eq!(heard(&mut subscriber).await, *expected);
    }
}

async fn a_quiet_tap_is_announced_once_and_back_with_its_next_pour(backend: &Backend) {
    let app = backend.server_with(&["--quiet-after", "0.3"]).await;
    let (mut subscriber, _) = app.subscribe("").await;
    let keg = r#"{"tapId": 5, "beverage": "Pils", "size": "euro-20"}"#;
    assert_eq!(app.post_json("/api/kegs", keg).await.0, StatusCode::CREATED);
    assert_eq!(heard(&mut subscriber).await, "keg tapped 1 #1");
    // Nothing pours: the tap goes quiet, once.
    assert_eq!(heard(&mut subscriber).await, "tap quiet 5 #2");
    assert_eq!(heard(&mut subscriber).await, "alert opened tapQuiet 1 #3");
    let (_, taps) = app.get("/api/taps").await;
    assert_eq!(taps["taps"][0]["quiet"], true, "{taps}");
    app.pour(5, 500.0).await;
    assert_eq!(heard(&mut subscriber).await, "pour 1");
    assert_eq!(heard(&mut subscriber).await, "tap back 5 #4");
    assert_eq!(heard(&mut subscriber).await, "alert resolved tapQuiet 1 #5");
    // And quiet again after the next quiet spell, not before: a new alert.
    assert_eq!(heard(&mut subscriber).await, "tap quiet 5 #6");
    assert_eq!(heard(&mut subscriber).await, "alert opened tapQuiet 2 #7");
    // A server that reads the log afresh knows the tap is quiet, and does not say it again.
    drop(subscriber);
    let Some(app) = backend.restart(app, &["--quiet-after", "0.3"]).await else {
        return;
    };
    let (mut subscriber, _) = app.subscribe("?since=0").await;
    for expected in [
        "keg tapped 1 #1",
        "tap quiet 5 #2",
        "alert opened tapQuiet 1 #3",
        "pour 1",
        "tap back 5 #4",
        "alert resolved tapQuiet 1 #5",
        "tap quiet 5 #6",
        "alert opened tapQuiet 2 #7",
    ] {
        assert_eq!(heard(&mut subscriber).await, expected);
    }
    app.pour(5, 500.0).await;
    assert_eq!(heard(&mut subscriber).await, "pour 2");
    assert_eq!(
        heard(&mut subscriber).await,
        "tap back 5 #8",
        "not quiet twice"
    );
    assert_eq!(heard(&mut subscriber).await, "alert resolved tapQuiet 2 #9");
}

async fn keg_changes_retried_under_an_idempotency_key_happen_once(backend: &Backend) {
    let app = backend.server().await;
    let tap = r#"{"tapId": 2, "beverage": "Pils", "sizeMl": 1000}"#;
    let (status, first) = app.send_keyed("POST", "/api/kegs", "keg-a", tap).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let (status, again) = app.send_keyed("POST", "/api/kegs", "keg-a", tap).await;
    assert_eq!(status, StatusCode::OK, "a retry: {again}");
    assert_eq!(again["keg"]["id"], first["keg"]["id"]);
    let other = r#"{"tapId": 2, "beverage": "Dunkel", "sizeMl": 1000}"#;
    let (status, body) = app.send_keyed("POST", "/api/kegs", "keg-a", other).await;
    assert!(assert_error(status, &body, 409).contains("keg-a"), "{body}");
    let spill = r#"{"spillMl": 100}"#;
    for _ in 0..2 {
        let (status, body) = app
            .send_keyed("PATCH", "/api/kegs/1", "spill-1", spill)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["keg"]["spilledMl"], 100.0, "spilled once: {body}");
    }
    for _ in 0..2 {
        let (status, body) = app
            .send_keyed("POST", "/api/kegs/1/finish", "finish-1", "")
            .await;
        assert_eq!(
            status,
            StatusCode::OK,
            "a retried finish is not a 409: {body}"
        );
    }
    let (_, kegs) = app.get("/api/kegs").await;
    assert_eq!(kegs["kegs"].as_array().unwrap().len(), 1, "{kegs}");
    // Keys are kept across a restart.
    let Some(app) = backend.restart(app, &[]).await else {
        return;
    };
    let (status, again) = app.send_keyed("POST", "/api/kegs", "keg-a", tap).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    let (status, body) = app
        .send_keyed("PATCH", "/api/kegs/1", "spill-1", spill)
        .await;
    assert_eq!(
        (status, &body["keg"]["spilledMl"]),
        (StatusCode::OK, &serde_json::json!(100.0))
    );
    let (_, kegs) = app.get("/api/kegs").await;
    assert_eq!(kegs["kegs"].as_array().unwrap().len(), 1, "{kegs}");
}

async fn tap_settings_name_a_tap_and_move_its_low_level_and_are_kept(backend: &Backend) {
    let app = backend.server().await;
    let (status, body) = app.get("/api/taps/7").await;
    assert_error(status, &body, 404);
    let keg = r#"{"tapId": 7, "beverage": "Stout", "sizeMl": 1000}"#;
    assert_eq!(app.post_json("/api/kegs", keg).await.0, StatusCode::CREATED);
    let (mut subscriber, _) = app.subscribe("").await;
    let (status, set) = app
        .send_json(
            "PATCH",
            "/api/taps/7",
            r#"{"name": "Left bar, 7", "lowPercent": 50}"#,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{set}");
    assert_eq!(
        (&set["tap"]["name"], &set["tap"]["lowPercent"]),
        (&serde_json::json!("Left bar, 7"), &serde_json::json!(50.0))
    );
    // At 50 %, half a litre out of a litre is low.
    app.pour(7, 500.0).await;
    assert_eq!(heard(&mut subscriber).await, "pour 1");
    assert_eq!(heard(&mut subscriber).await, "keg low 1 #2");
    let (status, body) = app.send_json("PATCH", "/api/taps/7", r#"{}"#).await;
    assert_error(status, &body, 422);
    let (status, body) = app
        .send_json("PATCH", "/api/taps/7", r#"{"lowPercent": 101}"#)
        .await;
    assert_error(status, &body, 422);
    drop(subscriber);
    let Some(app) = backend.restart(app, &[]).await else {
        return;
    };
    let (_, tap) = app.get("/api/taps/7").await;
    assert_eq!(tap["tap"]["name"], "Left bar, 7", "{tap}");
    assert_eq!(tap["tap"]["lowPercent"], 50.0);
    assert_eq!(tap["tap"]["keg"]["low"], true);
    // null goes back to the configured level; the name stays.
    let (_, tap) = app
        .send_json("PATCH", "/api/taps/7", r#"{"lowPercent": null}"#)
        .await;
    assert_eq!(
        (&tap["tap"]["name"], &tap["tap"]["lowPercent"]),
        (&serde_json::json!("Left bar, 7"), &serde_json::json!(15.0))
    );
    assert_eq!(tap["tap"]["keg"]["low"], false);
    let (_, tap) = app
        .send_json("PATCH", "/api/taps/7", r#"{"name": null}"#)
        .await;
    assert_eq!(tap["tap"]["name"], serde_json::Value::Null);
}

/// Pours `volume` on `tap` as timed `seconds_ago` by the device: spaced by a test so that
/// no pour is a burst (2 L take 10 s at the default flow), and the only flags are those it
/// means.
async fn pour_at(app: &TestApp, tap: u32, volume: f64, seconds_ago: i64) {
    let at = altair::pour::Timestamp::from_millis(
        altair::pour::Timestamp::now().millis() - seconds_ago * 1000,
    );
    let body = serde_json::json!({"tapId": tap, "volume": volume, "timestamp": at});
    let (status, body) = app.post_raw(body.to_string()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

/// The ids of a page of alerts, in its order.
fn alert_ids(page: &serde_json::Value) -> Vec<u64> {
    page["alerts"]
        .as_array()
        .unwrap_or_else(|| panic!("a page of alerts: {page}"))
        .iter()
        .map(|a| a["id"].as_u64().unwrap())
        .collect()
}

async fn alerts_open_group_acknowledge_and_resolve_and_are_the_same_after_a_restart(
    backend: &Backend,
) {
    let flags = [];
    let app = backend.server_with(&flags).await;
    let keg = r#"{"tapId": 1, "beverage": "Stout", "sizeMl": 1000}"#;
    assert_eq!(app.post_json("/api/kegs", keg).await.0, StatusCode::CREATED);
    // 100 ml of 1000 left: low.
    app.pour(1, 900.0).await;
    // 2 L fits no glass: 100 of them are one alert, counting them.
    for i in 0..100 {
        pour_at(&app, 2, 2000.0, 1500 - 15 * i).await;
    }
    let (status, all) = app.get("/api/alerts").await;
    assert_eq!(status, StatusCode::OK, "{all}");
    assert_eq!(alert_ids(&all), [2, 1], "newest first: {all}");
    assert_eq!(all["total"], 2);
    let low = &all["alerts"][1];
    assert_eq!(
        (
            low["kind"].as_str(),
            low["severity"].as_str(),
            low["state"].as_str()
        ),
        (Some("kegLow"), Some("warning"), Some("open"))
    );
    assert_eq!(
        (low["tapId"].as_u64(), low["kegId"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(low["message"], "Stout on tap 1 is low: 10 % left (100 ml)");
    let flagged = &all["alerts"][0];
    assert_eq!(
        (flagged["kind"].as_str(), flagged["flag"].as_str()),
        (Some("flaggedPours"), Some("unclassified"))
    );
    assert_eq!(
        (flagged["count"].as_u64(), flagged["severity"].as_str()),
        (Some(100), Some("info"))
    );
    assert_eq!(flagged["message"], "Tap 2: 100 unclassified pours");
    assert_eq!(flagged["lastPourId"], 101);
    assert_eq!(
        alert_ids(&app.get("/api/alerts?state=open&kind=kegLow").await.1),
        [1]
    );
    assert_eq!(alert_ids(&app.get("/api/alerts?tapId=2").await.1), [2]);
    assert_eq!(
        alert_ids(&app.get("/api/alerts?page=2&page_size=1").await.1),
        [1]
    );
    assert!(alert_ids(&app.get("/api/alerts?state=resolved").await.1).is_empty());
    for bad in [
        "state=gone",
        "kind=fire",
        "tapId=x",
        "page=0",
        "page_size=1001",
    ] {
        let (status, body) = app.get(&format!("/api/alerts?{bad}")).await;
        assert_error(status, &body, 400);
    }
    assert_eq!(app.get("/api/alerts/2").await.1["alert"], *flagged);
    let (status, body) = app.get("/api/alerts/9").await;
    assert_error(status, &body, 404);
    assert_eq!(app.get("/api/report").await.1["openAlerts"], 2);

    // Acknowledged once, under a key a retry may repeat; then it is no longer open.
    let note = r#"{"note": "meter on tap 2 recalibrated"}"#;
    let (status, acked) = app
        .send_keyed("POST", "/api/alerts/2/ack", "ack-2", note)
        .await;
    assert_eq!(status, StatusCode::OK, "{acked}");
    assert_eq!(acked["alert"]["state"], "acknowledged");
    assert_eq!(acked["alert"]["note"], "meter on tap 2 recalibrated");
    assert!(acked["alert"]["acknowledgedAt"].is_string(), "{acked}");
    let (status, again) = app
        .send_keyed("POST", "/api/alerts/2/ack", "ack-2", note)
        .await;
    assert_eq!((status, &again), (StatusCode::OK, &acked), "a retry");
    let (status, body) = app.post_json("/api/alerts/2/ack", "").await;
    assert!(assert_error(status, &body, 409).contains("acknowledged"));
    let (status, body) = app.post_json("/api/alerts/99/ack", "").await;
    assert_error(status, &body, 404);
    let (status, body) = app.post_json("/api/alerts/1/ack", r#"{"note": 5}"#).await;
    assert!(assert_error(status, &body, 422).contains("note"));
    assert_eq!(app.get("/api/report").await.1["openAlerts"], 1);
    // Acknowledged, it still groups its tap's pours.
    pour_at(&app, 2, 2000.0, 0).await;
    let (_, grouped) = app.get("/api/alerts/2").await;
    assert_eq!(
        (
            grouped["alert"]["count"].as_u64(),
            grouped["alert"]["state"].as_str()
        ),
        (Some(101), Some("acknowledged"))
    );
    let (_, before) = app.get("/api/alerts").await;

    let Some(app) = backend.restart(app, &flags).await else {
        return;
    };
    assert_eq!(
        app.get("/api/alerts").await.1,
        before,
        "the log says the same"
    );
    // A new keg on tap 1 clears its low one.
    let keg = r#"{"tapId": 1, "beverage": "Porter", "sizeMl": 1000}"#;
    assert_eq!(app.post_json("/api/kegs", keg).await.0, StatusCode::CREATED);
    let (_, low) = app.get("/api/alerts/1").await;
    assert_eq!(low["alert"]["state"], "resolved", "{low}");
    assert!(low["alert"]["resolvedAt"].is_string(), "{low}");
    let (status, body) = app.post_json("/api/alerts/1/ack", "").await;
    assert!(assert_error(status, &body, 409).contains("resolved"));
    assert_eq!(app.get("/api/report").await.1["openAlerts"], 0);
}

async fn an_alert_about_pours_resolves_after_its_window_and_a_later_pour_opens_another(
    backend: &Backend,
) {
    let flags = ["--alert-window", "0.3"];
    let app = backend.server_with(&flags).await;
    let (mut subscriber, _) = app.subscribe("").await;
    pour_at(&app, 3, 2000.0, 60).await;
    let mut next = async || short(&subscriber.next_event("alert").await);
    assert_eq!(next().await, "alert opened flaggedPours 1 #1");
    // Nothing more on tap 3 for the window: it resolves by itself.
    assert_eq!(next().await, "alert resolved flaggedPours 1 #2");
    pour_at(&app, 3, 2000.0, 30).await;
    assert_eq!(next().await, "alert opened flaggedPours 2 #3", "a new one");
    assert_eq!(next().await, "alert resolved flaggedPours 2 #4");
    let (_, before) = app.get("/api/alerts").await;
    assert_eq!(alert_ids(&before), [2, 1]);
    drop(subscriber);
    let Some(app) = backend.restart(app, &flags).await else {
        return;
    };
    assert_eq!(app.get("/api/alerts").await.1, before);
    let (mut subscriber, _) = app.subscribe("?eventsSince=2").await;
    assert_eq!(
        short(&subscriber.next_event("alert").await),
        "alert opened flaggedPours 2 #3",
        "replayed by eventsSince"
    );
}

async fn webhooks_are_kept_changed_and_deleted_and_never_show_their_secret(backend: &Backend) {
    use crate::webhooks::{Api, webhook};
    let app = backend.server().await;
    let api = Api::of(&app);
    let (first, secret) = webhook(
        &api,
        serde_json::json!({"url": "https://ntfy.sh/bar-alerts", "format": "ntfy", "description": "Phone"}),
    )
    .await;
    let (second, _) = webhook(
        &api,
        serde_json::json!({"url": "http://10.0.0.5:8080/hook?token=abc", "events": ["keg.finished"]}),
    )
    .await;
    assert_eq!((first, second), (1, 2));
    let (status, changed) = api
        .send_json(
            "PATCH",
            "/api/webhooks/2",
            r#"{"enabled": false, "description": "Till"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["webhook"]["enabled"], false);
    assert_eq!(
        changed["webhook"]["events"],
        serde_json::json!(["keg.finished"])
    );
    let (_, before) = api.get("/api/webhooks").await;
    assert!(!before.to_string().contains(&secret[6..]), "{before}");
    let Some(app) = backend.restart(app, &[]).await else {
        return;
    };
    let api = Api::of(&app);
    let (_, after) = api.get("/api/webhooks").await;
    assert_eq!(after, before, "kept as they were");
    assert_eq!(api.delete("/api/webhooks/1").await, StatusCode::NO_CONTENT);
    let (third, _) = webhook(&api, serde_json::json!({"url": "https://example.com/x"})).await;
    assert_eq!(third, 3, "ids are not given again");
    let (_, left) = api.get("/api/webhooks").await;
    let ids: Vec<u64> = left["webhooks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [2, 3]);
}

async fn a_webhook_message_is_retried_under_one_id_until_delivered(backend: &Backend) {
    use crate::receiver::{Receiver, Reply, any};
    use crate::webhooks::{Api, keg_low, wait_for_attempts, webhook};
    let receiver = Receiver::start().await;
    receiver.plan(&[Reply::Status(500), Reply::Status(500)]);
    let app = backend
        .server_with(&["--webhook-retries", "0.2,0.2,0.2"])
        .await;
    let api = Api::of(&app);
    let (id, _) = webhook(
        &api,
        serde_json::json!({"url": receiver.url("/in"), "events": ["alert.opened"]}),
    )
    .await;
    keg_low(&api, 4).await;
    let got = receiver.wait_for(3, any).await;
    assert!(
        got.iter().all(|r| r.id() == got[0].id()),
        "one webhook-id: {got:?}"
    );
    assert!(got.iter().all(|r| r.body == got[0].body), "one body");
    let deliveries = wait_for_attempts(&api, id, 3).await;
    let seen: Vec<(u64, u64, &str)> = deliveries["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["attempt"].as_u64().unwrap(),
                d["status"].as_u64().unwrap(),
                d["state"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (3, 200, "delivered"),
            (2, 500, "pending"),
            (1, 500, "pending")
        ],
        "newest first"
    );
    assert_eq!(
        deliveries["deliveries"][1]["error"],
        "the receiver answered 500"
    );
    assert!(deliveries["deliveries"][1]["nextAt"].is_string());
    assert_eq!(deliveries["pending"], 0);
    let (_, hook) = api.get(&format!("/api/webhooks/{id}")).await;
    assert_eq!(
        hook["webhook"]["failingSince"],
        serde_json::Value::Null,
        "delivered since"
    );
    // Delivered: not sent again, after a restart either.
    let Some(app) = backend.restart(app, &["--webhook-retries", "0.2"]).await else {
        return;
    };
    let api = Api::of(&app);
    api.pour(4, 50.0).await;
    let (_, ping) = api.post_json(&format!("/api/webhooks/{id}/test"), "").await;
    let got = receiver.wait_for(4, any).await;
    assert_eq!(got[3].id(), ping["messageId"], "{got:?}");
}

async fn each_webhook_format_posts_the_body_its_receiver_reads(backend: &Backend) {
    use crate::receiver::{Receiver, any};
    use crate::webhooks::{Api, keg_low, webhook};
    let receiver = Receiver::start().await;
    let app = backend.server().await;
    let api = Api::of(&app);
    for format in ["standard", "slack", "ntfy"] {
        webhook(
            &api,
            serde_json::json!({"url": receiver.url(&format!("/{format}")), "events": ["alert.opened"], "format": format}),
        )
        .await;
    }
    keg_low(&api, 6).await;
    let got = receiver.wait_for(3, any).await;
    let by_path = |path: &str| got.iter().find(|r| r.path == path).unwrap().clone();
    let standard = by_path("/standard");
    assert_eq!(standard.json()["type"], "alert.opened");
    assert_eq!(standard.json()["data"]["alert"]["tapId"], 6);
    let slack = by_path("/slack");
    assert_eq!(slack.headers["content-type"], "application/json");
    assert_eq!(
        slack.json(),
        serde_json::json!({"text": ":warning: *Keg low*: Stout on tap 6 is low: 10 % left (100 ml)"})
    );
    let ntfy = by_path("/ntfy");
    assert_eq!(ntfy.headers["content-type"], "text/plain; charset=utf-8");
    assert_eq!(ntfy.body, "Stout on tap 6 is low: 10 % left (100 ml)");
    assert_eq!(ntfy.headers["title"], "Keg low");
    assert_eq!(ntfy.headers["priority"], "high");
    // Signed all the same: a receiver may check any of them.
    for r in [&standard, &slack, &ntfy] {
        assert!(r.headers["webhook-signature"].starts_with("v1,"), "{r:?}");
    }
}

async fn a_gone_receiver_disables_its_webhook_with_an_alert_that_outlives_a_restart(
    backend: &Backend,
) {
    use crate::receiver::{Receiver, Reply};
    use crate::webhooks::{Api, webhook};
    let receiver = Receiver::start().await;
    receiver.otherwise(Reply::Status(410));
    let app = backend.server().await;
    let api = Api::of(&app);
    let (id, _) = webhook(&api, serde_json::json!({"url": receiver.url("/")})).await;
    api.post_json(&format!("/api/webhooks/{id}/test"), "").await;
    let open = loop {
        let (_, list) = api.get("/api/alerts?kind=webhookFailing").await;
        if list["total"] == 1 {
            break list["alerts"][0].clone();
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(open["state"], "open");
    assert_eq!(open["webhookId"], id);
    let Some(app) = backend.restart(app, &[]).await else {
        return;
    };
    let api = Api::of(&app);
    let (_, hook) = api.get(&format!("/api/webhooks/{id}")).await;
    assert_eq!(hook["webhook"]["enabled"], false);
    let (_, list) = api.get("/api/alerts?kind=webhookFailing").await;
    assert_eq!(list["alerts"][0], open, "the same alert after a restart");
    let (status, _) = api
        .send_json(
            "PATCH",
            &format!("/api/webhooks/{id}"),
            r#"{"enabled": true}"#,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, list) = api.get("/api/alerts?kind=webhookFailing").await;
    assert_eq!(list["alerts"][0]["state"], "resolved", "{list}");
}

async fn a_mistyped_tap_is_forgotten_once_its_pours_are_deleted(backend: &Backend) {
    let app = backend.server().await;
    let typo = app.pour(66, 500.0).await;
    app.pour(3, 500.0).await;
    let taps = |list: &serde_json::Value| -> Vec<u64> {
        list["taps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["tapId"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(taps(&app.get("/api/taps").await.1), [3, 66]);
    let (status, body) = app.send_json("DELETE", "/api/taps/66", "").await;
    let message = assert_error(status, &body, 409);
    assert!(message.contains("has stored pours"), "{message}");
    assert_eq!(
        app.delete(&format!("/api/beers/{}", typo["id"])).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(app.delete("/api/taps/66").await, StatusCode::NO_CONTENT);
    assert_eq!(taps(&app.get("/api/taps").await.1), [3]);
    let (status, body) = app.get("/api/taps/66").await;
    assert_error(status, &body, 404);
    let (status, body) = app.send_json("DELETE", "/api/taps/66", "").await;
    assert_error(status, &body, 404);
    // A tap with a keg on stays.
    let (status, _) = app
        .post_json(
            "/api/kegs",
            r#"{"tapId": 5, "beverage": "Pils", "size": "euro-50"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = app.send_json("DELETE", "/api/taps/5", "").await;
    let message = assert_error(status, &body, 409);
    assert!(message.contains("has a keg on"), "{message}");
    let Some(app) = backend.restart(app, &[]).await else {
        return;
    };
    assert_eq!(
        taps(&app.get("/api/taps").await.1),
        [3, 5],
        "forgotten for good"
    );
    app.pour(66, 250.0).await;
    assert_eq!(
        taps(&app.get("/api/taps").await.1),
        [3, 5, 66],
        "back when it pours again"
    );
}

async fn venues_are_made_listed_renamed_and_kept(backend: &Backend) {
    let app = backend
        .server_with(&[
            "--timezone",
            "Europe/Berlin",
            "--opening-hours",
            "16:00-02:00",
        ])
        .await;
    // The default venue is there from the start, with the flags' settings.
    let (status, list) = app.get("/api/venues").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(
        list["venues"],
        serde_json::json!([{"id": "main", "name": "main", "timezone": "Europe/Berlin",
            "openingHours": "16:00-02:00", "businessDayStarts": "04:00",
            "quietAfterSeconds": 1800, "kegLowPercent": 15.0, "default": true}])
    );
    let dock = r#"{"id": "dock-street", "name": "Dock Street", "timezone": "America/New_York",
        "openingHours": "17:00-1:00", "kegLowPercent": 20}"#;
    let (status, made) = app.send_keyed("POST", "/api/venues", "venue-1", dock).await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let expected = serde_json::json!({"id": "dock-street", "name": "Dock Street",
        "timezone": "America/New_York", "openingHours": "17:00-01:00",
        "businessDayStarts": "04:00", "quietAfterSeconds": 1800, "kegLowPercent": 20.0,
        "default": false});
    assert_eq!(made["venue"], expected);
    // A retry under its key is answered with the venue; a second one without is a conflict.
    let (status, again) = app.send_keyed("POST", "/api/venues", "venue-1", dock).await;
    assert_eq!((status, &again["venue"]), (StatusCode::OK, &expected));
    let (status, body) = app.send_json("POST", "/api/venues", dock).await;
    assert!(
        assert_error(status, &body, 409).contains("exists"),
        "{body}"
    );
    let (status, body) = app
        .send_json(
            "POST",
            "/api/venues",
            r#"{"id": "main", "name": "Main", "timezone": "UTC"}"#,
        )
        .await;
    assert_error(status, &body, 409);
    // Bad input names what is wrong, and stores nothing.
    for (bad, says) in [
        (
            r#"{"id": "Dock", "name": "D", "timezone": "UTC"}"#,
            "venue id",
        ),
        (
            r#"{"id": "d", "name": "D", "timezone": "Mars/Olympus"}"#,
            "time zone",
        ),
        (r#"{"id": "d", "name": "D"}"#, "timezone is required"),
        (
            r#"{"id": "d", "name": "D", "timezone": "UTC", "openingHours": "9-5"}"#,
            "openingHours",
        ),
        (
            r#"{"id": "d", "name": "D", "timezone": "UTC", "businessDayStarts": "4:00"}"#,
            "businessDayStarts",
        ),
        (
            r#"{"id": "d", "name": "D", "timezone": "UTC", "timeZone": "UTC"}"#,
            "unknown field timeZone",
        ),
        (r#"{"id": "d", "name": " ", "timezone": "UTC"}"#, "name"),
        (
            r#"{"id": "d", "name": "D", "timezone": "UTC", "kegLowPercent": 101}"#,
            "kegLowPercent",
        ),
    ] {
        let (status, body) = app.send_json("POST", "/api/venues", bad).await;
        let message = assert_error(status, &body, 422);
        assert!(message.contains(says), "{bad}: {message}");
    }
    let (status, body) = app.get("/api/venues/d").await;
    assert_error(status, &body, 404);
    let (status, body) = app.get("/api/venues/Dock%20Street").await;
    assert_error(status, &body, 400);
    // A change keeps what it does not name; null is the chain's setting again.
    let (status, changed) = app
        .send_json(
            "PATCH",
            "/api/venues/dock-street",
            r#"{"name": "Dock St.", "kegLowPercent": null, "quietAfterSeconds": 600}"#,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(
        (
            &changed["venue"]["name"],
            &changed["venue"]["kegLowPercent"],
            &changed["venue"]["quietAfterSeconds"],
            &changed["venue"]["timezone"]
        ),
        (
            &serde_json::json!("Dock St."),
            &serde_json::json!(15.0),
            &serde_json::json!(600),
            &serde_json::json!("America/New_York")
        )
    );
    let (status, body) = app
        .send_json("PATCH", "/api/venues/nowhere", r#"{"name": "N"}"#)
        .await;
    assert_error(status, &body, 404);
    // The default venue's rules are the flags: only its name is changed here.
    let (status, body) = app
        .send_json("PATCH", "/api/venues/main", r#"{"timezone": "UTC"}"#)
        .await;
    assert!(
        assert_error(status, &body, 409).contains("--timezone"),
        "{body}"
    );
    let (status, main) = app
        .send_json("PATCH", "/api/venues/main", r#"{"name": "The Main Bar"}"#)
        .await;
    assert_eq!(
        (status, &main["venue"]["name"]),
        (StatusCode::OK, &serde_json::json!("The Main Bar"))
    );
    let before = app.get("/api/venues").await.1;
    let Some(app) = backend
        .restart(
            app,
            &[
                "--timezone",
                "Europe/Berlin",
                "--opening-hours",
                "16:00-02:00",
            ],
        )
        .await
    else {
        return;
    };
    assert_eq!(app.get("/api/venues").await.1, before);
    // Started with other flags, the default venue follows them and keeps its name.
    let Some(app) = backend.restart(app, &["--timezone", "Asia/Tokyo"]).await else {
        return;
    };
    let (_, main) = app.get("/api/venues/main").await;
    assert_eq!(
        (
            &main["venue"]["name"],
            &main["venue"]["timezone"],
            &main["venue"]["openingHours"]
        ),
        (
            &serde_json::json!("The Main Bar"),
            &serde_json::json!("Asia/Tokyo"),
            &serde_json::Value::Null
        )
    );
}

async fn pours_name_their_venue_and_the_default_one_is_whichever_the_flag_names(backend: &Backend) {
    let app = backend.server().await;
    let (mut subscriber, _) = app.subscribe("").await;
    let posted = app.pour(3, 500.0).await;
    assert_eq!(posted["venue"], "main", "{posted}");
    assert_eq!(subscriber.next_pour().await["venue"], "main");
    let (_, page) = app.get("/api/beers").await;
    assert_eq!(page["beers"][0]["venue"], "main", "{page}");
    drop(subscriber);
    // A keg on tap 3, poured low: an alert, and keg events.
    let keg = r#"{"tapId": 3, "beverage": "Stout", "sizeMl": 1000}"#;
    assert_eq!(app.post_json("/api/kegs", keg).await.0, StatusCode::CREATED);
    app.pour(3, 900.0).await;
    // The default venue's pours and operations are stored without it, as before venues
    // were: another --default-venue names them all.
    let Some(app) = backend.restart(app, &["--default-venue", "harbour"]).await else {
        return;
    };
    let (_, pour) = app.get("/api/beers/1").await;
    assert_eq!(pour["beer"]["venue"], "harbour", "{pour}");
    let (_, kegs) = app.get("/api/kegs").await;
    assert_eq!(kegs["kegs"][0]["venue"], "harbour", "{kegs}");
    assert_eq!(kegs["kegs"][0]["drawnMl"], 900.0, "{kegs}");
    let (_, alerts) = app.get("/api/alerts?kind=kegLow").await;
    assert_eq!(alerts["alerts"][0]["venue"], "harbour", "{alerts}");
    let (_, tap) = app.get("/api/taps/3").await;
    assert_eq!(tap["tap"]["keg"]["beverage"], "Stout", "{tap}");
    let (mut replay, _) = app.subscribe("?eventsSince=0").await;
    let tapped = replay.next_event("keg").await;
    assert_eq!(
        (tapped["kind"].as_str(), tapped["venue"].as_str()),
        (Some("tapped"), Some("harbour"))
    );
    let (_, venues) = app.get("/api/venues").await;
    let ids: Vec<&str> = venues["venues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["harbour"], "{venues}");
    assert_eq!(app.pour(3, 500.0).await["venue"], "harbour");
}

/// Tokens for two venues, `main` (the default) and `dock`: (name, role, venue), in this
/// order: chain admin, dock admin, dock reader, main reader, dock tap 3, main tap 3.
pub fn venue_tokens(dir: &std::path::Path) -> (std::path::PathBuf, Vec<String>) {
    use altair::auth::{Role, new_token};
    let mut text = String::new();
    let mut tokens = Vec::new();
    for (name, role, venue) in [
        ("chain", Role::Admin, None),
        ("dock-admin", Role::Admin, Some("dock")),
        ("dock-reader", Role::Reader, Some("dock")),
        ("main-reader", Role::Reader, Some("main")),
        ("dock-tap-3", Role::Tap(3), Some("dock")),
        ("main-tap-3", Role::Tap(3), None),
    ] {
        let (token, entry) = new_token(role, venue, name).unwrap();
        text.push_str(&entry);
        tokens.push(token);
    }
    let file = dir.join("tokens.toml");
    std::fs::write(&file, text).unwrap();
    (file, tokens)
}

async fn a_venue_s_people_see_and_change_only_their_venue(backend: &Backend) {
    let dir = tempdir("venue-tokens");
    let (file, tokens) = venue_tokens(&dir);
    let [
        chain,
        dock_admin,
        dock_reader,
        main_reader,
        dock_tap,
        main_tap,
    ] = [0, 1, 2, 3, 4, 5].map(|i| Some(tokens[i].as_str()));
    let app = backend
        .server_with(&[
            "--tokens",
            file.to_str().unwrap(),
            "--report-interval",
            "0.2",
        ])
        .await;
    // A token whose venue does not exist yet pours nowhere.
    let pour3 = r#"{"tapId": 3, "volume": 500}"#;
    let (status, body) = app.call("POST", "/api/beers", dock_tap, Some(pour3)).await;
    assert!(assert_error(status, &body, 404).contains("dock"), "{body}");
    let dock = r#"{"id": "dock", "name": "Dock", "timezone": "UTC"}"#;
    let (status, body) = app
        .call("POST", "/api/venues", dock_admin, Some(dock))
        .await;
    assert_error(status, &body, 403);
    let (status, body) = app.call("POST", "/api/venues", chain, Some(dock)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // Each venue's readers follow their own venue only, reports included.
    let (mut dock_sub, hello) = app.subscribe(&format!("?token={}", tokens[2])).await;
    assert_eq!(hello["timeZone"], "UTC");
    let (mut chain_sub, _) = app.subscribe(&format!("?token={}", tokens[0])).await;

    // Tap 3 of each venue pours for its own venue, named by its token.
    let (status, main_pour) = app.call("POST", "/api/beers", main_tap, Some(pour3)).await;
    assert_eq!(
        (status, main_pour["beer"]["venue"].as_str()),
        (StatusCode::CREATED, Some("main"))
    );
    let (status, dock_pour) = app.call("POST", "/api/beers", dock_tap, Some(pour3)).await;
    assert_eq!(
        (status, dock_pour["beer"]["venue"].as_str()),
        (StatusCode::CREATED, Some("dock"))
    );
    let (main_id, dock_id) = (
        main_pour["beer"]["id"].clone(),
        dock_pour["beer"]["id"].clone(),
    );
    // ...and for no other venue or tap.
    for (path, body) in [
        ("/api/venues/main/beers", pour3),
        ("/api/beers", r#"{"tapId": 4, "volume": 500}"#),
        ("/api/venues/dock/beers", r#"{"tapId": 4, "volume": 500}"#),
    ] {
        let (status, answer) = app.call("POST", path, dock_tap, Some(body)).await;
        assert_error(status, &answer, 403);
    }
    // The path names the venue: the chain's admin pours anywhere.
    let (status, body) = app
        .call(
            "POST",
            "/api/venues/dock/beers",
            chain,
            Some(r#"{"tapId": 4, "volume": 250}"#),
        )
        .await;
    assert_eq!(
        (status, body["beer"]["venue"].as_str()),
        (StatusCode::CREATED, Some("dock"))
    );
    let (status, body) = app
        .call("POST", "/api/venues/nowhere/beers", chain, Some(pour3))
        .await;
    assert_error(status, &body, 404);

    assert_eq!(chain_sub.next_pour().await["venue"], "main");
    assert_eq!(chain_sub.next_pour().await["venue"], "dock");
    assert_eq!(
        dock_sub.next_pour().await["id"],
        dock_id,
        "the main pour is not its"
    );

    // Kegs: each venue's admin taps its own tap 3; a keg of the other venue is not there.
    let keg = |venue: &str| {
        format!(r#"{{"venue": "{venue}", "tapId": 3, "beverage": "Pils", "sizeMl": 1000}}"#)
    };
    let (status, body) = app
        .call("POST", "/api/kegs", dock_admin, Some(&keg("main")))
        .await;
    assert_error(status, &body, 403);
    let (status, dock_keg) = app
        .call(
            "POST",
            "/api/kegs",
            dock_admin,
            Some(r#"{"tapId": 3, "beverage": "Dock Pils", "sizeMl": 1000}"#),
        )
        .await;
    assert_eq!(
        (status, dock_keg["keg"]["venue"].as_str()),
        (StatusCode::CREATED, Some("dock")),
        "{dock_keg}"
    );
    let (status, main_keg) = app
        .call("POST", "/api/kegs", chain, Some(&keg("main")))
        .await;
    assert_eq!(
        (status, main_keg["keg"]["venue"].as_str()),
        (StatusCode::CREATED, Some("main"))
    );
    let main_keg_id = main_keg["keg"]["id"].as_u64().unwrap();
    // 900 ml from main's tap 3: its keg is low, an alert of main's.
    let (status, _) = app
        .call(
            "POST",
            "/api/beers",
            main_tap,
            Some(r#"{"tapId": 3, "volume": 900}"#),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, alerts) = app
        .call("GET", "/api/alerts?kind=kegLow", chain, None)
        .await;
    let low = &alerts["alerts"][0];
    assert_eq!(
        (low["kind"].as_str(), low["venue"].as_str()),
        (Some("kegLow"), Some("main")),
        "{alerts}"
    );
    let alert_id = low["id"].as_u64().unwrap();

    // What the dock reader sees: its venue's pours, kegs, taps, alerts and report.
    let (_, page) = app.call("GET", "/api/beers", dock_reader, None).await;
    let venues: Vec<&str> = page["beers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["venue"].as_str().unwrap())
        .collect();
    assert_eq!(
        (venues, page["total"].as_u64()),
        (vec!["dock", "dock"], Some(2)),
        "{page}"
    );
    let (_, kegs) = app.call("GET", "/api/kegs", dock_reader, None).await;
    assert_eq!(kegs["kegs"].as_array().unwrap().len(), 1, "{kegs}");
    assert_eq!(kegs["kegs"][0]["venue"], "dock");
    let (_, taps) = app.call("GET", "/api/taps", dock_reader, None).await;
    let taps: Vec<(String, u64)> = taps["taps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["venue"].as_str().unwrap().to_owned(),
                t["tapId"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(taps, [("dock".to_owned(), 3), ("dock".to_owned(), 4)]);
    let (_, tap) = app.call("GET", "/api/taps/3", dock_reader, None).await;
    assert_eq!(tap["tap"]["keg"]["beverage"], "Dock Pils", "{tap}");
    let (_, alerts) = app.call("GET", "/api/alerts", dock_reader, None).await;
    assert_eq!(alerts["total"], 0, "{alerts}");
    let (_, report) = app.call("GET", "/api/report", dock_reader, None).await;
    assert_eq!(
        (report["venue"].as_str(), report["totalPours"].as_u64()),
        (Some("dock"), Some(2)),
        "{report}"
    );
    assert_eq!(report["levels"].as_array().unwrap().len(), 1);
    let (_, venues) = app.call("GET", "/api/venues", dock_reader, None).await;
    assert_eq!(venues["venues"].as_array().unwrap().len(), 1, "{venues}");
    let (_, history) = app
        .call("GET", "/api/history?by=tap", dock_reader, None)
        .await;
    let today = history["buckets"].as_array().unwrap().last().unwrap();
    assert_eq!(
        (history["venue"].as_str(), today["total"]["pours"].as_u64()),
        (Some("dock"), Some(2)),
        "{history}"
    );
    // ...and the chain's reader and the chain's admin see both.
    let (_, report) = app.call("GET", "/api/report", chain, None).await;
    assert_eq!(
        (report["venue"].clone(), report["totalPours"].as_u64()),
        (serde_json::Value::Null, Some(4))
    );
    let (_, report) = app.call("GET", "/api/report?venue=main", chain, None).await;
    assert_eq!(
        (report["venue"].as_str(), report["totalPours"].as_u64()),
        (Some("main"), Some(2))
    );
    let (_, page) = app.call("GET", "/api/beers?venue=dock", chain, None).await;
    assert_eq!(page["total"], 2, "{page}");

    // Another venue's ids are not there for it; its query cannot widen what it sees.
    let main_ids = [
        format!("/api/beers/{main_id}"),
        format!("/api/kegs/{main_keg_id}"),
        format!("/api/alerts/{alert_id}"),
        "/api/venues/main".to_owned(),
    ];
    for path in &main_ids {
        let (status, body) = app.call("GET", path, dock_reader, None).await;
        assert_error(status, &body, 404);
        let (status, _) = app.call("GET", path, main_reader, None).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
    let (status, _) = app
        .call("GET", &format!("/api/beers/{dock_id}"), dock_reader, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    for path in [
        "/api/beers?venue=main",
        "/api/kegs?venue=main",
        "/api/taps?venue=main",
        "/api/alerts?venue=main",
        "/api/report?venue=main",
        "/api/history?venue=main",
        "/api/taps/3?venue=main",
    ] {
        let (status, body) = app.call("GET", path, dock_reader, None).await;
        assert_error(status, &body, 403);
    }
    // Its admin changes nothing of another venue's, nor the chain's.
    for (method, path, body) in [
        (
            "PATCH",
            format!("/api/kegs/{main_keg_id}"),
            Some(r#"{"spillMl": 100}"#),
        ),
        ("POST", format!("/api/kegs/{main_keg_id}/finish"), None),
        ("DELETE", format!("/api/beers/{main_id}"), None),
        ("POST", format!("/api/alerts/{alert_id}/ack"), None),
    ] {
        let (status, answer) = app.call(method, &path, dock_admin, body).await;
        assert_error(status, &answer, 404);
    }
    for (method, path) in [
        ("PATCH", "/api/taps/3?venue=main"),
        ("DELETE", "/api/taps/4?venue=main"),
    ] {
        let (status, answer) = app
            .call(method, path, dock_admin, Some(r#"{"name": "x"}"#))
            .await;
        assert_error(status, &answer, 403);
    }
    for (method, path) in [
        ("GET", "/metrics"),
        ("GET", "/api/webhooks"),
        ("PATCH", "/api/venues/dock"),
    ] {
        let (status, answer) = app
            .call(method, path, dock_admin, Some(r#"{"name": "x"}"#))
            .await;
        assert_error(status, &answer, 403);
    }
    let (status, _) = app.call("GET", "/api/beers/1", chain, None).await;
    assert_eq!(status, StatusCode::OK, "nothing was deleted");
    // Its own venue's things it changes.
    let (status, tap) = app
        .call(
            "PATCH",
            "/api/taps/3",
            dock_admin,
            Some(r#"{"name": "Dock 3"}"#),
        )
        .await;
    assert_eq!(
        (status, tap["tap"]["venue"].as_str()),
        (StatusCode::OK, Some("dock")),
        "{tap}"
    );

    // The dock subscriber heard none of main's keg, alert or report frames.
    let frames = within_frames(&mut dock_sub, |f| f["event"] == "report").await;
    for frame in &frames {
        let venue = match frame["event"].as_str() {
            Some("keg") | Some("tap") => frame["venue"].clone(),
            Some("alert") => frame["alert"]["venue"].clone(),
            Some("report") => frame["report"]["venue"].clone(),
            Some("pour") | Some("deleted") => frame["beer"]["venue"].clone(),
            _ => continue,
        };
        assert_eq!(venue, "dock", "{frame}");
    }
    let reports = within_frames(&mut chain_sub, |f| f["event"] == "report").await;
    let last = reports.last().unwrap();
    assert_eq!(
        last["report"]["venue"],
        serde_json::Value::Null,
        "the chain's report: {last}"
    );
    // A deletion leaves its venue's totals exact.
    let path = format!("/api/beers/{dock_id}");
    let (status, _) = app.call("DELETE", &path, chain, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, page) = app.call("GET", "/api/beers", dock_reader, None).await;
    assert_eq!(page["total"], 1, "{page}");
    let (_, page) = app
        .call("GET", "/api/beers?venue=main&tapId=3", chain, None)
        .await;
    assert_eq!(page["total"], 2, "{page}");
    let _ = std::fs::remove_dir_all(dir);
}

/// Frames until (and with) the first that `last` picks.
async fn within_frames(
    subscriber: &mut crate::helpers::Subscriber,
    last: impl Fn(&serde_json::Value) -> bool,
) -> Vec<serde_json::Value> {
    let mut frames = Vec::new();
    loop {
        let frame = subscriber.next_json().await;
        let done = last(&frame);
        frames.push(frame);
        if done {
            return frames;
        }
    }
}

async fn each_venue_judges_after_hours_and_today_on_its_own_clock(backend: &Backend) {
    let app = backend.server().await;
    for venue in [
        r#"{"id": "akl", "name": "Auckland", "timezone": "Pacific/Auckland", "openingHours": "16:00-02:30", "businessDayStarts": "04:00"}"#,
        r#"{"id": "nyc", "name": "New York", "timezone": "America/New_York", "openingHours": "16:00-02:30", "businessDayStarts": "04:00"}"#,
    ] {
        let (status, body) = app.send_json("POST", "/api/venues", venue).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let flags_of = |venue: &'static str, tap: u32, at: &'static str| {
        let app = &app;
        async move {
            let body = format!(r#"{{"tapId": {tap}, "volume": 500, "timestamp": "{at}"}}"#);
            let (status, pour) = app
                .send_json("POST", &format!("/api/venues/{venue}/beers"), &body)
                .await;
            assert_eq!(status, StatusCode::CREATED, "{pour}");
            let flags: Vec<String> = pour["beer"]["flags"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f.as_str().unwrap().to_owned())
                .collect();
            flags.contains(&"afterHours".to_owned())
        }
    };
    // New York springs forward at 02:00 on 2026-03-08: 07:10 UTC is 03:10 EDT, closed
    // (02:10 on a clock that stayed on EST would be open); 06:20 UTC is 01:20 EST, open.
    assert!(!flags_of("nyc", 1, "2026-03-08T06:20:00Z").await);
    assert!(flags_of("nyc", 2, "2026-03-08T07:10:00Z").await);
    // Auckland falls back at 03:00 NZDT on 2026-04-05 (14:00 UTC) to 02:00 NZST: 13:40 UTC
    // is 02:40 NZDT, closed; 14:10 UTC is 02:10 NZST, open again for the repeated hour.
    assert!(flags_of("akl", 1, "2026-04-04T13:40:00Z").await);
    assert!(!flags_of("akl", 2, "2026-04-04T14:10:00Z").await);
    // The same instant, judged by each venue's clock: 14:10 UTC is 10:10 in New York.
    assert!(flags_of("nyc", 3, "2026-04-04T14:10:00Z").await);

    // "Today" is each venue's business day, from 04:00 on its own clock.
    let now = chrono::Utc::now();
    for (venue, zone) in [
        ("akl", chrono_tz::Pacific::Auckland),
        ("nyc", chrono_tz::America::New_York),
    ] {
        use chrono::TimeZone;
        let local = now.with_timezone(&zone).naive_local() - chrono::Duration::hours(4);
        let start = zone
            .from_local_datetime(&local.date().and_hms_opt(4, 0, 0).unwrap())
            .earliest()
            .unwrap()
            .with_timezone(&chrono::Utc);
        let (_, report) = app.get(&format!("/api/report?venue={venue}")).await;
        let since =
            chrono::DateTime::parse_from_rfc3339(report["today"]["since"].as_str().unwrap())
                .unwrap();
        assert_eq!(since, start, "{venue}: {report}");
        assert_eq!(report["totalPours"], if venue == "akl" { 2 } else { 3 });
    }
    let (_, report) = app.get("/api/report?venue=akl").await;
    assert_eq!(
        report["today"]["pours"], 0,
        "pours of April are not today's"
    );
    app.pour(1, 500.0).await;
    let (_, report) = app.get("/api/report?venue=akl").await;
    assert_eq!(report["today"]["pours"], 0, "a main pour is not Auckland's");
}

async fn a_venue_s_webhook_hears_its_venue_and_the_chain_s_hears_every_venue_by_name(
    backend: &Backend,
) {
    use crate::receiver::{Receiver, any};
    use crate::webhooks::{Api, webhook};
    let receiver = Receiver::start().await;
    let app = backend.server().await;
    let dock = r#"{"id": "dock", "name": "Dock Street", "timezone": "UTC"}"#;
    assert_eq!(
        app.send_json("POST", "/api/venues", dock).await.0,
        StatusCode::CREATED
    );
    let api = Api::of(&app);
    let (status, body) = app
        .send_json(
            "POST",
            "/api/webhooks",
            &serde_json::json!({"url": receiver.url("/x"), "venue": "nowhere"}).to_string(),
        )
        .await;
    assert_error(status, &body, 404);
    let (dock_hook, _) = webhook(
        &api,
        serde_json::json!({"url": receiver.url("/dock"), "venue": "dock", "events": ["keg.tapped"]}),
    )
    .await;
    let (_, hook) = app.get(&format!("/api/webhooks/{dock_hook}")).await;
    assert_eq!(hook["webhook"]["venue"], "dock", "{hook}");
    webhook(
        &api,
        serde_json::json!({"url": receiver.url("/chain"), "format": "ntfy", "events": ["keg.tapped"]}),
    )
    .await;
    for venue in ["main", "dock"] {
        let keg =
            format!(r#"{{"venue": "{venue}", "tapId": 1, "beverage": "Pils", "sizeMl": 1000}}"#);
        assert_eq!(
            app.send_json("POST", "/api/kegs", &keg).await.0,
            StatusCode::CREATED
        );
    }
    let got = receiver.wait_for(3, any).await;
    let mut to_dock: Vec<_> = got.iter().filter(|r| r.path == "/dock").collect();
    let mut to_chain: Vec<_> = got
        .iter()
        .filter(|r| r.path == "/chain")
        .map(|r| r.headers["title"].clone())
        .collect();
    to_chain.sort();
    assert_eq!(to_dock.len(), 1, "{got:?}");
    assert_eq!(
        to_dock.pop().unwrap().json()["data"]["keg"]["venue"],
        "dock"
    );
    assert_eq!(to_chain.len(), 2, "{got:?}");
    assert!(to_chain[0].starts_with("Dock Street: "), "{to_chain:?}");
    assert!(
        !to_chain[1].contains(':'),
        "the default venue's is as before: {to_chain:?}"
    );
}

/// A history bucket's groups: key, pours, volume.
type Groups = Vec<(String, u64, f64)>;

async fn history_counts_business_days_by_beverage_tap_and_glass_and_forgets_deletions(
    backend: &Backend,
) {
    let app = backend.server().await;
    let nyc = r#"{"id": "nyc", "name": "New York", "timezone": "America/New_York", "businessDayStarts": "04:00"}"#;
    assert_eq!(
        app.send_json("POST", "/api/venues", nyc).await.0,
        StatusCode::CREATED
    );
    let pour = |tap: u32, volume: u32, at: &'static str| {
        let app = &app;
        async move {
            let body = format!(r#"{{"tapId": {tap}, "volume": {volume}, "timestamp": "{at}"}}"#);
            let (status, pour) = app.send_json("POST", "/api/venues/nyc/beers", &body).await;
            assert_eq!(status, StatusCode::CREATED, "{pour}");
            pour["beer"]["id"].as_u64().unwrap()
        }
    };
    let tap = |tap: u32, beverage: &'static str| {
        let app = &app;
        async move {
            let keg = format!(
                r#"{{"venue": "nyc", "tapId": {tap}, "beverage": "{beverage}", "sizeMl": 50000}}"#
            );
            let (status, body) = app.send_json("POST", "/api/kegs", &keg).await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
        }
    };
    // 23:00 EST on Saturday 7 March, before tap 1 has a keg.
    pour(1, 500, "2026-03-08T04:00:00Z").await;
    tap(1, "Helles").await;
    // New York springs forward at 02:00 that night: 07:30 UTC is 03:30 EDT, still
    // Saturday's business day (it starts at 04:00); 08:30 UTC is 04:30 EDT, Sunday's.
    pour(1, 500, "2026-03-08T07:30:00Z").await;
    pour(1, 250, "2026-03-08T08:30:00Z").await;
    tap(2, "Pils").await;
    pour(2, 500, "2026-03-09T20:00:00Z").await;
    pour(2, 1500, "2026-03-09T21:00:00Z").await;
    let gone = pour(2, 500, "2026-03-09T22:00:00Z").await;
    assert_eq!(
        app.delete(&format!("/api/beers/{gone}")).await,
        StatusCode::NO_CONTENT
    );
    // A pour in the default venue the same day is not New York's.
    let body = r#"{"tapId": 1, "volume": 500, "timestamp": "2026-03-09T20:00:00Z"}"#;
    assert_eq!(app.post_raw(body).await.0, StatusCode::CREATED);

    let summary = |history: &serde_json::Value, key: &str| -> Vec<(String, Groups)> {
        history["buckets"]
            .as_array()
            .unwrap_or_else(|| panic!("no buckets in {history}"))
            .iter()
            .map(|bucket| {
                let groups = bucket["groups"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|g| {
                        (
                            g[key].to_string(),
                            g["pours"].as_u64().unwrap(),
                            g["volumeMl"].as_f64().unwrap(),
                        )
                    })
                    .collect();
                (bucket["start"].as_str().unwrap().to_owned(), groups)
            })
            .collect()
    };
    let s = |text: &str| text.to_owned();
    let path = "/api/history?venue=nyc&from=2026-03-07&to=2026-03-09";
    let (status, by_beverage) = app.get(path).await;
    assert_eq!(status, StatusCode::OK, "{by_beverage}");
    assert_eq!(
        summary(&by_beverage, "beverage"),
        [
            (
                s("2026-03-07"),
                vec![(s("null"), 1, 500.0), (s("\"Helles\""), 1, 500.0)]
            ),
            (s("2026-03-08"), vec![(s("\"Helles\""), 1, 250.0)]),
            (s("2026-03-09"), vec![(s("\"Pils\""), 2, 2000.0)]),
        ],
        "{by_beverage}"
    );
    let pils_day = &by_beverage["buckets"][2]["total"];
    assert_eq!(pils_day["flaggedPours"], 1, "{pils_day}");
    assert_eq!(pils_day["flagged"]["unclassified"], 1);
    let glasses: Vec<(&str, u64)> = pils_day["byType"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["type"].as_str().unwrap(), t["pours"].as_u64().unwrap()))
        .collect();
    assert_eq!(glasses, [("pint", 1), ("unclassified", 1)]);

    let (_, by_tap) = app.get(&format!("{path}&by=tap")).await;
    assert_eq!(
        summary(&by_tap, "tapId")[2],
        (s("2026-03-09"), vec![(s("2"), 2, 2000.0)])
    );
    assert_eq!(by_tap["buckets"][2]["groups"][0]["venue"], "nyc");
    let (_, by_glass) = app.get(&format!("{path}&by=glass")).await;
    assert_eq!(
        summary(&by_glass, "glass")[0],
        (s("2026-03-07"), vec![(s("\"pint\""), 2, 1000.0)])
    );
    // Weeks run Monday to Sunday; a month is the whole calendar month.
    let (_, weeks) = app.get(&format!("{path}&bucket=week")).await;
    let totals = |history: &serde_json::Value| -> Vec<(String, String, u64)> {
        history["buckets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| {
                (
                    b["start"].as_str().unwrap().to_owned(),
                    b["end"].as_str().unwrap().to_owned(),
                    b["total"]["pours"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(
        totals(&weeks),
        [
            (s("2026-03-02"), s("2026-03-08"), 3),
            (s("2026-03-09"), s("2026-03-15"), 2)
        ]
    );
    let (_, month) = app.get(&format!("{path}&bucket=month")).await;
    assert_eq!(totals(&month), [(s("2026-03-01"), s("2026-03-31"), 5)]);
    // The chain's adds every venue's days.
    let (_, chain) = app
        .get("/api/history?from=2026-03-09&to=2026-03-09&by=tap")
        .await;
    assert_eq!(chain["venue"], serde_json::Value::Null);
    assert_eq!(chain["buckets"][0]["total"]["pours"], 3, "{chain}");

    for (query, message) in [
        ("from=yesterday", "from must be a date YYYY-MM-DD"),
        ("from=2026-03-10&to=2026-03-09", "must not be after"),
        ("from=2000-01-01&to=2026-03-09", "at most 3660 days"),
        ("bucket=year", "bucket must be day, week or month"),
        ("by=colour", "by must be beverage, tap or glass"),
    ] {
        let (status, body) = app.get(&format!("/api/history?{query}")).await;
        let text = assert_error(status, &body, 400);
        assert!(text.contains(message), "{query}: {text}");
    }
    let (status, body) = app.get("/api/history?venue=nowhere").await;
    assert_error(status, &body, 404);

    // The same history after a restart, rebuilt from the log.
    let Some(app) = backend.restart(app, &[]).await else {
        return;
    };
    let (_, again) = app.get(path).await;
    assert_eq!(again, by_beverage);
}

async fn a_keg_s_yield_counts_its_pours_spills_deletions_and_what_was_left(backend: &Backend) {
    let app = backend.server().await;
    let keg = r#"{"tapId": 1, "beverage": "Helles", "sizeMl": 10000}"#;
    assert_eq!(app.post_json("/api/kegs", keg).await.0, StatusCode::CREATED);
    // An hour apart, so that none is a burst; the 1500 ml fits no glass.
    let mut ids = Vec::new();
    for (hour, volume) in [(10, 500), (11, 500), (12, 250), (13, 1500)] {
        let body = format!(
            r#"{{"tapId": 1, "volume": {volume}, "timestamp": "2026-01-01T{hour}:00:00Z"}}"#
        );
        let (status, pour) = app.post_raw(body).await;
        assert_eq!(status, StatusCode::CREATED, "{pour}");
        ids.push(pour["beer"]["id"].as_u64().unwrap());
    }
    assert_eq!(
        app.delete(&format!("/api/beers/{}", ids[1])).await,
        StatusCode::NO_CONTENT
    );
    let (status, spilled) = app
        .send_json("PATCH", "/api/kegs/1", r#"{"spillMl": 200}"#)
        .await;
    assert_eq!(status, StatusCode::OK, "{spilled}");
    let yields = |keg: &serde_json::Value| keg["keg"]["yield"].clone();
    let (_, on_tap) = app.get("/api/kegs/1").await;
    assert_eq!(
        yields(&on_tap),
        serde_json::json!({"pouredMl": 2250.0, "pours": 3,
            "byType": [{"type": "half", "pours": 1, "volumeMl": 250.0},
                       {"type": "pint", "pours": 1, "volumeMl": 500.0},
                       {"type": "unclassified", "pours": 1, "volumeMl": 1500.0}],
            "flaggedPours": 1, "spilledMl": 200.0, "yieldPct": 22.5,
            "leftMl": null, "leftMeasured": false, "unaccountedMl": null, "daysOnTap": null})
    );

    // What was left is measured when it comes off: nothing changes on a wrong one.
    for (body, status) in [
        (r#"{"leftMl": -1}"#, 422),
        (r#"{"left": 7000}"#, 422),
        (r#"{"leftMl": 7000"#, 400),
    ] {
        let (got, answer) = app.send_json("POST", "/api/kegs/1/finish", body).await;
        assert_error(got, &answer, status);
    }
    let (status, finished) = app
        .send_json("POST", "/api/kegs/1/finish", r#"{"leftMl": 7000}"#)
        .await;
    assert_eq!(status, StatusCode::OK, "{finished}");
    let finished_yield = yields(&finished);
    assert_eq!(
        (
            &finished_yield["leftMl"],
            &finished_yield["leftMeasured"],
            &finished_yield["unaccountedMl"]
        ),
        (
            &serde_json::json!(7000.0),
            &serde_json::json!(true),
            &serde_json::json!(550.0)
        ),
        "10,000 held, less 2,250 poured, 200 spilled and 7,000 left: {finished_yield}"
    );
    assert!(finished_yield["daysOnTap"].as_f64().unwrap() < 0.01);
    // A pour of its deleted later gives its volume back to it.
    assert_eq!(
        app.delete(&format!("/api/beers/{}", ids[0])).await,
        StatusCode::NO_CONTENT
    );
    let (_, after) = app.get("/api/kegs/1").await;
    assert_eq!(
        (
            yields(&after)["pours"].as_u64(),
            yields(&after)["unaccountedMl"].as_f64()
        ),
        (Some(2), Some(1050.0))
    );

    // A keg finished by nobody measuring: what the meters say is left.
    let pils = r#"{"tapId": 2, "beverage": "Pils", "sizeMl": 1000}"#;
    assert_eq!(
        app.post_json("/api/kegs", pils).await.0,
        StatusCode::CREATED
    );
    app.pour(2, 500.0).await;
    let (_, pils) = app.send_json("POST", "/api/kegs/2/finish", "").await;
    assert_eq!(
        (
            yields(&pils)["leftMl"].as_f64(),
            yields(&pils)["leftMeasured"].as_bool(),
            yields(&pils)["unaccountedMl"].as_f64()
        ),
        (Some(500.0), Some(false), Some(0.0)),
        "{pils}"
    );

    // The keg history: kegs on tap in a period.
    let ids_in = |list: &serde_json::Value| -> Vec<u64> {
        list["kegs"]
            .as_array()
            .unwrap_or_else(|| panic!("{list}"))
            .iter()
            .map(|k| k["id"].as_u64().unwrap())
            .collect()
    };
    let (_, history) = app
        .get("/api/kegs?status=finished&from=2026-01-01T00:00:00Z")
        .await;
    assert_eq!(ids_in(&history), [1, 2]);
    let (_, none) = app.get("/api/kegs?to=2026-01-01T00:00:00Z").await;
    assert_eq!(ids_in(&none), Vec::<u64>::new());
    let (status, body) = app.get("/api/kegs?from=yesterday").await;
    assert_error(status, &body, 400);

    let Some(app) = backend.restart(app, &[]).await else {
        return;
    };
    let (_, again) = app.get("/api/kegs/1").await;
    assert_eq!(again, after, "the same yield after a restart");
}

/// Each cell of a CSV row is the JSON value of its column: `null` an empty cell, a list
/// its items joined by `;`, and text a spreadsheet would run as a formula carries the `'`
/// that neutralises it. Columns `lookup` has no value for are not compared.
fn assert_row_is(
    header: &[String],
    row: &[String],
    lookup: impl Fn(&str) -> Option<serde_json::Value>,
) {
    use serde_json::Value;
    assert_eq!(row.len(), header.len(), "{header:?} {row:?}");
    for (name, cell) in header.iter().zip(row) {
        let Some(value) = lookup(name) else { continue };
        let expected = match &value {
            Value::Null => String::new(),
            Value::String(s) if s.starts_with(['=', '+', '-', '@']) => format!("'{s}"),
            Value::String(s) => s.clone(),
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => {
                assert_eq!(
                    cell.parse::<f64>().ok(),
                    n.as_f64(),
                    "column {name}: {row:?}"
                );
                continue;
            }
            Value::Array(items) => items
                .iter()
                .map(|i| i.as_str().unwrap())
                .collect::<Vec<_>>()
                .join(";"),
            Value::Object(_) => panic!("column {name} is an object: {value}"),
        };
        assert_eq!(cell, &expected, "column {name}: {row:?}");
    }
}

/// A `pours:<glass>` or `volumeMl:<glass>` column's value from a `byType` list (0 for a
/// glass not in it).
fn glass_cell(tallies: &serde_json::Value, column: &str) -> Option<serde_json::Value> {
    let (what, glass) = column.split_once(':')?;
    let tally = tallies.as_array()?.iter().find(|t| t["type"] == glass);
    Some(tally.map_or(serde_json::json!(0), |t| t[what].clone()))
}

async fn pours_history_and_kegs_read_as_csv_as_they_read_as_json(backend: &Backend) {
    let app = backend.server().await;
    let nyc = r#"{"id": "nyc", "name": "New York", "timezone": "America/New_York"}"#;
    assert_eq!(
        app.send_json("POST", "/api/venues", nyc).await.0,
        StatusCode::CREATED
    );
    // Beverage names are typed by people: this one is a spreadsheet formula.
    let formula = r#"=HYPERLINK("http://evil.example","Helles, unfiltered")"#;
    let keg = serde_json::json!({"venue": "nyc", "tapId": 1, "beverage": formula, "sizeMl": 50000});
    let (status, body) = app.send_json("POST", "/api/kegs", &keg.to_string()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    for (tap, volume, at) in [
        (1, 500, "2026-03-08T04:00:00Z"),
        (1, 1500, "2026-03-08T05:00:00Z"),
        (2, 250, "2026-03-09T20:00:00Z"),
    ] {
        let body = format!(r#"{{"tapId": {tap}, "volume": {volume}, "timestamp": "{at}"}}"#);
        let (status, pour) = app.send_json("POST", "/api/venues/nyc/beers", &body).await;
        assert_eq!(status, StatusCode::CREATED, "{pour}");
    }
    app.pour(3, 500.0).await;
    app.pour(3, 20.0).await;

    // Pours: one header row, a row per pour of the page, the time on the venue's clock.
    let (_, page) = app.get("/api/beers").await;
    let (status, kind, text) = app.get_text("/api/beers", Some("text/csv")).await;
    assert_eq!(
        (status, kind.as_str()),
        (StatusCode::OK, "text/csv; charset=utf-8")
    );
    assert_eq!(
        app.get_text("/api/beers?format=csv", None).await.2,
        text,
        "format=csv is Accept: text/csv"
    );
    let Some(rows) = crate::helpers::parse_csv(&text) else {
        return;
    };
    assert_eq!(
        rows[0],
        [
            "id",
            "venue",
            "tapId",
            "volume",
            "type",
            "timestamp",
            "localTime",
            "timezone",
            "flags"
        ]
    );
    let pours = page["beers"].as_array().unwrap();
    assert_eq!(rows.len(), 1 + pours.len());
    let (_, main) = app.get("/api/venues/main").await;
    for (row, pour) in rows[1..].iter().zip(pours) {
        assert_row_is(&rows[0], row, |column| match column {
            "localTime" => None,
            "timezone" if pour["venue"] == "nyc" => Some("America/New_York".into()),
            "timezone" => Some(main["venue"]["timezone"].clone()),
            _ => Some(pour[column].clone()),
        });
    }
    assert_eq!(
        rows[1][6], "2026-03-07 23:00:00.000",
        "04:00 UTC is 23:00 the evening before in New York"
    );

    // History: a row per bucket and group.
    let path = "/api/history?venue=nyc&from=2026-03-07&to=2026-03-09";
    let (_, history) = app.get(path).await;
    let Some(rows) = crate::helpers::parse_csv(&app.get_text(path, Some("text/csv")).await.2)
    else {
        return;
    };
    assert_eq!(
        rows[0][..6],
        [
            "start",
            "end",
            "beverage",
            "pours",
            "volumeMl",
            "flaggedPours"
        ]
    );
    let mut row = rows[1..].iter();
    for bucket in history["buckets"].as_array().unwrap() {
        for group in bucket["groups"].as_array().unwrap() {
            let cells = row.next().unwrap_or_else(|| panic!("no row for {group}"));
            assert_row_is(&rows[0], cells, |column| {
                Some(match column {
                    "start" | "end" => bucket[column].clone(),
                    _ => group
                        .get(column)
                        .or_else(|| group["flagged"].get(column))
                        .cloned()
                        .or_else(|| glass_cell(&group["byType"], column))
                        .unwrap_or_else(|| panic!("no column {column} in {group}")),
                })
            });
        }
    }
    assert!(row.next().is_none(), "a row per group, no more");
    assert!(
        rows.iter().any(|r| r[2] == format!("'{formula}")),
        "the formula is text: {rows:?}"
    );

    // Kegs: a row per keg, its yield, and what it poured by glass.
    let (_, kegs) = app.get("/api/kegs").await;
    let Some(rows) = crate::helpers::parse_csv(&app.get_text("/api/kegs?format=csv", None).await.2)
    else {
        return;
    };
    assert!(
        rows[0].contains(&"yieldPct".to_string()) && rows[0].contains(&"pours:pint".to_string())
    );
    let kegs = kegs["kegs"].as_array().unwrap();
    assert_eq!(rows.len(), 1 + kegs.len());
    for (row, keg) in rows[1..].iter().zip(kegs) {
        assert_row_is(&rows[0], row, |column| {
            keg.get(column)
                .or_else(|| keg["yield"].get(column))
                .cloned()
                .or_else(|| glass_cell(&keg["yield"]["byType"], column))
                .or_else(|| panic!("no column {column} in {keg}"))
        });
    }

    // A format nobody writes is an error, in JSON.
    for path in [
        "/api/beers?format=xml",
        "/api/history?format=ndjson",
        "/api/kegs?format=pdf",
    ] {
        let (status, body) = app.get(path).await;
        assert_error(status, &body, 400);
    }
}

async fn the_export_streams_every_pour_stored_when_it_began(backend: &Backend) {
    let app = Arc::new(backend.server().await);
    // More than two of the export's pages of 1,000.
    app.pour_from_taps(3, 700).await;
    let nyc = r#"{"id": "nyc", "name": "New York", "timezone": "America/New_York"}"#;
    assert_eq!(
        app.send_json("POST", "/api/venues", nyc).await.0,
        StatusCode::CREATED
    );
    let body = r#"{"tapId": 2, "volume": 250}"#;
    let (status, last) = app.send_json("POST", "/api/venues/nyc/beers", body).await;
    assert_eq!(status, StatusCode::CREATED, "{last}");
    let mut pours = Vec::new();
    for page in 1..=3 {
        let (_, list) = app
            .get(&format!("/api/beers?page={page}&page_size=1000"))
            .await;
        pours.extend(list["beers"].as_array().unwrap().iter().cloned());
    }
    assert_eq!(pours.len(), 2101);

    // NDJSON: each pour as the API writes it, a line, in id order.
    let (status, kind, text) = app.get_text("/api/beers/export?format=ndjson", None).await;
    assert_eq!(
        (status, kind.as_str()),
        (StatusCode::OK, "application/x-ndjson")
    );
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines, pours);
    let (_, _, by_accept) = app
        .get_text("/api/beers/export", Some("application/x-ndjson"))
        .await;
    assert_eq!(by_accept, text);

    // CSV by default, as the list's CSV.
    let response = app
        .http
        .get(app.url("/api/beers/export"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["content-disposition"],
        "attachment; filename=\"pours.csv\""
    );
    let text = response.text().await.unwrap();
    if let Some(rows) = crate::helpers::parse_csv(&text) {
        assert_eq!(rows.len(), 1 + pours.len());
        for (row, pour) in rows[1..].iter().zip(&pours) {
            assert_row_is(&rows[0], row, |column| match column {
                "localTime" | "timezone" => None,
                _ => Some(pour[column].clone()),
            });
        }
    }

    // Filters, as the list's.
    let last_id = last["beer"]["id"].as_u64().unwrap();
    let (_, _, only) = app
        .get_text("/api/beers/export?format=ndjson&venue=nyc&tapId=2", None)
        .await;
    assert_eq!(only.lines().count(), 1);
    let (_, _, after) = app
        .get_text(
            &format!("/api/beers/export?format=ndjson&after={}", last_id - 5),
            None,
        )
        .await;
    assert_eq!(after.lines().count(), 5);
    for path in ["/api/beers/export?format=json", "/api/beers/export?tapId=x"] {
        let (status, body) = app.get(path).await;
        assert_error(status, &body, 400);
    }

    // Pours stored once the export has begun are the next export's.
    let response = app
        .http
        .get(app.url("/api/beers/export?format=ndjson"))
        .send()
        .await
        .unwrap();
    app.pour(1, 500.0).await;
    let text = response.text().await.unwrap();
    let ids: Vec<u64> = text
        .lines()
        .map(|line| {
            serde_json::from_str::<serde_json::Value>(line).unwrap()["id"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(ids.len(), 2101);
    assert_eq!(ids.last(), Some(&last_id));
}

/// What the store keeps of the temperatures, as rows or lines: fewer once a day-old
/// minute's readings are folded into one. `None` for memory.
async fn temperature_rows(backend: &Backend) -> Option<u64> {
    match backend {
        Backend::Memory => None,
        Backend::Journal(dir) => Some(
            std::fs::read_to_string(dir.join("temperatures.jsonl"))
                .unwrap_or_default()
                .lines()
                .count() as u64,
        ),
        Backend::Postgres(pg) => {
            let row = pg
                .client()
                .await
                .query_one("SELECT count(*) FROM altair_temperatures", &[])
                .await
                .unwrap();
            Some(row.get::<_, i64>(0) as u64)
        }
    }
}

async fn temperatures_are_kept_read_a_mean_a_minute_after_a_day_and_alert_once(backend: &Backend) {
    // Silence comes 4 s after a reading: room for a loaded machine to check the card
    // before it does (the hot reading must still be the latest when the card is read).
    let flags = ["--warm-for", "0.5", "--sensor-silent-after", "4"];
    let app = backend.server_with(&flags).await;
    let (mut subscriber, _) = app.subscribe("").await;
    app.pour(1, 500.0).await;
    assert_eq!(heard(&mut subscriber).await, "pour 1");

    // Three readings of a minute two days ago, and one now.
    let minute = (chrono::Utc::now() - chrono::Duration::days(2))
        .format("%Y-%m-%dT%H:%M")
        .to_string();
    for (second, celsius) in [(10, 2.0), (20, 3.0), (30, 4.5)] {
        let body = format!(
            r#"{{"tapId": 1, "sensor": "keg", "celsius": {celsius}, "timestamp": "{minute}:{second}Z"}}"#
        );
        assert_eq!(
            app.post_json("/api/temperatures", &body).await.0,
            StatusCode::CREATED
        );
    }
    let (status, kept) = app
        .post_json(
            "/api/temperatures",
            r#"{"tapId": 1, "sensor": "keg", "location": "keg", "celsius": 12.04}"#,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{kept}");
    assert_eq!(kept["temperature"]["celsius"], 12.04);
    let series = format!("/api/temperatures?tapId=1&from={minute}:00Z");
    let read = app.get(&series).await.1["temperatures"].clone();
    assert_eq!(read.as_array().map(Vec::len), Some(2), "{read}");
    assert_eq!(
        (
            read[0]["timestamp"].as_str(),
            read[0]["celsius"].as_f64(),
            read[0]["samples"].as_u64()
        ),
        (
            Some(format!("{minute}:00.000Z").as_str()),
            Some(3.17),
            Some(3)
        ),
        "a day-old minute is one mean"
    );
    assert_eq!(
        (read[1]["celsius"].as_f64(), read[1]["samples"].as_u64()),
        (Some(12.04), Some(1))
    );

    // Too hot at once; fine again; silent; too warm for longer than allowed.
    assert_eq!(heard(&mut subscriber).await, "alert opened tooHot 1 #1");
    let (_, taps) = app.get("/api/taps").await;
    let now = &taps["taps"][0]["temperatures"][0];
    assert_eq!(
        (
            now["sensor"].as_str(),
            now["celsius"].as_f64(),
            now["condition"].as_str()
        ),
        (Some("keg"), Some(12.04), Some("hot")),
        "{taps}"
    );
    assert!(now["ageSeconds"].as_u64().is_some_and(|s| s < 60), "{now}");
    let reading = |c: f64| format!(r#"{{"tapId": 1, "sensor": "keg", "celsius": {c}}}"#);
    app.post_json("/api/temperatures", &reading(2.0)).await;
    assert_eq!(heard(&mut subscriber).await, "alert resolved tooHot 1 #2");
    assert_eq!(
        heard(&mut subscriber).await,
        "alert opened sensorSilent 2 #3"
    );
    app.post_json("/api/temperatures", &reading(5.0)).await;
    assert_eq!(
        heard(&mut subscriber).await,
        "alert resolved sensorSilent 2 #4"
    );
    assert_eq!(heard(&mut subscriber).await, "alert opened tooWarm 3 #5");
    let (_, alert) = app.get("/api/alerts/3").await;
    assert_eq!(
        (
            alert["alert"]["severity"].as_str(),
            alert["alert"]["sensor"].as_str(),
            alert["alert"]["tapId"].as_u64()
        ),
        (Some("warning"), Some("keg"), Some(1)),
        "{alert}"
    );
    let (_, hot) = app.get("/api/alerts/1").await;
    assert_eq!(hot["alert"]["severity"], "critical");

    // Bad readings are refused with the field, and keep nothing.
    let (status, body) = app
        .post_json("/api/temperatures", r#"{"tapId": 1, "celsius": "cold"}"#)
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let before = temperature_rows(backend).await;
    assert_eq!(before, before.map(|_| 6), "six readings kept");

    // A server that starts again reads the same, folds the day-old minute into one row,
    // and knows the alerts it had.
    drop(subscriber);
    let Some(app) = backend.restart(app, &flags).await else {
        return;
    };
    assert_eq!(
        app.get(&series).await.1["temperatures"][0],
        read[0],
        "the same mean"
    );
    within(async {
        while temperature_rows(backend).await != Some(4) {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await;
    let (_, alerts) = app.get("/api/alerts?state=open").await;
    let kinds: Vec<&str> = alerts["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["kind"].as_str())
        .filter(|k| ["tooWarm", "tooHot", "sensorSilent"].contains(k))
        .collect();
    assert_eq!(kinds.len(), 1, "one alert for the sensor: {alerts}");
}
