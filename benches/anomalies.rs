//! Criterion benches of anomaly detection's pieces: one point through the
//! seasonal detector, one outcome through a rate series (its windows and its
//! episode), and a whole ingest call's points (500 finished legs over 300
//! series) queued and flushed through the in-memory monitor — the cost per
//! event that ingest pays with detection on. `cargo bench --bench anomalies`;
//! CI runs each once as a test (`cargo test --benches`).

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use detour::anomaly::{DetectorSettings, Direction, SeriesDetector};
use detour::domain::{Event, EventPayload, Shipment, ShipmentStatus, Timestamp};
use detour::features::{ApplyOutcome, FeatureSettings, updates_for, with_facts};
use detour::monitor::Monitor;
use detour::monitor::evaluate::{LoadedBuckets, SeriesState, advance};
use detour::monitor::series::{Point, PointValue, SeriesId};
use detour::network::Network;

const HOUR: i64 = 3_600;
const T0: i64 = 1_790_000_000;

/// A finished leg `i` of `carrier` into `destination`, failed one time in
/// twelve.
fn leg(i: usize, carrier: &str, origin: &str, destination: &str) -> Event {
    let arrival = Timestamp((T0 + (i as i64 % 48) * HOUR) * 1000);
    let departure = Timestamp(arrival.0 - 20 * HOUR * 1000);
    let late = i.is_multiple_of(12);
    Event {
        event_id: format!("E{i}"),
        payload: EventPayload::Shipment(Shipment {
            tracking: Default::default(),
            shipment_id: format!("S{i}"),
            carrier: carrier.into(),
            origin: origin.into(),
            destination: destination.into(),
            scheduled_departure: departure,
            scheduled_arrival: arrival,
            actual_departure: Some(departure),
            actual_arrival: Some(Timestamp(
                arrival.0 + if late { 3 * HOUR * 1000 } else { 0 },
            )),
            status: ShipmentStatus::Delivered,
        }),
    }
}

fn benches(c: &mut Criterion) {
    // A seasonal detector after four weeks of hourly points.
    let settings = DetectorSettings {
        direction: Direction::Up,
        ..DetectorSettings::default()
    };
    let mut detector = SeriesDetector::new();
    for h in 0..(28 * 24) {
        detector.observe(T0 + h * HOUR, (10 + h % 7) as f64, &settings);
    }
    let mut at = T0 + 28 * 24 * HOUR;
    c.bench_function("anomaly/seasonal_point", |b| {
        b.iter(|| {
            at += 60;
            black_box(detector.observe(black_box(at), 12.0, &settings))
        })
    });

    // A rate series with four weeks of past and a day of window.
    let network = Network::default();
    let series = SeriesId::CarrierRegion("XPO".into(), "JFK".into());
    let mut state = SeriesState::default();
    let mut buckets = LoadedBuckets::default();
    let warm: Vec<Point> = (0..(28 * 24 * 3))
        .map(|i| Point {
            at: T0 + i * HOUR / 3,
            value: PointValue::Outcome {
                failed: i % 12 == 0,
                leg: None,
            },
        })
        .collect();
    advance(&series, &mut state, &mut buckets, &warm, &network);
    let mut at = T0 + 28 * 24 * HOUR;
    let mut i = 0u64;
    c.bench_function("anomaly/rate_point", |b| {
        b.iter(|| {
            at += 120;
            i += 1;
            let point = [Point {
                at,
                value: PointValue::Outcome {
                    failed: i.is_multiple_of(12),
                    leg: None,
                },
            }];
            black_box(advance(&series, &mut state, &mut buckets, &point, &network))
        })
    });

    // One ingest call: 500 legs over 10 carriers, 3 origins and 10
    // destinations (300 carrier-region, lane and inbound series).
    let carriers = ["C0", "C1", "C2", "C3", "C4", "C5", "C6", "C7", "C8", "C9"];
    let origins = ["ATL", "DFW", "ORD"];
    let events: Vec<_> = (0..500)
        .map(|i| {
            let event = leg(
                i,
                carriers[i % 10],
                origins[i % 3],
                &format!("D{}", (i / 10) % 10),
            );
            updates_for(&event, &FeatureSettings::default())
        })
        .collect();
    let (run, _) = with_facts(events);
    let applied = vec![ApplyOutcome::Applied; run.len()];
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let monitor = Arc::new(Monitor::in_memory(Arc::new(Network::default())));
    c.bench_function("monitor/ingest_call_500_legs", |b| {
        b.iter(|| {
            monitor.observe(&run, &applied);
            runtime.block_on(monitor.flush()).expect("in memory")
        })
    });
}

criterion_group! {
    name = anomalies;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = benches
}
criterion_main!(anomalies);
