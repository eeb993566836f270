//! The stages of a leg's and an order's life that count once for it, however
//! many reports carry them: each a *fact* with an id made of the stage and the
//! entity, and what it changes.

use crate::domain::{Order, Shipment, ShipmentStatus, Timestamp};

use super::super::aggregates::{
    AggregateKey, AggregateUpdate, flow_counters as flow, slot_counters, slot_of,
};
use super::super::entities::EntityKey;
use super::{COUNTERS, EventUpdates, FeatureSettings, movement, shipment_updates};

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
