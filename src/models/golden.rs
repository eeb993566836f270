//! Golden rows: input rows an artifact carries with the probabilities its
//! trainer computed for them with the model still in memory. A loaded model
//! must reproduce every one to [`GOLDEN_TOLERANCE`], which catches a
//! mis-exported or mis-parsed model that a checksum cannot.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::artifact::{MANIFEST_FILE, Manifest, sha256_hex};
use super::files::ArtifactFiles;
use super::{LoadedModel, ModelError};
use crate::schema::FeatureVector;

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

    /// The rows as feature vectors (a missing value as NaN), in order.
    pub fn vectors(&self) -> impl Iterator<Item = FeatureVector> + '_ {
        self.rows.iter().map(GoldenRow::vector)
    }
}

impl GoldenRow {
    /// The row as a feature vector (a missing value as NaN).
    pub fn vector(&self) -> FeatureVector {
        let values: Vec<f64> = self
            .features
            .iter()
            .map(|v| v.unwrap_or(f64::NAN))
            .collect();
        FeatureVector::from_slice(&values)
    }
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
pub(super) fn check_golden_rows(
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
        let computed = model.probability(&row.vector());
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

/// Writes golden rows into an artifact's folder `dir` (before
/// [`save_model`](super::artifact::save_model),
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
