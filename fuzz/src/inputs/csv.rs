//! The trainer's export files: mostly valid cells, some rows short or long,
//! then byte mutations.

use proptest::collection::vec;
use proptest::prelude::*;

use super::*;

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
