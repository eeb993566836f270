//! A seeded simulator of a fulfilment network, writing the CSV exports of
//! DESIGN.md (`orders.csv`, `shipments.csv`, `site_metrics.csv`, `network.toml`)
//! plus the truth only a simulator knows: `truth_shipments.csv` (each shipment's
//! true failure probability), `truth_reroutes.csv` (the same for every carrier that
//! could have taken it) and `truth_reallocations.csv` (each sampled order's true
//! fallout probability and cost from every site) — see [`crate::sim_world`].
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
//!   arrival (15 min + exponential, mean 10 h).
//! - **Fallout**: an order is backordered, cancelled, or late when its shipment
//!   arrives after the promise — 72 h from creation (40 h for express orders),
//!   whichever site fulfils it, so far-away sites struggle to keep express
//!   promises; a cancelled shipment is re-sent 48 h later.
//!
//! Anything still unresolved at the end of the period is exported as open.

use std::collections::VecDeque;
use std::path::Path;

use anyhow::Context;
use detour::domain::Timestamp;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Exp, Normal, Poisson};

use crate::csvio::{OrderRow, ShipmentRow, SiteMetricRow};
use crate::network_gen::{self, SimNetwork};
use crate::sim_world::{Disruption, OrderShape, World, next_pickup};

/// Every how many orders (by id) the counterfactual truth files sample one.
pub const TRUTH_SAMPLE_EVERY: u64 = 5;

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimSettings {
    pub seed: u64,
    pub start: Timestamp,
    pub days: u32,
    pub orders_per_day: f64,
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

struct Pending {
    id: u64,
    created: Timestamp,
    region: usize,
    lines: u32,
    units: f64,
    express: bool,
    channel: &'static str,
}

/// Runs the simulation and writes the files into `out`.
pub fn run(settings: &SimSettings, out: &Path) -> anyhow::Result<SimSummary> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut rng = StdRng::seed_from_u64(settings.seed);
    let sim = network_gen::generate(&mut rng, settings.orders_per_day);
    std::fs::write(out.join("network.toml"), sim.network.to_toml())?;

    let mut orders = csv::Writer::from_path(out.join("orders.csv"))?;
    let mut shipments = csv::Writer::from_path(out.join("shipments.csv"))?;
    let mut metrics = csv::Writer::from_path(out.join("site_metrics.csv"))?;
    let mut truth = csv::Writer::from_path(out.join("truth_shipments.csv"))?;
    truth.write_record(["shipment_id", "p_fail"])?;
    let mut reroutes = csv::Writer::from_path(out.join("truth_reroutes.csv"))?;
    reroutes.write_record(["shipment_id", "carrier", "rate", "transit_hours", "p_fail"])?;
    let mut reallocations = csv::Writer::from_path(out.join("truth_reallocations.csv"))?;
    reallocations.write_record(["order_id", "site", "cost", "p_fallout"])?;

    let hours = i64::from(settings.days) * 24;
    let end = Timestamp(settings.start.0 + hours * HOUR_MS);
    let disruptions = draw_disruptions(&mut rng, &sim, settings.start, end);
    let site_count = sim.network.sites.len();
    let spikes = draw_windows(
        &mut rng,
        site_count,
        settings.start,
        end,
        21.0,
        (24.0, 72.0),
    );
    let shortfalls = draw_windows(
        &mut rng,
        site_count,
        settings.start,
        end,
        30.0,
        (24.0, 48.0),
    );
    let spike_factor: Vec<f64> = spikes
        .iter()
        .flatten()
        .map(|_| rng.gen_range(1.4..2.2))
        .collect();
    let shortfall_factor: Vec<f64> = shortfalls
        .iter()
        .flatten()
        .map(|_| rng.gen_range(0.55..0.8))
        .collect();

    let carriers = sim.network.carriers.len();
    let drift = Normal::new(0.0, 0.15).expect("valid normal");
    let mut world = World {
        sim: &sim,
        disruptions: &disruptions,
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
    let mut queues: Vec<VecDeque<Pending>> = (0..site_count).map(|_| VecDeque::new()).collect();
    let mut carry = vec![0.0; site_count];
    let mut summary = SimSummary::default();
    let (mut failures, mut fallouts, mut resolved_orders) = (0usize, 0usize, 0usize);
    let mut next_id = 1u64;

    for hour in 0..hours {
        let t0 = Timestamp(settings.start.0 + hour * HOUR_MS);
        if hour % 24 == 0 {
            for (key, value) in world.lane_state.iter_mut() {
                let base = sim.lane_logit[key];
                *value += 0.08 * (base - *value) + drift.sample(&mut rng);
            }
            for s in world.stock.iter_mut() {
                *s = (*s + rng.gen_range(-0.08..0.07) + 0.02 * (0.85 - *s)).clamp(0.05, 1.0);
            }
        }
        for c in 0..carriers {
            let day_total: f64 = world.load[c].iter().sum();
            world.load_norm[c] = if hour < 24 {
                day_total.max(world.load_norm[c])
            } else {
                world.load_norm[c] + (day_total - world.load_norm[c]) / (14.0 * 24.0)
            };
            world.load[c][(hour % 24) as usize] = 0.0;
        }
        let hour_of_day = t0.hour_of_day_utc();
        let weekday = t0.weekday_utc();
        for s in 0..site_count {
            let spike = active_factor(&spikes[s], &spike_factor, t0);
            let rate =
                sim.site_demand[s] * daily_profile(hour_of_day) * weekly_profile(weekday) * spike;
            let arrivals = if rate > 0.0 {
                Poisson::new(rate).expect("positive rate").sample(&mut rng) as usize
            } else {
                0
            };
            for _ in 0..arrivals {
                let created = Timestamp(t0.0 + rng.gen_range(0..HOUR_MS));
                let order = new_order(&mut rng, &sim, s, next_id, created);
                if order.id.is_multiple_of(TRUTH_SAMPLE_EVERY) {
                    // What fulfilling it from each site would risk, as of now.
                    for (other, queue) in queues.iter().enumerate() {
                        if let Some((p, cost)) =
                            world.fallout_at(other, &order.shape(), queue.len())
                        {
                            reallocations.write_record([
                                format!("O{:08}", order.id),
                                sim.network.sites[other].code.clone(),
                                format!("{cost:.2}"),
                                format!("{p:.6}"),
                            ])?;
                        }
                    }
                }
                queues[s].push_back(order);
                next_id += 1;
            }
            let shortfall = active_factor(&shortfalls[s], &shortfall_factor, t0);
            let labour = (sim.peak_labour[s]
                * shift_share(hour_of_day)
                * shortfall
                * rng.gen_range(0.95..1.05))
            .round()
            .max(1.0);
            carry[s] += labour * sim.productivity;
            world.capacity[s] = labour * sim.productivity;
            let capacity = carry[s].floor() as usize;
            carry[s] -= capacity as f64;
            let mut units_picked = 0.0;
            let mut processed = 0;
            while processed < capacity {
                let Some(order) = queues[s].pop_front() else {
                    break;
                };
                let offset = (processed as f64 + rng.r#gen::<f64>()) / capacity as f64;
                let ready = Timestamp(t0.0 + (offset * HOUR_MS as f64) as i64).max(order.created);
                units_picked += order.units;
                processed += 1;
                let result = finish_order(&mut rng, &world, s, end, &order, ready);
                if let Some(shipment) = result.shipment {
                    world.load[shipment.carrier][(hour % 24) as usize] += 1.0;
                    failures += usize::from(shipment.failed);
                    let id = shipment.row.shipment_id.clone();
                    truth.write_record([id.as_str(), &format!("{:.6}", shipment.p_fail)])?;
                    if order.id.is_multiple_of(TRUTH_SAMPLE_EVERY) {
                        for (carrier, rate, transit, p_fail) in &shipment.alternatives {
                            reroutes.write_record([
                                id.clone(),
                                sim.network.carriers[*carrier].code.clone(),
                                format!("{rate:.2}"),
                                format!("{transit}"),
                                format!("{p_fail:.6}"),
                            ])?;
                        }
                    }
                    shipments.serialize(&shipment.row)?;
                    summary.shipments += 1;
                }
                if let Some(fallout) = result.fallout {
                    resolved_orders += 1;
                    fallouts += usize::from(fallout);
                }
                orders.serialize(&result.order)?;
                summary.orders += 1;
            }
            let dock = (processed as f64 / (sim.peak_labour[s] * sim.productivity) * 0.85
                + rng.gen_range(-0.05..0.05))
            .clamp(0.0, 1.0);
            metrics.serialize(SiteMetricRow {
                site: sim.network.sites[s].code.clone(),
                time: Timestamp(t0.0 + HOUR_MS).to_rfc3339(),
                backlog: queues[s].len().to_string(),
                labour: labour.to_string(),
                units_picked: units_picked.to_string(),
                dock_utilisation: format!("{dock:.3}"),
            })?;
            summary.snapshots += 1;
        }
    }
    // Orders still queued at the end are open.
    for (s, queue) in queues.iter().enumerate() {
        for order in queue {
            orders.serialize(order_row(&sim, s, order, None))?;
            summary.orders += 1;
        }
    }
    for writer in [&mut orders, &mut shipments, &mut metrics] {
        writer.flush()?;
    }
    for writer in [&mut truth, &mut reroutes, &mut reallocations] {
        writer.flush()?;
    }
    summary.shipment_failure_rate = failures as f64 / summary.shipments.max(1) as f64;
    summary.order_fallout_rate = fallouts as f64 / resolved_orders.max(1) as f64;
    Ok(summary)
}

/// A shipment as simulated: its row, its truth and the alternatives not taken.
struct SimShipment {
    row: ShipmentRow,
    carrier: usize,
    p_fail: f64,
    /// Whether it failed (and the outcome is inside the period).
    failed: bool,
    /// (carrier, rate, transit hours, true failure probability) of every carrier
    /// serving the lane, for the same departure.
    alternatives: Vec<(usize, f64, f64, f64)>,
}

struct Finished {
    order: OrderRow,
    shipment: Option<SimShipment>,
    /// Whether the order fell out; `None` while unresolved.
    fallout: Option<bool>,
}

impl Pending {
    fn shape(&self) -> OrderShape {
        OrderShape {
            created: self.created,
            region: self.region,
            lines: self.lines,
            express: self.express,
        }
    }
}

fn new_order(
    rng: &mut StdRng,
    sim: &SimNetwork,
    site: usize,
    id: u64,
    created: Timestamp,
) -> Pending {
    let mix = &sim.region_mix[site];
    let mut pick = rng.r#gen::<f64>();
    let mut region = mix.len() - 1;
    for (r, share) in mix.iter().enumerate() {
        if pick < *share {
            region = r;
            break;
        }
        pick -= share;
    }
    let lines = 1 + Poisson::new(1.2).expect("valid").sample(rng) as u32;
    let units = f64::from(lines) * f64::from(1 + rng.gen_range(0..3u32));
    let channel = match rng.gen_range(0..20) {
        0..=11 => "web",
        12..=14 => "store",
        _ => "marketplace",
    };
    Pending {
        id,
        created,
        region,
        lines,
        units,
        express: rng.gen_bool(0.25),
        channel,
    }
}

fn order_row(sim: &SimNetwork, site: usize, order: &Pending, outcome: Option<&str>) -> OrderRow {
    OrderRow {
        order_id: format!("O{:08}", order.id),
        created_at: order.created.to_rfc3339(),
        channel: order.channel.into(),
        site: sim.network.sites[site].code.clone(),
        destination_region: sim.network.regions[order.region].code.clone(),
        promise_at: order.shape().promise().to_rfc3339(),
        line_count: order.lines.to_string(),
        units: order.units.to_string(),
        priority: if order.express { "express" } else { "standard" }.into(),
        outcome: outcome.unwrap_or("").into(),
    }
}

fn finish_order(
    rng: &mut StdRng,
    world: &World<'_>,
    site: usize,
    end: Timestamp,
    order: &Pending,
    ready: Timestamp,
) -> Finished {
    let sim = world.sim;
    let promised = order.shape().promise();
    let resolved = |outcome: &str, fallout: bool| Finished {
        order: order_row(sim, site, order, Some(outcome)),
        shipment: None,
        fallout: Some(fallout),
    };
    let waited = ready.hours_since(order.created);
    if (waited > 36.0 && rng.gen_bool(0.6)) || rng.gen_bool(0.003) {
        return resolved("cancelled", true);
    }
    if rng.gen_bool(world.backorder_probability(site, order.lines)) {
        return resolved("backordered", true);
    }
    // Carrier: among those serving the lane, the cheapest half the time.
    let site_code = &sim.network.sites[site].code;
    let region_code = &sim.network.regions[order.region].code;
    let options = world.lane_options(site, order.region);
    let (carrier, _, transit) = if rng.gen_bool(0.5) {
        *options
            .iter()
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .expect("every lane has carriers")
    } else {
        options[rng.gen_range(0..options.len())]
    };
    let departure = next_pickup(ready.plus_minutes(30.0));
    let arrival = departure.plus_minutes(transit * 60.0);
    let alternatives = options
        .iter()
        .map(|&(c, rate, transit)| {
            let arrival = departure.plus_minutes(transit * 60.0);
            let p = world.failure_probability(c, site, order.region, departure, arrival);
            (c, rate, transit, p)
        })
        .collect();
    let p_fail = world.failure_probability(carrier, site, order.region, departure, arrival);
    let failed = rng.gen_bool(p_fail);
    let cancelled = failed && rng.gen_bool(0.12);
    let delay_minutes = if !failed {
        rng.gen_range(-90.0..15.0)
    } else {
        15.0 + Exp::new(1.0 / 600.0).expect("valid").sample(rng)
    };
    let actual_arrival = if cancelled {
        None
    } else {
        Some(arrival.plus_minutes(delay_minutes))
    };
    let delivered_at = actual_arrival.unwrap_or(arrival.plus_minutes(48.0 * 60.0));
    let shipment_done = if cancelled { departure } else { delivered_at };
    let open = shipment_done > end;
    let status = match (open, cancelled) {
        (true, _) => "in_transit",
        (false, true) => "cancelled",
        (false, false) => "delivered",
    };
    let shipment = ShipmentRow {
        shipment_id: format!("S{:08}", order.id),
        carrier: sim.network.carriers[carrier].code.clone(),
        origin: site_code.clone(),
        destination: region_code.clone(),
        scheduled_departure: departure.to_rfc3339(),
        scheduled_arrival: arrival.to_rfc3339(),
        actual_departure: if departure > end || cancelled {
            String::new()
        } else {
            departure
                .plus_minutes(rng.gen_range(0.0..20.0))
                .to_rfc3339()
        },
        actual_arrival: match actual_arrival {
            Some(at) if !open => at.to_rfc3339(),
            _ => String::new(),
        },
        status: status.into(),
    };
    let order_resolved = delivered_at <= end || delivered_at > promised && promised <= end;
    let late = delivered_at > promised;
    let (outcome, fallout) = if !order_resolved {
        (None, None)
    } else if late {
        (Some("late"), Some(true))
    } else {
        (Some("shipped_on_time"), Some(false))
    };
    Finished {
        order: order_row(sim, site, order, outcome),
        shipment: Some(SimShipment {
            row: shipment,
            carrier,
            p_fail,
            failed: failed && !open,
            alternatives,
        }),
        fallout,
    }
}

fn daily_profile(hour: f64) -> f64 {
    0.45 + 1.25 * (-((hour - 14.0) / 4.5).powi(2)).exp()
}

fn weekly_profile(weekday: u32) -> f64 {
    match weekday {
        5 => 0.75,
        6 => 0.6,
        _ => 1.1,
    }
}

/// Share of peak labour on shift at an hour: day, evening and night shifts.
fn shift_share(hour: f64) -> f64 {
    match hour as u32 {
        6..=13 => 1.0,
        14..=21 => 0.9,
        _ => 0.45,
    }
}

/// Random windows per entity: Poisson starts every `mean_gap_days`, durations
/// uniform in `hours`. Each window carries its index into a factor list.
fn draw_windows(
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

fn active_factor(windows: &[(Timestamp, Timestamp, usize)], factors: &[f64], at: Timestamp) -> f64 {
    windows
        .iter()
        .find(|(from, to, _)| *from <= at && at < *to)
        .map_or(1.0, |(_, _, i)| factors[*i])
}

fn draw_disruptions(
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
