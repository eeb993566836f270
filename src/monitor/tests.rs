//! The monitor on its own, in memory: what a flush publishes, and the sweep
//! that ends episodes whose evidence stopped coming.

use std::sync::Arc;

use super::*;
use crate::anomaly::Change;
use crate::domain::{Event, EventPayload, Shipment, ShipmentStatus, Timestamp};
use crate::features::{FeatureSettings, updates_for, with_facts};

const HOUR: i64 = 3_600;
const T0: i64 = 1_790_000_000;

fn leg(id: &str, carrier: &str, destination: &str, arrival: i64, failed: bool) -> Event {
    let at = |s: i64| Timestamp(s * 1000);
    Event {
        event_id: id.to_string(),
        payload: EventPayload::Shipment(Shipment {
            tracking: Default::default(),
            shipment_id: id.to_string(),
            carrier: carrier.into(),
            origin: "ATL".into(),
            destination: destination.into(),
            scheduled_departure: at(arrival - 10 * HOUR),
            scheduled_arrival: at(arrival),
            actual_departure: Some(at(arrival - 10 * HOUR)),
            actual_arrival: Some(at(if failed { arrival + 3 * HOUR } else { arrival })),
            status: ShipmentStatus::Delivered,
        }),
    }
}

/// Takes `events` as ingest would (all applied) and flushes.
async fn take(monitor: &Monitor, events: &[Event]) {
    let updates = events
        .iter()
        .map(|e| updates_for(e, &FeatureSettings::default()))
        .collect();
    let (run, _) = with_facts(updates);
    let applied = vec![ApplyOutcome::Applied; run.len()];
    monitor.observe(&run, &applied);
    monitor.flush().await.expect("in memory");
}

/// Sixty hours of XPO legs into JFK, one an hour, one in twelve failed.
fn ordinary_history() -> Vec<Event> {
    (0..60)
        .map(|h| leg(&format!("h{h}"), "XPO", "JFK", T0 + h * HOUR, h % 12 == 0))
        .collect()
}

/// Then, at hour 84, eight failed XPO legs into JFK within eight minutes.
fn burst() -> Vec<Event> {
    (0..8)
        .map(|i| {
            leg(
                &format!("b{i}"),
                "XPO",
                "JFK",
                T0 + 84 * HOUR + i * 60,
                true,
            )
        })
        .collect()
}

fn changes(feed: &mut broadcast::Receiver<FeedItem>, series: &str) -> Vec<Change> {
    let mut out = Vec::new();
    while let Ok(FeedItem::Entry(entry)) = feed.try_recv() {
        if entry.alert.series == series {
            out.push(entry.change);
        }
    }
    out
}

#[tokio::test]
async fn an_episode_whose_evidence_stops_is_ended_by_a_sweep() {
    let monitor = Monitor::in_memory(Arc::new(Network::default()));
    let mut feed = monitor.subscribe();
    take(&monitor, &ordinary_history()).await;
    take(&monitor, &burst()).await;
    let series = "carrier_region:XPO:JFK";
    assert!(changes(&mut feed, series).contains(&Change::Opened));
    // Nothing swept while the clock has not moved on.
    assert_eq!(monitor.sweep().await.unwrap(), 0);
    // Two days later other traffic moves the clock; XPO into JFK is quiet.
    take(
        &monitor,
        &[leg("later", "UPS", "BOS", T0 + 140 * HOUR, false)],
    )
    .await;
    let mut swept = Vec::new();
    for _ in 0..2 {
        assert!(monitor.sweep().await.unwrap() >= 1);
        monitor.flush().await.unwrap();
        swept.extend(changes(&mut feed, series));
    }
    assert_eq!(swept, [Change::Resolved], "two quiet judgements end it");
    assert_eq!(monitor.sweep().await.unwrap(), 0, "nothing open is left");
}

#[test]
fn series_keys_parse_back() {
    for id in [
        SeriesId::SiteIntake("ATL".into()),
        SeriesId::SiteBacklog("ATL".into()),
        SeriesId::SiteThroughput("ATL".into()),
        SeriesId::CarrierRegion("XPO".into(), "JFK".into()),
        SeriesId::Lane("ATL".into(), "JFK".into()),
        SeriesId::Inbound("JFK".into()),
        SeriesId::Outbound("ATL".into()),
    ] {
        assert_eq!(SeriesId::parse(&id.key()), Some(id));
    }
    for bad in [
        "",
        "lane:ATL",
        "lane:ATL:JFK:X",
        "nothing:ATL",
        "site_backlog:",
    ] {
        assert_eq!(SeriesId::parse(bad), None, "{bad}");
    }
}

#[test]
fn a_finished_leg_is_not_listed_again_by_a_late_report() {
    use super::evaluate::{LoadedBuckets, SeriesState, advance};
    let series = SeriesId::CarrierRegion("XPO".into(), "JFK".into());
    let mut state = SeriesState::default();
    let mut buckets = LoadedBuckets::default();
    let leg = |finished: bool| Point {
        at: i64::MIN,
        value: series::PointValue::Leg {
            id: "L1".into(),
            departure: T0,
            arrival: T0 + 10 * HOUR,
            left_at: 0,
            departed: false,
            finished,
        },
    };
    let network = Network::default();
    advance(&series, &mut state, &mut buckets, &[leg(false)], &network);
    assert_eq!(state.open_legs.len(), 1);
    advance(&series, &mut state, &mut buckets, &[leg(true)], &network);
    assert!(state.open_legs.is_empty());
    // The announcement again, after the delivery: still finished.
    advance(&series, &mut state, &mut buckets, &[leg(false)], &network);
    assert!(state.open_legs.is_empty());
}

/// The carrier model's `carrier_region_alert_severity` for a leg of XPO
/// into JFK leaving `lead` hours after `decided`, decided then, from
/// `store`.
fn alert_feature(store: &crate::features::InMemoryFeatureStore, decided: i64, lead: i64) -> f64 {
    let departure = decided + lead * HOUR;
    use crate::features::vectors::Gaps;
    use crate::schema::{RiskKind, schema_of};
    use crate::scoring::{ScoreTarget, feature_vector};
    let Event {
        payload: EventPayload::Shipment(shipment),
        ..
    } = leg("next", "XPO", "JFK", departure + 10 * HOUR, false)
    else {
        unreachable!()
    };
    let target = ScoreTarget::Shipment {
        shipment,
        as_of: Timestamp(decided * 1000),
    };
    let mut keys = Vec::new();
    target.push_keys(&mut keys);
    let records = store.fetch_now(&keys);
    let lookup = |key: &crate::features::AggregateKey| {
        let i = keys.iter().position(|k| k == key).unwrap();
        Some(records[i].as_ref())
    };
    let vector = feature_vector(&target, &lookup, &Network::default(), &mut Gaps::default());
    let at = schema_of(RiskKind::CarrierFailure)
        .iter()
        .position(|f| f.name == "carrier_region_alert_severity")
        .unwrap();
    vector.values[at]
}

#[tokio::test]
async fn an_open_alert_is_written_where_the_carrier_model_reads_it_until_it_ends() {
    use crate::features::{FeatureStore, InMemoryFeatureStore};
    let store = Arc::new(InMemoryFeatureStore::new(std::time::Duration::from_secs(
        86_400,
    )));
    let monitor = Monitor::in_memory(Arc::new(Network::default()));
    let target = Arc::clone(&store);
    monitor.signal_with(Arc::new(
        move |events: Vec<crate::features::EventUpdates>| {
            let store = Arc::clone(&target);
            Box::pin(async move { store.apply(&events).await.map(|_| ()) })
        },
    ));
    take(&monitor, &ordinary_history()).await;
    assert_eq!(
        alert_feature(&store, T0 + 84 * HOUR, 0),
        0.0,
        "nothing open"
    );
    take(&monitor, &burst()).await;
    let open = alert_feature(&store, T0 + 85 * HOUR, 0);
    assert!(
        open >= 1.0,
        "an open alert's severity, read at departure: {open}"
    );
    // For a leg a day ahead, the disruption counts for less.
    let ahead = alert_feature(&store, T0 + 85 * HOUR, 24);
    assert!(0.0 < ahead && ahead < open / 5.0, "{ahead} of {open}");
    // A record written longer ago than an open alert is refreshed is not
    // trusted as open.
    assert_eq!(alert_feature(&store, T0 + 100 * HOUR, 0), 0.0);
    // Once the episode ends, it reads 0 again.
    take(
        &monitor,
        &[leg("later", "UPS", "BOS", T0 + 140 * HOUR, false)],
    )
    .await;
    for _ in 0..2 {
        monitor.sweep().await.unwrap();
        monitor.flush().await.unwrap();
    }
    let record = store.fetch_now(&[crate::features::AggregateKey::carrier_region_alert(
        "XPO", "JFK",
    )]);
    let (severity, _) = record[0]
        .and_then(|r| r.gauge(crate::features::aggregates::disruption_gauges::SEVERITY))
        .expect("the record was written");
    assert_eq!(severity, 0.0, "resolved");
}

/// A leg of XPO into JFK that left `due - 10 h` and is due at `due`, as
/// reported: under way, or finished.
fn leg_point(id: &str, due: i64, finished: bool) -> Point {
    Point {
        at: i64::MIN,
        value: series::PointValue::Leg {
            id: id.into(),
            departure: due - 10 * HOUR,
            arrival: due,
            left_at: due - 10 * HOUR,
            departed: true,
            finished,
        },
    }
}

/// The reported outcome of leg `leg` (`None`: some other leg) at `at`.
fn outcome(at: i64, failed: bool, leg: Option<&str>) -> Point {
    Point {
        at,
        value: series::PointValue::Outcome {
            failed,
            leg: leg.map(Into::into),
        },
    }
}

#[test]
fn an_overdue_leg_counts_as_failed_once_when_it_is_due_not_when_it_arrives() {
    use super::evaluate::{LoadedBuckets, SeriesState, advance};
    let series = SeriesId::CarrierRegion("XPO".into(), "JFK".into());
    let network = Network::default();
    let mut state = SeriesState::default();
    let mut buckets = LoadedBuckets::default();
    let due = T0 + 20 * HOUR;
    let failed_in_window = |state: &SeriesState| state.cells.iter().map(|c| c.1).sum::<u64>();
    let finished_in_window = |state: &SeriesState| state.cells.iter().map(|c| c.2).sum::<u64>();
    let under_way: Vec<Point> = (0..4)
        .map(|i| leg_point(&format!("L{i}"), due, false))
        .collect();
    advance(&series, &mut state, &mut buckets, &under_way, &network);
    // Before they are due, nothing; a grace after, four failures.
    advance(
        &series,
        &mut state,
        &mut buckets,
        &[come_due(due + 60)],
        &network,
    );
    assert_eq!(finished_in_window(&state), 0);
    advance(
        &series,
        &mut state,
        &mut buckets,
        &[come_due(due + 16 * 60)],
        &network,
    );
    assert_eq!(
        (failed_in_window(&state), finished_in_window(&state)),
        (4, 4)
    );
    assert!(
        state.open_legs.is_empty(),
        "overdue legs are no longer at risk"
    );
    // Their arrival is reported: three hours late, counted already, not
    // again; one on time after all (its report came late), its failure
    // taken back. Another leg's failure in the same report counts.
    let mut arrived: Vec<Point> = (0..4)
        .map(|i| leg_point(&format!("L{i}"), due, true))
        .collect();
    let late = due + 3 * HOUR;
    arrived.extend([
        outcome(late, true, Some("L0")),
        outcome(late, true, Some("L1")),
        outcome(late, true, Some("L2")),
        outcome(late, false, Some("L3")),
        outcome(late, true, None),
    ]);
    advance(&series, &mut state, &mut buckets, &arrived, &network);
    assert_eq!(
        (failed_in_window(&state), finished_in_window(&state)),
        (4, 5)
    );
    assert!(state.overdue_legs.is_empty());
    // A late report of an earlier stage brings none of them back.
    advance(
        &series,
        &mut state,
        &mut buckets,
        &[leg_point("L0", due, false)],
        &network,
    );
    assert!(state.open_legs.is_empty());
}

#[test]
fn a_leg_is_not_overdue_before_it_is_known_to_have_left() {
    use super::evaluate::{LoadedBuckets, SeriesState, advance};
    let series = SeriesId::CarrierRegion("XPO".into(), "JFK".into());
    let mut state = SeriesState::default();
    let due = T0 + 20 * HOUR;
    let mut left_late = leg_point("L", due, false);
    if let series::PointValue::Leg { left_at, .. } = &mut left_late.value {
        *left_at = due + 2 * HOUR;
    }
    let network = Network::default();
    let mut buckets = LoadedBuckets::default();
    advance(
        &series,
        &mut state,
        &mut buckets,
        &[left_late, come_due(due + HOUR)],
        &network,
    );
    assert!(state.cells.is_empty(), "not overdue before it left");
    advance(
        &series,
        &mut state,
        &mut buckets,
        &[come_due(due + 2 * HOUR)],
        &network,
    );
    assert_eq!(state.cells.iter().map(|c| c.1).sum::<u64>(), 1);
}

#[tokio::test]
async fn a_sweep_counts_legs_that_came_due_before_their_reports() {
    let monitor = Monitor::in_memory(Arc::new(Network::default()));
    let mut feed = monitor.subscribe();
    take(&monitor, &ordinary_history()).await;
    // Eight XPO legs into JFK leave, due at hour 84; none is reported again.
    let due = T0 + 84 * HOUR;
    let leaving: Vec<Event> = (0..8)
        .map(|i| {
            let mut event = leg(&format!("u{i}"), "XPO", "JFK", due, false);
            if let EventPayload::Shipment(s) = &mut event.payload {
                s.actual_arrival = None;
                s.status = ShipmentStatus::InTransit;
            }
            event
        })
        .collect();
    take(&monitor, &leaving).await;
    let series = "carrier_region:XPO:JFK";
    assert!(changes(&mut feed, series).is_empty());
    // Other traffic moves the clock past their grace: a sweep finds them.
    take(
        &monitor,
        &[leg("other", "UPS", "BOS", due + 30 * 60, false)],
    )
    .await;
    assert!(monitor.sweep().await.unwrap() >= 1);
    monitor.flush().await.unwrap();
    assert!(
        changes(&mut feed, series).contains(&Change::Opened),
        "eight overdue legs open the episode before any arrives"
    );
}

/// The sweep's point telling a carrier-region series that legs came due at `at`.
fn come_due(at: i64) -> Point {
    Point {
        at,
        value: series::PointValue::Due,
    }
}
