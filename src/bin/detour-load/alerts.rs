//! The `alerts` mode: how long an alert takes to reach a `WatchAnomalies`
//! subscriber after the ingest call that triggered it returns. Each round
//! gives a fresh region a carrier's ordinary history (sixty legs, one in
//! twelve failed, the last a day before now) and three legs still to leave
//! (the alert lists them, each with the planner's answer), then eight
//! failed legs at once; the latency is from that call's answer to the opening's arrival on
//! a stream subscribed before the first round (0 when the alert arrived
//! first: the server publishes it before answering).
//!
//! And `--watchers`: subscribers held open, idle but live, during any mode.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use detour::pb;
use tokio::sync::mpsc;
use tonic::transport::Channel;

use crate::worker::Tally;

const HOUR_MS: i64 = 3_600_000;

fn leg(id: String, region: &str, arrival_ms: i64, failed: bool) -> pb::Event {
    let at = |ms: i64| {
        Some(detour::api::convert::wire_time(detour::domain::Timestamp(
            ms,
        )))
    };
    let actual = if failed {
        arrival_ms + 3 * HOUR_MS
    } else {
        arrival_ms - 300_000
    };
    pb::Event {
        event_id: id.clone(),
        payload: Some(pb::event::Payload::Shipment(pb::Shipment {
            shipment_id: id,
            carrier: "XPO".into(),
            origin: "ATL".into(),
            destination: region.into(),
            scheduled_departure: at(arrival_ms - 10 * HOUR_MS),
            scheduled_arrival: at(arrival_ms),
            actual_departure: at(arrival_ms - 10 * HOUR_MS),
            actual_arrival: at(actual),
            status: pb::ShipmentStatus::Delivered as i32,
            ..Default::default()
        })),
    }
}

/// Runs rounds until `limit` or `stop_at`; the tally holds each round's
/// latency in microseconds.
pub async fn run(
    channel: Channel,
    watch: Channel,
    limit: u64,
    stop_at: Instant,
) -> anyhow::Result<Tally> {
    let mut anomalies = pb::anomalies_client::AnomaliesClient::new(watch);
    let mut ingest = pb::event_ingest_client::EventIngestClient::new(channel);
    let mut stream = anomalies
        .watch_anomalies(pb::WatchAnomaliesRequest {
            kinds: vec![pb::AnomalyKind::RegionalCarrierDisruption as i32],
            ..Default::default()
        })
        .await
        .context("subscribing")?
        .into_inner();
    let (tx, mut arrivals) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(Some(event)) = stream.message().await {
            let region = event
                .anomaly
                .and_then(|a| a.entities)
                .map(|e| e.region)
                .unwrap_or_default();
            if event.change == "opened" && tx.send((region, Instant::now())).is_err() {
                break;
            }
        }
    });
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let mut seen: HashMap<String, Instant> = HashMap::new();
    let mut tally = Tally::default();
    let mut round = 0u64;
    while round < limit && Instant::now() < stop_at {
        let region = format!("AL{run}R{round}");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis() as i64;
        let history = (0..60)
            .map(|j| {
                let arrival = now - (84 - j) * HOUR_MS;
                leg(format!("{region}-h{j}"), &region, arrival, j % 12 == 0)
            })
            .collect();
        // And three legs still to leave, which the alert will list with
        // the planner's answer for each (so its cost is in the latency).
        let mut history: Vec<pb::Event> = history;
        for j in 0..3 {
            let departure = now + (2 + j) * HOUR_MS;
            let at = |ms: i64| {
                Some(detour::api::convert::wire_time(detour::domain::Timestamp(
                    ms,
                )))
            };
            let id = format!("{region}-p{j}");
            history.push(pb::Event {
                event_id: id.clone(),
                payload: Some(pb::event::Payload::Shipment(pb::Shipment {
                    shipment_id: id,
                    carrier: "XPO".into(),
                    origin: "ATL".into(),
                    destination: region.clone(),
                    scheduled_departure: at(departure),
                    scheduled_arrival: at(departure + 10 * HOUR_MS),
                    status: pb::ShipmentStatus::Planned as i32,
                    ..Default::default()
                })),
            });
        }
        ingest
            .ingest_events(pb::IngestEventsRequest { events: history })
            .await
            .context("ingesting history")?;
        // Failed legs known in the last hour (due four hours ago, three late).
        let burst = (0..8)
            .map(|j| {
                leg(
                    format!("{region}-b{j}"),
                    &region,
                    now - 4 * HOUR_MS + j * 60_000,
                    true,
                )
            })
            .collect();
        ingest
            .ingest_events(pb::IngestEventsRequest { events: burst })
            .await
            .context("ingesting the burst")?;
        let answered = Instant::now();
        let deadline = answered + Duration::from_secs(2);
        let arrived = loop {
            if let Some(at) = seen.remove(&region) {
                break Some(at);
            }
            match tokio::time::timeout_at(deadline.into(), arrivals.recv()).await {
                Ok(Some((r, at))) => {
                    seen.insert(r, at);
                }
                _ => break None,
            }
        };
        match arrived {
            Some(at) => tally
                .latencies
                .push(at.saturating_duration_since(answered).as_micros() as u32),
            None => {
                tally.errors += 1;
                tally
                    .first_error
                    .get_or_insert_with(|| format!("no alert for {region} within 2 s"));
            }
        }
        round += 1;
    }
    Ok(tally)
}

/// Opens `count` subscribers over `channels` and keeps them reading until
/// the process ends.
pub async fn hold_watchers(channels: &[Channel], count: usize) -> anyhow::Result<()> {
    for i in 0..count {
        let mut client =
            pb::anomalies_client::AnomaliesClient::new(channels[i % channels.len()].clone());
        let mut stream = client
            .watch_anomalies(pb::WatchAnomaliesRequest::default())
            .await
            .context("opening a watcher")?
            .into_inner();
        tokio::spawn(async move { while let Ok(Some(_)) = stream.message().await {} });
    }
    Ok(())
}
