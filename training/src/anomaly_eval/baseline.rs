//! The plain baseline detection is compared with: a rolling z-score of each
//! series' value against its previous week of points (mean and standard
//! deviation of up to 168 points), turned into a score by the normal CDF so
//! that the same episode rules open and close its alerts.

use std::collections::VecDeque;

/// Points a z-score looks back over.
const WINDOW: usize = 168;
/// Points before any is scored.
const MIN_POINTS: usize = 48;

/// One series' rolling window.
#[derive(Debug, Default, Clone)]
pub struct RollingZ {
    values: VecDeque<f64>,
    sum: f64,
    square: f64,
}

impl RollingZ {
    /// The score of `value` (Φ(z), with z signed so that larger is more
    /// anomalous in the series' direction: `up` or down), then learns it.
    pub fn observe(&mut self, value: f64, up: bool) -> f64 {
        let n = self.values.len();
        let score = if n < MIN_POINTS {
            0.0
        } else {
            let mean = self.sum / n as f64;
            let variance = (self.square / n as f64 - mean * mean).max(0.0);
            let sd = variance.sqrt().max(1e-9 * mean.abs().max(1.0));
            let z = (value - mean) / sd;
            normal_cdf(if up { z } else { -z })
        };
        self.values.push_back(value);
        self.sum += value;
        self.square += value * value;
        if self.values.len() > WINDOW
            && let Some(old) = self.values.pop_front()
        {
            self.sum -= old;
            self.square -= old * old;
        }
        score
    }
}

fn normal_cdf(z: f64) -> f64 {
    0.5 * puruspe::erfc(-z / std::f64::consts::SQRT_2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_sigma_is_about_the_alert_threshold() {
        assert!((normal_cdf(3.0) - 0.99865).abs() < 1e-5);
        let mut z = RollingZ::default();
        for i in 0..100 {
            z.observe(10.0 + f64::from(i % 3), true);
        }
        assert!(z.observe(30.0, true) > 0.999);
        assert!(z.observe(10.0, true) < 0.9);
    }
}
