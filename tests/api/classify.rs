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
        ("99.9", "no glass for 99.9 ml; accepted 100 to 1000 ml"),
        ("1000.1", "no glass for 1000.1 ml; accepted 100 to 1000 ml"),
        ("-5", "volume must not be negative (got -5 ml)"),
        (r#""500""#, "volume must be a number (ml)"),
        ("1e309", "volume must be a finite number (ml)"),
        // As sent, not as 309 digits.
        ("1e308", "no glass for 1e308 ml; accepted 100 to 1000 ml"),
        (
            "-1.000000000000000000000000000001",
            "volume must not be negative (got -1.000000000000000000000… ml)",
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
