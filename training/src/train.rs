//! The `train` command: read an export, replay it into point-in-time datasets,
//! fit a logistic-regression baseline and boosted trees for each family it
//! supports, ship the better on validation; `publish.rs` writes the version.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use detour::domain::Timestamp;
use detour::models::artifact::{GRADIENT_BOOSTED_TREES, LOGISTIC_PLUS_TREES, LOGISTIC_REGRESSION};
use detour::models::{BandThresholds, Learner, LinearTrees};
use detour::network::Network;
use detour::schema::RiskKind;
use detour::schema::schema_of;

use crate::boost::{BoostSettings, Start, fit_boosted};
use crate::csvio::{self, FileReport};
use crate::fit::{fit_logistic, judge, split};
use crate::publish;
use crate::replay::{History, ReplaySettings, Row, replay};
use crate::report::FamilyResult;

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
    pub boost: BoostSettings,
    pub version: Option<String>,
    /// Decide every shipment this long before departure (one horizon).
    pub lead_hours: Option<f64>,
    /// Hours before departure a leg counts as announced.
    pub announced_hours: f64,
    /// Replay through the anomaly monitor, so decisions see open alerts.
    pub alerts: bool,
    /// Make the new versions active in `out`'s state (else only a fresh
    /// repository's first version becomes active).
    pub activate: bool,
}

/// Reads, replays, fits every learner, ships the best per family. Returns what
/// was trained.
pub fn run(settings: &TrainSettings) -> anyhow::Result<Vec<FamilyResult>> {
    let began = Instant::now();
    let (history, reports) = read_history(&settings.data)?;
    for report in &reports {
        print_report(report);
    }
    let truth = read_truth(&settings.data)?;
    let replay_settings = ReplaySettings::training(
        settings.sla_grace_minutes,
        settings.horizon_hours,
        settings.until,
        settings.lead_hours,
        settings.announced_hours,
        settings.alerts,
    );
    eprintln!("replaying history through the service's feature code");
    let replay_began = Instant::now();
    let datasets = replay(&history, &replay_settings);
    let mut skipped: Vec<_> = datasets.skipped.iter().collect();
    skipped.sort();
    for (reason, count) in skipped {
        eprintln!("  left out {count} decisions: {reason}");
    }
    eprintln!(
        "  replay took {:.1} s",
        replay_began.elapsed().as_secs_f64()
    );
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
        let result = match train_family(settings, kind, rows, truth.as_ref()) {
            Ok(result) => result,
            Err(error) => {
                // One family's data (say, a slice with a single class) must not cost
                // the others their models.
                eprintln!("{}: not trained: {error:#}", kind.name());
                continue;
            }
        };
        let shipped = result.shipped();
        println!(
            "{:<16} {:>8} rows  base rate {:.3}  shipped {} — test ROC-AUC {:.3}  PR-AUC {:.3}  \
             Brier {:.4}  ECE {:.4}{}  version {}",
            kind.name(),
            rows.len(),
            shipped.test.base_rate,
            shipped.name,
            shipped.test.roc_auc,
            shipped.test.pr_auc,
            shipped.test.brier,
            shipped.test.ece,
            result
                .ceiling_roc_auc
                .map_or(String::new(), |c| format!("  (ceiling {c:.3})")),
            result.version
        );
        trained.push(result);
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

/// Fits the learners on one family and ships the one with the lowest validation
/// log loss; where the family's features describe options (carriers), only
/// learners that compare options by smooth terms are shipped.
fn train_family(
    settings: &TrainSettings,
    kind: RiskKind,
    rows: &[Row],
    truth: Option<&HashMap<String, f64>>,
) -> anyhow::Result<FamilyResult> {
    let began = Instant::now();
    let schema = schema_of(kind);
    let split = split(rows)?;
    eprintln!(
        "{}: fitting logistic regression on {} rows",
        kind.name(),
        split.train.len()
    );
    let never_negative: Vec<usize> = (0..schema.len())
        .filter(|&j| schema[j].never_lowers_risk)
        .collect();
    // The logistic regression and the boosted trees do not depend on each
    // other: fit them on the two cores at once (the trees over the logistic
    // regression, below, wait for it).
    let (logistic, boosted) = std::thread::scope(|scope| {
        let trees = scope.spawn(|| {
            eprintln!("{}: fitting boosted trees", kind.name());
            let began = Instant::now();
            let fitted = fit_boosted(
                split.train,
                split.validation,
                schema.len(),
                &settings.boost,
                Start::default(),
            );
            fitted.map(|trees| (Learner::Boosted(trees), began.elapsed().as_secs_f64()))
        });
        let logistic = fit_logistic(split.train, schema.len(), settings.l2, &never_negative);
        let boosted = trees
            .join()
            .expect("the boosted trees' thread does not panic");
        (logistic, boosted)
    });
    let (logistic, seconds) = logistic?;
    let (boosted, boosted_seconds) = boosted?;
    let mut candidates = vec![judge(
        LOGISTIC_REGRESSION,
        logistic,
        &split,
        schema,
        seconds,
    )?];
    let seconds = boosted_seconds;
    candidates.push(judge(
        GRADIENT_BOOSTED_TREES,
        boosted,
        &split,
        schema,
        seconds,
    )?);
    // Where the family's features describe options a recommendation compares,
    // also fit trees over the situation alone on top of the logistic regression.
    let frozen: Vec<usize> = (0..schema.len()).filter(|&j| schema[j].of_option).collect();
    if let (false, Learner::Logistic(linear)) = (frozen.is_empty(), &candidates[0].learner) {
        eprintln!(
            "{}: fitting boosted trees on the logistic regression",
            kind.name()
        );
        let began = Instant::now();
        let start = Start {
            linear: Some(linear),
            frozen: &frozen,
        };
        let trees = fit_boosted(
            split.train,
            split.validation,
            schema.len(),
            &settings.boost,
            start,
        )?;
        let learner = Learner::LinearTrees(LinearTrees {
            linear: linear.clone(),
            trees,
        });
        let seconds = began.elapsed().as_secs_f64();
        candidates.push(judge(
            LOGISTIC_PLUS_TREES,
            learner,
            &split,
            schema,
            seconds,
        )?);
    }
    // A family whose model also ranks options ships a learner that compares them
    // by smooth terms: boosted trees splitting on the carriers' own records
    // ranked them worse than the lane's four-week record on a real flight
    // history (ARCHITECTURE.md, README).
    let shippable =
        |learner: &Learner| frozen.is_empty() || !matches!(learner, Learner::Boosted(_));
    let chosen = (0..candidates.len())
        .filter(|&i| shippable(&candidates[i].learner))
        .min_by(|&a, &b| {
            candidates[a]
                .validation
                .log_loss
                .total_cmp(&candidates[b].validation.log_loss)
        })
        .expect("two candidates");
    let ceiling_roc_auc = match (kind, truth) {
        (RiskKind::CarrierFailure, Some(truth)) => {
            let (p, y): (Vec<f64>, Vec<bool>) = split
                .test
                .iter()
                .filter_map(|r| truth.get(&r.entity_id).map(|p| (*p, r.label)))
                .unzip();
            (!p.is_empty()).then(|| crate::metrics::evaluate(&p, &y).roc_auc)
        }
        _ => None,
    };
    let mut result = FamilyResult {
        kind,
        version: String::new(),
        spans: split.spans(),
        candidates,
        chosen,
        ceiling_roc_auc,
        priors: priors(split.train, schema.len()),
        chosen_by: if frozen.is_empty() {
            "lowest log loss on the validation slice"
        } else {
            "lowest log loss on the validation slice among the learners that compare carriers \
             by smooth terms; boosted trees alone are not shipped for this family (README)"
        },
        seconds: 0.0,
    };
    result.seconds = began.elapsed().as_secs_f64();
    // Serving stands a feature's prior in for a missing value; fitting and
    // evaluation here see the rows as replayed. Say how many rows that differs on.
    let imputed = |rows: &[Row]| {
        rows.iter()
            .filter(|r| {
                r.features
                    .as_slice()
                    .iter()
                    .zip(&result.priors)
                    .any(|(v, p)| v.is_nan() && p.is_some())
            })
            .count()
    };
    eprintln!(
        "{}: rows with a missing value that serving would impute: {} of {} train, {} of {} \
         validation, {} of {} test",
        kind.name(),
        imputed(split.train),
        split.train.len(),
        imputed(split.validation),
        split.validation.len(),
        imputed(split.test),
        split.test.len()
    );
    publish::write_artifact(settings, &mut result, split.test)?;
    Ok(result)
}

/// Each feature's median over the training rows that know it (`None` when
/// none does): what serving stands in for a missing value
/// (`LoadedModel::imputed`).
pub fn priors(rows: &[Row], width: usize) -> Vec<Option<f64>> {
    (0..width)
        .map(|j| {
            let mut known: Vec<f64> = rows
                .iter()
                .map(|r| r.features.values[j])
                .filter(|v| !v.is_nan())
                .collect();
            if known.is_empty() {
                return None;
            }
            let mid = known.len() / 2;
            let (_, median, _) = known.select_nth_unstable_by(mid, f64::total_cmp);
            Some(*median)
        })
        .collect()
}

/// The simulator's `truth_shipments.csv` (shipment id → true failure
/// probability), when the data folder has one.
fn read_truth(data: &Path) -> anyhow::Result<Option<HashMap<String, f64>>> {
    let path = data.join("truth_shipments.csv");
    if !path.exists() {
        return Ok(None);
    }
    let mut reader = csv::Reader::from_path(&path)?;
    let mut truth = HashMap::new();
    for record in reader.records() {
        let record = record?;
        if let (Some(id), Some(p)) = (record.get(0), record.get(1).and_then(|p| p.parse().ok())) {
            truth.insert(id.to_string(), p);
        }
    }
    Ok(Some(truth))
}

/// Reads whichever export files the folder holds.
pub fn read_history(data: &Path) -> anyhow::Result<(History, Vec<FileReport>)> {
    let mut history = History::default();
    let mut reports = Vec::new();
    let network_path = data.join("network.toml");
    if network_path.exists() {
        history.network = Network::load(&network_path)?;
    }
    if let Some(path) = export(data, "shipments")? {
        let (rows, report) = csvio::read_shipments(&path)?;
        history.shipments = rows;
        reports.push(report);
    }
    if let Some(path) = export(data, "orders")? {
        let (rows, report) = csvio::read_orders(&path)?;
        history.orders = rows;
        reports.push(report);
    }
    if let Some(path) = export(data, "site_metrics")? {
        let (rows, report) = csvio::read_site_metrics(&path)?;
        history.snapshots = rows;
        reports.push(report);
    }
    anyhow::ensure!(
        !reports.is_empty(),
        "{} holds none of shipments, orders, site_metrics (.csv or .parquet)",
        data.display()
    );
    Ok((history, reports))
}

/// The export `name` in `data`, as `name.csv` or `name.parquet`; both is
/// refused (which one holds the truth?).
fn export(data: &Path, name: &str) -> anyhow::Result<Option<std::path::PathBuf>> {
    let csv = data.join(format!("{name}.csv"));
    let parquet = data.join(format!("{name}.parquet"));
    match (csv.exists(), parquet.exists()) {
        (true, true) => anyhow::bail!(
            "{} holds both {name}.csv and {name}.parquet: keep one",
            data.display()
        ),
        (true, false) => Ok(Some(csv)),
        (false, true) => Ok(Some(parquet)),
        (false, false) => Ok(None),
    }
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
