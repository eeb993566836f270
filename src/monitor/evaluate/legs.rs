//! The legs a carrier-region series keeps: for the alerts that list them
//! as at risk, and to count a leg as failed once it is overdue rather than
//! when its report finally comes (a late leg's arrival is reported hours
//! after it was due; that it has not arrived is known a grace after).

use super::*;

/// Legs a carrier-region series remembers at most (the latest to leave).
pub(super) const MAX_OPEN_LEGS: usize = 64;

/// Legs an alert lists at most.
pub(super) const AT_RISK_LISTED: usize = 10;

/// A leg due to leave this long before the series' newest outcome and not
/// heard of since is forgotten (its end was never reported).
pub(super) const FORGET_LEG_SECS: i64 = 3 * 24 * 3_600;

use crate::monitor::OVERDUE_AFTER_SECS;

/// What a leg's report did to the legs a series keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Tracked {
    /// Kept (or ignored): nothing to count.
    Kept,
    /// It finished after it had been counted as failed for being overdue:
    /// its reported outcome is not to be counted again.
    FinishedOverdue,
}

/// Keeps a leg's latest state among the open legs (or drops it, finished).
pub(super) fn track_leg(
    state: &mut SeriesState,
    id: &str,
    departure: i64,
    arrival: i64,
    departed: bool,
    finished: bool,
) -> Tracked {
    if state.finished_legs.iter().any(|l| l == id) {
        return Tracked::Kept;
    }
    let was_open = state.open_legs.iter().any(|l| l.id == id);
    state.open_legs.retain(|l| l.id != id);
    let was_overdue = state.overdue_legs.iter().any(|l| l == id);
    if finished {
        state.overdue_legs.retain(|l| l != id);
        // Only a leg that was listed needs remembering as finished.
        if !was_open && !was_overdue {
            return Tracked::Kept;
        }
        state.finished_legs.push(id.to_string());
        if state.finished_legs.len() > MAX_OPEN_LEGS {
            state.finished_legs.remove(0);
        }
        return if was_overdue {
            Tracked::FinishedOverdue
        } else {
            Tracked::Kept
        };
    }
    if was_overdue {
        // Counted; a later report of an earlier stage changes nothing.
        return Tracked::Kept;
    }
    let newest = state.cells.last().map_or(i64::MIN, |c| c.0 * HOUR);
    state
        .open_legs
        .retain(|l| l.departure >= newest.saturating_sub(FORGET_LEG_SECS));
    state.open_legs.push(OpenLeg {
        id: id.to_string(),
        departure,
        arrival,
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
    Tracked::Kept
}

/// The open legs overdue at `now` (reported gone, due more than
/// [`OVERDUE_AFTER_SECS`] before it and not reported finished; a leg never
/// reported gone may be one whose stages are not reported, and is left to
/// its outcome): each leaves the open legs for
/// the overdue ones, and its time of becoming overdue is returned, in time
/// order, to be counted as a failure then.
pub(super) fn overdue(state: &mut SeriesState, now: i64) -> Vec<i64> {
    let is_due = |l: &OpenLeg| l.departed && l.arrival > 0 && l.arrival + OVERDUE_AFTER_SECS <= now;
    if !state.open_legs.iter().any(is_due) {
        return Vec::new();
    }
    let mut due = Vec::new();
    let overdue_legs = &mut state.overdue_legs;
    state.open_legs.retain(|l| {
        if !is_due(l) {
            return true;
        }
        due.push(l.arrival + OVERDUE_AFTER_SECS);
        overdue_legs.push(l.id.clone());
        false
    });
    if overdue_legs.len() > MAX_OPEN_LEGS {
        let excess = overdue_legs.len() - MAX_OPEN_LEGS;
        overdue_legs.drain(..excess);
    }
    due.sort_unstable();
    due
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
