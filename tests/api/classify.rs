//! Classification at the band edges, end to end.

use reqwest::StatusCode;

use crate::helpers::{assert_error, spawn_app};

#[tokio::test]
async fn volumes_at_the_band_edges() {
    let app = spawn_app().await;
    let accepted = [
        ("100", "half"),
        ("300", "half"),
        ("300.01", "pint"),
        ("800", "pint"),
        ("800.5", "stein"),
        ("1000", "stein"),
    ];
    for (volume, glass) in accepted {
        let (status, body) = app
            .post_raw(format!(r#"{{"tapId": 1, "volume": {volume}}}"#))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{volume}: {body}");
        assert_eq!(body["beer"]["type"], glass, "{volume}");
    }

    let refused = [
        (
            "-5",
            "volume must be more than 0 and at most 5000 ml (got -5 ml)",
        ),
        (
            "0",
            "volume must be more than 0 and at most 5000 ml (got 0 ml)",
        ),
        (
            "5000.1",
            "volume must be more than 0 and at most 5000 ml (got 5000.1 ml)",
        ),
        (r#""500""#, "volume must be a number (ml)"),
        ("1e309", "volume must be a finite number (ml)"),
        // As sent, not as 309 digits.
        (
            "1e308",
            "volume must be more than 0 and at most 5000 ml (got 1e308 ml)",
        ),
        (
            "-1.000000000000000000000000000001",
            "volume must be more than 0 and at most 5000 ml (got -1.000000000000000000000… ml)",
        ),
    ];
    for (volume, message) in refused {
        let (status, body) = app
            .post_raw(format!(r#"{{"tapId": 1, "volume": {volume}}}"#))
            .await;
        assert_eq!(assert_error(status, &body, 422), message, "{volume}");
    }

    let (_, list) = app.get("/api/beers").await;
    assert_eq!(
        list["total"],
        accepted.len(),
        "refused pours are not stored"
    );
}
