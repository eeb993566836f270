//! Unit tests of the domain types, their rules and checked constructors.

use super::*;

#[test]
fn rfc3339_with_any_offset_is_one_instant() {
    let utc = Timestamp::parse_rfc3339("2026-03-01T12:00:00Z").unwrap();
    for text in [
        "2026-03-01T13:00:00+01:00",
        "2026-03-01T07:00:00-05:00",
        "2026-03-01 12:00:00+00:00",
        " 2026-03-01T12:00:00.000Z ",
    ] {
        assert_eq!(Timestamp::parse_rfc3339(text).unwrap(), utc, "{text}");
    }
    for bad in [
        "2026-03-01T12:00:00",
        "2026-13-01T12:00:00Z",
        "yesterday",
        "",
    ] {
        assert!(Timestamp::parse_rfc3339(bad).is_err(), "{bad}");
    }
}

#[test]
fn clock_helpers_use_utc() {
    let monday_noon = Timestamp::parse_rfc3339("2026-01-05T12:30:00Z").unwrap();
    assert_eq!(monday_noon.weekday_utc(), 0);
    assert_eq!(monday_noon.hour_of_day_utc(), 12.5);
    assert_eq!(monday_noon.to_rfc3339(), "2026-01-05T12:30:00Z");
}

// ---- rules ------------------------------------------------------------------

fn at(text: &str) -> Timestamp {
    Timestamp::parse_rfc3339(text).unwrap()
}

fn reason_of<T: std::fmt::Debug>(result: Result<T, FieldError>, field: &str) -> String {
    let error = result.expect_err("the rule must refuse this");
    assert_eq!(error.field, field, "{error}");
    error.reason
}

#[test]
fn ids_are_one_to_128_characters_without_spaces() {
    assert_eq!(validate::id("S-1", "shipment_id").unwrap(), "S-1");
    assert_eq!(validate::id(&"x".repeat(128), "id").unwrap().len(), 128);
    assert_eq!(reason_of(validate::id("", "id"), "id"), "is required");
    for bad in [
        "x".repeat(129),
        "S 1".into(),
        "S\t1".into(),
        "S\u{7}".into(),
    ] {
        let reason = reason_of(validate::id(&bad, "id"), "id");
        assert!(reason.contains("no spaces"), "{reason}");
    }
}

#[test]
fn codes_are_trimmed_and_refuse_colons_and_control_characters() {
    assert_eq!(validate::code("  New York ", "origin").unwrap(), "New York");
    assert_eq!(
        validate::code(&"é".repeat(64), "sku")
            .unwrap()
            .chars()
            .count(),
        64
    );
    assert_eq!(
        reason_of(validate::code("   ", "site"), "site"),
        "is required"
    );
    for bad in ["A:B".to_string(), "A\nB".into(), "é".repeat(65)] {
        let reason = reason_of(validate::code(&bad, "site"), "site");
        assert!(reason.contains("is not a code"), "{reason}");
    }
}

#[test]
fn quantities_are_finite_and_not_negative_and_shares_within_one() {
    assert_eq!(validate::quantity(0.0, "units").unwrap(), 0.0);
    assert_eq!(validate::quantity(1e9, "units").unwrap(), 1e9);
    for bad in [-0.5, f64::NAN, f64::INFINITY, 1.000_000_1e9] {
        let reason = reason_of(validate::quantity(bad, "units"), "units");
        assert!(
            reason.starts_with("must be a finite number within [0, 1e9], got"),
            "{reason}"
        );
    }
    assert_eq!(validate::share(1.0, "dock").unwrap(), 1.0);
    assert_eq!(
        reason_of(validate::share(1.5, "dock"), "dock"),
        "must be within [0, 1], got 1.5"
    );
    assert!(validate::share(-0.1, "dock").is_err());
}

#[test]
fn times_are_required_or_optional_and_within_the_window() {
    let start = TIME_WINDOW.start;
    assert_eq!(start, at("1990-01-01T00:00:00Z"));
    assert_eq!(TIME_WINDOW.end, at("2100-01-01T00:00:00Z"));
    assert_eq!(validate::time(start.into(), "at").unwrap(), start);
    let last = Timestamp(TIME_WINDOW.end.0 - 1);
    assert_eq!(validate::time(last.into(), "at").unwrap(), last);
    for outside in [
        Timestamp(start.0 - 1),
        TIME_WINDOW.end,
        Timestamp(0),
        Timestamp(i64::MIN),
        Timestamp(i64::MAX),
    ] {
        let reason = reason_of(validate::time(outside.into(), "at"), "at");
        assert!(
            reason.contains("not within the years Detour accepts"),
            "{reason}"
        );
        assert!(validate::optional_time(outside.into(), "as_of").is_err());
    }
    assert_eq!(
        reason_of(validate::time(TimeInput::Absent, "at"), "at"),
        "is required"
    );
    assert_eq!(
        validate::optional_time(TimeInput::Absent, "as_of"),
        Ok(None)
    );
    let malformed = TimeInput::Malformed("nanos -1 is out of range".into());
    assert_eq!(
        reason_of(validate::optional_time(malformed, "as_of"), "as_of"),
        "nanos -1 is out of range"
    );
}

#[test]
fn rfc3339_text_becomes_a_time_input() {
    assert_eq!(TimeInput::rfc3339(""), TimeInput::Absent);
    assert!(matches!(TimeInput::rfc3339("  "), TimeInput::Malformed(_)));
    assert_eq!(
        TimeInput::rfc3339("2026-03-01T13:00:00+01:00"),
        TimeInput::At(at("2026-03-01T12:00:00Z"))
    );
    let TimeInput::Malformed(reason) = TimeInput::rfc3339("March 3rd") else {
        panic!("text that is no time is malformed");
    };
    assert!(
        reason.starts_with("\"March 3rd\" is not an RFC 3339 time"),
        "{reason}"
    );
    // Well-formed but outside the window: parsed here, refused by the rule.
    let old = TimeInput::rfc3339("1970-01-01T00:00:00Z");
    assert_eq!(old, TimeInput::At(Timestamp(0)));
    assert!(validate::time(old, "at").is_err());
}

#[test]
fn a_field_error_is_prefixed_with_its_path() {
    let error = FieldError::new("scheduled_departure", "is required");
    assert_eq!(error.clone().under(""), error);
    let nested = error.under("shipment").under("items[3]");
    assert_eq!(nested.field, "items[3].shipment.scheduled_departure");
    assert_eq!(
        nested.to_string(),
        "items[3].shipment.scheduled_departure: is required"
    );
}

// ---- checked constructors -----------------------------------------------------

fn shipment_fields() -> ShipmentFields<'static> {
    ShipmentFields {
        shipment_id: "S-1",
        carrier: " XPO ",
        origin: "ATL",
        destination: "JFK",
        scheduled_departure: at("2026-03-01T08:00:00Z").into(),
        scheduled_arrival: at("2026-03-01T20:00:00Z").into(),
        actual_departure: TimeInput::Absent,
        actual_arrival: TimeInput::Absent,
        status: ShipmentStatus::InTransit,
        exception: "",
        estimated_arrival: TimeInput::Absent,
        reported_at: TimeInput::Absent,
    }
}

#[test]
fn a_shipment_keeps_its_rules() {
    let shipment = Shipment::new(shipment_fields()).unwrap();
    assert_eq!(shipment.carrier, "XPO");
    assert_eq!(shipment.actual_arrival, None);

    let error = |fields: ShipmentFields<'_>| Shipment::new(fields).unwrap_err();
    let mut f = shipment_fields();
    f.scheduled_arrival = at("2026-03-01T07:59:59Z").into();
    assert_eq!(
        error(f),
        FieldError::new("scheduled_arrival", "is before scheduled_departure")
    );
    let mut f = shipment_fields();
    f.status = ShipmentStatus::Delivered;
    assert_eq!(
        error(f.clone()),
        FieldError::new("actual_arrival", "is required when status is DELIVERED")
    );
    f.actual_arrival = at("2026-03-01T21:00:00Z").into();
    assert!(Shipment::new(f).is_ok());
    let mut f = shipment_fields();
    f.scheduled_departure = TimeInput::Absent;
    assert_eq!(error(f).field, "scheduled_departure");
    let mut f = shipment_fields();
    f.actual_departure = at("2150-01-01T00:00:00Z").into();
    assert_eq!(error(f).field, "actual_departure");
    // Fields are checked in order: the id before the carrier before the times.
    let mut f = shipment_fields();
    f.shipment_id = "";
    f.carrier = "A:B";
    f.scheduled_departure = TimeInput::Absent;
    assert_eq!(error(f).field, "shipment_id");
    let mut f = shipment_fields();
    f.carrier = "";
    f.scheduled_departure = TimeInput::rfc3339("yesterday");
    assert_eq!(error(f).field, "carrier");
}

#[test]
fn a_tracking_report_keeps_its_rules() {
    let mut f = shipment_fields();
    f.exception = " WEATHER ";
    f.estimated_arrival = at("2026-03-01T23:00:00Z").into();
    f.reported_at = at("2026-03-01T12:00:00Z").into();
    let shipment = Shipment::new(f).unwrap();
    assert_eq!(shipment.tracking.exception.as_deref(), Some("WEATHER"));
    let scheduled = shipment.scheduled_arrival;
    assert!(shipment.tracking.flagged(scheduled, 15.0));
    let mut quiet = shipment.tracking.clone();
    quiet.exception = None;
    assert!(
        quiet.flagged(scheduled, 15.0),
        "three hours late is flagged"
    );
    quiet.estimated_arrival = Some(scheduled.plus_minutes(10.0));
    assert!(
        !quiet.flagged(scheduled, 15.0),
        "ten minutes is within grace"
    );

    let error = |fields: ShipmentFields<'_>| Shipment::new(fields).unwrap_err();
    let mut f = shipment_fields();
    f.exception = "NO:PE";
    assert_eq!(error(f).field, "exception");
    let mut f = shipment_fields();
    f.estimated_arrival = at("2026-03-01T07:00:00Z").into();
    assert_eq!(
        error(f),
        FieldError::new("estimated_arrival", "is before scheduled_departure")
    );
    let mut f = shipment_fields();
    f.reported_at = TimeInput::rfc3339("noon");
    assert_eq!(error(f).field, "reported_at");
}

#[test]
fn an_orders_steps_keep_their_order() {
    let mut f = order_fields();
    f.allocated_at = at("2026-03-20T10:05:00Z").into();
    f.released_at = at("2026-03-20T11:00:00Z").into();
    f.shipped_at = at("2026-03-20T15:00:00Z").into();
    let order = Order::new(f.clone()).unwrap();
    assert_eq!(order.progress.done(), 3, "picking unreported is allowed");
    f.picked_at = at("2026-03-20T10:30:00Z").into();
    assert_eq!(
        Order::new(f).unwrap_err(),
        FieldError::new("picked_at", "is before released_at")
    );
    let mut f = order_fields();
    f.released_at = at("2026-03-20T09:00:00Z").into();
    assert_eq!(
        Order::new(f).unwrap_err(),
        FieldError::new("released_at", "is before created_at")
    );
}

fn order_fields() -> OrderFields<'static> {
    OrderFields {
        order_id: "O-1",
        created_at: at("2026-03-20T10:00:00Z").into(),
        channel: " web ",
        site: "ATL",
        destination_region: "JFK",
        promise_at: at("2026-03-22T10:00:00Z").into(),
        line_count: 2,
        units: 3.0,
        priority: OrderPriority::Express,
        outcome: Some(OrderOutcome::Late),
        allocated_at: TimeInput::Absent,
        released_at: TimeInput::Absent,
        picked_at: TimeInput::Absent,
        shipped_at: TimeInput::Absent,
    }
}

#[test]
fn an_order_keeps_its_rules() {
    let order = Order::new(order_fields()).unwrap();
    assert_eq!(order.channel, " web ", "the channel is free-form");
    assert_eq!(order.outcome, Some(OrderOutcome::Late));

    let error = |fields: OrderFields<'_>| Order::new(fields).unwrap_err();
    let mut f = order_fields();
    f.line_count = 0;
    assert_eq!(
        error(f),
        FieldError::new("line_count", "must be within [1, 100000]")
    );
    let mut f = order_fields();
    f.line_count = 100_001;
    assert_eq!(error(f).field, "line_count");
    let mut f = order_fields();
    let long = "w".repeat(65);
    f.channel = &long;
    assert_eq!(error(f).field, "channel");
    let mut f = order_fields();
    f.promise_at = at("2026-03-20T09:59:59Z").into();
    assert_eq!(
        error(f),
        FieldError::new("promise_at", "is before created_at")
    );
    let mut f = order_fields();
    f.promise_at = f.created_at.clone();
    assert!(Order::new(f).is_ok(), "a promise at creation is allowed");
    let mut f = order_fields();
    f.units = -1.0;
    assert_eq!(error(f).field, "units");
    let mut f = order_fields();
    f.created_at = TimeInput::Absent;
    assert_eq!(error(f), FieldError::new("created_at", "is required"));
}

fn snapshot_fields() -> SiteSnapshotFields<'static> {
    SiteSnapshotFields {
        site: "ATL",
        at: at("2026-03-20T10:00:00Z").into(),
        backlog: 10.0,
        labour: 5.0,
        units_picked: 100.0,
        period_minutes: None,
        dock_utilisation: 0.5,
    }
}

#[test]
fn a_site_snapshot_keeps_its_rules() {
    let snapshot = SiteSnapshot::new(snapshot_fields()).unwrap();
    assert_eq!(snapshot.period_minutes, fields::DEFAULT_PERIOD_MINUTES);
    assert_eq!(snapshot.period_minutes, 60.0);
    let mut f = snapshot_fields();
    f.period_minutes = Some(15.0);
    assert_eq!(SiteSnapshot::new(f).unwrap().period_minutes, 15.0);

    let error = |fields: SiteSnapshotFields<'_>| SiteSnapshot::new(fields).unwrap_err();
    for bad in [0.0, -15.0, f64::NAN] {
        let mut f = snapshot_fields();
        f.period_minutes = Some(bad);
        assert_eq!(error(f).field, "period_minutes", "{bad}");
    }
    let mut f = snapshot_fields();
    f.dock_utilisation = 1.01;
    assert_eq!(error(f).field, "dock_utilisation");
    let mut f = snapshot_fields();
    f.backlog = f64::NAN;
    assert_eq!(error(f).field, "backlog");
    let mut f = snapshot_fields();
    f.at = TimeInput::Absent;
    assert_eq!(error(f), FieldError::new("at", "is required"));
}

#[test]
fn an_inventory_position_keeps_its_rules() {
    let fields = || InventoryFields {
        site: "ATL",
        sku: "SKU-1",
        on_hand: 0.0,
        at: at("2026-03-20T10:00:00Z").into(),
    };
    assert_eq!(InventoryPosition::new(fields()).unwrap().on_hand, 0.0);
    let mut f = fields();
    f.sku = "";
    assert_eq!(
        InventoryPosition::new(f).unwrap_err(),
        FieldError::new("sku", "is required")
    );
    let mut f = fields();
    f.on_hand = -1.0;
    assert_eq!(InventoryPosition::new(f).unwrap_err().field, "on_hand");
    let mut f = fields();
    f.at = at("1989-12-31T23:59:59Z").into();
    assert_eq!(InventoryPosition::new(f).unwrap_err().field, "at");
}

#[test]
fn a_refused_value_is_quoted_short() {
    use super::validate::{MAX_ECHOED_CHARS, echoed};
    assert_eq!(echoed("ATL:1"), "\"ATL:1\"");
    let long = "é".repeat(10_000);
    let shown = echoed(&long);
    assert!(shown.starts_with(&format!("\"{}", "é".repeat(MAX_ECHOED_CHARS))));
    assert!(shown.ends_with("… (20000 bytes)"), "{shown}");
    assert!(shown.len() < 200);
    let error = super::validate::code(&"X".repeat(20_000), "site").unwrap_err();
    assert!(error.reason.len() < 200, "{}", error.reason);
    assert!(error.reason.contains("(20000 bytes)"), "{}", error.reason);
}
