//! The `train` command: read an export, replay it into point-in-time datasets,
//! fit and evaluate each family it supports, and write artifacts and reports.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use detour::domain::{RiskKind, Timestamp};
use detour::features::FeatureSettings;
use detour::models::artifact::{LOGISTIC_REGRESSION, save_model, sha256_hex};
use detour::models::{BandThresholds, FeatureSpec, Manifest};
use detour::network::Network;
use detour::registry::schema_of;
use serde_json::json;

use crate::csvio::{self, FileReport};
use crate::fit::{Fitted, fit_logistic};
use crate::replay::{History, ReplaySettings, replay};

/// Probability thresholds of the bands, for every family.
pub const BANDS: BandThresholds = BandThresholds {
    medium: 0.2,
    high: 0.5,
};
/// Fewest labelled rows a family needs to be trained.
const MIN_ROWS: usize = 1_000;

/// What `train` needs.
#[derive(Debug, Clone)]
pub struct TrainSettings {
    pub data: PathBuf,
    pub out: PathBuf,
    pub until: Option<Timestamp>,
    pub sla_grace_minutes: f64,
    pub horizon_hours: f64,
    pub l2: f64,
    pub version: Option<String>,
}

/// What `train` produced, per family trained.
#[derive(Debug, Clone)]
pub struct Trained {
    pub kind: RiskKind,
    pub version: String,
    pub fitted: Fitted,
}

/// Reads, replays, fits and writes. Returns the families trained.
pub fn run(settings: &TrainSettings) -> anyhow::Result<Vec<Trained>> {
    let began = Instant::now();
    let (history, reports) = read_history(&settings.data)?;
    for report in &reports {
        print_report(report);
    }
    let replay_settings = ReplaySettings {
        features: FeatureSettings {
            sla_grace_minutes: settings.sla_grace_minutes,
        },
        congestion_horizon_hours: settings.horizon_hours,
        until: settings.until,
        record_from: None,
    };
    eprintln!("replaying history through the service's feature code");
    let datasets = replay(&history, &replay_settings);
    let mut skipped: Vec<_> = datasets.skipped.iter().collect();
    skipped.sort();
    for (reason, count) in skipped {
        eprintln!("  left out {count} decisions: {reason}");
    }
    std::fs::create_dir_all(&settings.out)
        .with_context(|| format!("creating {}", settings.out.display()))?;
    let mut trained = Vec::new();
    for kind in RiskKind::ALL {
        let rows = datasets.rows.get(&kind).map_or(&[][..], Vec::as_slice);
        if rows.len() < MIN_ROWS {
            eprintln!(
                "{}: {} labelled rows (need {MIN_ROWS}); not trained",
                kind.name(),
                rows.len()
            );
            continue;
        }
        let fit_began = Instant::now();
        let fitted = fit_logistic(rows, schema_of(kind), settings.l2)
            .with_context(|| format!("fitting {}", kind.name()))?;
        let version = write_artifact(settings, kind, &fitted, fit_began.elapsed().as_secs_f64())?;
        println!(
            "{:<16} {:>8} rows  base rate {:.3}  test ROC-AUC {:.3}  PR-AUC {:.3}  Brier {:.4}  ECE {:.4}  version {version}",
            kind.name(),
            rows.len(),
            fitted.test.base_rate,
            fitted.test.roc_auc,
            fitted.test.pr_auc,
            fitted.test.brier,
            fitted.test.ece
        );
        trained.push(Trained {
            kind,
            version,
            fitted,
        });
    }
    let network_path = settings.data.join("network.toml");
    if network_path.exists() {
        std::fs::copy(&network_path, settings.out.join("network.toml"))?;
    }
    println!(
        "trained {} families in {:.1} s; artifacts in {}",
        trained.len(),
        began.elapsed().as_secs_f64(),
        settings.out.display()
    );
    Ok(trained)
}

/// Reads whichever export files the folder holds.
pub fn read_history(data: &Path) -> anyhow::Result<(History, Vec<FileReport>)> {
    let mut history = History::default();
    let mut reports = Vec::new();
    let network_path = data.join("network.toml");
    if network_path.exists() {
        history.network = Network::load(&network_path)?;
    }
    let path = data.join("shipments.csv");
    if path.exists() {
        let (rows, report) = csvio::read_shipments(&path)?;
        history.shipments = rows;
        reports.push(report);
    }
    let path = data.join("orders.csv");
    if path.exists() {
        let (rows, report) = csvio::read_orders(&path)?;
        history.orders = rows;
        reports.push(report);
    }
    let path = data.join("site_metrics.csv");
    if path.exists() {
        let (rows, report) = csvio::read_site_metrics(&path)?;
        history.snapshots = rows;
        reports.push(report);
    }
    anyhow::ensure!(
        !reports.is_empty(),
        "{} holds none of shipments.csv, orders.csv, site_metrics.csv",
        data.display()
    );
    Ok((history, reports))
}

fn print_report(report: &FileReport) {
    eprintln!(
        "{}: {} rows, {} accepted, {} rejected",
        report.file,
        report.rows,
        report.accepted,
        report.rejected()
    );
    for (problem, seen) in &report.problems {
        eprintln!(
            "  {} × {problem} (first at lines {:?})",
            seen.count, seen.first_lines
        );
    }
}

fn write_artifact(
    settings: &TrainSettings,
    kind: RiskKind,
    fitted: &Fitted,
    fit_seconds: f64,
) -> anyhow::Result<String> {
    let weights_bytes = serde_json::to_vec_pretty(&fitted.weights)?;
    let version = settings
        .version
        .clone()
        .unwrap_or_else(|| format!("lr-{}", &sha256_hex(&weights_bytes)[..10]));
    let slice = |i: usize| {
        let (from, to, rows) = fitted.slices[i];
        json!({"from": from.to_rfc3339(), "to": to.to_rfc3339(), "rows": rows})
    };
    let headline = |m: &crate::metrics::Metrics| {
        json!({"rows": m.rows, "base_rate": m.base_rate, "roc_auc": m.roc_auc,
               "pr_auc": m.pr_auc, "brier": m.brier, "log_loss": m.log_loss, "ece": m.ece})
    };
    let mut manifest = Manifest {
        name: kind.name().to_string(),
        family: kind.name().to_string(),
        version: version.clone(),
        learner: LOGISTIC_REGRESSION.to_string(),
        features: schema_of(kind)
            .iter()
            .map(|f| FeatureSpec {
                name: f.name.to_string(),
                unit: f.unit.to_string(),
            })
            .collect(),
        weights_file: "weights.json".to_string(),
        weights_sha256: String::new(),
        calibration: fitted.calibration,
        bands: BANDS,
        training: json!({
            "data": settings.data.display().to_string(),
            "until": settings.until.map(|t| t.to_rfc3339()),
            "split": "by decision time: first 70% train, next 15% validation (calibration), last 15% test",
            "train": slice(0), "validation": slice(1), "test": slice(2),
            "l2": settings.l2,
            "sla_grace_minutes": settings.sla_grace_minutes,
            "congestion_horizon_hours": settings.horizon_hours,
            "fit_seconds": fit_seconds,
        }),
        metrics: json!({"test": headline(&fitted.test), "validation": headline(&fitted.validation)}),
    };
    save_model(&settings.out, &mut manifest, &fitted.weights)?;
    let family_dir = settings.out.join(kind.name());
    std::fs::write(
        family_dir.join("report.json"),
        serde_json::to_vec_pretty(&json!({
            "family": kind.name(), "version": version,
            "test": fitted.test, "validation": fitted.validation,
            "top_features": fitted.top_features,
            "calibration": fitted.calibration,
            "training": manifest.training,
        }))?,
    )?;
    std::fs::write(
        family_dir.join("report.md"),
        markdown_report(kind, &version, fitted),
    )?;
    Ok(version)
}

fn markdown_report(kind: RiskKind, version: &str, fitted: &Fitted) -> String {
    let m = &fitted.test;
    let mut out = String::new();
    let _ = writeln!(out, "# {} — {version}\n", kind.name());
    let _ = writeln!(
        out,
        "Logistic regression (linfa), Platt-calibrated on the validation slice; \
         metrics on the test slice (the last 15 % by decision time, unseen in fitting \
         and calibration).\n"
    );
    let _ = writeln!(out, "| slice | from | to | rows |\n|---|---|---|---:|");
    for (name, (from, to, rows)) in ["train", "validation", "test"].iter().zip(fitted.slices) {
        let _ = writeln!(out, "| {name} | {from} | {to} | {rows} |");
    }
    let _ = writeln!(
        out,
        "\n| metric | test |\n|---|---:|\n| base rate | {:.4} |\n| ROC-AUC | {:.4} |\n\
         | PR-AUC | {:.4} |\n| Brier | {:.4} |\n| log loss | {:.4} |\n| ECE | {:.4} |\n",
        m.base_rate, m.roc_auc, m.pr_auc, m.brier, m.log_loss, m.ece
    );
    let _ = writeln!(
        out,
        "Reliability by decile of predicted probability:\n\n\
         | decile | rows | mean predicted | observed |\n|---:|---:|---:|---:|"
    );
    for (i, bin) in m.reliability.iter().enumerate() {
        let _ = writeln!(
            out,
            "| {} | {} | {:.4} | {:.4} |",
            i + 1,
            bin.rows,
            bin.mean_predicted,
            bin.observed_rate
        );
    }
    let _ = writeln!(
        out,
        "\nFeatures by absolute standardised coefficient (log-odds per standard deviation):\n\n\
         | feature | coefficient |\n|---|---:|"
    );
    for (name, weight) in &fitted.top_features {
        let _ = writeln!(out, "| {name} | {weight:+.4} |");
    }
    out
}
