//! Idempotency keys: which key created which pour, from which request, and until when.

use std::collections::{HashMap, VecDeque};

use super::file::KeyMeta;
use crate::decide::{KeyTtl, KnownPour};
use crate::pour::{Pour, Timestamp};

/// A remembered key.
#[derive(Debug, Clone)]
pub struct Remembered {
    pub pour: Pour,
    pub meta: KeyMeta,
}

impl Remembered {
    /// What the rules need of it; `deleted`: whether its pour has been deleted since.
    pub fn known(&self, deleted: bool) -> KnownPour<'_> {
        KnownPour {
            pour: &self.pour,
            device_timestamp: self.meta.device_timestamp,
            created: self.meta.created,
            deleted,
        }
    }
}

/// Keys in memory, expired in creation order.
pub struct KeyTable {
    entries: HashMap<String, Remembered>,
    /// Keys by creation time; creation times only grow, so expiry pops from the front.
    order: VecDeque<(Timestamp, String)>,
    ttl: KeyTtl,
}

impl KeyTable {
    /// An empty table remembering keys for `ttl`.
    pub fn new(ttl: KeyTtl) -> KeyTable {
        KeyTable {
            entries: HashMap::new(),
            order: VecDeque::new(),
            ttl,
        }
    }

    /// Whether a key created at `created` is still remembered at `now`.
    pub fn alive(&self, created: Timestamp, now: Timestamp) -> bool {
        self.ttl.alive(created, now)
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
