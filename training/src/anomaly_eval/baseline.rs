//! The plain baseline detection is compared with: a rolling z-score of each
//! series' value against its previous week of points (mean and standard
//! deviation of up to 168 points), turned into a score by the normal CDF so
//! that the same episode rules open and close its alerts; and the same
//! series built from the same events as the monitor's.

use std::collections::{HashMap, VecDeque};

use detour::anomaly::{
    Alert, AlertStatus, AnomalyKind, EpisodeRules, Episodes, Severity, Transition,
};
use detour::domain::{Event, EventPayload, ShipmentStatus};
use detour::features::FeatureSettings;

const HOUR: i64 = 3_600;

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

/// The baseline's alerts: a rolling z-score per series (the same series
/// the monitor keeps, built from the same events), opened and closed by the
/// same episode rules.
pub(super) fn alerts(events: &[(i64, Event)]) -> Vec<Alert> {
    let grace = FeatureSettings::default().sla_grace_minutes;
    let mut series: HashMap<(AnomalyKind, String, String), BaselineSeries> = HashMap::new();
    let mut out = Vec::new();
    for (at, event) in events {
        match &event.payload {
            EventPayload::Order(order) => {
                let hour = at.div_euclid(HOUR);
                let s = series
                    .entry((AnomalyKind::DemandSpike, order.site.clone(), String::new()))
                    .or_default();
                let closed = match s.hour {
                    Some((h, n)) if h < hour => {
                        s.hour = Some((hour, 1.0));
                        Some((h, n))
                    }
                    Some((h, n)) => {
                        s.hour = Some((h, n + 1.0));
                        None
                    }
                    None => {
                        s.hour = Some((hour, 1.0));
                        None
                    }
                };
                if let Some((h, n)) = closed {
                    let score = s.z.observe(n, true);
                    s.step(
                        AnomalyKind::DemandSpike,
                        &order.site,
                        "",
                        (h + 1) * HOUR - 1,
                        score,
                        &mut out,
                    );
                }
            }
            EventPayload::Site(snapshot) => {
                let s = series
                    .entry((
                        AnomalyKind::QueueBuildUp,
                        snapshot.site.clone(),
                        String::new(),
                    ))
                    .or_default();
                let score = s.z.observe(snapshot.backlog, true);
                s.step(
                    AnomalyKind::QueueBuildUp,
                    &snapshot.site,
                    "",
                    *at,
                    score,
                    &mut out,
                );
                if snapshot.labour > 0.0 {
                    let value =
                        snapshot.units_picked / (snapshot.period_minutes / 60.0) / snapshot.labour;
                    let s = series
                        .entry((
                            AnomalyKind::ThroughputDrop,
                            snapshot.site.clone(),
                            String::new(),
                        ))
                        .or_default();
                    let score = s.z.observe(value, false);
                    s.step(
                        AnomalyKind::ThroughputDrop,
                        &snapshot.site,
                        "",
                        *at,
                        score,
                        &mut out,
                    );
                }
            }
            EventPayload::Shipment(shipment) => {
                let hour = at.div_euclid(HOUR);
                let finished = shipment.outcome(grace);
                let points: Vec<(AnomalyKind, &str, &str, f64)> = match (shipment.status, finished)
                {
                    (ShipmentStatus::InTransit, _) => {
                        let late = shipment.actual_departure.map_or(0.0, |left| {
                            left.hours_since(shipment.scheduled_departure) * 60.0
                        });
                        vec![(
                            AnomalyKind::LaneDelay,
                            shipment.origin.as_str(),
                            "",
                            f64::from(u8::from(late > grace)),
                        )]
                    }
                    (_, Some(outcome)) => {
                        let failed = f64::from(u8::from(outcome.failed));
                        vec![
                            (
                                AnomalyKind::RegionalCarrierDisruption,
                                shipment.carrier.as_str(),
                                shipment.destination.as_str(),
                                failed,
                            ),
                            (
                                AnomalyKind::LaneDelay,
                                shipment.origin.as_str(),
                                shipment.destination.as_str(),
                                failed,
                            ),
                            (
                                AnomalyKind::LaneDelay,
                                "",
                                shipment.destination.as_str(),
                                failed,
                            ),
                        ]
                    }
                    _ => Vec::new(),
                };
                for (kind, a, b, failed) in points {
                    let s = series
                        .entry((kind, a.to_string(), b.to_string()))
                        .or_default();
                    s.cells.retain(|c| c.0 > hour - 3);
                    match s.cells.iter_mut().find(|c| c.0 == hour) {
                        Some(c) => {
                            c.1 += failed;
                            c.2 += 1.0;
                        }
                        None => s.cells.push((hour, failed, 1.0)),
                    }
                    let (k, n) = s
                        .cells
                        .iter()
                        .fold((0.0, 0.0), |(k, n), c| (k + c.1, n + c.2));
                    let score = s.z.observe(k / n, true);
                    s.step(kind, a, b, *at, score, &mut out);
                }
            }
            EventPayload::Inventory(_) => {}
        }
    }
    out
}

/// One series of the baseline.
#[derive(Default)]
struct BaselineSeries {
    z: RollingZ,
    episodes: Episodes,
    /// Rate series: hours of (failed, finished) in the window.
    cells: Vec<(i64, f64, f64)>,
    /// Count series: the open hour and its count.
    hour: Option<(i64, f64)>,
}

impl BaselineSeries {
    /// One scored point through the episode rules; an opening is an alert.
    fn step(
        &mut self,
        kind: AnomalyKind,
        a: &str,
        b: &str,
        at: i64,
        score: f64,
        out: &mut Vec<Alert>,
    ) {
        let rules = EpisodeRules::default();
        let id = format!("{}:{a}:{b}", kind.name());
        match self.episodes.step(&id, at, score, 1, &rules) {
            Some(Transition::Opened) => out.push(baseline_alert(kind, a, b, at, score)),
            Some(Transition::Resolved) => {
                self.episodes.close();
            }
            _ => {}
        }
    }
}

fn baseline_alert(kind: AnomalyKind, a: &str, b: &str, at: i64, score: f64) -> Alert {
    let some = |c: &str| Some(c.to_string());
    let entities = match kind {
        AnomalyKind::RegionalCarrierDisruption => detour::anomaly::Entities {
            carrier: some(a),
            region: some(b),
            ..Default::default()
        },
        AnomalyKind::LaneDelay => detour::anomaly::Entities {
            origin: Some(a.to_string()).filter(|c| !c.is_empty()),
            destination: Some(b.to_string()).filter(|c| !c.is_empty()),
            ..Default::default()
        },
        _ => detour::anomaly::Entities {
            site: some(a),
            ..Default::default()
        },
    };
    Alert {
        id: format!("{}:{a}:{b}@{at}", kind.name()),
        kind,
        severity: Severity::Medium,
        worst_severity: Severity::Medium,
        status: AlertStatus::Open,
        score,
        peak_score: score,
        first_seen: at,
        last_updated: at,
        resolved_at: None,
        series: format!("{}:{a}:{b}", kind.name()),
        entities,
        summary: String::new(),
        evidence: Vec::new(),
        recurrence: 0,
        action: String::new(),
        at_risk: Vec::new(),
        acknowledged: None,
    }
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
