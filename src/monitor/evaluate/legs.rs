//! The legs a carrier-region series keeps: for the alerts that list them
//! as at risk, and to count a leg as failed once it is overdue rather than
//! when its report finally comes (a late leg's arrival is reported hours
//! after it was due; that it has not arrived is known a grace after).

use super::*;
use crate::monitor::OVERDUE_AFTER_SECS;

/// Legs a carrier-region series remembers at most (the latest to leave).
pub(super) const MAX_OPEN_LEGS: usize = 64;

/// Legs an alert lists at most.
pub(super) const AT_RISK_LISTED: usize = 10;

/// A leg due to leave this long before the series' newest outcome and not
/// heard of since is forgotten (its end was never reported).
pub(super) const FORGET_LEG_SECS: i64 = 3 * 24 * 3_600;

/// Legs counted as overdue and not yet reported a series remembers at
/// most; beyond, a leg that comes due waits for its report to count. One
/// counted more than [`FORGET_LEG_SECS`] ago is forgotten (its outcome
/// never came; should it come, it counts again, long out of the window).
pub(super) const MAX_OVERDUE_LEGS: usize = 256;

/// Keeps a leg's latest state among the open legs (or drops it, finished).
pub(super) fn track_leg(
    state: &mut SeriesState,
    id: &str,
    departure: i64,
    arrival: i64,
    left_at: i64,
    departed: bool,
    finished: bool,
) {
    if state.finished_legs.iter().any(|l| l == id) {
        return;
    }
    let was_open = state.open_legs.iter().any(|l| l.id == id);
    state.open_legs.retain(|l| l.id != id);
    if state.overdue_legs.iter().any(|l| l.id == id) {
        // Counted already; its outcome settles it (`reported_outcome`),
        // and no report brings it back among the open legs.
        return;
    }
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
        arrival,
        left_at,
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

/// When an open leg is known to be overdue: a grace after it was due, but
/// not before it was known to have left. `None` for a leg not reported
/// gone (its stages may not be reported at all: it is left to its outcome)
/// or with no arrival time.
fn overdue_at(leg: &OpenLeg) -> Option<i64> {
    (leg.departed && leg.arrival > 0).then(|| (leg.arrival + OVERDUE_AFTER_SECS).max(leg.left_at))
}

/// The open legs overdue at `now` (see [`overdue_at`]), up to room among
/// the overdue legs: each leaves the open legs for the overdue ones, and
/// its time of becoming overdue is returned, in time order, to be counted
/// as a failure then.
pub(super) fn overdue(state: &mut SeriesState, now: i64) -> Vec<i64> {
    state
        .overdue_legs
        .retain(|l| l.at >= now.saturating_sub(FORGET_LEG_SECS));
    let is_due = |l: &OpenLeg| overdue_at(l).is_some_and(|at| at <= now);
    let room = MAX_OVERDUE_LEGS.saturating_sub(state.overdue_legs.len());
    if room == 0 || !state.open_legs.iter().any(is_due) {
        return Vec::new();
    }
    let mut due: Vec<(i64, String)> = state
        .open_legs
        .iter()
        .filter(|l| is_due(l))
        .map(|l| (overdue_at(l).expect("due"), l.id.clone()))
        .collect();
    due.sort_unstable();
    due.truncate(room);
    state
        .open_legs
        .retain(|l| !due.iter().any(|(_, id)| *id == l.id));
    state
        .overdue_legs
        .extend(due.iter().map(|(at, id)| OverdueLeg {
            id: id.clone(),
            at: *at,
        }));
    due.into_iter().map(|(at, _)| at).collect()
}

/// A leg's reported outcome: if the leg was counted when it became overdue,
/// it is settled here — forgotten among the overdue legs, and its failure
/// taken back if it did not fail after all (its report came late), while
/// that hour is still in the window — and `true` says the outcome is not to
/// be counted again.
pub(super) fn reported_outcome(state: &mut SeriesState, leg: &str, failed: bool) -> bool {
    let Some(i) = state.overdue_legs.iter().position(|l| l.id == leg) else {
        return false;
    };
    let counted = state.overdue_legs.remove(i);
    if state.finished_legs.len() >= MAX_OPEN_LEGS {
        state.finished_legs.remove(0);
    }
    state.finished_legs.push(counted.id);
    if !failed {
        let hour = counted.at.div_euclid(HOUR);
        if let Some(cell) = state.cells.iter_mut().find(|c| c.0 == hour) {
            cell.1 = cell.1.saturating_sub(1);
        }
    }
    true
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
