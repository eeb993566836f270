//! `detour-train dataset`: the point-in-time feature matrix `train` fits on,
//! for one family, written out for a data scientist's own tools. The rows
//! are `train`'s own — the same replay through the service's feature code
//! (and, unless `--without-alerts`, its anomaly monitor), the same decision
//! times, the same labels — each with the slice `train` would put it in.

use std::path::{Path, PathBuf};

use anyhow::Context;
use detour::domain::Timestamp;
use detour::schema::{RiskKind, schema_of};

use crate::fit::split_bounds;
use crate::replay::{ReplaySettings, Row, replay};
use crate::train::read_history;

/// What `dataset` needs.
#[derive(Debug, Clone)]
pub struct DatasetSettings {
    /// A folder of exports, as `train` reads.
    pub data: PathBuf,
    /// The family whose decisions are written.
    pub family: RiskKind,
    /// Only what was known by this time (as `train --until`).
    pub until: Option<Timestamp>,
    pub sla_grace_minutes: f64,
    pub horizon_hours: f64,
    /// Hours before departure a leg counts as announced.
    pub announced_hours: f64,
    /// Replay through the anomaly monitor, so decisions see open alerts.
    pub alerts: bool,
    /// Where to write: a `.csv` or `.parquet` file.
    pub out: PathBuf,
}

/// What was written.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetSummary {
    pub rows: usize,
    pub positives: usize,
}

/// The family named `name` ("carrier_failure"), or an error listing them.
pub fn family(name: &str) -> anyhow::Result<RiskKind> {
    RiskKind::ALL
        .into_iter()
        .find(|k| k.name() == name)
        .with_context(|| {
            let names: Vec<&str> = RiskKind::ALL.iter().map(|k| k.name()).collect();
            format!("no family {name:?}; one of {}", names.join(", "))
        })
}

/// Replays the export and writes the family's decisions.
pub fn run(settings: &DatasetSettings) -> anyhow::Result<DatasetSummary> {
    let extension = settings.out.extension().and_then(|e| e.to_str());
    anyhow::ensure!(
        matches!(extension, Some("csv" | "parquet")),
        "--out {}: name the file *.csv or *.parquet",
        settings.out.display()
    );
    let (history, _) = read_history(&settings.data)?;
    let datasets = replay(
        &history,
        &ReplaySettings::training(
            settings.sla_grace_minutes,
            settings.horizon_hours,
            settings.until,
            None,
            settings.announced_hours,
            settings.alerts,
        ),
    );
    let rows = datasets
        .rows
        .get(&settings.family)
        .map_or(&[][..], Vec::as_slice);
    if extension == Some("parquet") {
        let (train_end, validation_end) = split_bounds(rows.len());
        crate::parquet_io::write_dataset(&settings.out, settings.family, rows, |i| {
            slice_name(i, train_end, validation_end)
        })?;
    } else {
        write(&settings.out, settings.family, rows)?;
    }
    Ok(DatasetSummary {
        rows: rows.len(),
        positives: rows.iter().filter(|r| r.label).count(),
    })
}

/// The slice `train` puts row `i` (in time order) in.
fn slice_name(i: usize, train_end: usize, validation_end: usize) -> &'static str {
    if i < train_end {
        "train"
    } else if i < validation_end {
        "validation"
    } else {
        "test"
    }
}

/// Writes `rows` (in time order) as CSV: `entity_id`, `decision_time`
/// (RFC 3339), `lead_hours` (shipments; else empty), `slice` (`train`,
/// `validation` or `test`, as `train` cuts them), every feature of the
/// family's schema by name (empty where unknown: NaN), then `label` (1: the
/// risk happened). Numbers are written in their shortest exact form, so
/// they read back to the same value.
fn write(path: &Path, kind: RiskKind, rows: &[Row]) -> anyhow::Result<()> {
    let mut out =
        csv::Writer::from_path(path).with_context(|| format!("creating {}", path.display()))?;
    let schema = schema_of(kind);
    let mut header = vec!["entity_id", "decision_time", "lead_hours", "slice"];
    header.extend(schema.iter().map(|f| f.name));
    header.push("label");
    out.write_record(&header)?;
    let (train_end, validation_end) = split_bounds(rows.len());
    let number = |v: f64| {
        if v.is_nan() {
            String::new()
        } else {
            v.to_string()
        }
    };
    let mut record: Vec<String> = Vec::with_capacity(header.len());
    for (i, row) in rows.iter().enumerate() {
        let slice = slice_name(i, train_end, validation_end);
        record.clear();
        record.extend([
            row.entity_id.clone(),
            row.at.to_rfc3339(),
            row.lead_hours.map_or(String::new(), number),
            slice.to_string(),
        ]);
        record.extend(row.features.as_slice().iter().map(|v| number(*v)));
        record.push(if row.label { "1" } else { "0" }.to_string());
        out.write_record(&record)?;
    }
    out.flush()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
