//! The simulation's state between steps and the steps themselves: the start of
//! each hour (daily drift, carrier load window) and one step per site-hour
//! (orders arrive, labour picks, orders finish, a snapshot is written).

use std::collections::VecDeque;

use detour::domain::Timestamp;
use rand::Rng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Normal, Poisson};

use super::draws::{Episodes, Injected, daily_profile, draw_windows, shift_share, weekly_profile};
use super::orders::{Pending, finish_order, new_order};
use super::write::{Snapshot, TruthWindow, Writers};
use super::{HOUR_MS, SimSummary, TRUTH_SAMPLE_EVERY};
use crate::network_gen::SimNetwork;
use crate::sim_world::{Disruption, World};

/// Everything that carries over from one site-hour to the next. The one random
/// stream is drawn from in a fixed order, so a seed gives one history.
pub(super) struct Simulation<'a> {
    rng: StdRng,
    sim: &'a SimNetwork,
    world: World<'a>,
    /// End of the simulated period: later outcomes are left open.
    end: Timestamp,
    /// Daily change of each lane's failure log-odds.
    drift: Normal<f64>,
    /// Demand spikes and labour shortfalls per site.
    spikes: Episodes,
    shortfalls: Episodes,
    /// Injected drops of output per site (labour unchanged).
    outages: Episodes,
    /// Orders waiting at each site, first in first out.
    queues: Vec<VecDeque<Pending>>,
    /// Fraction of an order each site could still pick, carried to its next hour.
    carry: Vec<f64>,
    next_id: u64,
    summary: SimSummary,
    failures: usize,
    fallouts: usize,
    resolved_orders: usize,
}

impl<'a> Simulation<'a> {
    /// Draws the period's demand spikes and labour shortfalls and each site's
    /// starting stock, in that order, from `rng` (already past the network and
    /// the disruptions).
    pub(super) fn new(
        mut rng: StdRng,
        sim: &'a SimNetwork,
        disruptions: &'a [Disruption],
        injected: &'a Injected,
        start: Timestamp,
        end: Timestamp,
    ) -> Simulation<'a> {
        let site_count = sim.network.sites.len();
        let spikes = draw_windows(&mut rng, site_count, start, end, 21.0, (24.0, 72.0));
        let shortfalls = draw_windows(&mut rng, site_count, start, end, 30.0, (24.0, 48.0));
        let spike_factors: Vec<f64> = spikes
            .iter()
            .flatten()
            .map(|_| rng.gen_range(1.4..2.2))
            .collect();
        let shortfall_factors: Vec<f64> = shortfalls
            .iter()
            .flatten()
            .map(|_| rng.gen_range(0.55..0.8))
            .collect();
        let carriers = sim.network.carriers.len();
        let world = World {
            sim,
            disruptions,
            carrier_disruptions: &injected.carriers,
            lane_state: sim.lane_logit.clone(),
            load: vec![[0.0f64; 24]; carriers],
            load_norm: vec![0.0f64; carriers],
            stock: (0..site_count).map(|_| rng.gen_range(0.6..1.0)).collect(),
            capacity: sim
                .peak_labour
                .iter()
                .map(|l| l * sim.productivity)
                .collect(),
        };
        Simulation {
            rng,
            sim,
            world,
            end,
            drift: Normal::new(0.0, 0.15).expect("valid normal"),
            spikes: Episodes {
                windows: spikes,
                factors: spike_factors,
            },
            shortfalls: Episodes {
                windows: shortfalls,
                factors: shortfall_factors,
            },
            outages: Episodes {
                windows: if injected.outages.is_empty() {
                    vec![Vec::new(); site_count]
                } else {
                    injected.outages.clone()
                },
                factors: injected.outage_factors.clone(),
            },
            queues: (0..site_count).map(|_| VecDeque::new()).collect(),
            carry: vec![0.0; site_count],
            next_id: 1,
            summary: SimSummary::default(),
            failures: 0,
            fallouts: 0,
            resolved_orders: 0,
        }
    }

    /// Simulates hour `hour` of the period, starting at `t0`: every site, in
    /// order.
    pub(super) fn hour(
        &mut self,
        hour: i64,
        t0: Timestamp,
        out: &mut Writers,
    ) -> anyhow::Result<()> {
        if hour % 24 == 0 {
            self.new_day();
        }
        self.roll_carrier_load(hour);
        for site in 0..self.sim.network.sites.len() {
            self.site_hour(site, hour, t0, out)?;
        }
        Ok(())
    }

    /// Each lane's reliability drifts towards its long-run value, and each
    /// site's stock health drifts.
    fn new_day(&mut self) {
        for (key, value) in self.world.lane_state.iter_mut() {
            let base = self.sim.lane_logit[key];
            *value += 0.08 * (base - *value) + self.drift.sample(&mut self.rng);
        }
        for s in self.world.stock.iter_mut() {
            *s = (*s + self.rng.gen_range(-0.08..0.07) + 0.02 * (0.85 - *s)).clamp(0.05, 1.0);
        }
    }

    /// Moves each carrier's 24-hour load window on by an hour, folding the last
    /// day into its two-week norm (the first day sets it).
    fn roll_carrier_load(&mut self, hour: i64) {
        let world = &mut self.world;
        for c in 0..world.load.len() {
            let day_total: f64 = world.load[c].iter().sum();
            world.load_norm[c] = if hour < 24 {
                day_total.max(world.load_norm[c])
            } else {
                world.load_norm[c] + (day_total - world.load_norm[c]) / (14.0 * 24.0)
            };
            world.load[c][(hour % 24) as usize] = 0.0;
        }
    }

    /// One site for one hour: orders arrive, the hour's labour picks from the
    /// queue, the picked orders finish, and the site's snapshot is written.
    fn site_hour(
        &mut self,
        site: usize,
        hour: i64,
        t0: Timestamp,
        out: &mut Writers,
    ) -> anyhow::Result<()> {
        self.arrivals(site, t0, out)?;
        let (labour, capacity) = self.labour(site, t0);
        let (processed, units_picked) = self.pick(site, hour, t0, capacity, out)?;
        let peak = self.sim.peak_labour[site] * self.sim.productivity;
        let dock =
            (processed as f64 / peak * 0.85 + self.rng.gen_range(-0.05..0.05)).clamp(0.0, 1.0);
        out.snapshot(
            self.sim,
            &Snapshot {
                site,
                at: Timestamp(t0.0 + HOUR_MS),
                backlog: self.queues[site].len(),
                labour,
                units_picked,
                dock_utilisation: dock,
            },
        )?;
        self.summary.snapshots += 1;
        Ok(())
    }

    /// The hour's new orders at `site`, queued; for every sampled one, what
    /// fulfilling it from each site would risk goes to the truth.
    fn arrivals(&mut self, site: usize, t0: Timestamp, out: &mut Writers) -> anyhow::Result<()> {
        let sim = self.sim;
        let spike = self.spikes.factor(site, t0);
        let rate = sim.site_demand[site]
            * daily_profile(t0.hour_of_day_utc())
            * weekly_profile(t0.weekday_utc())
            * spike;
        let arrivals = if rate > 0.0 {
            Poisson::new(rate)
                .expect("positive rate")
                .sample(&mut self.rng) as usize
        } else {
            0
        };
        for _ in 0..arrivals {
            let created = Timestamp(t0.0 + self.rng.gen_range(0..HOUR_MS));
            let order = new_order(&mut self.rng, sim, site, self.next_id, created);
            if order.id.is_multiple_of(TRUTH_SAMPLE_EVERY) {
                // What fulfilling it from each site would risk, as of now.
                for (other, queue) in self.queues.iter().enumerate() {
                    if let Some((p, cost)) =
                        self.world.fallout_at(other, &order.shape(), queue.len())
                    {
                        out.reallocation_option(order.id, &sim.network.sites[other].code, cost, p)?;
                    }
                }
            }
            self.queues[site].push_back(order);
            self.next_id += 1;
        }
        Ok(())
    }

    /// The hour's labour at `site` (its shift, any shortfall, some noise) and
    /// the whole orders it can pick, the fraction left carried over.
    fn labour(&mut self, site: usize, t0: Timestamp) -> (f64, usize) {
        let sim = self.sim;
        let shortfall = self.shortfalls.factor(site, t0);
        let labour = (sim.peak_labour[site]
            * shift_share(t0.hour_of_day_utc())
            * shortfall
            * self.rng.gen_range(0.95..1.05))
        .round()
        .max(1.0);
        let output = labour * sim.productivity * self.outages.factor(site, t0);
        self.carry[site] += output;
        self.world.capacity[site] = output;
        let capacity = self.carry[site].floor() as usize;
        self.carry[site] -= capacity as f64;
        (labour, capacity)
    }

    /// Picks up to `capacity` orders from the queue at `site`, spread over the
    /// hour, finishes each and writes it (and its shipment); returns the orders
    /// picked and their units.
    fn pick(
        &mut self,
        site: usize,
        hour: i64,
        t0: Timestamp,
        capacity: usize,
        out: &mut Writers,
    ) -> anyhow::Result<(usize, f64)> {
        let mut units_picked = 0.0;
        let mut processed = 0;
        while processed < capacity {
            let Some(order) = self.queues[site].pop_front() else {
                break;
            };
            let offset = (processed as f64 + self.rng.r#gen::<f64>()) / capacity as f64;
            let ready = Timestamp(t0.0 + (offset * HOUR_MS as f64) as i64).max(order.created);
            units_picked += order.units;
            processed += 1;
            let result = finish_order(&mut self.rng, &self.world, site, self.end, &order, ready);
            if let Some(shipment) = &result.shipment {
                self.world.load[shipment.carrier][(hour % 24) as usize] += 1.0;
                self.failures += usize::from(shipment.failed);
                let sampled = order.id.is_multiple_of(TRUTH_SAMPLE_EVERY);
                out.shipment(self.sim, site, &order, shipment, sampled)?;
                self.summary.shipments += 1;
            }
            if let Some(fallout) = result.fallout {
                self.resolved_orders += 1;
                self.fallouts += usize::from(fallout);
            }
            out.order(self.sim, site, &order, result.outcome)?;
            self.summary.orders += 1;
        }
        Ok((processed, units_picked))
    }

    /// Writes every disruption's window to `truth_anomalies.csv`: the
    /// drawn ones (demand spikes, labour shortfalls, area disruptions) and
    /// the injected ones.
    pub(super) fn anomaly_truth(
        &self,
        out: &mut Writers,
        disruptions: &[Disruption],
        injected: &Injected,
    ) -> anyhow::Result<()> {
        let network = &self.sim.network;
        let site_windows = [
            ("demand_spike", &self.spikes),
            ("labour_shortfall", &self.shortfalls),
            ("throughput_drop", &self.outages),
        ];
        for (kind, episodes) in site_windows {
            for (site, windows) in episodes.windows.iter().enumerate() {
                for &(start, end, i) in windows {
                    out.anomaly_window(&TruthWindow {
                        kind,
                        site: &network.sites[site].code,
                        carrier: "",
                        region: "",
                        area: "",
                        locations: String::new(),
                        start,
                        end,
                        factor: episodes.factors[i],
                    })?;
                }
            }
        }
        for d in disruptions {
            let sites = network.sites.iter().zip(&self.sim.site_area);
            let regions = network
                .regions
                .iter()
                .map(|r| &r.code)
                .zip(&self.sim.region_area);
            let locations: Vec<&str> = sites
                .map(|(s, a)| (&s.code, a))
                .chain(regions)
                .filter(|(_, a)| **a == d.area)
                .map(|(code, _)| code.as_str())
                .collect();
            out.anomaly_window(&TruthWindow {
                kind: "area_disruption",
                site: "",
                carrier: "",
                region: "",
                area: d.area,
                locations: locations.join(" "),
                start: d.start,
                end: d.end,
                factor: d.severity,
            })?;
        }
        for d in &injected.carriers {
            out.anomaly_window(&TruthWindow {
                kind: "carrier_region_disruption",
                site: "",
                carrier: &network.carriers[d.carrier].code,
                region: &network.regions[d.region].code,
                area: "",
                locations: String::new(),
                start: d.start,
                end: d.end,
                factor: d.severity,
            })?;
        }
        Ok(())
    }

    /// Writes the orders still queued as open and returns the summary.
    pub(super) fn finish(mut self, out: &mut Writers) -> anyhow::Result<SimSummary> {
        for (site, queue) in self.queues.iter().enumerate() {
            for order in queue {
                out.order(self.sim, site, order, None)?;
                self.summary.orders += 1;
            }
        }
        let mut summary = self.summary;
        summary.shipment_failure_rate = self.failures as f64 / summary.shipments.max(1) as f64;
        summary.order_fallout_rate = self.fallouts as f64 / self.resolved_orders.max(1) as f64;
        Ok(summary)
    }
}
