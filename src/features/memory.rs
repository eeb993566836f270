//! The embedded feature store: aggregates in process memory. The default when no
//! Redis is configured, and the store the trainer replays history through.
//! Nothing survives a restart.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use super::aggregates::{AggregateKey, AggregateRecord, AggregateUpdate};
use super::entities::{Entity, EntityKey};
use super::{ApplyOutcome, EventUpdates, FeatureError, FeatureStore, FetchRequest, Fetched};

/// Aggregates and seen event ids, in memory.
#[derive(Debug)]
pub struct InMemoryFeatureStore {
    records: RwLock<HashMap<AggregateKey, AggregateRecord>>,
    seen: Mutex<SeenIds>,
    /// Newest version and state of each ingested entity.
    entities: RwLock<HashMap<EntityKey, (f64, Entity)>>,
    /// Carriers seen on each (origin, destination) lane.
    lane_carriers: RwLock<HashMap<(String, String), BTreeSet<String>>>,
}

/// Event ids seen within the dedupe window.
#[derive(Debug)]
struct SeenIds {
    ttl: Duration,
    ids: HashMap<String, Instant>,
    /// Size at which expired ids are next swept out.
    sweep_at: usize,
}

impl InMemoryFeatureStore {
    /// A store that remembers event ids for `dedupe_ttl`.
    pub fn new(dedupe_ttl: Duration) -> Self {
        InMemoryFeatureStore {
            records: RwLock::new(HashMap::new()),
            seen: Mutex::new(SeenIds {
                ttl: dedupe_ttl,
                ids: HashMap::new(),
                sweep_at: 1024,
            }),
            entities: RwLock::new(HashMap::new()),
            lane_carriers: RwLock::new(HashMap::new()),
        }
    }

    /// Reads records without going through a future (for the trainer's replay).
    pub fn fetch_now(&self, keys: &[AggregateKey]) -> Vec<Option<AggregateRecord>> {
        // A poisoned lock only means another thread panicked mid-update of plain
        // numbers; the map itself is still usable.
        let records = self.records.read().unwrap_or_else(|e| e.into_inner());
        keys.iter().map(|key| records.get(key).copied()).collect()
    }

    /// Applies updates with no dedupe (for the trainer's replay, whose input is
    /// already deduplicated by id).
    pub fn apply_updates(&self, updates: &[AggregateUpdate]) {
        let mut records = self.records.write().unwrap_or_else(|e| e.into_inner());
        for update in updates {
            records
                .entry(update.key.clone())
                .or_default()
                .apply(update.key.kind, update);
        }
    }

    /// Number of records held.
    pub fn len(&self) -> usize {
        self.records.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether no record is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn apply_now(&self, events: &[EventUpdates]) -> Vec<ApplyOutcome> {
        let now = Instant::now();
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        events
            .iter()
            .map(|event| {
                if !seen.insert(&event.event_id, now) {
                    return ApplyOutcome::Duplicate;
                }
                self.apply_updates(&event.updates);
                if let Some(write) = &event.entity {
                    let mut entities = self.entities.write().unwrap_or_else(|e| e.into_inner());
                    let newer = entities
                        .get(&write.key)
                        .is_none_or(|(version, _)| write.version >= *version);
                    if newer {
                        entities.insert(write.key.clone(), (write.version, write.entity.clone()));
                    }
                }
                if let Some(lane) = &event.lane_carrier {
                    self.lane_carriers
                        .write()
                        .unwrap_or_else(|e| e.into_inner())
                        .entry((lane.origin.clone(), lane.destination.clone()))
                        .or_default()
                        .insert(lane.carrier.clone());
                }
                ApplyOutcome::Applied
            })
            .collect()
    }
}

impl SeenIds {
    /// Records `id`; false if it was already seen within the TTL.
    fn insert(&mut self, id: &str, now: Instant) -> bool {
        if let Some(at) = self.ids.get(id)
            && now.duration_since(*at) < self.ttl
        {
            return false;
        }
        self.ids.insert(id.to_string(), now);
        if self.ids.len() >= self.sweep_at {
            let ttl = self.ttl;
            self.ids.retain(|_, at| now.duration_since(*at) < ttl);
            self.sweep_at = (self.ids.len() * 2).max(1024);
        }
        true
    }
}

impl FeatureStore for InMemoryFeatureStore {
    async fn fetch(
        &self,
        keys: &[AggregateKey],
    ) -> Result<Vec<Option<AggregateRecord>>, FeatureError> {
        Ok(self.fetch_now(keys))
    }

    async fn fetch_all(&self, request: &FetchRequest) -> Result<Fetched, FeatureError> {
        let lanes = self.lane_carriers.read().unwrap_or_else(|e| e.into_inner());
        let entities = self.entities.read().unwrap_or_else(|e| e.into_inner());
        Ok(Fetched {
            records: self.fetch_now(&request.records),
            lane_carriers: request
                .lanes
                .iter()
                .map(|lane| {
                    lanes
                        .get(lane)
                        .map(|set| set.iter().cloned().collect())
                        .unwrap_or_default()
                })
                .collect(),
            entities: request
                .entities
                .iter()
                .map(|key| entities.get(key).map(|(_, entity)| entity.clone()))
                .collect(),
        })
    }

    async fn apply(&self, events: &[EventUpdates]) -> Result<Vec<ApplyOutcome>, FeatureError> {
        Ok(self.apply_now(events))
    }

    fn backend_name(&self) -> &'static str {
        "memory"
    }
}
