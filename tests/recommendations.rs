//! Recommendations over the wire: constraints hold, the baseline is listed,
//! answers are deterministic, ids resolve through ingest (both backends), and
//! impossible requests get a clear answer rather than an internal error.

mod common;

use common::*;
use detour::pb;
use tonic::Code;

fn reroute_request(carrier: &str, destination: &str) -> pb::RecommendRerouteRequest {
    pb::RecommendRerouteRequest {
        subject: Some(pb::recommend_reroute_request::Subject::Shipment(shipment(
            "S-R",
            carrier,
            "ATL",
            destination,
            22,
            None,
        ))),
        as_of: ts("2026-03-21T08:00:00Z"),
        ..Default::default()
    }
}

fn inventory_event(id: &str, site: &str, sku: &str, on_hand: f64) -> pb::Event {
    pb::Event {
        event_id: id.into(),
        payload: Some(pb::event::Payload::Inventory(pb::InventoryPosition {
            site: site.into(),
            sku: sku.into(),
            on_hand,
            at: ts("2026-03-20T08:00:00Z"),
        })),
    }
}

fn line(sku: &str, quantity: f64) -> pb::OrderLine {
    pb::OrderLine {
        sku: sku.into(),
        quantity,
    }
}

fn reallocation_request(lines: Vec<pb::OrderLine>) -> pb::RecommendReallocationRequest {
    pb::RecommendReallocationRequest {
        subject: Some(pb::recommend_reallocation_request::Subject::Order(order(
            "O-R", "ATL",
        ))),
        lines,
        ..Default::default()
    }
}

async fn reroutes_respect_the_lane_and_exclusions(server: &TestServer) {
    let mut client = pb::recommendations_client::RecommendationsClient::new(server.channel().await);
    let mut request = reroute_request("XPO", "JFK");
    request.exclude_carriers = vec!["DHL".into()];
    let answer = client
        .recommend_reroute(request.clone())
        .await
        .unwrap()
        .into_inner();
    let serving = ["UPS", "XPO", "SAIA", "DHL", "RLC"];
    assert_eq!(answer.options.iter().filter(|o| o.baseline).count(), 1);
    assert_eq!(
        answer.options.iter().find(|o| o.baseline).unwrap().option,
        "XPO"
    );
    for option in &answer.options {
        assert!(
            serving.contains(&option.option.as_str()),
            "{} does not serve ATL→JFK",
            option.option
        );
        assert_ne!(option.option, "DHL", "an excluded carrier never appears");
        assert!((0.0..=1.0).contains(&option.risk));
        assert!(!option.reasons.is_empty());
        let criteria = option.criteria.as_ref().unwrap();
        assert!((criteria.expected_cost - (option.cost + option.risk * 250.0)).abs() < 1e-6);
    }
    assert!(answer.rejected.iter().any(|r| r.option == "DHL"));
    assert_eq!(answer.options.len(), 4);
    let ranks: Vec<u32> = answer.options.iter().map(|o| o.rank).collect();
    assert_eq!(ranks, [1, 2, 3, 4]);
    let again = client
        .recommend_reroute(request)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer, again, "ranking is deterministic");
}

async fn ids_resolve_through_ingest(server: &TestServer) {
    let mut ingest = server.ingest().await;
    let mut events = lane_history("rec", "XPO", 15);
    events.extend(lane_history("rec", "UPS", 0));
    events.push(shipment_event(
        "rec-open",
        shipment("S-OPEN", "XPO", "ATL", "JFK", 22, None),
    ));
    events.push(pb::Event {
        event_id: "rec-order".into(),
        payload: Some(pb::event::Payload::Order(order("O-OPEN", "ATL"))),
    });
    ingest
        .ingest_events(pb::IngestEventsRequest { events })
        .await
        .unwrap();
    let mut client = pb::recommendations_client::RecommendationsClient::new(server.channel().await);
    let by_id = client
        .recommend_reroute(pb::RecommendRerouteRequest {
            subject: Some(pb::recommend_reroute_request::Subject::ShipmentId(
                "S-OPEN".into(),
            )),
            as_of: ts("2026-03-21T08:00:00Z"),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_id.entity_id, "S-OPEN");
    let baseline = by_id.options.iter().find(|o| o.baseline).unwrap();
    assert_eq!(baseline.option, "XPO");
    // Twenty shipments over eighteen days, fifteen late; the window is a week.
    let history = baseline
        .reasons
        .iter()
        .find(|r| r.starts_with("XPO failed "))
        .unwrap_or_else(|| panic!("reasons come from the data: {:?}", baseline.reasons));
    let numbers: Vec<f64> = history
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    assert!(
        numbers[0] >= 0.5 * numbers[1] && numbers[1] >= 3.0,
        "{history}"
    );
    let clean = by_id.options.iter().find(|o| o.option == "UPS").unwrap();
    assert!(
        baseline.risk > clean.risk,
        "{} vs {}",
        baseline.risk,
        clean.risk
    );
    assert!(clean.risk_removed > 0.0 && clean.rank < baseline.rank);

    let order = client
        .recommend_reallocation(pb::RecommendReallocationRequest {
            subject: Some(pb::recommend_reallocation_request::Subject::OrderId(
                "O-OPEN".into(),
            )),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(order.entity_id, "O-OPEN");

    for missing in [
        client
            .recommend_reroute(pb::RecommendRerouteRequest {
                subject: Some(pb::recommend_reroute_request::Subject::ShipmentId(
                    "nope".into(),
                )),
                ..Default::default()
            })
            .await
            .unwrap_err(),
        client
            .recommend_reallocation(pb::RecommendReallocationRequest {
                subject: Some(pb::recommend_reallocation_request::Subject::OrderId(
                    "nope".into(),
                )),
                ..Default::default()
            })
            .await
            .unwrap_err(),
    ] {
        assert_eq!(missing.code(), Code::NotFound, "{missing:?}");
        assert!(missing.message().contains("nope"));
    }
}

#[tokio::test]
async fn reroutes_and_lookups_memory_backend() {
    let server = TestServer::start(config(None, "unused")).await;
    reroutes_respect_the_lane_and_exclusions(&server).await;
    ids_resolve_through_ingest(&server).await;
}

#[tokio::test]
async fn reroutes_and_lookups_redis_backend() {
    let (url, _redis) = shared_redis();
    let server = TestServer::start(config(Some(url), &unique_namespace("recommend"))).await;
    reroutes_respect_the_lane_and_exclusions(&server).await;
    ids_resolve_through_ingest(&server).await;
}

#[tokio::test]
async fn a_lane_no_carrier_serves_gets_a_clear_answer() {
    let server = TestServer::start(config(None, "unused")).await;
    let mut client = pb::recommendations_client::RecommendationsClient::new(server.channel().await);
    let answer = client
        .recommend_reroute(reroute_request("XPO", "NOWHERE"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.options.len(), 1);
    assert!(answer.options[0].baseline);
    assert!(
        answer
            .notes
            .iter()
            .any(|n| n.contains("no other carrier serves ATL→NOWHERE")),
        "{:?}",
        answer.notes
    );
}

#[tokio::test]
async fn reallocations_hold_the_stock_and_split_when_they_must() {
    let server = TestServer::start(config(None, "unused")).await;
    let mut ingest = server.ingest().await;
    let events = vec![
        inventory_event("i1", "DFW", "SKU-A", 10.0),
        inventory_event("i2", "DFW", "SKU-B", 10.0),
        inventory_event("i3", "ORD", "SKU-A", 1.0),
        inventory_event("i4", "ORD", "SKU-B", 10.0),
        inventory_event("i5", "EWR", "SKU-C", 5.0),
        inventory_event("i6", "MEM", "SKU-A", 10.0),
        inventory_event("i7", "MEM", "SKU-B", 10.0),
    ];
    ingest
        .ingest_events(pb::IngestEventsRequest { events })
        .await
        .unwrap();
    let mut client = pb::recommendations_client::RecommendationsClient::new(server.channel().await);

    // DFW and MEM hold both lines; ORD lacks SKU-A; MEM is excluded.
    let mut request = reallocation_request(vec![line("SKU-A", 2.0), line("SKU-B", 3.0)]);
    request.exclude_sites = vec!["MEM".into()];
    let answer = client
        .recommend_reallocation(request)
        .await
        .unwrap()
        .into_inner();
    let offered: Vec<&str> = answer.options.iter().map(|o| o.option.as_str()).collect();
    assert!(
        offered.contains(&"DFW") && offered.contains(&"ATL"),
        "{offered:?}"
    );
    assert!(
        !offered.contains(&"MEM") && !offered.contains(&"ORD"),
        "{offered:?}"
    );
    assert_eq!(
        answer.options.iter().find(|o| o.baseline).unwrap().option,
        "ATL"
    );
    let reason = |site: &str| {
        answer
            .rejected
            .iter()
            .find(|r| r.option == site)
            .map(|r| r.reason.clone())
    };
    assert_eq!(reason("MEM").as_deref(), Some("excluded by the request"));
    assert!(reason("ORD").unwrap().contains("holds 1 of the 2 lines"));

    // Nobody holds SKU-A and SKU-C together: DFW or MEM ship A, EWR ships C.
    let split = client
        .recommend_reallocation(reallocation_request(vec![
            line("SKU-A", 2.0),
            line("SKU-C", 1.0),
        ]))
        .await
        .unwrap()
        .into_inner();
    let splits: Vec<&pb::RecommendedOption> = split
        .options
        .iter()
        .filter(|o| !o.split.is_empty())
        .collect();
    assert!(!splits.is_empty(), "{:?}", split.options);
    for option in splits {
        let parts: Vec<(&str, Vec<&str>)> = option
            .split
            .iter()
            .map(|p| (p.site.as_str(), p.skus.iter().map(String::as_str).collect()))
            .collect();
        assert!(
            parts
                .iter()
                .any(|(site, skus)| *site == "EWR" && skus == &["SKU-C"]),
            "{parts:?}"
        );
        assert!(option.cost > 0.0);
    }

    // SKU-Z is nowhere: a clear answer, the baseline alone.
    let none = client
        .recommend_reallocation(reallocation_request(vec![line("SKU-Z", 1.0)]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(none.options.len(), 1);
    assert!(none.options[0].baseline);
    assert!(
        none.notes
            .iter()
            .any(|n| n.contains("no site, alone or split across two")),
        "{:?}",
        none.notes
    );
}

#[tokio::test]
async fn bad_recommendation_requests_name_the_field() {
    let server = TestServer::start(config(None, "unused")).await;
    let mut client = pb::recommendations_client::RecommendationsClient::new(server.channel().await);
    let empty = client
        .recommend_reroute(pb::RecommendRerouteRequest::default())
        .await
        .unwrap_err();
    assert_eq!(empty.code(), Code::InvalidArgument);
    assert!(
        empty.message().starts_with("shipment"),
        "{}",
        empty.message()
    );
    let empty = client
        .recommend_reallocation(pb::RecommendReallocationRequest::default())
        .await
        .unwrap_err();
    assert_eq!(empty.code(), Code::InvalidArgument);
    let mut negative = reallocation_request(vec![line("SKU-A", -1.0)]);
    negative.exclude_sites = vec![];
    let error = client.recommend_reallocation(negative).await.unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    assert!(
        error.message().starts_with("lines[0].quantity"),
        "{}",
        error.message()
    );
    let mut ancient = reroute_request("XPO", "JFK");
    ancient.as_of = ts("1980-01-01T00:00:00Z");
    let error = client.recommend_reroute(ancient).await.unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    assert!(
        error.message().starts_with("as_of: ") && error.message().contains("not within the years"),
        "{}",
        error.message()
    );
}

#[tokio::test]
async fn a_later_promise_comes_back_as_a_timestamp() {
    let server = TestServer::start(config(None, "unused")).await;
    let mut client = pb::recommendations_client::RecommendationsClient::new(server.channel().await);
    let mut request = reroute_request("XPO", "JFK");
    // No carrier is this safe, so a later promise is offered.
    request.policy = Some(pb::CostPolicy {
        safe_risk: 1e-9,
        ..Default::default()
    });
    let answer = client
        .recommend_reroute(request)
        .await
        .unwrap()
        .into_inner();
    let Some(adjustment) = answer.promise_adjustment.clone() else {
        panic!("no promise adjustment: {answer:?}");
    };
    let promise = adjustment.new_promise.expect("the new promise is set");
    // The shipment leaves 2026-03-22T08:00Z; the promise is the safest carrier's
    // arrival plus a buffer of whole hours: later, and within days.
    let departure = ts("2026-03-22T08:00:00Z").unwrap();
    assert!(
        promise.seconds > departure.seconds && promise.seconds < departure.seconds + 7 * 86_400,
        "{promise:?}"
    );
    assert_eq!(promise.nanos, 0, "{promise:?}");
    assert!(adjustment.needs_approval);
}
