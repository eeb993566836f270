//! Whether a labelled disruption shows in the data at all, judged by an
//! oracle that knows its window and entities exactly. A labour shortfall at
//! a site with slack builds no queue; a carrier failing into a region for
//! three hours may finish two legs there: no detector can be asked to find
//! what the events do not show, so recall is also reported over the windows
//! that do.
//!
//! - Legs (area or carrier-region disruptions): the legs it touched (due
//!   during it) failed more often than the same legs' share over the four
//!   weeks before, at a binomial tail probability ≤ 0.001.
//! - Queues (labour shortfalls): the site's backlog rose during it (or the
//!   three hours after) above the 95th percentile of its week before.
//! - Output drops: the site picked under 80 % of its usual units per
//!   labour-hour in the week before, over the snapshots during it taken
//!   while work waited (at least two).
//! - Demand spikes: the site received at least 25 % more orders during it
//!   than in the same hours a week before.
//!
//! [`Evidence::shows_by`] asks the same of what is known by a time (the
//! first two hours, say): a leg's outcome is known when it arrives, when it
//! is cancelled, or — late — once it is overdue a grace after it was due
//! (as the monitor counts it); a snapshot or an order when it is taken.
//! It is what this oracle's test sees that soon — a yardstick for a
//! detector that does not know when a disruption starts, not a proof.

use std::collections::HashMap;

use detour::anomaly::Direction;
use detour::anomaly::tail::binomial;
use detour::domain::Shipment;
use detour::features::FeatureSettings;

use super::truth::Window;
use crate::replay::History;

const HOUR: i64 = 3_600;
const WEEK: i64 = 7 * 24 * HOUR;

/// The history indexed for the oracle.
pub struct Evidence<'a> {
    /// Per site: (time, backlog, units per labour-hour) of each snapshot.
    snapshots: HashMap<&'a str, Vec<(i64, f64, f64)>>,
    /// Per site: creation times of its orders, sorted.
    orders: HashMap<&'a str, Vec<i64>>,
    /// Every finished leg: (departure, arrival, failed, when that was known).
    legs: Vec<(&'a Shipment, i64, i64, bool, i64)>,
}

impl<'a> Evidence<'a> {
    /// Indexes `history`.
    pub fn index(history: &'a History) -> Self {
        let mut snapshots: HashMap<&str, Vec<(i64, f64, f64)>> = HashMap::new();
        for s in &history.snapshots {
            let per_labour_hour = if s.labour > 0.0 && s.backlog > 0.0 {
                s.units_picked / (s.period_minutes / 60.0) / s.labour
            } else {
                f64::NAN
            };
            snapshots.entry(s.site.as_str()).or_default().push((
                s.at.0 / 1000,
                s.backlog,
                per_labour_hour,
            ));
        }
        let mut orders: HashMap<&str, Vec<i64>> = HashMap::new();
        for o in &history.orders {
            orders
                .entry(o.site.as_str())
                .or_default()
                .push(o.created_at.0 / 1000);
        }
        for times in orders.values_mut() {
            times.sort_unstable();
        }
        let grace = FeatureSettings::default().sla_grace_minutes;
        let legs = history
            .shipments
            .iter()
            .filter_map(|s| {
                let outcome = s.outcome(grace)?;
                let arrival = s.scheduled_arrival.0 / 1000;
                let mut known = outcome.known_at.0 / 1000;
                if outcome.failed && s.actual_arrival.is_some() {
                    // Late: known once overdue.
                    known = known.min(arrival + (grace * 60.0) as i64);
                }
                Some((
                    s,
                    s.scheduled_departure.0 / 1000,
                    arrival,
                    outcome.failed,
                    known,
                ))
            })
            .collect();
        Evidence {
            snapshots,
            orders,
            legs,
        }
    }

    /// Whether `window`'s effect shows in the data.
    pub fn shows(&self, window: &Window) -> bool {
        self.shows_by(window, i64::MAX)
    }

    /// Whether `window`'s effect shows in what is known by `by` (Unix s).
    pub fn shows_by(&self, window: &Window, by: i64) -> bool {
        match window.kind.as_str() {
            "area_disruption" => self.legs_fail(window, by, |s| {
                window
                    .locations
                    .iter()
                    .any(|l| *l == s.origin || *l == s.destination)
            }),
            "carrier_region_disruption" => self.legs_fail(window, by, |s| {
                s.carrier == window.carrier && s.destination == window.region
            }),
            "labour_shortfall" => self.queue_rose(window, by),
            "throughput_drop" => self.output_dropped(window, by),
            "demand_spike" => self.demand_rose(window, by),
            _ => false,
        }
    }

    fn legs_fail(&self, window: &Window, by: i64, touched: impl Fn(&Shipment) -> bool) -> bool {
        let (mut k, mut n, mut past_k, mut past_n) = (0u64, 0u64, 0u64, 0u64);
        for (s, departure, arrival, failed, known) in &self.legs {
            if !touched(s) {
                continue;
            }
            if *departure <= window.end && *arrival >= window.start {
                if *known > by {
                    continue;
                }
                n += 1;
                k += u64::from(*failed);
            } else if *arrival < window.start && *arrival >= window.start - 4 * WEEK {
                past_n += 1;
                past_k += u64::from(*failed);
            }
        }
        let rate = (past_k as f64 + 0.5) / (past_n as f64 + 1.0);
        n > 0 && binomial(k, n, rate, Direction::Up) <= 0.001
    }

    fn queue_rose(&self, window: &Window, by: i64) -> bool {
        let Some(snapshots) = self.snapshots.get(window.site.as_str()) else {
            return false;
        };
        let mut before: Vec<f64> = snapshots
            .iter()
            .filter(|s| s.0 < window.start && s.0 >= window.start - WEEK)
            .map(|s| s.1)
            .collect();
        if before.is_empty() {
            return false;
        }
        before.sort_by(f64::total_cmp);
        let p95 = before[(before.len() * 95 / 100).min(before.len() - 1)];
        snapshots
            .iter()
            .filter(|s| s.0 >= window.start && s.0 <= (window.end + 3 * HOUR).min(by))
            .any(|s| s.1 > p95 && s.1 > 0.0)
    }

    fn output_dropped(&self, window: &Window, by: i64) -> bool {
        let Some(snapshots) = self.snapshots.get(window.site.as_str()) else {
            return false;
        };
        let mean = |from: i64, to: i64| {
            let values: Vec<f64> = snapshots
                .iter()
                .filter(|s| s.0 >= from && s.0 <= to && s.2.is_finite())
                .map(|s| s.2)
                .collect();
            (
                values.len(),
                values.iter().sum::<f64>() / values.len().max(1) as f64,
            )
        };
        let (n, during) = mean(window.start, (window.end + HOUR).min(by));
        let (m, usual) = mean(window.start - WEEK, window.start - 1);
        n >= 2 && m > 0 && during < 0.8 * usual
    }

    fn demand_rose(&self, window: &Window, by: i64) -> bool {
        let Some(times) = self.orders.get(window.site.as_str()) else {
            return false;
        };
        let count = |from: i64, to: i64| {
            times.partition_point(|&t| t < to) - times.partition_point(|&t| t < from)
        };
        let end = window.end.min(by);
        let during = count(window.start, end);
        let before = count(window.start - WEEK, end - WEEK);
        before > 0 && during as f64 >= 1.25 * before as f64
    }
}
