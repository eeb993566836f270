//! Reroutes: the carriers that serve a shipment's lane, ranked by expected cost,
//! with the carrier-failure model predicting each at the decision's horizon.

use crate::domain::{Shipment, Timestamp};
use crate::features::AggregateKey;
use crate::features::aggregates::{WindowId, shipment_counters as sc};
use crate::features::vectors::{self, Lookup};
use crate::models::LoadedModel;
use crate::network::Network;

use super::{
    Criteria, Policy, PromiseAdjustment, Recommendation, Rejected, Scored, money_delta, rank,
};

/// Where a candidate carrier comes from.
#[derive(Debug, Clone, PartialEq)]
pub struct CarrierCandidate {
    /// The carrier's code.
    pub carrier: String,
    /// Published rate and transit hours; `None` for a carrier only seen in history.
    pub offer: Option<(f64, f64)>,
}

/// The carriers that serve the shipment's lane: from the network, then any
/// seen in history, each once, the current carrier first.
pub fn candidates(
    shipment: &Shipment,
    network: &Network,
    observed: &[String],
) -> Vec<CarrierCandidate> {
    let mut out: Vec<CarrierCandidate> = network
        .offers(&shipment.origin, &shipment.destination)
        .into_iter()
        .map(|o| CarrierCandidate {
            carrier: o.carrier.code.clone(),
            offer: Some((o.lane.rate, o.lane.transit_hours)),
        })
        .collect();
    for carrier in observed.iter().chain([&shipment.carrier]) {
        if !out.iter().any(|c| &c.carrier == carrier) {
            out.push(CarrierCandidate {
                carrier: carrier.clone(),
                offer: None,
            });
        }
    }
    if let Some(i) = out.iter().position(|c| c.carrier == shipment.carrier) {
        let current = out.remove(i);
        out.insert(0, current);
    }
    out
}

/// The shipment as it would be with another carrier.
pub fn with_carrier(shipment: &Shipment, candidate: &CarrierCandidate) -> Shipment {
    let transit_hours = candidate.offer.map_or_else(
        || {
            shipment
                .scheduled_arrival
                .hours_since(shipment.scheduled_departure)
        },
        |(_, transit)| transit,
    );
    Shipment {
        carrier: candidate.carrier.clone(),
        scheduled_arrival: shipment
            .scheduled_departure
            .plus_minutes(transit_hours * 60.0),
        ..shipment.clone()
    }
}

/// Every record the ranking reads.
pub fn keys(
    shipment: &Shipment,
    as_of: Timestamp,
    candidates: &[CarrierCandidate],
) -> Vec<AggregateKey> {
    let mut keys: Vec<AggregateKey> = candidates
        .iter()
        .flat_map(|c| vectors::shipment_keys(&with_carrier(shipment, c), as_of))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// What a reroute decision needs.
pub struct RerouteInput<'a> {
    /// The shipment leg as currently planned.
    pub shipment: &'a Shipment,
    /// Decision time: the model predicts at this lead before departure.
    pub as_of: Timestamp,
    /// The carriers to rank ([`candidates`]).
    pub candidates: &'a [CarrierCandidate],
    /// Carrier codes the caller ruled out.
    pub excluded: &'a [String],
    /// Sites and locations, for the distance and the origin site's limits.
    pub network: &'a Network,
    /// The carrier-failure model of the request's snapshot.
    pub model: &'a LoadedModel,
    /// The records the caller read, by key.
    pub lookup: &'a dyn Fn(&AggregateKey) -> Lookup<'a>,
    /// Costs and limits of the ranking.
    pub policy: Policy,
}

/// Ranks the carriers for a shipment.
pub fn reroute(input: &RerouteInput<'_>) -> Recommendation {
    let shipment = input.shipment;
    let lane = format!("{}→{}", shipment.origin, shipment.destination);
    let mut notes = Vec::new();
    let mut degraded = Vec::new();
    let mut rejected = Vec::new();
    let known_rates: Vec<f64> = input
        .candidates
        .iter()
        .filter_map(|c| c.offer.map(|(rate, _)| rate))
        .collect();
    let median_rate = median(&known_rates);
    let distance = input
        .network
        .distance_km(&shipment.origin, &shipment.destination)
        .unwrap_or(f64::NAN);
    let mut scored = Vec::new();
    for candidate in input.candidates {
        let baseline = candidate.carrier == shipment.carrier;
        if !baseline && input.excluded.contains(&candidate.carrier) {
            rejected.push(Rejected {
                option: candidate.carrier.clone(),
                reason: "excluded by the request".into(),
            });
            continue;
        }
        // The current plan is the shipment as it is, not as network.toml says.
        let hypothetical = if baseline {
            shipment.clone()
        } else {
            with_carrier(shipment, candidate)
        };
        let mut gaps = vectors::Gaps::default();
        let keys = vectors::shipment_keys(&hypothetical, input.as_of);
        let features = vectors::carrier_failure_vector(
            &hypothetical,
            input.as_of,
            keys.each_ref().map(|k| (input.lookup)(k)),
            input.network,
            &mut gaps,
        );
        if baseline {
            degraded.extend(gaps.reasons);
        }
        let risk = input.model.probability(&features);
        let mut reasons = Vec::new();
        let rate = match candidate.offer {
            Some((rate, _)) => rate,
            None => {
                reasons.push(format!(
                    "{} is not in network.toml for {lane} (seen in history); rate assumed {:.2}, \
                     the lane's median",
                    candidate.carrier, median_rate
                ));
                median_rate
            }
        };
        reasons.push(history_reason(
            &candidate.carrier,
            &lane,
            (input.lookup)(&keys[2]),
            input.as_of,
        ));
        let lead = vectors::lead_time_hours(shipment.scheduled_departure, input.as_of);
        reasons.push(format!(
            "predicted failure risk {:.0}% with {lead:.0} h to departure",
            risk * 100.0
        ));
        let transit = hypothetical
            .scheduled_arrival
            .hours_since(hypothetical.scheduled_departure);
        reasons.push(format!("transit {transit:.0} h, rate {rate:.2}"));
        scored.push(Scored {
            option: candidate.carrier.clone(),
            baseline,
            criteria: Criteria {
                risk,
                cost: rate,
                time_hours: hypothetical.scheduled_arrival.hours_since(input.as_of),
                distance_km: distance,
                expected_cost: rate + risk * input.policy.failure_cost,
            },
            arrival: hypothetical.scheduled_arrival,
            reasons,
            split: Vec::new(),
        });
    }
    if scored.len() == 1 {
        notes.push(format!(
            "no other carrier serves {lane} (in network.toml or in ingested history)"
        ));
    }
    rejected.sort_by(|a, b| a.option.cmp(&b.option));
    let promise_adjustment = promise_adjustment(&scored, input, &lane);
    let mut options = rank(scored, &input.policy, shipment.scheduled_arrival);
    compare_with_baseline(&mut options);
    Recommendation {
        entity_id: shipment.shipment_id.clone(),
        options,
        rejected,
        promise_adjustment,
        notes,
        degraded_reasons: degraded,
        model_name: input.model.manifest.name.clone(),
        model_version: input.model.manifest.version.clone(),
    }
}

/// "XPO failed 7 of its 14 shipments on ATL→JFK in the past week".
fn history_reason(carrier: &str, lane: &str, lookup: Lookup<'_>, now: Timestamp) -> String {
    let t = now.as_secs_f64();
    match lookup {
        None => format!("{carrier}'s history on {lane} is unavailable (feature store unreachable)"),
        Some(None) => format!("{carrier} has no recorded shipments on {lane}"),
        Some(Some(record)) => {
            let done = record.counter(sc::DONE, WindowId::WEEK, t);
            let failed = record.counter(sc::FAILED, WindowId::WEEK, t);
            if done < 0.5 {
                let done = record.counter(sc::DONE, WindowId::MONTH, t);
                let failed = record.counter(sc::FAILED, WindowId::MONTH, t);
                format!(
                    "{carrier} failed {failed:.0} of its {done:.0} shipments on {lane} in the past month"
                )
            } else {
                format!(
                    "{carrier} failed {failed:.0} of its {done:.0} shipments on {lane} in the past week"
                )
            }
        }
    }
}

/// Adds "vs the current plan" reasons to every non-baseline option.
fn compare_with_baseline(options: &mut [super::RankedOption]) {
    let Some(base) = options
        .iter()
        .find(|o| o.baseline)
        .map(|o| o.option.clone())
    else {
        return;
    };
    for option in options.iter_mut().filter(|o| !o.baseline) {
        let change = if option.risk_removed >= 0.0 {
            format!("removes {:.0} points of risk", option.risk_removed * 100.0)
        } else {
            format!("adds {:.0} points of risk", -option.risk_removed * 100.0)
        };
        option.reasons.push(format!(
            "against {base}: {change}, costs {}, arrives {:+.1} h",
            money_delta(option.cost_delta),
            option.time_impact_hours
        ));
    }
}

/// When even the safest carrier is too risky, a later promise to offer.
fn promise_adjustment(
    scored: &[Scored],
    input: &RerouteInput<'_>,
    lane: &str,
) -> Option<PromiseAdjustment> {
    let safest = scored.iter().min_by(|a, b| {
        a.criteria
            .risk
            .total_cmp(&b.criteria.risk)
            .then(a.option.cmp(&b.option))
    })?;
    if safest.criteria.risk <= input.policy.safe_risk {
        return None;
    }
    let key = AggregateKey::carrier_lane(
        &safest.option,
        &input.shipment.origin,
        &input.shipment.destination,
    );
    let t = input.as_of.as_secs_f64();
    let late_hours = (input.lookup)(&key).flatten().map_or(0.0, |r| {
        let late = r.counter(sc::FAILED, WindowId::MONTH, t)
            - r.counter(sc::CANCELLED, WindowId::MONTH, t);
        if late > 0.5 {
            r.counter(sc::DELAY_MINUTES, WindowId::MONTH, t) / late / 60.0
        } else {
            0.0
        }
    });
    let buffer_hours = late_hours.max(2.0).ceil();
    Some(PromiseAdjustment {
        new_promise: safest.arrival.plus_minutes(buffer_hours * 60.0),
        reason: format!(
            "every carrier on {lane} is above {:.0}% failure risk (safest: {} at {:.0}%); \
             late deliveries there ran {late_hours:.1} h late on average, so promise \
             {buffer_hours:.0} h after its scheduled arrival",
            input.policy.safe_risk * 100.0,
            safest.option,
            safest.criteria.risk * 100.0
        ),
    })
}

fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}
