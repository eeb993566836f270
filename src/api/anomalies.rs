//! The `Anomalies` service: the alert log as a resumable stream, the open
//! and recent alerts as a paged list, and acknowledgements.

use std::sync::Arc;

use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::ApiError;
use crate::anomaly::{Alert, AlertStatus, AnomalyKind, Severity};
use crate::monitor::{AlertFilter, Cursor, FeedItem, Logged, Monitor};
use crate::pb;
use crate::pb::anomalies_server::Anomalies;

/// Messages a subscriber's connection buffers before its feed starts to
/// fall behind (and, [`crate::monitor::FEED_CAPACITY`] entries later, ends).
const SUBSCRIBER_BUFFER: usize = 256;
/// Log entries read per round when a subscriber catches up from a cursor.
const CATCH_UP_PAGE: usize = 500;
/// A listing's page size when none is asked for, and the most allowed.
const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 500;
/// Longest acknowledgement note and name.
const MAX_NOTE: usize = 2_000;
const MAX_NAME: usize = 200;

/// gRPC adapter over a [`Monitor`].
#[derive(Debug)]
pub struct AnomaliesService {
    monitor: Arc<Monitor>,
}

impl AnomaliesService {
    /// A service over `monitor`'s alerts.
    pub fn new(monitor: Arc<Monitor>) -> Self {
        AnomaliesService { monitor }
    }
}

type WatchStream = ReceiverStream<Result<pb::AnomalyEvent, Status>>;

#[tonic::async_trait]
impl Anomalies for AnomaliesService {
    type WatchAnomaliesStream = WatchStream;

    async fn watch_anomalies(
        &self,
        request: Request<pb::WatchAnomaliesRequest>,
    ) -> Result<Response<Self::WatchAnomaliesStream>, Status> {
        let request = request.into_inner();
        let filter = filter(&request.kinds, &request.entity, request.min_severity)?;
        let after = match request.cursor.trim() {
            "" if request.until_now => Some(Cursor::START),
            "" => None,
            text => Some(Cursor::parse(text).ok_or_else(|| {
                ApiError::invalid(
                    "cursor",
                    format!("{text:?} is not a cursor (\"<number>-<number>\", or \"0\")"),
                )
            })?),
        };
        // Subscribe before catching up, so nothing falls between the two.
        let live = self.monitor.subscribe();
        let (tx, rx) = mpsc::channel(SUBSCRIBER_BUFFER);
        let monitor = Arc::clone(&self.monitor);
        let follow = !request.until_now;
        tokio::spawn(async move {
            let _ = forward(monitor, filter, after, follow, live, tx).await;
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn list_anomalies(
        &self,
        request: Request<pb::ListAnomaliesRequest>,
    ) -> Result<Response<pb::ListAnomaliesResponse>, Status> {
        let request = request.into_inner();
        let filter = filter(&request.kinds, &request.entity, request.min_severity)?;
        let size = match request.page_size as usize {
            0 => DEFAULT_PAGE,
            n if n > MAX_PAGE => {
                return Err(
                    ApiError::invalid("page_size", format!("at most {MAX_PAGE}, got {n}")).into(),
                );
            }
            n => n,
        };
        let start = match request.page_token.as_str() {
            "" => 0,
            token => token.parse::<usize>().map_err(|_| {
                ApiError::invalid("page_token", "not a token from a previous answer")
            })?,
        };
        let alerts = self
            .monitor
            .list(&filter, request.open_only)
            .await
            .map_err(ApiError::from)?;
        let end = (start + size).min(alerts.len());
        let page = alerts.get(start..end).unwrap_or_default();
        Ok(Response::new(pb::ListAnomaliesResponse {
            anomalies: page.iter().map(anomaly).collect(),
            next_page_token: if end < alerts.len() {
                end.to_string()
            } else {
                String::new()
            },
        }))
    }

    async fn acknowledge_anomaly(
        &self,
        request: Request<pb::AcknowledgeAnomalyRequest>,
    ) -> Result<Response<pb::Anomaly>, Status> {
        let request = request.into_inner();
        if request.id.trim().is_empty() {
            return Err(ApiError::invalid("id", "required: the alert's id").into());
        }
        if request.by.trim().is_empty() {
            return Err(ApiError::invalid("by", "required: who acknowledges").into());
        }
        if request.by.len() > MAX_NAME {
            return Err(ApiError::invalid("by", format!("at most {MAX_NAME} bytes")).into());
        }
        if request.note.len() > MAX_NOTE {
            return Err(ApiError::invalid("note", format!("at most {MAX_NOTE} bytes")).into());
        }
        let alert = self
            .monitor
            .acknowledge(request.id.trim(), request.by.trim(), &request.note)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::NotFound(format!("no alert {:?}", request.id)))?;
        Ok(Response::new(anomaly(&alert)))
    }
}

/// Sends a subscriber what it missed after `after`, then (if it `follow`s)
/// the live feed, each entry once and in log order. Ends when the
/// subscriber goes away, or with an error naming the cursor to resume from.
async fn forward(
    monitor: Arc<Monitor>,
    filter: AlertFilter,
    after: Option<Cursor>,
    follow: bool,
    mut live: broadcast::Receiver<FeedItem>,
    tx: mpsc::Sender<Result<pb::AnomalyEvent, Status>>,
) -> Result<(), ()> {
    let mut last = after;
    if let Some(mut from) = after {
        loop {
            let entries = match monitor.since(from, CATCH_UP_PAGE).await {
                Ok(Ok(entries)) => entries,
                Ok(Err(oldest)) => {
                    let status = Status::out_of_range(format!(
                        "cursor {from} is older than the alert log (its oldest entry is \
                         {oldest}): list the open alerts (ListAnomalies) and watch from cursor \"0\""
                    ));
                    return tx.send(Err(status)).await.map_err(drop);
                }
                Err(error) => {
                    let status = Status::unavailable(format!("{error}; resume with cursor {from}"));
                    return tx.send(Err(status)).await.map_err(drop);
                }
            };
            let Some(newest) = entries.last().map(|e| e.cursor) else {
                break;
            };
            for entry in &entries {
                send(&tx, &filter, entry).await?;
            }
            from = newest;
            last = Some(newest);
        }
    }
    if !follow {
        return Ok(());
    }
    loop {
        let item = tokio::select! {
            item = live.recv() => item,
            () = tx.closed() => return Ok(()),
        };
        match item {
            Ok(FeedItem::Entry(entry)) => {
                if last.is_some_and(|l| entry.cursor <= l) {
                    continue; // sent while catching up
                }
                last = Some(entry.cursor);
                send(&tx, &filter, &entry).await?;
            }
            Ok(FeedItem::Interrupted(reason)) => {
                let status = Status::unavailable(format!(
                    "the alert log is unreachable ({reason}); {}",
                    resume_hint(last)
                ));
                return tx.send(Err(status)).await.map_err(drop);
            }
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                let status = Status::aborted(format!(
                    "this subscriber fell {missed} alert changes behind; {}",
                    resume_hint(last)
                ));
                return tx.send(Err(status)).await.map_err(drop);
            }
            Err(broadcast::error::RecvError::Closed) => return Ok(()),
        }
    }
}

/// How to pick up where a stream ended.
fn resume_hint(last: Option<Cursor>) -> String {
    match last {
        Some(cursor) => format!("resume with cursor {cursor}"),
        // Nothing was sent yet: replaying the whole log is not what the
        // subscriber asked for.
        None => "watch again without a cursor, and list what is open with ListAnomalies".into(),
    }
}

async fn send(
    tx: &mpsc::Sender<Result<pb::AnomalyEvent, Status>>,
    filter: &AlertFilter,
    entry: &Logged,
) -> Result<(), ()> {
    if !filter.matches(&entry.alert) {
        return Ok(());
    }
    tx.send(Ok(pb::AnomalyEvent {
        cursor: entry.cursor.to_string(),
        change: entry.change.name().to_string(),
        anomaly: Some(anomaly(&entry.alert)),
    }))
    .await
    .map_err(drop)
}

/// A filter from a request's fields, each checked.
fn filter(kinds: &[i32], entity: &str, min_severity: i32) -> Result<AlertFilter, ApiError> {
    let kinds = kinds
        .iter()
        .enumerate()
        .map(|(i, &k)| {
            kind_of(k).ok_or_else(|| {
                ApiError::invalid(
                    format!("kinds[{i}]"),
                    format!(
                        "{k} is not an anomaly kind (1 to {})",
                        AnomalyKind::ALL.len()
                    ),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let min_severity = match min_severity {
        0 => None,
        s => Some(severity_of(s).ok_or_else(|| {
            ApiError::invalid("min_severity", format!("{s} is not a severity (1 to 4)"))
        })?),
    };
    let entity = entity.trim();
    if entity.len() > MAX_NAME || entity.contains(|c: char| c.is_control() || c == ':') {
        return Err(ApiError::invalid(
            "entity",
            "a site, carrier, region or location code (no ':' or control characters)",
        ));
    }
    Ok(AlertFilter {
        kinds,
        entity: (!entity.is_empty()).then(|| entity.to_string()),
        min_severity,
    })
}

fn kind_of(value: i32) -> Option<AnomalyKind> {
    Some(match pb::AnomalyKind::try_from(value).ok()? {
        pb::AnomalyKind::Unspecified => return None,
        pb::AnomalyKind::QueueBuildUp => AnomalyKind::QueueBuildUp,
        pb::AnomalyKind::DemandSpike => AnomalyKind::DemandSpike,
        pb::AnomalyKind::ThroughputDrop => AnomalyKind::ThroughputDrop,
        pb::AnomalyKind::RegionalCarrierDisruption => AnomalyKind::RegionalCarrierDisruption,
        pb::AnomalyKind::LaneDelay => AnomalyKind::LaneDelay,
    })
}

fn wire_kind(kind: AnomalyKind) -> pb::AnomalyKind {
    match kind {
        AnomalyKind::QueueBuildUp => pb::AnomalyKind::QueueBuildUp,
        AnomalyKind::DemandSpike => pb::AnomalyKind::DemandSpike,
        AnomalyKind::ThroughputDrop => pb::AnomalyKind::ThroughputDrop,
        AnomalyKind::RegionalCarrierDisruption => pb::AnomalyKind::RegionalCarrierDisruption,
        AnomalyKind::LaneDelay => pb::AnomalyKind::LaneDelay,
    }
}

fn severity_of(value: i32) -> Option<Severity> {
    Some(match pb::AnomalySeverity::try_from(value).ok()? {
        pb::AnomalySeverity::Unspecified => return None,
        pb::AnomalySeverity::Low => Severity::Low,
        pb::AnomalySeverity::Medium => Severity::Medium,
        pb::AnomalySeverity::High => Severity::High,
        pb::AnomalySeverity::Critical => Severity::Critical,
    })
}

fn wire_severity(severity: Severity) -> pb::AnomalySeverity {
    match severity {
        Severity::Low => pb::AnomalySeverity::Low,
        Severity::Medium => pb::AnomalySeverity::Medium,
        Severity::High => pb::AnomalySeverity::High,
        Severity::Critical => pb::AnomalySeverity::Critical,
    }
}

fn time(secs: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: secs,
        nanos: 0,
    }
}

/// An alert as the wire carries it.
fn anomaly(alert: &Alert) -> pb::Anomaly {
    let code = |c: &Option<String>| c.clone().unwrap_or_default();
    pb::Anomaly {
        id: alert.id.clone(),
        kind: wire_kind(alert.kind) as i32,
        severity: wire_severity(alert.severity) as i32,
        worst_severity: wire_severity(alert.worst_severity) as i32,
        status: match alert.status {
            AlertStatus::Open => "open",
            AlertStatus::Resolved => "resolved",
        }
        .to_string(),
        score: alert.score,
        peak_score: alert.peak_score,
        first_seen: Some(time(alert.first_seen)),
        last_updated: Some(time(alert.last_updated)),
        resolved_at: alert.resolved_at.map(time),
        series: alert.series.clone(),
        entities: Some(pb::AnomalyEntities {
            site: code(&alert.entities.site),
            carrier: code(&alert.entities.carrier),
            region: code(&alert.entities.region),
            origin: code(&alert.entities.origin),
            destination: code(&alert.entities.destination),
        }),
        summary: alert.summary.clone(),
        evidence: alert
            .evidence
            .iter()
            .map(|e| pb::AnomalyEvidence {
                name: e.name.clone(),
                value: e.value,
            })
            .collect(),
        recurrence: alert.recurrence,
        action: alert.action.clone(),
        acknowledged: alert.acknowledged.as_ref().map(|a| pb::Acknowledgement {
            by: a.by.clone(),
            note: a.note.clone(),
            at: Some(time(a.at)),
        }),
        at_risk: alert
            .at_risk
            .iter()
            .map(|leg| pb::AtRiskLeg {
                shipment_id: leg.shipment_id.clone(),
                scheduled_departure: Some(time(leg.scheduled_departure)),
                departed: leg.departed,
                reroute: leg.reroute.as_ref().map(|r| pb::SuggestedReroute {
                    carrier: r.option.clone(),
                    risk: r.risk,
                    risk_removed: r.risk_removed,
                    cost_delta: r.cost_delta,
                    new_promise: r.new_promise.map(time),
                }),
            })
            .collect(),
    }
}
