//! Ingested orders and shipments, kept so later calls can name them by id, and
//! the carriers seen on each lane. Both are written by ingest beside the
//! aggregates, in the same atomic, deduplicated step.

use crate::domain::{Order, Shipment, ShipmentStatus};

/// An ingested entity.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Entity {
    /// The latest state of a shipment leg.
    Shipment(Shipment),
    /// The latest state of an order.
    Order(Order),
}

/// Names an ingested entity.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EntityKey {
    /// A shipment leg, by its shipment id.
    Shipment(String),
    /// An order, by its order id.
    Order(String),
}

impl EntityKey {
    /// The key segment after the namespace ("shipment:S-1").
    pub fn suffix(&self) -> String {
        match self {
            EntityKey::Shipment(id) => format!("shipment:{id}"),
            EntityKey::Order(id) => format!("order:{id}"),
        }
    }
}

/// An entity as an event stores it, with the version that orders its states: a
/// later stage always beats an earlier one (a leg: planned, in transit,
/// finished; an order: open with 0 to 4 of its site's steps done, finished),
/// so a late re-delivery of an old stage never overwrites a newer one. Within
/// a stage an order's later creation time wins, a finished leg's later
/// arrival, an unfinished leg's later carrier report (`reported_at`), and
/// otherwise the report applied last.
#[derive(Debug, Clone, PartialEq)]
pub struct EntityWrite {
    /// Which entity it is.
    pub key: EntityKey,
    /// The stage times 1e15 plus the state's time in milliseconds; a stored
    /// state is never replaced by one of a lower version.
    pub version: f64,
    /// The state to store.
    pub entity: Entity,
}

/// A carrier seen serving a lane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaneCarrier {
    /// Location code the lane leaves from.
    pub origin: String,
    /// Location code the lane goes to.
    pub destination: String,
    /// Carrier code seen on the lane.
    pub carrier: String,
}

/// What an order or shipment event stores about its entity.
pub fn entity_write(entity: &Entity) -> EntityWrite {
    // Above any millisecond time RFC 3339 can write (year 9999 is 2.5e14), and
    // exact in a double with it added.
    const STAGE: f64 = 1e15;
    match entity {
        Entity::Shipment(s) => {
            // In transit without a departure is still planned. Within a stage
            // the report applied last wins, except that a finished leg keeps
            // its latest arrival (a corrected one).
            let stage = match (s.status, s.actual_departure) {
                (ShipmentStatus::InTransit, None) => 0,
                (status, _) => status.stage(),
            };
            let at = if stage == 2 {
                s.actual_arrival.unwrap_or(s.scheduled_departure).0 as f64
            } else {
                // A carrier's later report of the same stage wins.
                s.tracking.reported_at.map_or(0.0, |t| t.0 as f64)
            };
            EntityWrite {
                key: EntityKey::Shipment(s.shipment_id.clone()),
                version: f64::from(stage) * STAGE + at,
                entity: entity.clone(),
            }
        }
        Entity::Order(o) => EntityWrite {
            key: EntityKey::Order(o.order_id.clone()),
            // Open with more steps done, then finished.
            version: f64::from(if o.outcome.is_some() {
                5
            } else {
                o.progress.done()
            }) * STAGE
                + o.created_at.0 as f64,
            entity: entity.clone(),
        },
    }
}
