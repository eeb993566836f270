//! An alert's words: the figures a point was judged on, and the summary,
//! evidence and suggested action built from them — only for the points that
//! change an alert (most points change none, and words cost allocations).

use super::series::SeriesId;
use crate::anomaly::Evidence;

/// Hours over which a backlog's growth is reported.
pub(super) const GROWTH_HOURS: i64 = 3;

/// The figures one point was judged on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Words {
    /// A rate series' most surprising window.
    Rate {
        failed: u64,
        finished: u64,
        hours: i64,
        /// The window's start, Unix s.
        since: i64,
        baseline: f64,
        /// Outcomes the past holds (time-decayed).
        past_legs: f64,
    },
    /// A count series' most surprising window.
    Intake {
        orders: f64,
        expected: f64,
        hours: usize,
        start: i64,
    },
    /// A backlog.
    Backlog {
        backlog: f64,
        expected: f64,
        spread: f64,
        growth: Option<f64>,
        limit: Option<f64>,
        at: i64,
    },
    /// No points came: the series' last one was at `last` (Unix s).
    Quiet { last: i64 },
    /// Output per labour-hour while work waits.
    Throughput {
        value: f64,
        recent_mean: f64,
        points: usize,
        expected: f64,
        spread: f64,
        at: i64,
    },
}

impl Words {
    /// The summary and the evidence, in words and figures from the data.
    pub(super) fn render(&self, series: &SeriesId) -> (String, Vec<Evidence>) {
        match *self {
            Words::Rate {
                failed: k,
                finished: n,
                hours,
                since,
                baseline,
                past_legs,
            } => {
                let against = format!("against {:.1} % over the past four weeks", 100.0 * baseline);
                let since = clock(since);
                let summary = match series {
                    SeriesId::CarrierRegion(carrier, region) => format!(
                        "{carrier} failed {k} of its {n} legs into {region} that finished since {since} UTC, {against}."
                    ),
                    SeriesId::Lane(origin, destination) => format!(
                        "Legs from {origin} to {destination} failed {k} of {n} over every carrier since {since} UTC, {against}."
                    ),
                    SeriesId::Inbound(destination) => format!(
                        "Legs into {destination} failed {k} of {n} over every carrier and origin since {since} UTC, {against}."
                    ),
                    SeriesId::Outbound(origin) => format!(
                        "Legs leaving {origin} left late {k} times of {n} since {since} UTC, {against}."
                    ),
                    _ => String::new(),
                };
                (
                    summary,
                    vec![
                        evidence("failed", k as f64),
                        evidence("finished", n as f64),
                        evidence("window_hours", hours as f64),
                        evidence("baseline_rate", baseline),
                        evidence("baseline_legs", past_legs),
                    ],
                )
            }
            Words::Intake {
                orders,
                expected,
                hours,
                start,
            } => {
                let site = match series {
                    SeriesId::SiteIntake(site) => site.as_str(),
                    _ => "",
                };
                let span = if hours == 1 {
                    format!("in the hour from {} UTC", clock(start))
                } else {
                    format!("in the {hours} hours from {} UTC", clock(start))
                };
                (
                    format!(
                        "{site} received {orders:.0} orders {span}, against {expected:.0} usual for {}.",
                        time_of_week(start)
                    ),
                    vec![
                        evidence("orders", orders),
                        evidence("expected", expected),
                        evidence("window_hours", hours as f64),
                    ],
                )
            }
            Words::Backlog {
                backlog,
                expected,
                spread,
                growth,
                limit,
                at,
            } => {
                let site = match series {
                    SeriesId::SiteBacklog(site) => site.as_str(),
                    _ => "",
                };
                let mut figures = vec![
                    evidence("backlog", backlog),
                    evidence("expected", expected),
                    evidence("spread", spread),
                ];
                let grew = match growth {
                    Some(g) => {
                        figures.push(evidence("growth_3h", g));
                        format!(", {g:+.0} in {GROWTH_HOURS} hours")
                    }
                    None => String::new(),
                };
                let of_limit = match limit {
                    Some(l) => {
                        figures.push(evidence("backlog_limit", l));
                        format!(" ({:.0} % of its limit of {l:.0})", 100.0 * backlog / l)
                    }
                    None => String::new(),
                };
                (
                    format!(
                        "{site} holds {backlog:.0} orders in its backlog{of_limit}{grew}, against {expected:.0} usual for {}: \
                         orders arrive faster than its labour clears them.",
                        time_of_week(at)
                    ),
                    figures,
                )
            }
            Words::Quiet { last } => (
                format!(
                    "{} has had no new points since {} UTC: ended for want of evidence.",
                    series.key(),
                    crate::domain::Timestamp(last.saturating_mul(1000)).to_rfc3339()
                ),
                Vec::new(),
            ),
            Words::Throughput {
                value,
                recent_mean,
                points,
                expected,
                spread,
                at,
            } => {
                let site = match series {
                    SeriesId::SiteThroughput(site) => site.as_str(),
                    _ => "",
                };
                let ratio = recent_mean / expected.max(1e-9);
                (
                    format!(
                        "{site} picks {value:.1} units per labour-hour while work waits ({recent_mean:.1} over its last \
                         {points} busy snapshots), {:.0} % below the {expected:.1} usual for {}, with its people on shift.",
                        100.0 * (1.0 - ratio).max(0.0),
                        time_of_week(at)
                    ),
                    vec![
                        evidence("value", value),
                        evidence("recent_mean", recent_mean),
                        evidence("expected", expected),
                        evidence("spread", spread),
                    ],
                )
            }
        }
    }
}

/// What to do, by kind, with the calls that do it.
pub(super) fn action(series: &SeriesId) -> String {
    match series {
        SeriesId::CarrierRegion(carrier, region) => format!(
            "Reroute {carrier}'s legs into {region} that have not left (RecommendReroute on each); \
             tender new legs into {region} to other carriers until this resolves."
        ),
        SeriesId::Lane(origin, destination) => format!(
            "Legs from {origin} to {destination} fail on every carrier: rerouting will not help; \
             move promise dates of orders on this lane (RecommendReroute offers a later promise)."
        ),
        SeriesId::Inbound(destination) => format!(
            "Legs into {destination} fail on every carrier: move promise dates of orders bound there \
             (RecommendReroute offers a later promise); hold what has not left."
        ),
        SeriesId::Outbound(origin) => format!(
            "Legs leave {origin} late on every carrier: expect late arrivals from it; \
             reallocate orders that can ship from elsewhere (RecommendReallocation)."
        ),
        SeriesId::SiteBacklog(site) => format!(
            "Reallocate {site}'s open orders that are not yet released (RecommendReallocation on each), \
             or add labour at {site}."
        ),
        SeriesId::SiteIntake(site) => format!(
            "Send new orders for {site}'s regions to other sites (RecommendReallocation) before its backlog builds."
        ),
        SeriesId::SiteThroughput(site) => format!(
            "Check {site}'s equipment and systems; reallocate its unreleased orders (RecommendReallocation) while output is down."
        ),
    }
}

fn evidence(name: &str, value: f64) -> Evidence {
    Evidence {
        name: name.to_string(),
        value,
    }
}

/// "09:00".
fn clock(at: i64) -> String {
    let secs = at.rem_euclid(86_400);
    format!("{:02}:{:02}", secs / 3600, secs % 3600 / 60)
}

/// "Monday 09:00".
pub(super) fn time_of_week(at: i64) -> String {
    const DAYS: [&str; 7] = [
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ];
    let weekday = (at.div_euclid(86_400) + 3).rem_euclid(7) as usize;
    format!("{} {:02}:00", DAYS[weekday], at.rem_euclid(86_400) / 3600)
}

pub(super) fn ordinal(n: u32) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}
