//! Crash safety of the real binary: SIGKILL at random moments under concurrent load.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{read_json, spawn_binary, tempdir};

const CLIENTS: u32 = 8;
const ROUNDS: u32 = 4;

/// Posts pours as fast as they are answered until the server goes away; returns the
/// acknowledged ones, and counts them in `heard` as they come.
async fn post_until_gone(
    http: reqwest::Client,
    addr: String,
    tap: u32,
    heard: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) -> Vec<Value> {
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
        heard.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
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

/// Taps a keg on `tap`; the keg, if the server acknowledged it.
async fn tap_keg(addr: &str, tap: u32, beverage: &str) -> Option<Value> {
    let response = crate::helpers::http_client()
        .post(format!("http://{addr}/api/kegs"))
        .header("content-type", "application/json")
        .body(json!({"tapId": tap, "beverage": beverage, "size": "euro-50"}).to_string())
        .send()
        .await
        .ok()?;
    let (status, body) = read_json(response).await;
    (status == StatusCode::CREATED).then(|| body["keg"].clone())
}

/// Every acknowledged keg is there as tapped, and the kegs hold every stored pour (every
/// tap has had a keg on since before its first pour).
async fn check_kegs(addr: &str, kegs: &BTreeMap<u64, Value>, stored: &BTreeMap<u64, Value>) {
    let response = crate::helpers::http_client()
        .get(format!("http://{addr}/api/kegs"))
        .send()
        .await
        .unwrap();
    let (_, listed) = read_json(response).await;
    let listed: BTreeMap<u64, Value> = listed["kegs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| (k["id"].as_u64().unwrap(), k.clone()))
        .collect();
    for (id, keg) in kegs {
        let found = listed
            .get(id)
            .unwrap_or_else(|| panic!("acknowledged keg {id} is missing"));
        assert_eq!(
            (&found["tapId"], &found["beverage"]),
            (&keg["tapId"], &keg["beverage"])
        );
    }
    let drawn: f64 = listed
        .values()
        .map(|k| k["drawnMl"].as_f64().unwrap())
        .sum();
    let poured: f64 = stored.values().map(|p| p["volume"].as_f64().unwrap()).sum();
    assert_eq!(
        (drawn * 1000.0).round(),
        (poured * 1000.0).round(),
        "the kegs hold every pour"
    );
}

async fn check(addr: &str, acked: &BTreeMap<u64, Value>, kegs: &BTreeMap<u64, Value>) {
    let stored = stored(addr).await;
    check_kegs(addr, kegs, &stored).await;
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
    let mut kegs: BTreeMap<u64, Value> = BTreeMap::new();
    for round in 0..ROUNDS {
        let (mut child, addr) = spawn_binary(&["--data-dir", &data_dir]);
        check(&addr, &acked, &kegs).await;
        if round == 0 {
            for tap in 1..=CLIENTS {
                let keg = tap_keg(&addr, tap, "first").await.expect("a keg is tapped");
                kegs.insert(keg["id"].as_u64().unwrap(), keg);
            }
        }
        // One client for all (building one reads the system's CA store), made before the
        // load starts.
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        let heard = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let clients: Vec<_> = (1..=CLIENTS)
            .map(|tap| {
                tokio::spawn(post_until_gone(
                    http.clone(),
                    addr.clone(),
                    tap,
                    heard.clone(),
                ))
            })
            .collect();
        // A keg change under load, which the kill may cut short.
        let change = {
            let addr = addr.clone();
            tokio::spawn(async move { tap_keg(&addr, round % CLIENTS + 1, "next").await })
        };
        // The load is under way (a first pour answered), then a kill point somewhere in
        // 100..600 ms, different each round and each run.
        crate::helpers::within(async {
            while heard.load(std::sync::atomic::Ordering::Relaxed) == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
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
        if let Some(keg) = change.await.unwrap() {
            kegs.insert(keg["id"].as_u64().unwrap(), keg);
        }
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
    check(&addr, &acked, &kegs).await;
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
