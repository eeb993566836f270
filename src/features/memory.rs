//! The embedded feature store: aggregates in process memory. The default when no
//! Redis is configured, and the store the trainer replays history through.
//! Nothing survives a restart.
//!
//! The server's store has a ceiling ([`InMemoryFeatureStore::bounded`]): each
//! of its four tables (aggregate records, event ids, entities, lanes) holds at
//! most `max_entries`, and a write past it forgets the least recently written
//! tenth. Expired event ids are swept as before. The trainer's store is
//! unbounded: a replay must not forget.

use std::collections::BTreeSet;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use super::aggregates::{AggregateKey, AggregateRecord, AggregateUpdate};
use super::bounded::BoundedMap;
use super::entities::{Entity, EntityKey};
use super::{ApplyOutcome, EventUpdates, FeatureError, FeatureStore, FetchRequest, Fetched};

/// Aggregates and seen event ids, in memory.
#[derive(Debug)]
pub struct InMemoryFeatureStore {
    records: RwLock<BoundedMap<AggregateKey, AggregateRecord>>,
    seen: Mutex<SeenIds>,
    /// Newest version and state of each ingested entity.
    entities: RwLock<BoundedMap<EntityKey, (f64, Entity)>>,
    /// Carriers seen on each (origin, destination) lane.
    lane_carriers: RwLock<BoundedMap<(String, String), BTreeSet<String>>>,
    max_entries: usize,
}

/// Event ids seen within the dedupe window.
#[derive(Debug)]
struct SeenIds {
    ttl: Duration,
    ids: BoundedMap<String, Instant>,
    /// Size at which expired ids are next swept out.
    sweep_at: usize,
}

/// How many entries of each table the store holds and has forgotten.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryUsage {
    /// Aggregate records (one per carrier, lane, carrier-lane, site, ...).
    pub records: usize,
    /// Event ids remembered for dedupe.
    pub event_ids: usize,
    /// Ingested orders and shipments.
    pub entities: usize,
    /// Lanes with the carriers seen on them.
    pub lanes: usize,
    /// Entries forgotten over the ceiling, all tables together.
    pub evicted: u64,
}

impl InMemoryFeatureStore {
    /// An unbounded store that remembers event ids for `dedupe_ttl` (the
    /// trainer's replay, tests).
    pub fn new(dedupe_ttl: Duration) -> Self {
        Self::bounded(dedupe_ttl, usize::MAX)
    }

    /// A store whose tables hold at most `max_entries` each, forgetting the
    /// least recently written past it. An event id forgotten before its TTL
    /// no longer dedupes: a re-delivery that late is applied again.
    pub fn bounded(dedupe_ttl: Duration, max_entries: usize) -> Self {
        InMemoryFeatureStore {
            records: RwLock::new(BoundedMap::new(max_entries)),
            seen: Mutex::new(SeenIds {
                ttl: dedupe_ttl,
                ids: BoundedMap::new(max_entries),
                sweep_at: 1024,
            }),
            entities: RwLock::new(BoundedMap::new(max_entries)),
            lane_carriers: RwLock::new(BoundedMap::new(max_entries)),
            max_entries,
        }
    }

    /// Entries held per table, and how many were forgotten.
    pub fn usage(&self) -> MemoryUsage {
        // One lock at a time: never two held together, so no order to keep.
        let (event_ids, ids_evicted) = {
            let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            (seen.ids.len(), seen.ids.evicted())
        };
        let (records, records_evicted) = {
            let records = self.records.read().unwrap_or_else(|e| e.into_inner());
            (records.len(), records.evicted())
        };
        let (entities, entities_evicted) = {
            let entities = self.entities.read().unwrap_or_else(|e| e.into_inner());
            (entities.len(), entities.evicted())
        };
        let (lanes, lanes_evicted) = {
            let lanes = self.lane_carriers.read().unwrap_or_else(|e| e.into_inner());
            (lanes.len(), lanes.evicted())
        };
        MemoryUsage {
            records,
            event_ids,
            entities,
            lanes,
            evicted: ids_evicted + records_evicted + entities_evicted + lanes_evicted,
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
                .write_with(update.key.clone(), AggregateRecord::default)
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
        let outcomes = events
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
                        .write_with(
                            (lane.origin.clone(), lane.destination.clone()),
                            BTreeSet::new,
                        )
                        .insert(lane.carrier.clone());
                }
                ApplyOutcome::Applied
            })
            .collect();
        // Each table's lock is taken and released on its own (readers take
        // them in another order: holding two here could deadlock with them).
        let ids = seen.ids.enforce();
        drop(seen);
        let records = self
            .records
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .enforce();
        let entities = self
            .entities
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .enforce();
        let lanes = self
            .lane_carriers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .enforce();
        let forgotten = [
            ("event ids", ids),
            ("aggregate records", records),
            ("entities", entities),
            ("lanes", lanes),
        ];
        for (table, count) in forgotten.into_iter().filter(|(_, n)| *n > 0) {
            tracing::warn!(
                table,
                forgotten = count,
                max_entries = self.max_entries,
                "in-memory store at its ceiling: the least recently written entries were \
                 forgotten (raise memory_max_entries, or use Redis)"
            );
        }
        outcomes
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Event, EventPayload, Shipment, ShipmentStatus, Timestamp};
    use crate::features::{FeatureSettings, updates_for, with_facts};

    /// A delivered shipment on its own lane, as a store applies it (the event,
    /// then its three facts): four ids, one entity, one lane and a handful of
    /// records each.
    fn event(i: usize) -> Vec<EventUpdates> {
        let departure = Timestamp(1_773_000_000_000 + i as i64 * 60_000);
        let event = updates_for(
            &Event {
                event_id: format!("e-{i}"),
                payload: EventPayload::Shipment(Shipment {
                    tracking: Default::default(),
                    shipment_id: format!("S-{i}"),
                    carrier: format!("C{}", i % 7),
                    origin: format!("O{i}"),
                    destination: "JFK".into(),
                    scheduled_departure: departure,
                    scheduled_arrival: departure.plus_minutes(600.0),
                    actual_departure: Some(departure),
                    actual_arrival: Some(departure.plus_minutes(640.0)),
                    status: ShipmentStatus::Delivered,
                }),
            },
            &FeatureSettings::default(),
        );
        with_facts(vec![event]).0
    }

    #[test]
    fn a_bounded_store_forgets_the_least_recently_written_and_stays_under_its_ceiling() {
        let store = InMemoryFeatureStore::bounded(Duration::from_secs(3600), 1_000);
        let events: Vec<Vec<EventUpdates>> = (0..5_000).map(event).collect();
        for chunk in events.chunks(100) {
            store.apply_now(&chunk.concat());
            let usage = store.usage();
            for held in [usage.records, usage.event_ids, usage.entities, usage.lanes] {
                assert!(held <= 1_000, "{usage:?}");
            }
        }
        let usage = store.usage();
        assert!(usage.evicted > 10_000, "{usage:?}");
        // The carriers' records are written by every event: never the least
        // recent, never forgotten.
        let carrier = store.fetch_now(&[AggregateKey::carrier("C3")]);
        assert!(carrier[0].is_some());
        // The newest event still dedupes; the oldest is forgotten.
        assert_eq!(store.apply_now(&events[4_999])[0], ApplyOutcome::Duplicate);
        assert_eq!(store.apply_now(&events[0])[0], ApplyOutcome::Applied);
        let entities = store.entities.read().unwrap();
        assert!(
            entities
                .get(&EntityKey::Shipment("S-4999".into()))
                .is_some()
        );
        assert!(entities.get(&EntityKey::Shipment("S-100".into())).is_none());
    }

    #[test]
    fn ingest_evicting_beside_reads_by_id_does_not_deadlock() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, Ordering};
        let store = Arc::new(InMemoryFeatureStore::bounded(
            Duration::from_secs(3600),
            1_000,
        ));
        let events: Vec<EventUpdates> = (0..20_000).flat_map(event).collect();
        let writing = Arc::new(AtomicBool::new(true));
        let (done, finished) = std::sync::mpsc::channel();
        let writer = {
            let (store, done, writing) = (Arc::clone(&store), done.clone(), Arc::clone(&writing));
            std::thread::spawn(move || {
                for event in events.chunks(1) {
                    store.apply_now(event);
                }
                writing.store(false, Ordering::Relaxed);
                let _ = done.send("writer");
            })
        };
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (store, done, writing) =
                    (Arc::clone(&store), done.clone(), Arc::clone(&writing));
                std::thread::spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .build()
                        .unwrap();
                    let request = FetchRequest {
                        records: vec![AggregateKey::carrier("C1")],
                        lanes: vec![("O1".into(), "JFK".into())],
                        entities: vec![EntityKey::Shipment("S-1".into())],
                    };
                    while writing.load(Ordering::Relaxed) {
                        runtime.block_on(store.fetch_all(&request)).unwrap();
                        let _ = store.usage();
                    }
                    let _ = done.send("reader");
                })
            })
            .collect();
        for _ in 0..3 {
            finished
                .recv_timeout(Duration::from_secs(60))
                .expect("ingest and reads finish: no deadlock");
        }
        writer.join().unwrap();
        for reader in readers {
            reader.join().unwrap();
        }
    }

    #[test]
    fn the_trainers_store_is_unbounded() {
        let store = InMemoryFeatureStore::new(Duration::from_secs(3600));
        let events: Vec<EventUpdates> = (0..3_000).flat_map(event).collect();
        store.apply_now(&events);
        let usage = store.usage();
        assert_eq!(
            (usage.event_ids, usage.entities, usage.evicted),
            (4 * 3_000, 3_000, 0)
        );
    }
}
