//! Degraded and unknown answers over the wire, each against its documented
//! answer (README, "When inputs are missing"): no history, store down, stale
//! snapshot and unknown code. None of them may read as an alarm.

mod common;

use common::*;
use detour::pb;
use tonic::Code;

/// The shipped models' high-band threshold.
const HIGH: f64 = 0.5;

fn band(score: &pb::RiskScore) -> pb::RiskBand {
    pb::RiskBand::try_from(score.band).expect("a known band")
}

/// Asserts the documented degraded answer: band UNKNOWN, flagged, a reason
/// mentioning `reason`, and a probability that does not read as high.
fn unknown_not_alarming(score: &pb::RiskScore, reason: &str) {
    assert_eq!(band(score), pb::RiskBand::Unknown, "{score:?}");
    assert!(score.degraded, "{score:?}");
    assert!(
        score.degraded_reasons.iter().any(|r| r.contains(reason)),
        "no reason mentioning {reason:?} in {:?}",
        score.degraded_reasons
    );
    assert!(
        score.probability < HIGH,
        "{} reads as high: {score:?}",
        score.entity_id
    );
}

async fn ingest(server: &TestServer, events: Vec<pb::Event>) {
    server.ingest_all(events).await;
}

fn snapshot_event(site: &str, at: &str, backlog: f64) -> pb::Event {
    pb::Event {
        event_id: format!("snap-{site}-{at}"),
        payload: Some(pb::event::Payload::Site(snapshot(site, at, backlog))),
    }
}

async fn score_site(
    server: &TestServer,
    site: &str,
    at: &str,
) -> Result<pb::RiskScore, tonic::Status> {
    let mut client = server.scoring().await;
    client
        .score_site(pb::ScoreSiteRequest {
            site: site.into(),
            as_of: ts(at),
        })
        .await
        .map(tonic::Response::into_inner)
}

async fn score_order(
    server: &TestServer,
    order: pb::Order,
) -> Result<pb::RiskScore, tonic::Status> {
    let mut client = server.scoring().await;
    client
        .score_order(pb::ScoreOrderRequest {
            order: Some(order),
            as_of: None,
        })
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test]
async fn a_site_or_carrier_with_no_history_is_unknown_not_high() {
    let server = TestServer::start(config(None, "unused")).await;

    let site = score_site(&server, "ATL", "2026-03-20T10:00:00Z")
        .await
        .unwrap();
    unknown_not_alarming(&site, "site ATL has no history");
    // The snapshot it lacks is not listed as a factor.
    assert!(site.factors.iter().all(|f| f.feature != "backlog_to_limit"));

    let order = score_order(&server, order("O-1", "ATL")).await.unwrap();
    unknown_not_alarming(&order, "site ATL has no history");

    let mut client = server.scoring().await;
    let leg = score_shipment(&mut client, "NEWCO").await;
    unknown_not_alarming(&leg, "carrier NEWCO has no history");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn fresh_evidence_gets_a_band_and_stale_evidence_does_not() {
    let server = TestServer::start(config(None, "unused")).await;
    let mut events: Vec<pb::Event> = (0..6)
        .map(|hour| snapshot_event("ATL", &format!("2026-03-20T{hour:02}:00:00Z"), 5.0))
        .collect();
    events.extend(lane_history("h", "UPS", 2));
    ingest(&server, events).await;

    let fresh = score_site(&server, "ATL", "2026-03-20T05:30:00Z")
        .await
        .unwrap();
    assert!(!fresh.degraded, "{fresh:?}");
    assert_ne!(band(&fresh), pb::RiskBand::Unknown);

    // A carrier with a record keeps its band, on its lane and on a lane new to
    // it (its own record is evidence; the lane's gap is noted).
    let mut client = server.scoring().await;
    let known = score_shipment(&mut client, "UPS").await;
    assert_ne!(band(&known), pb::RiskBand::Unknown, "{known:?}");
    let new_lane = client
        .score_shipment(pb::ScoreShipmentRequest {
            shipment: Some(shipment("probe", "UPS", "ATL", "BOS", 21, None)),
            as_of: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_ne!(band(&new_lane), pb::RiskBand::Unknown, "{new_lane:?}");
    assert!(
        new_lane
            .degraded_reasons
            .iter()
            .any(|r| r.contains("no history on lane ATL→BOS")),
        "{new_lane:?}"
    );

    // A site seen only through its orders has history but no snapshot.
    let mut seen = order("O-9", "DFW");
    seen.created_at = ts("2026-03-20T04:00:00Z");
    ingest(
        &server,
        vec![pb::Event {
            event_id: "order-dfw".into(),
            payload: Some(pb::event::Payload::Order(seen)),
        }],
    )
    .await;
    let no_snapshot = score_site(&server, "DFW", "2026-03-20T05:30:00Z")
        .await
        .unwrap();
    unknown_not_alarming(&no_snapshot, "site DFW has no snapshot");

    // Seven hours after the last snapshot the state is older than the six the
    // band trusts.
    let stale = score_site(&server, "ATL", "2026-03-20T12:00:00Z")
        .await
        .unwrap();
    unknown_not_alarming(&stale, "snapshot is 7.0 h old");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn with_the_store_down_answers_are_unknown_not_high() {
    let mut redis = RedisServer::start();
    let server = TestServer::start(config(Some(redis.url()), &unique_namespace("down"))).await;
    let mut events: Vec<pb::Event> = (0..6)
        .map(|hour| snapshot_event("ATL", &format!("2026-03-20T{hour:02}:00:00Z"), 5.0))
        .collect();
    events.extend(lane_history("h", "UPS", 2));
    ingest(&server, events).await;
    let mut probe = order("O-1", "ATL");
    probe.created_at = ts("2026-03-20T05:30:00Z");
    let before = score_order(&server, probe.clone()).await.unwrap();
    assert!(!before.degraded, "{before:?}");

    redis.stop();
    let during = score_order(&server, probe).await.unwrap();
    unknown_not_alarming(&during, "feature store");
    let site = score_site(&server, "ATL", "2026-03-20T05:30:00Z")
        .await
        .unwrap();
    unknown_not_alarming(&site, "feature store");
    let mut client = server.scoring().await;
    let leg = score_shipment(&mut client, "UPS").await;
    unknown_not_alarming(&leg, "feature store");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_code_the_network_does_not_know_is_not_found() {
    let server = TestServer::start(config(None, "unused")).await;

    let status = score_site(&server, "ZZZ", "2026-03-20T10:00:00Z")
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert!(
        status.message().starts_with("site: \"ZZZ\""),
        "{}",
        status.message()
    );

    let status = score_site(&server, "atl", "2026-03-20T10:00:00Z")
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert!(
        status.message().contains("did you mean \"ATL\"?"),
        "{}",
        status.message()
    );

    let status = score_order(&server, order("O-1", "ZZZ")).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert!(
        status.message().starts_with("order.site:"),
        "{}",
        status.message()
    );
    let mut elsewhere = order("O-2", "ATL");
    elsewhere.destination_region = "NOWHERE".into();
    let status = score_order(&server, elsewhere).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert!(
        status.message().starts_with("order.destination_region:"),
        "{}",
        status.message()
    );

    // A reallocation has nothing to compare an unknown site with either.
    let mut recommend =
        pb::recommendations_client::RecommendationsClient::new(server.channel().await);
    let status = recommend
        .recommend_reallocation(pb::RecommendReallocationRequest {
            subject: Some(pb::recommend_reallocation_request::Subject::Order(order(
                "O-3", "ZZZ",
            ))),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert!(
        status.message().starts_with("order.site:"),
        "{}",
        status.message()
    );

    // In a batch the unknown item fails alone; the others are scored.
    let item = |id: &str, site: &str| pb::ScoreItem {
        request_id: id.into(),
        entity: Some(pb::score_item::Entity::Site(pb::ScoreSiteRequest {
            site: site.into(),
            as_of: ts("2026-03-20T10:00:00Z"),
        })),
    };
    let mut client = server.scoring().await;
    let results = client
        .score_batch(pb::ScoreBatchRequest {
            items: vec![item("a", "ATL"), item("b", "ZZZ"), item("c", "DFW")],
        })
        .await
        .unwrap()
        .into_inner()
        .results;
    let outcomes: Vec<_> = results.iter().map(|r| r.outcome.clone().unwrap()).collect();
    use pb::score_result::Outcome;
    assert!(matches!(&outcomes[0], Outcome::Score(s) if s.entity_id == "ATL"));
    match &outcomes[1] {
        Outcome::Error(error) => {
            assert_eq!(error.code, "NOT_FOUND");
            assert!(
                error.message.starts_with("items[1].site.site:"),
                "{}",
                error.message
            );
        }
        other => panic!("an unknown site was scored: {other:?}"),
    }
    assert!(matches!(&outcomes[2], Outcome::Score(s) if s.entity_id == "DFW"));
    server.stop().await.unwrap();
}
