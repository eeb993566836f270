//! A run of events folded into one write per record, entity and lane set, so a
//! backend can apply a large ingest call in one pass however many events touch
//! the same carrier, lane or site (see [`AggregateRecord::merge`]).

use std::collections::HashMap;

use super::aggregates::{AggregateKey, AggregateRecord};
use super::entities::{EntityKey, EntityWrite};
use super::updates::EventUpdates;

type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// What a run of events, all applied, changes — each record, entity and lane set
/// once, in the order they first appear.
#[derive(Debug, Default)]
pub struct Folded<'a> {
    /// Each record's change, as the record those events alone would leave.
    pub records: Vec<(&'a AggregateKey, AggregateRecord)>,
    /// Per entity, the write that wins: the highest version, the later on a tie.
    pub entities: Vec<&'a EntityWrite>,
    /// Per lane (origin, destination), the carriers seen serving it.
    pub lanes: Vec<((&'a str, &'a str), Vec<&'a str>)>,
}

impl<'a> Folded<'a> {
    /// Folds `events` in the order given.
    pub fn of(events: impl IntoIterator<Item = &'a EventUpdates>) -> Self {
        let mut folded = Folded::default();
        let mut records: Map<&AggregateKey, usize> = Map::default();
        let mut entities: Map<&EntityKey, usize> = Map::default();
        let mut lanes: Map<(&str, &str), usize> = Map::default();
        for event in events {
            for update in &event.updates {
                let at = *records.entry(&update.key).or_insert_with(|| {
                    folded
                        .records
                        .push((&update.key, AggregateRecord::default()));
                    folded.records.len() - 1
                });
                folded.records[at].1.apply(update.key.kind, update);
            }
            if let Some(write) = &event.entity {
                match entities.get(&write.key) {
                    Some(&at) if folded.entities[at].version > write.version => {}
                    Some(&at) => folded.entities[at] = write,
                    None => {
                        entities.insert(&write.key, folded.entities.len());
                        folded.entities.push(write);
                    }
                }
            }
            if let Some(lane) = &event.lane_carrier {
                let key = (lane.origin.as_str(), lane.destination.as_str());
                let at = *lanes.entry(key).or_insert_with(|| {
                    folded.lanes.push((key, Vec::new()));
                    folded.lanes.len() - 1
                });
                let carriers = &mut folded.lanes[at].1;
                if !carriers.contains(&lane.carrier.as_str()) {
                    carriers.push(&lane.carrier);
                }
            }
        }
        folded
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Event, EventPayload, Shipment, ShipmentStatus, Timestamp};
    use crate::features::{FeatureSettings, updates_for};

    fn shipment(id: &str, carrier: &str, minutes: i64, delivered: bool) -> EventUpdates {
        let departure = Timestamp(1_773_000_000_000 + minutes * 60_000);
        updates_for(
            &Event {
                event_id: id.into(),
                payload: EventPayload::Shipment(Shipment {
                    tracking: Default::default(),
                    shipment_id: "S1".into(),
                    carrier: carrier.into(),
                    origin: "ATL".into(),
                    destination: "JFK".into(),
                    scheduled_departure: departure,
                    scheduled_arrival: departure.plus_minutes(600.0),
                    actual_departure: Some(departure),
                    actual_arrival: delivered.then(|| departure.plus_minutes(640.0)),
                    status: if delivered {
                        ShipmentStatus::Delivered
                    } else {
                        ShipmentStatus::InTransit
                    },
                }),
            },
            &FeatureSettings::default(),
        )
    }

    #[test]
    fn one_write_per_record_entity_and_lane() {
        let events = [
            shipment("a", "XPO", 0, true),
            shipment("b", "UPS", 60, false),
            shipment("c", "XPO", 30, true),
        ];
        let folded = Folded::of(&events);
        let mut keys: Vec<_> = folded.records.iter().map(|(key, _)| *key).collect();
        let before = keys.len();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), before, "each record once");
        assert_eq!(folded.entities.len(), 1, "one shipment, one entity write");
        assert_eq!(
            folded.entities[0].version,
            events[2].entity.as_ref().unwrap().version,
            "the delivered state beats the later in-transit one"
        );
        assert_eq!(folded.lanes, [(("ATL", "JFK"), vec!["XPO", "UPS"])]);
    }
}
