//! Keg Cop's reports, sent as a Keg Cop sends them to its "Keg Screen" URL: a pour, a
//! kick, a temperature report; the reports that change nothing; its token in the URL.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{spawn_binary_logged, spawn_with, tempdir};

/// A report as Keg Cop writes one: its identity fields, then `fields`.
fn report(kind: &str, fields: Value) -> String {
    let mut report = json!({
        "api": "Keg Cop",
        "guid": "0A1B2C3D",
        "hostname": "kegcop",
        "breweryname": "Dock Street",
        "kegeratorname": "Back bar",
        "reporttype": kind,
    });
    report
        .as_object_mut()
        .unwrap()
        .extend(fields.as_object().unwrap().clone());
    report.to_string()
}

#[tokio::test]
async fn a_keg_cop_pours_kicks_and_reports_temperatures_as_it_is() {
    let app = spawn_with(&[]).await;
    // Its tap 0 is tap 1; litres, or gallons when imperial.
    let pour = report(
        "pourreport",
        json!({"tapid": 0, "imperial": false, "dispensed": 0.473, "remaining": 18.2}),
    );
    let (status, answer) = app.post_json("/api/kegcop", &pour).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(
        (
            answer["beer"]["tapId"].as_u64(),
            answer["beer"]["volume"].as_f64()
        ),
        (Some(1), Some(473.0))
    );
    let pint = report(
        "pourreport",
        json!({"tapid": 1, "imperial": true, "dispensed": 0.125, "remaining": 4.1}),
    );
    let (_, answer) = app.post_json("/api/kegcop", &pint).await;
    assert_eq!(
        (
            answer["beer"]["tapId"].as_u64(),
            answer["beer"]["volume"].as_f64()
        ),
        (Some(2), Some(473.2))
    );

    // A kick finishes the keg on the tap, empty.
    let keg = r#"{"tapId": 1, "beverage": "Pils", "size": "euro-50"}"#;
    assert_eq!(app.post_json("/api/kegs", keg).await.0, StatusCode::CREATED);
    let kick = report("kickreport", json!({"tapid": 0}));
    let (status, answer) = app.post_json("/api/kegcop", &kick).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        (
            answer["keg"]["status"].as_str(),
            answer["keg"]["yield"]["leftMl"].as_f64()
        ),
        (Some("finished"), Some(0.0)),
        "kicked: nothing left, {answer}"
    );
    let (status, answer) = app.post_json("/api/kegcop", &kick).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "no keg left to kick: {answer}"
    );

    // Its sensors, °F when imperial, on the tap the URL names; a missing one left out.
    let temps = report(
        "tempreport",
        json!({"imperial": true, "controlpoint": 2, "setting": 38.0, "status": 1, "controlenabled": true,
               "sensors": [
                   {"name": "Room", "value": 71.6, "enabled": true},
                   {"name": "Tower", "value": 39.2, "enabled": true},
                   {"name": "Upper Chamber", "value": 37.4, "enabled": true},
                   {"name": "Lower Chamber", "value": -100.0, "enabled": true},
                   {"name": "Keg", "value": 36.5, "enabled": false}]}),
    );
    let (status, answer) = app.post_json("/api/kegcop?tapId=2", &temps).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let (_, read) = app.get("/api/temperatures?tapId=2").await;
    let kept: Vec<(&str, &str, f64)> = read["temperatures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["sensor"].as_str().unwrap(),
                r["location"].as_str().unwrap(),
                r["celsius"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kept,
        [
            ("Room", "room", 22.0),
            ("Tower", "tower", 4.0),
            ("Upper Chamber", "cooler", 3.0)
        ]
    );

    // Its other reports are taken, and change nothing; a report that is none is refused.
    for kind in ["tapinfo", "coolstate"] {
        let (status, answer) = app
            .post_json("/api/kegcop", &report(kind, json!({"state": 1})))
            .await;
        assert_eq!((status, &answer["ignored"]), (StatusCode::OK, &json!(kind)));
    }
    let (status, answer) = app
        .post_json(
            "/api/kegcop",
            &report("pourreport", json!({"tapid": -1, "dispensed": 1})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert!(
        answer["message"].as_str().unwrap().contains("tapid"),
        "{answer}"
    );
    let bad_sensor = report(
        "tempreport",
        json!({"sensors": [{"name": "Room", "value": "warm", "enabled": true}]}),
    );
    let (status, answer) = app.post_json("/api/kegcop", &bad_sensor).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    let (status, _) = app
        .post_json("/api/kegcop", &report("brewreport", json!({})))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (_, page) = app.get("/api/beers").await;
    assert_eq!(page["total"], 2, "{page}");
}

#[tokio::test]
async fn a_keg_cop_names_its_token_in_the_url_and_the_log_never_shows_it() {
    let dir = tempdir("kegcop-token");
    let (file, [tap3, _, _]) = crate::security::tokens_file(&dir);
    let (_child, addr, log) =
        spawn_binary_logged(&["--ephemeral", "--tokens", file.to_str().unwrap()]);
    let http = crate::helpers::http_client();
    let pour = report("pourreport", json!({"tapid": 2, "dispensed": 0.5}));
    let post = |path: String| {
        http.post(format!("http://{addr}{path}"))
            .header("Content-Type", "application/json")
            .body(pour.clone())
            .send()
    };
    assert_eq!(
        post("/api/kegcop".into()).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    let taken = post(format!("/api/kegcop?token={tap3}")).await.unwrap();
    assert_eq!(taken.status(), StatusCode::CREATED);
    // Tap 3's token pours for tap 3 only (Keg Cop's tap 2).
    let other = report("pourreport", json!({"tapid": 0, "dispensed": 0.5}));
    let refused = http
        .post(format!("http://{addr}/api/kegcop?token={tap3}"))
        .header("Content-Type", "application/json")
        .body(other)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    // Elsewhere the query's token is no token.
    let elsewhere = http
        .get(format!("http://{addr}/api/beers?token={tap3}"))
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), StatusCode::UNAUTHORIZED);
    let lines = log.lock().unwrap().clone();
    assert!(lines.iter().any(|l| l.contains("/api/kegcop")), "{lines:?}");
    assert!(
        !lines.iter().any(|l| l.contains(&tap3)),
        "the token is never logged"
    );
    let _ = std::fs::remove_dir_all(dir);
}
