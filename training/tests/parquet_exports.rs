//! Parquet exports are read wherever CSV ones are: the same rows, through the
//! same validation, with the same error report (a bad row named by its line,
//! counting the header as line 1, as in the CSV); timestamps as text or as
//! Parquet timestamps (here in nanoseconds, as pandas writes them).

mod common;

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use detour_training::train::read_history;
use parquet::data_type::{ByteArray, ByteArrayType, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;

/// Writes a CSV file as Parquet, every column an optional UTF-8 string
/// (an empty cell a null) except the `time_columns`, written as pandas
/// writes its datetimes: nanosecond UTC timestamps.
fn csv_to_parquet(csv_path: &Path, parquet_path: &Path, time_columns: &[&str]) {
    let mut reader = csv::Reader::from_path(csv_path).unwrap();
    let header = reader.headers().unwrap().clone();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let mut message = String::from("message export {\n");
    for name in header.iter() {
        if time_columns.contains(&name) {
            message.push_str(&format!(
                "  OPTIONAL INT64 {name} (TIMESTAMP(NANOS,true));\n"
            ));
        } else {
            message.push_str(&format!("  OPTIONAL BYTE_ARRAY {name} (UTF8);\n"));
        }
    }
    message.push('}');
    let schema = Arc::new(parse_message_type(&message).unwrap());
    let properties = Arc::new(WriterProperties::builder().build());
    let mut writer =
        SerializedFileWriter::new(File::create(parquet_path).unwrap(), schema, properties).unwrap();
    let mut group = writer.next_row_group().unwrap();
    let mut column = 0;
    while let Some(mut out) = group.next_column().unwrap() {
        let cells: Vec<&str> = rows.iter().map(|r| r.get(column).unwrap_or("")).collect();
        let levels: Vec<i16> = cells.iter().map(|c| i16::from(!c.is_empty())).collect();
        let present = cells.iter().filter(|c| !c.is_empty());
        if time_columns.contains(&&header[column]) {
            let nanos: Vec<i64> = present
                .map(|c| {
                    chrono::DateTime::parse_from_rfc3339(c)
                        .unwrap()
                        .timestamp_nanos_opt()
                        .unwrap()
                })
                .collect();
            out.typed::<Int64Type>()
                .write_batch(&nanos, Some(&levels), None)
                .unwrap();
        } else {
            let values: Vec<ByteArray> = present.map(|c| ByteArray::from(*c)).collect();
            out.typed::<ByteArrayType>()
                .write_batch(&values, Some(&levels), None)
                .unwrap();
        }
        out.close().unwrap();
        column += 1;
    }
    group.close().unwrap();
    writer.close().unwrap();
}

#[test]
fn parquet_exports_read_as_their_csv_with_the_same_report() {
    let dir = common::scratch("parquet-exports", "history");
    let data = dir.join("csv");
    common::simulate(6, "2026-03-02T00:00:00Z", 5, 300.0, &data);
    // One bad row, the same in both: an unknown status on line 4.
    let shipments = data.join("shipments.csv");
    let text = std::fs::read_to_string(&shipments).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    let status = lines[0].split(',').position(|c| c == "status").unwrap();
    let mut cells: Vec<String> = lines[3].split(',').map(String::from).collect();
    cells[status] = "teleported".into();
    lines[3] = cells.join(",");
    std::fs::write(&shipments, lines.join("\n") + "\n").unwrap();

    let parquet = dir.join("parquet");
    std::fs::create_dir_all(&parquet).unwrap();
    std::fs::copy(data.join("network.toml"), parquet.join("network.toml")).unwrap();
    let times: [(&str, &[&str]); 3] = [
        (
            "shipments",
            &[
                "scheduled_departure",
                "scheduled_arrival",
                "actual_departure",
            ],
        ),
        ("orders", &["created_at", "promise_at"]),
        ("site_metrics", &["time"]),
    ];
    for (name, time_columns) in times {
        csv_to_parquet(
            &data.join(format!("{name}.csv")),
            &parquet.join(format!("{name}.parquet")),
            time_columns,
        );
    }

    let (from_csv, csv_reports) = read_history(&data).unwrap();
    let (from_parquet, parquet_reports) = read_history(&parquet).unwrap();
    assert_eq!(csv_reports.len(), 3);
    for (c, p) in csv_reports.iter().zip(&parquet_reports) {
        assert_eq!((c.rows, c.accepted), (p.rows, p.accepted), "{}", p.file);
        let kinds = |r: &detour_training::csvio::FileReport| -> Vec<(String, usize, Vec<u64>)> {
            r.problems
                .iter()
                .map(|(k, v)| (k.clone(), v.count, v.first_lines.clone()))
                .collect()
        };
        assert_eq!(kinds(c), kinds(p), "{}", p.file);
    }
    let shipment_report = &parquet_reports[0];
    assert_eq!(shipment_report.rejected(), 1);
    assert_eq!(
        shipment_report.problems["status: unknown status \"teleported\""].first_lines,
        vec![4]
    );
    assert_eq!(
        format!("{:?}", from_csv.shipments),
        format!("{:?}", from_parquet.shipments)
    );
    assert_eq!(
        format!("{:?}", from_csv.orders),
        format!("{:?}", from_parquet.orders)
    );
    assert_eq!(
        format!("{:?}", from_csv.snapshots),
        format!("{:?}", from_parquet.snapshots)
    );

    // Both kinds of one export: refused, not guessed.
    std::fs::copy(data.join("orders.csv"), parquet.join("orders.csv")).unwrap();
    let error = read_history(&parquet).unwrap_err().to_string();
    assert!(
        error.contains("both orders.csv and orders.parquet"),
        "{error}"
    );
}
