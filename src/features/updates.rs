//! What each event changes: the one definition of how history becomes aggregates,
//! used by both backends and by the trainer's replay.

use crate::domain::{
    Event, EventPayload, Order, OrderOutcome, Shipment, ShipmentStatus, SiteSnapshot, Timestamp,
};

use super::aggregates::{
    AggregateKey, AggregateUpdate, MAX_GAUGES, WINDOW_COUNT, flow_counters as flow,
    movement_counters as mc, shipment_counters as sc, site_fields as sf,
    site_region_counters as src, slot_counters, slot_of,
};
use super::entities::{Entity, EntityKey, EntityWrite, LaneCarrier, entity_write};

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

/// A stage of a leg's life and what it changes. Its id is the leg's and the
/// stage's, so the second event that reports the same stage (a delivery after
/// a departure report, both carrying the departure) changes nothing more.
#[derive(Debug, Clone, PartialEq)]
pub struct Fact {
    /// `\u{1f}` + stage + `:` + shipment id; event ids hold no control
    /// characters, so no event id is a fact id.
    pub id: String,
    /// The changes, at the time the stage happened.
    pub updates: Vec<AggregateUpdate>,
}

/// What every fact id starts with ([`Fact::id`]).
pub const FACT_PREFIX: char = '\u{1f}';

/// Whether an id is a fact's rather than an event's.
pub fn is_fact_id(id: &str) -> bool {
    id.starts_with(FACT_PREFIX)
}

/// A stage of a leg's or an order's life that counts once for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// A leg announced: counted in its departure slot.
    Planned,
    /// A leg left, or was cancelled.
    Gone,
    /// A leg finished: its outcome counted.
    Done,
    /// A leg flagged by its carrier (an exception, or a late estimate).
    Flagged,
    /// An order allocated to its site.
    Allocated,
    /// An order released to the floor.
    Released,
    /// An order picked.
    Picked,
    /// An order shipped from its site.
    Shipped,
}

impl Stage {
    /// Every stage: a leg's, then an order's.
    pub const ALL: [Stage; 8] = [
        Stage::Planned,
        Stage::Gone,
        Stage::Done,
        Stage::Flagged,
        Stage::Allocated,
        Stage::Released,
        Stage::Picked,
        Stage::Shipped,
    ];

    /// The stage's name in a fact id.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Planned => "planned",
            Stage::Gone => "gone",
            Stage::Done => "done",
            Stage::Flagged => "flagged",
            Stage::Allocated => "allocated",
            Stage::Released => "released",
            Stage::Picked => "picked",
            Stage::Shipped => "shipped",
        }
    }

    /// The entity whose stage this is, for the id of a leg or an order.
    pub fn entity(self, id: &str) -> EntityKey {
        match self {
            Stage::Planned | Stage::Gone | Stage::Done | Stage::Flagged => {
                EntityKey::Shipment(id.to_string())
            }
            _ => EntityKey::Order(id.to_string()),
        }
    }

    /// The stage's bit in a mask of the stages counted for a leg.
    pub fn bit(self) -> u8 {
        1 << (self as u8)
    }

    /// The id of this stage's fact for the leg or order `id`.
    pub fn fact_id(self, id: &str) -> String {
        format!("{FACT_PREFIX}{}:{id}", self.name())
    }
}

/// The stage and the leg's or order's id a fact id names, if it is one.
pub fn parse_fact_id(id: &str) -> Option<(Stage, &str)> {
    let (stage, entity_id) = id.strip_prefix(FACT_PREFIX)?.split_once(':')?;
    let stage = Stage::ALL.into_iter().find(|s| s.name() == stage)?;
    Some((stage, entity_id))
}

/// The stages of one leg that its state shows.
#[derive(Debug, Clone, PartialEq)]
pub struct LegFacts {
    /// The leg is announced: it counts in the schedule of its departure slot at
    /// the origin.
    pub planned: Fact,
    /// The leg has left (counted in the departure records at its actual
    /// departure, late or not) or was cancelled; either way it leaves its
    /// departure slot's backlog.
    pub gone: Option<(Timestamp, Fact)>,
    /// The leg finished: its outcome counts against its carrier, lane,
    /// carrier-lane, origin and destination.
    pub done: Option<(Timestamp, Fact)>,
    /// Its carrier flagged it (an exception, or an estimated arrival past the
    /// grace): it counts in the carrier's exceptions towards its destination
    /// and in every carrier's, at the report's time (`None`: when received).
    pub flagged: Option<(Option<Timestamp>, Fact)>,
}

/// The stages a shipment's state shows, each with the time it happened.
pub fn leg_facts(shipment: &Shipment, settings: &FeatureSettings) -> LegFacts {
    let id = |stage: Stage| stage.fact_id(&shipment.shipment_id);
    let (origin, destination) = (&shipment.origin, &shipment.destination);
    let mut planned = [0.0; COUNTERS];
    planned[slot_counters::PLANNED] = 1.0;
    let slot = |key: AggregateKey, increments: [f64; COUNTERS]| AggregateUpdate {
        key,
        at: shipment.scheduled_departure.as_secs_f64(),
        increments,
        gauges: None,
    };
    let departure_slot = slot_of(shipment.scheduled_departure.as_secs_f64());
    let planned_fact = Fact {
        id: id(Stage::Planned),
        updates: vec![slot(
            AggregateKey::departure_slot(origin, departure_slot),
            planned,
        )],
    };
    let mut gone = [0.0; COUNTERS];
    gone[slot_counters::GONE] = 1.0;
    let gone_fact = match (shipment.status, shipment.actual_departure) {
        // Cancelled, or arrived without saying when it left: it has left its
        // slot, at the latest by its scheduled time; how late is unknown.
        (ShipmentStatus::Cancelled, _) | (ShipmentStatus::Delivered, None) => Some((
            shipment.scheduled_departure,
            vec![slot(
                AggregateKey::departure_slot(origin, departure_slot),
                gone,
            )],
        )),
        (_, Some(left)) => {
            let late_minutes = left.hours_since(shipment.scheduled_departure) * 60.0;
            let departed = movement(late_minutes, settings);
            let at = left.as_secs_f64();
            let departure = |key| AggregateUpdate {
                key,
                at,
                increments: departed,
                gauges: None,
            };
            Some((
                left,
                vec![
                    departure(AggregateKey::departures(origin)),
                    departure(AggregateKey::carrier_departures(&shipment.carrier, origin)),
                    departure(AggregateKey::carrier_network_departures(&shipment.carrier)),
                    departure(AggregateKey::departures_to(destination)),
                    slot(AggregateKey::departure_slot(origin, departure_slot), gone),
                ],
            ))
        }
        _ => None,
    };
    let done = shipment.outcome(settings.sla_grace_minutes).map(|outcome| {
        let mut updates = shipment_updates(shipment, settings);
        if let (false, Some(arrived)) = (outcome.cancelled, shipment.actual_arrival) {
            let late_minutes = arrived.hours_since(shipment.scheduled_arrival) * 60.0;
            updates.push(AggregateUpdate {
                key: AggregateKey::arrivals(destination),
                at: arrived.as_secs_f64(),
                increments: movement(late_minutes, settings),
                gauges: None,
            });
        }
        (outcome.known_at, updates)
    });
    let flagged = shipment
        .tracking
        .flagged(shipment.scheduled_arrival, settings.sla_grace_minutes)
        .then(|| {
            let reported = shipment.tracking.reported_at;
            // Unreported, the latest time the leg itself shows; a live
            // report counts when received instead (`updates_received`).
            let at = reported
                .or(shipment.actual_departure)
                .unwrap_or(shipment.scheduled_departure)
                .as_secs_f64();
            let late_minutes = shipment.tracking.estimated_arrival.map_or(0.0, |eta| {
                eta.hours_since(shipment.scheduled_arrival) * 60.0
            });
            let increments = movement(late_minutes, settings);
            let update = |key| AggregateUpdate {
                key,
                at,
                increments,
                gauges: None,
            };
            (
                reported,
                Fact {
                    id: id(Stage::Flagged),
                    updates: vec![
                        update(AggregateKey::carrier_exceptions(
                            &shipment.carrier,
                            destination,
                        )),
                        update(AggregateKey::exceptions_to(destination)),
                    ],
                },
            )
        });
    LegFacts {
        flagged,
        planned: planned_fact,
        gone: gone_fact.map(|(at, updates)| {
            (
                at,
                Fact {
                    id: id(Stage::Gone),
                    updates,
                },
            )
        }),
        done: done.map(|(at, updates)| {
            (
                at,
                Fact {
                    id: id(Stage::Done),
                    updates,
                },
            )
        }),
    }
}

/// Events as a store applies them: each event, then each of its facts as an
/// event of its own (the fact's id, its updates, nothing else), so the stores'
/// deduplication by id counts a leg's stage once. Returns the run and the
/// position of each event in it (the outcomes that are the events').
pub fn with_facts(events: Vec<EventUpdates>) -> (Vec<EventUpdates>, Vec<usize>) {
    let total = events.iter().map(|e| 1 + e.facts.len()).sum();
    let mut run = Vec::with_capacity(total);
    let mut positions = Vec::with_capacity(events.len());
    for mut event in events {
        let facts = std::mem::take(&mut event.facts);
        positions.push(run.len());
        run.push(event);
        run.extend(facts.into_iter().map(|fact| EventUpdates {
            event_id: fact.id,
            updates: fact.updates,
            facts: Vec::new(),
            entity: None,
            lane_carrier: None,
        }));
    }
    (run, positions)
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

/// The steps a site took an order through, each a fact counted once per order
/// in the site's flow at the step's time.
pub fn order_facts(order: &Order) -> Vec<(Timestamp, Fact)> {
    let steps = [
        (
            Stage::Allocated,
            order.progress.allocated_at,
            flow::ALLOCATED,
        ),
        (Stage::Released, order.progress.released_at, flow::RELEASED),
        (Stage::Picked, order.progress.picked_at, flow::PICKED),
        (Stage::Shipped, order.progress.shipped_at, flow::SHIPPED),
    ];
    steps
        .into_iter()
        .filter_map(|(stage, at, counter)| {
            let at = at?;
            let mut increments = [0.0; COUNTERS];
            increments[counter] = 1.0;
            let fact = Fact {
                id: stage.fact_id(&order.order_id),
                updates: vec![AggregateUpdate {
                    key: AggregateKey::site_flow(&order.site),
                    at: at.as_secs_f64(),
                    increments,
                    gauges: None,
                }],
            };
            Some((at, fact))
        })
        .collect()
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

    #[test]
    fn fact_ids_name_their_stage_and_leg() {
        for stage in Stage::ALL {
            let id = stage.fact_id("S:1");
            assert!(is_fact_id(&id));
            assert_eq!(parse_fact_id(&id), Some((stage, "S:1")));
        }
        assert_eq!(parse_fact_id("done:S-1"), None);
        assert_eq!(parse_fact_id("\u{1f}lost:S-1"), None);
        let bits: Vec<u8> = Stage::ALL.iter().map(|s| s.bit()).collect();
        assert_eq!(
            bits,
            [1, 2, 4, 8, 16, 32, 64, 128],
            "one bit each, in a byte"
        );
    }

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
