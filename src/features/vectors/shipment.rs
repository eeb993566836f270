//! The carrier-failure family's keys and vector: a leg's records of outcomes
//! over days and weeks, and the network's live state at the decision — the
//! backlog at its origin, read from its departure slots, and how late the last
//! hours' departures and arrivals were.

use crate::domain::{Shipment, Timestamp};
use crate::network::Network;
use crate::schema::FeatureVector;

use super::super::aggregates::{
    AggregateKey, WindowId, disruption_gauges, movement_counters as mc, shipment_counters as sc,
    slot_counters, slot_fraction, slot_of,
};
use super::{
    Gaps, Lookup, PAIR_SHRINKAGE, PRIOR_CANCEL_RATE, PRIOR_FAILURE_RATE, SiteView, clock_features,
    long_rate, smoothed_rate,
};

/// Share of departures that leave late before any are seen.
const PRIOR_LATE_DEPARTURE_RATE: f64 = 0.2;
/// Departure slots the backlog at an origin counts: the slot the decision
/// falls in (in proportion to how much of it has passed) and the eight before
/// it, four hours in all.
pub const BACKLOG_SLOTS: usize = 9;
/// Records a shipment's features read ([`shipment_keys`]).
pub const SHIPMENT_KEYS: usize = FIXED_KEYS + BACKLOG_SLOTS;
/// Records read whatever the time: all but the backlog's slots.
const FIXED_KEYS: usize = 15;
/// An open alert whose record was last written longer ago than this is not
/// read as open: an open episode is rewritten at least hourly while its
/// points stay unusual, ends after two ordinary points, and is swept about
/// three hours (of event time) after its points stop, so a record this old
/// most likely missed its resolution.
const ALERT_FRESH_SECS: f64 = 6.0 * 3_600.0;
/// How long a carrier's disruption into a region is expected to last from a
/// decision on: its weight for a leg `lead` hours ahead is
/// `exp(-lead / this)` (see [`towards_prior`]).
const DISRUPTION_HOURS: f64 = 12.0;

/// Keys a shipment's features read, decided at `now`: carrier, lane,
/// carrier-lane, origin site, all outcomes out of its origin and into its
/// destination; the departures from its origin (over all carriers, and its
/// carrier's); the schedule of its own departure slot at the origin; its
/// carrier's departures everywhere, the
/// departures bound for its destination and the arrivals there; the
/// anomaly monitor's open alerts on its carrier into its destination, on
/// its lane and on its destination; and the [`BACKLOG_SLOTS`]
/// departure slots at the origin up to `now`.
pub fn shipment_keys(shipment: &Shipment, now: Timestamp) -> [AggregateKey; SHIPMENT_KEYS] {
    let (carrier, origin, destination) =
        (&shipment.carrier, &shipment.origin, &shipment.destination);
    let now_slot = slot_of(now.as_secs_f64());
    let fixed = [
        AggregateKey::carrier(carrier),
        AggregateKey::lane(origin, destination),
        AggregateKey::carrier_lane(carrier, origin, destination),
        AggregateKey::site(origin),
        AggregateKey::origin(origin),
        AggregateKey::destination(destination),
        AggregateKey::departures(origin),
        AggregateKey::carrier_departures(carrier, origin),
        AggregateKey::departure_slot(origin, slot_of(shipment.scheduled_departure.as_secs_f64())),
        AggregateKey::carrier_network_departures(carrier),
        AggregateKey::departures_to(destination),
        AggregateKey::arrivals(destination),
        AggregateKey::carrier_region_alert(carrier, destination),
        AggregateKey::lane_alert(origin, destination),
        AggregateKey::inbound_alert(destination),
    ];
    std::array::from_fn(|i| match i.checked_sub(fixed.len()) {
        None => fixed[i].clone(),
        Some(back) => AggregateKey::departure_slot(origin, now_slot - back as i64),
    })
}

/// Carrier-failure features of a shipment, decided at `now`. `lookups` follow
/// [`shipment_keys`]. Gaps are added to `gaps`: a carrier never seen is
/// decisive, a carrier new to the lane is not.
pub fn carrier_failure_vector(
    shipment: &Shipment,
    now: Timestamp,
    lookups: [Lookup<'_>; SHIPMENT_KEYS],
    network: &Network,
    gaps: &mut Gaps,
) -> FeatureVector {
    let t = now.as_secs_f64();
    let [
        carrier,
        lane,
        carrier_lane,
        origin,
        outbound,
        inbound,
        departures,
        carrier_departures,
    ] = [0, 1, 2, 3, 4, 5, 6, 7].map(|i| lookups[i]);
    let departure_slot = lookups[8];
    let [carrier_everywhere, bound_for_destination, arrivals] = [9, 10, 11].map(|i| lookups[i]);
    let [carrier_region_alert, lane_alert, inbound_alert] = [12, 13, 14].map(|i| lookups[i]);
    if carrier == Some(None) {
        gaps.decisive(format!("carrier {} has no history", shipment.carrier));
    } else if carrier_lane == Some(None) {
        gaps.note(format!(
            "carrier {} has no history on lane {}→{}",
            shipment.carrier, shipment.origin, shipment.destination
        ));
    }
    let rate = |lookup: Lookup<'_>, counter: usize, window: WindowId| {
        smoothed_rate(lookup, counter, sc::DONE, window, t, PRIOR_FAILURE_RATE)
    };
    let volume = |lookup: Lookup<'_>, window: WindowId| {
        lookup.map_or(f64::NAN, |r| {
            r.map_or(0.0, |r| r.counter(sc::DONE, window, t)).ln_1p()
        })
    };
    let mean_delay = carrier_lane.map_or(f64::NAN, |r| {
        r.map_or(0.0, |r| {
            let done = r.counter(sc::DONE, WindowId::MONTH, t);
            if done > 0.0 {
                r.counter(sc::DELAY_MINUTES, WindowId::MONTH, t) / done
            } else {
                0.0
            }
        })
    });
    let site = SiteView::new(&shipment.origin, origin, now, network);
    let (hour_sin, hour_cos, weekend) = clock_features(shipment.scheduled_departure);
    let late_share = |lookup: Lookup<'_>, window: WindowId| {
        smoothed_rate(
            lookup,
            mc::LATE,
            mc::MOVED,
            window,
            t,
            PRIOR_LATE_DEPARTURE_RATE,
        )
    };
    let mean_lateness = |lookup: Lookup<'_>, window: WindowId| {
        lookup.map_or(f64::NAN, |r| {
            r.map_or(0.0, |r| {
                let moved = r.counter(mc::MOVED, window, t);
                if moved > 0.0 {
                    r.counter(mc::DELAY_MINUTES, window, t) / moved
                } else {
                    0.0
                }
            })
        })
    };
    let planned = |lookup: Lookup<'_>| {
        lookup.map_or(f64::NAN, |r| {
            r.map_or(0.0, |r| {
                r.counter(slot_counters::PLANNED, WindowId::COUNT, t)
            })
        })
    };
    let backlog = Backlog::of(&lookups[FIXED_KEYS..], slot_fraction(t), t);
    // Long memory: the carrier-lane's record over all time, shrunk towards
    // its lane's four weeks (the level the lane runs at now) lightly and
    // heavily; with its volume, the model learns from the data how far to
    // trust a sparse carrier-lane.
    let lane_level = rate(lane, sc::FAILED, WindowId::MONTH);
    let lane_memory = WindowId::CARRIER_LANE_ALL_TIME;
    let [light, heavy] = PAIR_SHRINKAGE;
    let lead = lead_time_hours(shipment.scheduled_departure, now);
    FeatureVector::from_slice(&[
        rate(carrier, sc::FAILED, WindowId::WEEK),
        rate(carrier, sc::FAILED, WindowId::MONTH),
        smoothed_rate(
            carrier,
            sc::CANCELLED,
            sc::DONE,
            WindowId::MONTH,
            t,
            PRIOR_CANCEL_RATE,
        ),
        rate(lane, sc::FAILED, WindowId::WEEK),
        rate(outbound, sc::FAILED, WindowId::DAY),
        rate(inbound, sc::FAILED, WindowId::DAY),
        rate(carrier_lane, sc::FAILED, WindowId::WEEK),
        rate(carrier_lane, sc::FAILED, WindowId::MONTH),
        // How this carrier compares with everyone on the lane: what a reroute turns on.
        rate(carrier_lane, sc::FAILED, WindowId::MONTH) - rate(lane, sc::FAILED, WindowId::MONTH),
        mean_delay,
        volume(carrier, WindowId::DAY),
        volume(carrier_lane, WindowId::MONTH),
        site.dock_utilisation,
        site.backlog_to_limit,
        shipment
            .scheduled_arrival
            .hours_since(shipment.scheduled_departure),
        hour_sin,
        hour_cos,
        weekend,
        lead_time_hours(shipment.scheduled_departure, now),
        backlog.legs.ln_1p(),
        backlog.legs / backlog.due.max(1.0),
        late_share(departures, WindowId::HOUR),
        mean_lateness(departures, WindowId::HOUR),
        late_share(departures, WindowId::DEPARTURE_DAY),
        departures.map_or(f64::NAN, |r| {
            r.map_or(0.0, |r| r.counter(mc::MOVED, WindowId::HOUR, t))
                .ln_1p()
        }),
        towards_prior(
            late_share(carrier_departures, WindowId::THREE_HOURS),
            PRIOR_LATE_DEPARTURE_RATE,
            lead,
        ),
        towards_prior(
            mean_lateness(carrier_departures, WindowId::THREE_HOURS),
            0.0,
            lead,
        ),
        planned(departure_slot).ln_1p(),
        f64::from(shipment.scheduled_departure.weekday_utc()),
        towards_prior(
            late_share(carrier_everywhere, WindowId::THREE_HOURS),
            PRIOR_LATE_DEPARTURE_RATE,
            lead,
        ),
        late_share(bound_for_destination, WindowId::THREE_HOURS),
        late_share(arrivals, WindowId::THREE_HOURS),
        mean_lateness(arrivals, WindowId::THREE_HOURS),
        long_rate(carrier_lane, sc::FAILED, lane_memory, t, lane_level, light),
        long_rate(carrier_lane, sc::FAILED, lane_memory, t, lane_level, heavy),
        volume(carrier_lane, lane_memory),
        open_alert_severity(carrier_region_alert, t) * (-lead / DISRUPTION_HOURS).exp(),
        open_alert_severity(lane_alert, t),
        open_alert_severity(inbound_alert, t),
    ])
}

/// The severity (1 low … 4 critical) of the open alert a disruption record
/// holds at `t`; 0 when none is open (or its record is too old to trust);
/// NaN when the record could not be read.
fn open_alert_severity(lookup: Lookup<'_>, t: f64) -> f64 {
    lookup.map_or(f64::NAN, |r| {
        r.and_then(|r| r.gauge(disruption_gauges::SEVERITY))
            .filter(|&(_, at)| t - at <= ALERT_FRESH_SECS)
            .map_or(0.0, |(severity, _)| severity)
    })
}

/// How long a carrier's live state (its departures of the last hours) says
/// something about a leg still to leave: the weight of that state is
/// `exp(-lead / this)`.
const LIVE_STATE_HOURS: f64 = 1.0;

/// A carrier's live state as seen from `lead` hours before the leg leaves: at
/// departure the state itself, further ahead pulled towards its prior, since
/// how a carrier's departures went this afternoon says little about its leg
/// tomorrow. (The model compares carriers by these through linear terms only,
/// which cannot learn that fading from the lead time; the situation's live
/// state is left whole, since the trees that read it also read the lead.)
fn towards_prior(value: f64, prior: f64, lead: f64) -> f64 {
    prior + (value - prior) * (-lead / LIVE_STATE_HOURS).exp()
}

/// Legs at an origin scheduled to have left by now that have not (neither
/// left nor been cancelled), over the [`BACKLOG_SLOTS`] slots up to now.
struct Backlog {
    /// Legs still waiting.
    legs: f64,
    /// Legs scheduled in those slots.
    due: f64,
}

impl Backlog {
    /// `slots` from the one `now` falls in backwards; that one counts in
    /// proportion to the `elapsed` share of it.
    fn of(slots: &[Lookup<'_>], elapsed: f64, t: f64) -> Self {
        let mut out = Backlog {
            legs: 0.0,
            due: 0.0,
        };
        for (i, lookup) in slots.iter().enumerate() {
            let Some(record) = lookup else {
                return Backlog {
                    legs: f64::NAN,
                    due: f64::NAN,
                };
            };
            let Some(record) = record else { continue };
            let weight = if i == 0 { elapsed } else { 1.0 };
            let planned = record.counter(slot_counters::PLANNED, WindowId::COUNT, t);
            let gone = record.counter(slot_counters::GONE, WindowId::COUNT, t);
            out.due += weight * planned;
            out.legs += weight * (planned - gone).max(0.0);
        }
        out
    }
}

/// Hours from the decision to the departure, the horizon the model predicts at
/// (0 at or after departure; capped at four days).
pub fn lead_time_hours(departure: Timestamp, now: Timestamp) -> f64 {
    departure.hours_since(now).clamp(0.0, 96.0)
}
