//! Anomalies over the wire: a disruption ingested through `EventIngest`
//! reaches a `WatchAnomalies` subscriber as one classified alert with its
//! evidence; a subscriber resumes from its cursor with nothing missed;
//! duplicates open nothing; acknowledgements and listings; bad filters are
//! refused naming the field; two replicas on one Redis deliver each alert
//! once to each subscriber, and write it where every replica's carrier
//! model reads it.

mod common;

use std::time::Duration;

use common::anomalies::{
    anomalies, carrier_kind, disruption, drain, ingest, next, of_kind, ordinary_history, recovery,
    watch,
};
use common::{TestServer, config, shared_redis, unique_namespace};
use detour::features::FeatureStore;
use detour::features::aggregates::{AggregateKey, disruption_gauges};
use detour::pb;
use tokio_stream::StreamExt;
use tonic::Code;

#[tokio::test]
async fn a_regional_disruption_is_watched_resumed_acknowledged_and_listed() {
    let server = TestServer::start(config(None, "anomalies")).await;
    let history = ordinary_history();
    assert_eq!(
        ingest(&server, history.clone()).await.accepted as usize,
        history.len()
    );
    let mut everything = watch(&server, pb::WatchAnomaliesRequest::default()).await;
    let mut carriers_only = watch(
        &server,
        pb::WatchAnomaliesRequest {
            kinds: vec![carrier_kind()],
            entity: "XPO".into(),
            ..Default::default()
        },
    )
    .await;
    let quiet = drain(&mut everything, Duration::from_millis(200)).await;
    assert!(quiet.is_empty(), "ordinary history alerted: {quiet:?}");

    ingest(&server, disruption()).await;
    let seen = drain(&mut carriers_only, Duration::from_millis(500)).await;
    let opened: Vec<_> = seen.iter().filter(|e| e.change == "opened").collect();
    assert_eq!(opened.len(), 1, "one alert for the episode: {seen:#?}");
    let alert = opened[0].anomaly.clone().unwrap();
    let entities = alert.entities.clone().unwrap();
    assert_eq!(
        (entities.carrier.as_str(), entities.region.as_str()),
        ("XPO", "JFK")
    );
    assert_eq!(alert.status, "open");
    assert!(alert.score >= 0.999, "{alert:?}");
    assert!(
        alert.summary.starts_with("XPO failed ") && alert.summary.contains("into JFK"),
        "{}",
        alert.summary
    );
    let figure = |name: &str| {
        alert
            .evidence
            .iter()
            .find(|e| e.name == name)
            .map(|e| e.value)
            .unwrap_or_else(|| panic!("no {name} in {:?}", alert.evidence))
    };
    assert!(figure("failed") >= 3.0 && figure("failed") <= figure("finished"));
    assert!(
        (0.05..0.15).contains(&figure("baseline_rate")),
        "{:?}",
        alert.evidence
    );
    // It opens on the first strong evidence and grows more severe as the
    // failures mount.
    let worst = seen
        .iter()
        .filter_map(|e| e.anomaly.as_ref())
        .map(|a| a.severity)
        .max();
    assert!(worst >= Some(pb::AnomalySeverity::High as i32), "{seen:#?}");
    assert!(
        alert.action.contains("RecommendReroute"),
        "{}",
        alert.action
    );
    // The legs it puts at risk: XPO's announced legs into JFK, each with the
    // recommendations' top answer.
    let at_risk: Vec<&str> = alert
        .at_risk
        .iter()
        .map(|l| l.shipment_id.as_str())
        .collect();
    assert_eq!(at_risk, ["p-xpo-0", "p-xpo-1", "p-xpo-2"], "{alert:#?}");
    for leg in &alert.at_risk {
        assert!(!leg.departed);
        let reroute = leg
            .reroute
            .as_ref()
            .expect("a suggestion for a leg that has not left");
        assert!(
            (reroute.carrier != "XPO" && !reroute.carrier.is_empty())
                || reroute.new_promise.is_some(),
            "{reroute:?}"
        );
    }
    // The same alert on the unfiltered watch, and nothing about UPS or BOS.
    let all = drain(&mut everything, Duration::from_millis(300)).await;
    assert_eq!(
        of_kind(&all, carrier_kind())
            .iter()
            .filter(|e| e.change == "opened")
            .count(),
        1
    );
    assert!(
        all.iter().all(|e| !e
            .anomaly
            .as_ref()
            .unwrap()
            .entities
            .as_ref()
            .unwrap()
            .carrier
            .contains("UPS")),
        "{all:#?}"
    );
    let opened_cursor = opened[0].cursor.clone();

    // The same events again are duplicates: no second episode.
    let again = ingest(&server, disruption()).await;
    assert_eq!(again.accepted, 0);
    assert!(
        drain(&mut carriers_only, Duration::from_millis(300))
            .await
            .is_empty()
    );

    // Listed as open; acknowledged, and the watchers are told.
    let mut client = anomalies(&server).await;
    let open = client
        .list_anomalies(pb::ListAnomaliesRequest {
            open_only: true,
            kinds: vec![carrier_kind()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(open.anomalies.iter().any(|a| a.id == alert.id), "{open:?}");
    let acked = client
        .acknowledge_anomaly(pb::AcknowledgeAnomalyRequest {
            id: alert.id.clone(),
            by: "planner-7".into(),
            note: "moving JFK legs to UPS".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(acked.acknowledged.as_ref().unwrap().by, "planner-7");
    let told = next(&mut carriers_only, Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(told.change, "acknowledged");

    // It resolves once XPO's legs are fine again.
    ingest(&server, recovery()).await;
    let later = drain(&mut carriers_only, Duration::from_millis(500)).await;
    let resolved: Vec<_> = later.iter().filter(|e| e.change == "resolved").collect();
    assert_eq!(resolved.len(), 1, "{later:#?}");
    let resolved_alert = resolved[0].anomaly.as_ref().unwrap();
    assert_eq!(resolved_alert.id, alert.id);
    assert!(resolved_alert.resolved_at.is_some());
    assert_eq!(
        resolved_alert.acknowledged.as_ref().map(|a| a.by.as_str()),
        Some("planner-7"),
        "an acknowledgement outlives later changes"
    );

    // A subscriber resuming from the opening's cursor gets what followed it,
    // in order, and not the opening; one from "0" gets the opening too.
    let mut resumed = watch(
        &server,
        pb::WatchAnomaliesRequest {
            kinds: vec![carrier_kind()],
            cursor: opened_cursor.clone(),
            ..Default::default()
        },
    )
    .await;
    let replay = drain(&mut resumed, Duration::from_millis(300)).await;
    let cursors = |events: &[pb::AnomalyEvent]| -> Vec<String> {
        events.iter().map(|e| e.cursor.clone()).collect()
    };
    let after_opening: Vec<pb::AnomalyEvent> = seen
        .iter()
        .skip_while(|e| e.cursor != opened_cursor)
        .skip(1)
        .chain([&told])
        .chain(&later)
        .cloned()
        .collect();
    assert_eq!(
        cursors(&replay),
        cursors(&after_opening),
        "nothing missed, nothing twice"
    );
    assert_eq!(replay.last().map(|e| e.change.as_str()), Some("resolved"));
    let mut from_start = watch(
        &server,
        pb::WatchAnomaliesRequest {
            kinds: vec![carrier_kind()],
            cursor: "0".into(),
            ..Default::default()
        },
    )
    .await;
    let replay = drain(&mut from_start, Duration::from_millis(300)).await;
    assert_eq!(
        replay.first().map(|e| e.cursor.as_str()),
        Some(opened_cursor.as_str())
    );
    // `until_now` sends the same and ends the stream.
    let mut so_far = watch(
        &server,
        pb::WatchAnomaliesRequest {
            kinds: vec![carrier_kind()],
            until_now: true,
            ..Default::default()
        },
    )
    .await;
    let mut ended = Vec::new();
    while let Some(item) = tokio::time::timeout(Duration::from_secs(2), so_far.next())
        .await
        .expect("the stream ends by itself")
    {
        ended.push(item.expect("an entry").cursor);
    }
    assert_eq!(ended, cursors(&replay));
}

#[tokio::test]
async fn bad_filters_and_acknowledgements_are_refused_naming_the_field() {
    let server = TestServer::start(config(None, "anomalies-bad")).await;
    let mut client = anomalies(&server).await;
    let refused = |request: pb::WatchAnomaliesRequest| {
        let mut client = client.clone();
        async move {
            match client.watch_anomalies(request).await {
                Ok(_) => panic!("accepted"),
                Err(status) => status,
            }
        }
    };
    let status = refused(pb::WatchAnomaliesRequest {
        kinds: vec![carrier_kind(), 99],
        ..Default::default()
    })
    .await;
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().starts_with("kinds[1]"), "{status:?}");
    let status = refused(pb::WatchAnomaliesRequest {
        cursor: "yesterday".into(),
        ..Default::default()
    })
    .await;
    assert!(status.message().starts_with("cursor"), "{status:?}");
    let status = refused(pb::WatchAnomaliesRequest {
        min_severity: 7,
        ..Default::default()
    })
    .await;
    assert!(status.message().starts_with("min_severity"), "{status:?}");
    let status = client
        .list_anomalies(pb::ListAnomaliesRequest {
            page_token: "x".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(status.message().starts_with("page_token"), "{status:?}");
    let status = client
        .acknowledge_anomaly(pb::AcknowledgeAnomalyRequest {
            id: "nothing@1".into(),
            by: "me".into(),
            note: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let status = client
        .acknowledge_anomaly(pb::AcknowledgeAnomalyRequest {
            id: "nothing@1".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(status.message().starts_with("by"), "{status:?}");
    // Still serving.
    let listed = client
        .list_anomalies(pb::ListAnomaliesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(listed.anomalies.is_empty());
}

#[tokio::test]
async fn two_replicas_on_one_redis_deliver_each_alert_once_to_each_subscriber() {
    let (url, _redis) = shared_redis();
    let namespace = unique_namespace("anomalies-replicas");
    let a = TestServer::start(config(Some(url.clone()), &namespace)).await;
    let b = TestServer::start(config(Some(url.clone()), &namespace)).await;
    ingest(&a, ordinary_history()).await;
    let filter = pb::WatchAnomaliesRequest {
        kinds: vec![carrier_kind()],
        ..Default::default()
    };
    let mut on_a = watch(&a, filter.clone()).await;
    let mut on_b = watch(&b, filter.clone()).await;
    // Half the disruption through each replica.
    let events = disruption();
    let (first, second) = events.split_at(events.len() / 2);
    ingest(&a, first.to_vec()).await;
    ingest(&b, second.to_vec()).await;
    // And all of it again through the other: duplicates.
    ingest(&b, first.to_vec()).await;
    ingest(&a, second.to_vec()).await;
    for (name, watch) in [("A", &mut on_a), ("B", &mut on_b)] {
        let seen = drain(watch, Duration::from_millis(800)).await;
        let opened = seen.iter().filter(|e| e.change == "opened").count();
        assert_eq!(opened, 1, "replica {name}: {seen:#?}");
        let mut cursors: Vec<&str> = seen.iter().map(|e| e.cursor.as_str()).collect();
        let count = cursors.len();
        cursors.dedup();
        assert_eq!(cursors.len(), count, "replica {name} sent an entry twice");
    }
    // The open alert is a model input: its record in the replicas' shared
    // feature store holds its severity, for every replica's carrier model.
    let store = common::stores::redis_store(&url, &namespace);
    let record = store
        .fetch(&[AggregateKey::carrier_region_alert("XPO", "JFK")])
        .await
        .unwrap();
    let (severity, _) = record[0]
        .and_then(|r| r.gauge(disruption_gauges::SEVERITY))
        .expect("the open alert's record was written");
    assert!(severity >= 1.0, "{severity}");
    // A subscriber on B resuming from "0" sees what A's subscriber saw.
    let mut replay = watch(
        &b,
        pb::WatchAnomaliesRequest {
            cursor: "0".into(),
            ..filter
        },
    )
    .await;
    let replayed = drain(&mut replay, Duration::from_millis(300)).await;
    assert_eq!(replayed.iter().filter(|e| e.change == "opened").count(), 1);
}
