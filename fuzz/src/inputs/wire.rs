//! Wire messages with hostile values, requests of every RPC, their encodings.

use detour::pb;
use proptest::collection::vec;
use proptest::prelude::*;

use super::*;

/// A shipment leg.
pub fn shipment() -> impl Strategy<Value = pb::Shipment> {
    (
        (id(), text(), text(), text()),
        (time(), time(), time(), time()),
        enum_value(),
    )
        .prop_map(
            |((shipment_id, carrier, origin, destination), (sd, sa, ad, aa), status)| {
                pb::Shipment {
                    estimated_arrival: Default::default(),
                    exception: Default::default(),
                    reported_at: Default::default(),
                    shipment_id,
                    carrier,
                    origin,
                    destination,
                    scheduled_departure: sd,
                    scheduled_arrival: sa,
                    actual_departure: ad,
                    actual_arrival: aa,
                    status,
                }
            },
        )
}

/// An order.
pub fn order() -> impl Strategy<Value = pb::Order> {
    (
        (id(), time(), text(), text(), text(), time()),
        (
            prop_oneof![9 => 0..20u32, 1 => any::<u32>()],
            number(),
            enum_value(),
            enum_value(),
        ),
    )
        .prop_map(
            |(
                (order_id, created_at, channel, site, destination_region, promise_at),
                (line_count, units, priority, outcome),
            )| pb::Order {
                shipped_at: Default::default(),
                allocated_at: Default::default(),
                picked_at: Default::default(),
                released_at: Default::default(),
                order_id,
                created_at,
                channel,
                site,
                destination_region,
                promise_at,
                line_count,
                units,
                priority,
                outcome,
            },
        )
}

/// A site snapshot.
pub fn snapshot() -> impl Strategy<Value = pb::SiteSnapshot> {
    (
        text(),
        time(),
        (number(), number(), number(), number(), number()),
    )
        .prop_map(
            |(site, at, (backlog, labour, units_picked, period_minutes, dock_utilisation))| {
                pb::SiteSnapshot {
                    site,
                    at,
                    backlog,
                    labour,
                    units_picked,
                    period_minutes,
                    dock_utilisation,
                }
            },
        )
}

/// A stock position.
pub fn inventory() -> impl Strategy<Value = pb::InventoryPosition> {
    (text(), text(), number(), time()).prop_map(|(site, sku, on_hand, at)| pb::InventoryPosition {
        site,
        sku,
        on_hand,
        at,
    })
}

/// An event of any kind (or none).
pub fn event() -> impl Strategy<Value = pb::Event> {
    use pb::event::Payload;
    let payload = prop_oneof![
        1 => Just(None),
        4 => shipment().prop_map(|s| Some(Payload::Shipment(s))),
        4 => order().prop_map(|o| Some(Payload::Order(o))),
        3 => snapshot().prop_map(|s| Some(Payload::Site(s))),
        2 => inventory().prop_map(|i| Some(Payload::Inventory(i))),
    ];
    (id(), payload).prop_map(|(event_id, payload)| pb::Event { event_id, payload })
}

/// Events for one ingest call.
pub fn events() -> impl Strategy<Value = Vec<pb::Event>> {
    vec(event(), 0..24)
}

/// An item of a scoring batch or stream.
pub fn score_item() -> impl Strategy<Value = pb::ScoreItem> {
    use pb::score_item::Entity;
    let entity = prop_oneof![
        1 => Just(None),
        3 => (order(), time()).prop_map(|(o, as_of)| Some(Entity::Order(
            pb::ScoreOrderRequest { order: Some(o), as_of }
        ))),
        3 => (shipment(), time()).prop_map(|(s, as_of)| Some(Entity::Shipment(
            pb::ScoreShipmentRequest { shipment: Some(s), as_of }
        ))),
        3 => (text(), time()).prop_map(|(site, as_of)| Some(Entity::Site(
            pb::ScoreSiteRequest { site, as_of }
        ))),
    ];
    (prop_oneof![9 => "[a-z0-9]{0,6}", 1 => text()], entity)
        .prop_map(|(request_id, entity)| pb::ScoreItem { request_id, entity })
}

/// A request's cost policy (or none).
pub fn policy() -> impl Strategy<Value = Option<pb::CostPolicy>> {
    let policy = (
        number(),
        number(),
        number(),
        prop_oneof![9 => 0..20u32, 1 => any::<u32>()],
    )
        .prop_map(
            |(failure_cost, approval_cost_delta, safe_risk, max_options)| pb::CostPolicy {
                failure_cost,
                approval_cost_delta,
                safe_risk,
                max_options,
            },
        );
    prop_oneof![Just(None), policy.prop_map(Some)]
}

/// One request of any RPC that takes a single message.
#[derive(Debug, Clone)]
pub enum Request {
    /// `ScoreOrder`.
    Order(pb::ScoreOrderRequest),
    /// `ScoreShipment`.
    Shipment(pb::ScoreShipmentRequest),
    /// `ScoreSite`.
    Site(pb::ScoreSiteRequest),
    /// `ScoreBatch`.
    Batch(pb::ScoreBatchRequest),
    /// `IngestEvents`.
    Ingest(pb::IngestEventsRequest),
    /// `RecommendReroute`.
    Reroute(pb::RecommendRerouteRequest),
    /// `RecommendReallocation`.
    Reallocation(pb::RecommendReallocationRequest),
}

/// Structured requests of every RPC.
pub fn request() -> impl Strategy<Value = Request> {
    use pb::recommend_reallocation_request::Subject as Realloc;
    use pb::recommend_reroute_request::Subject as Reroute;
    let reroute_subject = prop_oneof![
        1 => Just(None),
        4 => shipment().prop_map(|s| Some(Reroute::Shipment(s))),
        1 => id().prop_map(|i| Some(Reroute::ShipmentId(i))),
    ];
    let realloc_subject = prop_oneof![
        1 => Just(None),
        4 => order().prop_map(|o| Some(Realloc::Order(o))),
        1 => id().prop_map(|i| Some(Realloc::OrderId(i))),
    ];
    let line = (text(), number()).prop_map(|(sku, quantity)| pb::OrderLine { sku, quantity });
    prop_oneof![
        (prop::option::of(order()), time())
            .prop_map(|(order, as_of)| Request::Order(pb::ScoreOrderRequest { order, as_of })),
        (prop::option::of(shipment()), time()).prop_map(|(shipment, as_of)| Request::Shipment(
            pb::ScoreShipmentRequest { shipment, as_of }
        )),
        (text(), time())
            .prop_map(|(site, as_of)| Request::Site(pb::ScoreSiteRequest { site, as_of })),
        vec(score_item(), 0..12).prop_map(|items| Request::Batch(pb::ScoreBatchRequest { items })),
        events().prop_map(|events| Request::Ingest(pb::IngestEventsRequest { events })),
        (reroute_subject, vec(text(), 0..4), time(), policy()).prop_map(
            |(subject, exclude_carriers, as_of, policy)| Request::Reroute(
                pb::RecommendRerouteRequest {
                    subject,
                    exclude_carriers,
                    as_of,
                    policy,
                }
            )
        ),
        (
            realloc_subject,
            vec(line, 0..5),
            vec(inventory(), 0..5),
            vec(text(), 0..3),
            time(),
            policy()
        )
            .prop_map(
                |(subject, lines, inventory, exclude_sites, as_of, policy)| {
                    Request::Reallocation(pb::RecommendReallocationRequest {
                        subject,
                        lines,
                        inventory,
                        exclude_sites,
                        as_of,
                        policy,
                    })
                }
            ),
    ]
}

/// Bytes for a decoder: noise, or a structured message's encoding, mutated.
pub fn wire_bytes() -> impl Strategy<Value = (u8, Vec<u8>)> {
    prop_oneof![
        1 => (0..7u8, vec(any::<u8>(), 0..256)),
        4 => (request(), mutations()).prop_map(|(request, mutations)| {
            let (which, bytes) = encode(&request);
            (which, mutate(bytes, &mutations))
        }),
    ]
}

/// A request's RPC number (0..7) and encoding.
pub fn encode(request: &Request) -> (u8, Vec<u8>) {
    use prost::Message;
    match request {
        Request::Order(m) => (0, m.encode_to_vec()),
        Request::Shipment(m) => (1, m.encode_to_vec()),
        Request::Site(m) => (2, m.encode_to_vec()),
        Request::Batch(m) => (3, m.encode_to_vec()),
        Request::Ingest(m) => (4, m.encode_to_vec()),
        Request::Reroute(m) => (5, m.encode_to_vec()),
        Request::Reallocation(m) => (6, m.encode_to_vec()),
    }
}
