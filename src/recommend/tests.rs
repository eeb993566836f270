//! Property tests: whatever the network, stock, backlogs and exclusions, no
//! recommendation breaks a hard constraint, the baseline is always there, and the
//! ranking is deterministic (independent of candidate order).

use proptest::prelude::*;

use super::reallocation::{self, OrderLine, ReallocationInput};
use super::reroute::{self, CarrierCandidate, RerouteInput};
use super::{Policy, Recommendation};
use crate::domain::{InventoryPosition, Order, OrderPriority, Shipment, ShipmentStatus, Timestamp};
use crate::features::AggregateKey;
use crate::features::aggregates::{AggregateKind, AggregateRecord, MAX_GAUGES, site_fields};
use crate::features::vectors::Lookup;
use crate::models::{
    BandThresholds, Calibration, FeatureSpec, Learner, LoadedModel, LogisticWeights, Manifest,
};
use crate::network::{Carrier, Lane, Network, Region, Site};
use crate::schema::RiskKind;
use crate::schema::{CARRIER_FAILURE_FEATURES, ORDER_FALLOUT_FEATURES};

const SITES: [&str; 5] = ["S0", "S1", "S2", "S3", "S4"];
const CARRIERS: [&str; 5] = ["C0", "C1", "C2", "C3", "C4"];
const SKUS: [&str; 3] = ["K0", "K1", "K2"];

fn model(kind: RiskKind, weights: Vec<f64>) -> LoadedModel {
    let schema = match kind {
        RiskKind::CarrierFailure => CARRIER_FAILURE_FEATURES,
        _ => ORDER_FALLOUT_FEATURES,
    };
    let n = schema.len();
    LoadedModel {
        manifest: Manifest {
            golden_file: Default::default(),
            golden_sha256: Default::default(),
            isotonic: None,
            name: "test".into(),
            family: kind.name().into(),
            version: "test-1".into(),
            learner: "logistic_regression".into(),
            features: schema
                .iter()
                .map(|f| FeatureSpec {
                    name: f.name.into(),
                    unit: f.unit.into(),
                    prior: None,
                })
                .collect(),
            weights_file: String::new(),
            weights_sha256: String::new(),
            calibration: Calibration {
                slope: 1.0,
                intercept: 0.0,
            },
            bands: BandThresholds {
                medium: 0.2,
                high: 0.5,
            },
            training: serde_json::Value::Null,
            metrics: serde_json::Value::Null,
        },
        kind,
        learner: Learner::Logistic(LogisticWeights {
            mean: vec![0.0; n],
            std: vec![1.0; n],
            coefficients: weights.into_iter().cycle().take(n).collect(),
            intercept: -2.0,
        }),
    }
}

/// A network where carrier `c` serves S0→R iff `serves[c]`, every site ships to R
/// iff `site_lanes[s]`, with rates and transits from the seeds.
fn network(serves: &[bool], site_lanes: &[bool], seed: u64) -> Network {
    let sites = SITES
        .iter()
        .enumerate()
        .map(|(i, code)| Site {
            code: (*code).into(),
            name: String::new(),
            region: String::new(),
            lat: 30.0 + i as f64,
            lon: -90.0 + i as f64,
            capacity_per_hour: 10.0,
            backlog_limit: 30.0,
            handling_cost: 5.0,
        })
        .collect();
    let carriers = CARRIERS
        .iter()
        .enumerate()
        .map(|(c, code)| {
            let mut lanes = Vec::new();
            for (s, site) in SITES.iter().enumerate() {
                let serve = if s == 0 {
                    serves[c]
                } else {
                    site_lanes[s] && c == s % CARRIERS.len()
                };
                if serve {
                    lanes.push(Lane {
                        origin: (*site).into(),
                        destination: "R".into(),
                        rate: 50.0 + ((seed >> (c + s)) % 7) as f64 * 5.0,
                        transit_hours: 10.0 + ((seed >> (2 * c + s)) % 5) as f64,
                    });
                }
            }
            Carrier {
                code: (*code).into(),
                name: String::new(),
                lanes,
            }
        })
        .collect();
    let regions = vec![Region {
        code: "R".into(),
        area: String::new(),
        lat: 32.0,
        lon: -88.0,
    }];
    Network::new(sites, regions, carriers)
}

fn shipment(carrier: &str) -> Shipment {
    Shipment {
        tracking: Default::default(),
        shipment_id: "S-1".into(),
        carrier: carrier.into(),
        origin: "S0".into(),
        destination: "R".into(),
        scheduled_departure: Timestamp(1_780_000_000_000),
        scheduled_arrival: Timestamp(1_780_000_000_000 + 12 * 3_600_000),
        actual_departure: None,
        actual_arrival: None,
        status: ShipmentStatus::InTransit,
    }
}

fn order(site: &str) -> Order {
    Order {
        progress: Default::default(),
        order_id: "O-1".into(),
        created_at: Timestamp(1_780_000_000_000),
        channel: "web".into(),
        site: site.into(),
        destination_region: "R".into(),
        promise_at: Timestamp(1_780_000_000_000 + 48 * 3_600_000),
        line_count: 2,
        units: 3.0,
        priority: OrderPriority::Standard,
        outcome: None,
    }
}

fn reroute_answer(
    network: &Network,
    carrier: &str,
    excluded: &[String],
    weights: &[f64],
    reverse: bool,
) -> Recommendation {
    let shipment = shipment(carrier);
    let mut candidates: Vec<CarrierCandidate> = reroute::candidates(&shipment, network, &[]);
    if reverse {
        candidates.reverse();
    }
    let model = model(RiskKind::CarrierFailure, weights.to_vec());
    let lookup = |_: &AggregateKey| -> Lookup<'_> { Some(None) };
    reroute::reroute(&RerouteInput {
        shipment: &shipment,
        as_of: shipment.scheduled_departure,
        candidates: &candidates,
        excluded,
        network,
        model: &model,
        lookup: &lookup,
        policy: Policy::REROUTE,
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn reroutes_only_offer_carriers_that_serve_the_lane(
        serves in proptest::collection::vec(any::<bool>(), 5),
        excluded_mask in proptest::collection::vec(any::<bool>(), 5),
        current in 0usize..5,
        weights in proptest::collection::vec(-1.0f64..1.0, 4),
        seed in any::<u64>(),
    ) {
        let network = network(&serves, &[true; 5], seed);
        let excluded: Vec<String> = CARRIERS
            .iter()
            .zip(&excluded_mask)
            .filter(|(_, x)| **x)
            .map(|(c, _)| (*c).to_string())
            .collect();
        let answer = reroute_answer(&network, CARRIERS[current], &excluded, &weights, false);
        prop_assert_eq!(answer.options.iter().filter(|o| o.baseline).count(), 1);
        for option in answer.options.iter().filter(|o| !o.baseline) {
            prop_assert!(!excluded.contains(&option.option), "excluded {} offered", option.option);
            let serving = !network.offers("S0", "R").iter().all(|o| o.carrier.code != option.option);
            prop_assert!(serving, "{} does not serve the lane", option.option);
        }
        let ranks: Vec<u32> = answer.options.iter().map(|o| o.rank).collect();
        prop_assert!(ranks.windows(2).all(|w| w[0] < w[1]));
        // Deterministic, whatever order the candidates come in.
        let again = reroute_answer(&network, CARRIERS[current], &excluded, &weights, true);
        prop_assert_eq!(answer, again);
    }

    #[test]
    fn reallocations_only_offer_sites_that_can_fill_the_order(
        stock in proptest::collection::vec(0.0f64..4.0, 15),
        backlog in proptest::collection::vec(0.0f64..50.0, 5),
        lanes in proptest::collection::vec(any::<bool>(), 5),
        excluded_mask in proptest::collection::vec(any::<bool>(), 5),
        current in 0usize..5,
        weights in proptest::collection::vec(-1.0f64..1.0, 4),
        reverse in any::<bool>(),
    ) {
        let network = network(&[true; 5], &lanes, 7);
        let lines: Vec<OrderLine> = SKUS
            .iter()
            .map(|sku| OrderLine { sku: (*sku).into(), quantity: 2.0 })
            .collect();
        let mut positions: Vec<InventoryPosition> = Vec::new();
        for (s, site) in SITES.iter().enumerate() {
            for (k, sku) in SKUS.iter().enumerate() {
                positions.push(InventoryPosition {
                    site: (*site).into(),
                    sku: (*sku).into(),
                    on_hand: stock[s * 3 + k].floor(),
                    at: Timestamp(0),
                });
            }
        }
        if reverse {
            positions.reverse();
        }
        let records: Vec<(AggregateKey, AggregateRecord)> = SITES
            .iter()
            .zip(&backlog)
            .map(|(site, b)| {
                let mut gauges = [0.0; MAX_GAUGES];
                gauges[site_fields::BACKLOG] = b.floor();
                gauges[site_fields::LABOUR] = 10.0;
                let record = AggregateRecord { gauges_at: Some(0.0), gauges, ..AggregateRecord::default() };
                (AggregateKey::site(site), record)
            })
            .collect();
        let lookup = |key: &AggregateKey| -> Lookup<'_> {
            if key.kind == AggregateKind::Site {
                Some(records.iter().find(|(k, _)| k == key).map(|(_, r)| r))
            } else {
                Some(None)
            }
        };
        let excluded: Vec<String> = SITES
            .iter()
            .zip(&excluded_mask)
            .filter(|(_, x)| **x)
            .map(|(s, _)| (*s).to_string())
            .collect();
        let order = order(SITES[current]);
        let model = model(RiskKind::OrderFallout, weights);
        let run = |max_options: usize| reallocation::reallocation(&ReallocationInput {
            order: &order,
            lines: &lines,
            as_of: order.created_at,
            excluded: &excluded,
            stock: &positions,
            network: &network,
            model: &model,
            lookup: &lookup,
            policy: Policy { max_options, ..Policy::REALLOCATION },
        });
        let answer = run(100);
        // Scoring only what can make the top two gives the same top two.
        let pruned = run(2);
        let names = |r: &Recommendation| -> Vec<String> {
            r.options.iter().take(2).map(|o| o.option.clone()).collect()
        };
        prop_assert_eq!(names(&pruned), names(&answer));
        let holds = |site: &str, sku: &str| {
            positions.iter().any(|p| p.site == site && p.sku == sku && p.on_hand >= 2.0)
        };
        let eligible = |site: &str| {
            let i = SITES.iter().position(|s| *s == site).unwrap();
            !excluded.iter().any(|e| e == site)
                && backlog[i].floor() < 30.0
                && network.fastest_transit_hours(site, "R").is_some()
        };
        prop_assert_eq!(answer.options.iter().filter(|o| o.baseline).count(), 1);
        for option in answer.options.iter().filter(|o| !o.baseline) {
            if option.split.is_empty() {
                prop_assert!(eligible(&option.option), "{} breaks a constraint", option.option);
                for sku in SKUS {
                    prop_assert!(holds(&option.option, sku), "{} lacks {}", option.option, sku);
                }
            } else {
                let mut covered: Vec<&str> = Vec::new();
                for (site, skus) in &option.split {
                    prop_assert!(eligible(site), "split part {} breaks a constraint", site);
                    for sku in skus {
                        prop_assert!(holds(site, sku), "split part {} lacks {}", site, sku);
                        covered.push(sku);
                    }
                }
                covered.sort_unstable();
                prop_assert_eq!(covered, SKUS.to_vec());
            }
        }
    }
}
