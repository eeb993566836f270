//! Models: artifacts (manifest + weights + checksum) and inference.
//!
//! Boundary: no IO but the model repository's files (reading artifacts,
//! the families' state); inference never awaits. Artifacts are data: loading parses JSON and checks it, nothing more.

pub mod artifact;
pub mod files;
pub mod golden;
pub mod isotonic;
pub mod logistic;
pub mod mlp;
pub mod repository;
pub mod trees;

pub use artifact::{
    ArtifactFiles, BandThresholds, Calibration, FeatureSpec, Manifest, load_files, load_version,
};
pub use logistic::LogisticWeights;
pub use mlp::{Mlp, MlpWeights};
pub use repository::load_model;
pub use trees::TreeEnsemble;

use crate::domain::RiskBand;
use crate::schema::RiskKind;
use crate::schema::{FeatureVector, MAX_FEATURES};
use serde::{Deserialize, Serialize};

/// Largest magnitude, in log-odds, of any coefficient, intercept, leaf value,
/// base score or calibration parameter an artifact may hold. Real models stay
/// within tens; far beyond, sums of terms overflow to infinity and opposite
/// infinities give NaN, which is not a probability (the fuzzer found a
/// coefficient of 1.8e308 that did just that).
pub const MAX_LOG_ODDS: f64 = 1e6;

/// Whether `value` is a number within ±[`MAX_LOG_ODDS`] (NaN is not).
pub fn within_log_odds(value: f64) -> bool {
    value.abs() <= MAX_LOG_ODDS
}

/// Why an artifact was refused.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A file of the artifact could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why reading failed.
        source: std::io::Error,
    },
    /// A file of the artifact is not the JSON it should be.
    #[error("{path} is not a valid artifact file: {detail}")]
    Parse {
        /// The file.
        path: String,
        /// The JSON error.
        detail: String,
    },
    /// The weights file is not the one the manifest was written for.
    #[error("{path}: checksum mismatch (manifest says {expected}, file hashes to {actual})")]
    Checksum {
        /// The weights file.
        path: String,
        /// The SHA-256 the manifest records, lower-case hex.
        expected: String,
        /// The SHA-256 of the file as read, lower-case hex.
        actual: String,
    },
    /// The artifact reads but does not fit this build (family, feature schema,
    /// learner, band thresholds, calibration or weights).
    #[error("{path}: {detail}")]
    Mismatch {
        /// The file at fault.
        path: String,
        /// What does not fit.
        detail: String,
    },
}

/// One scored entity's probability and the features behind it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prediction {
    /// Calibrated probability, in [0, 1].
    pub probability: f64,
    /// Each feature's contribution to the calibrated log-odds, against the
    /// training average (0 for a missing feature), in schema order.
    pub contributions: [f64; MAX_FEATURES],
}

/// The fitted parameters of a model, by learner.
#[derive(Debug, Clone, PartialEq)]
pub enum Learner {
    /// Standardised logistic regression; exact contributions.
    Logistic(LogisticWeights),
    /// Gradient-boosted trees; path contributions.
    Boosted(TreeEnsemble),
    /// A logistic regression plus boosted trees fitted on what it leaves over.
    LinearTrees(LinearTrees),
    /// A feed-forward network (imported); gradient × input contributions.
    Mlp(Mlp),
}

/// A logistic regression over every feature, plus boosted trees fitted on its
/// residual log-odds that split only on the situation (features that are not
/// [`of_option`](crate::schema::FeatureDef::of_option)). Options are
/// then compared by smooth linear terms, while the situation keeps the trees'
/// interactions: ranking carriers by tree splits on their records proved
/// noisier than the lane's plain four-week record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinearTrees {
    /// The logistic regression over every feature.
    pub linear: LogisticWeights,
    /// Trees fitted on the regression's residual log-odds; they never split on
    /// a feature of the option.
    pub trees: TreeEnsemble,
}

impl LinearTrees {
    /// Log-odds only.
    pub fn logit(&self, row: &[f64]) -> f64 {
        self.linear.predict(row).logit + self.trees.logit(row)
    }

    /// Log-odds and contributions: each part's, summed.
    pub fn predict(&self, row: &[f64]) -> logistic::RawScore {
        let mut score = self.linear.predict(row);
        let trees = self.trees.predict(row);
        score.logit += trees.logit;
        for (c, t) in score.contributions.iter_mut().zip(trees.contributions) {
            *c += t;
        }
        score
    }
}

impl Learner {
    /// Uncalibrated log-odds and per-feature contributions for one row.
    pub fn raw_score(&self, row: &[f64]) -> logistic::RawScore {
        match self {
            Learner::Logistic(weights) => weights.predict(row),
            Learner::Boosted(ensemble) => ensemble.predict(row),
            Learner::LinearTrees(model) => model.predict(row),
            Learner::Mlp(network) => network.predict(row),
        }
    }
}

/// A loaded, checked model of one family.
#[derive(Debug, Clone)]
pub struct LoadedModel {
    /// The artifact's manifest: name, version, calibration, bands.
    pub manifest: Manifest,
    /// The family it scores.
    pub kind: RiskKind,
    /// The fitted parameters, checked against the family's schema.
    pub learner: Learner,
}

impl LoadedModel {
    /// The vector the learner sees: each missing value (NaN) replaced by the
    /// feature's training prior, where the manifest records one. A degraded
    /// answer (store unreachable, no snapshot yet) is then what the model says
    /// of a typical entity in what is missing, not whatever the learner made of
    /// the few training rows that lacked the value. A feature with no prior
    /// (never known in training) stays missing.
    pub fn imputed(&self, features: &FeatureVector) -> FeatureVector {
        let mut out = *features;
        if out.as_slice().iter().any(|v| v.is_nan()) {
            for (value, spec) in out.values[..out.len]
                .iter_mut()
                .zip(&self.manifest.features)
            {
                if let (true, Some(prior)) = (value.is_nan(), spec.prior) {
                    *value = prior;
                }
            }
        }
        out
    }

    /// Probability and contributions for one feature vector (missing values
    /// at their priors, [`Self::imputed`]).
    pub fn predict(&self, features: &FeatureVector) -> Prediction {
        let features = &self.imputed(features);
        let raw = self.learner.raw_score(features.as_slice());
        let calibration = self.manifest.calibration;
        let mut contributions = [0.0; MAX_FEATURES];
        for (out, c) in contributions
            .iter_mut()
            .zip(&raw.contributions[..features.len])
        {
            *out = c * calibration.slope;
        }
        Prediction {
            probability: self.calibrated(raw.logit),
            contributions,
        }
    }

    /// The served probability of raw log-odds: Platt scaling, then the
    /// isotonic map when the manifest has one.
    pub fn calibrated(&self, logit: f64) -> f64 {
        let calibration = self.manifest.calibration;
        let p = sigmoid(calibration.slope * logit + calibration.intercept);
        match &self.manifest.isotonic {
            Some(map) => map.apply(p),
            None => p,
        }
    }

    /// The calibrated probability alone: no explanation, less work (ranking).
    pub fn probability(&self, features: &FeatureVector) -> f64 {
        let features = &self.imputed(features);
        let row = features.as_slice();
        let logit = match &self.learner {
            Learner::Logistic(weights) => weights.predict(row).logit,
            Learner::Boosted(ensemble) => ensemble.logit(row),
            Learner::LinearTrees(model) => model.logit(row),
            Learner::Mlp(network) => network.logit(row),
        };
        self.calibrated(logit)
    }

    /// Calibrated probabilities of many feature vectors at once (faster than one
    /// by one for boosted trees).
    pub fn probabilities(&self, features: &[FeatureVector]) -> Vec<f64> {
        // Copied only when something is missing that a prior stands in for
        // (ranking passes many vectors; imported models have no priors).
        let imputed: Vec<FeatureVector>;
        let features = if self.manifest.features.iter().any(|f| f.prior.is_some())
            && features
                .iter()
                .any(|f| f.as_slice().iter().any(|v| v.is_nan()))
        {
            imputed = features.iter().map(|f| self.imputed(f)).collect();
            imputed.as_slice()
        } else {
            features
        };
        let mut logits = Vec::with_capacity(features.len());
        match &self.learner {
            Learner::Logistic(weights) => {
                logits.extend(features.iter().map(|f| weights.predict(f.as_slice()).logit))
            }
            Learner::Boosted(ensemble) => {
                let rows: Vec<&[f64]> = features.iter().map(FeatureVector::as_slice).collect();
                ensemble.logits(&rows, &mut logits);
            }
            Learner::LinearTrees(model) => {
                let rows: Vec<&[f64]> = features.iter().map(FeatureVector::as_slice).collect();
                model.trees.logits(&rows, &mut logits);
                for (logit, row) in logits.iter_mut().zip(&rows) {
                    *logit += model.linear.predict(row).logit;
                }
            }
            Learner::Mlp(network) => {
                let rows: Vec<&[f64]> = features.iter().map(FeatureVector::as_slice).collect();
                network.logits(&rows, &mut logits);
            }
        }
        logits.into_iter().map(|z| self.calibrated(z)).collect()
    }

    /// The band a probability falls in, by the manifest's thresholds.
    pub fn band(&self, probability: f64) -> RiskBand {
        let bands = self.manifest.bands;
        if probability >= bands.high {
            RiskBand::High
        } else if probability >= bands.medium {
            RiskBand::Medium
        } else {
            RiskBand::Low
        }
    }
}

/// The logistic function.
pub fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

#[cfg(test)]
mod tests {
    use super::trees::Tree;
    use super::*;

    fn linear_trees() -> LinearTrees {
        LinearTrees {
            linear: LogisticWeights {
                mean: vec![0.0, 0.0],
                std: vec![1.0, 2.0],
                coefficients: vec![0.5, -1.0],
                intercept: -1.0,
            },
            // x1 < 3 → -0.4 ; else 0.6; missing goes left.
            trees: TreeEnsemble::new(
                0.0,
                vec![Tree {
                    feature: vec![1, 0, 0],
                    threshold: vec![3.0, 0.0, 0.0],
                    left: vec![1, 0, 0],
                    right: vec![2, 0, 0],
                    missing: vec![1, 0, 0],
                    value: vec![0.0, -0.4, 0.6],
                    categorical: Vec::new(),
                }],
            ),
        }
    }

    #[test]
    fn linear_trees_add_the_two_parts() {
        let model = linear_trees();
        let row = [2.0, 4.0];
        // Linear: -1 + 0.5·2 - 1·(4/2) = -2; trees: +0.6.
        let score = model.predict(&row);
        assert!((score.logit - (-2.0 + 0.6)).abs() < 1e-12);
        assert!((model.logit(&row) - score.logit).abs() < 1e-12);
        assert!((score.contributions[0] - 1.0).abs() < 1e-12);
        assert!((score.contributions[1] - (-2.0 + 0.6)).abs() < 1e-12);

        let loaded = LoadedModel {
            manifest: serde_json::from_str(include_str!(
                "../models/carrier_failure/lrgbt-8c4f651de8/manifest.json"
            ))
            .unwrap(),
            kind: RiskKind::CarrierFailure,
            learner: Learner::LinearTrees(model),
        };
        let rows = [[2.0, 4.0], [f64::NAN, 1.0], [-1.0, f64::NAN]];
        let vectors: Vec<FeatureVector> = rows
            .iter()
            .map(|r| {
                let mut values = [f64::NAN; MAX_FEATURES];
                values[..2].copy_from_slice(r);
                FeatureVector { values, len: 2 }
            })
            .collect();
        let batched = loaded.probabilities(&vectors);
        for (v, p) in vectors.iter().zip(batched) {
            assert!((loaded.probability(v) - p).abs() < 1e-12);
            assert!((loaded.predict(v).probability - p).abs() < 1e-12);
        }
    }

    #[test]
    fn weights_beyond_the_log_odds_bound_are_refused() {
        // Found by the fuzzer: coefficients of ±1.8e308 summed to inf − inf,
        // a NaN probability.
        let logistic = |coefficient: f64| LogisticWeights {
            mean: vec![0.0, 0.0],
            std: vec![1.0, 1.0],
            coefficients: vec![coefficient, -coefficient],
            intercept: 0.0,
        };
        assert!(logistic(40.0).check().is_ok());
        assert!(logistic(f64::MAX).check().is_err());
        let mut trees = linear_trees().trees;
        assert!(trees.check(2).is_ok());
        trees.trees[0].value[1] = 1e300;
        assert!(trees.check(2).unwrap_err().contains("tree 0 node 1"));
    }

    #[test]
    fn a_linear_trees_artifact_whose_trees_split_on_an_option_feature_is_refused() {
        use crate::schema::schema_of;
        let schema = schema_of(RiskKind::CarrierFailure);
        let width = schema.len();
        let situation = schema.iter().position(|f| !f.of_option).unwrap();
        let option = schema.iter().position(|f| f.of_option).unwrap();
        let dir = std::env::temp_dir().join(format!("detour-lt-{}", std::process::id()));
        let manifest: Manifest = serde_json::from_str(include_str!(
            "../models/carrier_failure/lrgbt-8c4f651de8/manifest.json"
        ))
        .unwrap();
        let stump = |feature: usize| LinearTrees {
            linear: LogisticWeights {
                mean: vec![0.0; width],
                std: vec![1.0; width],
                coefficients: vec![0.1; width],
                intercept: -1.0,
            },
            trees: TreeEnsemble::new(
                0.0,
                vec![Tree {
                    feature: vec![feature as u32, 0, 0],
                    threshold: vec![0.5, 0.0, 0.0],
                    left: vec![1, 0, 0],
                    right: vec![2, 0, 0],
                    missing: vec![1, 0, 0],
                    value: vec![0.0, -0.1, 0.1],
                    categorical: Vec::new(),
                }],
            ),
        };
        for (feature, accepted) in [(situation, true), (option, false)] {
            let mut manifest = manifest.clone();
            manifest.golden_file = None;
            let weights = artifact::weights_json(&Learner::LinearTrees(stump(feature)));
            artifact::save_model(&dir, &mut manifest, &weights).unwrap();
            let loaded = load_version(&dir, RiskKind::CarrierFailure, schema);
            match (loaded, accepted) {
                (Ok(_), true) => {}
                (Err(e), false) => assert!(e.to_string().contains(schema[option].name), "{e}"),
                (other, _) => panic!("split on {}: {other:?}", schema[feature].name),
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The gate a checksum cannot be: weights written out wrongly (here, one
    /// coefficient off, with a checksum that matches the wrong file) are
    /// refused because they do not reproduce the trainer's probabilities, and
    /// so is a golden row that was tampered with. The row is named.
    #[test]
    fn an_artifact_that_does_not_reproduce_its_golden_rows_is_refused() {
        use crate::schema::schema_of;
        let schema = schema_of(RiskKind::OrderFallout);
        let width = schema.len();
        let dir = std::env::temp_dir().join(format!("detour-golden-{}", std::process::id()));
        let mut manifest: Manifest = serde_json::from_str(include_str!(
            "../models/order_fallout/gbt-d15ebcad6b/manifest.json"
        ))
        .unwrap();
        manifest.learner = artifact::LOGISTIC_REGRESSION.to_string();
        let weights = |first: f64| {
            let mut coefficients = vec![0.1; width];
            coefficients[0] = first;
            Learner::Logistic(LogisticWeights {
                mean: vec![0.0; width],
                std: vec![1.0; width],
                coefficients,
                intercept: -1.0,
            })
        };
        let trained = LoadedModel {
            manifest: manifest.clone(),
            kind: RiskKind::OrderFallout,
            learner: weights(0.5),
        };
        let rows: Vec<FeatureVector> = (0..20)
            .map(|i| {
                let mut values = vec![f64::from(i) / 10.0; width];
                values[1] = f64::NAN;
                FeatureVector::from_slice(&values)
            })
            .collect();
        let refs: Vec<&FeatureVector> = rows.iter().collect();
        let golden = artifact::GoldenRows::of(&trained, &refs);
        let write = |learner: &Learner, golden: &artifact::GoldenRows| {
            let mut manifest = manifest.clone();
            artifact::save_golden_rows(&dir, &mut manifest, golden).unwrap();
            artifact::save_model(&dir, &mut manifest, &artifact::weights_json(learner)).unwrap();
            load_version(&dir, RiskKind::OrderFallout, schema)
        };
        assert!(
            write(&weights(0.5), &golden).is_ok(),
            "the model as trained loads"
        );
        let miswritten = write(&weights(0.5 + 1e-6), &golden).unwrap_err();
        assert!(
            miswritten.to_string().contains("golden row 1 of 20"),
            "{miswritten}"
        );
        let mut tampered = golden.clone();
        tampered.rows[7].probability += 1e-8;
        let refused = write(&weights(0.5), &tampered).unwrap_err();
        assert!(
            refused.to_string().contains("golden row 7 of 20"),
            "{refused}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
