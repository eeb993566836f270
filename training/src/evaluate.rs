//! The `evaluate` command: score a period of history with shipped artifacts.
//! History before the period only warms up the aggregates (replayed exactly as in
//! training); every decision inside it is scored with the model the server would
//! use, and written as one CSV row so anyone can compute their own metrics.

use std::path::{Path, PathBuf};

use anyhow::Context;
use detour::domain::Timestamp;
use detour::features::FeatureSettings;
use detour::models::{LoadedModel, load_model};
use detour::network::Network;
use detour::schema::RiskKind;
use detour::schema::schema_of;

use crate::metrics::evaluate as metrics_of;
use crate::replay::{ReplaySettings, replay};
use crate::train::read_history;

/// What `evaluate` needs.
#[derive(Debug, Clone)]
pub struct EvaluateSettings {
    pub data: PathBuf,
    pub models: PathBuf,
    pub from: Timestamp,
    pub to: Timestamp,
    pub predictions: PathBuf,
    pub sla_grace_minutes: f64,
    pub horizon_hours: f64,
    /// Hours before departure a leg counts as announced.
    pub announced_hours: f64,
    /// Replay through the anomaly monitor, so decisions see open alerts.
    pub alerts: bool,
}

/// One scored decision.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Prediction {
    pub id: String,
    pub family: &'static str,
    pub decision_time: Timestamp,
    /// For a shipment, hours from the decision to its scheduled departure.
    pub lead_hours: Option<f64>,
    pub probability: f64,
    /// 1 or 0 where the outcome is known in the data, empty otherwise.
    pub outcome: Option<u8>,
    pub model_version: String,
}

/// Scores the period and writes the predictions file. Returns the predictions.
pub fn run(settings: &EvaluateSettings) -> anyhow::Result<Vec<Prediction>> {
    anyhow::ensure!(settings.from < settings.to, "--from must be before --to");
    let (mut history, reports) = read_history(&settings.data)?;
    for report in &reports {
        eprintln!(
            "{}: {} rows, {} accepted, {} rejected",
            report.file,
            report.rows,
            report.accepted,
            report.rejected()
        );
    }
    if !settings.data.join("network.toml").exists() {
        let shipped = settings.models.join("network.toml");
        if shipped.exists() {
            history.network = Network::load(&shipped)?;
        }
    }
    let models: Vec<LoadedModel> = RiskKind::ALL
        .into_iter()
        .filter(|kind| settings.models.join(kind.name()).is_dir())
        .map(|kind| load_model(&settings.models, kind, schema_of(kind)))
        .collect::<Result<_, _>>()
        .context("loading artifacts")?;
    anyhow::ensure!(
        !models.is_empty(),
        "{} holds no model artifact",
        settings.models.display()
    );
    let datasets = replay(
        &history,
        &ReplaySettings {
            features: FeatureSettings {
                sla_grace_minutes: settings.sla_grace_minutes,
            },
            congestion_horizon_hours: settings.horizon_hours,
            until: Some(settings.to),
            record_from: Some(settings.from),
            unlabelled: true,
            shipment_lead_hours: None,
            also_at_departure: false,
            announced_hours: settings.announced_hours,
            alerts: settings.alerts,
        },
    );
    let mut predictions = Vec::new();
    for model in &models {
        let rows = datasets
            .rows
            .get(&model.kind)
            .map_or(&[][..], Vec::as_slice);
        let start = predictions.len();
        predictions.extend(rows.iter().map(|row| Prediction {
            id: row.entity_id.clone(),
            family: model.kind.name(),
            decision_time: row.at,
            lead_hours: row.lead_hours,
            probability: model.predict(&row.features).probability,
            outcome: row.labelled.then_some(u8::from(row.label)),
            model_version: model.manifest.version.clone(),
        }));
        summarise(model, &predictions[start..]);
    }
    write_predictions(&settings.predictions, &predictions)?;
    println!(
        "wrote {} predictions to {}",
        predictions.len(),
        settings.predictions.display()
    );
    Ok(predictions)
}

fn summarise(model: &LoadedModel, predictions: &[Prediction]) {
    let (p, y): (Vec<f64>, Vec<bool>) = predictions
        .iter()
        .filter_map(|p| p.outcome.map(|o| (p.probability, o == 1)))
        .unzip();
    if p.is_empty() {
        println!(
            "{:<16} {:>8} scored, no known outcomes",
            model.kind.name(),
            predictions.len()
        );
        return;
    }
    let m = metrics_of(&p, &y);
    println!(
        "{:<16} {:>8} scored, {:>8} with outcomes: base rate {:.3}  ROC-AUC {:.3}  PR-AUC {:.3}  \
         Brier {:.4}  ECE {:.4}  ({} {})",
        model.kind.name(),
        predictions.len(),
        p.len(),
        m.base_rate,
        m.roc_auc,
        m.pr_auc,
        m.brier,
        m.ece,
        model.manifest.learner,
        model.manifest.version
    );
    let mut leads: Vec<f64> = predictions.iter().filter_map(|p| p.lead_hours).collect();
    leads.sort_by(f64::total_cmp);
    leads.dedup();
    if leads.len() > 1 {
        for lead in leads {
            let (p, y): (Vec<f64>, Vec<bool>) = predictions
                .iter()
                .filter(|p| p.lead_hours == Some(lead))
                .filter_map(|p| p.outcome.map(|o| (p.probability, o == 1)))
                .unzip();
            if p.is_empty() {
                continue;
            }
            let m = metrics_of(&p, &y);
            println!(
                "  decided {lead:>4} h before departure: {:>8} with outcomes: base rate {:.3}  \
                 ROC-AUC {:.3}  PR-AUC {:.3}  Brier {:.4}  ECE {:.4}",
                p.len(),
                m.base_rate,
                m.roc_auc,
                m.pr_auc,
                m.brier,
                m.ece
            );
        }
    }
}

fn write_predictions(path: &Path, predictions: &[Prediction]) -> anyhow::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let mut writer =
        csv::Writer::from_path(path).with_context(|| format!("creating {}", path.display()))?;
    for prediction in predictions {
        writer.serialize(prediction)?;
    }
    writer.flush()?;
    Ok(())
}
