//! Group-commit throughput of three ways to make pours durable: `cargo run --release`
//! (pin it with `taskset -c 0`). Each writes 20,000 pours of about 30 bytes in batches
//! of 1, 16 and 64, one durable commit per batch, three runs each.

use std::io::Write;
use std::time::Instant;

const TOTAL: u64 = 20_000;

fn record(id: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(40);
    v.extend_from_slice(&id.to_le_bytes());
    v.extend_from_slice(&3u32.to_le_bytes());
    v.extend_from_slice(&500f64.to_le_bytes());
    v.extend_from_slice(&1_800_000_000_000i64.to_le_bytes());
    v.extend_from_slice(b"\x04pint");
    v
}

/// An append-only file with fdatasync per batch, as `src/store/journal.rs` does.
fn journal(dir: &std::path::Path, batch: u64) -> f64 {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("j"))
        .unwrap();
    let t = Instant::now();
    let mut id = 0;
    while id < TOTAL {
        let mut buf = Vec::new();
        for _ in 0..batch {
            id += 1;
            buf.extend_from_slice(&record(id));
        }
        f.write_all(&buf).unwrap();
        f.sync_data().unwrap();
    }
    TOTAL as f64 / t.elapsed().as_secs_f64()
}

const T: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("pours");

/// redb: one write transaction per batch (its default durability).
fn redb_bench(dir: &std::path::Path, batch: u64) -> f64 {
    let db = redb::Database::create(dir.join("r.redb")).unwrap();
    let t = Instant::now();
    let mut id = 0;
    while id < TOTAL {
        let tx = db.begin_write().unwrap();
        {
            let mut table = tx.open_table(T).unwrap();
            for _ in 0..batch {
                id += 1;
                table.insert(id, record(id).as_slice()).unwrap();
            }
        }
        tx.commit().unwrap();
    }
    TOTAL as f64 / t.elapsed().as_secs_f64()
}

/// fjall: one write batch per batch, persisted with fdatasync.
fn fjall_bench(dir: &std::path::Path, batch: u64) -> f64 {
    let db = fjall::Database::builder(dir.join("fj")).open().unwrap();
    let ks = db
        .keyspace("pours", fjall::KeyspaceCreateOptions::default)
        .unwrap();
    let t = Instant::now();
    let mut id = 0;
    while id < TOTAL {
        let mut b = db.batch().durability(Some(fjall::PersistMode::SyncData));
        for _ in 0..batch {
            id += 1;
            b.insert(&ks, id.to_be_bytes(), record(id));
        }
        b.commit().unwrap();
    }
    TOTAL as f64 / t.elapsed().as_secs_f64()
}

fn main() {
    for batch in [1u64, 16, 64] {
        for (name, f) in [
            ("journal", journal as fn(&std::path::Path, u64) -> f64),
            ("redb", redb_bench),
            ("fjall", fjall_bench),
        ] {
            let mut rates = vec![];
            for run in 0..3 {
                let dir = std::env::temp_dir().join(format!("eb-{name}-{batch}-{run}"));
                let _ = std::fs::remove_dir_all(&dir);
                std::fs::create_dir_all(&dir).unwrap();
                rates.push(f(&dir, batch));
                let _ = std::fs::remove_dir_all(&dir);
            }
            rates.sort_by(|a, b| a.partial_cmp(b).unwrap());
            println!(
                "{name:8} batch {batch:3}: median {:>8.0} pours/s (min {:.0}, max {:.0})",
                rates[1], rates[0], rates[2]
            );
        }
    }
}
