//! Helpers of the anomaly tests: a carrier's ordinary history, a regional
//! disruption and the recovery after it, as events; ingest in calls of 500;
//! an `Anomalies` client, watches and draining them.

use std::time::Duration;

use detour::pb;
use detour::pb::anomalies_client::AnomaliesClient;
use tokio_stream::StreamExt;
use tonic::transport::Channel;

use super::{TestServer, shipment_event};

pub type Watch = tonic::Streaming<pb::AnomalyEvent>;

pub const HOUR: i64 = 3_600;
/// 2026-09-07, a Monday, 00:00 UTC: the history starts here.
pub const START: i64 = 1_788_739_200;

pub fn rfc3339(secs: i64) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp {
        seconds: secs,
        nanos: 0,
    })
}

/// A leg of `carrier` from ATL to `destination` due at `arrival`: 3 h late
/// when it `failed`, else 5 minutes early.
pub fn leg(id: &str, carrier: &str, destination: &str, arrival: i64, failed: bool) -> pb::Event {
    let actual = if failed {
        arrival + 3 * HOUR
    } else {
        arrival - 300
    };
    shipment_event(
        id,
        pb::Shipment {
            shipment_id: id.to_string(),
            carrier: carrier.to_string(),
            origin: "ATL".to_string(),
            destination: destination.to_string(),
            scheduled_departure: rfc3339(arrival - 10 * HOUR),
            scheduled_arrival: rfc3339(arrival),
            actual_departure: rfc3339(arrival - 10 * HOUR),
            actual_arrival: rfc3339(actual),
            status: pb::ShipmentStatus::Delivered as i32,
            ..Default::default()
        },
    )
}

/// Three weeks of XPO legs into JFK, one an hour, one in twelve failed, and
/// UPS's into BOS the same.
pub fn ordinary_history() -> Vec<pb::Event> {
    let mut events = Vec::new();
    for h in 0..(21 * 24) {
        let at = START + h * HOUR;
        events.push(leg(&format!("h-xpo-{h}"), "XPO", "JFK", at, h % 12 == 0));
        events.push(leg(&format!("h-ups-{h}"), "UPS", "BOS", at, h % 12 == 5));
    }
    // XPO legs into JFK announced for the Monday afternoon: still to leave
    // when the disruption comes.
    let monday = START + 21 * 24 * HOUR;
    for i in 0..3 {
        let departure = monday + (14 + i) * HOUR;
        let id = format!("p-xpo-{i}");
        events.push(shipment_event(
            &id,
            pb::Shipment {
                shipment_id: id.clone(),
                carrier: "XPO".into(),
                origin: "ATL".into(),
                destination: "JFK".into(),
                scheduled_departure: rfc3339(departure),
                scheduled_arrival: rfc3339(departure + 10 * HOUR),
                status: pb::ShipmentStatus::Planned as i32,
                ..Default::default()
            },
        ));
    }
    events
}

/// Then, on the Monday of week four from 08:00, XPO fails 12 of 16 legs
/// into JFK in two hours (UPS into BOS stays ordinary).
pub fn disruption() -> Vec<pb::Event> {
    let onset = START + 21 * 24 * HOUR + 8 * HOUR;
    (0..16)
        .map(|i| {
            leg(
                &format!("d-xpo-{i}"),
                "XPO",
                "JFK",
                onset + i * 450,
                i % 4 != 0,
            )
        })
        .chain((0..2).map(|i| leg(&format!("d-ups-{i}"), "UPS", "BOS", onset + i * HOUR, false)))
        .collect()
}

/// From later that day, XPO's legs into JFK are fine again, hour after hour,
/// until the failures have left the longest window (a day).
pub fn recovery() -> Vec<pb::Event> {
    let from = START + 21 * 24 * HOUR + 12 * HOUR;
    (0..30)
        .map(|i| leg(&format!("r-xpo-{i}"), "XPO", "JFK", from + i * HOUR, false))
        .collect()
}

pub async fn ingest(server: &TestServer, events: Vec<pb::Event>) -> pb::IngestEventsResponse {
    let mut client = server.ingest().await;
    let mut total = pb::IngestEventsResponse::default();
    for chunk in events.chunks(500) {
        let answer = client
            .ingest_events(pb::IngestEventsRequest {
                events: chunk.to_vec(),
            })
            .await
            .expect("ingest")
            .into_inner();
        total.accepted += answer.accepted;
        total.duplicate += answer.duplicate;
        total.rejected += answer.rejected;
    }
    total
}

pub async fn anomalies(server: &TestServer) -> AnomaliesClient<Channel> {
    AnomaliesClient::new(server.channel().await)
}

pub async fn watch(server: &TestServer, request: pb::WatchAnomaliesRequest) -> Watch {
    anomalies(server)
        .await
        .watch_anomalies(request)
        .await
        .expect("watch")
        .into_inner()
}

/// The next message, waiting at most `wait`.
pub async fn next(watch: &mut Watch, wait: Duration) -> Option<pb::AnomalyEvent> {
    match tokio::time::timeout(wait, watch.next()).await {
        Ok(Some(Ok(event))) => Some(event),
        Ok(Some(Err(status))) => panic!("watch ended: {status}"),
        Ok(None) | Err(_) => None,
    }
}

/// Every message that arrives within `wait` of the previous one.
pub async fn drain(watch: &mut Watch, wait: Duration) -> Vec<pb::AnomalyEvent> {
    let mut out = Vec::new();
    while let Some(event) = next(watch, wait).await {
        out.push(event);
    }
    out
}

pub fn carrier_kind() -> i32 {
    pb::AnomalyKind::RegionalCarrierDisruption as i32
}

pub fn of_kind(events: &[pb::AnomalyEvent], kind: i32) -> Vec<&pb::AnomalyEvent> {
    events
        .iter()
        .filter(|e| e.anomaly.as_ref().is_some_and(|a| a.kind == kind))
        .collect()
}
