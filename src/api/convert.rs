//! Wire ↔ domain: maps `pb` messages onto the domain's checked constructors and
//! renders assessments back. The rules live in the domain
//! ([`crate::domain::validate`]); this module adds what only the wire knows (enum
//! numbers, proto3's zero defaults, protobuf's Timestamp range) and the path of
//! the message being read (`"shipment"`, `"items[3].order"`,
//! `"events[0].site"`), which it puts in front of the domain's field name in
//! errors.

use crate::domain::validate::{self, FieldError, TimeInput};
use crate::domain::{
    Event, EventPayload, InventoryFields, InventoryPosition, Order, OrderFields, OrderOutcome,
    OrderPriority, RiskBand, Shipment, ShipmentFields, ShipmentStatus, SiteSnapshot,
    SiteSnapshotFields, Timestamp,
};
use crate::pb;
use crate::schema::RiskKind;
use crate::scoring::{Assessment, ScoreTarget};

use super::ApiError;

type Result<T> = std::result::Result<T, ApiError>;

/// protobuf's Timestamp range: 0001-01-01T00:00:00Z ..= 9999-12-31T23:59:59Z.
const MIN_WIRE_SECONDS: i64 = -62_135_596_800;
const MAX_WIRE_SECONDS: i64 = 253_402_300_799;

pub(super) fn field(at: &str, name: &str) -> String {
    if at.is_empty() {
        name.to_string()
    } else {
        format!("{at}.{name}")
    }
}

/// A domain rule broken at `at`: INVALID_ARGUMENT naming the whole path.
fn invalid_at(at: &str) -> impl Fn(FieldError) -> ApiError + '_ {
    move |error| ApiError::from(error.under(at))
}

/// A required id: 1..=128 characters, no whitespace or control characters.
pub fn id(value: &str, at: &str, name: &str) -> Result<String> {
    validate::id(value, name).map_err(invalid_at(at))
}

/// A required code (carrier, site, location, SKU); see [`validate::code`].
pub fn code(value: &str, at: &str, name: &str) -> Result<String> {
    validate::code(value, name).map_err(invalid_at(at))
}

/// A finite quantity within [0, 1e9] ([`validate::quantity`]).
pub fn quantity(value: f64, at: &str, name: &str) -> Result<f64> {
    validate::quantity(value, name).map_err(invalid_at(at))
}

/// A wire time as the domain's rules take it: unset is absent, a Timestamp
/// outside protobuf's range (seconds or nanos) is malformed.
pub fn time_input(value: Option<&prost_types::Timestamp>) -> TimeInput {
    let Some(t) = value else {
        return TimeInput::Absent;
    };
    if !(MIN_WIRE_SECONDS..=MAX_WIRE_SECONDS).contains(&t.seconds) {
        return TimeInput::Malformed(format!(
            "seconds {} is outside protobuf's Timestamp range (years 1 to 9999)",
            t.seconds
        ));
    }
    if !(0..1_000_000_000).contains(&t.nanos) {
        return TimeInput::Malformed(format!(
            "nanos {} is outside protobuf's Timestamp range (0 to 999999999)",
            t.nanos
        ));
    }
    // Milliseconds are the domain's resolution; finer digits are dropped.
    TimeInput::At(Timestamp(
        t.seconds * 1_000 + i64::from(t.nanos / 1_000_000),
    ))
}

/// An optional wire time (unset is `None`), within the domain's window.
pub fn optional_time(
    value: Option<&prost_types::Timestamp>,
    at: &str,
    name: &str,
) -> Result<Option<Timestamp>> {
    validate::optional_time(time_input(value), name).map_err(invalid_at(at))
}

/// A domain time on the wire.
pub fn wire_time(at: Timestamp) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.0.div_euclid(1_000),
        nanos: (at.0.rem_euclid(1_000) * 1_000_000) as i32,
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
        pb::ShipmentStatus::Planned => ShipmentStatus::Planned,
    };
    Shipment::new(ShipmentFields {
        shipment_id: &m.shipment_id,
        carrier: &m.carrier,
        origin: &m.origin,
        destination: &m.destination,
        scheduled_departure: time_input(m.scheduled_departure.as_ref()),
        scheduled_arrival: time_input(m.scheduled_arrival.as_ref()),
        actual_departure: time_input(m.actual_departure.as_ref()),
        actual_arrival: time_input(m.actual_arrival.as_ref()),
        status,
        exception: &m.exception,
        estimated_arrival: time_input(m.estimated_arrival.as_ref()),
        reported_at: time_input(m.reported_at.as_ref()),
    })
    .map_err(invalid_at(at))
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
    Order::new(OrderFields {
        order_id: &m.order_id,
        created_at: time_input(m.created_at.as_ref()),
        channel: &m.channel,
        site: &m.site,
        destination_region: &m.destination_region,
        promise_at: time_input(m.promise_at.as_ref()),
        line_count: m.line_count,
        units: m.units,
        priority,
        outcome,
        allocated_at: time_input(m.allocated_at.as_ref()),
        released_at: time_input(m.released_at.as_ref()),
        picked_at: time_input(m.picked_at.as_ref()),
        shipped_at: time_input(m.shipped_at.as_ref()),
    })
    .map_err(invalid_at(at))
}

/// A site snapshot.
pub fn site_snapshot(message: &pb::SiteSnapshot, at: &str) -> Result<SiteSnapshot> {
    SiteSnapshot::new(SiteSnapshotFields {
        site: &message.site,
        at: time_input(message.at.as_ref()),
        backlog: message.backlog,
        labour: message.labour,
        units_picked: message.units_picked,
        // proto3 cannot tell unset from 0; a zero-minute period means unset.
        period_minutes: (message.period_minutes != 0.0).then_some(message.period_minutes),
        dock_utilisation: message.dock_utilisation,
    })
    .map_err(invalid_at(at))
}

/// An inventory position.
pub fn inventory(message: &pb::InventoryPosition, at: &str) -> Result<InventoryPosition> {
    InventoryPosition::new(InventoryFields {
        site: &message.site,
        sku: &message.sku,
        on_hand: message.on_hand,
        at: time_input(message.at.as_ref()),
    })
    .map_err(invalid_at(at))
}

/// An event of an ingest request; `at` is `"events[i]"`.
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
    let as_of = optional_time(request.as_of.as_ref(), at, "as_of")?.unwrap_or(order.created_at);
    Ok(ScoreTarget::Order { order, as_of })
}

/// What `ScoreShipment` scores; decided at `as_of`, else at scheduled departure.
pub fn shipment_target(request: &pb::ScoreShipmentRequest, at: &str) -> Result<ScoreTarget> {
    let shipment = shipment(request.shipment.as_ref(), &field(at, "shipment"))?;
    let as_of =
        optional_time(request.as_of.as_ref(), at, "as_of")?.unwrap_or(shipment.scheduled_departure);
    Ok(ScoreTarget::Shipment { shipment, as_of })
}

/// What `ScoreSite` scores; decided at `as_of`, else now.
pub fn site_target(request: &pb::ScoreSiteRequest, at: &str) -> Result<ScoreTarget> {
    Ok(ScoreTarget::Site {
        site: code(&request.site, at, "site")?,
        as_of: optional_time(request.as_of.as_ref(), at, "as_of")?.unwrap_or_else(Timestamp::now),
    })
}

/// One item of a batch or stream; `at` is `"items[i]"` (or `""` in a stream).
pub fn item_target(item: &pb::ScoreItem, at: &str) -> Result<ScoreTarget> {
    use pb::score_item::Entity;
    // Echoed back with the answer: bounded like an id, but optional.
    if item.request_id.len() > validate::MAX_ID_LEN {
        return Err(ApiError::invalid(
            field(at, "request_id"),
            format!(
                "{} is longer than {} bytes",
                validate::echoed(&item.request_id),
                validate::MAX_ID_LEN
            ),
        ));
    }
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

/// The path of a batch or stream item's entity ("items[3].site"), under which
/// its own fields are named.
pub fn item_path(item: &pb::ScoreItem, at: &str) -> String {
    use pb::score_item::Entity;
    match &item.entity {
        Some(Entity::Order(_)) => field(at, "order"),
        Some(Entity::Shipment(_)) => field(at, "shipment"),
        Some(Entity::Site(_)) | None => field(at, "site"),
    }
}

/// An assessment on the wire.
pub fn risk_score(assessment: Assessment) -> pb::RiskScore {
    let band = wire_band(assessment.band);
    pb::RiskScore {
        degraded: assessment.degraded(),
        entity_id: assessment.entity_id,
        kind: wire_kind(assessment.kind),
        probability: assessment.probability,
        band,
        model_name: assessment.model_name,
        model_version: assessment.model_version,
        factors: assessment.factors.iter().map(wire_factor).collect(),
        degraded_reasons: assessment.degraded_reasons,
    }
}

/// The wire value of a band.
pub fn wire_band(band: RiskBand) -> i32 {
    let band = match band {
        RiskBand::Low => pb::RiskBand::Low,
        RiskBand::Medium => pb::RiskBand::Medium,
        RiskBand::High => pb::RiskBand::High,
        RiskBand::Unknown => pb::RiskBand::Unknown,
    };
    band as i32
}

/// A factor on the wire.
pub fn wire_factor(f: &crate::scoring::Factor) -> pb::Factor {
    pb::Factor {
        feature: f.feature.to_string(),
        value: f.value,
        contribution: f.contribution,
        unit: f.unit.to_string(),
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

    fn wire(seconds: i64, nanos: i32) -> prost_types::Timestamp {
        prost_types::Timestamp { seconds, nanos }
    }

    #[test]
    fn wire_times_keep_protobufs_range_and_milliseconds() {
        assert_eq!(time_input(None), TimeInput::Absent);
        assert_eq!(
            time_input(Some(&wire(1_773_000_000, 999_999_999))),
            TimeInput::At(Timestamp(1_773_000_000_999)),
            "finer than a millisecond is dropped"
        );
        for inside in [MIN_WIRE_SECONDS, MAX_WIRE_SECONDS] {
            assert!(matches!(
                time_input(Some(&wire(inside, 0))),
                TimeInput::At(_)
            ));
        }
        for (seconds, nanos) in [
            (MIN_WIRE_SECONDS - 1, 0),
            (MAX_WIRE_SECONDS + 1, 0),
            (i64::MAX, 0),
            (0, -1),
            (0, 1_000_000_000),
        ] {
            assert!(
                matches!(
                    time_input(Some(&wire(seconds, nanos))),
                    TimeInput::Malformed(_)
                ),
                "{seconds} s {nanos} ns"
            );
        }
    }

    #[test]
    fn domain_times_go_to_the_wire_and_back() {
        for ms in [0, -1, 1_773_000_000_123, -62_135_596_800_000] {
            let on_wire = wire_time(Timestamp(ms));
            assert!((0..1_000_000_000).contains(&on_wire.nanos), "{on_wire:?}");
            assert_eq!(time_input(Some(&on_wire)), TimeInput::At(Timestamp(ms)));
        }
        assert_eq!(
            wire_time(Timestamp(-1)),
            wire(-1, 999_000_000),
            "before 1970 the nanos still count forwards"
        );
    }

    #[test]
    fn errors_name_the_path_of_the_field() {
        let error = optional_time(Some(&wire(0, 0)), "items[2]", "as_of").unwrap_err();
        let ApiError::InvalidArgument { field, reason } = error else {
            panic!("a bad time is INVALID_ARGUMENT");
        };
        assert_eq!(field, "items[2].as_of");
        assert!(reason.contains("1970-01-01T00:00:00Z"), "{reason}");
        let shipment = pb::Shipment {
            shipment_id: "S".into(),
            carrier: "XPO".into(),
            origin: "ATL".into(),
            destination: "JFK".into(),
            scheduled_departure: Some(wire(1_773_000_000, 0)),
            ..Default::default()
        };
        assert_eq!(
            super::shipment(Some(&shipment), "events[4].shipment").unwrap_err(),
            ApiError::invalid("events[4].shipment.scheduled_arrival", "is required")
        );
    }
}
