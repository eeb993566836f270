//! What each event changes: the one definition of how history becomes aggregates,
//! used by both backends and by the trainer's replay.

use crate::domain::{Event, EventPayload, Order, OrderOutcome, Shipment, SiteSnapshot, Timestamp};

use super::aggregates::{
    AggregateKey, AggregateUpdate, MAX_GAUGES, WINDOW_COUNT, movement_counters as mc,
    shipment_counters as sc, site_fields as sf, site_region_counters as src,
};
use super::entities::{Entity, EntityWrite, LaneCarrier, entity_write};

mod facts;

pub use facts::{
    FACT_PREFIX, Fact, LegFacts, Stage, is_fact_id, leg_facts, order_facts, parse_fact_id,
    with_facts,
};

const COUNTERS: usize = super::aggregates::MAX_COUNTER_FIELDS / WINDOW_COUNT;
/// Lateness above this counts as this much in the mean-delay features.
const DELAY_CAP_MINUTES: f64 = 2.0 * 24.0 * 60.0;

/// Settings that change what an event means.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FeatureSettings {
    /// A delivery later than scheduled by more than this is a carrier failure.
    pub sla_grace_minutes: f64,
}

impl Default for FeatureSettings {
    fn default() -> Self {
        FeatureSettings {
            sla_grace_minutes: 15.0,
        }
    }
}

/// An event reduced to the record updates it causes.
#[derive(Debug, Clone, PartialEq)]
pub struct EventUpdates {
    /// The event's id, remembered so that a second delivery is a duplicate.
    pub event_id: String,
    /// What the event itself changes (an order, a snapshot, a stock count);
    /// empty for a shipment, whose changes are [`EventUpdates::facts`]. It is
    /// recorded as seen either way.
    pub updates: Vec<AggregateUpdate>,
    /// The stages of a leg's life the event reports (announced, gone,
    /// finished), each counted once per leg however many events report it:
    /// a store applies a fact like an event whose id is the fact's.
    pub facts: Vec<Fact>,
    /// The order or shipment itself, kept for lookups by id.
    pub entity: Option<EntityWrite>,
    /// The carrier a shipment shows serving its lane.
    pub lane_carrier: Option<LaneCarrier>,
}

/// The increments of one leg leaving or arriving `late_minutes` after its
/// schedule.
fn movement(late_minutes: f64, settings: &FeatureSettings) -> [f64; COUNTERS] {
    let mut out = [0.0; COUNTERS];
    out[mc::MOVED] = 1.0;
    out[mc::LATE] = f64::from(u8::from(late_minutes > settings.sla_grace_minutes));
    out[mc::DELAY_MINUTES] = late_minutes.clamp(0.0, DELAY_CAP_MINUTES);
    out
}

/// The updates an event causes when it is received at `received_at`: nothing
/// can have become known after it was received, so later times (an order's
/// outcome counted at a promise still ahead, a cancellation announced before the
/// departure it cancels) are brought back to `received_at`. Otherwise a record's
/// clock would jump ahead and every event arriving in between would count as
/// old. (The trainer's replay applies each event at the moment it becomes known,
/// which is the same thing.)
pub fn updates_received(
    event: &Event,
    settings: &FeatureSettings,
    received_at: Timestamp,
) -> EventUpdates {
    let mut out = updates_for(event, settings);
    let latest = received_at.as_secs_f64();
    // A slot no decision reads any more when the report comes (history sent
    // late) is not written at all.
    for fact in &mut out.facts {
        fact.updates.retain(|u| {
            u.key
                .kind
                .read_for_secs()
                .is_none_or(|read_for| u.at + read_for > latest)
        });
    }
    // A fact left with nothing to count needs no id either.
    out.facts.retain(|fact| !fact.updates.is_empty());
    // A carrier's report that does not say when it was made counts now.
    if let EventPayload::Shipment(shipment) = &event.payload
        && shipment.tracking.reported_at.is_none()
    {
        let flagged = Stage::Flagged.fact_id(&shipment.shipment_id);
        for fact in out.facts.iter_mut().filter(|f| f.id == flagged) {
            for update in &mut fact.updates {
                update.at = latest;
            }
        }
    }
    let facts = out.facts.iter_mut().flat_map(|f| f.updates.iter_mut());
    for update in out.updates.iter_mut().chain(facts) {
        update.at = update.at.min(latest);
    }
    out
}

/// The updates an event causes, at the times its facts became known.
pub fn updates_for(event: &Event, settings: &FeatureSettings) -> EventUpdates {
    let mut facts = Vec::new();
    let updates = match &event.payload {
        EventPayload::Shipment(shipment) => {
            let leg = leg_facts(shipment, settings);
            facts.push(leg.planned);
            facts.extend(leg.gone.map(|(_, fact)| fact));
            facts.extend(leg.done.map(|(_, fact)| fact));
            facts.extend(leg.flagged.map(|(_, fact)| fact));
            Vec::new()
        }
        EventPayload::Order(order) => {
            facts.extend(order_facts(order).into_iter().map(|(_, fact)| fact));
            order_updates(order)
        }
        EventPayload::Site(snapshot) => vec![snapshot_update(snapshot)],
        EventPayload::Inventory(position) => vec![AggregateUpdate {
            key: AggregateKey::inventory(&position.site, &position.sku),
            at: position.at.as_secs_f64(),
            increments: [0.0; COUNTERS],
            gauges: Some(gauges(&[(
                crate::features::aggregates::ON_HAND,
                position.on_hand,
            )])),
        }],
    };
    let entity = match &event.payload {
        EventPayload::Shipment(s) => Some(entity_write(&Entity::Shipment(s.clone()))),
        EventPayload::Order(o) => Some(entity_write(&Entity::Order(o.clone()))),
        _ => None,
    };
    let lane_carrier = match &event.payload {
        EventPayload::Shipment(s) => Some(LaneCarrier {
            origin: s.origin.clone(),
            destination: s.destination.clone(),
            carrier: s.carrier.clone(),
        }),
        _ => None,
    };
    EventUpdates {
        event_id: event.event_id.clone(),
        updates,
        facts,
        entity,
        lane_carrier,
    }
}

/// A finished shipment counts against its carrier, its lane, its carrier-lane,
/// its origin and its destination, at the time its outcome became known.
pub fn shipment_updates(shipment: &Shipment, settings: &FeatureSettings) -> Vec<AggregateUpdate> {
    let Some(outcome) = shipment.outcome(settings.sla_grace_minutes) else {
        return Vec::new();
    };
    let mut increments = [0.0; COUNTERS];
    increments[sc::DONE] = 1.0;
    increments[sc::FAILED] = f64::from(u8::from(outcome.failed));
    increments[sc::CANCELLED] = f64::from(u8::from(outcome.cancelled));
    increments[sc::DELAY_MINUTES] = outcome.delay_minutes.min(DELAY_CAP_MINUTES);
    let at = outcome.known_at.as_secs_f64();
    let (carrier, origin, destination) =
        (&shipment.carrier, &shipment.origin, &shipment.destination);
    [
        AggregateKey::carrier(carrier),
        AggregateKey::lane(origin, destination),
        AggregateKey::carrier_lane(carrier, origin, destination),
        AggregateKey::origin(origin),
        AggregateKey::destination(destination),
    ]
    .into_iter()
    .map(|key| AggregateUpdate {
        key,
        at,
        increments,
        gauges: None,
    })
    .collect()
}

/// An open order counts as demand at its creation; a finished one counts its
/// outcome.
pub fn order_updates(order: &Order) -> Vec<AggregateUpdate> {
    match order.outcome {
        None => vec![order_created_update(order)],
        Some(outcome) => order_outcome_updates(order, outcome).to_vec(),
    }
}

/// A new order adds to its site's demand at its creation time.
pub fn order_created_update(order: &Order) -> AggregateUpdate {
    let mut increments = [0.0; COUNTERS];
    increments[sf::ORDERS] = 1.0;
    AggregateUpdate {
        key: AggregateKey::site(&order.site),
        at: order.created_at.as_secs_f64(),
        increments,
        gauges: None,
    }
}

/// A finished order counts its outcome against its site, its site serving its
/// region, and the long records of its site and of the network, at its promise
/// time (the latest moment the outcome is surely known).
pub fn order_outcome_updates(order: &Order, outcome: OrderOutcome) -> [AggregateUpdate; 4] {
    let fallout = f64::from(u8::from(outcome.is_fallout()));
    let late = f64::from(u8::from(outcome == OrderOutcome::Late));
    let at = order.promise_at.as_secs_f64();
    let mut site = [0.0; COUNTERS];
    site[sf::ORDERS_DONE] = 1.0;
    site[sf::FALLOUT] = fallout;
    site[sf::LATE] = late;
    let mut pair = [0.0; COUNTERS];
    pair[src::DONE] = 1.0;
    pair[src::FALLOUT] = fallout;
    pair[src::LATE] = late;
    [
        AggregateUpdate {
            key: AggregateKey::site(&order.site),
            at,
            increments: site,
            gauges: None,
        },
        AggregateUpdate {
            key: AggregateKey::site_region(&order.site, &order.destination_region),
            at,
            increments: pair,
            gauges: None,
        },
        AggregateUpdate {
            key: AggregateKey::site_history(&order.site),
            at,
            increments: pair,
            gauges: None,
        },
        AggregateUpdate {
            key: AggregateKey::order_network(),
            at,
            increments: pair,
            gauges: None,
        },
    ]
}

/// A snapshot sets the site's gauges and adds to its snapshot counters.
pub fn snapshot_update(snapshot: &SiteSnapshot) -> AggregateUpdate {
    let mut increments = [0.0; COUNTERS];
    increments[sf::SNAPSHOTS] = 1.0;
    increments[sf::BACKLOG_SUM] = snapshot.backlog;
    let picked_per_hour = snapshot.units_picked / (snapshot.period_minutes / 60.0);
    AggregateUpdate {
        key: AggregateKey::site(&snapshot.site),
        at: snapshot.at.as_secs_f64(),
        increments,
        gauges: Some(gauges(&[
            (sf::BACKLOG, snapshot.backlog),
            (sf::LABOUR, snapshot.labour),
            (sf::PICKED_PER_HOUR, picked_per_hour),
            (sf::DOCK_UTILISATION, snapshot.dock_utilisation),
        ])),
    }
}

fn gauges(values: &[(usize, f64)]) -> [f64; MAX_GAUGES] {
    let mut out = [0.0; MAX_GAUGES];
    for &(index, value) in values {
        out[index] = value;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::OrderPriority;

    fn order(outcome: Option<OrderOutcome>) -> Event {
        Event {
            event_id: "e".into(),
            payload: EventPayload::Order(Order {
                progress: Default::default(),
                order_id: "O".into(),
                created_at: Timestamp(1_000 * 3_600_000),
                channel: "web".into(),
                site: "ATL".into(),
                destination_region: "JFK".into(),
                promise_at: Timestamp(1_048 * 3_600_000),
                line_count: 1,
                units: 1.0,
                priority: OrderPriority::Standard,
                outcome,
            }),
        }
    }

    #[test]
    fn nothing_is_dated_after_it_was_received() {
        let settings = FeatureSettings::default();
        let received = Timestamp(1_010 * 3_600_000);
        // Shipped on time, reported ten hours in, before its promise (hour 1048).
        let finished = updates_received(
            &order(Some(OrderOutcome::ShippedOnTime)),
            &settings,
            received,
        );
        assert!(
            finished
                .updates
                .iter()
                .all(|u| u.at == received.as_secs_f64())
        );
        // Created at hour 1000, received at 1010: keeps its own time.
        let created = updates_received(&order(None), &settings, received);
        assert_eq!(created.updates[0].at, 1_000.0 * 3_600.0);
    }
}
