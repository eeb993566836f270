//! Fitting and judging one family: a time-ordered train / validation / test
//! split, each learner fitted on train, Platt-calibrated on validation, and
//! measured on validation (to choose) and test (to report). The test slice is
//! never used to fit, calibrate or choose.

use std::time::Instant;

use detour::domain::Timestamp;
use detour::models::isotonic::IsotonicMap;
use detour::models::{Calibration, Learner, LogisticWeights, sigmoid};
use detour::schema::{FeatureDef, MAX_FEATURES};
use linfa::prelude::*;
use linfa_logistic::LogisticRegression;
use ndarray::{Array1, Array2, ArrayView2, Axis};
use serde::Serialize;

use crate::metrics::{Metrics, evaluate};
use crate::replay::Row;

/// Shares of rows (in time order) for training and validation; the rest is test.
pub const TRAIN_SHARE: f64 = 0.70;
pub const VALIDATION_SHARE: f64 = 0.15;
/// Iteration cap of the L-BFGS fit; standardised inputs converge well before it.
const MAX_ITERATIONS: u64 = 100;

/// The three time slices of a family's rows.
#[derive(Debug, Clone, Copy)]
pub struct Split<'a> {
    pub train: &'a [Row],
    pub validation: &'a [Row],
    pub test: &'a [Row],
}

/// First and last decision time and row count of a slice.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct SliceSpan {
    pub from: Timestamp,
    pub to: Timestamp,
    pub rows: usize,
}

impl Split<'_> {
    /// Spans of train, validation and test.
    pub fn spans(&self) -> [SliceSpan; 3] {
        [self.train, self.validation, self.test].map(|part| SliceSpan {
            from: part[0].at,
            to: part[part.len() - 1].at,
            rows: part.len(),
        })
    }
}

/// Where `n` rows in time order are cut: the end of the training slice and
/// of the validation slice (70 / 15 / 15).
pub fn split_bounds(n: usize) -> (usize, usize) {
    (
        (n as f64 * TRAIN_SHARE) as usize,
        (n as f64 * (TRAIN_SHARE + VALIDATION_SHARE)) as usize,
    )
}

/// Splits rows (in time order) 70 / 15 / 15, checking each slice can do its job.
pub fn split(rows: &[Row]) -> anyhow::Result<Split<'_>> {
    let n = rows.len();
    let (train_end, validation_end) = split_bounds(n);
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
    Ok(Split {
        train,
        validation,
        test,
    })
}

/// A fitted, calibrated and measured learner.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// The learner's manifest name, e.g. "logistic_regression".
    pub name: &'static str,
    pub learner: Learner,
    pub calibration: Calibration,
    /// An isotonic map after `calibration` (imports with `--calibrate isotonic`).
    pub isotonic: Option<IsotonicMap>,
    pub validation: Metrics,
    pub test: Metrics,
    /// Calibrated test-slice probabilities, in row order.
    pub test_predictions: Vec<f64>,
    /// Features by mean absolute contribution on the validation slice (log-odds).
    pub top_features: Vec<(String, f64)>,
    /// Where decisions have a lead (shipments): per lead, the test-slice
    /// metrics and the features by mean absolute contribution on the
    /// validation slice — which features carry the signal at each horizon.
    pub by_lead: Vec<LeadResult>,
    pub fit_seconds: f64,
}

/// One horizon's figures ([`Candidate::by_lead`]).
#[derive(Debug, Clone, serde::Serialize)]
pub struct LeadResult {
    /// Hours before departure.
    pub lead_hours: f64,
    /// The test slice's decisions at this lead.
    pub test: Metrics,
    /// Features by mean absolute contribution at this lead (validation).
    pub top_features: Vec<(String, f64)>,
}

/// Calibrates `learner` on the validation slice and measures it.
pub fn judge(
    name: &'static str,
    learner: Learner,
    split: &Split<'_>,
    schema: &[FeatureDef],
    fit_seconds: f64,
) -> anyhow::Result<Candidate> {
    let logits = |part: &[Row]| -> Vec<f64> {
        part.iter()
            .map(|r| learner.raw_score(r.features.as_slice()).logit)
            .collect()
    };
    let calibration = platt(&logits(split.validation), &labels(split.validation))?;
    Ok(measure(
        name,
        learner,
        calibration,
        None,
        split,
        schema,
        fit_seconds,
    ))
}

/// Measures `learner` under a given `calibration`: validation and test
/// metrics, top features, and the figures by lead.
pub fn measure(
    name: &'static str,
    learner: Learner,
    calibration: Calibration,
    isotonic: Option<IsotonicMap>,
    split: &Split<'_>,
    schema: &[FeatureDef],
    fit_seconds: f64,
) -> Candidate {
    let logits = |part: &[Row]| -> Vec<f64> {
        part.iter()
            .map(|r| learner.raw_score(r.features.as_slice()).logit)
            .collect()
    };
    let calibrated = |part: &[Row]| -> Vec<f64> {
        logits(part)
            .into_iter()
            .map(|z| {
                let p = sigmoid(calibration.slope * z + calibration.intercept);
                isotonic.as_ref().map_or(p, |map| map.apply(p))
            })
            .collect()
    };
    let mut importance = [0.0; MAX_FEATURES];
    for row in split.validation {
        let raw = learner.raw_score(row.features.as_slice());
        for (total, c) in importance.iter_mut().zip(raw.contributions) {
            *total += (c * calibration.slope).abs();
        }
    }
    let mut top_features: Vec<(String, f64)> = schema
        .iter()
        .zip(importance)
        .map(|(f, total)| (f.name.to_string(), total / split.validation.len() as f64))
        .collect();
    top_features.sort_by(|a, b| b.1.total_cmp(&a.1));
    let test_predictions = calibrated(split.test);
    let by_lead = by_lead(&learner, calibration, split, schema, &test_predictions);
    Candidate {
        name,
        validation: evaluate(&calibrated(split.validation), &labels(split.validation)),
        test: evaluate(&test_predictions, &labels(split.test)),
        test_predictions,
        learner,
        calibration,
        isotonic,
        top_features,
        by_lead,
        fit_seconds,
    }
}

/// Per lead: the test metrics and the top features ([`LeadResult`]).
fn by_lead(
    learner: &Learner,
    calibration: Calibration,
    split: &Split<'_>,
    schema: &[FeatureDef],
    test_predictions: &[f64],
) -> Vec<LeadResult> {
    let mut leads: Vec<f64> = split.test.iter().filter_map(|r| r.lead_hours).collect();
    leads.sort_by(f64::total_cmp);
    leads.dedup();
    leads
        .into_iter()
        .filter_map(|lead| {
            let (p, y): (Vec<f64>, Vec<bool>) = split
                .test
                .iter()
                .zip(test_predictions)
                .filter(|(r, _)| r.lead_hours == Some(lead))
                .map(|(r, p)| (*p, r.label))
                .unzip();
            let rows: Vec<&Row> = split
                .validation
                .iter()
                .filter(|r| r.lead_hours == Some(lead))
                .collect();
            if p.is_empty() || rows.is_empty() {
                return None;
            }
            let mut totals = [0.0; MAX_FEATURES];
            for row in &rows {
                let raw = learner.raw_score(row.features.as_slice());
                for (total, c) in totals.iter_mut().zip(raw.contributions) {
                    *total += (c * calibration.slope).abs();
                }
            }
            let mut top: Vec<(String, f64)> = schema
                .iter()
                .zip(totals)
                .map(|(f, total)| (f.name.to_string(), total / rows.len() as f64))
                .collect();
            top.sort_by(|a, b| b.1.total_cmp(&a.1));
            top.truncate(5);
            Some(LeadResult {
                lead_hours: lead,
                test: evaluate(&p, &y),
                top_features: top,
            })
        })
        .collect()
}

/// Fits the baseline: a logistic regression on standardised features, missing
/// values at the training mean (as the server computes them). The features in
/// `never_negative` keep a coefficient at or above 0: while any is negative, the
/// most negative is left out (its coefficient 0) and the rest refitted.
pub fn fit_logistic(
    rows: &[Row],
    width: usize,
    l2: f64,
    never_negative: &[usize],
) -> anyhow::Result<(Learner, f64)> {
    let began = Instant::now();
    let (mean, std) = standardisation(rows, width);
    let x = design_matrix(rows, &mean, &std);
    let y: Array1<bool> = rows.iter().map(|r| r.label).collect();
    let mut left_out: Vec<usize> = Vec::new();
    loop {
        let kept: Vec<usize> = (0..width).filter(|j| !left_out.contains(j)).collect();
        anyhow::ensure!(!kept.is_empty(), "every feature would lower the risk");
        let fit = |features: ArrayView2<'_, f64>| {
            LogisticRegression::default()
                .alpha(l2)
                .max_iterations(MAX_ITERATIONS)
                .fit(&DatasetBase::new(features, y.view()))
        };
        // Only a refit without some features needs a (narrower) copy of the matrix.
        let fitted = if left_out.is_empty() {
            fit(x.view())?
        } else {
            fit(x.select(Axis(1), &kept).view())?
        };
        // linfa treats the larger class as positive; we want "the adverse outcome".
        let sign = if fitted.labels().pos.class { 1.0 } else { -1.0 };
        let mut coefficients = vec![0.0; width];
        for (&j, w) in kept.iter().zip(fitted.params()) {
            coefficients[j] = w * sign;
        }
        let most_negative = never_negative
            .iter()
            .copied()
            .filter(|&j| coefficients[j] < 0.0)
            .min_by(|&a, &b| coefficients[a].total_cmp(&coefficients[b]));
        match most_negative {
            Some(j) => left_out.push(j),
            None => {
                let weights = LogisticWeights {
                    mean,
                    std,
                    coefficients,
                    intercept: fitted.intercept() * sign,
                };
                return Ok((Learner::Logistic(weights), began.elapsed().as_secs_f64()));
            }
        }
    }
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
pub fn platt(logits: &[f64], outcomes: &[bool]) -> anyhow::Result<Calibration> {
    let x = Array2::from_shape_vec((logits.len(), 1), logits.to_vec())?;
    let y: Array1<bool> = outcomes.iter().copied().collect();
    // A tiny penalty: two parameters and tens of thousands of rows.
    let fitted = LogisticRegression::default()
        .alpha(1e-4)
        .max_iterations(MAX_ITERATIONS)
        .fit(&Dataset::new(x, y))?;
    let sign = if fitted.labels().pos.class { 1.0 } else { -1.0 };
    Ok(Calibration {
        slope: fitted.params()[0] * sign,
        intercept: fitted.intercept() * sign,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use detour::schema::FeatureVector;
    use rand::{Rng, SeedableRng};

    /// `n` rows of `width` features drawn by `draw`, labelled with log-odds
    /// Σ weights × features.
    fn rows(
        n: usize,
        seed: u64,
        width: usize,
        mut draw: impl FnMut(&mut rand::rngs::StdRng, &mut [f64]),
        weights: &[f64],
    ) -> Vec<Row> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        (0..n)
            .map(|i| {
                let mut values = [f64::NAN; MAX_FEATURES];
                draw(&mut rng, &mut values[..width]);
                let logit: f64 = weights.iter().zip(&values).map(|(w, x)| w * x).sum();
                Row {
                    at: Timestamp(i as i64),
                    entity_id: format!("r{i}"),
                    features: FeatureVector { values, len: width },
                    label: rng.gen_bool(sigmoid(logit)),
                    labelled: true,
                    lead_hours: None,
                }
            })
            .collect()
    }

    fn coefficients(learner: Learner) -> Vec<f64> {
        match learner {
            Learner::Logistic(w) => w.coefficients,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_feature_that_may_never_lower_the_risk_keeps_a_coefficient_at_or_above_zero() {
        // Risk rises with x0 and falls with x1; x2 is noise.
        let uniform = |rng: &mut rand::rngs::StdRng, x: &mut [f64]| {
            for v in x.iter_mut() {
                *v = rng.gen_range(-1.0..1.0);
            }
        };
        let rows = rows(5_000, 7, 3, uniform, &[1.5, -1.0]);
        let free = coefficients(fit_logistic(&rows, 3, 1.0, &[]).unwrap().0);
        assert!(free[0] > 0.5 && free[1] < -0.3, "{free:?}");
        let held = coefficients(fit_logistic(&rows, 3, 1.0, &[0, 1]).unwrap().0);
        assert_eq!(held[1], 0.0, "{held:?}");
        assert!(held[0] > 0.5, "the others are refitted: {held:?}");
    }

    /// Like a carrier's one-week and four-week rates: two close views of one
    /// thing, fitted unconstrained with weights of opposite sign.
    #[test]
    fn of_two_correlated_records_the_one_that_would_lower_the_risk_is_left_out() {
        let views = |rng: &mut rand::rngs::StdRng, x: &mut [f64]| {
            let z: f64 = rng.gen_range(-1.0..1.0);
            x[0] = z + rng.gen_range(-0.2..0.2);
            x[1] = z + rng.gen_range(-0.2..0.2);
        };
        let rows = rows(20_000, 11, 2, views, &[2.5, -1.0]);
        let free = coefficients(fit_logistic(&rows, 2, 1.0, &[]).unwrap().0);
        assert!(free[0] > 0.0 && free[1] < 0.0, "{free:?}");
        let held = coefficients(fit_logistic(&rows, 2, 1.0, &[0, 1]).unwrap().0);
        assert!(held.iter().all(|&w| w >= 0.0), "{held:?}");
        assert!(held[0] > 0.0 && held[1] == 0.0, "{held:?}");
    }
}
