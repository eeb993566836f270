//! Inputs: wire messages with values from the plausible to the hostile, their
//! encodings, and byte-level mutations of those encodings. Most generated
//! values are near valid (known codes, times in the accepted years) so that the
//! cases reach past the first check; the rest are what a hostile or broken
//! client sends.
//!
//! The parts: `wire` (messages, requests and their encodings), `csv` (export
//! files) and `artifacts` (manifests and weights); the value generators and the
//! byte mutations they share are here.

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

mod artifacts;
mod csv;
mod wire;

pub use artifacts::*;
pub use csv::*;
pub use wire::*;
