//! History replayed through the service's own ingest path and anomaly
//! monitor, in process and in event time: what `evaluate-anomalies` scores,
//! and the alerts a training replay feeds its decisions
//! ([`crate::replay::ReplaySettings::alerts`], [`disruption_updates`]).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use detour::anomaly::{Alert, Change};
use detour::domain::{Event, EventPayload, Order, Shipment, ShipmentStatus, Timestamp};
use detour::features::aggregates::AggregateUpdate;
use detour::features::{FeatureSettings, InMemoryFeatureStore};
use detour::ingest::{Ingestor, MAX_EVENTS};
use detour::monitor::signal::disruption_update;
use detour::monitor::{FeedItem, Monitor};
use tokio::sync::broadcast::error::TryRecvError;

use crate::replay::History;

const HOUR: i64 = 3_600;

/// The disruption-record writes of every alert change the service's
/// monitor makes over `history` up to `until` (events after it are not
/// ingested), each at its event time.
pub fn disruption_updates(history: &History, until: Timestamp) -> Vec<AggregateUpdate> {
    let mut events = events_in_time_order(history);
    events.retain(|(at, _)| at.saturating_mul(1000) <= until.0);
    let mut updates = Vec::new();
    eprintln!(
        "  replay: running {} events through the anomaly monitor",
        events.len()
    );
    alert_changes(history, &events, &mut |change, alert| {
        updates.extend(disruption_update(change, alert));
    })
    .unwrap_or_else(|error| {
        // The in-memory monitor fails only by publishing more alert changes
        // in one flush than its feed holds: a history this replay cannot
        // take alerts from faithfully.
        panic!("replaying the alerts: {error:#}; train with --without-alerts")
    });
    eprintln!(
        "  replay: {} alert changes on series the carrier model reads",
        updates.len()
    );
    updates
}

/// The history as the service would receive it, each event at the time it
/// became known (Unix s), in time order: an order when created (open), a
/// leg when it left (in transit) and when it finished (a delivery at its
/// arrival, a cancellation at its scheduled departure), a snapshot when
/// taken.
pub fn events_in_time_order(history: &History) -> Vec<(i64, Event)> {
    let mut events: Vec<(i64, Event)> = Vec::new();
    for order in &history.orders {
        let open = Order {
            outcome: None,
            progress: Default::default(),
            ..order.clone()
        };
        events.push((
            order.created_at.0 / 1000,
            Event {
                event_id: format!("{}:created", order.order_id),
                payload: EventPayload::Order(open),
            },
        ));
    }
    for shipment in &history.shipments {
        // Its carrier reports the pickup when it happens.
        if let Some(left) = shipment.actual_departure {
            let moving = Shipment {
                status: ShipmentStatus::InTransit,
                actual_arrival: None,
                ..shipment.clone()
            };
            events.push((
                left.0 / 1000,
                Event {
                    event_id: format!("{}:left", shipment.shipment_id),
                    payload: EventPayload::Shipment(moving),
                },
            ));
        }
        let Some(outcome) = shipment.outcome(FeatureSettings::default().sla_grace_minutes) else {
            continue;
        };
        events.push((
            outcome.known_at.0 / 1000,
            Event {
                event_id: shipment.shipment_id.clone(),
                payload: EventPayload::Shipment(shipment.clone()),
            },
        ));
    }
    for snapshot in &history.snapshots {
        events.push((
            snapshot.at.0 / 1000,
            Event {
                event_id: format!("{}@{}", snapshot.site, snapshot.at.0),
                payload: EventPayload::Site(snapshot.clone()),
            },
        ));
    }
    events.sort_by_key(|(at, _)| *at);
    events
}

/// Ingests `events` (in time order) an hour at a time, each hour received
/// at its end, through the service's ingest and in-memory monitor (swept
/// once an hour, where the service sweeps every minute), and calls
/// `on_change` with every alert change the monitor publishes, in log order.
/// Each change is stamped with the event time of the point that made it,
/// so nothing in it is known only later. Runs on a thread of its own, so a
/// caller inside a Tokio runtime (a test, a server) may call it too.
pub fn alert_changes(
    history: &History,
    events: &[(i64, Event)],
    on_change: &mut (dyn FnMut(Change, &Alert) + Send),
) -> anyhow::Result<()> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| run_through_service(history, events, on_change))
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

fn run_through_service(
    history: &History,
    events: &[(i64, Event)],
    on_change: &mut (dyn FnMut(Change, &Alert) + Send),
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let store = Arc::new(InMemoryFeatureStore::new(Duration::from_secs(400 * 86_400)));
        let monitor = Arc::new(Monitor::in_memory(Arc::new(history.network.clone())));
        let mut feed = monitor.subscribe();
        let ingestor =
            Ingestor::new(store, FeatureSettings::default()).with_monitor(Arc::clone(&monitor));
        let mut start = 0;
        while start < events.len() {
            let hour = events[start].0.div_euclid(HOUR);
            let mut end = start;
            while end < events.len()
                && events[end].0.div_euclid(HOUR) == hour
                && end - start < MAX_EVENTS
            {
                end += 1;
            }
            let batch = events[start..end]
                .iter()
                .map(|(_, e)| Ok(e.clone()))
                .collect();
            ingestor
                .ingest_received(batch, Timestamp((hour + 1) * HOUR * 1000))
                .await
                .context("replaying through ingest")?;
            monitor.flush().await.context("running the detectors")?;
            drain(&mut feed, on_change)?;
            if monitor.sweep().await.context("sweeping")? > 0 {
                monitor.flush().await.context("running the detectors")?;
                drain(&mut feed, on_change)?;
            }
            start = end;
        }
        Ok(())
    })
}

/// Hands `on_change` every alert change the feed holds; an error if the
/// feed lost some (more changes in one flush than it holds).
fn drain(
    feed: &mut tokio::sync::broadcast::Receiver<FeedItem>,
    on_change: &mut (dyn FnMut(Change, &Alert) + Send),
) -> anyhow::Result<()> {
    loop {
        match feed.try_recv() {
            Ok(FeedItem::Entry(entry)) => on_change(entry.change, &entry.alert),
            Ok(_) => {}
            Err(TryRecvError::Empty) => return Ok(()),
            Err(error) => anyhow::bail!("alert changes lost in the replay: {error}"),
        }
    }
}
