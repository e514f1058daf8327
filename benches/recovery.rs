//! Start-up time of the durable store: `cargo bench --bench recovery`.
//!
//! Writes a journal of 1,000,000 pours (a tenth of them with idempotency keys, one in a
//! hundred deleted), then opens it five times and prints the median and the spread.

#![allow(clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use altair::anomaly::Burst;
use altair::decide::{KeyTtl, Settings};
use altair::feed::Feed;
use altair::glass::Catalogue;
use altair::pour::{Flags, Pour, Timestamp};
use altair::store::journal::file::{FrameBuf, Journal, KeyMeta, Record};
use altair::store::{JournalSettings, JournalStore, Store};

const POURS: u64 = 1_000_000;

fn main() {
    let dir = std::env::temp_dir().join(format!("altair-recovery-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let catalogue = Catalogue::default();
    let glasses: Vec<Arc<str>> = catalogue.glasses().iter().map(|g| g.name.clone()).collect();
    let now = Timestamp::now();
    let main: Arc<str> = "main".into();
    {
        let (mut journal, _) = Journal::open(&dir, &catalogue, &main, |_| {}).expect("new journal");
        let mut frame = FrameBuf::new(main.clone());
        for id in 1..=POURS {
            let pour = Pour {
                id,
                venue: main.clone(),
                tap_id: (id % 24) as u32 + 1,
                volume: 100.0 + (id % 900) as f64,
                glass: glasses[(id % 3) as usize].clone(),
                timestamp: Timestamp::from_millis(now.millis() - (POURS - id) as i64),
                flags: Flags::NONE,
            };
            let key = (id % 10 == 0).then(|| KeyMeta {
                key: format!("device-{id}"),
                created: now,
                device_timestamp: false,
            });
            frame.push(&Record::Pour { pour, key });
            if id % 100 == 0 {
                frame.push(&Record::Delete { id: id - 50 });
            }
            if id % 1024 == 0 {
                journal.append(&mut frame).expect("append");
                frame = FrameBuf::new(main.clone());
            }
        }
        if !frame.is_empty() {
            journal.append(&mut frame).expect("append");
        }
    }
    let size = std::fs::metadata(dir.join("journal"))
        .expect("journal")
        .len();
    let settings = JournalSettings {
        rules: Settings {
            key_ttl: KeyTtl::new(Duration::from_secs(86_400)),
            burst: Burst { max_flow: 200.0 },
        },
        compact_min_bytes: u64::MAX,
        default_venue: main.clone(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mut times = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let (store, opened) = JournalStore::open(
            &dir,
            &catalogue,
            Feed::standalone(&catalogue),
            settings.clone(),
        )
        .expect("open");
        times.push(started.elapsed());
        assert_eq!(opened.pours, POURS - POURS / 100);
        runtime.block_on(store.close());
    }
    times.sort();
    println!(
        "recovery of {POURS} pours ({} MB journal): median {:.0?}, min {:.0?}, max {:.0?}",
        size / 1_000_000,
        times[2],
        times[0],
        times[4]
    );
    let _ = std::fs::remove_dir_all(&dir);
}
