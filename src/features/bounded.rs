//! A map with a ceiling on its entries that forgets the least recently written
//! ones: what keeps the embedded store's memory bounded.
//!
//! Each write stamps its entry with a rising tick. When a write takes the map
//! past its limit, the oldest tenth is dropped in one O(n) pass (a selection of
//! the tick that splits them off), so eviction costs O(1) per write amortised
//! and reads never pay for recency.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;

/// An eviction pass leaves the limit less a tenth of it (rounded up, at least
/// one entry kept), so the next pass is a tenth of the limit's writes away.
const EVICTED_SHARE: usize = 10;

/// A map holding at most `limit` entries once [`BoundedMap::enforce`] has run
/// (writes in between may take it past), forgetting the least recently written
/// first.
#[derive(Debug)]
pub struct BoundedMap<K, V> {
    entries: HashMap<K, (V, u64)>,
    limit: usize,
    tick: u64,
    evicted: u64,
}

impl<K: Eq + Hash, V> BoundedMap<K, V> {
    /// An empty map of at most `limit` entries (`usize::MAX`: unbounded).
    pub fn new(limit: usize) -> Self {
        BoundedMap {
            entries: HashMap::new(),
            limit: limit.max(1),
            tick: 0,
            evicted: 0,
        }
    }

    /// The value of `key`, if held. Reading does not count as use.
    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        self.entries.get(key).map(|(value, _)| value)
    }

    /// The value of `key` for writing, created by `make` when absent; stamps
    /// it as the most recently written. Call [`Self::enforce`] after a run of
    /// writes.
    pub fn write_with(&mut self, key: K, make: impl FnOnce() -> V) -> &mut V {
        self.tick += 1;
        let tick = self.tick;
        let entry = self.entries.entry(key).or_insert_with(|| (make(), tick));
        entry.1 = tick;
        &mut entry.0
    }

    /// Sets the value of `key`, stamped as the most recently written. Call
    /// [`Self::enforce`] after a run of writes.
    pub fn insert(&mut self, key: K, value: V) {
        self.tick += 1;
        self.entries.insert(key, (value, self.tick));
    }

    /// Drops the least recently written entries down to nine tenths of the
    /// limit when the map holds more than the limit. Returns how many it
    /// dropped.
    pub fn enforce(&mut self) -> usize {
        if self.entries.len() <= self.limit {
            return 0;
        }
        let keep = (self.limit - self.limit.div_ceil(EVICTED_SHARE)).max(1);
        let drop = self.entries.len() - keep;
        let mut ticks: Vec<u64> = self.entries.values().map(|(_, tick)| *tick).collect();
        // Ticks are unique: everything at or below the drop-th smallest goes.
        let (_, cut, _) = ticks.select_nth_unstable(drop - 1);
        let cut = *cut;
        self.entries.retain(|_, (_, tick)| *tick > cut);
        self.evicted += drop as u64;
        drop
    }

    /// Number of entries held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Entries dropped by [`Self::enforce`] since the map was made.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Keeps only the entries `keep` accepts (not counted as evictions).
    pub fn retain(&mut self, mut keep: impl FnMut(&K, &V) -> bool) {
        self.entries.retain(|key, (value, _)| keep(key, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_limit_keeps_the_newest_entries() {
        for limit in [1, 2, 9, 19] {
            let mut map = BoundedMap::new(limit);
            for i in 0..=limit {
                map.write_with(i, || ());
            }
            map.enforce();
            assert!(
                (1..=limit).contains(&map.len()),
                "limit {limit}: {}",
                map.len()
            );
            assert!(
                map.get(&limit).is_some(),
                "limit {limit}: the newest is kept"
            );
        }
        let mut map = BoundedMap::new(19);
        for i in 0..20 {
            map.write_with(i, || ());
        }
        map.enforce();
        assert_eq!(map.len(), 17);
    }

    #[test]
    fn the_least_recently_written_go_first_and_the_map_stays_under_its_limit() {
        let mut map = BoundedMap::new(100);
        for i in 0..100 {
            *map.write_with(i, || 0) += 1;
        }
        assert_eq!(map.enforce(), 0, "at the limit nothing goes");
        // Rewrite the first ten: they become the most recent.
        for i in 0..10 {
            *map.write_with(i, || 0) += 1;
        }
        *map.write_with(100, || 0) += 1;
        assert_eq!(map.enforce(), 101 - 90);
        assert_eq!(map.len(), 90);
        for i in 0..10 {
            assert_eq!(map.get(&i), Some(&2), "rewritten {i} kept");
        }
        assert_eq!(map.get(&100), Some(&1), "newest kept");
        for i in 10..21 {
            assert_eq!(map.get(&i), None, "oldest {i} dropped");
        }
        assert_eq!(map.get(&21), Some(&1));
        assert_eq!(map.evicted(), 11);

        for i in 1_000..100_000 {
            map.write_with(i, || 0);
            map.enforce();
            assert!(map.len() <= 100);
        }
    }
}
