//! List-page cost against store size: `cargo bench --bench store_pages`.
//!
//! Prints the median time of each kind of page at 1,000 and 1,000,000 stored pours; the
//! indexes are meant to make the two columns about equal.

#![allow(clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use altair::anomaly::Burst;
use altair::decide::{KeyTtl, Settings};
use altair::feed::Feed;
use altair::glass::Catalogue;
use altair::pour::{Flags, NewPour, Timestamp};
use altair::store::{JournalSettings, JournalStore, ListQuery, Start, Store};

const ROUNDS: usize = 2000;

async fn filled(n: u64) -> JournalStore {
    let catalogue = Catalogue::default();
    let settings = JournalSettings {
        rules: Settings {
            key_ttl: KeyTtl::new(Duration::from_secs(60)),
            burst: Burst { max_flow: 200.0 },
        },
        compact_min_bytes: u64::MAX,
        default_venue: "main".into(),
    };
    let store = JournalStore::ephemeral(Feed::standalone(&catalogue), settings);
    let glasses: Vec<Arc<str>> = catalogue.glasses().iter().map(|g| g.name.clone()).collect();
    for i in 0..n {
        let pour = NewPour {
            venue: "main".into(),
            tap_id: (i % 16) as u32 + 1,
            volume: 500.0,
            glass: glasses[(i % 3) as usize].clone(),
            timestamp: Timestamp::from_millis(i as i64 * 1000),
            device_timestamp: true,
            flags: Flags::NONE,
        };
        store.insert(pour, None).await.expect("memory insert");
    }
    store
}

async fn median(store: &JournalStore, query: &ListQuery) -> Duration {
    let mut times = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let started = Instant::now();
        black_box(store.list(query).await.expect("memory list"));
        times.push(started.elapsed());
    }
    times.sort();
    times[ROUNDS / 2]
}

fn query(start: Start, glass: Option<&str>, tap_id: Option<u32>) -> ListQuery {
    ListQuery {
        start,
        limit: 50,
        glass: glass.map(Arc::from),
        venue: None,
        tap_id,
        flag: None,
        from: None,
        to: None,
        count_total: true,
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let sizes = [1_000u64, 1_000_000];
    let mut stores = Vec::new();
    for n in sizes {
        stores.push(filled(n).await);
    }
    type Case = (&'static str, Box<dyn Fn(u64) -> ListQuery>);
    let cases: Vec<Case> = vec![
        (
            "page 1, 50 a page",
            Box::new(|_| query(Start::offset(0), None, None)),
        ),
        (
            "last page by offset",
            Box::new(|n| query(Start::offset(n as usize - 50), None, None)),
        ),
        (
            "cursor page mid-store",
            Box::new(|n| query(Start::after(n / 2), None, None)),
        ),
        (
            "type=pint page 1",
            Box::new(|_| query(Start::offset(0), Some("pint"), None)),
        ),
        (
            "tapId=3 cursor page",
            Box::new(|n| query(Start::after(n / 2), None, Some(3))),
        ),
        (
            "tapId=3&type=pint page 1",
            Box::new(|_| query(Start::offset(0), Some("pint"), Some(3))),
        ),
    ];
    println!("| page | 1,000 pours | 1,000,000 pours | ratio |");
    println!("|---|---:|---:|---:|");
    for (name, make) in &cases {
        let mut medians = Vec::new();
        for (store, n) in stores.iter().zip(sizes) {
            medians.push(median(store, &make(n)).await);
        }
        println!(
            "| {name} | {:.1} µs | {:.1} µs | {:.2} |",
            medians[0].as_secs_f64() * 1e6,
            medians[1].as_secs_f64() * 1e6,
            medians[1].as_secs_f64() / medians[0].as_secs_f64()
        );
    }
}
