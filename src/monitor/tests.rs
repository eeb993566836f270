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
    let history: Vec<Event> = (0..60)
        .map(|h| leg(&format!("h{h}"), "XPO", "JFK", T0 + h * HOUR, h % 12 == 0))
        .collect();
    take(&monitor, &history).await;
    let burst: Vec<Event> = (0..8)
        .map(|i| {
            leg(
                &format!("b{i}"),
                "XPO",
                "JFK",
                T0 + 84 * HOUR + i * 60,
                true,
            )
        })
        .collect();
    take(&monitor, &burst).await;
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
