//! `detour-train detect`: the service's streaming detectors over any time
//! series, offline, so that a data scientist can backtest them on their own
//! history and choose a threshold.
//!
//! Input: CSV with columns `series_id`, `timestamp` (RFC 3339, or
//! `YYYY-MM-DD HH:MM:SS` taken as UTC) and `value`, one or many series, each
//! in time order (the series may be interleaved); other columns are carried
//! through. Output: the same rows, plus `anomaly_score` (1 − the value's tail
//! probability under the series' own past, in [0, 1]; 0 while the series
//! warms up) and `alert` (1 when the score reaches the threshold).

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{Context, bail};
use detour::anomaly::{DetectorSettings, Direction, SeriesDetector};

/// What `detect` reads, writes and how it scores.
#[derive(Debug, Clone)]
pub struct DetectSettings {
    /// The input CSV.
    pub series: PathBuf,
    /// The output CSV.
    pub out: PathBuf,
    /// A score at or above it is an alert.
    pub threshold: f64,
    /// Which departures count.
    pub direction: Direction,
    /// Points each series sees before any is scored.
    pub min_history: u64,
}

/// What a run saw.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DetectReport {
    /// Rows read and written.
    pub rows: u64,
    /// Distinct series.
    pub series: usize,
    /// Rows scored (past their series' warm-up).
    pub scored: u64,
    /// Rows at or above the threshold.
    pub alerts: u64,
    /// Rows earlier than their series' latest row before them.
    pub out_of_order: u64,
    /// The line of the first of those.
    pub first_out_of_order: Option<usize>,
}

/// A time as the input may write it, in Unix seconds.
fn parse_time(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Some(t.timestamp());
    }
    chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S")
        .ok()
        .map(|t| t.and_utc().timestamp())
}

/// Runs the detectors over `settings.series` into `settings.out`.
pub fn run(settings: &DetectSettings) -> anyhow::Result<DetectReport> {
    anyhow::ensure!(
        (0.0..=1.0).contains(&settings.threshold),
        "--threshold must be within [0, 1]"
    );
    let mut reader = csv::ReaderBuilder::new()
        .flexible(false)
        .from_path(&settings.series)
        .with_context(|| format!("reading {}", settings.series.display()))?;
    let headers = reader.headers()?.clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h.trim() == name)
            .with_context(|| {
                format!(
                    "{} has no `{name}` column (it needs series_id, timestamp, value)",
                    settings.series.display()
                )
            })
    };
    let (id_at, time_at, value_at) = (column("series_id")?, column("timestamp")?, column("value")?);
    let mut writer = csv::Writer::from_path(&settings.out)
        .with_context(|| format!("writing {}", settings.out.display()))?;
    let mut out_headers = headers.clone();
    out_headers.push_field("anomaly_score");
    out_headers.push_field("alert");
    writer.write_record(&out_headers)?;

    let detector_settings = DetectorSettings {
        direction: settings.direction,
        min_history: settings.min_history,
    };
    let mut detectors: HashMap<String, (SeriesDetector, i64)> = HashMap::new();
    let mut report = DetectReport::default();
    for (i, record) in reader.records().enumerate() {
        // Line 1 is the header.
        let line = i + 2;
        let record = record.with_context(|| format!("line {line}"))?;
        let id = record[id_at].to_string();
        let Some(at) = parse_time(&record[time_at]) else {
            bail!(
                "line {line}: timestamp {:?} is neither RFC 3339 nor YYYY-MM-DD HH:MM:SS",
                &record[time_at]
            );
        };
        let value: f64 = match record[value_at].trim().parse() {
            Ok(v) if f64::is_finite(v) => v,
            _ => bail!(
                "line {line}: value {:?} is not a finite number",
                &record[value_at]
            ),
        };
        let (detector, last) = detectors
            .entry(id)
            .or_insert_with(|| (SeriesDetector::new(), i64::MIN));
        // Real exports step back now and then (a clock change, a resent
        // stretch): such a point is scored against the past as it stands
        // and learned as if at the latest time, and counted.
        if at < *last {
            report.out_of_order += 1;
            if report.first_out_of_order.is_none() {
                report.first_out_of_order = Some(line);
            }
        }
        *last = (*last).max(at);
        let scored = detector.observe(at, value, &detector_settings);
        let alert = !scored.warming_up && scored.score >= settings.threshold;
        report.rows += 1;
        report.scored += u64::from(!scored.warming_up);
        report.alerts += u64::from(alert);
        let mut row = record.clone();
        row.push_field(&format!("{:.6}", scored.score));
        row.push_field(if alert { "1" } else { "0" });
        writer.write_record(&row)?;
    }
    writer.flush()?;
    report.series = detectors.len();
    Ok(report)
}
