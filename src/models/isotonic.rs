//! Isotonic calibration: a non-decreasing map from a model's probability to
//! a calibrated one, fitted by pool-adjacent-violators on held-out decisions
//! and applied by linear interpolation between its points (flat beyond the
//! ends). It follows the manifest's Platt scaling, so an artifact may carry
//! either or both; `detour-train import --calibrate isotonic` writes it with
//! Platt left at the identity.

use serde::{Deserialize, Serialize};

/// Most points a map may hold.
pub const MAX_POINTS: usize = 10_000;

/// The map's points: `x` strictly increasing, `y` non-decreasing, both
/// probabilities.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IsotonicMap {
    /// Input probabilities, strictly increasing.
    pub x: Vec<f64>,
    /// Calibrated probability at each `x`, non-decreasing.
    pub y: Vec<f64>,
}

impl IsotonicMap {
    /// Fits the map to `scores` (probabilities) and their outcomes: the
    /// non-decreasing step function closest in squared error
    /// (pool-adjacent-violators), one point per pooled block at its mean
    /// score. `None` with fewer than two distinct blocks.
    pub fn fit(scores: &[f64], outcomes: &[bool]) -> Option<Self> {
        let mut order: Vec<usize> = (0..scores.len())
            .filter(|&i| scores[i].is_finite())
            .collect();
        order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
        // Blocks of (sum of scores, sum of outcomes, count).
        let mut blocks: Vec<(f64, f64, f64)> = Vec::new();
        for i in order {
            blocks.push((scores[i], f64::from(u8::from(outcomes[i])), 1.0));
            while blocks.len() > 1 {
                let (s2, y2, n2) = blocks[blocks.len() - 1];
                let (s1, y1, n1) = blocks[blocks.len() - 2];
                // Merge while the earlier block's mean outcome is not below
                // the later's, or the two sit at the same score.
                if y1 / n1 >= y2 / n2 || s1 / n1 == s2 / n2 {
                    blocks.pop();
                    *blocks.last_mut().expect("two blocks") = (s1 + s2, y1 + y2, n1 + n2);
                } else {
                    break;
                }
            }
        }
        if blocks.len() < 2 {
            return None;
        }
        // Thin evenly if there are more blocks than a map may hold.
        let step = blocks.len().div_ceil(MAX_POINTS);
        let mut map = IsotonicMap {
            x: Vec::new(),
            y: Vec::new(),
        };
        for (s, y, n) in blocks.iter().step_by(step) {
            // Means of neighbouring blocks may round to the same x.
            if map.x.last().is_none_or(|&last| s / n > last) {
                map.x.push(s / n);
                map.y.push(y / n);
            }
        }
        (map.x.len() >= 2).then_some(map)
    }

    /// The calibrated probability of `p`.
    pub fn apply(&self, p: f64) -> f64 {
        let (x, y) = (&self.x, &self.y);
        if p.is_nan() {
            return p;
        }
        let at = x.partition_point(|&v| v <= p);
        if at == 0 {
            return y[0];
        }
        if at == x.len() {
            return y[x.len() - 1];
        }
        let (x0, x1, y0, y1) = (x[at - 1], x[at], y[at - 1], y[at]);
        y0 + (y1 - y0) * (p - x0) / (x1 - x0)
    }

    /// Checks the points: 2 to [`MAX_POINTS`], probabilities, `x` strictly
    /// increasing and `y` non-decreasing.
    pub fn check(&self) -> Result<(), String> {
        let n = self.x.len();
        if !(2..=MAX_POINTS).contains(&n) || self.y.len() != n {
            return Err(format!(
                "isotonic map: 2 to {MAX_POINTS} points, as many x as y ({} and {})",
                n,
                self.y.len()
            ));
        }
        let probability = |v: &f64| (0.0..=1.0).contains(v);
        if !self.x.iter().chain(&self.y).all(probability) {
            return Err("isotonic map: every point must be a probability".into());
        }
        if self.x.windows(2).any(|w| w[0] >= w[1]) || self.y.windows(2).any(|w| w[0] > w[1]) {
            return Err("isotonic map: x must increase strictly and y never decrease".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_violators_and_interpolates_between_blocks() {
        // Scores with outcomes that dip in the middle: 0.2 and 0.3 pool.
        let scores = [0.1, 0.2, 0.3, 0.4, 0.4];
        let outcomes = [false, true, false, true, true];
        let map = IsotonicMap::fit(&scores, &outcomes).unwrap();
        assert!(map.check().is_ok());
        assert_eq!(map.x, vec![0.1, 0.25, 0.4]);
        assert_eq!(map.y, vec![0.0, 0.5, 1.0]);
        assert_eq!(map.apply(0.0), 0.0);
        assert!((map.apply(0.175) - 0.25).abs() < 1e-12);
        assert_eq!(map.apply(0.9), 1.0);
        assert!(IsotonicMap::fit(&[0.5, 0.5], &[true, false]).is_none());
    }

    #[test]
    fn malformed_maps_are_refused() {
        let bad = [
            IsotonicMap {
                x: vec![0.2, 0.1],
                y: vec![0.0, 1.0],
            },
            IsotonicMap {
                x: vec![0.1, 0.2],
                y: vec![0.9, 0.1],
            },
            IsotonicMap {
                x: vec![0.1, 1.5],
                y: vec![0.0, 1.0],
            },
            IsotonicMap {
                x: vec![0.1],
                y: vec![0.0],
            },
        ];
        for map in bad {
            assert!(map.check().is_err(), "{map:?}");
        }
    }
}
