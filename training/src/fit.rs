//! Fitting one family: time-ordered train / validation / test split, a `linfa`
//! logistic regression on standardised features (missing values at the training
//! mean), Platt calibration on the validation slice, metrics on the test slice.

use detour::domain::Timestamp;
use detour::features::vectors::FeatureDef;
use detour::models::{Calibration, LogisticWeights, sigmoid};
use linfa::prelude::*;
use linfa_logistic::LogisticRegression;
use ndarray::{Array1, Array2};

use crate::metrics::{Metrics, evaluate};
use crate::replay::Row;

/// Shares of rows (in time order) for training and validation; the rest is test.
pub const TRAIN_SHARE: f64 = 0.70;
pub const VALIDATION_SHARE: f64 = 0.15;

/// Iteration cap of the L-BFGS fit; standardised inputs converge well before it.
const MAX_ITERATIONS: u64 = 100;

/// A fitted, calibrated, evaluated model of one family.
#[derive(Debug, Clone)]
pub struct Fitted {
    pub weights: LogisticWeights,
    pub calibration: Calibration,
    /// Metrics on the test slice, which neither fitting nor calibration saw.
    pub test: Metrics,
    pub validation: Metrics,
    /// Time ranges of the three slices.
    pub slices: [(Timestamp, Timestamp, usize); 3],
    /// Features by absolute standardised coefficient, largest first.
    pub top_features: Vec<(String, f64)>,
}

/// Fits on `rows` (in time order).
pub fn fit_logistic(rows: &[Row], schema: &[FeatureDef], l2: f64) -> anyhow::Result<Fitted> {
    let n = rows.len();
    let train_end = (n as f64 * TRAIN_SHARE) as usize;
    let validation_end = (n as f64 * (TRAIN_SHARE + VALIDATION_SHARE)) as usize;
    anyhow::ensure!(
        train_end >= 100 && validation_end - train_end >= 50 && n - validation_end >= 50,
        "{n} labelled rows are too few to train, calibrate and test"
    );
    let (train, rest) = rows.split_at(train_end);
    let (validation, test) = rest.split_at(validation_end - train_end);
    for (name, part) in [("training", train), ("validation", validation)] {
        let positives = part.iter().filter(|r| r.label).count();
        anyhow::ensure!(
            positives > 0 && positives < part.len(),
            "the {name} slice has only one class ({positives} of {} positive)",
            part.len()
        );
    }

    let width = schema.len();
    let (mean, std) = standardisation(train, width);
    let x = design_matrix(train, &mean, &std);
    let y: Array1<bool> = train.iter().map(|r| r.label).collect();
    let fitted = LogisticRegression::default()
        .alpha(l2)
        .max_iterations(MAX_ITERATIONS)
        .fit(&Dataset::new(x, y))?;
    // linfa treats the larger class as positive; we want "the adverse outcome".
    let sign = if fitted.labels().pos.class { 1.0 } else { -1.0 };
    let weights = LogisticWeights {
        mean,
        std,
        coefficients: fitted.params().iter().map(|w| w * sign).collect(),
        intercept: fitted.intercept() * sign,
    };

    let raw = |part: &[Row]| -> Vec<f64> {
        part.iter()
            .map(|r| weights.predict(r.features.as_slice()).logit)
            .collect()
    };
    let calibration = platt(&raw(validation), &labels(validation), l2)?;
    let calibrated = |logits: Vec<f64>| -> Vec<f64> {
        logits
            .into_iter()
            .map(|z| sigmoid(calibration.slope * z + calibration.intercept))
            .collect()
    };
    let mut top_features: Vec<(String, f64)> = schema
        .iter()
        .zip(&weights.coefficients)
        .map(|(f, w)| (f.name.to_string(), *w))
        .collect();
    top_features.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()));
    let span = |part: &[Row]| (part[0].at, part[part.len() - 1].at, part.len());
    Ok(Fitted {
        test: evaluate(&calibrated(raw(test)), &labels(test)),
        validation: evaluate(&calibrated(raw(validation)), &labels(validation)),
        slices: [span(train), span(validation), span(test)],
        weights,
        calibration,
        top_features,
    })
}

fn labels(rows: &[Row]) -> Vec<bool> {
    rows.iter().map(|r| r.label).collect()
}

/// Per-feature mean and standard deviation over non-missing training values.
fn standardisation(rows: &[Row], width: usize) -> (Vec<f64>, Vec<f64>) {
    let mut sum = vec![0.0; width];
    let mut sum_sq = vec![0.0; width];
    let mut count = vec![0usize; width];
    for row in rows {
        for (j, &v) in row.features.as_slice().iter().enumerate() {
            if v.is_finite() {
                sum[j] += v;
                sum_sq[j] += v * v;
                count[j] += 1;
            }
        }
    }
    (0..width)
        .map(|j| {
            let n = count[j].max(1) as f64;
            let mean = sum[j] / n;
            let variance = (sum_sq[j] / n - mean * mean).max(0.0);
            let std = if variance.sqrt() > 1e-9 {
                variance.sqrt()
            } else {
                1.0
            };
            (mean, std)
        })
        .unzip()
}

/// Standardised rows, missing values at 0 (the mean), as the server computes them.
fn design_matrix(rows: &[Row], mean: &[f64], std: &[f64]) -> Array2<f64> {
    let width = mean.len();
    let probe = LogisticWeights {
        mean: mean.to_vec(),
        std: std.to_vec(),
        coefficients: vec![1.0; width],
        intercept: 0.0,
    };
    let mut x = Array2::zeros((rows.len(), width));
    for (i, row) in rows.iter().enumerate() {
        // With unit coefficients the contributions are the clamped standardised values.
        let terms = probe.predict(row.features.as_slice()).contributions;
        for j in 0..width {
            x[[i, j]] = terms[j];
        }
    }
    x
}

/// Platt scaling: a one-feature logistic regression of outcomes on raw logits.
fn platt(logits: &[f64], outcomes: &[bool], l2: f64) -> anyhow::Result<Calibration> {
    let x = Array2::from_shape_vec((logits.len(), 1), logits.to_vec())?;
    let y: Array1<bool> = outcomes.iter().copied().collect();
    let fitted = LogisticRegression::default()
        .alpha(l2)
        .max_iterations(200)
        .fit(&Dataset::new(x, y))?;
    let sign = if fitted.labels().pos.class { 1.0 } else { -1.0 };
    Ok(Calibration {
        slope: fitted.params()[0] * sign,
        intercept: fitted.intercept() * sign,
    })
}
