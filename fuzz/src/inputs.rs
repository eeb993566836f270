//! Inputs: wire messages with values from the plausible to the hostile, their
//! encodings, and byte-level mutations of those encodings. Most generated
//! values are near valid (known codes, times in the accepted years) so that the
//! cases reach past the first check; the rest are what a hostile or broken
//! client sends.

use detour::pb;
use proptest::collection::vec;
use proptest::prelude::*;

/// Codes the shipped network knows, and a few it does not.
const CODES: [&str; 10] = [
    "ATL", "DFW", "JFK", "BOS", "XPO", "UPS", "SKU-1", "ZZZ", "atl", "A:B",
];

/// A string field: a known code most of the time, else anything.
pub fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        14 => proptest::sample::select(&CODES[..]).prop_map(str::to_string),
        2 => "[ -~]{0,12}",
        1 => "\\PC{0,8}",
        1 => "[\\x00-\\x1f:\\n\\t ]{0,4}",
        1 => (1usize..300, "[a-z]").prop_map(|(n, c)| c.repeat(n)),
        1 => Just(String::new()),
    ]
}

/// An id field.
pub fn id() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => "[A-Za-z0-9-]{1,12}",
        2 => text(),
    ]
}

/// A number field: plausible, at the limits, or not a number at all.
pub fn number() -> impl Strategy<Value = f64> {
    prop_oneof![
        6 => 0.0..500.0,
        1 => 0.0..=1.0,
        1 => proptest::sample::select(vec![
            0.0, -0.0, -1.0, 1e9, 1.000_000_1e9, 1e300, f64::MAX, f64::MIN_POSITIVE,
            f64::NAN, f64::INFINITY, f64::NEG_INFINITY,
        ]),
        1 => any::<f64>(),
    ]
}

/// An enum field: a defined value, or any number.
pub fn enum_value() -> impl Strategy<Value = i32> {
    prop_oneof![9 => 0..5i32, 1 => any::<i32>()]
}

/// 2026-01-01T00:00:00Z, around which plausible times fall.
const BASE_SECONDS: i64 = 1_767_225_600;

/// A time field: unset, in 2026, or anywhere a Timestamp can say.
pub fn time() -> impl Strategy<Value = Option<prost_types::Timestamp>> {
    let plausible =
        (0..365 * 86_400i64, 0..1_000_000_000i32).prop_map(|(s, nanos)| prost_types::Timestamp {
            seconds: BASE_SECONDS + s,
            nanos,
        });
    let wild = (any::<i64>(), any::<i32>())
        .prop_map(|(seconds, nanos)| prost_types::Timestamp { seconds, nanos });
    prop_oneof![
        1 => Just(None),
        7 => plausible.prop_map(Some),
        1 => wild.prop_map(Some),
    ]
}

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

/// A change to a byte string.
#[derive(Debug, Clone)]
pub enum Mutation {
    /// Replace the byte at (position mod length).
    Set(usize, u8),
    /// Keep the first (position mod length + 1) bytes.
    Truncate(usize),
    /// Insert bytes at (position mod length + 1).
    Insert(usize, Vec<u8>),
}

/// Up to eight mutations.
pub fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    let one = prop_oneof![
        4 => (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Mutation::Set(at, b)),
        1 => any::<usize>().prop_map(Mutation::Truncate),
        2 => (any::<usize>(), vec(any::<u8>(), 1..6)).prop_map(|(at, b)| Mutation::Insert(at, b)),
    ];
    vec(one, 0..8)
}

/// `bytes` with `mutations` applied in order.
pub fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for mutation in mutations {
        match mutation {
            _ if bytes.is_empty() => {}
            Mutation::Set(at, b) => {
                let at = at % bytes.len();
                bytes[at] = *b;
            }
            Mutation::Truncate(at) => bytes.truncate(at % bytes.len() + 1),
            Mutation::Insert(at, more) => {
                let at = at % bytes.len() + 1;
                bytes.splice(at..at, more.iter().copied());
            }
        }
    }
    bytes
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

/// Headers of the three export files, in the order of `Harness::csv`.
const HEADERS: [&str; 3] = [
    "shipment_id,carrier,origin,destination,scheduled_departure,scheduled_arrival,actual_departure,actual_arrival,status",
    "order_id,created_at,channel,site,destination_region,promise_at,line_count,units,priority,outcome",
    "site,time,backlog,labour,units_picked,dock_utilisation",
];

/// A CSV cell: text, a number, a time, a status word, quoted or not.
fn cell() -> impl Strategy<Value = String> {
    let word = proptest::sample::select(vec![
        "delivered",
        "cancelled",
        "in_transit",
        "express",
        "standard",
        "late",
        "shipped_on_time",
        "backordered",
        "web",
        "NaN",
        "inf",
        "-1",
        "2.5",
    ]);
    let time = (0..365 * 86_400i64)
        .prop_map(|s| detour::domain::Timestamp((BASE_SECONDS + s) * 1_000).to_rfc3339());
    let bare = prop_oneof![
        3 => text(),
        2 => number().prop_map(|n| n.to_string()),
        3 => time,
        2 => word.prop_map(str::to_string),
        1 => "[0-9T:+Z.-]{0,25}",
    ];
    (bare, any::<bool>()).prop_map(|(value, quoted)| {
        if quoted {
            format!("\"{}\"", value.replace('"', "\"\""))
        } else {
            value
        }
    })
}

/// What a column of an export file holds, for cells that are mostly valid.
#[derive(Debug, Clone, Copy)]
enum Column {
    Id,
    Code,
    Time,
    OptionalTime,
    Count,
    Quantity,
    Share,
    Word(&'static [&'static str]),
}

/// The columns of each export file, in the order of [`HEADERS`].
const COLUMNS: [&[Column]; 3] = {
    use Column::*;
    [
        &[
            Id,
            Code,
            Code,
            Code,
            Time,
            Time,
            OptionalTime,
            OptionalTime,
            Word(&["delivered", "cancelled", "in_transit", ""]),
        ],
        &[
            Id,
            Time,
            Word(&["web", "store", ""]),
            Code,
            Code,
            Time,
            Count,
            Quantity,
            Word(&["standard", "express", ""]),
            Word(&["", "late", "shipped_on_time", "cancelled", "backordered"]),
        ],
        &[Code, Time, Quantity, Quantity, Quantity, Share],
    ]
};

/// A cell of `column`: valid most of the time, anything otherwise.
fn cell_of(column: Column) -> BoxedStrategy<String> {
    let time = || {
        (0..120 * 86_400i64)
            .prop_map(|s| detour::domain::Timestamp((BASE_SECONDS + s) * 1_000).to_rfc3339())
    };
    let valid = match column {
        Column::Id => "[A-Z]-[0-9]{1,6}".boxed(),
        Column::Code => proptest::sample::select(&CODES[..6])
            .prop_map(str::to_string)
            .boxed(),
        Column::Time => time().boxed(),
        Column::OptionalTime => prop_oneof![Just(String::new()), time()].boxed(),
        Column::Count => (1..20u32).prop_map(|n| n.to_string()).boxed(),
        Column::Quantity => (0.0..500.0f64).prop_map(|n| n.to_string()).boxed(),
        Column::Share => (0.0..=1.0f64).prop_map(|n| n.to_string()).boxed(),
        Column::Word(words) => proptest::sample::select(words)
            .prop_map(str::to_string)
            .boxed(),
    };
    prop_oneof![12 => valid, 1 => cell()].boxed()
}

/// An export file (`which`: 0 shipments, 1 orders, 2 site metrics) of a few
/// rows — mostly valid cells, some not, some rows short or long — then byte
/// mutations.
pub fn csv_file() -> impl Strategy<Value = (u8, Vec<u8>)> {
    (0..3u8).prop_flat_map(|which| {
        let columns = COLUMNS[usize::from(which)];
        let cells: Vec<BoxedStrategy<String>> = columns.iter().map(|&c| cell_of(c)).collect();
        let row = (
            cells,
            prop_oneof![12 => Just(0i8), 1 => Just(-1i8), 1 => Just(1i8)],
        )
            .prop_map(|(mut cells, change): (Vec<String>, i8)| {
                match change {
                    -1 => {
                        cells.pop();
                    }
                    1 => cells.push("extra".into()),
                    _ => {}
                }
                cells.join(",")
            });
        (
            Just(which),
            prop_oneof![9 => Just(true), 1 => Just(false)],
            vec(row, 0..6),
            prop_oneof![3 => Just(Vec::new()), 1 => mutations()],
        )
            .prop_map(|(which, header, rows, mutations)| {
                let mut text = String::new();
                if header {
                    text.push_str(HEADERS[usize::from(which)]);
                    text.push('\n');
                }
                for row in rows {
                    text.push_str(&row);
                    text.push('\n');
                }
                (which, mutate(text.into_bytes(), &mutations))
            })
    })
}

/// A change to a manifest.
#[derive(Debug, Clone)]
pub enum ManifestEdit {
    /// Another learner name.
    Learner(String),
    /// Another family.
    Family(String),
    /// Drop feature (index mod count).
    DropFeature(usize),
    /// Rename feature (index mod count).
    RenameFeature(usize, String),
    /// A prior (index mod count).
    Prior(usize, Option<f64>),
    /// Band thresholds (medium, high).
    Bands(f64, f64),
    /// Calibration (slope, intercept).
    Calibration(f64, f64),
}

fn manifest_edit() -> impl Strategy<Value = ManifestEdit> {
    let learner = proptest::sample::select(vec![
        "logistic_regression",
        "gradient_boosted_trees",
        "logistic_plus_trees",
        "svm",
        "",
    ]);
    prop_oneof![
        learner.prop_map(|l| ManifestEdit::Learner(l.to_string())),
        text().prop_map(ManifestEdit::Family),
        any::<usize>().prop_map(ManifestEdit::DropFeature),
        (any::<usize>(), text()).prop_map(|(i, n)| ManifestEdit::RenameFeature(i, n)),
        (any::<usize>(), prop::option::of(number())).prop_map(|(i, p)| ManifestEdit::Prior(i, p)),
        (number(), number()).prop_map(|(m, h)| ManifestEdit::Bands(m, h)),
        (number(), number()).prop_map(|(s, i)| ManifestEdit::Calibration(s, i)),
    ]
}

/// A manifest with `edits` applied, as JSON (a non-finite number is written
/// as null, which the loader must refuse), then byte mutations.
pub fn manifest_json(
    manifest: &detour::models::Manifest,
    edits: &[ManifestEdit],
    mutations: &[Mutation],
) -> Vec<u8> {
    let mut m = manifest.clone();
    for edit in edits {
        let n = m.features.len().max(1);
        match edit {
            ManifestEdit::Learner(l) => m.learner = l.clone(),
            ManifestEdit::Family(f) => m.family = f.clone(),
            ManifestEdit::DropFeature(i) if !m.features.is_empty() => {
                m.features.remove(i % n);
            }
            ManifestEdit::RenameFeature(i, name) if !m.features.is_empty() => {
                m.features[i % n].name = name.clone()
            }
            ManifestEdit::Prior(i, p) if !m.features.is_empty() => m.features[i % n].prior = *p,
            ManifestEdit::Bands(medium, high) => {
                m.bands.medium = *medium;
                m.bands.high = *high;
            }
            ManifestEdit::Calibration(slope, intercept) => {
                m.calibration.slope = *slope;
                m.calibration.intercept = *intercept;
            }
            _ => {}
        }
    }
    let json = serde_json::to_vec(&m).expect("a manifest serialises");
    mutate(json, mutations)
}

/// Small weights of any learner for `width` features, with wild numbers and
/// node links, as the artifact stores them; and the learner's manifest name.
pub fn weights(width: usize) -> impl Strategy<Value = (String, Vec<u8>)> {
    use detour::models::artifact::{learner_name, weights_json};
    use detour::models::trees::Tree;
    use detour::models::{Learner, LinearTrees, LogisticWeights, TreeEnsemble};
    let n = prop_oneof![9 => Just(width), 1 => 0..width + 3];
    let logistic = (n, number())
        .prop_flat_map(|(n, intercept)| {
            (vec(number(), n), vec(number(), n), vec(number(), n)).prop_map(
                move |(mean, std, coefficients)| LogisticWeights {
                    mean,
                    std,
                    coefficients,
                    intercept,
                },
            )
        })
        .boxed();
    let tree = (1usize..8).prop_flat_map(move |nodes| {
        let link = prop_oneof![9 => 0..nodes as u32 + 2, 1 => any::<u32>()];
        let feature = prop_oneof![9 => 0..width as u32 + 1, 1 => any::<u32>()];
        (
            vec(feature, nodes),
            vec(number(), nodes),
            vec(link.clone(), nodes),
            vec(link.clone(), nodes),
            vec(link, nodes),
            vec(number(), nodes),
        )
            .prop_map(|(feature, threshold, left, right, missing, value)| Tree {
                feature,
                threshold,
                left,
                right,
                missing,
                value,
            })
    });
    let ensemble = (number(), vec(tree, 0..3))
        .prop_map(|(b, t)| TreeEnsemble::new(b, t))
        .boxed();
    let learner = prop_oneof![
        logistic.clone().prop_map(Learner::Logistic),
        ensemble.clone().prop_map(Learner::Boosted),
        (logistic, ensemble)
            .prop_map(|(linear, trees)| Learner::LinearTrees(LinearTrees { linear, trees })),
    ];
    let some_mutations = prop_oneof![4 => Just(Vec::<Mutation>::new()), 1 => mutations()];
    (learner, some_mutations).prop_map(|(learner, mutations): (Learner, Vec<Mutation>)| {
        (
            learner_name(&learner).to_string(),
            mutate(weights_json(&learner), &mutations),
        )
    })
}

/// An artifact case: the family, the manifest's edits and mutations, the
/// weights, and rows to score if it loads.
#[derive(Debug, Clone)]
pub struct ArtifactCase {
    /// Index of the family in `RiskKind::ALL`.
    pub kind: u8,
    /// The learner name the weights were written as.
    pub learner: String,
    /// Edits to the shipped manifest.
    pub edits: Vec<ManifestEdit>,
    /// Byte mutations of the manifest's JSON.
    pub mutations: Vec<Mutation>,
    /// The weights file.
    pub weights: Vec<u8>,
    /// Feature rows to score (padded or cut to the schema).
    pub rows: Vec<Vec<f64>>,
}

/// Artifact cases for every family.
pub fn artifact() -> impl Strategy<Value = ArtifactCase> {
    use detour::schema::{RiskKind, schema_of};
    (0..RiskKind::ALL.len() as u8).prop_flat_map(|kind| {
        let width = schema_of(RiskKind::ALL[usize::from(kind)]).len();
        (
            Just(kind),
            weights(width),
            prop_oneof![3 => Just(Vec::new()), 2 => vec(manifest_edit(), 1..3)],
            prop_oneof![5 => Just(Vec::new()), 1 => mutations()],
            vec(vec(number(), 0..width + 1), 1..4),
        )
            .prop_map(
                |(kind, (learner, weights), edits, mutations, rows)| ArtifactCase {
                    kind,
                    learner,
                    edits,
                    mutations,
                    weights,
                    rows,
                },
            )
    })
}
