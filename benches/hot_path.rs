//! Criterion benches of the hot path's pieces, with a shared fixture: feature
//! vector assembly, inference for every family and learner, the two rankings,
//! a whole batch scored from the in-memory store, and the cost of letting
//! heavy work run where it cannot stall the reactor (`detour::cpu`). `cargo bench --bench hot_path`; CI runs each once as a test
//! (`cargo test --benches`) so they keep compiling and working.

use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use detour::domain::{
    Event, EventPayload, InventoryPosition, Order, OrderPriority, Shipment, ShipmentStatus,
    SiteSnapshot, Timestamp,
};
use detour::features::vectors::{self, Lookup};
use detour::features::{AggregateKey, FeatureSettings, InMemoryFeatureStore, updates_for};
use detour::models::mlp::{Activation, Dense};
use detour::models::trees::Tree;
use detour::models::{
    Learner, LoadedModel, LogisticWeights, Mlp, MlpWeights, TreeEnsemble, load_model,
};
use detour::network::{Carrier, Lane, Network, Region, Site};
use detour::recommend::Policy;
use detour::recommend::reallocation::{self, OrderLine, ReallocationInput};
use detour::recommend::reroute::{self, RerouteInput};
use detour::registry::ModelRegistry;
use detour::schema::RiskKind;
use detour::schema::{FeatureVector, schema_of};
use detour::scoring::{ScoreTarget, Scorer};

const HOUR_MS: i64 = 3_600_000;
const T0: i64 = 1_790_000_000_000;

/// A 50-site network where 10 carriers serve every site → region lane.
fn network() -> Network {
    let sites: Vec<Site> = (0..50)
        .map(|i| Site {
            code: format!("B{i:02}"),
            name: String::new(),
            region: String::new(),
            lat: 26.0 + (i * 7 % 22) as f64,
            lon: -122.0 + (i * 13 % 50) as f64,
            capacity_per_hour: 40.0,
            backlog_limit: 120.0,
            handling_cost: 5.0,
        })
        .collect();
    let regions = vec![Region {
        code: "JFK".into(),
        area: "NE".into(),
        lat: 40.6,
        lon: -73.8,
    }];
    let carriers = (0..10)
        .map(|c| Carrier {
            code: format!("K{c}"),
            name: String::new(),
            lanes: sites
                .iter()
                .map(|s| Lane {
                    origin: s.code.clone(),
                    destination: "JFK".into(),
                    rate: 80.0 + c as f64 * 3.0 + s.lon.abs() / 10.0,
                    transit_hours: 20.0 + (c % 3) as f64,
                })
                .collect(),
        })
        .collect();
    Network::new(sites, regions, carriers)
}

fn shipment(i: usize, carrier: &str, origin: &str, delivered_late: Option<bool>) -> Shipment {
    let departure = Timestamp(T0 + (i as i64 % 200) * HOUR_MS);
    let arrival = Timestamp(departure.0 + 20 * HOUR_MS);
    Shipment {
        tracking: Default::default(),
        shipment_id: format!("S{i}"),
        carrier: carrier.into(),
        origin: origin.into(),
        destination: "JFK".into(),
        scheduled_departure: departure,
        scheduled_arrival: arrival,
        actual_departure: delivered_late.map(|_| departure),
        actual_arrival: delivered_late
            .map(|late| Timestamp(arrival.0 + if late { 3 * HOUR_MS } else { 0 })),
        status: if delivered_late.is_some() {
            ShipmentStatus::Delivered
        } else {
            ShipmentStatus::InTransit
        },
    }
}

fn order(site: &str) -> Order {
    Order {
        progress: Default::default(),
        order_id: "O-1".into(),
        created_at: Timestamp(T0 + 210 * HOUR_MS),
        channel: "web".into(),
        site: site.into(),
        destination_region: "JFK".into(),
        promise_at: Timestamp(T0 + 260 * HOUR_MS),
        line_count: 2,
        units: 3.0,
        priority: OrderPriority::Standard,
        outcome: None,
    }
}

/// An in-memory store with history for every carrier, site and lane.
fn store(network: &Network) -> InMemoryFeatureStore {
    let store = InMemoryFeatureStore::new(Duration::from_secs(3600));
    let mut events = Vec::new();
    for i in 0..20_000 {
        let site = &network.sites[i % network.sites.len()].code;
        let carrier = format!("K{}", i % 10);
        let late = i % 7 == 0;
        events.push(Event {
            event_id: format!("s{i}"),
            payload: EventPayload::Shipment(shipment(i, &carrier, site, Some(late))),
        });
    }
    for (i, site) in network.sites.iter().enumerate() {
        events.push(Event {
            event_id: format!("snap{i}"),
            payload: EventPayload::Site(SiteSnapshot {
                site: site.code.clone(),
                at: Timestamp(T0 + 205 * HOUR_MS),
                backlog: (i * 3 % 100) as f64,
                labour: 12.0,
                units_picked: 300.0,
                period_minutes: 60.0,
                dock_utilisation: 0.6,
            }),
        });
        for sku in ["SKU-1", "SKU-2"] {
            events.push(Event {
                event_id: format!("inv{i}{sku}"),
                payload: EventPayload::Inventory(InventoryPosition {
                    site: site.code.clone(),
                    sku: sku.into(),
                    on_hand: 50.0,
                    at: Timestamp(T0),
                }),
            });
        }
    }
    for event in &events {
        store.apply_updates(&updates_for(event, &FeatureSettings::default()).updates);
    }
    store
}

fn shipped(kind: RiskKind) -> LoadedModel {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    load_model(&dir, kind, schema_of(kind)).expect("shipped models load")
}

/// A logistic model of the family's width, for the baseline learner's cost.
fn logistic(kind: RiskKind) -> LoadedModel {
    let mut model = shipped(kind);
    let n = schema_of(kind).len();
    model.learner = Learner::Logistic(LogisticWeights {
        mean: vec![0.1; n],
        std: vec![1.0; n],
        coefficients: (0..n).map(|i| 0.01 * i as f64).collect(),
        intercept: -1.0,
    });
    model
}

/// A tree ensemble of an imported LightGBM model's size: 500 trees of 31
/// leaves, each grown leaf-wise (LightGBM's way) by splitting a leaf chosen
/// at random, on random features and thresholds, with random missing
/// directions; `DETOUR_BENCH_IMPORTED` names a real imported version folder
/// to measure instead.
fn imported_model(kind: RiskKind) -> LoadedModel {
    if let Ok(dir) = std::env::var("DETOUR_BENCH_IMPORTED") {
        return detour::models::load_version(Path::new(&dir), kind, schema_of(kind))
            .expect("DETOUR_BENCH_IMPORTED names a loadable version of the family");
    }
    let width = schema_of(kind).len() as u64;
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let trees = (0..500)
        .map(|_| {
            let mut tree = Tree {
                feature: vec![0],
                threshold: vec![0.0],
                left: vec![0],
                right: vec![0],
                missing: vec![0],
                value: vec![0.0],
                categorical: Vec::new(),
            };
            let mut leaves = vec![0usize];
            while leaves.len() < 31 {
                let at = leaves.swap_remove((next() % leaves.len() as u64) as usize);
                let (l, r) = (tree.value.len(), tree.value.len() + 1);
                tree.feature[at] = (next() % width) as u32;
                tree.threshold[at] = (next() % 1000) as f64 / 1000.0;
                tree.left[at] = l as u32;
                tree.right[at] = r as u32;
                tree.missing[at] = if next() % 2 == 0 { l } else { r } as u32;
                for _ in 0..2 {
                    tree.feature.push(0);
                    tree.threshold.push(0.0);
                    tree.left.push(0);
                    tree.right.push(0);
                    tree.missing.push(0);
                    tree.value.push((next() % 2001) as f64 / 10_000.0 - 0.1);
                }
                leaves.extend([l, r]);
            }
            tree
        })
        .collect();
    let mut model = shipped(kind);
    model.learner = Learner::Boosted(TreeEnsemble::new(-1.5, trees));
    // As imported: no priors, missing values go down the trees.
    for feature in &mut model.manifest.features {
        feature.prior = None;
    }
    model
}

fn imported(c: &mut Criterion, features: &FeatureVector) {
    let kind = RiskKind::CarrierFailure;
    let model = imported_model(kind);
    c.bench_function("imported/lightgbm_500x31/explained", |b| {
        b.iter(|| black_box(model.predict(black_box(features))))
    });
    c.bench_function("imported/lightgbm_500x31/probability", |b| {
        b.iter(|| black_box(model.probability(black_box(features))))
    });
    // A thousand different rows, some values missing.
    let rows: Vec<FeatureVector> = (0..1000)
        .map(|i| {
            let mut row = *features;
            for (j, value) in row.values[..row.len].iter_mut().enumerate() {
                *value = if (i + j) % 17 == 0 {
                    f64::NAN
                } else {
                    ((i * 31 + j * 7) % 1000) as f64 / 1000.0
                };
            }
            row
        })
        .collect();
    c.bench_function("imported/lightgbm_500x31/batch_1000", |b| {
        b.iter(|| black_box(model.probabilities(black_box(&rows))))
    });
    imported_mlp(c, &rows);
}

/// A network of the size the budget names: the family's inputs, two hidden
/// layers of 64 (ReLU), one output; weights drawn at random.
fn mlp_model(kind: RiskKind) -> LoadedModel {
    let n = schema_of(kind).len();
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut draw = |scale: f64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        ((seed % 2001) as f64 / 1000.0 - 1.0) * scale
    };
    let mut layers = Vec::new();
    let mut width = n;
    for (out, activation) in [
        (64, Activation::Relu),
        (64, Activation::Relu),
        (1, Activation::Identity),
    ] {
        let scale = 1.0 / (width as f64).sqrt();
        layers.push(Dense {
            weight: (0..out * width).map(|_| draw(scale)).collect(),
            bias: (0..out).map(|_| draw(0.1)).collect(),
            activation,
        });
        width = out;
    }
    let weights = MlpWeights {
        inputs: (0..n as u32).collect(),
        mean: vec![0.5; n],
        std: vec![0.3; n],
        layers,
    };
    let mut model = shipped(kind);
    model.learner = Learner::Mlp(Mlp::new(weights).expect("a well-formed network"));
    for feature in &mut model.manifest.features {
        feature.prior = None;
    }
    model
}

fn imported_mlp(c: &mut Criterion, rows: &[FeatureVector]) {
    let model = mlp_model(RiskKind::CarrierFailure);
    let one = &rows[0];
    c.bench_function("imported/mlp_64x64/probability", |b| {
        b.iter(|| black_box(model.probability(black_box(one))))
    });
    c.bench_function("imported/mlp_64x64/explained", |b| {
        b.iter(|| black_box(model.predict(black_box(one))))
    });
    c.bench_function("imported/mlp_64x64/batch_1000", |b| {
        b.iter(|| black_box(model.probabilities(black_box(rows))))
    });
}

fn benches(c: &mut Criterion) {
    let network = network();
    let store = store(&network);
    off_the_reactor(c, &network);
    let probe = shipment(1, "K3", "B07", None);
    let now = probe.scheduled_departure;
    let keys = vectors::shipment_keys(&probe, now);
    let records = store.fetch_now(&keys);

    c.bench_function("features/carrier_failure_vector", |b| {
        b.iter(|| {
            let lookups: [Lookup<'_>; vectors::SHIPMENT_KEYS] =
                std::array::from_fn(|i| Some(records[i].as_ref()));
            let mut gaps = vectors::Gaps::default();
            black_box(vectors::carrier_failure_vector(
                black_box(&probe),
                now,
                lookups,
                &network,
                &mut gaps,
            ))
        })
    });
    let lookups: [Lookup<'_>; vectors::SHIPMENT_KEYS] =
        std::array::from_fn(|i| Some(records[i].as_ref()));
    let features: FeatureVector = vectors::carrier_failure_vector(
        &probe,
        now,
        lookups,
        &network,
        &mut vectors::Gaps::default(),
    );
    imported(c, &features);
    for kind in RiskKind::ALL {
        let row = FeatureVector {
            values: features.values,
            len: schema_of(kind).len(),
        };
        let shipped = shipped(kind);
        let name = match shipped.learner {
            Learner::Logistic(_) => "logistic",
            Learner::Boosted(_) => "boosted",
            Learner::LinearTrees(_) => "logistic_plus_trees",
            Learner::Mlp(_) => "mlp",
        };
        for (learner, model) in [(name, shipped), ("logistic", logistic(kind))] {
            c.bench_function(
                &format!("inference/{}/{learner}/explained", kind.name()),
                |b| b.iter(|| black_box(model.predict(black_box(&row)))),
            );
            c.bench_function(
                &format!("inference/{}/{learner}/probability", kind.name()),
                |b| b.iter(|| black_box(model.probability(black_box(&row)))),
            );
        }
    }

    let carrier_model = shipped(RiskKind::CarrierFailure);
    let candidates = reroute::candidates(&probe, &network, &[]);
    let reroute_keys = reroute::keys(&probe, now, &candidates);
    let reroute_records = store.fetch_now(&reroute_keys);
    let lookup = |key: &AggregateKey| -> Lookup<'_> {
        reroute_keys
            .binary_search(key)
            .ok()
            .map(|i| reroute_records[i].as_ref())
    };
    c.bench_function("ranking/reroute_10_carriers", |b| {
        b.iter(|| {
            black_box(reroute::reroute(&RerouteInput {
                shipment: &probe,
                as_of: Timestamp(now.0 - 24 * HOUR_MS),
                candidates: &candidates,
                excluded: &[],
                network: &network,
                model: &carrier_model,
                lookup: &lookup,
                policy: Policy::REROUTE,
            }))
        })
    });

    let fallout_model = shipped(RiskKind::OrderFallout);
    let order = order("B07");
    let lines = vec![
        OrderLine {
            sku: "SKU-1".into(),
            quantity: 1.0,
        },
        OrderLine {
            sku: "SKU-2".into(),
            quantity: 2.0,
        },
    ];
    let realloc_keys = reallocation::keys(&order, &lines, &network);
    let realloc_records = store.fetch_now(&realloc_keys);
    let lookup = |key: &AggregateKey| -> Lookup<'_> {
        realloc_keys
            .binary_search(key)
            .ok()
            .map(|i| realloc_records[i].as_ref())
    };
    c.bench_function("ranking/reallocation_50_sites", |b| {
        b.iter(|| {
            black_box(reallocation::reallocation(&ReallocationInput {
                order: &order,
                lines: &lines,
                as_of: order.created_at,
                excluded: &[],
                stock: &[],
                network: &network,
                model: &fallout_model,
                lookup: &lookup,
                policy: Policy::REALLOCATION,
            }))
        })
    });
}

/// A batch scored end to end (keys, one in-memory read, vectors, inference,
/// explanations) against the hand-off to the blocking pool: what the
/// thresholds for moving work off the reactor weigh.
fn off_the_reactor(c: &mut Criterion, network: &Network) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .expect("a runtime");
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    let registry = ModelRegistry::load(&models).expect("shipped models load");
    let scorer = Scorer::new(
        std::sync::Arc::new(store(network)),
        std::sync::Arc::new(registry),
        std::sync::Arc::new(network.clone()),
    );
    let snapshot = scorer.models();
    let targets: Vec<ScoreTarget> = (0..32)
        .map(|i| {
            let order = order(&network.sites[i % network.sites.len()].code);
            ScoreTarget::Order {
                as_of: order.created_at,
                order,
            }
        })
        .collect();
    c.bench_function("scoring/batch_32_orders_in_memory", |b| {
        b.iter(|| runtime.block_on(scorer.score(&snapshot, black_box(targets.clone()))))
    });
    // On a worker thread, as a request runs: a spawned task.
    for (name, heavy) in [("inline", false), ("block_in_place", true)] {
        c.bench_function(&format!("cpu/hand_off/{name}"), |b| {
            b.iter(|| {
                runtime.block_on(async {
                    tokio::spawn(detour::cpu::run(heavy, || black_box(1u64)))
                        .await
                        .expect("no panic")
                })
            })
        });
    }
}

criterion_group! {
    name = hot_path;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = benches
}
criterion_main!(hot_path);
