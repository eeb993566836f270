//! Wire ↔ domain: validates `pb` messages into domain types, naming the field at
//! fault, and renders assessments back. `at` is the path of the message being
//! read ("shipment", "items[3].order", "events[0].site"), used only in errors.

use crate::domain::{
    Event, EventPayload, InventoryPosition, Order, OrderOutcome, OrderPriority, RiskBand, RiskKind,
    Shipment, ShipmentStatus, SiteSnapshot, Timestamp,
};
use crate::pb;
use crate::scoring::{Assessment, ScoreTarget};

use super::ApiError;

/// Longest id accepted (event, order and shipment ids).
const MAX_ID_LEN: usize = 128;
/// Longest code accepted (carriers, sites, locations, SKUs).
const MAX_CODE_LEN: usize = 64;

type Result<T> = std::result::Result<T, ApiError>;

fn field(at: &str, name: &str) -> String {
    if at.is_empty() {
        name.to_string()
    } else {
        format!("{at}.{name}")
    }
}

/// A required id: 1..=128 characters, no whitespace or control characters.
pub fn id(value: &str, at: &str, name: &str) -> Result<String> {
    if value.is_empty() {
        return Err(ApiError::invalid(field(at, name), "is required"));
    }
    if value.len() > MAX_ID_LEN || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ApiError::invalid(
            field(at, name),
            format!("must be 1 to {MAX_ID_LEN} characters with no spaces"),
        ));
    }
    Ok(value.to_string())
}

/// A required code (carrier, site, location, SKU): at most 64 characters, no
/// control characters and no ':' (the separator of feature-store keys).
/// Surrounding spaces are trimmed; inner spaces are kept ("New York").
pub fn code(value: &str, at: &str, name: &str) -> Result<String> {
    let value = value.trim();
    if value.is_empty() {
        return Err(ApiError::invalid(field(at, name), "is required"));
    }
    if value.chars().count() > MAX_CODE_LEN || value.chars().any(|c| c.is_control() || c == ':') {
        return Err(ApiError::invalid(
            field(at, name),
            format!("{value:?} is not a code (at most {MAX_CODE_LEN} characters, no ':')"),
        ));
    }
    Ok(value.to_string())
}

/// A required RFC 3339 time.
pub fn time(value: &str, at: &str, name: &str) -> Result<Timestamp> {
    if value.is_empty() {
        return Err(ApiError::invalid(
            field(at, name),
            "is required (RFC 3339 time)",
        ));
    }
    optional_time(value, at, name).map(|t| t.expect("non-empty"))
}

/// An optional RFC 3339 time (empty is `None`).
pub fn optional_time(value: &str, at: &str, name: &str) -> Result<Option<Timestamp>> {
    if value.is_empty() {
        return Ok(None);
    }
    Timestamp::parse_rfc3339(value).map(Some).map_err(|e| {
        ApiError::invalid(
            field(at, name),
            format!("{value:?} is not an RFC 3339 time ({e})"),
        )
    })
}

/// A finite quantity ≥ 0.
pub fn quantity(value: f64, at: &str, name: &str) -> Result<f64> {
    if value.is_finite() && value >= 0.0 {
        Ok(value)
    } else {
        Err(ApiError::invalid(
            field(at, name),
            format!("must be a finite number ≥ 0, got {value}"),
        ))
    }
}

fn enum_value<E: TryFrom<i32>>(value: i32, at: &str, name: &str) -> Result<E> {
    E::try_from(value)
        .map_err(|_| ApiError::invalid(field(at, name), format!("unknown enum value {value}")))
}

/// A shipment leg.
pub fn shipment(message: Option<&pb::Shipment>, at: &str) -> Result<Shipment> {
    let m = message.ok_or_else(|| ApiError::invalid(at, "is required"))?;
    let status = match enum_value::<pb::ShipmentStatus>(m.status, at, "status")? {
        pb::ShipmentStatus::Unspecified | pb::ShipmentStatus::InTransit => {
            ShipmentStatus::InTransit
        }
        pb::ShipmentStatus::Delivered => ShipmentStatus::Delivered,
        pb::ShipmentStatus::Cancelled => ShipmentStatus::Cancelled,
    };
    let shipment = Shipment {
        shipment_id: id(&m.shipment_id, at, "shipment_id")?,
        carrier: code(&m.carrier, at, "carrier")?,
        origin: code(&m.origin, at, "origin")?,
        destination: code(&m.destination, at, "destination")?,
        scheduled_departure: time(&m.scheduled_departure, at, "scheduled_departure")?,
        scheduled_arrival: time(&m.scheduled_arrival, at, "scheduled_arrival")?,
        actual_departure: optional_time(&m.actual_departure, at, "actual_departure")?,
        actual_arrival: optional_time(&m.actual_arrival, at, "actual_arrival")?,
        status,
    };
    if shipment.scheduled_arrival < shipment.scheduled_departure {
        return Err(ApiError::invalid(
            field(at, "scheduled_arrival"),
            "is before scheduled_departure",
        ));
    }
    if status == ShipmentStatus::Delivered && shipment.actual_arrival.is_none() {
        return Err(ApiError::invalid(
            field(at, "actual_arrival"),
            "is required when status is DELIVERED",
        ));
    }
    Ok(shipment)
}

/// An order.
pub fn order(message: Option<&pb::Order>, at: &str) -> Result<Order> {
    let m = message.ok_or_else(|| ApiError::invalid(at, "is required"))?;
    let priority = match enum_value::<pb::OrderPriority>(m.priority, at, "priority")? {
        pb::OrderPriority::Unspecified | pb::OrderPriority::Standard => OrderPriority::Standard,
        pb::OrderPriority::Express => OrderPriority::Express,
    };
    let outcome = match enum_value::<pb::OrderOutcome>(m.outcome, at, "outcome")? {
        pb::OrderOutcome::Unspecified => None,
        pb::OrderOutcome::ShippedOnTime => Some(OrderOutcome::ShippedOnTime),
        pb::OrderOutcome::Late => Some(OrderOutcome::Late),
        pb::OrderOutcome::Cancelled => Some(OrderOutcome::Cancelled),
        pb::OrderOutcome::Backordered => Some(OrderOutcome::Backordered),
    };
    let order = Order {
        order_id: id(&m.order_id, at, "order_id")?,
        created_at: time(&m.created_at, at, "created_at")?,
        channel: m.channel.clone(),
        site: code(&m.site, at, "site")?,
        destination_region: code(&m.destination_region, at, "destination_region")?,
        promise_at: time(&m.promise_at, at, "promise_at")?,
        line_count: m.line_count,
        units: quantity(m.units, at, "units")?,
        priority,
        outcome,
    };
    if order.line_count == 0 {
        return Err(ApiError::invalid(
            field(at, "line_count"),
            "must be at least 1",
        ));
    }
    if order.promise_at < order.created_at {
        return Err(ApiError::invalid(
            field(at, "promise_at"),
            "is before created_at",
        ));
    }
    Ok(order)
}

/// A site snapshot.
pub fn site_snapshot(message: &pb::SiteSnapshot, at: &str) -> Result<SiteSnapshot> {
    let period_minutes = if message.period_minutes == 0.0 {
        60.0
    } else {
        quantity(message.period_minutes, at, "period_minutes")?
    };
    let dock = quantity(message.dock_utilisation, at, "dock_utilisation")?;
    if dock > 1.0 {
        return Err(ApiError::invalid(
            field(at, "dock_utilisation"),
            format!("must be within [0, 1], got {dock}"),
        ));
    }
    Ok(SiteSnapshot {
        site: code(&message.site, at, "site")?,
        at: time(&message.at, at, "at")?,
        backlog: quantity(message.backlog, at, "backlog")?,
        labour: quantity(message.labour, at, "labour")?,
        units_picked: quantity(message.units_picked, at, "units_picked")?,
        period_minutes,
        dock_utilisation: dock,
    })
}

/// An inventory position.
pub fn inventory(message: &pb::InventoryPosition, at: &str) -> Result<InventoryPosition> {
    Ok(InventoryPosition {
        site: code(&message.site, at, "site")?,
        sku: code(&message.sku, at, "sku")?,
        on_hand: quantity(message.on_hand, at, "on_hand")?,
        at: time(&message.at, at, "at")?,
    })
}

/// An event of an ingest request; `at` is "events[i]".
pub fn event(message: &pb::Event, at: &str) -> Result<Event> {
    use pb::event::Payload;
    let event_id = id(&message.event_id, at, "event_id")?;
    let payload = match &message.payload {
        None => {
            return Err(ApiError::invalid(
                field(at, "payload"),
                "one of shipment, order, site, inventory is required",
            ));
        }
        Some(Payload::Shipment(m)) => {
            EventPayload::Shipment(shipment(Some(m), &field(at, "shipment"))?)
        }
        Some(Payload::Order(m)) => EventPayload::Order(order(Some(m), &field(at, "order"))?),
        Some(Payload::Site(m)) => EventPayload::Site(site_snapshot(m, &field(at, "site"))?),
        Some(Payload::Inventory(m)) => {
            EventPayload::Inventory(inventory(m, &field(at, "inventory"))?)
        }
    };
    Ok(Event { event_id, payload })
}

/// What `ScoreOrder` scores; decided at `as_of`, else at the order's creation.
pub fn order_target(request: &pb::ScoreOrderRequest, at: &str) -> Result<ScoreTarget> {
    let order = order(request.order.as_ref(), &field(at, "order"))?;
    let as_of = optional_time(&request.as_of, at, "as_of")?.unwrap_or(order.created_at);
    Ok(ScoreTarget::Order { order, as_of })
}

/// What `ScoreShipment` scores; decided at `as_of`, else at scheduled departure.
pub fn shipment_target(request: &pb::ScoreShipmentRequest, at: &str) -> Result<ScoreTarget> {
    let shipment = shipment(request.shipment.as_ref(), &field(at, "shipment"))?;
    let as_of = optional_time(&request.as_of, at, "as_of")?.unwrap_or(shipment.scheduled_departure);
    Ok(ScoreTarget::Shipment { shipment, as_of })
}

/// What `ScoreSite` scores; decided at `as_of`, else now.
pub fn site_target(request: &pb::ScoreSiteRequest, at: &str) -> Result<ScoreTarget> {
    Ok(ScoreTarget::Site {
        site: code(&request.site, at, "site")?,
        as_of: optional_time(&request.as_of, at, "as_of")?.unwrap_or_else(Timestamp::now),
    })
}

/// One item of a batch or stream; `at` is "items[i]" (or "" in a stream).
pub fn item_target(item: &pb::ScoreItem, at: &str) -> Result<ScoreTarget> {
    use pb::score_item::Entity;
    match &item.entity {
        None => Err(ApiError::invalid(
            field(at, "entity"),
            "one of order, shipment, site is required",
        )),
        Some(Entity::Order(request)) => order_target(request, &field(at, "order")),
        Some(Entity::Shipment(request)) => shipment_target(request, &field(at, "shipment")),
        Some(Entity::Site(request)) => site_target(request, &field(at, "site")),
    }
}

/// An assessment on the wire.
pub fn risk_score(assessment: Assessment) -> pb::RiskScore {
    let band = match assessment.band {
        RiskBand::Low => pb::RiskBand::Low,
        RiskBand::Medium => pb::RiskBand::Medium,
        RiskBand::High => pb::RiskBand::High,
    };
    pb::RiskScore {
        degraded: assessment.degraded(),
        entity_id: assessment.entity_id,
        kind: wire_kind(assessment.kind),
        probability: assessment.probability,
        band: band as i32,
        model_name: assessment.model_name,
        model_version: assessment.model_version,
        factors: assessment
            .factors
            .into_iter()
            .map(|f| pb::Factor {
                feature: f.feature.to_string(),
                value: f.value,
                contribution: f.contribution,
                unit: f.unit.to_string(),
            })
            .collect(),
        degraded_reasons: assessment.degraded_reasons,
    }
}

/// The wire value of a family: the `detour.v1.RiskKind` value named
/// `RISK_KIND_` + the family's name in capitals, so a new family needs only its
/// enum value in the proto (checked by a test for every family).
fn wire_kind(kind: RiskKind) -> i32 {
    static WIRE: std::sync::LazyLock<[i32; RiskKind::ALL.len()]> = std::sync::LazyLock::new(|| {
        RiskKind::ALL.map(|kind| {
            let name = format!("RISK_KIND_{}", kind.name().to_ascii_uppercase());
            pb::RiskKind::from_str_name(&name).map_or(0, |value| value as i32)
        })
    });
    WIRE[kind.index()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_has_its_own_wire_value() {
        let values: Vec<i32> = RiskKind::ALL.into_iter().map(wire_kind).collect();
        assert_eq!(values[0], pb::RiskKind::OrderFallout as i32);
        assert_eq!(values[2], pb::RiskKind::CarrierFailure as i32);
        let mut distinct = values.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), values.len());
        assert!(values.iter().all(|&v| v != 0), "{values:?}");
    }
}
