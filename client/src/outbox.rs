//! The outbox: every pour is on disk before the tap tries to send it, and leaves the disk
//! only when the server has acknowledged it (or rejected it for good).
//!
//! One small JSON file per pending pour, `<seq>.json`, written to a temporary name, synced
//! and renamed into place, so that a crash leaves either the whole pour or nothing. The
//! sequence number orders them; the idempotency key inside makes resending safe.

use std::collections::VecDeque;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::protocol::NewPour;

/// A pour waiting for the server's acknowledgement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pending {
    pub seq: u64,
    /// Sent as `Idempotency-Key`: a retry of this pour is never a second pour.
    pub key: String,
    pub pour: NewPour,
}

/// A tap's outbox folder.
#[derive(Debug)]
pub struct Outbox {
    dir: PathBuf,
    queue: VecDeque<Pending>,
    next_seq: u64,
    /// Holds the folder's lock: two clients sending one outbox would send, and drop, each
    /// other's pours. Released when the outbox drops (or the process dies).
    _lock: fs::File,
}

/// The lock file inside an outbox folder.
const LOCK_NAME: &str = "LOCK";

fn file_name(seq: u64) -> String {
    format!("{seq:020}.json")
}

impl Outbox {
    /// Opens (or creates) the outbox in `dir` and loads what a previous run left.
    /// Unreadable files are moved aside as `*.bad` and logged, never silently dropped.
    pub fn open(dir: &Path) -> io::Result<Outbox> {
        fs::create_dir_all(dir)?;
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(LOCK_NAME))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(io::Error::new(
                    io::ErrorKind::WouldBlock,
                    "in use by another client (one client per tap id and data directory)",
                ));
            }
            Err(fs::TryLockError::Error(e)) => return Err(e),
        }
        let mut queue = Vec::new();
        for entry in fs::read_dir(dir)? {
            let path = entry?.path();
            match path.extension().and_then(|e| e.to_str()) {
                Some("tmp") => fs::remove_file(&path)?,
                Some("json") => match fs::read(&path)
                    .ok()
                    .and_then(|b| serde_json::from_slice::<Pending>(&b).ok())
                {
                    Some(pending) => queue.push(pending),
                    None => {
                        let aside = path.with_extension("bad");
                        log::error!(
                            "outbox file {} is unreadable; moved to {}",
                            path.display(),
                            aside.display()
                        );
                        fs::rename(&path, aside)?;
                    }
                },
                _ => {}
            }
        }
        queue.sort_by_key(|p| p.seq);
        let next_seq = queue.last().map_or(1, |p| p.seq + 1);
        Ok(Outbox {
            dir: dir.to_owned(),
            queue: queue.into(),
            next_seq,
            _lock: lock,
        })
    }

    /// Writes a new pour durably and queues it; returns it.
    pub fn push(&mut self, key: String, pour: NewPour) -> io::Result<Pending> {
        let pending = Pending {
            seq: self.next_seq,
            key,
            pour,
        };
        let path = self.dir.join(file_name(pending.seq));
        let tmp = path.with_extension("tmp");
        let mut file = fs::File::create(&tmp)?;
        file.write_all(&serde_json::to_vec(&pending).map_err(io::Error::other)?)?;
        file.sync_all()?;
        fs::rename(&tmp, &path)?;
        fs::File::open(&self.dir)?.sync_all()?;
        self.next_seq += 1;
        self.queue.push_back(pending.clone());
        Ok(pending)
    }

    /// The oldest pour not yet acknowledged.
    pub fn front(&self) -> Option<&Pending> {
        self.queue.front()
    }

    /// Forgets the oldest pour (acknowledged, or rejected for good).
    pub fn pop(&mut self) -> io::Result<()> {
        if let Some(pending) = self.queue.pop_front() {
            match fs::remove_file(self.dir.join(file_name(pending.seq))) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pour(volume: f64) -> NewPour {
        NewPour {
            tap_id: 2,
            volume,
            timestamp: "2026-11-22T21:04:05.123Z".into(),
        }
    }

    #[test]
    fn one_outbox_folder_has_one_client_at_a_time() {
        let dir = std::env::temp_dir().join(format!("altair-outbox-lock-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let first = Outbox::open(&dir).unwrap();
        let second = Outbox::open(&dir).unwrap_err();
        assert_eq!(second.kind(), io::ErrorKind::WouldBlock);
        assert!(second.to_string().contains("another client"), "{second}");
        drop(first);
        Outbox::open(&dir).unwrap();
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn pending_pours_survive_a_reopen_in_order() {
        let dir = std::env::temp_dir().join(format!("altair-outbox-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let mut outbox = Outbox::open(&dir).unwrap();
        for v in [100.0, 200.0, 300.0] {
            outbox.push(format!("k{v}"), pour(v)).unwrap();
        }
        outbox.pop().unwrap();
        fs::write(dir.join("garbage.json"), "{not json").unwrap();
        fs::write(dir.join("00000000000000000009.tmp"), "half").unwrap();
        drop(outbox);

        let mut outbox = Outbox::open(&dir).unwrap();
        assert_eq!(outbox.len(), 2);
        assert_eq!(outbox.front().unwrap().pour.volume, 200.0);
        assert!(
            dir.join("garbage.bad").exists(),
            "unreadable files are kept aside"
        );
        assert!(!dir.join("00000000000000000009.tmp").exists());
        let next = outbox.push("k4".into(), pour(400.0)).unwrap();
        assert_eq!(
            next.seq, 4,
            "sequence continues after the newest pending pour"
        );
        outbox.pop().unwrap();
        outbox.pop().unwrap();
        outbox.pop().unwrap();
        assert!(outbox.is_empty());
        drop(outbox);
        assert!(Outbox::open(&dir).unwrap().is_empty());
        fs::remove_dir_all(dir).unwrap();
    }
}
