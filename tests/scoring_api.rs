//! The scoring API over the wire, with the embedded store: answers, batches,
//! streams, health, reflection and shutdown. Refusals of bad input are in
//! `bad_input.rs`.

mod common;

use common::*;
use detour::pb;

#[tokio::test]
async fn every_family_answers_with_model_and_version() {
    let server = TestServer::start(config(None, "unused")).await;
    let mut client = server.scoring().await;

    let shipment = score_shipment(&mut client, "UPS").await;
    in_unit_interval(&shipment);
    assert_eq!(shipment.kind, pb::RiskKind::CarrierFailure as i32);
    assert_eq!(shipment.entity_id, "probe");
    assert!(shipment.degraded, "an unseen carrier is flagged");
    assert!(shipment.degraded_reasons.iter().any(|r| r.contains("UPS")));

    let order = client
        .score_order(pb::ScoreOrderRequest {
            order: Some(order("O-1", "ATL")),
            as_of: None,
        })
        .await
        .unwrap()
        .into_inner();
    in_unit_interval(&order);
    assert_eq!(order.kind, pb::RiskKind::OrderFallout as i32);
    assert!(!order.factors.is_empty(), "factors explain the score");

    let site = client
        .score_site(pb::ScoreSiteRequest {
            site: "ATL".into(),
            as_of: ts("2026-03-20T10:00:00Z"),
        })
        .await
        .unwrap()
        .into_inner();
    in_unit_interval(&site);
    assert_eq!(site.kind, pb::RiskKind::SiteCongestion as i32);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_congested_site_scores_riskier_than_a_quiet_one() {
    let server = TestServer::start(config(None, "unused")).await;
    let mut ingest = server.ingest().await;
    let mut events = Vec::new();
    for hour in 0..12 {
        let at = format!("2026-03-20T{hour:02}:00:00Z");
        for (site, backlog) in [("ATL", 5.0 + hour as f64 * 20.0), ("DFW", 5.0)] {
            events.push(pb::Event {
                event_id: format!("snap-{site}-{hour}"),
                payload: Some(pb::event::Payload::Site(snapshot(site, &at, backlog))),
            });
        }
    }
    let answer = ingest
        .ingest_events(pb::IngestEventsRequest { events })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((answer.accepted, answer.rejected), (24, 0));
    let mut client = server.scoring().await;
    let mut scores = Vec::new();
    for site in ["ATL", "DFW"] {
        let request = pb::ScoreSiteRequest {
            site: site.into(),
            as_of: ts("2026-03-20T11:30:00Z"),
        };
        scores.push(client.score_site(request).await.unwrap().into_inner());
    }
    let (busy, quiet) = (&scores[0], &scores[1]);
    assert!(
        busy.probability > quiet.probability,
        "busy {} vs quiet {}",
        busy.probability,
        quiet.probability
    );
    assert!(!busy.degraded, "{:?}", busy.degraded_reasons);
}

#[tokio::test]
async fn batch_scores_mixed_kinds_in_order() {
    let server = TestServer::start(config(None, "unused")).await;
    let mut client = server.scoring().await;
    let items = vec![
        pb::ScoreItem {
            request_id: "a".into(),
            entity: Some(pb::score_item::Entity::Shipment(pb::ScoreShipmentRequest {
                shipment: Some(shipment("S1", "UPS", "ATL", "JFK", 3, None)),
                as_of: None,
            })),
        },
        pb::ScoreItem {
            request_id: "b".into(),
            entity: Some(pb::score_item::Entity::Order(pb::ScoreOrderRequest {
                order: Some(order("O1", "DFW")),
                as_of: None,
            })),
        },
        pb::ScoreItem {
            request_id: "c".into(),
            entity: Some(pb::score_item::Entity::Site(pb::ScoreSiteRequest {
                site: "ORD".into(),
                as_of: None,
            })),
        },
    ];
    let results = client
        .score_batch(pb::ScoreBatchRequest { items })
        .await
        .unwrap()
        .into_inner()
        .results;
    let ids: Vec<_> = results.iter().map(|r| r.request_id.as_str()).collect();
    assert_eq!(ids, ["a", "b", "c"]);
    let kinds: Vec<i32> = results
        .iter()
        .map(|r| match &r.outcome {
            Some(pb::score_result::Outcome::Score(s)) => {
                in_unit_interval(s);
                s.kind
            }
            other => panic!("expected a score, got {other:?}"),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            pb::RiskKind::CarrierFailure as i32,
            pb::RiskKind::OrderFallout as i32,
            pb::RiskKind::SiteCongestion as i32
        ]
    );
}

#[tokio::test]
async fn stream_answers_in_request_order_and_survives_a_bad_item() {
    let server = TestServer::start(config(None, "unused")).await;
    let mut client = server.scoring().await;
    let mut items: Vec<pb::ScoreItem> = (0..300)
        .map(|i| pb::ScoreItem {
            request_id: format!("r{i}"),
            entity: Some(pb::score_item::Entity::Shipment(pb::ScoreShipmentRequest {
                shipment: Some(shipment(&format!("S{i}"), "UPS", "ATL", "JFK", 3, None)),
                as_of: None,
            })),
        })
        .collect();
    // Item 7 has no departure time.
    if let Some(pb::score_item::Entity::Shipment(request)) = &mut items[7].entity {
        request.shipment.as_mut().unwrap().scheduled_departure = None;
    }
    let answers: Vec<pb::ScoreResult> = {
        use tokio_stream::StreamExt;
        let response = client
            .score_stream(tokio_stream::iter(items))
            .await
            .unwrap()
            .into_inner();
        response.map(|r| r.unwrap()).collect().await
    };
    assert_eq!(answers.len(), 300);
    for (i, answer) in answers.iter().enumerate() {
        assert_eq!(answer.request_id, format!("r{i}"));
        match (&answer.outcome, i) {
            (Some(pb::score_result::Outcome::Error(error)), 7) => {
                assert_eq!(error.code, "INVALID_ARGUMENT");
                assert_eq!(error.field, "shipment.shipment.scheduled_departure");
            }
            (Some(pb::score_result::Outcome::Score(score)), _) => {
                assert_eq!(score.entity_id, format!("S{i}"))
            }
            (other, _) => panic!("item {i}: unexpected {other:?}"),
        }
    }
}

#[tokio::test]
async fn health_and_reflection_work_for_stock_tools() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let server = TestServer::start(config(None, "unused")).await;
    let channel = server.channel().await;
    let mut health = HealthClient::new(channel.clone());
    for service in ["", "detour.v1.RiskScoring", "detour.v1.EventIngest"] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "service {service:?}");
    }

    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let mut reflection = ServerReflectionClient::new(channel);
    let mut ask = async |request: MessageRequest| {
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(request),
        };
        let mut answers = reflection
            .server_reflection_info(tokio_stream::iter([request]))
            .await
            .unwrap()
            .into_inner();
        answers.message().await.unwrap().unwrap()
    };
    let answer = ask(MessageRequest::ListServices(String::new())).await;
    let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response else {
        panic!("expected a service list");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for expected in [
        "detour.v1.RiskScoring",
        "detour.v1.EventIngest",
        "grpc.health.v1.Health",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }

    // Times are google.protobuf.Timestamp: a stock client resolves the
    // well-known type through reflection too, or it cannot build a request.
    let answer = ask(MessageRequest::FileContainingSymbol(
        "google.protobuf.Timestamp".into(),
    ))
    .await;
    let Some(MessageResponse::FileDescriptorResponse(files)) = answer.message_response else {
        panic!("expected the file declaring google.protobuf.Timestamp, got {answer:?}");
    };
    assert!(!files.file_descriptor_proto.is_empty());
}

#[tokio::test]
async fn shutdown_lets_an_open_stream_finish() {
    let mut server = TestServer::start(config(None, "unused")).await;
    let mut client = server.scoring().await;
    let (tx, rx) = tokio::sync::mpsc::channel::<pb::ScoreItem>(4);
    let mut answers = client
        .score_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let item = |i: usize| pb::ScoreItem {
        request_id: format!("r{i}"),
        entity: Some(pb::score_item::Entity::Site(pb::ScoreSiteRequest {
            site: "ATL".into(),
            as_of: None,
        })),
    };
    tx.send(item(0)).await.unwrap();
    assert!(answers.message().await.unwrap().is_some());
    server.signal_shutdown();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    // The stream opened before the signal still answers.
    tx.send(item(1)).await.unwrap();
    let answer = answers
        .message()
        .await
        .unwrap()
        .expect("in-flight stream still served");
    assert_eq!(answer.request_id, "r1");
    drop(tx);
    assert!(answers.message().await.unwrap().is_none());
    server.stop().await.unwrap();
}
