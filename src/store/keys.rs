//! Idempotency keys: which key created which pour, from which request, and until when.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use super::journal::KeyMeta;
use crate::pour::{NewPour, Pour, Timestamp};

/// What "the same body" means for a retry: the fields the device sent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fingerprint {
    tap_id: u32,
    volume_bits: u64,
    /// The timestamp only if the device named it; otherwise the server chose it.
    timestamp: Option<Timestamp>,
}

impl Fingerprint {
    /// The fingerprint of a request.
    pub fn of_request(pour: &NewPour) -> Fingerprint {
        Fingerprint {
            tap_id: pour.tap_id,
            volume_bits: pour.volume.to_bits(),
            timestamp: pour.device_timestamp.then_some(pour.timestamp),
        }
    }

    /// The fingerprint of the request that stored `pour`.
    pub fn of_stored(pour: &Pour, device_timestamp: bool) -> Fingerprint {
        Fingerprint {
            tap_id: pour.tap_id,
            volume_bits: pour.volume.to_bits(),
            timestamp: device_timestamp.then_some(pour.timestamp),
        }
    }
}

/// A remembered key.
#[derive(Debug, Clone)]
pub struct Remembered {
    pub fingerprint: Fingerprint,
    pub pour: Pour,
    pub meta: KeyMeta,
}

/// Keys in memory, expired in creation order.
pub struct KeyTable {
    entries: HashMap<String, Remembered>,
    /// Keys by creation time; creation times only grow, so expiry pops from the front.
    order: VecDeque<(Timestamp, String)>,
    ttl_ms: i64,
}

impl KeyTable {
    /// An empty table remembering keys for `ttl`.
    pub fn new(ttl: Duration) -> KeyTable {
        KeyTable {
            entries: HashMap::new(),
            order: VecDeque::new(),
            ttl_ms: i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX),
        }
    }

    /// Whether a key created at `created` is still remembered at `now`.
    pub fn alive(&self, created: Timestamp, now: Timestamp) -> bool {
        created.millis().saturating_add(self.ttl_ms) > now.millis()
    }

    pub fn get(&self, key: &str) -> Option<&Remembered> {
        self.entries.get(key)
    }

    /// Remembers a key (recovery may hand them over slightly out of creation order; expiry
    /// then frees a few of them a little late, never early).
    pub fn insert(&mut self, remembered: Remembered) {
        let key = remembered.meta.key.clone();
        self.order.push_back((remembered.meta.created, key.clone()));
        self.entries.insert(key, remembered);
    }

    /// Forgets a key (a write that failed).
    pub fn remove(&mut self, key: &str) {
        self.entries.remove(key);
    }

    /// Forgets every key older than the time to live.
    pub fn expire(&mut self, now: Timestamp) {
        while let Some((created, _)) = self.order.front() {
            if self.alive(*created, now) {
                break;
            }
            if let Some((created, key)) = self.order.pop_front()
                && self
                    .entries
                    .get(&key)
                    .is_some_and(|r| r.meta.created == created)
            {
                self.entries.remove(&key);
            }
        }
    }

    /// Every remembered key.
    pub fn iter(&self) -> impl Iterator<Item = &Remembered> {
        self.entries.values()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }
}
