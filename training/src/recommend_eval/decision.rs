//! One decision of the replay, taken every way: the options it had, what the
//! history did, what the ranking recommends and what each naive policy picks
//! ([`Taken`], [`Taken::pick`]). Scoring the picks is `scoring`'s job.

use std::collections::HashMap;

use detour::domain::Timestamp;
use detour::features::aggregates::{AggregateRecord, WindowId, shipment_counters as sc};
use detour::features::vectors::{PRIOR_FAILURE_RATE, smoothed};
use detour::features::{AggregateKey, InMemoryFeatureStore};
use detour::recommend::Policy as RankingPolicy;
use detour::recommend::reallocation::{self, ReallocationInput};
use detour::recommend::reroute::{self, RerouteInput};

use super::Setup;
use super::legs::{LaneCarriers, LaneRecords, Legs, nearby_failure_share, record_before};
use super::policy::Policy;
use crate::replay::History;

/// One option of a decision: code, cost, true failure probability (NaN where
/// only a simulator would know it).
#[derive(Debug, Clone)]
pub(super) struct Choice {
    pub(super) option: String,
    pub(super) cost: f64,
    pub(super) p_fail: f64,
}

/// Counterfactual truth per entity, where the history comes from the simulator.
pub(super) type Truth = HashMap<String, Vec<Choice>>;

/// A decision taken, and what each policy chose.
pub(super) struct Taken {
    pub(super) entity: String,
    /// The lane (for reallocations, the destination region): where, off
    /// policy, the propensity of the actual choice is estimated.
    pub(super) group: String,
    /// Week of the decision's departure (or order's creation), in weeks since
    /// the epoch: with `group`, the cluster of the paired standard error.
    pub(super) week: i64,
    pub(super) actual: String,
    /// The real outcome of the actual option.
    pub(super) actual_failed: bool,
    /// The options that pass the hard constraints (and the current plan): what
    /// the naive policies and hindsight may choose from, as the ranking may.
    pub(super) options: Vec<Choice>,
    pub(super) recommended: String,
    pub(super) naive: String,
    /// Reroutes: the carrier with the lowest failure rate on the lane over the
    /// whole history before the decision.
    pub(super) naive_history: Option<String>,
    /// Off policy: each option's failure share among its legs on the lane
    /// scheduled within [`MATCH_WINDOW_HOURS`](super::MATCH_WINDOW_HOURS) of
    /// this one and after the decision (None: it had none).
    pub(super) nearby: Vec<(String, Option<f64>)>,
}

/// What a policy picked on one decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Pick<'a> {
    /// Kept the plan: the history itself.
    Plan,
    /// Chose this option.
    Chose(&'a str),
    /// Picks by the outcomes (hindsight): known only once they are scored.
    ByOutcome,
    /// Does not apply to this kind of decision.
    NotApplicable,
}

impl Taken {
    /// What `policy` picked on this decision.
    pub(super) fn pick(&self, policy: Policy) -> Pick<'_> {
        match policy {
            Policy::CurrentPlan => Pick::Plan,
            Policy::Recommended => Pick::Chose(&self.recommended),
            Policy::Naive => Pick::Chose(&self.naive),
            Policy::NaiveWholeHistory => self
                .naive_history
                .as_deref()
                .map_or(Pick::NotApplicable, Pick::Chose),
            Policy::Hindsight => Pick::ByOutcome,
        }
    }
}

/// A week in milliseconds: decisions on one lane in one week share legs (their
/// windows overlap), so they form one cluster of the paired standard error.
const WEEK_MS: i64 = 7 * 86_400_000;

/// A reroute decision on shipment `i` at `at`, taken every way; None when it
/// cannot be evaluated (no outcome, no truth for it, or off policy a carrier
/// the ranking could not have known).
pub(super) fn reroute_decision(
    history: &History,
    (lanes, legs, past): (&LaneCarriers, &Legs, &LaneRecords),
    (i, at): (usize, Timestamp),
    store: &InMemoryFeatureStore,
    setup: &Setup,
    policy: RankingPolicy,
) -> Option<Taken> {
    let shipment = &history.shipments[i];
    let actual_failed = shipment.outcome(setup.grace_minutes)?.failed;
    // Carriers the service would know on this lane: those with an outcome on it
    // already in the store (nothing later leaks in).
    let lane_carriers = lanes
        .get(&(shipment.origin.clone(), shipment.destination.clone()))
        .map_or(&[][..], Vec::as_slice);
    let lane_keys: Vec<AggregateKey> = lane_carriers
        .iter()
        .map(|c| AggregateKey::carrier_lane(c, &shipment.origin, &shipment.destination))
        .collect();
    let observed: Vec<String> = lane_carriers
        .iter()
        .zip(store.fetch_now(&lane_keys))
        .filter(|(_, record)| record.is_some())
        .map(|(c, _)| c.clone())
        .collect();
    let candidates = reroute::candidates(shipment, &history.network, &observed);
    // Off policy, the options must not depend on what was done: a carrier the
    // ranking only knows because the history used it is left out, and the
    // actual carrier's schedule follows the rule every alternative's does.
    let rebuilt;
    let shipment = if setup.truth.is_none() {
        let actual = candidates
            .first()
            .filter(|c| c.carrier == shipment.carrier)?;
        if actual.offer.is_none() && !observed.contains(&shipment.carrier) {
            return None;
        }
        rebuilt = reroute::with_carrier(shipment, actual);
        &rebuilt
    } else {
        shipment
    };
    let keys = reroute::keys(shipment, at, &candidates);
    let records = store.fetch_now(&keys);
    let lookup = |key: &AggregateKey| keys.binary_search(key).ok().map(|i| records[i].as_ref());
    let answer = reroute::reroute(&RerouteInput {
        shipment,
        as_of: at,
        candidates: &candidates,
        excluded: &[],
        network: &history.network,
        model: &setup.model,
        lookup: &lookup,
        policy,
    });
    let options = match &setup.truth {
        Some(truth) => truth.get(&shipment.shipment_id)?.clone(),
        // Rates only where network.toml has them: the ranking's stand-in for a
        // missing rate (the lane's median) is no cost that was paid.
        None => candidates
            .iter()
            .map(|c| Choice {
                option: c.carrier.clone(),
                cost: c.offer.map_or(f64::NAN, |(rate, _)| rate),
                p_fail: f64::NAN,
            })
            .collect(),
    };
    let t = at.as_secs_f64();
    let naive = lowest_rate(&options, |o| {
        let key = AggregateKey::carrier_lane(&o.option, &shipment.origin, &shipment.destination);
        four_week_rate(lookup(&key).flatten(), t)
    })?;
    let lane = (shipment.origin.as_str(), shipment.destination.as_str());
    let naive_history = lowest_rate(&options, |o| whole_history_rate(past, &o.option, lane, at));
    let nearby = if setup.truth.is_none() {
        options
            .iter()
            .map(|o| {
                let share =
                    nearby_failure_share(legs, &o.option, lane, shipment.scheduled_departure, at);
                (o.option.clone(), share)
            })
            .collect()
    } else {
        Vec::new()
    };
    Some(Taken {
        entity: shipment.shipment_id.clone(),
        group: format!("{}→{}", shipment.origin, shipment.destination),
        week: shipment.scheduled_departure.0.div_euclid(WEEK_MS),
        actual: shipment.carrier.clone(),
        actual_failed,
        options,
        recommended: answer.options.first()?.option.clone(),
        nearby,
        naive,
        naive_history,
    })
}

/// A reallocation decision on order `i` at `at`, taken every way; None without
/// truth for it or an outcome, or when no option is eligible.
pub(super) fn reallocation_decision(
    history: &History,
    (i, at): (usize, Timestamp),
    store: &InMemoryFeatureStore,
    setup: &Setup,
    policy: RankingPolicy,
) -> Option<Taken> {
    let order = &history.orders[i];
    let truth = setup.truth.as_ref()?.get(&order.order_id)?;
    let actual_failed = order.outcome?.is_fallout();
    let keys = reallocation::keys(order, &[], &history.network);
    let records = store.fetch_now(&keys);
    let lookup = |key: &AggregateKey| keys.binary_search(key).ok().map(|i| records[i].as_ref());
    let answer = reallocation::reallocation(&ReallocationInput {
        order,
        lines: &[],
        as_of: at,
        excluded: &[],
        stock: &[],
        network: &history.network,
        model: &setup.model,
        lookup: &lookup,
        policy,
    });
    let options: Vec<Choice> = truth
        .iter()
        .filter(|o| !answer.rejected.iter().any(|r| r.option == o.option))
        .cloned()
        .collect();
    // Naive: the eligible site nearest the destination.
    let naive = options
        .iter()
        .filter_map(|o| {
            let km = history
                .network
                .distance_km(&o.option, &order.destination_region)?;
            Some((km, o.option.clone()))
        })
        .min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)))?
        .1;
    Some(Taken {
        entity: order.order_id.clone(),
        group: order.destination_region.clone(),
        week: order.created_at.0.div_euclid(WEEK_MS),
        actual: order.site.clone(),
        actual_failed,
        options,
        recommended: answer.options.first()?.option.clone(),
        naive,
        naive_history: None,
        nearby: Vec::new(),
    })
}

/// The option with the lowest `rate`; ties go to the cheaper, then to the first
/// code. None without options.
pub(super) fn lowest_rate(options: &[Choice], rate: impl Fn(&Choice) -> f64) -> Option<String> {
    options
        .iter()
        .map(|o| (rate(o), o.cost, &o.option))
        .min_by(|a, b| {
            a.0.total_cmp(&b.0)
                .then(a.1.total_cmp(&b.1))
                .then(a.2.cmp(b.2))
        })
        .map(|best| best.2.clone())
}

/// The naive policy's rate of a carrier on the lane: its failures over the last
/// four weeks in the store, smoothed by the features' own prior (the prior
/// itself for a carrier the store has no record of).
pub(super) fn four_week_rate(record: Option<&AggregateRecord>, t: f64) -> f64 {
    record.map_or(PRIOR_FAILURE_RATE, |r| {
        smoothed(
            r.counter(sc::FAILED, WindowId::MONTH, t),
            r.counter(sc::DONE, WindowId::MONTH, t),
            PRIOR_FAILURE_RATE,
        )
    })
}

/// The naive policy taken literally: a carrier's failure rate on the lane over
/// the whole history before `at`, smoothed as the four-week naive's is.
pub(super) fn whole_history_rate(
    records: &LaneRecords,
    carrier: &str,
    lane: (&str, &str),
    at: Timestamp,
) -> f64 {
    let (failed, done) = record_before(records, carrier, lane, at);
    smoothed(f64::from(failed), done as f64, PRIOR_FAILURE_RATE)
}
