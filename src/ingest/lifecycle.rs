//! A leg's life reported stage by stage, in order or not, and with stages
//! repeated: each stage counts once and the stored leg is its latest stage.

use std::time::Duration;

use super::*;
use crate::domain::{EventPayload, Shipment, ShipmentStatus};
use crate::features::aggregates::{
    WindowId, movement_counters as mc, shipment_counters as sc, slot_counters, slot_of,
};
use crate::features::{AggregateKey, Entity, EntityKey, FetchRequest, InMemoryFeatureStore};

const DUE: Timestamp = Timestamp(1_790_000_000_000);

fn report(id: &str, status: ShipmentStatus) -> Result<Event, Invalid> {
    let left = (status != ShipmentStatus::Planned).then(|| DUE.plus_minutes(30.0));
    Ok(Event {
        event_id: id.into(),
        payload: EventPayload::Shipment(Shipment {
            tracking: Default::default(),
            shipment_id: "L-1".into(),
            carrier: "XPO".into(),
            origin: "ATL".into(),
            destination: "JFK".into(),
            scheduled_departure: DUE,
            scheduled_arrival: DUE.plus_minutes(300.0),
            actual_departure: left,
            actual_arrival: (status == ShipmentStatus::Delivered).then(|| DUE.plus_minutes(340.0)),
            status,
        }),
    })
}

async fn counted(order: &[(&str, ShipmentStatus)]) -> (Vec<f64>, Option<Entity>) {
    let store = Arc::new(InMemoryFeatureStore::new(Duration::from_secs(3600)));
    let ingestor = Ingestor::new(Arc::clone(&store), FeatureSettings::default());
    for &(id, status) in order {
        let summary = ingestor
            .ingest_received(vec![report(id, status)], DUE.plus_minutes(600.0))
            .await
            .unwrap();
        assert_eq!(summary.accepted, 1, "{id}");
    }
    let t = DUE.plus_minutes(600.0).as_secs_f64();
    let left = DUE.plus_minutes(30.0).as_secs_f64();
    let records = store.fetch_now(&[
        AggregateKey::departures("ATL"),
        AggregateKey::departure_slot("ATL", slot_of(DUE.as_secs_f64())),
        AggregateKey::carrier("XPO"),
    ]);
    let [departures, slot, carrier] = [0, 1, 2].map(|i| records[i].expect("written"));
    let counts = vec![
        // Read when each was counted, so nothing has decayed.
        departures.counter(mc::MOVED, WindowId::DEPARTURE_DAY, left),
        departures.counter(mc::LATE, WindowId::DEPARTURE_DAY, left),
        slot.counter(slot_counters::PLANNED, WindowId::COUNT, t),
        slot.counter(slot_counters::GONE, WindowId::COUNT, t),
        carrier.counter(
            sc::DONE,
            WindowId::MONTH,
            DUE.plus_minutes(340.0).as_secs_f64(),
        ),
    ];
    let entity = store
        .fetch_all(&FetchRequest {
            records: Vec::new(),
            lanes: Vec::new(),
            entities: vec![EntityKey::Shipment("L-1".into())],
        })
        .await
        .unwrap()
        .entities
        .pop()
        .flatten();
    (counts, entity)
}

#[tokio::test]
async fn each_stage_counts_once_and_the_latest_stage_is_kept() {
    use ShipmentStatus::*;
    let in_order = [
        ("p", Planned),
        ("d", InTransit),
        ("v", Delivered),
        ("p2", Planned),
    ];
    let reversed = [
        ("v", Delivered),
        ("d", InTransit),
        ("p", Planned),
        ("d2", InTransit),
    ];
    for order in [&in_order[..], &reversed[..]] {
        let (counts, entity) = counted(order).await;
        for (name, value) in ["departed", "late", "planned", "gone", "done"]
            .iter()
            .zip(&counts)
        {
            assert!(
                (value - 1.0).abs() < 1e-9,
                "{name} counted {value} times: {order:?}"
            );
        }
        assert!(
            matches!(entity, Some(Entity::Shipment(s)) if s.status == Delivered),
            "{order:?}"
        );
    }
}

async fn entity(store: &InMemoryFeatureStore, key: EntityKey) -> Option<Entity> {
    store
        .fetch_all(&FetchRequest {
            records: Vec::new(),
            lanes: Vec::new(),
            entities: vec![key],
        })
        .await
        .unwrap()
        .entities
        .pop()
        .flatten()
}

/// A carrier's reports flag a leg once however many say so, the later
/// report is kept whatever the order they arrive in, and a report that
/// does not say when it was made counts when it is received.
#[tokio::test]
async fn a_leg_is_flagged_once_and_the_later_report_wins() {
    use crate::domain::Tracking;
    let tracked = |id: &str, exception: Option<&str>, eta: f64, reported: Option<f64>| {
        let mut event = report(id, ShipmentStatus::InTransit).unwrap();
        if let EventPayload::Shipment(s) = &mut event.payload {
            s.tracking = Tracking {
                exception: exception.map(str::to_string),
                estimated_arrival: Some(DUE.plus_minutes(eta)),
                reported_at: reported.map(|m| DUE.plus_minutes(m)),
            };
        }
        Ok(event)
    };
    let received = DUE.plus_minutes(600.0);
    let store = Arc::new(InMemoryFeatureStore::new(Duration::from_secs(3600)));
    let ingestor = Ingestor::new(Arc::clone(&store), FeatureSettings::default());
    let calls = [
        tracked("t1", Some("WEATHER"), 480.0, Some(60.0)),
        tracked("t2", None, 540.0, Some(120.0)),
        // The first report again, late and under another id.
        tracked("t1b", Some("WEATHER"), 480.0, Some(60.0)),
    ];
    for call in calls {
        let summary = ingestor
            .ingest_received(vec![call], received)
            .await
            .unwrap();
        assert_eq!(summary.accepted, 1);
    }
    let keys = [
        AggregateKey::carrier_exceptions("XPO", "JFK"),
        AggregateKey::exceptions_to("JFK"),
    ];
    let at = DUE.plus_minutes(60.0).as_secs_f64();
    for record in store.fetch_now(&keys) {
        let record = record.expect("written");
        assert_eq!(record.counters_at, Some(at), "counted when reported");
        let flagged = record.counter(mc::MOVED, WindowId::DEPARTURE_DAY, at);
        assert!((flagged - 1.0).abs() < 1e-9, "flagged {flagged} times");
        let late = record.counter(mc::DELAY_MINUTES, WindowId::DEPARTURE_DAY, at);
        assert!(
            (late - 180.0).abs() < 1e-9,
            "expected 3 h late, got {late} min"
        );
    }
    let Some(Entity::Shipment(kept)) = entity(&store, EntityKey::Shipment("L-1".into())).await
    else {
        panic!("the leg is kept");
    };
    assert_eq!(
        kept.tracking.estimated_arrival,
        Some(DUE.plus_minutes(540.0))
    );

    // A report without its time counts when received.
    let store = Arc::new(InMemoryFeatureStore::new(Duration::from_secs(3600)));
    let ingestor = Ingestor::new(Arc::clone(&store), FeatureSettings::default());
    let call = vec![tracked("u", Some("MECHANICAL"), 300.0, None)];
    ingestor.ingest_received(call, received).await.unwrap();
    let record = store.fetch_now(&keys[..1])[0].expect("written");
    assert_eq!(record.counters_at, Some(received.as_secs_f64()));
}

/// An order's steps each count once in its site's flow, and a stale
/// report of fewer steps does not replace the order's state.
#[tokio::test]
async fn an_orders_steps_count_once_and_never_go_back() {
    use crate::domain::{Order, OrderPriority, OrderProgress};
    use crate::features::aggregates::flow_counters as flow;
    let created = DUE;
    let step = |id: &str, steps: usize| {
        let times: Vec<Option<Timestamp>> = (0..4)
            .map(|k| (k < steps).then(|| created.plus_minutes(30.0 * (k + 1) as f64)))
            .collect();
        Ok(Event {
            event_id: id.into(),
            payload: EventPayload::Order(Order {
                order_id: "O-1".into(),
                created_at: created,
                channel: "web".into(),
                site: "ATL".into(),
                destination_region: "JFK".into(),
                promise_at: created.plus_minutes(2880.0),
                line_count: 1,
                units: 1.0,
                priority: OrderPriority::Standard,
                outcome: None,
                progress: OrderProgress {
                    allocated_at: times[0],
                    released_at: times[1],
                    picked_at: times[2],
                    shipped_at: times[3],
                },
            }),
        })
    };
    let store = Arc::new(InMemoryFeatureStore::new(Duration::from_secs(3600)));
    let ingestor = Ingestor::new(Arc::clone(&store), FeatureSettings::default());
    for (id, steps) in [("a", 1), ("r", 2), ("p", 3), ("s", 4), ("r-again", 2)] {
        let summary = ingestor
            .ingest_received(vec![step(id, steps)], created.plus_minutes(600.0))
            .await
            .unwrap();
        assert_eq!(summary.accepted, 1, "{id}");
    }
    let record = store.fetch_now(&[AggregateKey::site_flow("ATL")])[0].expect("written");
    for (k, counter) in [flow::ALLOCATED, flow::RELEASED, flow::PICKED, flow::SHIPPED]
        .into_iter()
        .enumerate()
    {
        let at = created.plus_minutes(30.0 * (k + 1) as f64).as_secs_f64();
        // Read at the step's own time less the decay since: 1 if once.
        let count = record.counter(counter, WindowId::DEPARTURE_DAY, at);
        let decay = (-(record.counters_at.unwrap() - at) / 86_400.0f64).exp();
        assert!((count - decay).abs() < 1e-9, "step {k}: {count} vs {decay}");
    }
    let Some(Entity::Order(kept)) = entity(&store, EntityKey::Order("O-1".into())).await else {
        panic!("the order is kept");
    };
    assert_eq!(kept.progress.done(), 4, "the stale report did not win");
}
