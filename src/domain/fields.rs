//! Checked constructors of the entities: each takes the raw fields as a source
//! gave them and returns the entity or the first rule it breaks
//! ([`super::validate`]), fields checked in a fixed order. The gRPC API and the
//! trainer's CSV reader both build entities only through these, so one set of
//! rules holds for both.

use super::validate::{self, FieldError, TimeInput};
use super::{
    InventoryPosition, Order, OrderOutcome, OrderPriority, OrderProgress, Shipment, ShipmentStatus,
    SiteSnapshot, Tracking,
};

/// Length of a site snapshot's period when the source does not say.
pub const DEFAULT_PERIOD_MINUTES: f64 = 60.0;
/// Shortest snapshot period accepted, in minutes.
pub const MIN_PERIOD_MINUTES: f64 = 1.0;
/// Longest snapshot period accepted: one week, in minutes.
pub const MAX_PERIOD_MINUTES: f64 = 10_080.0;
/// Most lines one order may have.
pub const MAX_LINE_COUNT: u32 = 100_000;

/// What [`Shipment::new`] checks.
#[derive(Debug, Clone)]
pub struct ShipmentFields<'a> {
    /// An id ([`validate::id`]).
    pub shipment_id: &'a str,
    /// A carrier code ([`validate::code`]).
    pub carrier: &'a str,
    /// A location code.
    pub origin: &'a str,
    /// A location code.
    pub destination: &'a str,
    /// Required.
    pub scheduled_departure: TimeInput,
    /// Required; not before the departure.
    pub scheduled_arrival: TimeInput,
    /// Optional.
    pub actual_departure: TimeInput,
    /// Required when delivered.
    pub actual_arrival: TimeInput,
    /// Where the leg stands.
    pub status: ShipmentStatus,
    /// The carrier's exception reason, a code; empty when none.
    pub exception: &'a str,
    /// Optional; not before the scheduled departure.
    pub estimated_arrival: TimeInput,
    /// Optional.
    pub reported_at: TimeInput,
}

impl Shipment {
    /// A shipment leg whose fields keep the rules: an id, three codes, scheduled
    /// times in order, and an actual arrival once delivered.
    pub fn new(f: ShipmentFields<'_>) -> Result<Shipment, FieldError> {
        let shipment = Shipment {
            shipment_id: validate::id(f.shipment_id, "shipment_id")?,
            carrier: validate::code(f.carrier, "carrier")?,
            origin: validate::code(f.origin, "origin")?,
            destination: validate::code(f.destination, "destination")?,
            scheduled_departure: validate::time(f.scheduled_departure, "scheduled_departure")?,
            scheduled_arrival: validate::time(f.scheduled_arrival, "scheduled_arrival")?,
            actual_departure: validate::optional_time(f.actual_departure, "actual_departure")?,
            actual_arrival: validate::optional_time(f.actual_arrival, "actual_arrival")?,
            status: f.status,
            tracking: Tracking {
                exception: match f.exception {
                    "" => None,
                    code => Some(validate::code(code, "exception")?),
                },
                estimated_arrival: validate::optional_time(
                    f.estimated_arrival,
                    "estimated_arrival",
                )?,
                reported_at: validate::optional_time(f.reported_at, "reported_at")?,
            },
        };
        if shipment
            .tracking
            .estimated_arrival
            .is_some_and(|eta| eta < shipment.scheduled_departure)
        {
            return Err(FieldError::new(
                "estimated_arrival",
                "is before scheduled_departure",
            ));
        }
        if shipment.scheduled_arrival < shipment.scheduled_departure {
            return Err(FieldError::new(
                "scheduled_arrival",
                "is before scheduled_departure",
            ));
        }
        if shipment.status == ShipmentStatus::Planned {
            for (field, time) in [
                ("actual_departure", shipment.actual_departure),
                ("actual_arrival", shipment.actual_arrival),
            ] {
                if time.is_some() {
                    return Err(FieldError::new(
                        field,
                        "must be empty when status is PLANNED (the leg has not left)",
                    ));
                }
            }
        }
        if shipment.status == ShipmentStatus::Delivered && shipment.actual_arrival.is_none() {
            return Err(FieldError::new(
                "actual_arrival",
                "is required when status is DELIVERED",
            ));
        }
        Ok(shipment)
    }
}

/// What [`Order::new`] checks.
#[derive(Debug, Clone)]
pub struct OrderFields<'a> {
    /// An id ([`validate::id`]).
    pub order_id: &'a str,
    /// Required.
    pub created_at: TimeInput,
    /// Free-form, at most 64 characters ([`validate::label`]).
    pub channel: &'a str,
    /// The assigned site's code.
    pub site: &'a str,
    /// A location code.
    pub destination_region: &'a str,
    /// Required; not before the creation.
    pub promise_at: TimeInput,
    /// At least 1.
    pub line_count: u32,
    /// A quantity ([`validate::quantity`]).
    pub units: f64,
    /// How urgently it was promised.
    pub priority: OrderPriority,
    /// `None` while open.
    pub outcome: Option<OrderOutcome>,
    /// Optional; the steps not before the creation nor before the step
    /// ahead of them.
    pub allocated_at: TimeInput,
    /// Optional.
    pub released_at: TimeInput,
    /// Optional.
    pub picked_at: TimeInput,
    /// Optional.
    pub shipped_at: TimeInput,
}

impl Order {
    /// An order whose fields keep the rules: an id, codes, a promise no earlier
    /// than the creation, at least one line and a quantity of units.
    pub fn new(f: OrderFields<'_>) -> Result<Order, FieldError> {
        let order = Order {
            order_id: validate::id(f.order_id, "order_id")?,
            created_at: validate::time(f.created_at, "created_at")?,
            channel: validate::label(f.channel, "channel")?,
            site: validate::code(f.site, "site")?,
            destination_region: validate::code(f.destination_region, "destination_region")?,
            promise_at: validate::time(f.promise_at, "promise_at")?,
            line_count: f.line_count,
            units: validate::quantity(f.units, "units")?,
            priority: f.priority,
            outcome: f.outcome,
            progress: OrderProgress {
                allocated_at: validate::optional_time(f.allocated_at, "allocated_at")?,
                released_at: validate::optional_time(f.released_at, "released_at")?,
                picked_at: validate::optional_time(f.picked_at, "picked_at")?,
                shipped_at: validate::optional_time(f.shipped_at, "shipped_at")?,
            },
        };
        let mut ahead = ("created_at", order.created_at);
        for (field, at) in order.progress.steps() {
            if let Some(at) = at {
                if at < ahead.1 {
                    return Err(FieldError::new(field, format!("is before {}", ahead.0)));
                }
                ahead = (field, at);
            }
        }
        if !(1..=MAX_LINE_COUNT).contains(&order.line_count) {
            return Err(FieldError::new(
                "line_count",
                format!("must be within [1, {MAX_LINE_COUNT}]"),
            ));
        }
        if order.promise_at < order.created_at {
            return Err(FieldError::new("promise_at", "is before created_at"));
        }
        Ok(order)
    }
}

/// What [`SiteSnapshot::new`] checks.
#[derive(Debug, Clone)]
pub struct SiteSnapshotFields<'a> {
    /// The site's code.
    pub site: &'a str,
    /// Required.
    pub at: TimeInput,
    /// Orders waiting; a quantity.
    pub backlog: f64,
    /// People on shift; a quantity.
    pub labour: f64,
    /// Units picked in the period; a quantity.
    pub units_picked: f64,
    /// [`DEFAULT_PERIOD_MINUTES`] when `None`.
    pub period_minutes: Option<f64>,
    /// Within [0, 1].
    pub dock_utilisation: f64,
}

impl SiteSnapshot {
    /// A snapshot whose fields keep the rules: a site code, a time, quantities
    /// within [0, 1e9], a period of a minute to a week and a dock share within
    /// [0, 1].
    pub fn new(f: SiteSnapshotFields<'_>) -> Result<SiteSnapshot, FieldError> {
        let period_minutes = match f.period_minutes {
            None => DEFAULT_PERIOD_MINUTES,
            Some(minutes) => {
                let minutes = validate::quantity(minutes, "period_minutes")?;
                if !(MIN_PERIOD_MINUTES..=MAX_PERIOD_MINUTES).contains(&minutes) {
                    // Units per hour are read from it: a vanishing period
                    // would make them infinite.
                    return Err(FieldError::new(
                        "period_minutes",
                        format!(
                            "must be within [{MIN_PERIOD_MINUTES}, {MAX_PERIOD_MINUTES}] (or unset for 60)"
                        ),
                    ));
                }
                minutes
            }
        };
        let dock_utilisation = validate::share(f.dock_utilisation, "dock_utilisation")?;
        Ok(SiteSnapshot {
            site: validate::code(f.site, "site")?,
            at: validate::time(f.at, "at")?,
            backlog: validate::quantity(f.backlog, "backlog")?,
            labour: validate::quantity(f.labour, "labour")?,
            units_picked: validate::quantity(f.units_picked, "units_picked")?,
            period_minutes,
            dock_utilisation,
        })
    }
}

/// What [`InventoryPosition::new`] checks.
#[derive(Debug, Clone)]
pub struct InventoryFields<'a> {
    /// The site's code.
    pub site: &'a str,
    /// The SKU's code.
    pub sku: &'a str,
    /// A quantity.
    pub on_hand: f64,
    /// Required.
    pub at: TimeInput,
}

impl InventoryPosition {
    /// A stock position whose fields keep the rules: two codes, a quantity and
    /// a time.
    pub fn new(f: InventoryFields<'_>) -> Result<InventoryPosition, FieldError> {
        Ok(InventoryPosition {
            site: validate::code(f.site, "site")?,
            sku: validate::code(f.sku, "sku")?,
            on_hand: validate::quantity(f.on_hand, "on_hand")?,
            at: validate::time(f.at, "at")?,
        })
    }
}
