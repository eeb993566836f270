//! Model artifacts on disk: `{dir}/{family}/manifest.json` beside a weights file
//! whose SHA-256 the manifest records, and golden rows: input rows with the
//! probabilities the trainer computed for them. Loading checks the checksum, the
//! family and the feature schema against what this build computes, then that
//! the loaded model reproduces every golden row to [`GOLDEN_TOLERANCE`] (which
//! catches a mis-exported or mis-parsed model a checksum cannot), and refuses
//! anything else.

use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::logistic::LogisticWeights;
use super::trees::TreeEnsemble;
use super::{Learner, LinearTrees, LoadedModel, ModelError};
use crate::domain::validate::echoed;
use crate::schema::{FeatureDef, FeatureVector, RiskKind};

/// Learner name of a logistic regression artifact (weights: [`LogisticWeights`]).
pub const LOGISTIC_REGRESSION: &str = "logistic_regression";
/// Learner name of a boosted-trees artifact (weights: [`TreeEnsemble`]).
pub const GRADIENT_BOOSTED_TREES: &str = "gradient_boosted_trees";
/// Manifest name of [`Learner::LinearTrees`].
pub const LOGISTIC_PLUS_TREES: &str = "logistic_plus_trees";

/// An artifact's manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Model name, reported with every score.
    pub name: String,
    /// One of "order_fallout", "site_congestion", "carrier_failure".
    pub family: String,
    /// Version, reported with every score.
    pub version: String,
    /// The learner, e.g. "logistic_regression".
    pub learner: String,
    /// Input features, in the order the weights expect.
    pub features: Vec<FeatureSpec>,
    /// Weights file, relative to the manifest.
    pub weights_file: String,
    /// Lower-case hex SHA-256 of the weights file.
    pub weights_sha256: String,
    /// Maps the learner's raw log-odds to a probability.
    pub calibration: Calibration,
    /// Where the bands of a probability begin.
    pub bands: BandThresholds,
    /// Free-form training summary (data, rows, seed, time taken).
    #[serde(default)]
    pub training: serde_json::Value,
    /// Headline held-out metrics.
    #[serde(default)]
    pub metrics: serde_json::Value,
    /// Golden rows file ([`GoldenRows`]), relative to the manifest; artifacts
    /// from before golden rows have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub golden_file: Option<String>,
    /// Lower-case hex SHA-256 of the golden rows file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub golden_sha256: Option<String>,
}

/// How far a loaded model's probability of a golden row may be from the
/// trainer's.
pub const GOLDEN_TOLERANCE: f64 = 1e-9;

/// Input rows and the probabilities the trainer computed for them with the
/// model it had in memory, before writing it out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GoldenRows {
    /// The rows.
    pub rows: Vec<GoldenRow>,
}

/// One golden row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GoldenRow {
    /// The features in schema order; `null` for a missing one.
    pub features: Vec<Option<f64>>,
    /// The calibrated probability the trainer computed.
    pub probability: f64,
}

impl GoldenRows {
    /// Golden rows of `model` for `rows`: each row with the probability the
    /// model computes for it.
    pub fn of(model: &LoadedModel, rows: &[&FeatureVector]) -> Self {
        GoldenRows {
            rows: rows
                .iter()
                .map(|features| GoldenRow {
                    features: features
                        .as_slice()
                        .iter()
                        .map(|v| (!v.is_nan()).then_some(*v))
                        .collect(),
                    probability: model.probability(features),
                })
                .collect(),
        }
    }
}

/// A feature as the manifest records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureSpec {
    /// The feature's name; must match the schema's at the same position.
    pub name: String,
    /// Its unit, as shown in explanations ("hours", "share").
    pub unit: String,
    /// What stands in for the feature when it is missing at serving time: its
    /// median over the training rows that knew it. Absent when no training row
    /// knew it; the learner's own missing-value handling then applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prior: Option<f64>,
}

/// Platt scaling of the raw log-odds: `p = sigmoid(slope * logit + intercept)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// Multiplies the raw log-odds (and each contribution).
    pub slope: f64,
    /// Added to the scaled log-odds.
    pub intercept: f64,
}

/// Probability thresholds of the bands: low below `medium`, high from `high`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BandThresholds {
    /// Lowest probability in the medium band; above 0.
    pub medium: f64,
    /// Lowest probability in the high band; at least `medium`, below 1.
    pub high: f64,
}

/// Lower-case hex SHA-256 of some bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Loads and checks the artifact of `kind` under `dir` (`{dir}/{family}/`), whose
/// features must be exactly `schema`.
pub fn load_model(
    dir: &Path,
    kind: RiskKind,
    schema: &[FeatureDef],
) -> Result<LoadedModel, ModelError> {
    let family_dir = dir.join(kind.name());
    let manifest_path = family_dir.join("manifest.json");
    let manifest: Manifest = read_json(&manifest_path)?;
    let shown = manifest_path.display().to_string();
    let mismatch = |detail: String| ModelError::Mismatch {
        path: shown.clone(),
        detail,
    };
    if manifest.family != kind.name() {
        return Err(mismatch(format!(
            "family is {:?}, expected {:?}",
            manifest.family,
            kind.name()
        )));
    }
    let expected: Vec<&str> = schema.iter().map(|f| f.name).collect();
    let found: Vec<&str> = manifest.features.iter().map(|f| f.name.as_str()).collect();
    if expected != found {
        // The first difference, not both lists: an error a reader can act on,
        // of a bounded length.
        let at = expected
            .iter()
            .zip(&found)
            .position(|(e, f)| e != f)
            .unwrap_or(expected.len().min(found.len()));
        let name = |names: &[&str]| names.get(at).map_or("nothing".to_string(), |n| echoed(n));
        return Err(mismatch(format!(
            "feature schema differs from this build's: features[{at}] is {} in the artifact, \
             {} in this build ({} features in the artifact, {} in this build)",
            name(&found),
            name(&expected),
            found.len(),
            expected.len()
        )));
    }
    if let Some((i, spec)) = manifest
        .features
        .iter()
        .enumerate()
        .find(|(_, f)| f.prior.is_some_and(|p| !p.is_finite()))
    {
        return Err(mismatch(format!(
            "features[{i}] ({}): prior must be a finite number",
            spec.name
        )));
    }
    let bands = manifest.bands;
    if !(0.0 < bands.medium && bands.medium <= bands.high && bands.high < 1.0) {
        return Err(mismatch(
            "band thresholds must satisfy 0 < medium <= high < 1".into(),
        ));
    }
    let calibration = manifest.calibration;
    if !(super::within_log_odds(calibration.slope) && super::within_log_odds(calibration.intercept))
    {
        return Err(mismatch(format!(
            "calibration holds a number that is not finite or beyond ±{:e}",
            super::MAX_LOG_ODDS
        )));
    }

    let weights_path = family_dir.join(&manifest.weights_file);
    let bytes = read_bytes(&weights_path)?;
    let actual = sha256_hex(&bytes);
    if actual != manifest.weights_sha256 {
        return Err(ModelError::Checksum {
            path: weights_path.display().to_string(),
            expected: manifest.weights_sha256.clone(),
            actual,
        });
    }
    let weights_shown = weights_path.display().to_string();
    let parse_error = |e: serde_json::Error| ModelError::Parse {
        path: weights_shown.clone(),
        detail: e.to_string(),
    };
    let bad_weights = |detail: String| ModelError::Mismatch {
        path: weights_shown.clone(),
        detail,
    };
    let learner = match manifest.learner.as_str() {
        LOGISTIC_REGRESSION => {
            let weights: LogisticWeights = serde_json::from_slice(&bytes).map_err(parse_error)?;
            weights.check().map_err(bad_weights)?;
            if weights.len() != schema.len() {
                return Err(bad_weights(format!(
                    "weights have {} features, the schema {}",
                    weights.len(),
                    schema.len()
                )));
            }
            Learner::Logistic(weights)
        }
        GRADIENT_BOOSTED_TREES => {
            let mut ensemble: TreeEnsemble = serde_json::from_slice(&bytes).map_err(parse_error)?;
            ensemble.check(schema.len()).map_err(bad_weights)?;
            ensemble.pack();
            Learner::Boosted(ensemble)
        }
        LOGISTIC_PLUS_TREES => {
            let mut model: LinearTrees = serde_json::from_slice(&bytes).map_err(parse_error)?;
            model.linear.check().map_err(bad_weights)?;
            if model.linear.len() != schema.len() {
                return Err(bad_weights(format!(
                    "linear weights have {} features, the schema {}",
                    model.linear.len(),
                    schema.len()
                )));
            }
            model.trees.check(schema.len()).map_err(bad_weights)?;
            // The trees describe the situation only: options are compared by the
            // linear terms alone.
            if let Some(f) = model.trees.split_features().find(|&f| schema[f].of_option) {
                return Err(bad_weights(format!(
                    "a tree splits on {}, a feature of the option",
                    schema[f].name
                )));
            }
            model.trees.pack();
            Learner::LinearTrees(model)
        }
        other => {
            return Err(mismatch(format!(
                "learner {other:?} is not supported by this build"
            )));
        }
    };
    let model = LoadedModel {
        manifest,
        kind,
        learner,
    };
    check_golden_rows(&model, &family_dir, schema.len())?;
    Ok(model)
}

/// Checks that `model` reproduces the golden rows its manifest names.
fn check_golden_rows(
    model: &LoadedModel,
    family_dir: &Path,
    width: usize,
) -> Result<(), ModelError> {
    let Some(file) = &model.manifest.golden_file else {
        return Ok(());
    };
    let path = family_dir.join(file);
    let shown = path.display().to_string();
    let bytes = read_bytes(&path)?;
    let actual = sha256_hex(&bytes);
    let expected = model.manifest.golden_sha256.clone().unwrap_or_default();
    if actual != expected {
        return Err(ModelError::Checksum {
            path: shown,
            expected,
            actual,
        });
    }
    let golden: GoldenRows = serde_json::from_slice(&bytes).map_err(|e| ModelError::Parse {
        path: shown.clone(),
        detail: e.to_string(),
    })?;
    let count = golden.rows.len();
    for (i, row) in golden.rows.iter().enumerate() {
        let fail = |detail: String| ModelError::Mismatch {
            path: shown.clone(),
            detail: format!("golden row {i} of {count}: {detail}"),
        };
        if row.features.len() != width {
            return Err(fail(format!(
                "{} features, the schema has {width}",
                row.features.len()
            )));
        }
        let values: Vec<f64> = row.features.iter().map(|v| v.unwrap_or(f64::NAN)).collect();
        let computed = model.probability(&FeatureVector::from_slice(&values));
        // A NaN is not close either.
        let close = (computed - row.probability).abs() <= GOLDEN_TOLERANCE;
        if !close {
            return Err(fail(format!(
                "this build computes {computed:.12} where the trainer computed {:.12} \
                 (tolerance {GOLDEN_TOLERANCE:e}): the weights do not describe the model that \
                 was trained",
                row.probability
            )));
        }
    }
    Ok(())
}

/// Writes golden rows beside an artifact's manifest (before [`save_model`],
/// which then writes the manifest that names them).
pub fn save_golden_rows(
    dir: &Path,
    manifest: &mut Manifest,
    golden: &GoldenRows,
) -> std::io::Result<()> {
    let family_dir = dir.join(&manifest.family);
    std::fs::create_dir_all(&family_dir)?;
    let bytes = serde_json::to_vec(golden)?;
    let file = "golden.json";
    std::fs::write(family_dir.join(file), &bytes)?;
    manifest.golden_file = Some(file.to_string());
    manifest.golden_sha256 = Some(sha256_hex(&bytes));
    Ok(())
}

/// Writes an artifact: the weights (already serialised), then the manifest with
/// their checksum.
pub fn save_model(dir: &Path, manifest: &mut Manifest, weights_json: &[u8]) -> std::io::Result<()> {
    let family_dir = dir.join(&manifest.family);
    std::fs::create_dir_all(&family_dir)?;
    std::fs::write(family_dir.join(&manifest.weights_file), weights_json)?;
    manifest.weights_sha256 = sha256_hex(weights_json);
    std::fs::write(
        family_dir.join("manifest.json"),
        serde_json::to_vec_pretty(manifest)?,
    )
}

/// A learner's weights as the artifact stores them.
pub fn weights_json(learner: &Learner) -> Vec<u8> {
    let json = match learner {
        Learner::Logistic(weights) => serde_json::to_vec_pretty(weights),
        Learner::Boosted(ensemble) => serde_json::to_vec(ensemble),
        Learner::LinearTrees(model) => serde_json::to_vec(model),
    };
    json.expect("weights always serialise")
}

/// The manifest name of a learner.
pub fn learner_name(learner: &Learner) -> &'static str {
    match learner {
        Learner::Logistic(_) => LOGISTIC_REGRESSION,
        Learner::Boosted(_) => GRADIENT_BOOSTED_TREES,
        Learner::LinearTrees(_) => LOGISTIC_PLUS_TREES,
    }
}

fn read_bytes(path: &Path) -> Result<Vec<u8>, ModelError> {
    std::fs::read(path).map_err(|source| ModelError::Read {
        path: path.display().to_string(),
        source,
    })
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ModelError> {
    serde_json::from_slice(&read_bytes(path)?).map_err(|e| ModelError::Parse {
        path: path.display().to_string(),
        detail: e.to_string(),
    })
}
