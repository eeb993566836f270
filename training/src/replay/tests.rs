//! The replay's own tests: decisions see nothing recorded after them, and
//! `until` drops later events and labels (the leakage tests are in
//! `leakage.rs`).

use super::*;
use detour::domain::ShipmentStatus;

fn at(hour: i64) -> Timestamp {
    Timestamp(1_767_225_600_000 + hour * 3_600_000)
}

fn late_shipment(id: &str, departure: i64, arrival: i64) -> Shipment {
    Shipment {
        tracking: Default::default(),
        shipment_id: id.into(),
        carrier: "XPO".into(),
        origin: "ATL".into(),
        destination: "JFK".into(),
        scheduled_departure: at(departure),
        scheduled_arrival: at(arrival),
        actual_departure: Some(at(departure)),
        actual_arrival: Some(at(arrival + 5)),
        status: ShipmentStatus::Delivered,
    }
}

fn settings(until: Option<Timestamp>) -> ReplaySettings {
    ReplaySettings {
        features: FeatureSettings::default(),
        congestion_horizon_hours: 8.0,
        until,
        record_from: None,
        unlabelled: false,
        shipment_lead_hours: None,
        also_at_departure: false,
        announced_hours: DEFAULT_ANNOUNCED_HOURS,
        alerts: false,
    }
}

/// Failure rate of XPO on ATL→JFK (7 days) as each shipment saw it.
fn seen_rates(datasets: &Datasets) -> HashMap<String, f64> {
    let column = detour::schema::CARRIER_FAILURE_FEATURES
        .iter()
        .position(|f| f.name == "carrier_lane_failure_rate_7d")
        .unwrap();
    datasets.rows[&RiskKind::CarrierFailure]
        .iter()
        .map(|row| (row.entity_id.clone(), row.features.values[column]))
        .collect()
}

#[test]
fn a_decision_never_sees_an_outcome_recorded_after_it() {
    // A departs at 0 and arrives late at 15: its failure is recorded at hour 15.
    // Every other shipment is decided some hours before its own departure; it
    // must see A's failure exactly when its decision time is after hour 15
    // (at hour 15 itself, decisions come before outcomes).
    let mut shipments = vec![late_shipment("A", 0, 10)];
    for n in 0..24 {
        let departure = 5 + 3 * n;
        shipments.push(late_shipment(&format!("D{n}"), departure, departure + 200));
    }
    let history = History {
        shipments,
        ..History::default()
    };
    let datasets = replay(&history, &settings(None));
    let rates = seen_rates(&datasets);
    let prior = rates["A"];
    let (mut before, mut after) = (0, 0);
    for row in &datasets.rows[&RiskKind::CarrierFailure] {
        if row.entity_id == "A" {
            continue;
        }
        let lead = lead_hours(&row.entity_id);
        let departure = history
            .shipments
            .iter()
            .find(|s| s.shipment_id == row.entity_id)
            .unwrap()
            .scheduled_departure;
        assert_eq!(
            row.at,
            departure.plus_minutes(-60.0 * lead),
            "decided at its lead"
        );
        if row.at <= at(15) {
            before += 1;
            assert_eq!(
                rates[&row.entity_id], prior,
                "{} must not see A",
                row.entity_id
            );
        } else {
            after += 1;
            assert!(rates[&row.entity_id] > prior, "{} sees A", row.entity_id);
        }
    }
    assert!(
        before > 0 && after > 0,
        "both cases exercised: {before} / {after}"
    );
}

#[test]
fn until_drops_later_events_and_labels() {
    let history = History {
        shipments: vec![late_shipment("A", 0, 10), late_shipment("B", 60, 70)],
        ..History::default()
    };
    // At hour 72, B has departed but its outcome (hour 75) is not known.
    let datasets = replay(&history, &settings(Some(at(72))));
    let ids: Vec<&str> = datasets.rows[&RiskKind::CarrierFailure]
        .iter()
        .map(|r| r.entity_id.as_str())
        .collect();
    assert_eq!(ids, ["A"]);
    assert_eq!(
        datasets.skipped["carrier_failure: outcome not known by the cut-off"],
        1
    );
}
