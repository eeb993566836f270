//! The policies that take each decision in `evaluate-recommendations`, and the
//! labels the tables show them by. Not to be confused with
//! [`detour::recommend::Policy`], the ranking's cost settings.

use std::fmt;

/// One way of taking a decision. The discriminant is the policy's row in every
/// table ([`Policy::ALL`] order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Policy {
    /// Keep the plan: the carrier or site the history used.
    CurrentPlan = 0,
    /// The top-ranked option, from the ranking code the server runs.
    Recommended = 1,
    /// The carrier with the lowest four-week failure rate on the lane / the
    /// eligible site nearest the destination.
    Naive = 2,
    /// Reroutes only: the carrier with the lowest failure rate on the lane over
    /// the whole history before the decision.
    NaiveWholeHistory = 3,
    /// The option that turned out cheapest.
    Hindsight = 4,
}

impl Policy {
    /// Every policy, in table order.
    pub const ALL: [Policy; 5] = [
        Policy::CurrentPlan,
        Policy::Recommended,
        Policy::Naive,
        Policy::NaiveWholeHistory,
        Policy::Hindsight,
    ];

    /// Those a logged history can score: hindsight needs outcomes that never
    /// happened.
    pub const LOGGED: [Policy; 4] = [
        Policy::CurrentPlan,
        Policy::Recommended,
        Policy::Naive,
        Policy::NaiveWholeHistory,
    ];

    /// Its row label in the tables.
    pub fn label(self) -> &'static str {
        match self {
            Policy::CurrentPlan => "current plan",
            Policy::Recommended => "top recommendation",
            Policy::Naive => "naive",
            Policy::NaiveWholeHistory => "naive, whole history",
            Policy::Hindsight => "best in hindsight",
        }
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// Which naive policy a paired difference is taken against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Naive {
    /// The best four-week record on the lane.
    FourWeeks = 0,
    /// The best record on the lane over the whole history before the decision.
    WholeHistory = 1,
}

impl Naive {
    /// Both, in the order of the paired table's columns.
    pub const BOTH: [Naive; 2] = [Naive::FourWeeks, Naive::WholeHistory];

    /// The policy it is.
    pub fn policy(self) -> Policy {
        match self {
            Naive::FourWeeks => Policy::Naive,
            Naive::WholeHistory => Policy::NaiveWholeHistory,
        }
    }
}
