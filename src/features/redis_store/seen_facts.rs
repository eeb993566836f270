//! What this replica believes Redis has seen of legs' stages (facts), so that
//! an ingest chunk sends each fact the way it will most likely be applied:
//! folded with the events when it is new, as a bare id when it was seen. The
//! script checks every belief and refuses a chunk that holds a wrong one, so
//! a belief only ever costs a second round trip, never a wrong count.
//!
//! A leg's later reports all carry its earlier stages; on one replica those
//! were applied through this cache, so the beliefs are right and a lifecycle
//! report takes one round trip. Replicas that share a Redis learn from each
//! other's refusals.

use std::collections::HashSet;
use std::hash::BuildHasher;
use std::sync::Mutex;

type Hasher = foldhash::fast::RandomState;

/// Fact ids per generation. Computed, not measured: a full generation's table
/// has 2^19 slots of 9 bytes (a hash and a control byte), so the two take
/// about 9.4 MB at most.
const GENERATION: usize = 1 << 18;

/// A bounded set of fact ids believed seen, as 64-bit hashes in two
/// generations: when the newer one fills, the older is dropped. A hash that
/// collides, or a fact forgotten, is a wrong belief the script corrects.
#[derive(Debug)]
pub(super) struct SeenFacts {
    hasher: Hasher,
    generations: Mutex<[HashSet<u64, Hasher>; 2]>,
}

impl SeenFacts {
    pub(super) fn new() -> Self {
        SeenFacts {
            hasher: Hasher::default(),
            generations: Mutex::new([HashSet::default(), HashSet::default()]),
        }
    }

    /// Whether each of `ids` is believed seen.
    pub(super) fn believed(&self, ids: &[&str]) -> Vec<bool> {
        let generations = self.lock();
        ids.iter()
            .map(|id| {
                let hash = self.hasher.hash_one(id);
                generations.iter().any(|g| g.contains(&hash))
            })
            .collect()
    }

    /// Records that `seen` are now seen and `unseen` are not.
    pub(super) fn learn<'a>(
        &self,
        seen: impl IntoIterator<Item = &'a str>,
        unseen: impl IntoIterator<Item = &'a str>,
    ) {
        let mut generations = self.lock();
        for id in unseen {
            let hash = self.hasher.hash_one(id);
            for generation in generations.iter_mut() {
                generation.remove(&hash);
            }
        }
        for id in seen {
            if generations[0].len() >= GENERATION {
                let newer = std::mem::take(&mut generations[0]);
                generations[1] = newer;
            }
            generations[0].insert(self.hasher.hash_one(id));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, [HashSet<u64, Hasher>; 2]> {
        // The sets hold no invariant a panic could break half way.
        self.generations
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beliefs_are_learned_and_unlearned() {
        let seen = SeenFacts::new();
        assert_eq!(seen.believed(&["a", "b"]), [false, false]);
        seen.learn(["a"], []);
        assert_eq!(seen.believed(&["a", "b"]), [true, false]);
        seen.learn(["b"], ["a"]);
        assert_eq!(seen.believed(&["a", "b"]), [false, true]);
    }

    #[test]
    fn the_oldest_generation_is_forgotten() {
        let seen = SeenFacts::new();
        let ids: Vec<String> = (0..2 * GENERATION + 1).map(|i| i.to_string()).collect();
        seen.learn(ids.iter().map(String::as_str), []);
        let first = seen.believed(&[ids[0].as_str()]);
        let last = seen.believed(&[ids[2 * GENERATION].as_str()]);
        assert_eq!((first, last), (vec![false], vec![true]));
    }
}
