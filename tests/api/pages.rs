//! Listing pours: pages, filters, totals, and cursor walks.

use std::collections::BTreeSet;

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{assert_error, spawn_app};

fn ids(list: &Value) -> Vec<u64> {
    list["beers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_u64().unwrap())
        .collect()
}

#[tokio::test]
async fn pages_count_from_one_and_report_the_total() {
    let app = spawn_app().await;
    for _ in 0..7 {
        app.pour(1, 500.0).await;
    }
    let (status, list) = app.get("/api/beers?page=2&page_size=3").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ids(&list), [4, 5, 6]);
    assert_eq!(
        (&list["page"], &list["pageSize"], &list["total"]),
        (&2.into(), &3.into(), &7.into())
    );

    let (_, list) = app.get("/api/beers").await;
    assert_eq!(
        (ids(&list).len(), &list["page"], &list["pageSize"]),
        (7, &1.into(), &50.into())
    );

    let (status, list) = app.get("/api/beers?page=9&page_size=3").await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a page past the end is not an error"
    );
    assert!(ids(&list).is_empty());
    assert_eq!(list["total"], 7);
}

#[tokio::test]
async fn page_parameters_are_checked() {
    let app = spawn_app().await;
    for query in [
        "page=0",
        "page=-1",
        "page=x",
        "page_size=0",
        "page_size=1001",
        "after=-3",
        "tapId=0",
        "from=yesterday",
        // Past what the document's int64 (and a bigint column) holds.
        "page=9223372036854775808",
        "after=9223372036854775808",
    ] {
        let (status, body) = app.get(&format!("/api/beers?{query}")).await;
        assert_error(status, &body, 400);
    }
    let (status, _) = app.get("/api/beers?page_size=1000").await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = app.get("/api/beers/9223372036854775808").await;
    assert_error(status, &body, 400);
    let (status, body) = app.get("/api/beers?type=goblet").await;
    let message = assert_error(status, &body, 422);
    assert!(message.contains("half, pint, stein"), "{message}");
}

#[tokio::test]
async fn a_page_counts_from_the_cursor_when_both_are_given() {
    let app = spawn_app().await;
    for _ in 0..10 {
        app.pour(1, 500.0).await;
    }
    let (status, body) = app.get("/api/beers?after=3&page=2&page_size=2").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let ids: Vec<u64> = body["beers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [6, 7], "{body}");
    assert_eq!(body["page"], 2);
}

#[tokio::test]
async fn filters_by_type_tap_and_time() {
    let app = spawn_app().await;
    let posts = [
        (1, 500, "2026-01-01T10:00:00Z"),
        (2, 500, "2026-01-01T11:00:00Z"),
        (1, 200, "2026-01-01T12:00:00Z"),
        (1, 900, "2026-01-01T13:00:00Z"),
        (1, 600, "2026-01-01T14:00:00Z"),
    ];
    for (tap, volume, at) in posts {
        let (status, _) = app
            .post_raw(format!(
                r#"{{"tapId":{tap},"volume":{volume},"timestamp":"{at}"}}"#
            ))
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let (_, list) = app.get("/api/beers?type=pint").await;
    assert_eq!((ids(&list), &list["total"]), (vec![1, 2, 5], &3.into()));
    let (_, list) = app.get("/api/beers?tapId=1&type=pint").await;
    assert_eq!((ids(&list), &list["total"]), (vec![1, 5], &2.into()));
    let (_, list) = app
        .get("/api/beers?from=2026-01-01T11:00:00Z&to=2026-01-01T13:00:00Z")
        .await;
    assert_eq!((ids(&list), &list["total"]), (vec![2, 3, 4], &3.into()));
    let (_, list) = app.get("/api/beers?tapId=1&page_size=2&page=2").await;
    assert_eq!((ids(&list), &list["total"]), (vec![4, 5], &4.into()));
    let (_, list) = app.get("/api/beers?tapId=3").await;
    assert_eq!((ids(&list), &list["total"]), (vec![], &0.into()));
}

#[tokio::test]
async fn a_cursor_walk_visits_every_pour_once_while_pours_arrive() {
    let app = std::sync::Arc::new(spawn_app().await);
    for _ in 0..60 {
        app.pour(1, 500.0).await;
    }
    let writer = {
        let app = app.clone();
        tokio::spawn(async move {
            for i in 0..150 {
                app.pour(1 + i % 3, 500.0).await;
            }
        })
    };
    let mut seen = Vec::new();
    let mut after = 0;
    loop {
        let (status, list) = app
            .get(&format!("/api/beers?after={after}&page_size=7"))
            .await;
        assert_eq!(status, StatusCode::OK);
        let page = ids(&list);
        match page.last() {
            Some(&last) => after = last,
            // The end, once the writer is done; until then the walk follows it.
            None if writer.is_finished() => break,
            None => tokio::task::yield_now().await,
        }
        seen.extend(page);
    }
    writer.await.unwrap();
    // Anything the writer added after the last empty page is picked up by one more page.
    let (_, list) = app
        .get(&format!("/api/beers?after={after}&page_size=1000"))
        .await;
    seen.extend(ids(&list));

    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "strictly increasing, no duplicates"
    );
    let unique: BTreeSet<u64> = seen.iter().copied().collect();
    assert_eq!(unique, (1..=210).collect(), "every pour exactly once");
}
