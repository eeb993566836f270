//! What an alert says: its kind, severity, entities, evidence and summary,
//! and the changes a subscriber is sent (opened, updated, resolved,
//! acknowledged).

use serde::{Deserialize, Serialize};

/// What kind of disruption an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyKind {
    /// A site's backlog grows beyond what its hour of the week usually holds.
    QueueBuildUp,
    /// A site receives more orders than its hour of the week usually brings.
    DemandSpike,
    /// A site picks fewer units per labour-hour than usual: its people are
    /// there, its output is not (equipment, a system outage).
    ThroughputDrop,
    /// One carrier fails many more of its legs into one region than its own
    /// recent past says it should.
    RegionalCarrierDisruption,
    /// One lane fails many more of its legs, over every carrier, than usual
    /// (weather, a closed hub).
    LaneDelay,
}

impl AnomalyKind {
    /// Every kind, in wire order.
    pub const ALL: [AnomalyKind; 5] = [
        AnomalyKind::QueueBuildUp,
        AnomalyKind::DemandSpike,
        AnomalyKind::ThroughputDrop,
        AnomalyKind::RegionalCarrierDisruption,
        AnomalyKind::LaneDelay,
    ];

    /// The kind's name ("queue_build_up").
    pub fn name(self) -> &'static str {
        match self {
            AnomalyKind::QueueBuildUp => "queue_build_up",
            AnomalyKind::DemandSpike => "demand_spike",
            AnomalyKind::ThroughputDrop => "throughput_drop",
            AnomalyKind::RegionalCarrierDisruption => "regional_carrier_disruption",
            AnomalyKind::LaneDelay => "lane_delay",
        }
    }

    /// The kind a name names.
    pub fn parse(name: &str) -> Option<AnomalyKind> {
        AnomalyKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The words a summary uses for it.
    pub fn phrase(self) -> &'static str {
        match self {
            AnomalyKind::QueueBuildUp => "queue build-up",
            AnomalyKind::DemandSpike => "demand spike",
            AnomalyKind::ThroughputDrop => "throughput drop",
            AnomalyKind::RegionalCarrierDisruption => "regional carrier disruption",
            AnomalyKind::LaneDelay => "lane delay",
        }
    }
}

/// How urgently someone should look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Unusual, not yet harmful.
    Low,
    /// Worth a look this shift.
    Medium,
    /// Act now: shipments or orders are at risk.
    High,
    /// Act now: a limit is breached or most of a flow fails.
    Critical,
}

impl Severity {
    /// Every severity, lowest first.
    pub const ALL: [Severity; 4] = [
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    /// The severity's name ("high").
    pub fn name(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

fn low() -> Severity {
    Severity::Low
}

/// Whether an episode is still going on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    /// The anomaly is going on.
    Open,
    /// The series is back to ordinary.
    Resolved,
}

/// The entities an alert touches; what it is not about is `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entities {
    /// A site code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    /// A carrier code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carrier: Option<String>,
    /// A destination region (location code).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// A lane's origin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// A lane's destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
}

impl Entities {
    /// Whether any of its codes is `code`.
    pub fn mentions(&self, code: &str) -> bool {
        [
            &self.site,
            &self.carrier,
            &self.region,
            &self.origin,
            &self.destination,
        ]
        .into_iter()
        .any(|c| c.as_deref() == Some(code))
    }
}

/// One figure behind an alert, named.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// What it is ("failed", "shipments", "baseline_rate", "backlog").
    pub name: String,
    /// Its value.
    pub value: f64,
}

/// Who acknowledged an alert, when, and what they said.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Acknowledgement {
    /// Who.
    pub by: String,
    /// Their note.
    pub note: String,
    /// When, Unix seconds (wall clock).
    pub at: i64,
}

/// A leg an alert puts at risk, and what the recommendations would do
/// about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AtRisk {
    /// The shipment leg's id.
    pub shipment_id: String,
    /// When it is due to leave (Unix s).
    pub scheduled_departure: i64,
    /// Whether it has left (then only its promise can move).
    pub departed: bool,
    /// The top reroute for a leg that has not left, if one was found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reroute: Option<Suggestion>,
}

/// The recommendations' best answer for one leg.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Suggestion {
    /// The carrier to move it to; empty when no carrier is safe enough and
    /// only a later promise is offered.
    pub option: String,
    /// Its predicted failure risk.
    pub risk: f64,
    /// The risk it removes against the current carrier.
    pub risk_removed: f64,
    /// What it costs more (negative: less).
    pub cost_delta: f64,
    /// The later promise offered when no carrier is safe enough (Unix s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_promise: Option<i64>,
}

/// One alert: an episode of one kind of anomaly on one series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Stable for the episode: the series and when it opened.
    pub id: String,
    /// What kind of disruption.
    pub kind: AnomalyKind,
    /// How urgent, now.
    pub severity: Severity,
    /// The worst it has been in this episode (what a watcher's minimum
    /// severity is compared with, so one that saw it open sees it end).
    #[serde(default = "low")]
    pub worst_severity: Severity,
    /// Open or resolved.
    pub status: AlertStatus,
    /// The latest point's score, in [0, 1] (1 − a tail probability).
    pub score: f64,
    /// The highest score of the episode.
    pub peak_score: f64,
    /// When the episode opened (the triggering point's event time, Unix s).
    pub first_seen: i64,
    /// The latest point's event time.
    pub last_updated: i64,
    /// When it resolved, if it has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<i64>,
    /// The series it was found on ("carrier_region:UPS:SE").
    pub series: String,
    /// What it touches.
    pub entities: Entities,
    /// In words, from the data.
    pub summary: String,
    /// The figures the summary quotes.
    pub evidence: Vec<Evidence>,
    /// Earlier episodes of this series that began at the same time of the
    /// week (within an hour) in the last five weeks.
    pub recurrence: u32,
    /// What to do about it.
    pub action: String,
    /// Legs it puts at risk (a carrier's, into the region it fails in),
    /// those not yet gone first, with their top reroute.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub at_risk: Vec<AtRisk>,
    /// Set once someone acknowledged it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged: Option<Acknowledgement>,
}

/// What happened to an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// An episode began.
    Opened,
    /// It goes on, with new figures or severity.
    Updated,
    /// It ended.
    Resolved,
    /// Someone acknowledged it.
    Acknowledged,
}

impl Change {
    /// The change's name ("opened").
    pub fn name(self) -> &'static str {
        match self {
            Change::Opened => "opened",
            Change::Updated => "updated",
            Change::Resolved => "resolved",
            Change::Acknowledged => "acknowledged",
        }
    }
}
