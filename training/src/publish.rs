//! A trained family becomes a version of the model repository: its manifest
//! (schema, priors, calibration, bands, training summary, held-out metrics),
//! weights, golden rows and reports in a new version folder, registered in the
//! family's state (active only in a fresh repository, or with `--activate`).

use std::path::Path;

use anyhow::Context;
use detour::models::artifact::{
    GoldenRows, MANIFEST_FILE, learner_name, save_golden_rows, save_model, sha256_hex, weights_json,
};
use detour::models::repository::{register_trained, version_dir};
use detour::models::{FeatureSpec, Learner, LoadedModel, Manifest};
use detour::schema::{FeatureVector, schema_of};
use serde_json::json;

use crate::metrics::Metrics;
use crate::replay::Row;
use crate::report::{FamilyResult, write_reports};
use crate::train::{BANDS, TrainSettings};

/// Golden rows an artifact carries: this many test rows, evenly spaced.
const GOLDEN_ROWS: usize = 256;

/// Writes a trained family as a version of the repository `settings.out`
/// (manifest, weights, golden rows, reports) and registers it.
pub(crate) fn write_artifact(
    settings: &TrainSettings,
    result: &mut FamilyResult,
    test_rows: &[Row],
) -> anyhow::Result<()> {
    let kind = result.kind;
    let shipped = result.shipped().clone();
    let weights = weights_json(&shipped.learner);
    let short = match shipped.learner {
        Learner::Logistic(_) => "lr",
        Learner::Boosted(_) => "gbt",
        Learner::LinearTrees(_) => "lrgbt",
        Learner::Mlp(_) => "mlp",
    };
    result.version = settings
        .version
        .clone()
        .unwrap_or_else(|| format!("{short}-{}", &sha256_hex(&weights)[..10]));

    let learners: serde_json::Map<String, serde_json::Value> = result
        .candidates
        .iter()
        .map(|c| {
            (
                c.name.to_string(),
                json!({"test": headline(&c.test), "validation": headline(&c.validation)}),
            )
        })
        .collect();
    let [train, validation, test] = result.spans;
    let priors = &result.priors;
    let mut manifest = Manifest {
        name: kind.name().to_string(),
        family: kind.name().to_string(),
        version: result.version.clone(),
        learner: learner_name(&shipped.learner).to_string(),
        features: schema_of(kind)
            .iter()
            .zip(priors)
            .map(|(f, prior)| FeatureSpec {
                name: f.name.to_string(),
                unit: f.unit.to_string(),
                prior: *prior,
            })
            .collect(),
        weights_file: "weights.json".to_string(),
        weights_sha256: String::new(),
        calibration: shipped.calibration,
        bands: BANDS,
        training: json!({
            "data": settings.data.display().to_string(),
            "until": settings.until.map(|t| t.to_rfc3339()),
            "split": "by decision time: first 70% train, next 15% validation (calibration and choice), last 15% test",
            "train": train, "validation": validation, "test": test,
            "chosen_by": result.chosen_by,
            "l2": settings.l2,
            "boosting": {
                "max_trees": settings.boost.max_trees,
                "learning_rate": settings.boost.learning_rate,
                "max_depth": settings.boost.max_depth,
                "lambda": settings.boost.lambda,
                "early_stopping": "validation log loss, patience 20",
            },
            "sla_grace_minutes": settings.sla_grace_minutes,
            "congestion_horizon_hours": settings.horizon_hours,
            "seconds": result.seconds,
        }),
        metrics: json!({
            "test": headline(&shipped.test),
            "validation": headline(&shipped.validation),
            "ceiling_roc_auc": result.ceiling_roc_auc,
            "learners": learners,
        }),
        golden_file: None,
        golden_sha256: None,
        isotonic: None,
    };
    // The probabilities of the model as it is in memory, before it is written
    // out: loading must reproduce them.
    let in_memory = LoadedModel {
        manifest: manifest.clone(),
        kind,
        learner: shipped.learner.clone(),
    };
    let golden: Vec<&FeatureVector> = golden_sample(test_rows).map(|r| &r.features).collect();
    // A new version folder; an existing version of the same name holds the
    // same weights (the name is their checksum) unless `--version` named it.
    let dir = version_dir(&settings.out, kind, &result.version);
    if unchanged(&dir, &weights, &result.version)? {
        eprintln!(
            "{}: version {} is already in {} with the same weights; left as it is",
            kind.name(),
            result.version,
            dir.display()
        );
    } else {
        save_golden_rows(&dir, &mut manifest, &GoldenRows::of(&in_memory, &golden))?;
        save_model(&dir, &mut manifest, &weights)?;
        write_reports(&dir, result)?;
    }
    let identity = sha256_hex(&std::fs::read(dir.join(MANIFEST_FILE))?);
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let activated = register_trained(
        &settings.out,
        kind,
        &result.version,
        identity,
        now,
        settings.activate,
    )?;
    if !activated {
        eprintln!(
            "{}: version {} is in {}; the family's active version is unchanged \
             (deploy it: detour admin deploy {})",
            kind.name(),
            result.version,
            dir.display(),
            dir.display()
        );
    }
    Ok(())
}

/// At most [`GOLDEN_ROWS`] of `rows`, evenly spaced: an artifact's golden rows.
pub(crate) fn golden_sample<T>(rows: &[T]) -> impl Iterator<Item = &T> {
    rows.iter().step_by(rows.len().div_ceil(GOLDEN_ROWS).max(1))
}

/// A manifest's headline figures of one slice.
pub(crate) fn headline(m: &Metrics) -> serde_json::Value {
    json!({"rows": m.rows, "base_rate": m.base_rate, "roc_auc": m.roc_auc,
           "pr_auc": m.pr_auc, "brier": m.brier, "log_loss": m.log_loss, "ece": m.ece})
}

/// Whether the version folder `dir` already holds a model with these
/// weights; an error when it holds another. A version is never rewritten: a
/// server may have deployed it, and its registry recorded these files.
pub(crate) fn unchanged(dir: &Path, weights: &[u8], version: &str) -> anyhow::Result<bool> {
    let manifest_path = dir.join(MANIFEST_FILE);
    if !manifest_path.is_file() {
        return Ok(false);
    }
    let existing: Manifest = serde_json::from_slice(&std::fs::read(&manifest_path)?)
        .with_context(|| format!("reading {}", manifest_path.display()))?;
    anyhow::ensure!(
        existing.weights_sha256 == sha256_hex(weights),
        "{} holds another model of version {version}: pass a new --version, or remove that \
         folder",
        dir.display()
    );
    Ok(true)
}
