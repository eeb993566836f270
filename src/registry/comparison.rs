//! A candidate compared with the active version on real outcomes. Every
//! decision both scored is kept (entity id → both probabilities, the latest
//! decision of an entity winning) until its outcome arrives through ingest;
//! then it counts for both versions on the same decision: Brier score and log
//! loss of each, and the paired difference with its standard error.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::models::repository::AutoPromote;
use crate::schema::RiskKind;

/// The most decisions awaiting their outcome one comparison keeps; past it,
/// new entities are counted as dropped (entities already kept are updated).
pub const MAX_PENDING: usize = 200_000;

/// Probabilities are clipped to [ε, 1 − ε] for log loss.
const LOG_LOSS_EPSILON: f64 = 1e-15;

/// Two scores closer than this count as agreeing.
pub const AGREEMENT_WITHIN: f64 = 0.05;

/// One comparison: a candidate against the active version it was set beside.
#[derive(Debug)]
pub struct Comparison {
    /// The family.
    pub kind: RiskKind,
    /// The active version when the comparison began.
    pub active_version: String,
    /// The candidate.
    pub candidate_version: String,
    /// When it began, RFC 3339.
    pub started_at: String,
    /// The rule that promotes the candidate, if any.
    pub auto_promote: Option<AutoPromote>,
    tally: Mutex<Tally>,
    fired: AtomicBool,
}

#[derive(Debug, Default)]
struct Tally {
    pending: HashMap<String, (f64, f64)>,
    scored: u64,
    dropped: u64,
    abs_difference: f64,
    agreeing: u64,
    resolved: u64,
    positives: u64,
    brier: Paired,
    log_loss: Paired,
}

/// Sums of one loss over resolved decisions: each version's and the paired
/// difference (candidate − active).
#[derive(Debug, Default, Clone, Copy)]
struct Paired {
    active: f64,
    candidate: f64,
    difference: f64,
    difference_squared: f64,
}

impl Paired {
    fn add(&mut self, active: f64, candidate: f64) {
        let d = candidate - active;
        self.active += active;
        self.candidate += candidate;
        self.difference += d;
        self.difference_squared += d * d;
    }

    fn report(&self, n: u64) -> LossReport {
        if n == 0 {
            return LossReport::default();
        }
        let count = n as f64;
        let mean = self.difference / count;
        let standard_error = if n > 1 {
            let variance = (self.difference_squared - count * mean * mean) / (count - 1.0);
            (variance.max(0.0) / count).sqrt()
        } else {
            f64::NAN
        };
        LossReport {
            active: self.active / count,
            candidate: self.candidate / count,
            difference: mean,
            standard_error,
        }
    }
}

/// One loss of both versions over the resolved decisions.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LossReport {
    /// The active version's mean loss.
    pub active: f64,
    /// The candidate's mean loss.
    pub candidate: f64,
    /// Candidate − active (negative: the candidate is better).
    pub difference: f64,
    /// Standard error of `difference` over the decisions (NaN below two).
    pub standard_error: f64,
}

/// What a comparison has seen so far.
#[derive(Debug, Clone, PartialEq)]
pub struct ComparisonReport {
    /// Decisions both versions scored.
    pub decisions_scored: u64,
    /// Decisions whose outcome arrived.
    pub outcomes_resolved: u64,
    /// Decisions awaiting their outcome.
    pub pending: u64,
    /// New decisions not kept because [`MAX_PENDING`] were waiting.
    pub dropped: u64,
    /// Share of resolved decisions whose outcome was the adverse one.
    pub outcome_rate: f64,
    /// Brier score of both.
    pub brier: LossReport,
    /// Log loss of both.
    pub log_loss: LossReport,
    /// Mean |active − candidate| over every scored decision.
    pub mean_abs_difference: f64,
    /// Share of scored decisions where the two are within [`AGREEMENT_WITHIN`].
    pub agreement: f64,
}

impl ComparisonReport {
    /// Whether the candidate beats the active version by `rule`: on at least
    /// `min_outcomes` resolved decisions, Brier score lower by more than
    /// `sigmas` standard errors of the difference.
    pub fn satisfies(&self, rule: &AutoPromote) -> bool {
        self.outcomes_resolved >= rule.min_outcomes.max(2)
            && self.brier.standard_error.is_finite()
            && -self.brier.difference > rule.sigmas * self.brier.standard_error
    }
}

impl Comparison {
    /// A comparison of `candidate_version` with `active_version`, empty.
    pub fn new(
        kind: RiskKind,
        active_version: String,
        candidate_version: String,
        started_at: String,
        auto_promote: Option<AutoPromote>,
    ) -> Self {
        Comparison {
            kind,
            active_version,
            candidate_version,
            started_at,
            auto_promote,
            tally: Mutex::new(Tally::default()),
            fired: AtomicBool::new(false),
        }
    }

    /// Keeps one decision both versions scored.
    pub fn record(&self, entity_id: &str, active: f64, candidate: f64) {
        let mut tally = self.lock();
        tally.scored += 1;
        let difference = (active - candidate).abs();
        tally.abs_difference += difference;
        if difference <= AGREEMENT_WITHIN {
            tally.agreeing += 1;
        }
        if let Some(kept) = tally.pending.get_mut(entity_id) {
            *kept = (active, candidate);
        } else if tally.pending.len() < MAX_PENDING {
            tally
                .pending
                .insert(entity_id.to_string(), (active, candidate));
        } else {
            tally.dropped += 1;
        }
    }

    /// Counts the outcome of an entity's last kept decision, if one is kept.
    /// Returns true the first time the auto-promote rule holds.
    pub fn resolve(&self, entity_id: &str, adverse: bool) -> bool {
        {
            let mut tally = self.lock();
            let Some((active, candidate)) = tally.pending.remove(entity_id) else {
                return false;
            };
            let y = if adverse { 1.0 } else { 0.0 };
            tally.resolved += 1;
            tally.positives += u64::from(adverse);
            tally
                .brier
                .add((active - y).powi(2), (candidate - y).powi(2));
            tally
                .log_loss
                .add(log_loss(active, adverse), log_loss(candidate, adverse));
        }
        match &self.auto_promote {
            Some(rule) if !self.fired.load(Ordering::Relaxed) => {
                self.report().satisfies(rule) && !self.fired.swap(true, Ordering::Relaxed)
            }
            _ => false,
        }
    }

    /// Lets the auto-promote rule fire again (its promotion failed).
    pub fn rearm(&self) {
        self.fired.store(false, Ordering::Relaxed);
    }

    /// The figures so far.
    pub fn report(&self) -> ComparisonReport {
        let tally = self.lock();
        let n = tally.resolved;
        let share = |count: u64, of: u64| {
            if of == 0 {
                f64::NAN
            } else {
                count as f64 / of as f64
            }
        };
        ComparisonReport {
            decisions_scored: tally.scored,
            outcomes_resolved: n,
            pending: tally.pending.len() as u64,
            dropped: tally.dropped,
            outcome_rate: share(tally.positives, n),
            brier: tally.brier.report(n),
            log_loss: tally.log_loss.report(n),
            mean_abs_difference: if tally.scored == 0 {
                f64::NAN
            } else {
                tally.abs_difference / tally.scored as f64
            },
            agreement: share(tally.agreeing, tally.scored),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tally> {
        // A panic while holding the lock leaves sums that are still sums.
        self.tally
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn log_loss(p: f64, adverse: bool) -> f64 {
    let p = p.clamp(LOG_LOSS_EPSILON, 1.0 - LOG_LOSS_EPSILON);
    if adverse { -p.ln() } else { -(1.0 - p).ln() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn comparison(rule: Option<AutoPromote>) -> Comparison {
        Comparison::new(
            RiskKind::CarrierFailure,
            "a".into(),
            "b".into(),
            "2026-12-06T00:00:00Z".into(),
            rule,
        )
    }

    #[test]
    fn losses_are_counted_on_the_same_resolved_decisions() {
        let c = comparison(None);
        c.record("s1", 0.2, 0.1);
        c.record("s2", 0.6, 0.9);
        c.record("s3", 0.5, 0.5);
        // The latest decision of an entity wins.
        c.record("s2", 0.7, 0.9);
        assert!(!c.resolve("s1", false));
        assert!(!c.resolve("s2", true));
        assert!(
            !c.resolve("unknown", true),
            "an unscored entity counts nothing"
        );
        assert!(!c.resolve("s1", true), "an outcome counts once");
        let r = c.report();
        assert_eq!(
            (r.decisions_scored, r.outcomes_resolved, r.pending),
            (4, 2, 1)
        );
        let active = (0.2f64.powi(2) + 0.3f64.powi(2)) / 2.0;
        let candidate = (0.1f64.powi(2) + 0.1f64.powi(2)) / 2.0;
        assert!((r.brier.active - active).abs() < 1e-12);
        assert!((r.brier.candidate - candidate).abs() < 1e-12);
        assert!((r.brier.difference - (candidate - active)).abs() < 1e-12);
        let d: [f64; 2] = [0.01 - 0.04, 0.01 - 0.09];
        let mean = (d[0] + d[1]) / 2.0;
        // Sample variance (n − 1 = 1), over n = 2.
        let se = ((d[0] - mean).powi(2) + (d[1] - mean).powi(2)).sqrt() / 2.0f64.sqrt();
        assert!((r.brier.standard_error - se).abs() < 1e-12);
        let ll = (-(0.8f64.ln()) - 0.7f64.ln()) / 2.0;
        assert!((r.log_loss.active - ll).abs() < 1e-12);
        assert!((r.agreement - 0.25).abs() < 1e-12, "only s3's scores agree");
    }

    #[test]
    fn the_auto_promote_rule_fires_once_when_the_candidate_is_clearly_better() {
        let rule = AutoPromote {
            min_outcomes: 50,
            sigmas: 2.0,
        };
        let c = comparison(Some(rule));
        let mut fired = 0;
        for i in 0..200 {
            let adverse = i % 4 == 0;
            // The candidate knows the outcome better, with some noise.
            let candidate = if adverse { 0.7 } else { 0.1 } + (i % 3) as f64 * 0.01;
            c.record(&format!("s{i}"), 0.25, candidate);
            if c.resolve(&format!("s{i}"), adverse) {
                fired += 1;
                assert!(i + 1 >= 50, "not before {} outcomes", rule.min_outcomes);
            }
        }
        assert_eq!(fired, 1);
        let worse = comparison(Some(rule));
        for i in 0..200 {
            let adverse = i % 4 == 0;
            worse.record(&format!("s{i}"), if adverse { 0.7 } else { 0.1 }, 0.25);
            assert!(!worse.resolve(&format!("s{i}"), adverse));
        }
    }
}
