//! Recommendations: what to do instead of the current plan. Candidates that
//! break a hard constraint are set aside with the reason; the rest are scored
//! with the same models and features as the scoring RPCs under the hypothetical
//! change, and ranked by expected cost = cost + risk × cost of failure.
//!
//! Boundary: pure computation over records the caller fetched (see
//! [`crate::planning`]); no IO, never awaits. Ranking is deterministic: expected
//! cost, then risk, then cost, then the option's code.

pub mod reallocation;
pub mod reroute;
#[cfg(test)]
mod tests;

use crate::domain::Timestamp;

/// What the ranking and the approval flags are based on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    /// Cost charged for a failure (a failed leg, a fallen-out order).
    pub failure_cost: f64,
    /// An option costing more than this above the baseline needs approval.
    pub approval_cost_delta: f64,
    /// When no option's risk is at or below this, a promise adjustment is offered.
    pub safe_risk: f64,
    /// Most options returned (the baseline is always among them).
    pub max_options: usize,
}

impl Policy {
    /// Defaults for reroutes.
    pub const REROUTE: Policy = Policy {
        failure_cost: 250.0,
        approval_cost_delta: 50.0,
        safe_risk: 0.25,
        max_options: 10,
    };
    /// Defaults for reallocations.
    pub const REALLOCATION: Policy = Policy {
        failure_cost: 150.0,
        approval_cost_delta: 50.0,
        safe_risk: 0.25,
        max_options: 10,
    };
}

/// The per-criterion scores an option was ranked on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Criteria {
    /// Predicted probability of failure under this option.
    pub risk: f64,
    /// Transport and handling cost.
    pub cost: f64,
    /// Hours from the decision to the expected arrival.
    pub time_hours: f64,
    /// Great-circle distance from the shipping site to the destination, in km;
    /// NaN when the network lacks a location.
    pub distance_km: f64,
    /// cost + risk × failure cost: what the ranking sorts on.
    pub expected_cost: f64,
}

/// One ranked option.
#[derive(Debug, Clone, PartialEq)]
pub struct RankedOption {
    /// Carrier code, site code, or two site codes joined by '+' for a split.
    pub option: String,
    /// 1 is the best.
    pub rank: u32,
    /// Whether this is the current plan.
    pub baseline: bool,
    /// The scores it was ranked on.
    pub criteria: Criteria,
    /// Baseline risk − this risk (positive: this option removes risk).
    pub risk_removed: f64,
    /// This cost − baseline cost.
    pub cost_delta: f64,
    /// This arrival − baseline arrival, in hours (positive: later).
    pub time_impact_hours: f64,
    /// Plain-language reasons built from the data.
    pub reasons: Vec<String>,
    /// Why a person must approve it; empty when no approval is needed.
    pub approval_reasons: Vec<String>,
    /// For a split: (site, SKUs it ships).
    pub split: Vec<(String, Vec<String>)>,
}

impl RankedOption {
    /// Whether a person must approve it before it is acted on.
    pub fn needs_approval(&self) -> bool {
        !self.approval_reasons.is_empty()
    }
}

/// A candidate left out by a hard constraint, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// Carrier or site code of the candidate.
    pub option: String,
    /// The constraint it breaks, in plain words.
    pub reason: String,
}

/// A later promise to offer when no option is safe enough.
#[derive(Debug, Clone, PartialEq)]
pub struct PromiseAdjustment {
    /// The later promise offered.
    pub new_promise: Timestamp,
    /// Why this date, in plain words.
    pub reason: String,
}

/// The answer to a recommendation request.
#[derive(Debug, Clone, PartialEq)]
pub struct Recommendation {
    /// The order or shipment id.
    pub entity_id: String,
    /// Ranked options, the baseline among them.
    pub options: Vec<RankedOption>,
    /// Candidates left out by a hard constraint, sorted by option.
    pub rejected: Vec<Rejected>,
    /// Offered when no carrier is safe enough; always `None` for reallocations.
    pub promise_adjustment: Option<PromiseAdjustment>,
    /// Things the caller should know (no alternative serves the lane, ...).
    pub notes: Vec<String>,
    /// Why some features were unknown and defaults stood in, one line each;
    /// empty when the answer is not degraded.
    pub degraded_reasons: Vec<String>,
    /// Name of the model that predicted the risks.
    pub model_name: String,
    /// Version of that model, from the same registry snapshot.
    pub model_version: String,
}

/// An option before ranking.
#[derive(Debug, Clone)]
pub(crate) struct Scored {
    pub option: String,
    pub baseline: bool,
    pub criteria: Criteria,
    /// Expected arrival, for the date-change check.
    pub arrival: Timestamp,
    pub reasons: Vec<String>,
    pub split: Vec<(String, Vec<String>)>,
}

/// Sorts, ranks and compares with the baseline; keeps the best `max_options`
/// (the baseline always stays). `visible_deadline` is the date the customer was
/// told: arriving after it is a customer-visible change.
pub(crate) fn rank(
    mut scored: Vec<Scored>,
    policy: &Policy,
    visible_deadline: Timestamp,
) -> Vec<RankedOption> {
    scored.sort_by(|a, b| {
        a.criteria
            .expected_cost
            .total_cmp(&b.criteria.expected_cost)
            .then(a.criteria.risk.total_cmp(&b.criteria.risk))
            .then(a.criteria.cost.total_cmp(&b.criteria.cost))
            .then(a.option.cmp(&b.option))
    });
    let Some(baseline) = scored.iter().find(|s| s.baseline).cloned() else {
        return Vec::new();
    };
    let keep = policy.max_options.max(1);
    let mut out = Vec::with_capacity(keep.min(scored.len()));
    for (i, s) in scored.into_iter().enumerate() {
        if out.len() >= keep && !s.baseline {
            continue;
        }
        let cost_delta = s.criteria.cost - baseline.criteria.cost;
        let time_impact_hours = s.arrival.hours_since(baseline.arrival);
        let mut approval_reasons = Vec::new();
        if !s.baseline {
            if cost_delta > policy.approval_cost_delta {
                approval_reasons.push(format!(
                    "costs {cost_delta:.2} more than the current plan (approval above {:.2})",
                    policy.approval_cost_delta
                ));
            }
            if time_impact_hours > 0.0 && s.arrival > visible_deadline {
                approval_reasons.push(format!(
                    "arrives {time_impact_hours:.1} h later than the current plan, after the \
                     date the customer was given ({visible_deadline})"
                ));
            }
        }
        out.push(RankedOption {
            rank: i as u32 + 1,
            risk_removed: baseline.criteria.risk - s.criteria.risk,
            cost_delta,
            time_impact_hours,
            option: s.option,
            baseline: s.baseline,
            criteria: s.criteria,
            reasons: s.reasons,
            approval_reasons,
            split: s.split,
        });
    }
    out
}

/// "12.40 more" / "8.10 less" / "the same".
pub(crate) fn money_delta(delta: f64) -> String {
    if delta.abs() < 0.005 {
        "the same".to_string()
    } else if delta > 0.0 {
        format!("{delta:.2} more")
    } else {
        format!("{:.2} less", -delta)
    }
}
