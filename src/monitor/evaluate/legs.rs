//! The legs a carrier-region series keeps, for the alerts that list them
//! as at risk.

use super::*;

/// Legs a carrier-region series remembers at most (the latest to leave).
pub(super) const MAX_OPEN_LEGS: usize = 64;

/// Legs an alert lists at most.
pub(super) const AT_RISK_LISTED: usize = 10;

/// A leg due to leave this long before the series' newest outcome and not
/// heard of since is forgotten (its end was never reported).
pub(super) const FORGET_LEG_SECS: i64 = 3 * 24 * 3_600;

/// Keeps a leg's latest state among the open legs (or drops it, finished).
pub(super) fn track_leg(
    state: &mut SeriesState,
    id: &str,
    departure: i64,
    departed: bool,
    finished: bool,
) {
    if state.finished_legs.iter().any(|l| l == id) {
        return;
    }
    let was_open = state.open_legs.iter().any(|l| l.id == id);
    state.open_legs.retain(|l| l.id != id);
    if finished {
        // Only a leg that was listed needs remembering as finished.
        if !was_open {
            return;
        }
        state.finished_legs.push(id.to_string());
        if state.finished_legs.len() > MAX_OPEN_LEGS {
            state.finished_legs.remove(0);
        }
        return;
    }
    let newest = state.cells.last().map_or(i64::MIN, |c| c.0 * HOUR);
    state
        .open_legs
        .retain(|l| l.departure >= newest.saturating_sub(FORGET_LEG_SECS));
    state.open_legs.push(OpenLeg {
        id: id.to_string(),
        departure,
        departed,
    });
    if state.open_legs.len() > MAX_OPEN_LEGS {
        // The earliest to leave goes first.
        let earliest = state
            .open_legs
            .iter()
            .enumerate()
            .min_by_key(|(_, l)| l.departure)
            .map(|(i, _)| i)
            .expect("not empty");
        state.open_legs.remove(earliest);
    }
}

/// The legs an alert of `state`'s series puts at risk: those not gone
/// first (they can still be rerouted), each group by departure.
pub(super) fn at_risk(state: &SeriesState) -> Vec<AtRisk> {
    let mut legs: Vec<&OpenLeg> = state.open_legs.iter().collect();
    legs.sort_by_key(|l| (l.departed, l.departure));
    legs.into_iter()
        .take(AT_RISK_LISTED)
        .map(|l| AtRisk {
            shipment_id: l.id.clone(),
            scheduled_departure: l.departure,
            departed: l.departed,
            reroute: None,
        })
        .collect()
}
