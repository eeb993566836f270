//! Parquet beside CSV: exports (`shipments.parquet`, …) are read row by row
//! into the same text records the CSV reader gives, so every row goes through
//! the same validation and error report; `dataset` writes its rows as Parquet
//! when asked to. Built on the `parquet` crate without Arrow (its record API
//! and typed column writers), with the codecs pandas, Polars, Spark and R
//! write (Snappy, Zstandard, LZ4, gzip).

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use parquet::basic::{Compression, LogicalType, TimeUnit};
use parquet::data_type::{ByteArray, ByteArrayType, DoubleType, Int32Type, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::file::writer::SerializedFileWriter;
use parquet::record::Field;
use parquet::record::reader::RowIter;
use parquet::schema::parser::parse_message_type;

use crate::replay::Row;
use detour::schema::{RiskKind, schema_of};

/// Rows per row group written.
const ROW_GROUP: usize = 65_536;

/// The rows of a Parquet file, one at a time, as text records under its
/// column names (see [`records`]).
pub type Rows = Box<dyn Iterator<Item = Result<csv::StringRecord, String>>>;

/// The rows of a Parquet file as text records under its column names, in
/// file order, streamed. A row the reader cannot decode ends the rows with
/// its error: the reader would return it again and again.
pub fn records(path: &Path) -> anyhow::Result<(csv::StringRecord, Rows)> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let reader = SerializedFileReader::new(file)
        .with_context(|| format!("{}: not a readable Parquet file", path.display()))?;
    let schema = reader.metadata().file_metadata().schema_descr_ptr();
    let names: Vec<String> = schema.columns().iter().map(|c| c.path().string()).collect();
    // Nanosecond timestamps (pandas' own) come out of the record API as
    // plain numbers: the column's logical type says what they are.
    let mut nanos = Vec::with_capacity(names.len());
    for (column, name) in schema.columns().iter().zip(&names) {
        if let Some(LogicalType::Timestamp(t)) = column.logical_type_ref() {
            anyhow::ensure!(
                t.is_adjusted_to_u_t_c,
                "{}: column {name} holds timestamps without a time zone; write them in UTC \
                 (pandas: .dt.tz_localize(\"UTC\")), as the CSV exports need an offset",
                path.display()
            );
        }
        nanos.push(matches!(
            column.logical_type_ref(),
            Some(LogicalType::Timestamp(t)) if t.unit == TimeUnit::NANOS
        ));
    }
    let header = csv::StringRecord::from(names.clone());
    let mut rows = RowIter::from_file_into(Box::new(reader));
    let mut failed = false;
    let shown = path.display().to_string();
    let iter = std::iter::from_fn(move || {
        if failed {
            return None;
        }
        // The crate panics on a few column types it does not implement:
        // that is the file's problem, reported as such.
        let next = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| rows.next()))
            .unwrap_or_else(|_| {
                Some(Err(parquet::errors::ParquetError::General(
                    "a column of a type this build cannot read".into(),
                )))
            })?;
        Some(match next {
            Ok(row) => {
                let mut record = vec![String::new(); names.len()];
                for (name, field) in row.get_column_iter() {
                    if let Some(at) = names.iter().position(|n| n == name) {
                        record[at] = match field {
                            Field::Long(ns) if nanos[at] => stamp(ns.div_euclid(1000)),
                            field => text(field),
                        };
                    }
                }
                Ok(csv::StringRecord::from(record))
            }
            Err(error) => {
                failed = true;
                Err(format!("{shown}: {error}"))
            }
        })
    });
    Ok((header, Box::new(iter)))
}

/// A field as the CSV export would write it: timestamps in RFC 3339, a null
/// as an empty cell.
fn text(field: &Field) -> String {
    match field {
        Field::Null => String::new(),
        Field::Str(s) => s.clone(),
        Field::TimestampMillis(ms) => stamp(ms.saturating_mul(1000)),
        Field::Date(days) => stamp(i64::from(*days).saturating_mul(86_400_000_000)),
        Field::Bytes(bytes) => String::from_utf8_lossy(bytes.data()).into_owned(),
        Field::TimestampMicros(us) => stamp(*us),
        Field::Float(v) => v.to_string(),
        Field::Double(v) => v.to_string(),
        other => other.to_string().trim_matches('"').to_string(),
    }
}

/// A UTC timestamp in microseconds as RFC 3339.
fn stamp(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        .unwrap_or_else(|| micros.to_string())
}

/// Writes `rows` of `kind` as Parquet with the columns of the CSV dataset:
/// `entity_id`, `decision_time` (a UTC timestamp, microseconds),
/// `lead_hours` (null when none), `slice`, each feature (null when unknown)
/// and `label` (0 or 1); Snappy-compressed.
pub fn write_dataset(
    path: &Path,
    kind: RiskKind,
    rows: &[Row],
    slice_of: impl Fn(usize) -> &'static str,
) -> anyhow::Result<()> {
    let schema = schema_of(kind);
    let mut message = String::from(
        "message dataset {\n  REQUIRED BYTE_ARRAY entity_id (UTF8);\n  \
         REQUIRED INT64 decision_time (TIMESTAMP(MICROS,true));\n  \
         OPTIONAL DOUBLE lead_hours;\n  REQUIRED BYTE_ARRAY slice (UTF8);\n",
    );
    for feature in schema {
        message.push_str(&format!("  OPTIONAL DOUBLE {};\n", feature.name));
    }
    message.push_str("  REQUIRED INT32 label;\n}\n");
    let file_schema = Arc::new(parse_message_type(&message)?);
    let properties = Arc::new(
        WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build(),
    );
    let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut writer = SerializedFileWriter::new(file, file_schema, properties)?;
    for (group, chunk) in rows.chunks(ROW_GROUP).enumerate() {
        let first = group * ROW_GROUP;
        let mut row_group = writer.next_row_group()?;
        let mut column = 0;
        while let Some(mut out) = row_group.next_column()? {
            match column {
                0 => {
                    let ids: Vec<ByteArray> = chunk
                        .iter()
                        .map(|r| ByteArray::from(r.entity_id.as_str()))
                        .collect();
                    out.typed::<ByteArrayType>().write_batch(&ids, None, None)?;
                }
                1 => {
                    let times: Vec<i64> = chunk.iter().map(|r| r.at.0 * 1000).collect();
                    out.typed::<Int64Type>().write_batch(&times, None, None)?;
                }
                2 => optional(&mut out, chunk.iter().map(|r| r.lead_hours))?,
                3 => {
                    let slices: Vec<ByteArray> = (0..chunk.len())
                        .map(|i| ByteArray::from(slice_of(first + i)))
                        .collect();
                    out.typed::<ByteArrayType>()
                        .write_batch(&slices, None, None)?;
                }
                c if c < 4 + schema.len() => {
                    let f = c - 4;
                    optional(
                        &mut out,
                        chunk.iter().map(|r| {
                            let v = r.features.as_slice()[f];
                            (!v.is_nan()).then_some(v)
                        }),
                    )?;
                }
                _ => {
                    let labels: Vec<i32> = chunk.iter().map(|r| i32::from(r.label)).collect();
                    out.typed::<Int32Type>().write_batch(&labels, None, None)?;
                }
            }
            out.close()?;
            column += 1;
        }
        row_group.close()?;
    }
    writer
        .close()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Writes an optional double column: present values, and a definition level
/// per row (1 present, 0 null).
fn optional(
    out: &mut parquet::file::writer::SerializedColumnWriter<'_>,
    values: impl Iterator<Item = Option<f64>>,
) -> anyhow::Result<()> {
    let mut present = Vec::new();
    let mut levels = Vec::new();
    for value in values {
        levels.push(i16::from(value.is_some()));
        present.extend(value);
    }
    out.typed::<DoubleType>()
        .write_batch(&present, Some(&levels), None)?;
    Ok(())
}
