//! What the simulator draws up front and the fixed profiles it follows: demand
//! by hour and weekday, shifts, demand spikes and labour shortfalls (random
//! windows per site, each with its factor) and regional disruptions.

use detour::domain::Timestamp;
use rand::Rng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Exp};

use crate::network_gen::SimNetwork;
use crate::sim_world::{CarrierDisruption, Disruption};

/// Demand by hour of day (UTC), peaking early afternoon.
pub(super) fn daily_profile(hour: f64) -> f64 {
    0.45 + 1.25 * (-((hour - 14.0) / 4.5).powi(2)).exp()
}

/// Demand by weekday (0 = Monday): weekends lighter.
pub(super) fn weekly_profile(weekday: u32) -> f64 {
    match weekday {
        5 => 0.75,
        6 => 0.6,
        _ => 1.1,
    }
}

/// Share of peak labour on shift at an hour: day, evening and night shifts.
pub(super) fn shift_share(hour: f64) -> f64 {
    match hour as u32 {
        6..=13 => 1.0,
        14..=21 => 0.9,
        _ => 0.45,
    }
}

/// Random windows per entity (site), each carrying its index into `factors`:
/// demand spikes, labour shortfalls.
pub(super) struct Episodes {
    pub(super) windows: Vec<Vec<(Timestamp, Timestamp, usize)>>,
    pub(super) factors: Vec<f64>,
}

impl Episodes {
    /// The factor of the window of `entity` active at `at`, 1 if none.
    pub(super) fn factor(&self, entity: usize, at: Timestamp) -> f64 {
        self.windows[entity]
            .iter()
            .find(|(from, to, _)| *from <= at && at < *to)
            .map_or(1.0, |(_, _, i)| self.factors[*i])
    }
}

/// Random windows per entity: Poisson starts every `mean_gap_days`, durations
/// uniform in `hours`. Each window carries its index into a factor list.
pub(super) fn draw_windows(
    rng: &mut StdRng,
    entities: usize,
    start: Timestamp,
    end: Timestamp,
    mean_gap_days: f64,
    hours: (f64, f64),
) -> Vec<Vec<(Timestamp, Timestamp, usize)>> {
    let gap = Exp::new(1.0 / (mean_gap_days * 24.0)).expect("valid");
    let mut index = 0;
    (0..entities)
        .map(|_| {
            let mut windows = Vec::new();
            let mut at = start.plus_minutes(gap.sample(rng) * 60.0);
            while at < end {
                let until = at.plus_minutes(rng.gen_range(hours.0..hours.1) * 60.0);
                windows.push((at, until, index));
                index += 1;
                at = until.plus_minutes(gap.sample(rng) * 60.0);
            }
            windows
        })
        .collect()
}

/// Disruptions per area: about one every two weeks, 4 h–4 days, severity
/// +0.8–2.2 on the failure log-odds.
pub(super) fn draw_disruptions(
    rng: &mut StdRng,
    sim: &SimNetwork,
    start: Timestamp,
    end: Timestamp,
) -> Vec<Disruption> {
    let mut areas: Vec<&'static str> = sim
        .site_area
        .iter()
        .chain(&sim.region_area)
        .copied()
        .collect();
    areas.sort_unstable();
    areas.dedup();
    let gap = Exp::new(1.0 / (14.0 * 24.0)).expect("valid");
    let duration = rand_distr::LogNormal::new((20.0f64).ln(), 0.8).expect("valid");
    let mut out = Vec::new();
    for area in areas {
        let mut at = start.plus_minutes(gap.sample(rng) * 60.0);
        while at < end {
            let hours: f64 = duration.sample(rng);
            let until = at.plus_minutes(hours.clamp(4.0, 96.0) * 60.0);
            out.push(Disruption {
                area,
                start: at,
                end: until,
                severity: rng.gen_range(0.8..2.2),
            });
            at = until.plus_minutes(gap.sample(rng) * 60.0);
        }
    }
    out
}

/// Disruptions injected for evaluating anomaly detection.
#[derive(Debug, Default)]
pub(crate) struct Injected {
    /// One carrier failing into one region.
    pub(crate) carriers: Vec<CarrierDisruption>,
    /// Output drops per site (labour unchanged), with their factors.
    pub(crate) outages: Vec<Vec<(Timestamp, Timestamp, usize)>>,
    pub(crate) outage_factors: Vec<f64>,
}

impl Injected {
    /// Draws them for the period from `rng` (a stream of their own).
    pub(crate) fn draw(
        rng: &mut StdRng,
        sim: &SimNetwork,
        start: Timestamp,
        end: Timestamp,
    ) -> Self {
        let sites = sim.network.sites.len();
        let outages = draw_windows(rng, sites, start, end, 10.0, (3.0, 8.0));
        let outage_factors = outages
            .iter()
            .flatten()
            .map(|_| rng.gen_range(0.35..0.6))
            .collect();
        let regions = sim.network.regions.len();
        let gap = Exp::new(1.0 / (10.0 * 24.0)).expect("valid");
        let mut carriers = Vec::new();
        for carrier in 0..sim.network.carriers.len() {
            let mut at = start.plus_minutes(gap.sample(rng) * 60.0);
            while at < end {
                let until = at.plus_minutes(rng.gen_range(3.0..24.0) * 60.0);
                carriers.push(CarrierDisruption {
                    carrier,
                    region: rng.gen_range(0..regions),
                    start: at,
                    end: until,
                    severity: rng.gen_range(1.5..3.0),
                });
                at = until.plus_minutes(gap.sample(rng) * 60.0);
            }
        }
        Injected {
            carriers,
            outages,
            outage_factors,
        }
    }
}
