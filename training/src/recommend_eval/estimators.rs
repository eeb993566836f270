//! The estimators behind the tables: realised counts against a simulator's
//! truth ([`PolicyResult`]), the self-normalised inverse-propensity estimate of a
//! logged history ([`LoggedResult`]) and the paired estimate on nearby legs with
//! its standard error clustered by lane and week ([`MatchedResult`]). They only
//! accumulate and summarise; which decision feeds which is `scoring`'s job.

use std::collections::HashMap;

use super::policy::{Naive, Policy};

/// Realised results of one policy.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PolicyResult {
    pub decisions: usize,
    pub failures: usize,
    /// Mean of the true failure probability of the chosen options.
    pub expected_failure: f64,
    pub total_cost: f64,
}

impl PolicyResult {
    pub(super) fn add(&mut self, failed: bool, p_true: f64, cost: f64) {
        self.decisions += 1;
        self.failures += usize::from(failed);
        self.expected_failure += p_true;
        self.total_cost += cost;
    }
}

/// The policies for one kind of decision ([`Policy::ALL`]): current plan, top
/// recommendation, naive, naive over the whole history (reroutes; empty for
/// reallocations), best in hindsight.
pub type PolicyTable = [(Policy, PolicyResult); 5];

/// Off-policy results of one policy on a logged history: scored on the decisions
/// where it chose what was done, each weighted by the inverse propensity of that
/// choice.
#[derive(Debug, Clone, Default)]
pub struct LoggedResult {
    /// Decisions the policy was asked about.
    pub decisions: usize,
    /// Decisions where it chose what the history did (the ones it is scored on).
    pub followed: usize,
    sum_w: f64,
    sum_w_failed: f64,
    sum_w_cost: f64,
    sum_w2: f64,
    sum_w2_failed: f64,
}

impl LoggedResult {
    pub(super) fn add(&mut self, weight: f64, failed: bool, cost: f64) {
        let y = f64::from(u8::from(failed));
        self.followed += 1;
        self.sum_w += weight;
        self.sum_w_failed += weight * y;
        self.sum_w_cost += weight * cost;
        self.sum_w2 += weight * weight;
        self.sum_w2_failed += weight * weight * y;
    }

    /// Self-normalised estimate of the failure rate had the policy been followed
    /// (NaN when it agreed with no decision).
    pub fn failure_rate(&self) -> f64 {
        self.sum_w_failed / self.sum_w
    }

    /// Its standard error (delta method): √(Σ w²(y − r)²) / Σ w, taking the
    /// outcomes as independent — failures that cluster by lane and day make the
    /// true error larger.
    pub fn standard_error(&self) -> f64 {
        let r = self.failure_rate();
        // y² = y for a 0/1 outcome.
        let spread = self.sum_w2_failed * (1.0 - 2.0 * r) + r * r * self.sum_w2;
        spread.max(0.0).sqrt() / self.sum_w
    }

    /// Self-normalised estimate of the mean cost (NaN where rates are unknown).
    pub fn mean_cost(&self) -> f64 {
        self.sum_w_cost / self.sum_w
    }

    /// Effective number of decisions behind the estimate: (Σ w)² / Σ w².
    pub fn effective_decisions(&self) -> f64 {
        self.sum_w * self.sum_w / self.sum_w2
    }
}

/// The current plan, the top recommendation and the two naive policies
/// ([`Policy::LOGGED`]), on a logged history (hindsight needs outcomes that
/// never happened).
pub type LoggedTable = [(Policy, LoggedResult); 4];

/// Paired results of one policy on a logged history: its pick on each decision
/// is scored by the failure share of that carrier's legs on the lane scheduled
/// to depart within [`MATCH_WINDOW_HOURS`](super::MATCH_WINDOW_HOURS) of the decision's departure and after
/// the decision itself, on the decisions with a choice (two options or more)
/// where every option had such legs.
#[derive(Debug, Clone, Default)]
pub struct MatchedResult {
    pub decisions: usize,
    sum: f64,
    /// Per cluster (lane and week of departure: decisions there share legs),
    /// the sums of this policy's share minus each naive policy's (indexed by
    /// [`Naive`]), and the decisions.
    clusters: HashMap<(String, i64), ([f64; 2], usize)>,
}

impl MatchedResult {
    /// Adds a decision: this policy's share, each naive policy's share on the
    /// same decision (indexed by [`Naive`]) and the decision's cluster.
    pub(super) fn add(&mut self, share: f64, naive: [f64; 2], cluster: (String, i64)) {
        self.decisions += 1;
        self.sum += share;
        let c = self.clusters.entry(cluster).or_default();
        c.0[0] += share - naive[0];
        c.0[1] += share - naive[1];
        c.1 += 1;
    }

    /// Mean failure share of the picks.
    pub fn failure_rate(&self) -> f64 {
        self.sum / self.decisions as f64
    }

    /// Mean difference from a naive policy's pick (negative: fewer failures).
    pub fn versus(&self, naive: Naive) -> f64 {
        self.clusters
            .values()
            .map(|c| c.0[naive as usize])
            .sum::<f64>()
            / self.decisions as f64
    }

    /// Standard error of [`Self::versus`], robust to decisions within a
    /// cluster (same lane, same week) sharing legs: √(C/(C−1) · Σ_c (S_c − n_c·m)²) / n
    /// over C clusters with difference sums S_c; NaN with fewer than two clusters.
    pub fn versus_se(&self, naive: Naive) -> f64 {
        let clusters = self.clusters.len() as f64;
        if clusters < 2.0 {
            return f64::NAN;
        }
        let n = self.decisions as f64;
        let mean = self.versus(naive);
        let spread: f64 = self
            .clusters
            .values()
            .map(|&(sums, count)| (sums[naive as usize] - count as f64 * mean).powi(2))
            .sum();
        (clusters / (clusters - 1.0) * spread).sqrt() / n
    }
}

/// Current plan, top recommendation, the two naive policies, best in hindsight
/// ([`Policy::ALL`]): paired on nearby legs.
pub type MatchedTable = [(Policy, MatchedResult); 5];
