//! Ingest then score, over the wire, against both backends: history moves the
//! scores, duplicates are counted and not applied twice, bad events are rejected
//! with the field named while the rest are applied.

mod common;

use common::*;
use detour::pb;

async fn history_moves_scores(server: &TestServer) {
    let mut ingest = server.ingest().await;
    let mut events = lane_history("h", "XPO", 14);
    events.extend(lane_history("h", "UPS", 0));
    let answer = ingest
        .ingest_events(pb::IngestEventsRequest { events })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (answer.accepted, answer.duplicate, answer.rejected),
        (40, 0, 0)
    );

    let mut client = server.scoring().await;
    let failing = score_shipment(&mut client, "XPO").await;
    let clean = score_shipment(&mut client, "UPS").await;
    assert!(
        failing.probability > clean.probability + 0.05,
        "XPO with 14 of 20 late: {} vs UPS with none: {}",
        failing.probability,
        clean.probability
    );
    assert!(!failing.degraded, "{:?}", failing.degraded_reasons);
    let top = &failing.factors[0];
    assert!(
        top.feature.contains("failure_rate") && top.contribution > 0.0,
        "{top:?}"
    );
}

async fn duplicates_are_not_applied_twice(server: &TestServer) {
    let mut ingest = server.ingest().await;
    let mut client = server.scoring().await;
    let events = lane_history("d", "FDX", 10);
    let first = ingest
        .ingest_events(pb::IngestEventsRequest {
            events: events.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((first.accepted, first.duplicate), (20, 0));
    let before = score_shipment(&mut client, "FDX").await;
    let again = ingest
        .ingest_events(pb::IngestEventsRequest { events })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((again.accepted, again.duplicate), (0, 20));
    let after = score_shipment(&mut client, "FDX").await;
    assert_eq!(before.probability, after.probability);
    assert_eq!(before.factors, after.factors);
}

async fn bad_events_are_rejected_and_the_rest_applied(server: &TestServer) {
    let mut ingest = server.ingest().await;
    let mut events = lane_history("r", "DHL", 0);
    let mut broken = shipment("bad-1", "DHL", "ATL", "JFK", 2, Some(true));
    broken.scheduled_departure = None;
    events.insert(3, shipment_event("bad-1", broken));
    events.insert(
        5,
        pb::Event {
            event_id: String::new(),
            payload: Some(pb::event::Payload::Site(snapshot(
                "ATL",
                "2026-03-01T00:00:00Z",
                1.0,
            ))),
        },
    );
    events.insert(
        7,
        pb::Event {
            event_id: "neg".into(),
            payload: Some(pb::event::Payload::Site(snapshot(
                "ATL",
                "2026-03-01T00:00:00Z",
                -4.0,
            ))),
        },
    );
    let answer = ingest
        .ingest_events(pb::IngestEventsRequest { events })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((answer.accepted, answer.rejected), (20, 3));
    let fields: Vec<(u32, &str)> = answer
        .rejections
        .iter()
        .map(|r| (r.index, r.field.as_str()))
        .collect();
    assert_eq!(
        fields,
        [
            (3, "events[3].shipment.scheduled_departure"),
            (5, "events[5].event_id"),
            (7, "events[7].site.backlog")
        ]
    );
    assert!(answer.rejections.iter().all(|r| !r.reason.is_empty()));

    let empty = ingest
        .ingest_events(pb::IngestEventsRequest::default())
        .await;
    assert_eq!(empty.unwrap_err().code(), tonic::Code::InvalidArgument);
}

#[tokio::test]
async fn memory_backend() {
    let server = TestServer::start(config(None, "unused")).await;
    history_moves_scores(&server).await;
    duplicates_are_not_applied_twice(&server).await;
    bad_events_are_rejected_and_the_rest_applied(&server).await;
}

#[tokio::test]
async fn redis_backend() {
    let (url, _redis) = shared_redis();
    let server = TestServer::start(config(Some(url), &unique_namespace("ingest"))).await;
    history_moves_scores(&server).await;
    duplicates_are_not_applied_twice(&server).await;
    bad_events_are_rejected_and_the_rest_applied(&server).await;
}
