//! The in-memory index: the serving structure for every store.
//!
//! Lookup by id is a vector index. Lists use sorted id vectors (all pours, per glass, per
//! tap) that inserts only append to, because ids grow: an offset page is a slice and a cursor
//! page a binary search, whatever the store's size. Deletion is a binary search plus a shift
//! of the vectors, O(n) memory moves: deletions are rare administrative acts, reads and
//! appends are the hot path. Time-range filters have no index and scan the narrowest one.

use std::collections::HashMap;
use std::sync::Arc;

use super::{ListQuery, Page, Stats};
use crate::pour::Pour;

/// Pours by id, with the indexes that lists use.
#[derive(Default)]
pub struct Index {
    /// Slot `i` holds the pour with id `i + 1`, or `None` once it is deleted.
    slots: Vec<Option<Pour>>,
    all: Vec<u64>,
    by_glass: HashMap<Arc<str>, Vec<u64>>,
    by_tap: HashMap<u32, Vec<u64>>,
    /// Live pours per (tap, glass), so that a total for both filters is O(1).
    per_tap_glass: HashMap<(u32, Arc<str>), u64>,
}

impl Index {
    /// The pour with this id.
    pub fn get(&self, id: u64) -> Option<&Pour> {
        let index = usize::try_from(id.checked_sub(1)?).ok()?;
        self.slots.get(index)?.as_ref()
    }

    /// Adds a pour whose id is above every id so far (ids between are left as gaps).
    pub fn insert(&mut self, pour: Pour) {
        let Some(slot) = pour
            .id
            .checked_sub(1)
            .and_then(|i| usize::try_from(i).ok())
            .filter(|&i| i >= self.slots.len())
        else {
            // Callers assign ids in order; an old id here is a bug, and ignoring it keeps
            // the indexes sorted.
            log::error!(
                "index: pour {} is not above the last id {}",
                pour.id,
                self.slots.len()
            );
            return;
        };
        let id = pour.id;
        self.slots.resize(slot, None);
        self.all.push(id);
        self.by_glass
            .entry(pour.glass.clone())
            .or_default()
            .push(id);
        self.by_tap.entry(pour.tap_id).or_default().push(id);
        *self
            .per_tap_glass
            .entry((pour.tap_id, pour.glass.clone()))
            .or_default() += 1;
        self.slots.push(Some(pour));
    }

    /// Marks every id up to `last_id` as used, so that the next pour gets a higher one.
    pub fn reserve_ids(&mut self, last_id: u64) {
        if let Ok(n) = usize::try_from(last_id)
            && n > self.slots.len()
        {
            self.slots.resize(n, None);
        }
    }

    /// The highest id ever assigned (0 before the first).
    pub fn last_id(&self) -> u64 {
        self.slots.len() as u64
    }

    /// Counts for `/health`.
    pub fn stats(&self) -> Stats {
        Stats {
            pours: self.all.len() as u64,
            last_id: self.last_id(),
        }
    }

    /// Every stored pour in id order.
    pub fn iter(&self) -> impl Iterator<Item = &Pour> {
        self.pours(&self.all)
    }

    fn pours<'a>(&'a self, ids: &'a [u64]) -> impl Iterator<Item = &'a Pour> + 'a {
        ids.iter().filter_map(|&id| self.get(id))
    }

    /// Removes and returns the pour with this id.
    pub fn delete(&mut self, id: u64) -> Option<Pour> {
        let index = usize::try_from(id.checked_sub(1)?).ok()?;
        let pour = self.slots.get_mut(index)?.take()?;
        remove_sorted(&mut self.all, id);
        if let Some(ids) = self.by_glass.get_mut(&pour.glass) {
            remove_sorted(ids, id);
        }
        if let Some(ids) = self.by_tap.get_mut(&pour.tap_id) {
            remove_sorted(ids, id);
            if ids.is_empty() {
                self.by_tap.remove(&pour.tap_id);
            }
        }
        let key = (pour.tap_id, pour.glass.clone());
        if let Some(n) = self.per_tap_glass.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                self.per_tap_glass.remove(&key);
            }
        }
        Some(pour)
    }

    /// A page of matching pours in id order.
    pub fn list(&self, q: &ListQuery) -> Page {
        // The narrowest index serves the query; whatever it does not imply is a residual filter.
        let (index, glass_left, tap_left): (&[u64], Option<&str>, Option<u32>) =
            match (q.glass.as_deref(), q.tap_id) {
                (None, None) => (&self.all, None, None),
                (Some(glass), None) => (ids_of(self.by_glass.get(glass)), None, None),
                (None, Some(tap)) => (ids_of(self.by_tap.get(&tap)), None, None),
                (Some(glass), Some(tap)) => {
                    let by_glass = ids_of(self.by_glass.get(glass));
                    let by_tap = ids_of(self.by_tap.get(&tap));
                    if by_tap.len() <= by_glass.len() {
                        (by_tap, Some(glass), None)
                    } else {
                        (by_glass, None, Some(tap))
                    }
                }
            };
        let begin = index.partition_point(|&id| id <= q.start.after);
        let skip = q.start.offset;
        let time_filtered = q.from.is_some() || q.to.is_some();

        if glass_left.is_none() && tap_left.is_none() && !time_filtered {
            let start = begin.saturating_add(skip).min(index.len());
            let end = start.saturating_add(q.limit).min(index.len());
            return Page {
                pours: self.pours(&index[start..end]).cloned().collect(),
                total: index.len() as u64,
            };
        }

        let matches = |p: &&Pour| {
            glass_left.is_none_or(|g| &*p.glass == g)
                && tap_left.is_none_or(|t| p.tap_id == t)
                && q.from.is_none_or(|from| p.timestamp >= from)
                && q.to.is_none_or(|to| p.timestamp <= to)
        };
        let pours = self
            .pours(&index[begin..])
            .filter(matches)
            .skip(skip)
            .take(q.limit)
            .cloned()
            .collect();
        let total = match (q.count_total, time_filtered, q.glass.clone(), q.tap_id) {
            (false, _, _, _) => 0,
            (true, false, Some(glass), Some(tap)) => {
                self.per_tap_glass.get(&(tap, glass)).copied().unwrap_or(0)
            }
            (true, _, _, _) => self.pours(index).filter(matches).count() as u64,
        };
        Page { pours, total }
    }
}

fn ids_of(ids: Option<&Vec<u64>>) -> &[u64] {
    ids.map_or(&[], Vec::as_slice)
}

fn remove_sorted(ids: &mut Vec<u64>, id: u64) {
    if let Ok(at) = ids.binary_search(&id) {
        ids.remove(at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pour::{NewPour, Timestamp};
    use crate::store::Start;

    fn new_pour(tap_id: u32, glass: &str, secs: i64) -> NewPour {
        NewPour {
            tap_id,
            volume: 500.0,
            glass: glass.into(),
            timestamp: Timestamp::from_millis(secs * 1000),
            device_timestamp: true,
        }
    }

    fn store_with(pours: &[(u32, &str, i64)]) -> Index {
        let mut inner = Index::default();
        for &(tap, glass, secs) in pours {
            inner.insert(new_pour(tap, glass, secs).with_id(inner.last_id() + 1));
        }
        inner
    }

    fn ids(page: &Page) -> Vec<u64> {
        page.pours.iter().map(|p| p.id).collect()
    }

    fn query(start: Start, limit: usize) -> ListQuery {
        ListQuery {
            start,
            limit,
            glass: None,
            tap_id: None,
            from: None,
            to: None,
            count_total: true,
        }
    }

    #[test]
    fn filters_combine_and_totals_count_every_match() {
        let inner = store_with(&[
            (1, "pint", 10),
            (2, "pint", 20),
            (1, "half", 30),
            (1, "pint", 40),
            (2, "half", 50),
        ]);
        let mut q = query(Start::offset(0), 10);
        q.tap_id = Some(1);
        q.glass = Some("pint".into());
        let page = inner.list(&q);
        assert_eq!((ids(&page), page.total), (vec![1, 4], 2));

        q.glass = None;
        q.from = Some(Timestamp::from_millis(25_000));
        let page = inner.list(&q);
        assert_eq!((ids(&page), page.total), (vec![3, 4], 2));

        let mut q = query(Start::offset(1), 2);
        q.glass = Some("pint".into());
        q.to = Some(Timestamp::from_millis(40_000));
        let page = inner.list(&q);
        assert_eq!((ids(&page), page.total), (vec![2, 4], 3));
    }

    #[test]
    fn cursor_and_offset_pages_skip_deleted_pours() {
        let mut inner = store_with(&[(1, "pint", 0); 6]);
        inner.delete(3).unwrap();
        assert!(inner.delete(3).is_none());
        assert!(inner.get(3).is_none());
        assert_eq!(ids(&inner.list(&query(Start::after(2), 2))), vec![4, 5]);
        let page = inner.list(&query(Start::offset(2), 2));
        assert_eq!((ids(&page), page.total), (vec![4, 5], 5));
        assert!(inner.list(&query(Start::offset(99), 2)).pours.is_empty());
        let mut q = query(Start::after(1), 10);
        q.tap_id = Some(1);
        q.glass = Some("pint".into());
        let page = inner.list(&q);
        assert_eq!((ids(&page), page.total), (vec![2, 4, 5, 6], 5));
    }

    #[test]
    fn ids_are_never_reused_after_deleting_the_newest() {
        let mut inner = store_with(&[(1, "pint", 0); 2]);
        inner.delete(2).unwrap();
        assert_eq!(inner.last_id(), 2);
        inner.reserve_ids(5);
        inner.insert(new_pour(1, "pint", 0).with_id(6));
        assert_eq!(
            inner.stats(),
            Stats {
                pours: 2,
                last_id: 6
            }
        );
        assert_eq!(inner.iter().map(|p| p.id).collect::<Vec<_>>(), [1, 6]);
    }

    #[test]
    fn unknown_ids_are_absent() {
        let inner = store_with(&[(1, "pint", 0)]);
        for id in [0, 2, u64::MAX] {
            assert!(inner.get(id).is_none());
        }
    }
}
