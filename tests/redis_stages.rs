//! The stages of legs' and orders' lives against a real redis-server: each
//! counted once however many reports carry it, through replicas that each
//! believe only what they applied, and the same as the in-memory store.

mod common;

use std::time::Duration;

use common::stores::*;
use common::*;
use detour::domain::{Event, EventPayload, Shipment, ShipmentStatus, Timestamp};
use detour::features::aggregates::slot_of;
use detour::features::{
    AggregateKey, Entity, EntityKey, FeatureSettings, FeatureStore, FetchRequest,
    InMemoryFeatureStore, updates_for,
};

/// A leg's life reported stage by stage, its stages repeated in later reports
/// and within one call, through two replicas that each believe only what they
/// applied themselves: both backends count each stage once, answer the same
/// outcomes and end with the same records.
#[tokio::test]
async fn lifecycle_reports_agree_across_backends() {
    let (url, _redis) = shared_redis();
    let namespace = unique_namespace("lifecycle");
    let redis = redis_store(&url, &namespace);
    let replica = redis_store(&url, &namespace);
    let memory = InMemoryFeatureStore::new(Duration::from_secs(3600));
    let t = |minutes: i64| Timestamp(1_773_000_000_000 + minutes * 60_000);
    let report = |id: String, n: i64, stage: u8| {
        let due = t(n * 7);
        let left = (stage > 0).then(|| due.plus_minutes((n % 5) as f64 * 10.0));
        Event {
            event_id: id,
            payload: EventPayload::Shipment(Shipment {
                tracking: Default::default(),
                shipment_id: format!("L{n}"),
                carrier: ["XPO", "UPS"][(n % 2) as usize].into(),
                origin: "ATL".into(),
                destination: "JFK".into(),
                scheduled_departure: due,
                scheduled_arrival: due.plus_minutes(300.0),
                actual_departure: left,
                actual_arrival: (stage == 2)
                    .then(|| due.plus_minutes(300.0 + (n % 3) as f64 * 20.0)),
                status: match stage {
                    0 => ShipmentStatus::Planned,
                    1 => ShipmentStatus::InTransit,
                    _ => ShipmentStatus::Delivered,
                },
            }),
        }
    };
    let settings = FeatureSettings::default();
    // Call 1: every leg planned, then half of them left — the departure
    // reported twice under two ids within the call.
    let first = as_applied(
        (0..600)
            .map(|n| report(format!("p{n}"), n, 0))
            .chain((0..300).flat_map(|n| {
                [
                    report(format!("d{n}"), n, 1),
                    report(format!("d{n}b"), n, 1),
                ]
            }))
            .map(|e| updates_for(&e, &settings)),
    );
    // Call 2: every leg delivered (repeating its plan and departure), some
    // plans re-sent under new ids, and one event id of call 1 again.
    let second = as_applied(
        (0..600)
            .map(|n| report(format!("v{n}"), n, 2))
            .chain((0..50).map(|n| report(format!("p{n}again"), n, 0)))
            .chain([report("d7".into(), 7, 1)])
            .map(|e| updates_for(&e, &settings)),
    );
    // Call 3, on the first replica: every delivery again under new ids; it
    // believes the plans and departures seen, but not the deliveries, which
    // the other replica applied.
    let third =
        as_applied((0..600).map(|n| updates_for(&report(format!("w{n}"), n, 2), &settings)));
    for (store, batch) in [(&redis, &first), (&replica, &second), (&redis, &third)] {
        let (a, b) = (
            store.apply(batch).await.unwrap(),
            memory.apply(batch).await.unwrap(),
        );
        assert_eq!(a, b, "outcomes agree");
    }
    let slot = |n: i64| AggregateKey::departure_slot("ATL", slot_of(t(n * 7).as_secs_f64()));
    let keys: Vec<_> = [
        AggregateKey::departures("ATL"),
        AggregateKey::carrier_departures("XPO", "ATL"),
        AggregateKey::carrier("UPS"),
        AggregateKey::arrivals("JFK"),
    ]
    .into_iter()
    .chain([0, 100, 333, 599].map(slot))
    .collect();
    let (from_redis, from_memory) = (
        redis.fetch(&keys).await.unwrap(),
        memory.fetch(&keys).await.unwrap(),
    );
    assert_same_counters(&keys, &from_redis, &from_memory);
    // Each leg counted once in its slot: planned 1, gone 1 (slots hold whole
    // counts; no decay).
    let every_slot: Vec<_> = (0..600)
        .map(slot)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let records = redis.fetch(&every_slot).await.unwrap();
    let (planned, gone): (f64, f64) = records.iter().flatten().fold((0.0, 0.0), |(p, g), r| {
        (
            p + r.counters[0],
            g + r.counters[detour::features::aggregates::WINDOW_COUNT],
        )
    });
    assert_eq!((planned, gone), (600.0, 600.0));
}

/// A stage this replica believes applied but Redis has forgotten (its leg's
/// bucket expired) is counted again, as a stage seen for the first time is:
/// the belief is checked, not trusted.
#[tokio::test]
async fn a_stage_redis_forgot_is_counted_again() {
    let (url, _redis) = shared_redis();
    let namespace = unique_namespace("forgot");
    let redis = redis_store(&url, &namespace);
    let departed = |id: &str| {
        let due = Timestamp(1_773_000_000_000);
        as_applied([updates_for(
            &Event {
                event_id: id.into(),
                payload: EventPayload::Shipment(Shipment {
                    tracking: Default::default(),
                    shipment_id: "L1".into(),
                    carrier: "XPO".into(),
                    origin: "ATL".into(),
                    destination: "JFK".into(),
                    scheduled_departure: due,
                    scheduled_arrival: due.plus_minutes(300.0),
                    actual_departure: Some(due.plus_minutes(30.0)),
                    actual_arrival: None,
                    status: ShipmentStatus::InTransit,
                }),
            },
            &FeatureSettings::default(),
        )])
    };
    let departures = || async {
        let key = AggregateKey::departures("ATL");
        redis.fetch(std::slice::from_ref(&key)).await.unwrap()[0]
            .as_ref()
            .map_or(0.0, |r| r.counters[0])
    };
    redis.apply(&departed("a")).await.unwrap();
    redis.apply(&departed("b")).await.unwrap();
    assert_eq!(departures().await, 1.0, "the stage counts once");
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    // The buckets of ids and entities expire whole: drop them all.
    let mut buckets: Vec<String> = Vec::new();
    for pattern in ["seen", "entities"] {
        let found: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{namespace}:{pattern}:*"))
            .query_async(&mut connection)
            .await
            .unwrap();
        assert!(!found.is_empty(), "{pattern}");
        buckets.extend(found);
    }
    let _: () = redis::cmd("DEL")
        .arg(&buckets)
        .query_async(&mut connection)
        .await
        .unwrap();
    redis.apply(&departed("c")).await.unwrap();
    assert!(
        (departures().await - 2.0).abs() < 1e-6,
        "a forgotten stage counts again, not skipped on the replica's word"
    );
}

/// Orders' steps and carriers' flags, reported step by step through two
/// replicas and with stale reports among them: both backends count each once,
/// answer the same outcomes, keep the same records and the same latest states.
#[tokio::test]
async fn order_steps_and_carrier_flags_agree_across_backends() {
    use detour::domain::{Order, OrderPriority, OrderProgress, Tracking};
    let (url, _redis) = shared_redis();
    let namespace = unique_namespace("steps");
    let (redis, replica) = (redis_store(&url, &namespace), redis_store(&url, &namespace));
    let memory = InMemoryFeatureStore::new(Duration::from_secs(3600));
    let t = |minutes: i64| Timestamp(1_773_000_000_000 + minutes * 60_000);
    let order = |id: String, n: i64, steps: i64| Event {
        event_id: id,
        payload: EventPayload::Order(Order {
            order_id: format!("O{n}"),
            created_at: t(n),
            channel: "web".into(),
            site: ["ATL", "DFW"][(n % 2) as usize].into(),
            destination_region: "JFK".into(),
            promise_at: t(n + 2880),
            line_count: 1,
            units: 1.0,
            priority: OrderPriority::Standard,
            outcome: None,
            progress: {
                let step = |k: i64| (steps > k).then(|| t(n + 20 * (k + 1)));
                OrderProgress {
                    allocated_at: step(0),
                    released_at: step(1),
                    picked_at: step(2),
                    shipped_at: step(3),
                }
            },
        }),
    };
    let flag = |id: String, n: i64, reported: i64| Event {
        event_id: id,
        payload: EventPayload::Shipment(Shipment {
            shipment_id: format!("L{n}"),
            carrier: ["XPO", "UPS"][(n % 2) as usize].into(),
            origin: "ATL".into(),
            destination: "JFK".into(),
            scheduled_departure: t(n),
            scheduled_arrival: t(n + 300),
            actual_departure: Some(t(n + 5)),
            actual_arrival: None,
            status: ShipmentStatus::InTransit,
            tracking: Tracking {
                exception: (n % 3 == 0).then(|| "WEATHER".to_string()),
                estimated_arrival: Some(t(n + 300 + reported)),
                reported_at: Some(t(n + reported)),
            },
        }),
    };
    let settings = FeatureSettings::default();
    let call = |events: Vec<Event>| as_applied(events.iter().map(|e| updates_for(e, &settings)));
    // Call 0: the orders as created, before any step: stored with no stage
    // counted, which the steps that follow must find so.
    let created = call((0..300).map(|n| order(format!("c{n}"), n, 0)).collect());
    let first = call(
        (0..300)
            .flat_map(|n| [order(format!("a{n}"), n, 1), order(format!("r{n}"), n, 2)])
            .chain((0..200).map(|n| flag(format!("f{n}"), n, 60)))
            .collect(),
    );
    let second = call(
        (0..300)
            .map(|n| order(format!("s{n}"), n, 4))
            .chain((0..300).map(|n| order(format!("stale{n}"), n, 1)))
            .chain((0..200).map(|n| flag(format!("g{n}"), n, 90)))
            .chain((0..200).map(|n| flag(format!("f{n}-again"), n, 60)))
            .collect(),
    );
    for (store, batch) in [(&redis, &created), (&redis, &first), (&replica, &second)] {
        let (a, b) = (
            store.apply(batch).await.unwrap(),
            memory.apply(batch).await.unwrap(),
        );
        assert_eq!(a, b, "outcomes agree");
    }
    let keys = [
        AggregateKey::site_flow("ATL"),
        AggregateKey::site_flow("DFW"),
        AggregateKey::carrier_exceptions("XPO", "JFK"),
        AggregateKey::exceptions_to("JFK"),
    ];
    let (from_redis, from_memory) = (
        redis.fetch(&keys).await.unwrap(),
        memory.fetch(&keys).await.unwrap(),
    );
    assert_same_counters(&keys, &from_redis, &from_memory);
    let entities: Vec<EntityKey> = (0..300)
        .map(|n| EntityKey::Order(format!("O{n}")))
        .chain((0..200).map(|n| EntityKey::Shipment(format!("L{n}"))))
        .collect();
    let request = FetchRequest {
        records: Vec::new(),
        lanes: Vec::new(),
        entities,
    };
    let (a, b) = (
        redis.fetch_all(&request).await.unwrap().entities,
        memory.fetch_all(&request).await.unwrap().entities,
    );
    assert_eq!(a, b, "the same latest states");
    assert!(
        a.iter()
            .take(300)
            .all(|e| matches!(e, Some(Entity::Order(o)) if o.progress.shipped_at.is_some())),
        "every order shipped"
    );
    assert!(
        a.iter()
            .skip(300)
            .all(|e| matches!(e, Some(Entity::Shipment(s))
            if s.tracking.reported_at == Some(s.scheduled_departure.plus_minutes(90.0)))),
        "the later report kept"
    );
}
