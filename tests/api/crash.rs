//! Crash safety of the real binary: SIGKILL at random moments under concurrent load.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::beers::tempdir;
use crate::helpers::{read_json, spawn_binary};

const CLIENTS: u32 = 8;
const ROUNDS: u32 = 4;

/// Posts pours as fast as they are answered until the server goes away; returns the
/// acknowledged ones.
async fn post_until_gone(addr: String, tap: u32) -> Vec<Value> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut acked = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    for n in 0u32.. {
        if Instant::now() > deadline {
            break;
        }
        let volume = 100 + (n * 37 + tap * 11) % 900;
        let sent = http
            .post(format!("http://{addr}/api/beers"))
            .header("content-type", "application/json")
            .body(json!({"tapId": tap, "volume": volume}).to_string())
            .send()
            .await;
        let Ok(response) = sent else { break };
        let (status, body) = read_json(response).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        acked.push(body["beer"].clone());
    }
    acked
}

/// Every stored pour, by id, walking the cursor.
async fn stored(addr: &str) -> BTreeMap<u64, Value> {
    let http = crate::helpers::http_client();
    let mut all = BTreeMap::new();
    let mut after = 0;
    loop {
        let response = http
            .get(format!(
                "http://{addr}/api/beers?after={after}&page_size=1000"
            ))
            .send()
            .await
            .unwrap();
        let (_, page) = read_json(response).await;
        let beers = page["beers"].as_array().unwrap();
        let Some(last) = beers.last() else { break };
        after = last["id"].as_u64().unwrap();
        for beer in beers {
            all.insert(beer["id"].as_u64().unwrap(), beer.clone());
        }
    }
    all
}

async fn check(addr: &str, acked: &BTreeMap<u64, Value>) {
    let stored = stored(addr).await;
    for (id, pour) in acked {
        assert_eq!(
            stored.get(id),
            Some(pour),
            "acknowledged pour {id} is missing or changed"
        );
    }
    let response = crate::helpers::http_client()
        .get(format!("http://{addr}/api/report"))
        .send()
        .await
        .unwrap();
    let (_, report) = read_json(response).await;
    assert_eq!(
        report["totalPours"],
        stored.len(),
        "report totals match the stored pours"
    );
    let volume: f64 = stored.values().map(|p| p["volume"].as_f64().unwrap()).sum();
    assert_eq!(report["totalVolumeMl"].as_f64().unwrap(), volume);
}

#[tokio::test]
async fn acknowledged_pours_survive_sigkill_at_any_moment() {
    let dir = tempdir("crash");
    let data_dir = dir.to_str().unwrap().to_owned();
    let mut acked: BTreeMap<u64, Value> = BTreeMap::new();
    for round in 0..ROUNDS {
        let (mut child, addr) = spawn_binary(&["--data-dir", &data_dir]);
        check(&addr, &acked).await;
        let clients: Vec<_> = (1..=CLIENTS)
            .map(|tap| tokio::spawn(post_until_gone(addr.clone(), tap)))
            .collect();
        // A kill point somewhere in 100..600 ms, different each round and each run.
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        tokio::time::sleep(Duration::from_millis(
            100 + u64::from((nanos ^ (round * 7919)) % 500),
        ))
        .await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let before = acked.len();
        for client in clients {
            for pour in client.await.unwrap() {
                acked.insert(pour["id"].as_u64().unwrap(), pour);
            }
        }
        assert!(
            acked.len() > before,
            "round {round} acknowledged some pours"
        );
        eprintln!("round {round}: {} pours acknowledged", acked.len() - before);
    }
    let (mut child, addr) = spawn_binary(&["--data-dir", &data_dir]);
    check(&addr, &acked).await;
    // The sequence goes on above every id ever acknowledged.
    let highest = *acked.keys().last().unwrap();
    let response = crate::helpers::http_client()
        .post(format!("http://{addr}/api/beers"))
        .header("content-type", "application/json")
        .body(r#"{"tapId": 1, "volume": 500}"#)
        .send()
        .await
        .unwrap();
    let (status, body) = read_json(response).await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(body["beer"]["id"].as_u64().unwrap() > highest);
    child.kill().unwrap();
    child.wait().unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}
