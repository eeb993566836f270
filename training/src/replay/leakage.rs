//! Leakage tests of the replay: what a decision sees must not change when the
//! history after it is cut off, a leg never sees its own departure, and the
//! live state must lose its signal when departures are reported only after
//! the outcomes they precede.

use super::*;
use detour::domain::ShipmentStatus;
use detour::schema::CARRIER_FAILURE_FEATURES;

const START: i64 = 1_767_225_600_000;

fn at_minutes(minutes: i64) -> Timestamp {
    Timestamp(START + minutes * 60_000)
}

/// A leg every 20 minutes from ATL to JFK or BOS for `days` days. Each day
/// one disruption of four hours starts at a pseudo-random time: legs due
/// in it leave 90 minutes late and most of them fail; the others leave on
/// time and few fail. Arrival is ten hours after departure. With
/// `departures_after_outcomes`, every departure is reported a minute after
/// the leg's arrival instead (the signal moved behind the outcome).
fn disrupted_history(days: i64, departures_after_outcomes: bool) -> History {
    let mut seed = 7u64;
    let mut draw = move || {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        (seed >> 33) as f64 / (1u64 << 31) as f64
    };
    let mut shipments = Vec::new();
    for day in 0..days {
        let window_start = day * 1_440 + (draw() * 1_200.0) as i64;
        for slot in 0..72 {
            let due = day * 1_440 + slot * 20;
            let disrupted = (window_start..window_start + 240).contains(&due);
            let fails = draw() < if disrupted { 0.8 } else { 0.1 };
            let left = due + if disrupted { 90 } else { 2 };
            let arrival = due + 600;
            let arrived = arrival + if fails { 120 } else { 0 };
            let reported_left = if departures_after_outcomes {
                arrived + 1
            } else {
                left
            };
            shipments.push(Shipment {
                tracking: Default::default(),
                shipment_id: format!("L{day}-{slot}"),
                carrier: if slot % 2 == 0 { "XPO" } else { "UPS" }.into(),
                origin: "ATL".into(),
                destination: if slot % 3 == 0 { "JFK" } else { "BOS" }.into(),
                scheduled_departure: at_minutes(due),
                scheduled_arrival: at_minutes(arrival),
                actual_departure: Some(at_minutes(reported_left)),
                actual_arrival: Some(at_minutes(arrived)),
                status: ShipmentStatus::Delivered,
            });
        }
    }
    History {
        shipments,
        ..History::default()
    }
}

fn at_departure(until: Option<Timestamp>, unlabelled: bool) -> ReplaySettings {
    ReplaySettings {
        features: FeatureSettings::default(),
        congestion_horizon_hours: 8.0,
        until,
        record_from: None,
        unlabelled,
        shipment_lead_hours: Some(0.0),
        also_at_departure: false,
        announced_hours: DEFAULT_ANNOUNCED_HOURS,
        alerts: false,
    }
}

fn column(name: &str) -> usize {
    CARRIER_FAILURE_FEATURES
        .iter()
        .position(|f| f.name == name)
        .unwrap()
}

/// ROC-AUC of one feature as a score of the labels.
fn auc_of(rows: &[Row], column: usize) -> f64 {
    let (p, y): (Vec<f64>, Vec<bool>) = rows
        .iter()
        .map(|r| (r.features.values[column], r.label))
        .unzip();
    crate::metrics::evaluate(&p, &y).roc_auc
}

const LIVE: [&str; 3] = [
    "origin_backlog_log",
    "origin_late_departure_share_1h",
    "carrier_origin_late_departure_share_3h",
];

#[test]
fn live_state_carries_the_signal_only_while_it_precedes_the_outcome() {
    let honest = replay(&disrupted_history(60, false), &at_departure(None, false));
    let moved = replay(&disrupted_history(60, true), &at_departure(None, false));
    let rows = |d: &Datasets| d.rows[&RiskKind::CarrierFailure].clone();
    let (honest, moved) = (rows(&honest), rows(&moved));
    for name in LIVE {
        let (a, b) = (auc_of(&honest, column(name)), auc_of(&moved, column(name)));
        eprintln!("{name}: ROC-AUC {a:.3} as reported, {b:.3} with departures after outcomes");
        assert!(
            b < 0.6,
            "{name} still scores {b:.3} with departures after outcomes"
        );
    }
    let best = LIVE
        .iter()
        .map(|name| auc_of(&honest, column(name)))
        .fold(0.0, f64::max);
    assert!(
        best > 0.7,
        "the live state scores {best:.3} when reported as it happens"
    );
}

#[test]
fn a_decision_never_sees_its_own_leg_leave() {
    // Legs that leave 30 minutes early: decided at their scheduled
    // departure, each must see the origin as if it had not left.
    let early_history = || {
        let mut history = disrupted_history(3, false);
        for s in &mut history.shipments {
            s.actual_departure = Some(s.scheduled_departure.plus_minutes(-30.0));
        }
        history
    };
    let early = early_history();
    let mut unknown = early_history();
    let settings = at_departure(None, true);
    let seen = replay(&early, &settings);
    for (i, row) in seen.rows[&RiskKind::CarrierFailure]
        .iter()
        .enumerate()
        .step_by(37)
    {
        // The same history with this one leg's departure unreported.
        let index = early
            .shipments
            .iter()
            .position(|s| s.shipment_id == row.entity_id)
            .unwrap();
        unknown.shipments[index].actual_departure = None;
        unknown.shipments[index].status = ShipmentStatus::InTransit;
        let without = replay(&unknown, &settings);
        let other = &without.rows[&RiskKind::CarrierFailure][i];
        assert_eq!(other.entity_id, row.entity_id);
        for name in LIVE {
            let j = column(name);
            assert_eq!(
                row.features.values[j], other.features.values[j],
                "{}: {name} sees its own departure",
                row.entity_id
            );
        }
        unknown.shipments[index] = early.shipments[index].clone();
    }
}

#[test]
fn no_decision_reads_an_event_stamped_after_it() {
    let history = disrupted_history(20, false);
    // With the anomaly monitor's alerts too: an alert a decision reads was
    // raised by what came before it.
    let with_alerts = |until| ReplaySettings {
        alerts: true,
        ..at_departure(until, true)
    };
    let full = replay(&history, &with_alerts(None));
    let alerted = full.rows[&RiskKind::CarrierFailure]
        .iter()
        .filter(|r| r.features.values[column("lane_alert_severity")] > 0.0)
        .count();
    assert!(alerted > 10, "{alerted} decisions saw an open lane alert");
    for cut_day in [3, 9, 14] {
        let cut = at_minutes(cut_day * 1_440 + 500);
        let cut_off = replay(&history, &with_alerts(Some(cut)));
        let seen: HashMap<&str, &Row> = cut_off.rows[&RiskKind::CarrierFailure]
            .iter()
            .map(|r| (r.entity_id.as_str(), r))
            .collect();
        let mut compared = 0;
        for row in full.rows[&RiskKind::CarrierFailure]
            .iter()
            .filter(|r| r.at <= cut)
        {
            let other = seen[row.entity_id.as_str()];
            for (j, (a, b)) in row
                .features
                .as_slice()
                .iter()
                .zip(other.features.as_slice())
                .enumerate()
            {
                assert!(
                    a == b || (a.is_nan() && b.is_nan()),
                    "{} at {}: {} is {a} with the whole history, {b} without what came after",
                    row.entity_id,
                    row.at,
                    CARRIER_FAILURE_FEATURES[j].name
                );
            }
            compared += 1;
        }
        assert!(compared > 100, "{compared} decisions compared");
    }
}
