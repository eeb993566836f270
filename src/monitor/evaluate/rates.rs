//! Rate series: a leg's outcome joins a window of hours, and the window is
//! tested against the series' own past (binomial), over 3, 12 and 24 hours.

use super::*;

/// Hours a rate series keeps out of its past: its failures are tested over
/// the last 3, 12 and 24 of them ([`RATE_WINDOWS`]).
pub(super) const WINDOW_HOURS: i64 = 24;

/// The windows a rate series is tested over, in hours: a sharp disruption
/// shows within a few hours, a milder or sparser one only over a day (legs
/// finish hours after a disruption touches them). The smallest p-value is
/// taken times the windows tried.
pub(super) const RATE_WINDOWS: [i64; 3] = [3, 12, 24];

/// A rate series' point: its outcome joins the window, the window is tested.
pub(super) fn rate_point(state: &mut SeriesState, point: &Point) -> Option<(i64, Verdict)> {
    let settings = RateSettings::default();
    let PointValue::Outcome { failed, .. } = point.value else {
        return None;
    };
    let hour = point.at.div_euclid(HOUR);
    let newest = slide_window(state, hour);
    if hour <= newest - WINDOW_HOURS {
        // Too old for the window: it only teaches the past.
        state
            .rate
            .learn((hour + 1) * HOUR, u64::from(failed), 1, &settings);
        return None;
    }
    match state.cells.iter_mut().find(|c| c.0 == hour) {
        Some(cell) => {
            cell.1 += u64::from(failed);
            cell.2 += 1;
        }
        None => {
            state.cells.push((hour, u64::from(failed), 1));
            state.cells.sort_by_key(|c| c.0);
        }
    }
    Some((point.at, window_verdict(state, newest)))
}

/// Moves a rate series' window to end at the later of its newest hour and
/// `hour`: hours that leave it join the past. Returns its newest hour.
pub(super) fn slide_window(state: &mut SeriesState, hour: i64) -> i64 {
    let settings = RateSettings::default();
    let newest = state.cells.last().map_or(hour, |c| c.0).max(hour);
    while let Some(&(h, k, n)) = state.cells.first() {
        if h > newest - WINDOW_HOURS {
            break;
        }
        state.rate.learn((h + 1) * HOUR, k, n, &settings);
        state.cells.remove(0);
    }
    newest
}

/// A rate series' window, ending with hour `newest`, tested.
pub(super) fn window_verdict(state: &SeriesState, newest: i64) -> Verdict {
    let settings = RateSettings::default();
    // The most surprising window ending with the newest hour.
    let mut best: Option<(crate::anomaly::RateScored, u64, u64, i64)> = None;
    for hours in RATE_WINDOWS {
        let (k, n) = state
            .cells
            .iter()
            .filter(|c| c.0 > newest - hours)
            .fold((0, 0), |(k, n), c| (k + c.1, n + c.2));
        let scored = if plainly_ordinary(k, n, state.rate.baseline()) {
            // Not worth an incomplete beta: its score cannot reach the
            // episodes' thresholds.
            crate::anomaly::RateScored {
                score: 0.0,
                baseline: state.rate.baseline(),
                warming_up: false,
            }
        } else {
            state.rate.score(k, n, &settings)
        };
        if best.is_none_or(|b| scored.score > b.0.score) {
            best = Some((scored, k, n, hours));
        }
    }
    let (mut scored, k, n, hours) = best.expect("windows are tried");
    scored.score = (1.0 - (1.0 - scored.score) * RATE_WINDOWS.len() as f64).max(0.0);
    let share = k as f64 / n.max(1) as f64;
    let severity = if scored.score < 0.99 {
        Severity::Low
    } else if share >= 0.5 && k >= 5 {
        Severity::Critical
    } else if share >= 3.0 * scored.baseline && k >= 5 {
        Severity::High
    } else {
        Severity::Medium
    };
    Verdict {
        score: scored.score,
        severity,
        words: Words::Rate {
            failed: k,
            finished: n,
            hours,
            since: (newest + 1 - hours) * HOUR,
            baseline: scored.baseline,
            past_legs: state.rate.trials(),
        },
    }
}

/// Whether `k` failures of `n` at a past rate `rate` are less than one
/// standard deviation above what it predicts: their binomial tail is then
/// far above anything the episodes act on (a right-skewed binomial's upper
/// tail is heavier than the normal's, so this only errs towards computing).
pub(super) fn plainly_ordinary(k: u64, n: u64, rate: f64) -> bool {
    let (k, n) = (k as f64, n as f64);
    k - n * rate < (n * rate * (1.0 - rate)).sqrt()
}
