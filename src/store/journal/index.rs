//! The journal store's in-memory index: what it serves every read from.
//!
//! Lookup by id is a vector index. Lists use sorted id vectors (all pours, per glass, per
//! venue, per tap number) that inserts only append to, because ids grow: an offset page is a slice and a cursor
//! page a binary search, whatever the store's size. Deletion is a binary search plus a shift
//! of the vectors, O(n) memory moves: deletions are rare administrative acts, reads and
//! appends are the hot path. Time-range filters have no index and scan the narrowest one.

use std::collections::HashMap;
use std::sync::Arc;

use crate::pour::{Flag, Pour};
use crate::store::{ListQuery, Page, Stats};

/// Pours by id, with the indexes that lists use.
#[derive(Default)]
pub struct Index {
    /// Slot `i` holds the pour with id `i + 1`, or `None` once it is deleted.
    slots: Vec<Option<Pour>>,
    all: Vec<u64>,
    by_glass: HashMap<Arc<str>, Vec<u64>>,
    by_venue: HashMap<Arc<str>, Vec<u64>>,
    by_tap: HashMap<u32, Vec<u64>>,
    /// Indexed by flag position.
    by_flag: [Vec<u64>; Flag::ALL.len()],
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
        self.by_venue
            .entry(pour.venue.clone())
            .or_default()
            .push(id);
        self.by_tap.entry(pour.tap_id).or_default().push(id);
        for flag in pour.flags.iter() {
            self.by_flag[flag as usize].push(id);
        }
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
        if let Some(ids) = self.by_venue.get_mut(&pour.venue) {
            remove_sorted(ids, id);
            if ids.is_empty() {
                self.by_venue.remove(&pour.venue);
            }
        }
        if let Some(ids) = self.by_tap.get_mut(&pour.tap_id) {
            remove_sorted(ids, id);
            if ids.is_empty() {
                self.by_tap.remove(&pour.tap_id);
            }
        }
        for flag in pour.flags.iter() {
            remove_sorted(&mut self.by_flag[flag as usize], id);
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
        // The narrowest index serves the query; the filters it does not imply are checked
        // pour by pour.
        let mut sources: Vec<(&[u64], Filter)> = Vec::with_capacity(4);
        if let Some(venue) = q.venue.as_deref() {
            sources.push((ids_of(self.by_venue.get(venue)), Filter::Venue));
        }
        if let Some(glass) = q.glass.as_deref() {
            sources.push((ids_of(self.by_glass.get(glass)), Filter::Glass));
        }
        if let Some(tap) = q.tap_id {
            sources.push((ids_of(self.by_tap.get(&tap)), Filter::Tap));
        }
        if let Some(flag) = q.flag {
            sources.push((&self.by_flag[flag as usize], Filter::Flag));
        }
        let filters = sources.len();
        let (index, served) = sources
            .into_iter()
            .min_by_key(|(ids, _)| ids.len())
            .unwrap_or((&self.all, Filter::None));
        let begin = index.partition_point(|&id| id <= q.start.after);
        let skip = q.start.offset;
        let time_filtered = q.from.is_some() || q.to.is_some();

        if filters <= 1 && !time_filtered {
            let start = begin.saturating_add(skip).min(index.len());
            let end = start.saturating_add(q.limit).min(index.len());
            return Page {
                pours: self.pours(&index[start..end]).cloned().collect(),
                total: index.len() as u64,
            };
        }

        let matches = |p: &&Pour| {
            (served == Filter::Glass || q.glass.as_deref().is_none_or(|g| &*p.glass == g))
                && (served == Filter::Venue || q.venue.as_deref().is_none_or(|v| *p.venue == *v))
                && (served == Filter::Tap || q.tap_id.is_none_or(|t| p.tap_id == t))
                && (served == Filter::Flag || q.flag.is_none_or(|f| p.flags.contains(f)))
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
        let total = match (
            q.count_total,
            time_filtered,
            q.glass.clone(),
            q.tap_id,
            q.flag.is_none() && q.venue.is_none(),
        ) {
            (false, ..) => 0,
            (true, false, Some(glass), Some(tap), true) => {
                self.per_tap_glass.get(&(tap, glass)).copied().unwrap_or(0)
            }
            (true, ..) => self.pours(index).filter(matches).count() as u64,
        };
        Page { pours, total }
    }
}

/// Which filter the index a list reads already applies.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Filter {
    None,
    Venue,
    Glass,
    Tap,
    Flag,
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
    use crate::pour::{Flags, NewPour, Timestamp};
    use crate::store::Start;

    fn new_pour(tap_id: u32, glass: &str, secs: i64) -> NewPour {
        NewPour {
            venue: "main".into(),
            tap_id,
            volume: 500.0,
            glass: glass.into(),
            timestamp: Timestamp::from_millis(secs * 1000),
            device_timestamp: true,
            flags: Flags::NONE,
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
            venue: None,
            start,
            limit,
            glass: None,
            tap_id: None,
            flag: None,
            from: None,
            to: None,
            count_total: true,
        }
    }

    #[test]
    fn flags_filter_alone_and_with_the_others() {
        let mut inner = Index::default();
        let flagged = [
            (1, "pint", Flags::NONE),
            (1, "half", Flags::NONE.with(Flag::Tiny)),
            (2, "half", Flags::NONE.with(Flag::Tiny).with(Flag::Burst)),
            (1, "pint", Flags::NONE.with(Flag::Burst)),
            (2, "pint", Flags::NONE),
            (1, "half", Flags::NONE.with(Flag::Tiny)),
        ];
        for (i, &(tap, glass, flags)) in flagged.iter().enumerate() {
            let mut pour = new_pour(tap, glass, i as i64);
            pour.flags = flags;
            inner.insert(pour.with_id(i as u64 + 1));
        }
        let list = |inner: &Index, flag, tap, glass: Option<&str>, start| {
            let mut q = query(start, 2);
            (q.flag, q.tap_id, q.glass) = (Some(flag), tap, glass.map(Into::into));
            let page = inner.list(&q);
            (ids(&page), page.total)
        };
        assert_eq!(
            list(&inner, Flag::Tiny, None, None, Start::offset(0)),
            (vec![2, 3], 3)
        );
        assert_eq!(
            list(&inner, Flag::Tiny, None, None, Start::after(3)),
            (vec![6], 3)
        );
        assert_eq!(
            list(&inner, Flag::Tiny, Some(1), None, Start::offset(0)),
            (vec![2, 6], 2)
        );
        assert_eq!(
            list(&inner, Flag::Burst, Some(2), Some("half"), Start::offset(0)),
            (vec![3], 1)
        );
        assert_eq!(
            list(&inner, Flag::OverPour, None, None, Start::offset(0)),
            (vec![], 0)
        );
        inner.delete(3).unwrap();
        assert_eq!(
            list(&inner, Flag::Tiny, None, None, Start::offset(0)),
            (vec![2, 6], 2)
        );
        assert_eq!(
            list(&inner, Flag::Burst, None, None, Start::offset(0)),
            (vec![4], 1)
        );
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
