//! Model artifacts: a `manifest.json` beside a weights file whose SHA-256 the
//! manifest records, and golden rows: input rows with the probabilities the
//! trainer computed for them. An artifact is a set of named files
//! ([`ArtifactFiles`]), read from a version folder of the model repository
//! (`repository.rs`) or received over the wire. Loading checks the checksum, the
//! family and the feature schema against what this build computes, then that
//! the loaded model reproduces every golden row to [`GOLDEN_TOLERANCE`] (which
//! catches a mis-exported or mis-parsed model a checksum cannot), and refuses
//! anything else.

use std::collections::BTreeMap;
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

/// The most bytes one file of an artifact may hold (weights of a few hundred
/// trees take about 1 MB).
pub const MAX_ARTIFACT_FILE_BYTES: usize = 8 << 20;
/// The most bytes all files of an artifact may hold together.
pub const MAX_ARTIFACT_BYTES: usize = 16 << 20;
/// The most files an artifact may hold.
pub const MAX_ARTIFACT_FILES: usize = 16;
/// The manifest's file name.
pub const MANIFEST_FILE: &str = "manifest.json";

/// An artifact's files by name (`manifest.json`, the weights and golden rows it
/// names, and the trainer's reports), as read from a folder or received over
/// the wire; `origin` says where from, and prefixes every path an error names.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ArtifactFiles {
    /// Where the files came from (a folder, or `upload`).
    pub origin: String,
    /// Name → content. Names are plain file names, no folders.
    pub files: BTreeMap<String, Vec<u8>>,
}

impl ArtifactFiles {
    /// Every regular file of `dir` (not its sub-folders), within the limits.
    pub fn read_dir(dir: &Path) -> Result<Self, ModelError> {
        let origin = dir.display().to_string();
        let read_error = |source| ModelError::Read {
            path: origin.clone(),
            source,
        };
        let mut out = ArtifactFiles {
            origin: origin.clone(),
            files: BTreeMap::new(),
        };
        for entry in std::fs::read_dir(dir).map_err(read_error)? {
            let entry = entry.map_err(read_error)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            // Sub-folders and hidden files (an editor's, the OS's, a state
            // file being written) are not part of an artifact.
            if !entry.file_type().map_err(read_error)?.is_file() || name.starts_with('.') {
                continue;
            }
            let size = entry.metadata().map_err(read_error)?.len();
            if size > MAX_ARTIFACT_FILE_BYTES as u64 {
                return Err(ModelError::Mismatch {
                    path: entry.path().display().to_string(),
                    detail: format!(
                        "{size} bytes; a file of an artifact holds at most \
                         {MAX_ARTIFACT_FILE_BYTES}"
                    ),
                });
            }
            let bytes = read_bytes(&entry.path())?;
            out.add(name, bytes)?;
        }
        Ok(out)
    }

    /// Adds one file, refusing a name that is not a plain file name, a second
    /// file of the same name, and sizes beyond the limits.
    pub fn add(&mut self, name: String, bytes: Vec<u8>) -> Result<(), ModelError> {
        let path = format!("{}/{}", self.origin, echoed(&name));
        let refuse = |detail: String| ModelError::Mismatch {
            path: path.clone(),
            detail,
        };
        if name.is_empty()
            || name.starts_with('.')
            || name.contains(['/', '\\', '\0'])
            || name.chars().any(char::is_control)
        {
            return Err(refuse(
                "a file name must be a plain name (no folders, not hidden)".into(),
            ));
        }
        if self.files.contains_key(&name) {
            return Err(refuse("the same file is given twice".into()));
        }
        if self.files.len() >= MAX_ARTIFACT_FILES {
            return Err(refuse(format!(
                "an artifact holds at most {MAX_ARTIFACT_FILES} files"
            )));
        }
        if bytes.len() > MAX_ARTIFACT_FILE_BYTES {
            return Err(refuse(format!(
                "{} bytes; a file of an artifact holds at most {MAX_ARTIFACT_FILE_BYTES}",
                bytes.len()
            )));
        }
        if self.total_bytes() + bytes.len() > MAX_ARTIFACT_BYTES {
            return Err(refuse(format!(
                "the artifact's files hold more than {MAX_ARTIFACT_BYTES} bytes together"
            )));
        }
        self.files.insert(name, bytes);
        Ok(())
    }

    /// The bytes of all files together.
    pub fn total_bytes(&self) -> usize {
        self.files.values().map(Vec::len).sum()
    }

    /// The content of `name`, or a read error naming it.
    pub fn get(&self, name: &str) -> Result<&[u8], ModelError> {
        self.files
            .get(name)
            .map(Vec::as_slice)
            .ok_or_else(|| ModelError::Read {
                path: self.path(name),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
            })
    }

    /// The parsed manifest (checked no further).
    pub fn manifest(&self) -> Result<Manifest, ModelError> {
        serde_json::from_slice(self.get(MANIFEST_FILE)?).map_err(|e| ModelError::Parse {
            path: self.path(MANIFEST_FILE),
            detail: e.to_string(),
        })
    }

    /// What identifies the model these files describe: the SHA-256 of the
    /// manifest, which records the checksums of the weights and golden rows.
    pub fn identity(&self) -> Result<String, ModelError> {
        Ok(sha256_hex(self.get(MANIFEST_FILE)?))
    }

    /// Writes every file into `dir`, creating it.
    pub fn write_dir(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        for (name, bytes) in &self.files {
            std::fs::write(dir.join(name), bytes)?;
        }
        Ok(())
    }

    fn path(&self, name: &str) -> String {
        format!("{}/{name}", self.origin)
    }
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

/// Refuses an artifact without golden rows: the deploy gate's rule, where
/// the service's own start still accepts artifacts from before golden rows.
pub fn require_golden_rows(model: &LoadedModel, files: &ArtifactFiles) -> Result<(), ModelError> {
    match &model.manifest.golden_file {
        Some(_) => Ok(()),
        None => Err(ModelError::Mismatch {
            path: files.path(MANIFEST_FILE),
            detail: "no golden rows (golden_file): a deployed artifact must carry the rows and \
                     probabilities its trainer computed, so that the server can check it \
                     reproduces them"
                .into(),
        }),
    }
}

/// Checks that `model` reproduces the golden rows its manifest names.
fn check_golden_rows(
    model: &LoadedModel,
    files: &ArtifactFiles,
    width: usize,
) -> Result<(), ModelError> {
    let Some(file) = &model.manifest.golden_file else {
        return Ok(());
    };
    let shown = files.path(file);
    let bytes = files.get(file)?;
    let actual = sha256_hex(bytes);
    let expected = model.manifest.golden_sha256.clone().unwrap_or_default();
    if actual != expected {
        return Err(ModelError::Checksum {
            path: shown,
            expected,
            actual,
        });
    }
    let golden: GoldenRows = serde_json::from_slice(bytes).map_err(|e| ModelError::Parse {
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

/// Writes golden rows into an artifact's folder `dir` (before [`save_model`],
/// which then writes the manifest that names them).
pub fn save_golden_rows(
    dir: &Path,
    manifest: &mut Manifest,
    golden: &GoldenRows,
) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let bytes = serde_json::to_vec(golden)?;
    let file = "golden.json";
    std::fs::write(dir.join(file), &bytes)?;
    manifest.golden_file = Some(file.to_string());
    manifest.golden_sha256 = Some(sha256_hex(&bytes));
    Ok(())
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
