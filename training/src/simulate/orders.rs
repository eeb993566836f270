//! One order's life in the simulator: created at a site ([`new_order`]), then
//! once picked cancelled, backordered or shipped with a carrier and resolved
//! on time or late ([`finish_order`]). Draws outcomes; writes nothing.

use detour::domain::Timestamp;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Exp, Poisson};

use crate::network_gen::SimNetwork;
use crate::sim_world::{OrderShape, World, next_pickup};

/// An order waiting in a site's queue.
pub(super) struct Pending {
    pub(super) id: u64,
    pub(super) created: Timestamp,
    pub(super) region: usize,
    pub(super) lines: u32,
    pub(super) units: f64,
    pub(super) express: bool,
    pub(super) channel: &'static str,
}

impl Pending {
    /// What placing it anywhere depends on.
    pub(super) fn shape(&self) -> OrderShape {
        OrderShape {
            created: self.created,
            region: self.region,
            lines: self.lines,
            express: self.express,
        }
    }
}

/// A shipment as simulated: its schedule and what happened, its truth and the
/// alternatives not taken. Its id is its order's.
pub(super) struct SimShipment {
    pub(super) carrier: usize,
    pub(super) departure: Timestamp,
    pub(super) arrival: Timestamp,
    /// When it actually left: none if cancelled or not gone by the end.
    pub(super) actual_departure: Option<Timestamp>,
    /// When it actually arrived: none if cancelled or still in transit.
    pub(super) actual_arrival: Option<Timestamp>,
    /// `delivered`, `cancelled` or `in_transit`.
    pub(super) status: &'static str,
    pub(super) p_fail: f64,
    /// Whether it failed (and the outcome is inside the period).
    pub(super) failed: bool,
    /// (carrier, rate, transit hours, true failure probability) of every carrier
    /// serving the lane, for the same departure.
    pub(super) alternatives: Vec<(usize, f64, f64, f64)>,
}

/// A picked order: how it ended and its shipment, if it got one.
pub(super) struct Finished {
    /// `cancelled`, `backordered`, `late` or `shipped_on_time`; `None` while
    /// unresolved.
    pub(super) outcome: Option<&'static str>,
    pub(super) shipment: Option<SimShipment>,
    /// Whether the order fell out; `None` while unresolved.
    pub(super) fallout: Option<bool>,
}

/// A new order `id` at `site`, created at `created`: its region from the
/// site's mix, its lines, units, channel and priority drawn.
pub(super) fn new_order(
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

/// Minutes a leg leaves late beyond the usual few: a disruption at its origin
/// holds every leg there (exponential, mean an hour per unit of severity), and
/// a leg that will fail often leaves late anyway (a quarter of them, mean 45
/// minutes) — so departures show trouble hours before arrivals do. Drawn from
/// a generator of the leg's own, so the rest of the history is as before.
fn late_leaving(
    world: &World<'_>,
    site: usize,
    id: u64,
    departure: Timestamp,
    failed: bool,
) -> f64 {
    let mut own = StdRng::seed_from_u64(id ^ 0x9e37_79b9_7f4a_7c15);
    let held = world.origin_disruption(site, departure);
    let mut minutes = 0.0;
    if held > 0.0 {
        minutes += Exp::new(1.0 / (60.0 * held))
            .expect("valid")
            .sample(&mut own);
    }
    if failed && own.gen_bool(0.25) {
        minutes += Exp::new(1.0 / 45.0).expect("valid").sample(&mut own);
    }
    minutes
}

/// What happens to `order` once `site` has picked it at `ready`: cancelled by
/// a customer tired of waiting, backordered, or shipped with a carrier serving
/// the lane and then on time or late; anything after `end` is left open.
pub(super) fn finish_order(
    rng: &mut StdRng,
    world: &World<'_>,
    site: usize,
    end: Timestamp,
    order: &Pending,
    ready: Timestamp,
) -> Finished {
    let promised = order.shape().promise();
    let resolved = |outcome: &'static str| Finished {
        outcome: Some(outcome),
        shipment: None,
        fallout: Some(true),
    };
    let waited = ready.hours_since(order.created);
    if (waited > 36.0 && rng.gen_bool(0.6)) || rng.gen_bool(0.003) {
        return resolved("cancelled");
    }
    if rng.gen_bool(world.backorder_probability(site, order.lines)) {
        return resolved("backordered");
    }
    // Carrier: among those serving the lane, the cheapest half the time.
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
    let actual_departure = if departure > end || cancelled {
        None
    } else {
        let usual = rng.gen_range(0.0..20.0);
        Some(departure.plus_minutes(usual + late_leaving(world, site, order.id, departure, failed)))
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
        outcome,
        shipment: Some(SimShipment {
            carrier,
            departure,
            arrival,
            actual_departure,
            actual_arrival: actual_arrival.filter(|_| !open),
            status,
            p_fail,
            failed: failed && !open,
            alternatives,
        }),
        fallout,
    }
}
