//! A streaming detector of a failure rate: each window's `k` adverse outcomes
//! of `n` (a carrier's failed legs out of a region in the last hours, say)
//! tested against the rate of the series' own past with a binomial tail, then
//! folded into that past. Counts, not a z-score of the rate: three failures of
//! four against a usual 8 % is weak evidence, 40 of 60 is overwhelming.

use serde::{Deserialize, Serialize};

use super::tail::{self, Direction};

const DAY: f64 = 86_400.0;

/// A rate detector's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateSettings {
    /// How long the past rate remembers, in seconds (time constant).
    pub memory_secs: f64,
    /// Outcomes the past must hold before a window is scored.
    pub min_trials: f64,
    /// Which departures count.
    pub direction: Direction,
}

impl Default for RateSettings {
    fn default() -> Self {
        RateSettings {
            memory_secs: 28.0 * DAY,
            min_trials: 30.0,
            direction: Direction::Up,
        }
    }
}

/// A window's verdict.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateScored {
    /// 1 − the binomial tail probability of `k` of `n` at the past rate; 0
    /// while the past is too thin.
    pub score: f64,
    /// The past rate it was tested against.
    pub baseline: f64,
    /// Too few past outcomes to score.
    pub warming_up: bool,
}

/// The state of one rate series: time-decayed adverse outcomes and trials.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct RateDetector {
    adverse: f64,
    trials: f64,
    at: i64,
}

impl RateDetector {
    /// A detector with no past.
    pub fn new() -> Self {
        RateDetector::default()
    }

    /// The past rate (with half an outcome of each kind, so it is never 0 or 1).
    pub fn baseline(&self) -> f64 {
        (self.adverse + 0.5) / (self.trials + 1.0)
    }

    /// Scores a window of `k` adverse outcomes of `n` ending at Unix time
    /// `at` from the past alone, then learns it.
    pub fn observe(&mut self, at: i64, k: u64, n: u64, settings: &RateSettings) -> RateScored {
        let scored = self.score(k, n, settings);
        self.learn(at, k, n, settings);
        scored
    }

    /// The verdict on `k` adverse outcomes of `n` against the past, without
    /// learning them.
    pub fn score(&self, k: u64, n: u64, settings: &RateSettings) -> RateScored {
        let baseline = self.baseline();
        let warming_up = self.trials < settings.min_trials || n == 0;
        let score = if warming_up {
            0.0
        } else {
            1.0 - tail::binomial(k.min(n), n, baseline, settings.direction)
        };
        RateScored {
            score: score.clamp(0.0, 1.0),
            baseline,
            warming_up,
        }
    }

    /// Folds `k` adverse outcomes of `n`, ending at Unix time `at`, into the
    /// past.
    pub fn learn(&mut self, at: i64, k: u64, n: u64, settings: &RateSettings) {
        let elapsed = (at - self.at).max(0) as f64;
        let decay = if self.trials == 0.0 {
            1.0
        } else {
            (-elapsed / settings.memory_secs).exp()
        };
        self.adverse = self.adverse * decay + k.min(n) as f64;
        self.trials = self.trials * decay + n as f64;
        self.at = self.at.max(at);
    }

    /// Outcomes the past holds (time-decayed).
    pub fn trials(&self) -> f64 {
        self.trials
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A copy to score a window without changing `detector`.
    fn probe(detector: RateDetector) -> RateDetector {
        detector
    }

    #[test]
    fn a_regional_disruption_stands_out_and_a_few_failures_do_not() {
        let settings = RateSettings::default();
        let mut detector = RateDetector::new();
        // Four weeks at 8 %: 25 legs every 6 hours, 2 failed.
        let mut at = 0;
        for _ in 0..(4 * 7 * 4) {
            at += 6 * 3600;
            detector.observe(at, 2, 25, &settings);
        }
        assert!((detector.baseline() - 0.08).abs() < 0.005);
        let few = probe(detector).observe(at + 3600, 3, 4, &settings);
        let many = probe(detector).observe(at + 3600, 40, 60, &settings);
        assert!(!few.warming_up && few.score < 0.9995, "3 of 4: {few:?}");
        assert!(many.score > 0.999_999, "40 of 60: {many:?}");
        // 14 of 20 in six hours, against 8 % (the summary the issue asks for).
        let disrupted = probe(detector).observe(at + 3600, 14, 20, &settings);
        assert!(disrupted.score > 0.999_999, "{disrupted:?}");
        // The state is three numbers.
        assert!(serde_json::to_string(&detector).unwrap().len() < 100);
    }

    #[test]
    fn nothing_is_scored_before_the_past_holds_enough_outcomes() {
        let settings = RateSettings::default();
        let mut detector = RateDetector::new();
        let first = detector.observe(0, 5, 5, &settings);
        assert!(first.warming_up && first.score == 0.0);
    }
}
