//! Model artifacts: a `manifest.json` beside a weights file whose SHA-256 the
//! manifest records, and golden rows (`golden.rs`): input rows with the
//! probabilities the trainer computed for them. An artifact is a set of named
//! files ([`ArtifactFiles`], `files.rs`), read from a version folder of the
//! model repository (`repository.rs`) or received over the wire. Loading
//! checks the checksum, the
//! family and the feature schema against what this build computes, then that
//! the loaded model reproduces every golden row to [`GOLDEN_TOLERANCE`] (which
//! catches a mis-exported or mis-parsed model a checksum cannot), and refuses
//! anything else.

use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use super::files::{
    ArtifactFiles, MANIFEST_FILE, MAX_ARTIFACT_BYTES, MAX_ARTIFACT_FILE_BYTES, MAX_ARTIFACT_FILES,
};
use super::golden::check_golden_rows;
pub use super::golden::{
    GOLDEN_TOLERANCE, GoldenRow, GoldenRows, require_golden_rows, save_golden_rows,
};
use super::isotonic::IsotonicMap;
use super::logistic::LogisticWeights;
use super::mlp::{Mlp, MlpWeights};
use super::trees::TreeEnsemble;
use super::{Learner, LinearTrees, LoadedModel, ModelError};
use crate::domain::validate::echoed;
use crate::schema::{FeatureDef, RiskKind};

/// Learner name of a logistic regression artifact (weights: [`LogisticWeights`]).
pub const LOGISTIC_REGRESSION: &str = "logistic_regression";
/// Learner name of a boosted-trees artifact (weights: [`TreeEnsemble`]).
pub const GRADIENT_BOOSTED_TREES: &str = "gradient_boosted_trees";
/// Manifest name of [`Learner::LinearTrees`].
pub const LOGISTIC_PLUS_TREES: &str = "logistic_plus_trees";
/// Learner name of a feed-forward network (weights: [`MlpWeights`]).
pub const MLP: &str = "mlp";

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
    /// An isotonic map applied after `calibration` ([`IsotonicMap`]);
    /// artifacts without one have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isotonic: Option<IsotonicMap>,
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

/// Loads and checks the artifact in the folder `dir` (its `manifest.json` and
/// the files it names), whose features must be exactly `schema`.
pub fn load_version(
    dir: &Path,
    kind: RiskKind,
    schema: &[FeatureDef],
) -> Result<LoadedModel, ModelError> {
    load_files(&ArtifactFiles::read_dir(dir)?, kind, schema)
}

/// Loads and checks an artifact from its files, whose features must be
/// exactly `schema`. Golden rows are checked when the manifest names them
/// ([`require_golden_rows`] makes them mandatory).
pub fn load_files(
    files: &ArtifactFiles,
    kind: RiskKind,
    schema: &[FeatureDef],
) -> Result<LoadedModel, ModelError> {
    let manifest = files.manifest()?;
    let shown = files.path(MANIFEST_FILE);
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

    if let Some(map) = &manifest.isotonic {
        map.check().map_err(mismatch)?;
    }
    let weights_shown = files.path(&manifest.weights_file);
    let bytes = files.get(&manifest.weights_file)?;
    let actual = sha256_hex(bytes);
    if actual != manifest.weights_sha256 {
        return Err(ModelError::Checksum {
            path: weights_shown,
            expected: manifest.weights_sha256.clone(),
            actual,
        });
    }
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
            let weights: LogisticWeights = serde_json::from_slice(bytes).map_err(parse_error)?;
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
            let mut ensemble: TreeEnsemble = serde_json::from_slice(bytes).map_err(parse_error)?;
            ensemble.check(schema.len()).map_err(bad_weights)?;
            ensemble.pack();
            Learner::Boosted(ensemble)
        }
        LOGISTIC_PLUS_TREES => {
            let mut model: LinearTrees = serde_json::from_slice(bytes).map_err(parse_error)?;
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
        MLP => {
            let weights: MlpWeights = serde_json::from_slice(bytes).map_err(parse_error)?;
            weights.check(schema.len()).map_err(bad_weights)?;
            Learner::Mlp(Mlp::new(weights).map_err(bad_weights)?)
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
    check_golden_rows(&model, files, schema.len())?;
    Ok(model)
}

/// Writes an artifact into its folder `dir`: the weights (already
/// serialised), then the manifest with their checksum.
pub fn save_model(dir: &Path, manifest: &mut Manifest, weights_json: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join(&manifest.weights_file), weights_json)?;
    manifest.weights_sha256 = sha256_hex(weights_json);
    std::fs::write(
        dir.join(MANIFEST_FILE),
        serde_json::to_vec_pretty(manifest)?,
    )
}

/// A learner's weights as the artifact stores them.
pub fn weights_json(learner: &Learner) -> Vec<u8> {
    let json = match learner {
        Learner::Logistic(weights) => serde_json::to_vec_pretty(weights),
        Learner::Boosted(ensemble) => serde_json::to_vec(ensemble),
        Learner::LinearTrees(model) => serde_json::to_vec(model),
        Learner::Mlp(network) => serde_json::to_vec(&network.weights),
    };
    json.expect("weights always serialise")
}

/// The manifest name of a learner.
pub fn learner_name(learner: &Learner) -> &'static str {
    match learner {
        Learner::Logistic(_) => LOGISTIC_REGRESSION,
        Learner::Boosted(_) => GRADIENT_BOOSTED_TREES,
        Learner::LinearTrees(_) => LOGISTIC_PLUS_TREES,
        Learner::Mlp(_) => MLP,
    }
}
