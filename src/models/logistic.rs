//! Logistic regression over standardised features: the first learner, and the
//! one whose explanations are exact (each feature's term of the linear score).

use serde::{Deserialize, Serialize};

use crate::schema::MAX_FEATURES;

/// Standardised values beyond this many deviations are clamped to it.
const Z_LIMIT: f64 = 8.0;

/// Weights of a logistic regression, with the standardisation it was fitted on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogisticWeights {
    /// Training mean of each feature; also what a missing value is taken to be
    /// when the manifest records no prior for it (`LoadedModel::imputed`).
    pub mean: Vec<f64>,
    /// Training standard deviation of each feature (1 where it was constant).
    pub std: Vec<f64>,
    /// Log-odds per standard deviation of each feature.
    pub coefficients: Vec<f64>,
    /// Log-odds of an entity at every training mean.
    pub intercept: f64,
}

/// The uncalibrated score and each feature's term of it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RawScore {
    /// Uncalibrated log-odds.
    pub logit: f64,
    /// Each feature's part of `logit`, in schema order (0 past the schema's end).
    pub contributions: [f64; MAX_FEATURES],
}

impl LogisticWeights {
    /// Number of features the weights expect.
    pub fn len(&self) -> usize {
        self.coefficients.len()
    }

    /// Whether the weights expect no feature at all.
    pub fn is_empty(&self) -> bool {
        self.coefficients.is_empty()
    }

    /// Checks the vectors agree in length, fit the feature limit, and hold only
    /// finite numbers.
    pub fn check(&self) -> Result<(), String> {
        let n = self.coefficients.len();
        if self.mean.len() != n || self.std.len() != n {
            return Err(format!(
                "{} coefficients but {} means and {} standard deviations",
                n,
                self.mean.len(),
                self.std.len()
            ));
        }
        if n > MAX_FEATURES {
            return Err(format!(
                "{n} features; at most {MAX_FEATURES} are supported"
            ));
        }
        let all = self.mean.iter().chain(&self.std).chain(&self.coefficients);
        if !all.chain([&self.intercept]).all(|v| v.is_finite()) {
            return Err("weights hold a non-finite number".into());
        }
        if self.std.iter().any(|s| *s <= 0.0) {
            return Err("a standard deviation is not positive".into());
        }
        let terms = self.coefficients.iter().chain([&self.intercept]);
        if !terms.copied().all(super::within_log_odds) {
            return Err(format!(
                "a coefficient or the intercept is beyond ±{:e} log-odds",
                super::MAX_LOG_ODDS
            ));
        }
        Ok(())
    }

    /// Scores one row; NaN features (those without a prior) count as their
    /// training mean.
    pub fn predict(&self, row: &[f64]) -> RawScore {
        let mut contributions = [0.0; MAX_FEATURES];
        let mut logit = self.intercept;
        for (i, &value) in row.iter().enumerate().take(self.coefficients.len()) {
            if value.is_nan() {
                continue;
            }
            // Clamped so one absurd input cannot dominate every other feature.
            let z = ((value - self.mean[i]) / self.std[i]).clamp(-Z_LIMIT, Z_LIMIT);
            let term = self.coefficients[i] * z;
            contributions[i] = term;
            logit += term;
        }
        RawScore {
            logit,
            contributions,
        }
    }
}
