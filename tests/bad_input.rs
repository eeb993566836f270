//! Bad input over the wire, refused at the boundary with the status a stock
//! client expects and the field named — malformed fields, times, huge values,
//! undecodable protobuf, messages over the size limit — while the server keeps
//! serving.

mod common;

use common::*;
use detour::pb;
use tonic::Code;

/// Asserts INVALID_ARGUMENT naming `field`; returns the message.
async fn expect_invalid<T: std::fmt::Debug>(
    result: Result<tonic::Response<T>, tonic::Status>,
    field: &str,
) -> String {
    let status = result.expect_err("bad input must be refused");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().starts_with(&format!("{field}: ")),
        "message {:?} should name {field}",
        status.message()
    );
    status.message().to_string()
}

#[tokio::test]
async fn a_huge_bad_value_gets_a_short_error_naming_the_field() {
    let server = TestServer::start(config(None, "unused")).await;
    let mut client = server.scoring().await;
    let message = expect_invalid(
        client
            .score_site(pb::ScoreSiteRequest {
                site: "A".repeat(20_000),
                as_of: None,
            })
            .await,
        "site",
    )
    .await;
    // Far below the 16 KiB that stock clients accept in a status message.
    assert!(message.len() < 300, "{} bytes", message.len());
    assert!(message.contains("(20000 bytes)"), "{message}");
}

#[tokio::test]
async fn bad_input_is_invalid_argument_naming_the_field() {
    let server = TestServer::start(config(None, "unused")).await;
    let mut client = server.scoring().await;

    expect_invalid(
        client.score_order(pb::ScoreOrderRequest::default()).await,
        "order",
    )
    .await;
    expect_invalid(
        client
            .score_shipment(pb::ScoreShipmentRequest::default())
            .await,
        "shipment",
    )
    .await;
    expect_invalid(
        client.score_site(pb::ScoreSiteRequest::default()).await,
        "site",
    )
    .await;
    expect_invalid(
        client.score_batch(pb::ScoreBatchRequest::default()).await,
        "items",
    )
    .await;

    let mut missing_id = shipment("", "UPS", "ATL", "JFK", 3, None);
    missing_id.shipment_id.clear();
    let request = |s: pb::Shipment| pb::ScoreShipmentRequest {
        shipment: Some(s),
        as_of: None,
    };
    expect_invalid(
        client.score_shipment(request(missing_id)).await,
        "shipment.shipment_id",
    )
    .await;

    let mut bad_time = shipment("S", "UPS", "ATL", "JFK", 3, None);
    bad_time.scheduled_arrival = ts("2026-03-01T00:00:00Z");
    expect_invalid(
        client.score_shipment(request(bad_time)).await,
        "shipment.scheduled_arrival",
    )
    .await;

    let mut bad_enum = shipment("S", "UPS", "ATL", "JFK", 3, None);
    bad_enum.status = 42;
    expect_invalid(
        client.score_shipment(request(bad_enum)).await,
        "shipment.status",
    )
    .await;

    for units in [f64::NAN, -1.0] {
        let mut bad_units = order("O", "ATL");
        bad_units.units = units;
        let request = pb::ScoreOrderRequest {
            order: Some(bad_units),
            as_of: None,
        };
        expect_invalid(client.score_order(request).await, "order.units").await;
    }

    let mut bad_priority = order("O", "ATL");
    bad_priority.priority = 9;
    let request = pb::ScoreOrderRequest {
        order: Some(bad_priority),
        as_of: None,
    };
    expect_invalid(client.score_order(request).await, "order.priority").await;

    let batch = pb::ScoreBatchRequest {
        items: vec![
            pb::ScoreItem {
                request_id: "ok".into(),
                entity: Some(pb::score_item::Entity::Site(pb::ScoreSiteRequest {
                    site: "ATL".into(),
                    as_of: None,
                })),
            },
            pb::ScoreItem {
                request_id: "bad".into(),
                entity: None,
            },
        ],
    };
    expect_invalid(client.score_batch(batch).await, "items[1].entity").await;

    // And the server keeps serving.
    in_unit_interval(&score_shipment(&mut client, "UPS").await);
}

#[tokio::test]
async fn every_input_is_bounded_and_nothing_oversized_is_stored() {
    let server = TestServer::start(config(None, "unused")).await;
    let mut ingest = server.ingest().await;

    // The reproduction: orders with a 1 MB channel were stored whole.
    let mut big = order("O-big", "ATL");
    big.channel = "w".repeat(1 << 20);
    let event = |id: &str, order: pb::Order| pb::Event {
        event_id: id.into(),
        payload: Some(pb::event::Payload::Order(order)),
    };
    let mut trimmed = order("O-ok", "ATL");
    trimmed.channel = "marketplace".into();
    let answer = ingest
        .ingest_events(pb::IngestEventsRequest {
            events: vec![event("e-big", big), event("e-ok", trimmed)],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((answer.accepted, answer.rejected), (1, 1));
    let rejection = &answer.rejections[0];
    assert_eq!(rejection.field, "events[0].order.channel");
    assert!(rejection.reason.len() < 300, "{}", rejection.reason);

    // Numbers have ceilings too: a huge value would make a decayed sum infinite.
    let mut client = server.scoring().await;
    let score_order = |o: pb::Order| pb::ScoreOrderRequest {
        order: Some(o),
        as_of: None,
    };
    let mut huge_units = order("O", "ATL");
    huge_units.units = 1e300;
    expect_invalid(
        client.score_order(score_order(huge_units)).await,
        "order.units",
    )
    .await;
    let mut many_lines = order("O", "ATL");
    many_lines.line_count = 4_000_000_000;
    expect_invalid(
        client.score_order(score_order(many_lines)).await,
        "order.line_count",
    )
    .await;
    let mut long_period = snapshot("ATL", "2026-03-20T10:00:00Z", 5.0);
    long_period.period_minutes = 1e7;
    let answer = ingest
        .ingest_events(pb::IngestEventsRequest {
            events: vec![pb::Event {
                event_id: "snap".into(),
                payload: Some(pb::event::Payload::Site(long_period)),
            }],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.rejections[0].field, "events[0].site.period_minutes");

    // A batch item's request id is echoed back, so it is bounded as well.
    let batch = pb::ScoreBatchRequest {
        items: vec![pb::ScoreItem {
            request_id: "r".repeat(10_000),
            entity: Some(pb::score_item::Entity::Site(pb::ScoreSiteRequest {
                site: "ATL".into(),
                as_of: None,
            })),
        }],
    };
    expect_invalid(client.score_batch(batch).await, "items[0].request_id").await;

    let mut recommend =
        pb::recommendations_client::RecommendationsClient::new(server.channel().await);
    let request = pb::RecommendRerouteRequest {
        subject: Some(pb::recommend_reroute_request::Subject::Shipment(shipment(
            "S", "UPS", "ATL", "JFK", 3, None,
        ))),
        policy: Some(pb::CostPolicy {
            max_options: 1_000_000,
            ..Default::default()
        }),
        ..Default::default()
    };
    expect_invalid(
        recommend.recommend_reroute(request).await,
        "policy.max_options",
    )
    .await;
}

#[tokio::test]
async fn bad_times_are_invalid_argument_naming_the_field() {
    let server = TestServer::start(config(None, "unused")).await;
    let mut client = server.scoring().await;
    let wire = |seconds: i64, nanos: i32| Some(prost_types::Timestamp { seconds, nanos });

    // A required time left unset.
    let mut unset = order("O", "ATL");
    unset.created_at = None;
    let message = expect_invalid(
        client
            .score_order(pb::ScoreOrderRequest {
                order: Some(unset),
                as_of: None,
            })
            .await,
        "order.created_at",
    )
    .await;
    assert!(message.ends_with("is required"), "{message}");

    // Outside protobuf's own Timestamp range: seconds past 9999, or nanos
    // outside [0, 1e9).
    for (seconds, nanos) in [
        (253_402_300_800, 0),
        (-62_135_596_801, 0),
        (1_773_000_000, -1),
        (1_773_000_000, 1_000_000_000),
    ] {
        let mut out_of_range = shipment("S", "UPS", "ATL", "JFK", 3, None);
        out_of_range.scheduled_departure = wire(seconds, nanos);
        let message = expect_invalid(
            client
                .score_shipment(pb::ScoreShipmentRequest {
                    shipment: Some(out_of_range),
                    as_of: None,
                })
                .await,
            "shipment.scheduled_departure",
        )
        .await;
        assert!(message.contains("protobuf's Timestamp range"), "{message}");
    }

    // Well-formed, but outside the years the models know (1990 ..< 2100); the
    // window's end is excluded, its start included.
    let site = |as_of| pb::ScoreSiteRequest {
        site: "ATL".into(),
        as_of,
    };
    for outside in [
        ts("1989-12-31T23:59:59Z"),
        ts("2100-01-01T00:00:00Z"),
        wire(0, 0),
    ] {
        let message = expect_invalid(client.score_site(site(outside)).await, "as_of").await;
        assert!(message.contains("not within the years"), "{message}");
    }
    in_unit_interval(
        &client
            .score_site(site(ts("1990-01-01T00:00:00Z")))
            .await
            .unwrap()
            .into_inner(),
    );

    // The same rules inside a batch, a stream item and an ingest event, named
    // by their path.
    let mut late = shipment("S", "UPS", "ATL", "JFK", 3, None);
    late.scheduled_arrival = ts("2150-01-01T00:00:00Z");
    let batch = pb::ScoreBatchRequest {
        items: vec![
            pb::ScoreItem {
                request_id: "ok".into(),
                entity: Some(pb::score_item::Entity::Site(site(None))),
            },
            pb::ScoreItem {
                request_id: "bad".into(),
                entity: Some(pb::score_item::Entity::Shipment(pb::ScoreShipmentRequest {
                    shipment: Some(late),
                    as_of: None,
                })),
            },
        ],
    };
    expect_invalid(
        client.score_batch(batch).await,
        "items[1].shipment.shipment.scheduled_arrival",
    )
    .await;

    let mut ingest = server.ingest().await;
    let mut old = snapshot("ATL", "2026-03-01T00:00:00Z", 1.0);
    old.at = ts("1970-01-01T00:00:00Z");
    let answer = ingest
        .ingest_events(pb::IngestEventsRequest {
            events: vec![pb::Event {
                event_id: "old".into(),
                payload: Some(pb::event::Payload::Site(old)),
            }],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.rejected, 1);
    assert_eq!(answer.rejections[0].field, "events[0].site.at");
    assert!(
        answer.rejections[0].reason.contains("not within the years"),
        "{:?}",
        answer.rejections[0]
    );

    // And the server keeps serving.
    in_unit_interval(&score_shipment(&mut client, "UPS").await);
}

/// A `ScoreSiteRequest` as a confused client might encode it: field 1 (`site`,
/// a string on the wire) sent as a varint.
#[derive(Clone, PartialEq, prost::Message)]
struct WrongWireType {
    #[prost(uint64, tag = "1")]
    site: u64,
}

#[tokio::test]
async fn undecodable_protobuf_is_invalid_argument_and_the_server_keeps_serving() {
    let server = TestServer::start(config(None, "unused")).await;
    let mut raw = tonic::client::Grpc::new(server.channel().await);
    raw.ready().await.unwrap();
    let path =
        tonic::codegen::http::uri::PathAndQuery::from_static("/detour.v1.RiskScoring/ScoreSite");
    let codec = tonic_prost::ProstCodec::<WrongWireType, pb::RiskScore>::default();
    let status = raw
        .unary(tonic::Request::new(WrongWireType { site: 7 }), path, codec)
        .await
        .expect_err("a wrong wire type cannot be decoded");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("not valid protobuf"),
        "{status:?}"
    );

    // The next call on the same server is answered.
    let mut client = server.scoring().await;
    let score = client
        .score_site(pb::ScoreSiteRequest {
            site: "ATL".into(),
            as_of: None,
        })
        .await
        .unwrap()
        .into_inner();
    in_unit_interval(&score);
}

#[tokio::test]
async fn a_request_over_the_size_limit_is_resource_exhausted() {
    let server = TestServer::start(config(None, "unused")).await;
    let mut client = server.scoring().await;
    // 5,000 items of about 1 KB: over the server's 4 MiB limit on a message.
    let items = (0..5_000)
        .map(|i| pb::ScoreItem {
            request_id: format!("{i}-{}", "x".repeat(1_000)),
            entity: Some(pb::score_item::Entity::Site(pb::ScoreSiteRequest {
                site: "ATL".into(),
                as_of: None,
            })),
        })
        .collect();
    let status = client
        .score_batch(pb::ScoreBatchRequest { items })
        .await
        .expect_err("the message is over the limit");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
}
