//! Site series: orders counted per hour and tested over 1, 3 and 6 hours;
//! backlog and output per labour-hour judged against the hour of the week.

use super::*;

/// Empty hours a count series fills in at most when its next point comes
/// (a week; a longer silence is a gap, not a week of zeros).
pub(super) const MAX_FILLED_HOURS: i64 = 168;

/// Hours a count series' windows span: each point is tested over the last
/// 1, 3 and 6 hours (a strong surge shows within the hour, a mild one only
/// over several), with the smallest p-value taken times the windows tried.
pub(super) const COUNT_WINDOWS: [usize; 3] = [1, 3, 6];

/// Busy points a throughput series' window averages.
pub(super) const THROUGHPUT_WINDOW: usize = 3;

/// A count series' point: it joins its hour; closing an hour learns it (and
/// any empty hours before this one) and judges it whole. The open hour is
/// judged as it fills only to raise an alarm (a partial count above the
/// usual is evidence; below it, not yet). Each judgement tests the last 1,
/// 3 and 6 hours ([`COUNT_WINDOWS`]).
pub(super) fn count_point(
    state: &mut SeriesState,
    buckets: &mut LoadedBuckets,
    point: &Point,
) -> Vec<(i64, Verdict)> {
    let settings = DetectorSettings {
        direction: Direction::Up,
        ..DetectorSettings::default()
    };
    let hour = point.at.div_euclid(HOUR);
    let mut out = Vec::new();
    let open = state.cells.first().copied();
    match open {
        Some((open_hour, _, _)) if hour < open_hour => return out, // a late point of a closed hour
        Some((open_hour, _, count)) if hour > open_hour => {
            let at = open_hour * HOUR;
            let verdict = count_window(state, buckets, at, count as f64, &settings);
            close_hour(state, buckets, at, count as f64, &settings);
            out.push((at + HOUR - 1, verdict));
            for empty in (open_hour + 1..hour).take(MAX_FILLED_HOURS as usize) {
                close_hour(state, buckets, empty * HOUR, 0.0, &settings);
            }
            state.cells = vec![(hour, 0, 0)];
        }
        Some(_) => {}
        None => state.cells = vec![(hour, 0, 0)],
    }
    state.cells[0].2 += 1;
    let count = state.cells[0].2;
    let verdict = count_window(state, buckets, hour * HOUR, count as f64, &settings);
    if verdict.score >= EpisodeRules::default().calm {
        out.push((point.at, verdict));
    }
    out
}

/// Learns a closed hour's count and keeps it, with what was expected of
/// it, among the recent hours.
pub(super) fn close_hour(
    state: &mut SeriesState,
    buckets: &mut LoadedBuckets,
    at: i64,
    count: f64,
    settings: &DetectorSettings,
) {
    let (mean, variance) = series::expected(buckets, at);
    let scored = series::score(buckets, &state.meta, at, count, settings);
    series::learn(buckets, &mut state.meta, at, count, &scored);
    state.recent.push(Recent {
        at,
        value: count,
        mean,
        spread: variance.max(mean),
    });
    let keep = COUNT_WINDOWS[COUNT_WINDOWS.len() - 1] - 1;
    if state.recent.len() > keep {
        state.recent.drain(..state.recent.len() - keep);
    }
}

/// The hour starting at `at` holding `count` (so far), tested over each
/// window of [`COUNT_WINDOWS`] that ends with it.
pub(super) fn count_window(
    state: &SeriesState,
    buckets: &LoadedBuckets,
    at: i64,
    count: f64,
    settings: &DetectorSettings,
) -> Verdict {
    let (mean, variance) = series::expected(buckets, at);
    let warming_up = state.meta.seen < settings.min_history;
    // (p, hours, count, expected) of the most surprising window.
    let mut best = (1.0f64, 1usize, count, mean);
    let mut tried = 0;
    for hours in COUNT_WINDOWS {
        // The hours before this one, consecutive and just closed.
        let before: Vec<&Recent> = state
            .recent
            .iter()
            .rev()
            .take(hours - 1)
            .take_while(|r| r.at >= at - (hours as i64 - 1) * HOUR)
            .collect();
        if before.len() + 1 < hours {
            continue;
        }
        tried += 1;
        let total = count + before.iter().map(|r| r.value).sum::<f64>();
        let expected = mean + before.iter().map(|r| r.mean).sum::<f64>();
        let spread = variance.max(mean) + before.iter().map(|r| r.spread).sum::<f64>();
        let p = crate::anomaly::tail::negative_binomial(
            total.round() as u64,
            expected,
            spread,
            Direction::Up,
        );
        if p < best.0 {
            best = (p, hours, total, expected);
        }
    }
    let (p, hours, total, expected) = best;
    let score = if warming_up {
        0.0
    } else {
        (1.0 - p * f64::from(tried.max(1))).clamp(0.0, 1.0)
    };
    let severity = if score < 0.99 {
        Severity::Low
    } else if total >= 2.0 * expected.max(1.0) {
        Severity::High
    } else {
        Severity::Medium
    };
    Verdict {
        score,
        severity,
        words: Words::Intake {
            orders: total,
            expected,
            hours,
            start: at - (hours as i64 - 1) * HOUR,
        },
    }
}

/// A gauge series' point: judged against its hour of the week, then
/// learned. A backlog by its level (its growth over the last
/// [`GROWTH_HOURS`] is evidence in words); throughput by the point and by
/// the mean of the last [`THROUGHPUT_WINDOW`] points' residuals.
pub(super) fn gauge_point(
    series: &SeriesId,
    state: &mut SeriesState,
    buckets: &mut LoadedBuckets,
    point: &Point,
    direction: Direction,
    limits: &impl SiteLimits,
) -> Option<(i64, Verdict)> {
    let PointValue::Gauge(value) = point.value else {
        return None;
    };
    let settings = DetectorSettings {
        direction,
        ..DetectorSettings::default()
    };
    match series {
        SeriesId::SiteBacklog(site) => {
            // A queue's length is a count, but not one a Poisson or negative
            // binomial describes (it carries over from hour to hour): it is
            // judged as a level, with Student's t.
            state.meta.counts = false;
            let scored = series::score(buckets, &state.meta, point.at, value, &settings);
            series::learn(buckets, &mut state.meta, point.at, value, &scored);
            state
                .recent
                .retain(|r| r.at >= point.at - GROWTH_HOURS * HOUR && r.at < point.at);
            let growth = state.recent.first().map(|r| value - r.value);
            state.recent.push(Recent {
                at: point.at,
                value,
                ..Recent::default()
            });
            let limit = limits.backlog_limit(site);
            let share = limit.map(|l| value / l);
            let severity = match share {
                _ if scored.score < 0.99 => Severity::Low,
                Some(s) if s >= 1.0 => Severity::Critical,
                Some(s) if s >= 0.8 => Severity::High,
                _ => Severity::Medium,
            };
            Some((
                point.at,
                Verdict {
                    score: scored.score,
                    severity,
                    words: Words::Backlog {
                        backlog: value,
                        expected: scored.expected,
                        spread: scored.spread,
                        growth,
                        limit,
                        at: point.at,
                    },
                },
            ))
        }
        SeriesId::SiteThroughput(_) => {
            let single = series::score(buckets, &state.meta, point.at, value, &settings);
            series::learn(buckets, &mut state.meta, point.at, value, &single);
            if single.warming_up {
                return None;
            }
            state.recent.push(Recent {
                at: point.at,
                value,
                mean: single.expected,
                spread: single.spread,
            });
            if state.recent.len() > THROUGHPUT_WINDOW {
                state.recent.remove(0);
            }
            let residuals: Vec<f64> = state
                .recent
                .iter()
                .filter(|r| r.at >= point.at - 2 * THROUGHPUT_WINDOW as i64 * HOUR)
                .map(|r| (r.value - r.mean) / r.spread.max(1e-9))
                .collect();
            let window_p = if residuals.len() == THROUGHPUT_WINDOW {
                let mean = residuals.iter().sum::<f64>() / residuals.len() as f64;
                crate::anomaly::tail::student_t(
                    mean * (residuals.len() as f64).sqrt(),
                    10.0,
                    Direction::Down,
                )
            } else {
                1.0
            };
            let score = (1.0 - 2.0 * (1.0 - single.score).min(window_p)).clamp(0.0, 1.0);
            let recent_mean =
                state.recent.iter().map(|r| r.value).sum::<f64>() / state.recent.len() as f64;
            let ratio = recent_mean / single.expected.max(1e-9);
            let severity = if score < 0.99 {
                Severity::Low
            } else if ratio <= 0.5 {
                Severity::High
            } else {
                Severity::Medium
            };
            Some((
                point.at,
                Verdict {
                    score,
                    severity,
                    words: Words::Throughput {
                        value,
                        recent_mean,
                        points: state.recent.len(),
                        expected: single.expected,
                        spread: single.spread,
                        at: point.at,
                    },
                },
            ))
        }
        _ => None,
    }
}
