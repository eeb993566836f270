//! Open alerts as model inputs: an alert change on a series a leg's risk
//! depends on (a carrier into a region, a lane, a destination) becomes a
//! write of that series' disruption record in the feature store, which the
//! carrier model reads like any other record. The service writes it when
//! the change is committed; training writes it, through this same
//! function, at the change's event time while it replays history.

use super::series::SeriesId;
use crate::anomaly::{Alert, AlertStatus, Change, Severity};
use crate::features::aggregates::{AggregateKey, AggregateUpdate, MAX_GAUGES, disruption_gauges};
use crate::features::{EventUpdates, FeatureError};

/// The disruption record a series' alerts are written to, if the carrier
/// model reads that series.
pub fn disruption_key(series: &SeriesId) -> Option<AggregateKey> {
    match series {
        SeriesId::CarrierRegion(carrier, region) => {
            Some(AggregateKey::carrier_region_alert(carrier, region))
        }
        SeriesId::Lane(origin, destination) => Some(AggregateKey::lane_alert(origin, destination)),
        SeriesId::Inbound(destination) => Some(AggregateKey::inbound_alert(destination)),
        SeriesId::SiteIntake(_)
        | SeriesId::SiteBacklog(_)
        | SeriesId::SiteThroughput(_)
        | SeriesId::Outbound(_) => None,
    }
}

/// A severity as the number a model reads: 1 (low) to 4 (critical).
pub fn severity_level(severity: Severity) -> f64 {
    match severity {
        Severity::Low => 1.0,
        Severity::Medium => 2.0,
        Severity::High => 3.0,
        Severity::Critical => 4.0,
    }
}

/// The write that `change` of `alert` makes to its series' disruption
/// record, at the change's event time: the severity and opening time while
/// it is open, zeros once it resolved. `None` for an acknowledgement (it
/// changes no risk) and for a series no model reads.
pub fn disruption_update(change: Change, alert: &Alert) -> Option<AggregateUpdate> {
    if change == Change::Acknowledged {
        return None;
    }
    let key = disruption_key(&SeriesId::parse(&alert.series)?)?;
    let mut gauges = [0.0; MAX_GAUGES];
    let at = match (alert.status, alert.resolved_at) {
        (AlertStatus::Resolved, Some(resolved)) => resolved,
        (AlertStatus::Resolved, None) => alert.last_updated,
        (AlertStatus::Open, _) => {
            gauges[disruption_gauges::SEVERITY] = severity_level(alert.severity);
            gauges[disruption_gauges::OPENED_AT] = alert.first_seen as f64;
            alert.last_updated
        }
    };
    Some(AggregateUpdate {
        key,
        at: at as f64,
        increments: Default::default(),
        gauges: Some(gauges),
    })
}

/// [`disruption_update`] as an event a feature store applies once: its id
/// names the alert, the change and its time, so a change written again
/// (a retried write) is a duplicate.
pub fn disruption_event(change: Change, alert: &Alert) -> Option<EventUpdates> {
    let update = disruption_update(change, alert)?;
    Some(EventUpdates {
        event_id: format!(
            "alert:{}:{}:{}:{}",
            alert.id,
            change.name(),
            update.at,
            alert.severity.name()
        ),
        updates: vec![update],
        facts: Vec::new(),
        entity: None,
        lane_carrier: None,
    })
}

/// Where committed alert changes' disruption events go (the service's
/// feature store); a failed write is logged, and the record catches up with
/// the alert's next change (an open alert is written at least hourly).
pub type Signal = std::sync::Arc<
    dyn Fn(
            Vec<EventUpdates>,
        ) -> std::pin::Pin<Box<dyn Future<Output = Result<(), FeatureError>> + Send>>
        + Send
        + Sync,
>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_series_a_leg_reads_has_the_key_its_features_read() {
        let read = [
            (
                SeriesId::CarrierRegion("UPS".into(), "ATL".into()),
                AggregateKey::carrier_region_alert("UPS", "ATL"),
            ),
            (
                SeriesId::Lane("JFK".into(), "ATL".into()),
                AggregateKey::lane_alert("JFK", "ATL"),
            ),
            (
                SeriesId::Inbound("ATL".into()),
                AggregateKey::inbound_alert("ATL"),
            ),
        ];
        for (series, key) in read {
            assert_eq!(disruption_key(&series), Some(key.clone()));
            // The record's id is the series' own key: one name for both.
            assert_eq!(key.id, series.key());
        }
        assert_eq!(disruption_key(&SeriesId::SiteBacklog("ATL".into())), None);
    }

    fn alert(series: &str, status: AlertStatus) -> Alert {
        Alert {
            id: format!("{series}@100"),
            kind: crate::anomaly::AnomalyKind::RegionalCarrierDisruption,
            severity: Severity::High,
            worst_severity: Severity::High,
            status,
            score: 0.9999,
            peak_score: 0.9999,
            first_seen: 100,
            last_updated: 200,
            resolved_at: (status == AlertStatus::Resolved).then_some(300),
            series: series.to_string(),
            entities: Default::default(),
            summary: String::new(),
            evidence: Vec::new(),
            recurrence: 0,
            action: String::new(),
            at_risk: Vec::new(),
            acknowledged: None,
        }
    }

    #[test]
    fn an_open_alert_writes_its_severity_and_a_resolution_clears_it() {
        let open = alert("carrier_region:UPS:ATL", AlertStatus::Open);
        let update = disruption_update(Change::Opened, &open).unwrap();
        assert_eq!(update.key, AggregateKey::carrier_region_alert("UPS", "ATL"));
        assert_eq!(update.at, 200.0);
        let gauges = update.gauges.unwrap();
        assert_eq!(gauges[disruption_gauges::SEVERITY], 3.0);
        assert_eq!(gauges[disruption_gauges::OPENED_AT], 100.0);

        let resolved = alert("carrier_region:UPS:ATL", AlertStatus::Resolved);
        let update = disruption_update(Change::Resolved, &resolved).unwrap();
        assert_eq!((update.at, update.gauges), (300.0, Some([0.0; MAX_GAUGES])));

        // An acknowledgement changes no risk; a site's alert is no leg's.
        assert_eq!(disruption_update(Change::Acknowledged, &open), None);
        let site = alert("site_backlog:ATL", AlertStatus::Open);
        assert_eq!(disruption_update(Change::Opened, &site), None);
        // Each change is its own event; the same change again is a duplicate.
        let first = disruption_event(Change::Opened, &open).unwrap();
        let again = disruption_event(Change::Opened, &open).unwrap();
        let later = disruption_event(Change::Resolved, &resolved).unwrap();
        assert_eq!(first.event_id, again.event_id);
        assert_ne!(first.event_id, later.event_id);
    }
}
