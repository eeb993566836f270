//! A seeded simulator of a fulfilment network, writing the CSV exports a
//! shipper would (README, "Your own history": `orders.csv`, `shipments.csv`,
//! `site_metrics.csv`, `network.toml`) plus the truth only a simulator knows:
//! `truth_shipments.csv` (each shipment's true failure probability),
//! `truth_reroutes.csv` (the same for every carrier that could have taken it)
//! and `truth_reallocations.csv` (each sampled order's true fallout
//! probability and cost from every site) — see [`crate::sim_world`].
//!
//! Mechanisms (hourly steps, all in UTC):
//! - **Demand** per site: Poisson arrivals at a base rate × a daily profile
//!   (peak early afternoon) × a weekly profile (weekends lighter) × demand spikes
//!   (about one per site every three weeks, 1–3 days, ×1.4–2.2).
//! - **Sites** pick orders first in, first out at labour × productivity per hour.
//!   Labour follows three shifts, with shortfalls (about one per site a month,
//!   1–2 days, 55–80 % of plan). The backlog is the queue left at the end of an
//!   hour; its limit in `network.toml` is three hours of peak capacity.
//! - **Stock**: each site's stock health drifts daily; backorders rise steeply as
//!   it falls. Customers cancel orders that waited over 36 h (60 %).
//! - **Carriers**: a shipment leaves at the next pickup slot (02, 08, 14, 20 h)
//!   with a carrier that serves the lane (the cheapest half the time). Its failure
//!   log-odds are its carrier-lane's drifting reliability + an active regional
//!   disruption at either end (about one per area every two weeks, 4 h–4 days,
//!   +0.8–2.2) + carrier overload (24 h volume above 110 % of its two-week norm),
//!   plus weekend and night departures. A failure is a cancellation (12 %) or a late
//!   arrival (15 min + exponential, mean 10 h). A leg leaves up to 20 min after
//!   its slot, later during a disruption at its origin (exponential, mean an
//!   hour per unit of severity) and, for a quarter of the legs that fail, later
//!   still (mean 45 min): departures show trouble before arrivals do.
//! - **Fallout**: an order is backordered, cancelled, or late when its shipment
//!   arrives after the promise — 72 h from creation (40 h for express orders),
//!   whichever site fulfils it, so far-away sites struggle to keep express
//!   promises; a cancelled shipment is re-sent 48 h later.
//!
//! - **Injected** (with `--inject-anomalies`, for evaluating detection): one
//!   carrier failing into one region (about one per carrier every ten days,
//!   3–24 h, +1.5–3 on its legs' log-odds there), and a site's output dropping
//!   to 35–60 % while its labour stays (about one per site every ten days,
//!   3–8 h). Every disruption's window, injected or not, is written to
//!   `truth_anomalies.csv`.
//!
//! Anything still unresolved at the end of the period is exported as open.
//!
//! This file runs the hours; beside it, `step` (the state and one step per
//! site-hour), `orders` (an order's life), `draws` (profiles and what is drawn
//! up front) and `write` (every file written).

mod draws;
mod orders;
mod step;
mod write;

use std::path::Path;

use detour::domain::Timestamp;
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::network_gen;
use draws::{Injected, draw_disruptions};
use step::Simulation;
use write::Writers;

/// Every how many orders (by id) the counterfactual truth files sample one.
pub const TRUTH_SAMPLE_EVERY: u64 = 5;

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimSettings {
    pub seed: u64,
    pub start: Timestamp,
    pub days: u32,
    pub orders_per_day: f64,
    /// Also inject the disruptions the shipped simulator does not have, for
    /// evaluating anomaly detection: one carrier failing into one region,
    /// and a site's output dropping while its labour does not (written to
    /// `truth_anomalies.csv` with the rest). Off, a seed gives the same
    /// history as before these existed.
    pub inject_anomalies: bool,
}

/// Counts of what was written.
#[derive(Debug, Clone, Default)]
pub struct SimSummary {
    pub orders: usize,
    pub shipments: usize,
    pub snapshots: usize,
    pub shipment_failure_rate: f64,
    pub order_fallout_rate: f64,
}

const HOUR_MS: i64 = 3_600_000;
/// Mixed into the seed for the stream injected disruptions are drawn from.
const INJECTED_STREAM: u64 = 0x00A4_0D15_C0DE;

/// Runs the simulation and writes the files into `out`.
pub fn run(settings: &SimSettings, out: &Path) -> anyhow::Result<SimSummary> {
    // One random stream for everything, drawn in a fixed order: the network,
    // the disruptions, the sites' spikes, shortfalls and stock, then the hours.
    let mut rng = StdRng::seed_from_u64(settings.seed);
    let sim = network_gen::generate(&mut rng, settings.orders_per_day);
    let mut files = Writers::create(out, &sim)?;
    let hours = i64::from(settings.days) * 24;
    let end = Timestamp(settings.start.0 + hours * HOUR_MS);
    let disruptions = draw_disruptions(&mut rng, &sim, settings.start, end);
    // Injected ones come from a stream of their own, so the main stream's
    // draws up to here are the same with or without them.
    let injected = if settings.inject_anomalies {
        let mut own = StdRng::seed_from_u64(settings.seed ^ INJECTED_STREAM);
        Injected::draw(&mut own, &sim, settings.start, end)
    } else {
        Injected::default()
    };
    let mut simulation = Simulation::new(rng, &sim, &disruptions, &injected, settings.start, end);
    for hour in 0..hours {
        let t0 = Timestamp(settings.start.0 + hour * HOUR_MS);
        simulation.hour(hour, t0, &mut files)?;
    }
    simulation.anomaly_truth(&mut files, &disruptions, &injected)?;
    let summary = simulation.finish(&mut files)?;
    files.finish()?;
    Ok(summary)
}

#[cfg(test)]
mod tests;
