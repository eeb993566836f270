//! `detour-train evaluate-anomalies`: replays a simulated history through
//! the service's own ingest path and anomaly monitor (in process, in event
//! time) and scores the alerts against the disruptions the simulator wrote
//! down (`truth_anomalies.csv`), beside a rolling z-score baseline on the
//! same series.
//!
//! Per kind of disruption: windows, detected (an alert of the kind that
//! names it, about its entities, begun between an hour before its start and
//! its end plus a slack), recall, median and p90 delay from its start.
//! Per kind of alert: alerts, precision (explained by any labelled window),
//! false alerts per series per week.

pub mod baseline;
pub mod observable;
pub mod truth;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use anyhow::Context;
use detour::anomaly::{Alert, AnomalyKind, Change};
use detour::domain::Timestamp;

use crate::replay::History;
use crate::service_replay;
use crate::train::read_history;

const HOUR: i64 = 3_600;

/// What to evaluate.
#[derive(Debug, Clone)]
pub struct AnomalyEvalSettings {
    /// A simulation's folder (with `truth_anomalies.csv`).
    pub data: PathBuf,
    /// Days at the start that only teach the detectors.
    pub warmup_days: f64,
    /// Where to write every alert change (CSV), if anywhere.
    pub alerts_out: Option<PathBuf>,
}

/// One detector's figures for one kind of disruption.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Recall {
    pub windows: usize,
    pub detected: usize,
    /// Detected within two hours of the start.
    pub within_2h: usize,
    /// Minutes from the start to the first alert, of the detected ones.
    pub delays_min: Vec<f64>,
    /// Windows whose effect shows in the data at all ([`observable::Evidence::shows`]).
    pub observable: usize,
    /// Of those, detected.
    pub observable_detected: usize,
    /// Windows whose effect shows in what is known two hours after they
    /// begin ([`observable::Evidence::shows_by`]): the most any detector
    /// could find within two hours.
    pub observable_2h: usize,
}

/// One detector's figures for one kind of alert.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Precision {
    pub alerts: usize,
    pub explained: usize,
    pub series: usize,
}

/// Both detectors' figures.
#[derive(Debug, Default)]
pub struct AnomalyEvalReport {
    pub weeks: f64,
    pub events: usize,
    /// (detector, disruption kind) → recall.
    pub recall: BTreeMap<(String, String), Recall>,
    /// (detector, alert kind) → precision.
    pub precision: BTreeMap<(String, String), Precision>,
}

/// Runs the evaluation.
pub fn run(settings: &AnomalyEvalSettings) -> anyhow::Result<AnomalyEvalReport> {
    let (history, _) = read_history(&settings.data)?;
    let windows = truth::read(&settings.data.join("truth_anomalies.csv")).context(
        "truth_anomalies.csv (a simulation writes it: detour-train simulate --inject-anomalies)",
    )?;
    let events = service_replay::events_in_time_order(&history);
    let first = events.first().map_or(0, |(at, _)| *at);
    let last = events.last().map_or(0, |(at, _)| *at);
    let from = first + (settings.warmup_days * 86_400.0) as i64;
    let weeks = (last - from).max(1) as f64 / (7.0 * 86_400.0);

    let mut detour_alerts = Vec::new();
    service_replay::alert_changes(&history, &events, &mut |change, alert| {
        if change == Change::Opened {
            detour_alerts.push(alert.clone());
        }
    })?;
    let baseline_alerts = baseline::alerts(&events);
    if let Some(path) = &settings.alerts_out {
        write_alerts(path, &detour_alerts)?;
    }
    let mut report = AnomalyEvalReport {
        weeks,
        events: events.len(),
        ..AnomalyEvalReport::default()
    };
    let series = series_counts(&history);
    let evidence = observable::Evidence::index(&history);
    for (name, alerts) in [("detour", &detour_alerts), ("rolling_z", &baseline_alerts)] {
        let opened: Vec<&Alert> = alerts.iter().filter(|a| a.first_seen >= from).collect();
        // Windows that start after the warm-up and end before the data does.
        for window in windows.iter().filter(|w| w.start >= from && w.end <= last) {
            let recall = report
                .recall
                .entry((name.to_string(), window.kind.clone()))
                .or_default();
            recall.windows += 1;
            let shows = evidence.shows(window);
            recall.observable += usize::from(shows);
            recall.observable_2h += usize::from(evidence.shows_by(window, window.start + 2 * HOUR));
            let first = opened
                .iter()
                .filter(|a| a.kind == window.detected_by() && window.explains(a))
                .map(|a| a.first_seen)
                .min();
            if let Some(at) = first {
                recall.detected += 1;
                recall.observable_detected += usize::from(shows);
                let delay = (at - window.start) as f64 / 60.0;
                recall.within_2h += usize::from(delay <= 120.0);
                recall.delays_min.push(delay);
            }
        }
        for kind in AnomalyKind::ALL {
            let of_kind: Vec<&&Alert> = opened.iter().filter(|a| a.kind == kind).collect();
            let explained = of_kind
                .iter()
                .filter(|a| windows.iter().any(|w| w.explains(a)))
                .count();
            report.precision.insert(
                (name.to_string(), kind.name().to_string()),
                Precision {
                    alerts: of_kind.len(),
                    explained,
                    series: series.get(&kind).copied().unwrap_or(0),
                },
            );
        }
    }
    Ok(report)
}

/// How many series of each alert kind the history has.
fn series_counts(history: &History) -> HashMap<AnomalyKind, usize> {
    use std::collections::HashSet;
    let sites: HashSet<&str> = history.snapshots.iter().map(|s| s.site.as_str()).collect();
    let carrier_regions: HashSet<(&str, &str)> = history
        .shipments
        .iter()
        .map(|s| (s.carrier.as_str(), s.destination.as_str()))
        .collect();
    let lanes: HashSet<(&str, &str)> = history
        .shipments
        .iter()
        .map(|s| (s.origin.as_str(), s.destination.as_str()))
        .collect();
    let ends: HashSet<&str> = history
        .shipments
        .iter()
        .flat_map(|s| [s.origin.as_str(), s.destination.as_str()])
        .collect();
    HashMap::from([
        (AnomalyKind::QueueBuildUp, sites.len()),
        (AnomalyKind::DemandSpike, sites.len()),
        (AnomalyKind::ThroughputDrop, sites.len()),
        (
            AnomalyKind::RegionalCarrierDisruption,
            carrier_regions.len(),
        ),
        // Lanes, and every origin's departures and destination's arrivals.
        (AnomalyKind::LaneDelay, lanes.len() + ends.len()),
    ])
}

fn write_alerts(path: &std::path::Path, alerts: &[Alert]) -> anyhow::Result<()> {
    let mut out = csv::Writer::from_path(path)?;
    out.write_record(["id", "kind", "severity", "first_seen", "score", "summary"])?;
    for a in alerts {
        out.write_record([
            a.id.as_str(),
            a.kind.name(),
            a.severity.name(),
            &Timestamp(a.first_seen * 1000).to_rfc3339(),
            &format!("{:.6}", a.score),
            &a.summary,
        ])?;
    }
    out.flush()?;
    Ok(())
}

/// The median and the 90th percentile of `values` (nearest rank).
pub fn median_p90(values: &[f64]) -> Option<(f64, f64)> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank =
        |q: f64| sorted[((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1];
    Some((rank(0.5), rank(0.9)))
}

impl AnomalyEvalReport {
    /// The report as a table.
    pub fn render(&self) -> String {
        let mut text = format!(
            "{} events, {:.1} weeks evaluated after the warm-up\n\n\
             disruption                 detector   windows detected recall  ≤2h   median  p90 (min) observable recall  oracle ≤2h\n",
            self.events, self.weeks
        );
        for ((detector, kind), r) in &self.recall {
            let (median, p90) = median_p90(&r.delays_min).unwrap_or((f64::NAN, f64::NAN));
            text.push_str(&format!(
                "{kind:<26} {detector:<10} {:>7} {:>8} {:>6.2} {:>5.2} {:>7.0} {:>5.0} {:>10} {:>6.2} {:>11.2}\n",
                r.windows,
                r.detected,
                r.detected as f64 / r.windows.max(1) as f64,
                r.within_2h as f64 / r.windows.max(1) as f64,
                median,
                p90,
                r.observable,
                r.observable_detected as f64 / r.observable.max(1) as f64,
                r.observable_2h as f64 / r.windows.max(1) as f64,
            ));
        }
        text.push_str(
            "\nalert kind                  detector    alerts explained precision series false/series/week\n",
        );
        for ((detector, kind), p) in &self.precision {
            text.push_str(&format!(
                "{kind:<27} {detector:<10} {:>7} {:>9} {:>9.2} {:>6} {:>8.3}\n",
                p.alerts,
                p.explained,
                p.explained as f64 / p.alerts.max(1) as f64,
                p.series,
                (p.alerts - p.explained) as f64 / (p.series.max(1) as f64 * self.weeks),
            ));
        }
        text
    }
}
