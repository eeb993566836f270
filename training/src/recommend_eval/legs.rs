//! Legs of the history grouped by (carrier, origin, destination): which carriers
//! each lane had, every finished leg by scheduled departure (the paired
//! estimate's nearby legs) and by the moment its outcome became known (the
//! whole-history records). Reads shipments only; knows nothing of policies.

use std::collections::HashMap;

use detour::domain::{Shipment, ShipmentOutcome, Timestamp};

use crate::replay::History;

/// Carriers each (origin, destination) lane had in the history.
pub(super) type LaneCarriers = HashMap<(String, String), Vec<String>>;

/// Finished legs of each (carrier, origin, destination): (a time, failed), in
/// time order; the time is the scheduled departure except in [`lane_records`].
pub(super) type Legs = HashMap<(String, String, String), Vec<(i64, bool)>>;

/// Every leg of each (carrier, origin, destination) with an outcome, in the
/// order the outcomes became known: those times, and the failures among the
/// first k legs at index k.
pub(super) type LaneRecords = HashMap<(String, String, String), (Vec<i64>, Vec<u32>)>;

/// Off policy, a carrier's legs on the lane scheduled this close to a decision's
/// departure (and after the decision) stand for how it would have done in its
/// place.
pub const MATCH_WINDOW_HOURS: f64 = 12.0;

/// Every carrier each lane had anywhere in the history (sorted); a decision
/// only uses those with an outcome on the lane already in the replayed store.
pub(super) fn lane_carriers(history: &History) -> LaneCarriers {
    let mut lanes: LaneCarriers = HashMap::new();
    for s in &history.shipments {
        let carriers = lanes
            .entry((s.origin.clone(), s.destination.clone()))
            .or_default();
        if !carriers.contains(&s.carrier) {
            carriers.push(s.carrier.clone());
        }
    }
    for carriers in lanes.values_mut() {
        carriers.sort_unstable();
    }
    lanes
}

/// The finished legs of every carrier on every lane; a leg fails when it is
/// cancelled or arrives more than `grace_minutes` late.
pub(super) fn legs(shipments: &[Shipment], grace_minutes: f64) -> Legs {
    legs_by(shipments, grace_minutes, |s, _| s.scheduled_departure)
}

/// The finished legs of every carrier on every lane as (`time`, failed), in
/// time order.
fn legs_by(
    shipments: &[Shipment],
    grace_minutes: f64,
    time: impl Fn(&Shipment, &ShipmentOutcome) -> Timestamp,
) -> Legs {
    let mut legs: Legs = HashMap::new();
    for s in shipments {
        if let Some(outcome) = s.outcome(grace_minutes) {
            legs.entry((s.carrier.clone(), s.origin.clone(), s.destination.clone()))
                .or_default()
                .push((time(s, &outcome).0, outcome.failed));
        }
    }
    for v in legs.values_mut() {
        v.sort_unstable();
    }
    legs
}

/// Every carrier's record on every lane, leg by leg, in the order outcomes
/// became known; a leg fails as in [`legs`].
pub(super) fn lane_records(shipments: &[Shipment], grace_minutes: f64) -> LaneRecords {
    legs_by(shipments, grace_minutes, |_, outcome| outcome.known_at)
        .into_iter()
        .map(|(key, v)| {
            let times = v.iter().map(|&(t, _)| t).collect();
            let failed = std::iter::once(0)
                .chain(v.iter().scan(0, |n, &(_, failed)| {
                    *n += u32::from(failed);
                    Some(*n)
                }))
                .collect();
            (key, (times, failed))
        })
        .collect()
}

/// (failed, finished) legs of `carrier` on the lane whose outcome was known
/// before `at` — as in the replayed store, where a decision comes before an
/// outcome known at the same moment.
pub(super) fn record_before(
    records: &LaneRecords,
    carrier: &str,
    (origin, destination): (&str, &str),
    at: Timestamp,
) -> (u32, usize) {
    records
        .get(&(carrier.into(), origin.into(), destination.into()))
        .map_or((0, 0), |(times, failed)| {
            let done = times.partition_point(|&t| t < at.0);
            (failed[done], done)
        })
}

/// Failure share of `carrier`'s legs on the lane scheduled to depart within
/// [`MATCH_WINDOW_HOURS`] of `departure` and after `decided` (so none had an
/// outcome the ranking could have seen, and none is chosen by its outcome);
/// None if none.
pub(super) fn nearby_failure_share(
    legs: &Legs,
    carrier: &str,
    (origin, destination): (&str, &str),
    departure: Timestamp,
    decided: Timestamp,
) -> Option<f64> {
    let window = (MATCH_WINDOW_HOURS * 3_600_000.0) as i64;
    let all = legs.get(&(carrier.into(), origin.into(), destination.into()))?;
    let from = all.partition_point(|&(t, _)| t < departure.0 - window || t <= decided.0);
    let to = all.partition_point(|&(t, _)| t <= departure.0 + window);
    let near = all.get(from..to).unwrap_or_default();
    let failed = near.iter().filter(|&&(_, failed)| failed).count();
    (!near.is_empty()).then(|| failed as f64 / near.len() as f64)
}
