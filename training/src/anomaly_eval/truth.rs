//! The labelled disruption windows a simulation writes
//! (`truth_anomalies.csv`), and which alerts each one explains.

use std::path::Path;

use anyhow::Context;
use detour::anomaly::{Alert, AnomalyKind};
use detour::domain::Timestamp;

/// One labelled disruption.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    /// What the simulator did: `demand_spike`, `labour_shortfall`,
    /// `throughput_drop`, `area_disruption`, `carrier_region_disruption`.
    pub kind: String,
    pub site: String,
    pub carrier: String,
    pub region: String,
    /// Site and region codes of an area disruption.
    pub locations: Vec<String>,
    /// Unix seconds.
    pub start: i64,
    pub end: i64,
}

/// Hours after a window's end an alert still counts as its own: outcomes of
/// legs are known when they arrive (late ones hours after their due time),
/// a site's state at its next snapshots.
fn slack_hours(kind: &str) -> i64 {
    match kind {
        "area_disruption" | "carrier_region_disruption" => 24,
        _ => 3,
    }
}

/// An alert that begins this long before a window still counts as its own
/// (a window starts within the hour its effect shows in).
const EARLY_SECS: i64 = 3_600;

impl Window {
    /// The kind of alert that detects this window (for recall).
    pub fn detected_by(&self) -> AnomalyKind {
        match self.kind.as_str() {
            "demand_spike" => AnomalyKind::DemandSpike,
            "labour_shortfall" => AnomalyKind::QueueBuildUp,
            "throughput_drop" => AnomalyKind::ThroughputDrop,
            "carrier_region_disruption" => AnomalyKind::RegionalCarrierDisruption,
            _ => AnomalyKind::LaneDelay,
        }
    }

    /// Whether `alert`, which began at `first_seen`, is about this window:
    /// about its entities, and begun within it (an hour early to the slack
    /// late).
    pub fn explains(&self, alert: &Alert) -> bool {
        let in_time = alert.first_seen >= self.start - EARLY_SECS
            && alert.first_seen <= self.end + slack_hours(&self.kind) * 3_600;
        in_time && self.touches(alert)
    }

    fn touches(&self, alert: &Alert) -> bool {
        let e = &alert.entities;
        let is = |code: &Option<String>, want: &str| code.as_deref() == Some(want);
        let within = |code: &Option<String>| {
            code.as_deref()
                .is_some_and(|c| self.locations.iter().any(|l| l == c))
        };
        match (self.kind.as_str(), alert.kind) {
            (
                "demand_spike" | "labour_shortfall" | "throughput_drop",
                AnomalyKind::QueueBuildUp,
            ) => is(&e.site, &self.site),
            ("demand_spike", AnomalyKind::DemandSpike)
            | ("throughput_drop", AnomalyKind::ThroughputDrop) => is(&e.site, &self.site),
            ("carrier_region_disruption", AnomalyKind::RegionalCarrierDisruption) => {
                is(&e.carrier, &self.carrier) && is(&e.region, &self.region)
            }
            ("carrier_region_disruption", AnomalyKind::LaneDelay) => {
                is(&e.destination, &self.region)
            }
            ("area_disruption", AnomalyKind::LaneDelay) => {
                within(&e.origin) || within(&e.destination)
            }
            ("area_disruption", AnomalyKind::RegionalCarrierDisruption) => within(&e.region),
            _ => false,
        }
    }
}

/// Reads `truth_anomalies.csv`.
pub fn read(path: &Path) -> anyhow::Result<Vec<Window>> {
    let mut reader = csv::Reader::from_path(path).with_context(|| format!("{}", path.display()))?;
    let mut out = Vec::new();
    for (line, record) in reader.records().enumerate() {
        let record = record.with_context(|| format!("{}: line {}", path.display(), line + 2))?;
        let field = |i: usize| record.get(i).unwrap_or("").to_string();
        let time = |i: usize| -> anyhow::Result<i64> {
            Ok(Timestamp::parse_rfc3339(&field(i))
                .with_context(|| {
                    format!("{}: line {}: time {:?}", path.display(), line + 2, field(i))
                })?
                .0
                / 1000)
        };
        out.push(Window {
            kind: field(0),
            site: field(1),
            carrier: field(2),
            region: field(3),
            locations: field(5).split_whitespace().map(str::to_string).collect(),
            start: time(6)?,
            end: time(7)?,
        });
    }
    Ok(out)
}
