//! The Redis backend against a real redis-server: it agrees with the in-memory
//! store record for record, keeps its keys namespaced, degrades when Redis goes
//! away and recovers when it comes back, and keeps features across restarts.

mod common;

use std::future::Future;
use std::time::Duration;

use common::stores::*;
use common::*;
use detour::domain::{Event, EventPayload, Shipment, ShipmentStatus, SiteSnapshot, Timestamp};
use detour::features::aggregates::slot_of;
use detour::features::{
    AggregateKey, Entity, EntityKey, EventUpdates, FeatureSettings, FeatureStore, FetchRequest,
    InMemoryFeatureStore, updates_for,
};
use detour::pb;

fn events() -> Vec<Event> {
    let t = |minutes: i64| Timestamp(1_773_000_000_000 + minutes * 60_000);
    let mut out = Vec::new();
    // Out of order on purpose: the second batch is older than the first.
    for (i, start) in [(0, 5_000), (1, 100), (2, 2_500)] {
        for j in 0..5 {
            let departure = t(start + j * 90);
            out.push(Event {
                event_id: format!("s-{i}-{j}"),
                payload: EventPayload::Shipment(Shipment {
                    tracking: Default::default(),
                    shipment_id: format!("S{i}{j}"),
                    carrier: "XPO".into(),
                    origin: "ATL".into(),
                    destination: if j % 2 == 0 { "JFK" } else { "BOS" }.into(),
                    scheduled_departure: departure,
                    scheduled_arrival: departure.plus_minutes(600.0),
                    actual_departure: Some(departure.plus_minutes(12.0 * j as f64)),
                    actual_arrival: Some(departure.plus_minutes(600.0 + 40.0 * j as f64)),
                    status: if j == 4 {
                        ShipmentStatus::Cancelled
                    } else {
                        ShipmentStatus::Delivered
                    },
                }),
            });
        }
        out.push(Event {
            event_id: format!("snap-{i}"),
            payload: EventPayload::Site(SiteSnapshot {
                site: "ATL".into(),
                at: t(start),
                backlog: 10.0 * (i + 1) as f64,
                labour: 12.0,
                units_picked: 200.0,
                period_minutes: 60.0,
                dock_utilisation: 0.5,
            }),
        });
    }
    out
}

#[tokio::test]
async fn redis_and_memory_backends_hold_the_same_records() {
    let (url, _redis) = shared_redis();
    let redis = redis_store(&url, &unique_namespace("parity"));
    let memory = InMemoryFeatureStore::new(Duration::from_secs(3600));
    let updates = as_applied(
        events()
            .iter()
            .map(|e| updates_for(e, &FeatureSettings::default())),
    );
    redis.apply(&updates).await.unwrap();
    memory.apply(&updates).await.unwrap();
    let keys = [
        AggregateKey::carrier("XPO"),
        AggregateKey::lane("ATL", "JFK"),
        AggregateKey::carrier_lane("XPO", "ATL", "BOS"),
        AggregateKey::site("ATL"),
        AggregateKey::departures("ATL"),
        AggregateKey::carrier_departures("XPO", "ATL"),
        AggregateKey::departure_slot("ATL", slot_of(1_773_000_000.0 + 5_000.0 * 60.0)),
        AggregateKey::carrier("nobody"),
    ];
    let request = FetchRequest {
        records: Vec::new(),
        lanes: vec![("ATL".into(), "JFK".into()), ("ATL".into(), "LAX".into())],
        entities: vec![
            EntityKey::Shipment("S14".into()),
            EntityKey::Order("nope".into()),
        ],
    };
    let (a, b) = (
        redis.fetch_all(&request).await.unwrap(),
        memory.fetch_all(&request).await.unwrap(),
    );
    assert_eq!(a, b, "lanes and entities agree");
    assert_eq!(a.lane_carriers, [vec!["XPO".to_string()], vec![]]);
    assert!(
        matches!(&a.entities[0], Some(Entity::Shipment(s)) if s.status == ShipmentStatus::Cancelled)
    );
    let from_redis = redis.fetch(&keys).await.unwrap();
    let from_memory = memory.fetch(&keys).await.unwrap();
    assert!(from_redis[7].is_none() && from_memory[7].is_none());
    for (key, (a, b)) in keys.iter().zip(from_redis.iter().zip(&from_memory)).take(7) {
        let (a, b) = (a.expect("written"), b.expect("written"));
        assert_eq!(a.counters_at, b.counters_at, "{key}");
        assert_eq!(a.gauges_at, b.gauges_at, "{key}");
        assert_eq!(a.gauges, b.gauges, "{key}");
        for (x, y) in a.counters.iter().zip(&b.counters) {
            assert!(
                (x - y).abs() <= 1e-9 * x.abs().max(1.0),
                "{key}: {x} vs {y}"
            );
        }
    }
}

/// Many events over a few records, in several script chunks, with ids repeated
/// inside one call and across calls: both backends answer the same outcomes and
/// end with the same records.
#[tokio::test]
async fn large_calls_with_repeated_ids_agree_across_backends() {
    let (url, _redis) = shared_redis();
    let redis = redis_store(&url, &unique_namespace("chunks"));
    let memory = InMemoryFeatureStore::new(Duration::from_secs(3600));
    let t = |minutes: i64| Timestamp(1_773_000_000_000 + minutes * 60_000);
    let carriers = ["XPO", "UPS", "FDX"];
    let event = |n: i64| {
        let departure = t((n * 7_919) % 20_000);
        Event {
            event_id: format!("e-{}", n % 700),
            payload: EventPayload::Shipment(Shipment {
                tracking: Default::default(),
                shipment_id: format!("S{n}"),
                carrier: carriers[(n % 3) as usize].into(),
                origin: "ATL".into(),
                destination: "JFK".into(),
                scheduled_departure: departure,
                scheduled_arrival: departure.plus_minutes(600.0),
                actual_departure: Some(departure),
                actual_arrival: Some(departure.plus_minutes(550.0 + (n % 5) as f64 * 30.0)),
                status: ShipmentStatus::Delivered,
            }),
        }
    };
    // 800 events, ids e-0 .. e-699: e-0 .. e-99 come twice in the first call.
    let first = as_applied((0..800).map(|n| updates_for(&event(n), &FeatureSettings::default())));
    let second =
        as_applied((650..750).map(|n| updates_for(&event(n), &FeatureSettings::default())));
    for batch in [&first, &second] {
        let (a, b) = (
            redis.apply(batch).await.unwrap(),
            memory.apply(batch).await.unwrap(),
        );
        assert_eq!(a, b, "outcomes agree");
    }
    let applied = |outcomes: Vec<_>| {
        outcomes
            .into_iter()
            .filter(|o| *o == detour::features::ApplyOutcome::Applied)
            .count()
    };
    assert_eq!(applied(redis.apply(&first).await.unwrap()), 0, "all seen");
    let keys: Vec<_> = carriers
        .iter()
        .map(|c| AggregateKey::carrier_lane(c, "ATL", "JFK"))
        .chain([AggregateKey::lane("ATL", "JFK")])
        .collect();
    let (from_redis, from_memory) = (
        redis.fetch(&keys).await.unwrap(),
        memory.fetch(&keys).await.unwrap(),
    );
    assert_same_counters(&keys, &from_redis, &from_memory);
}

/// The updates of one state of a shipment leg ATL→JFK departing at a fixed time:
/// delivered (20 min late) or in transit — every in-transit state of a shipment
/// has the same version, so the later one wins.
fn leg_state(event_id: &str, shipment_id: &str, carrier: &str, delivered: bool) -> EventUpdates {
    let departure = Timestamp(1_773_000_000_000);
    let event = Event {
        event_id: event_id.into(),
        payload: EventPayload::Shipment(Shipment {
            tracking: Default::default(),
            shipment_id: shipment_id.into(),
            carrier: carrier.into(),
            origin: "ATL".into(),
            destination: "JFK".into(),
            scheduled_departure: departure,
            scheduled_arrival: departure.plus_minutes(600.0),
            actual_departure: Some(departure),
            actual_arrival: delivered.then(|| departure.plus_minutes(620.0)),
            status: if delivered {
                ShipmentStatus::Delivered
            } else {
                ShipmentStatus::InTransit
            },
        }),
    };
    updates_for(&event, &FeatureSettings::default())
}

/// Reads issued together leave in one pipeline (src/features/coalesce.rs); each
/// must still get its own records back, in its own key order.
#[tokio::test]
async fn concurrent_reads_each_get_their_own_records() {
    let (url, _redis) = shared_redis();
    let redis = redis_store(&url, &unique_namespace("coalesce"));
    let memory = InMemoryFeatureStore::new(Duration::from_secs(3600));
    // Carrier C{i} has i + 1 delivered legs, so every carrier's record differs.
    let updates: Vec<EventUpdates> = as_applied((0..40).flat_map(|i| {
        (0..=i).map(move |j| {
            leg_state(
                &format!("c{i}-{j}"),
                &format!("S{i}-{j}"),
                &format!("C{i}"),
                true,
            )
        })
    }));
    redis.apply(&updates).await.unwrap();
    memory.apply(&updates).await.unwrap();
    let key_sets: Vec<Vec<AggregateKey>> = (0..40)
        .map(|i| {
            vec![
                AggregateKey::carrier_lane(&format!("C{i}"), "ATL", "JFK"),
                AggregateKey::carrier("nobody"),
                AggregateKey::carrier(&format!("C{}", 39 - i)),
            ]
        })
        .collect();
    let mut reads = tokio::task::JoinSet::new();
    for (i, keys) in key_sets.iter().enumerate() {
        let (redis, keys) = (redis.clone(), keys.clone());
        reads.spawn(async move { (i, redis.fetch(&keys).await) });
    }
    let mut answers: Vec<_> = reads.join_all().await;
    answers.sort_by_key(|(i, _)| *i);
    for (keys, (_, answer)) in key_sets.iter().zip(answers) {
        let got = answer.unwrap();
        let want = memory.fetch(keys).await.unwrap();
        assert_eq!(got.len(), keys.len());
        assert!(got[1].is_none(), "{keys:?}");
        for (key, (a, b)) in keys.iter().zip(got.iter().zip(&want)) {
            let (a, b) = (a.as_ref(), b.as_ref());
            assert_eq!(a.map(|r| r.counters), b.map(|r| r.counters), "{key}");
        }
    }
    // A read dropped while it waits for others to join it (its caller gave up)
    // leaves nothing stuck behind for the reads after it.
    // One read stays in flight, so the dropped ones wait for company first.
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    let mut held = std::pin::pin!(redis.fetch(&key_sets[1]));
    assert!(held.as_mut().poll(&mut cx).is_pending());
    for _ in 0..3 {
        let mut read = std::pin::pin!(redis.fetch(&key_sets[0]));
        assert!(read.as_mut().poll(&mut cx).is_pending());
    }
    assert_eq!(held.await.unwrap().len(), key_sets[1].len());
    let again = tokio::time::timeout(Duration::from_secs(2), redis.fetch(&key_sets[0]))
        .await
        .expect("a read after dropped ones is answered")
        .unwrap();
    assert_eq!(
        again[0].map(|r| r.counters),
        memory.fetch(&key_sets[0]).await.unwrap()[0].map(|r| r.counters)
    );
}

/// An entity keeps its newest state whatever order its events arrive in, within
/// one call or across calls, on both backends.
#[tokio::test]
async fn an_older_state_never_overwrites_a_newer_one() {
    let (url, _redis) = shared_redis();
    let redis = redis_store(&url, &unique_namespace("versions"));
    let memory = InMemoryFeatureStore::new(Duration::from_secs(3600));
    let state = |id: &str, delivered: bool| leg_state(id, "S1", "XPO", delivered);
    let request = FetchRequest {
        entities: vec![EntityKey::Shipment("S1".into())],
        ..FetchRequest::default()
    };
    let calls = [
        vec![state("a", false)],
        vec![state("b", true), state("c", false)],
        vec![state("d", false)],
    ];
    for call in &calls {
        redis.apply(call).await.unwrap();
        memory.apply(call).await.unwrap();
        let (a, b) = (
            redis.fetch_all(&request).await.unwrap(),
            memory.fetch_all(&request).await.unwrap(),
        );
        assert_eq!(a.entities, b.entities);
    }
    let fetched = redis.fetch_all(&request).await.unwrap();
    assert!(
        matches!(&fetched.entities[0], Some(Entity::Shipment(s)) if s.status == ShipmentStatus::Delivered),
        "{:?}",
        fetched.entities
    );
}

/// A call of several chunks whose first chunk holds an id seen before: the
/// retry must not let an earlier state of an entity land after a later one.
#[tokio::test]
async fn a_refused_chunk_does_not_reorder_a_call() {
    let (url, _redis) = shared_redis();
    let redis = redis_store(&url, &unique_namespace("reorder"));
    let memory = InMemoryFeatureStore::new(Duration::from_secs(3600));
    // In transit, so every state of S1 has the same version: the later wins.
    let leg = |id: &str, shipment: &str, carrier: &str| leg_state(id, shipment, carrier, false);
    let first = vec![leg("seen-before", "S0", "XPO")];
    let mut call = vec![leg("seen-before", "S0", "XPO"), leg("a", "S1", "XPO")];
    call.extend((0..600).map(|n| leg(&format!("filler-{n}"), &format!("F{n}"), "FDX")));
    call.push(leg("b", "S1", "UPS"));
    for batch in [&first, &call] {
        assert_eq!(
            redis.apply(batch).await.unwrap(),
            memory.apply(batch).await.unwrap()
        );
    }
    let request = FetchRequest {
        entities: vec![EntityKey::Shipment("S1".into())],
        ..FetchRequest::default()
    };
    let (a, b) = (
        redis.fetch_all(&request).await.unwrap(),
        memory.fetch_all(&request).await.unwrap(),
    );
    assert_eq!(a.entities, b.entities);
    assert!(
        matches!(&a.entities[0], Some(Entity::Shipment(s)) if s.carrier == "UPS"),
        "{:?}",
        a.entities
    );
}

#[tokio::test]
async fn keys_are_namespaced_and_documented() {
    let (url, _redis) = shared_redis();
    let namespace = unique_namespace("keys");
    let store = redis_store(&url, &namespace);
    let updates = as_applied(
        events()
            .iter()
            .map(|e| updates_for(e, &FeatureSettings::default())),
    );
    let unix_secs = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    let before = unix_secs();
    store.apply(&updates).await.unwrap();
    let after = unix_secs();
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{namespace}:*"))
        .query_async(&mut connection)
        .await
        .unwrap();
    keys.sort();
    let strip = |k: &String| k.trim_start_matches(&format!("{namespace}:")).to_string();
    let keys: Vec<String> = keys.iter().map(strip).collect();
    for expected in [
        "carrier:XPO",
        "lane:ATL:JFK",
        "carrier_lane_shipments:XPO:ATL:BOS",
        "site:ATL",
    ] {
        assert!(
            keys.iter().any(|k| k == expected),
            "{expected} missing from {keys:?}"
        );
    }
    // Ids and entities: in the current time bucket (a quarter of the TTL wide),
    // which expires whole.
    let seen: Vec<u64> = keys
        .iter()
        .filter_map(|k| k.strip_prefix("seen:"))
        .map(|bucket| bucket.parse().unwrap())
        .collect();
    assert_eq!(seen.len(), 1, "one id bucket written: {keys:?}");
    let bucket = seen[0];
    assert!(
        (before / 900..=after / 900).contains(&bucket),
        "bucket {bucket} is the current one"
    );
    let seen_key = store.seen_key(bucket);
    let applied: bool = redis::cmd("SISMEMBER")
        .arg(&seen_key)
        .arg("s-0-0")
        .query_async(&mut connection)
        .await
        .unwrap();
    assert!(applied, "s-0-0 marked in {seen_key}");
    let ttl: i64 = redis::cmd("TTL")
        .arg(&seen_key)
        .query_async(&mut connection)
        .await
        .unwrap();
    // A bucket spans a quarter of the TTL and lives a TTL after it ends.
    assert!(
        (3600..=3600 + 900).contains(&ttl),
        "id buckets expire (ttl {ttl})"
    );
    assert!(
        keys.iter().any(|k| k == &format!("entities:{bucket}")),
        "entity bucket missing from {keys:?}"
    );
    // Departure slots are read for hours around their time: they
    // expire ten days after their last write; other records never do.
    for (prefix, expires) in [("departure_slot:", true), ("carrier:", false)] {
        let key = keys
            .iter()
            .find(|k| k.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} key in {keys:?}"));
        let ttl: i64 = redis::cmd("TTL")
            .arg(format!("{namespace}:{key}"))
            .query_async(&mut connection)
            .await
            .unwrap();
        if expires {
            assert!(
                (10 * 86_400 - 60..=10 * 86_400).contains(&ttl),
                "{key}: ttl {ttl}"
            );
        } else {
            assert_eq!(ttl, -1, "{key} never expires");
        }
    }
}

#[tokio::test]
async fn redis_outage_degrades_then_recovers_without_restart() {
    let mut redis = RedisServer::start();
    let server = TestServer::start(config(Some(redis.url()), "outage")).await;
    let mut ingest = server.ingest().await;
    let mut client = server.scoring().await;
    ingest
        .ingest_events(pb::IngestEventsRequest {
            events: lane_history("o", "XPO", 12),
        })
        .await
        .unwrap();
    let healthy = score_shipment(&mut client, "XPO").await;
    assert!(!healthy.degraded);

    redis.stop();
    let degraded = score_shipment(&mut client, "XPO").await;
    assert!(degraded.degraded, "scores from defaults are flagged");
    assert!(
        degraded
            .degraded_reasons
            .iter()
            .any(|r| r.contains("feature store")),
        "{:?}",
        degraded.degraded_reasons
    );
    assert!((0.0..=1.0).contains(&degraded.probability));
    let refused = ingest
        .ingest_events(pb::IngestEventsRequest {
            events: lane_history("o2", "XPO", 1),
        })
        .await
        .expect_err("ingest must not acknowledge what it could not apply");
    assert_eq!(refused.code(), tonic::Code::Unavailable);

    // Redis comes back empty (no persistence): the very next call reconnects.
    redis.restart();
    let recovered = ingest
        .ingest_events(pb::IngestEventsRequest {
            events: lane_history("o3", "XPO", 12),
        })
        .await
        .expect("the first ingest after Redis returns succeeds")
        .into_inner();
    assert_eq!(recovered.accepted, 20);
    let score = score_shipment(&mut client, "XPO").await;
    assert!(!score.degraded, "{:?}", score.degraded_reasons);
    assert!((score.probability - healthy.probability).abs() < 1e-9);
}

#[tokio::test]
async fn features_survive_a_server_restart() {
    let (url, _redis) = shared_redis();
    let namespace = unique_namespace("restart");
    let first = TestServer::start(config(Some(url.clone()), &namespace)).await;
    first
        .ingest()
        .await
        .ingest_events(pb::IngestEventsRequest {
            events: lane_history("p", "XPO", 15),
        })
        .await
        .unwrap();
    let before = score_shipment(&mut first.scoring().await, "XPO").await;
    first.stop().await.unwrap();

    let second = TestServer::start(config(Some(url), &namespace)).await;
    let after = score_shipment(&mut second.scoring().await, "XPO").await;
    assert_eq!(before.probability, after.probability);
    assert!(!after.degraded);
    // Re-delivery after the restart is still recognised.
    let again = second
        .ingest()
        .await
        .ingest_events(pb::IngestEventsRequest {
            events: lane_history("p", "XPO", 15),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((again.accepted, again.duplicate), (0, 20));
}

#[tokio::test]
async fn a_server_started_without_redis_serves_degraded() {
    let port = free_port();
    let server =
        TestServer::start(config(Some(format!("redis://127.0.0.1:{port}")), "absent")).await;
    let score = score_shipment(&mut server.scoring().await, "XPO").await;
    assert!(score.degraded);
    assert!((0.0..=1.0).contains(&score.probability));
}

#[tokio::test]
async fn the_store_reads_what_a_redis_restart_would_lose() {
    // A private server: the test changes its settings.
    let redis = RedisServer::start();
    let store = redis_store(&redis.url(), &unique_namespace("persistence"));
    // The harness starts Redis with persistence off.
    let off = store.persistence().await.unwrap();
    assert!(!off.append_only && off.snapshots.is_empty(), "{off:?}");
    assert!(off.risk().unwrap().contains("persistence off"));

    let client = redis::Client::open(redis.url()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let mut set = async |name: &str, value: &str| {
        let () = redis::cmd("CONFIG")
            .arg("SET")
            .arg(name)
            .arg(value)
            .query_async(&mut connection)
            .await
            .unwrap();
    };
    set("appendonly", "yes").await;
    set("appendfsync", "everysec").await;
    let everysec = store.persistence().await.unwrap();
    assert!(
        everysec.risk().unwrap().contains("last second"),
        "{everysec:?}"
    );
    set("appendfsync", "always").await;
    assert_eq!(store.persistence().await.unwrap().risk(), None);
    set("appendonly", "no").await;
    set("save", "60 1000").await;
    let snapshots = store.persistence().await.unwrap();
    assert!(
        snapshots.risk().unwrap().contains("RDB snapshots only"),
        "{snapshots:?}"
    );
}
