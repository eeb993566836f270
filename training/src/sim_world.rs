//! The simulator's hidden state and the true probabilities it implies: each
//! carrier-lane's drifting reliability, regional disruptions, carrier load, site
//! stock health and capacity. The simulation draws outcomes from these; the truth
//! files (`truth_*.csv`) report them, including for choices not taken — the
//! counterfactuals that `evaluate-recommendations` scores policies against.

use std::collections::BTreeMap;

use detour::domain::Timestamp;

use crate::network_gen::SimNetwork;

/// Hours from creation an order is promised in, by priority.
pub const STANDARD_PROMISE_HOURS: f64 = 72.0;
pub const EXPRESS_PROMISE_HOURS: f64 = 40.0;
/// Pickup slots, hours of the day (UTC).
pub const PICKUP_HOURS: [i64; 4] = [2, 8, 14, 20];
/// Mean minutes late of a failed, not cancelled shipment beyond the first 15.
pub const MEAN_FAILURE_DELAY_MINUTES: f64 = 600.0;
const HOUR_MS: i64 = 3_600_000;

/// A disruption window in one area.
#[derive(Debug, Clone)]
pub struct Disruption {
    pub area: &'static str,
    pub start: Timestamp,
    pub end: Timestamp,
    pub severity: f64,
}

/// One carrier failing into one region (injected for evaluating anomaly
/// detection).
#[derive(Debug, Clone)]
pub struct CarrierDisruption {
    pub carrier: usize,
    pub region: usize,
    pub start: Timestamp,
    pub end: Timestamp,
    pub severity: f64,
}

/// What an order needs to be placed anywhere.
#[derive(Debug, Clone, Copy)]
pub struct OrderShape {
    pub created: Timestamp,
    pub region: usize,
    pub lines: u32,
    pub express: bool,
}

impl OrderShape {
    /// The customer's promise: a fixed number of hours from creation, whatever
    /// site fulfils the order.
    pub fn promise(&self) -> Timestamp {
        let hours = if self.express {
            EXPRESS_PROMISE_HOURS
        } else {
            STANDARD_PROMISE_HOURS
        };
        self.created.plus_minutes(hours * 60.0)
    }
}

/// The state behind every outcome.
pub struct World<'a> {
    pub sim: &'a SimNetwork,
    pub disruptions: &'a [Disruption],
    /// Injected disruptions of one carrier into one region.
    pub carrier_disruptions: &'a [CarrierDisruption],
    /// Failure log-odds of each served (carrier, site, region) lane today.
    pub lane_state: BTreeMap<(usize, usize, usize), f64>,
    /// Shipments per carrier in each of the last 24 hours, and its two-week norm.
    pub load: Vec<[f64; 24]>,
    pub load_norm: Vec<f64>,
    /// Stock health per site, 0..=1.
    pub stock: Vec<f64>,
    /// Orders per hour each site picked in its latest hour.
    pub capacity: Vec<f64>,
}

impl World<'_> {
    /// (carrier, rate, transit hours) of every carrier serving site → region.
    pub fn lane_options(&self, site: usize, region: usize) -> Vec<(usize, f64, f64)> {
        let site_code = &self.sim.network.sites[site].code;
        let region_code = &self.sim.network.regions[region].code;
        self.sim
            .network
            .carriers
            .iter()
            .enumerate()
            .filter_map(|(c, carrier)| {
                carrier
                    .lanes
                    .iter()
                    .find(|l| &l.origin == site_code && &l.destination == region_code)
                    .map(|l| (c, l.rate, l.transit_hours))
            })
            .collect()
    }

    /// True probability that `carrier` fails a leg site → region leaving at
    /// `departure` and due at `arrival`.
    pub fn failure_probability(
        &self,
        carrier: usize,
        site: usize,
        region: usize,
        departure: Timestamp,
        arrival: Timestamp,
    ) -> f64 {
        let mut logit = self.lane_state[&(carrier, site, region)];
        for d in self.disruptions {
            let overlaps = d.start <= arrival && departure <= d.end;
            if overlaps
                && (d.area == self.sim.site_area[site] || d.area == self.sim.region_area[region])
            {
                logit += d.severity;
            }
        }
        for d in self.carrier_disruptions {
            if d.carrier == carrier
                && d.region == region
                && d.start <= arrival
                && departure <= d.end
            {
                logit += d.severity;
            }
        }
        let recent: f64 = self.load[carrier].iter().sum();
        if self.load_norm[carrier] > 0.0 {
            logit += 1.5 * (recent / self.load_norm[carrier] - 1.1).max(0.0);
        }
        if departure.weekday_utc() >= 5 {
            logit += 0.25;
        }
        if departure.hour_of_day_utc() < 5.0 {
            logit += 0.2;
        }
        1.0 / (1.0 + (-logit).exp())
    }

    /// Severity of the disruptions active at `site`'s area at `at` (0 when none).
    pub fn origin_disruption(&self, site: usize, at: Timestamp) -> f64 {
        self.disruptions
            .iter()
            .filter(|d| d.start <= at && at <= d.end && d.area == self.sim.site_area[site])
            .map(|d| d.severity)
            .sum()
    }

    /// Probability that an order of `lines` lines is backordered at `site`.
    pub fn backorder_probability(&self, site: usize, lines: u32) -> f64 {
        let per_line = 0.004 + 0.06 * (1.0 - self.stock[site]).powi(3);
        1.0 - (1.0 - per_line).powi(lines as i32)
    }

    /// Probability that a shipment leaving at `departure` with `p_fail` arrives
    /// after `promise` (a cancelled leg is re-sent two days later).
    pub fn late_probability(arrival: Timestamp, promise: Timestamp, p_fail: f64) -> f64 {
        let slack_minutes = (promise.0 - arrival.0) as f64 / 60_000.0;
        if slack_minutes < -90.0 {
            return 1.0;
        }
        let on_time_late = if slack_minutes < 15.0 {
            // Non-failing arrivals are uniform in [-90, +15] minutes.
            ((15.0 - slack_minutes) / 105.0).clamp(0.0, 1.0)
        } else {
            0.0
        };
        let failed_late = if slack_minutes <= 15.0 {
            1.0
        } else {
            (-(slack_minutes - 15.0) / MEAN_FAILURE_DELAY_MINUTES).exp()
        };
        p_fail * failed_late + (1.0 - p_fail) * on_time_late
    }

    /// True fallout probability and cost if the order were fulfilled from `site`
    /// now, with `queued` orders ahead of it, shipped with the lane's cheapest
    /// carrier. Returns (probability, transport + handling cost).
    pub fn fallout_at(&self, site: usize, order: &OrderShape, queued: usize) -> Option<(f64, f64)> {
        let options = self.lane_options(site, order.region);
        let &(carrier, rate, transit) = options.iter().min_by(|a, b| a.1.total_cmp(&b.1))?;
        let wait_hours = queued as f64 / self.capacity[site].max(1.0);
        let ready = order.created.plus_minutes(wait_hours * 60.0);
        let departure = next_pickup(ready.plus_minutes(30.0));
        let arrival = departure.plus_minutes(transit * 60.0);
        let p_fail = self.failure_probability(carrier, site, order.region, departure, arrival);
        let p_cancel: f64 = if wait_hours > 36.0 { 0.6 } else { 0.003 };
        let p_backorder = self.backorder_probability(site, order.lines);
        let p_late = Self::late_probability(arrival, order.promise(), p_fail);
        let p = 1.0 - (1.0 - p_cancel) * (1.0 - p_backorder) * (1.0 - p_late);
        Some((p, rate + self.sim.network.sites[site].handling_cost))
    }
}

/// The first pickup slot at or after `after`.
pub fn next_pickup(after: Timestamp) -> Timestamp {
    let day_start = after.0 - after.0.rem_euclid(24 * HOUR_MS);
    for day in 0..2 {
        for h in PICKUP_HOURS {
            let slot = Timestamp(day_start + day * 24 * HOUR_MS + h * HOUR_MS);
            if slot >= after {
                return slot;
            }
        }
    }
    unreachable!("a pickup slot is always within two days")
}
