//! The one ingest path: every source of events — the gRPC `EventIngest`
//! handler today, a Redis Streams consumer or a file replay tomorrow, tests
//! always — hands its events to [`Ingestor::ingest`], which dates them by
//! their reception, applies the valid ones to the feature store in one call
//! (each backend folds them into one change per record) and counts what
//! happened.
//!
//! Boundary: speaks domain types. Decoding and validating a source's format
//! (protobuf, a stream entry, a CSV row) into [`Event`]s is the source's job,
//! done before this is called; what could not be validated arrives as an
//! [`Invalid`] and is reported back in order, never dropped silently.

use std::sync::Arc;

use tracing::Instrument;

use crate::domain::{Event, EventPayload, Timestamp};
use crate::features::{
    ApplyOutcome, EventUpdates, FeatureError, FeatureSettings, FeatureStore, updates_received,
    with_facts,
};
use crate::registry::ModelRegistry;
use crate::schema::RiskKind;

/// Most events one call may carry.
pub const MAX_EVENTS: usize = 10_000;

/// An event its source could not validate.
#[derive(Debug, Clone, PartialEq)]
pub struct Invalid {
    /// The id the source gave it (may be empty or itself invalid).
    pub event_id: String,
    /// The field at fault, as the source names it (`"events[3].shipment.carrier"`).
    pub field: String,
    /// What is wrong with it, in words that can be shown to the sender.
    pub reason: String,
}

/// An event not applied because it was invalid, and where it was in the call.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    /// Position of the event in the call.
    pub index: usize,
    /// Which event, which field and why.
    pub invalid: Invalid,
}

/// What one call did. Every event is counted once: accepted, duplicate or
/// rejected.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IngestSummary {
    /// Valid events applied now.
    pub accepted: usize,
    /// Valid events whose id was seen before; they changed nothing.
    pub duplicate: usize,
    /// Invalid events, in call order.
    pub rejections: Vec<Rejection>,
}

/// Why a call was not applied. Nothing of it is acknowledged; retrying the
/// whole call is safe (ingest is idempotent by event id).
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The call carried no events.
    #[error("at least one event is required")]
    Empty,
    /// The call carried more than [`MAX_EVENTS`].
    #[error("at most {MAX_EVENTS} events per call, got {0}")]
    TooMany(usize),
    /// The store could not apply the valid events.
    #[error(
        "{source}; none of the {valid} valid events is acknowledged: retry the call \
         (ingest is idempotent by event_id)"
    )]
    Store {
        /// How many valid events the call held.
        valid: usize,
        /// Why the store failed.
        source: FeatureError,
    },
}

/// Whether a call of `count` events may be taken: at least one, at most
/// [`MAX_EVENTS`]. A source checks this before decoding a call, so an
/// oversized one costs nothing; [`Ingestor::ingest`] checks it again.
pub fn check_count(count: usize) -> Result<(), IngestError> {
    match count {
        0 => Err(IngestError::Empty),
        n if n > MAX_EVENTS => Err(IngestError::TooMany(n)),
        _ => Ok(()),
    }
}

/// Applies events to a feature store under the settings that give them meaning.
#[derive(Debug)]
pub struct Ingestor<S> {
    store: Arc<S>,
    settings: FeatureSettings,
    outcomes: Option<Arc<ModelRegistry>>,
}

impl<S: FeatureStore> Ingestor<S> {
    /// An ingestor writing to `store`.
    pub fn new(store: Arc<S>, settings: FeatureSettings) -> Self {
        Ingestor {
            store,
            settings,
            outcomes: None,
        }
    }

    /// Reports the outcomes of orders and shipment legs to the registry's
    /// running comparisons (a candidate against the active model), once they
    /// are applied.
    pub fn with_outcomes(mut self, registry: Arc<ModelRegistry>) -> Self {
        self.outcomes = Some(registry);
        self
    }

    /// Applies the valid events of one call, received now, in order.
    pub async fn ingest(
        &self,
        events: Vec<Result<Event, Invalid>>,
    ) -> Result<IngestSummary, IngestError> {
        self.ingest_received(events, Timestamp::now()).await
    }

    /// Applies the valid events of one call received at `received_at`: no fact
    /// is dated after it (see [`updates_received`]).
    pub async fn ingest_received(
        &self,
        events: Vec<Result<Event, Invalid>>,
        received_at: Timestamp,
    ) -> Result<IngestSummary, IngestError> {
        check_count(events.len())?;
        let total = events.len();
        let mut rejections = Vec::new();
        let mut valid: Vec<EventUpdates> = Vec::with_capacity(total);
        let comparing = self.outcomes.as_ref().filter(|r| r.comparing());
        let mut outcomes = Vec::new();
        for (index, event) in events.into_iter().enumerate() {
            match event {
                Ok(event) => {
                    if comparing.is_some()
                        && let Some(outcome) = outcome_of(&event, self.settings.sla_grace_minutes)
                    {
                        // With the event's place among the valid ones.
                        outcomes.push((valid.len(), outcome));
                    }
                    valid.push(updates_received(&event, &self.settings, received_at));
                }
                Err(invalid) => rejections.push(Rejection { index, invalid }),
            }
        }
        let span = tracing::info_span!(
            "apply",
            backend = self.store.backend_name(),
            events = total,
            rejected = rejections.len()
        );
        let valid_count = valid.len();
        let (run, positions) = with_facts(valid);
        let applied = self
            .store
            .apply(&run)
            .instrument(span)
            .await
            .map_err(|source| {
                tracing::warn!(error = %source, events = valid_count, "ingest not applied");
                IngestError::Store {
                    valid: valid_count,
                    source,
                }
            })?;
        let accepted = positions
            .iter()
            .filter(|&&i| applied[i] == ApplyOutcome::Applied)
            .count();
        if let Some(registry) = comparing {
            // Only what was applied now: not a duplicate, not a stale report.
            for (at, (kind, id, adverse)) in outcomes {
                if applied[positions[at]] == ApplyOutcome::Applied {
                    registry.observe_outcome(kind, &id, adverse);
                }
            }
        }
        Ok(IngestSummary {
            accepted,
            duplicate: positions.len() - accepted,
            rejections,
        })
    }

    /// The store events are applied to.
    pub fn store(&self) -> &S {
        &self.store
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::domain::{EventPayload, InventoryPosition};
    use crate::features::{AggregateKey, InMemoryFeatureStore};

    fn stock(id: &str, on_hand: f64) -> Result<Event, Invalid> {
        Ok(Event {
            event_id: id.into(),
            payload: EventPayload::Inventory(InventoryPosition {
                site: "ATL".into(),
                sku: "SKU-1".into(),
                on_hand,
                at: Timestamp(1_790_000_000_000),
            }),
        })
    }

    fn ingestor() -> Ingestor<InMemoryFeatureStore> {
        let store = InMemoryFeatureStore::new(Duration::from_secs(3600));
        Ingestor::new(Arc::new(store), FeatureSettings::default())
    }

    #[tokio::test]
    async fn counts_accepted_duplicate_and_rejected_and_applies_the_valid() {
        let ingestor = ingestor();
        let bad = Invalid {
            event_id: "e-bad".into(),
            field: "events[1].inventory.sku".into(),
            reason: "is required".into(),
        };
        let summary = ingestor
            .ingest(vec![stock("e1", 5.0), Err(bad.clone()), stock("e1", 9.0)])
            .await
            .unwrap();
        assert_eq!(summary.accepted, 1);
        assert_eq!(summary.duplicate, 1, "the same id twice in one call");
        assert_eq!(
            summary.rejections,
            [Rejection {
                index: 1,
                invalid: bad
            }]
        );
        let key = AggregateKey::inventory("ATL", "SKU-1");
        let record = ingestor.store().fetch(&[key]).await.unwrap()[0].expect("applied");
        let on_hand = record
            .gauge(crate::features::aggregates::ON_HAND)
            .unwrap()
            .0;
        assert_eq!(on_hand, 5.0, "the duplicate changed nothing");

        let again = ingestor.ingest(vec![stock("e1", 7.0)]).await.unwrap();
        assert_eq!((again.accepted, again.duplicate), (0, 1));
    }

    #[tokio::test]
    async fn an_empty_or_oversized_call_is_refused_whole() {
        let ingestor = ingestor();
        assert!(matches!(
            ingestor.ingest(Vec::new()).await,
            Err(IngestError::Empty)
        ));
        let many = (0..=MAX_EVENTS)
            .map(|i| stock(&format!("e{i}"), 1.0))
            .collect();
        assert!(matches!(
            ingestor.ingest(many).await,
            Err(IngestError::TooMany(n)) if n == MAX_EVENTS + 1
        ));
    }
}

/// A leg's life reported stage by stage, in order or not, and with stages
/// repeated: each stage counts once and the stored leg is its latest stage.
#[cfg(test)]
mod lifecycle {
    use std::time::Duration;

    use super::*;
    use crate::domain::{EventPayload, Shipment, ShipmentStatus};
    use crate::features::aggregates::{
        WindowId, movement_counters as mc, shipment_counters as sc, slot_counters, slot_of,
    };
    use crate::features::{AggregateKey, Entity, EntityKey, FetchRequest, InMemoryFeatureStore};

    const DUE: Timestamp = Timestamp(1_790_000_000_000);

    fn report(id: &str, status: ShipmentStatus) -> Result<Event, Invalid> {
        let left = (status != ShipmentStatus::Planned).then(|| DUE.plus_minutes(30.0));
        Ok(Event {
            event_id: id.into(),
            payload: EventPayload::Shipment(Shipment {
                tracking: Default::default(),
                shipment_id: "L-1".into(),
                carrier: "XPO".into(),
                origin: "ATL".into(),
                destination: "JFK".into(),
                scheduled_departure: DUE,
                scheduled_arrival: DUE.plus_minutes(300.0),
                actual_departure: left,
                actual_arrival: (status == ShipmentStatus::Delivered)
                    .then(|| DUE.plus_minutes(340.0)),
                status,
            }),
        })
    }

    async fn counted(order: &[(&str, ShipmentStatus)]) -> (Vec<f64>, Option<Entity>) {
        let store = Arc::new(InMemoryFeatureStore::new(Duration::from_secs(3600)));
        let ingestor = Ingestor::new(Arc::clone(&store), FeatureSettings::default());
        for &(id, status) in order {
            let summary = ingestor
                .ingest_received(vec![report(id, status)], DUE.plus_minutes(600.0))
                .await
                .unwrap();
            assert_eq!(summary.accepted, 1, "{id}");
        }
        let t = DUE.plus_minutes(600.0).as_secs_f64();
        let left = DUE.plus_minutes(30.0).as_secs_f64();
        let records = store.fetch_now(&[
            AggregateKey::departures("ATL"),
            AggregateKey::departure_slot("ATL", slot_of(DUE.as_secs_f64())),
            AggregateKey::carrier("XPO"),
        ]);
        let [departures, slot, carrier] = [0, 1, 2].map(|i| records[i].expect("written"));
        let counts = vec![
            // Read when each was counted, so nothing has decayed.
            departures.counter(mc::MOVED, WindowId::DEPARTURE_DAY, left),
            departures.counter(mc::LATE, WindowId::DEPARTURE_DAY, left),
            slot.counter(slot_counters::PLANNED, WindowId::COUNT, t),
            slot.counter(slot_counters::GONE, WindowId::COUNT, t),
            carrier.counter(
                sc::DONE,
                WindowId::MONTH,
                DUE.plus_minutes(340.0).as_secs_f64(),
            ),
        ];
        let entity = store
            .fetch_all(&FetchRequest {
                records: Vec::new(),
                lanes: Vec::new(),
                entities: vec![EntityKey::Shipment("L-1".into())],
            })
            .await
            .unwrap()
            .entities
            .pop()
            .flatten();
        (counts, entity)
    }

    #[tokio::test]
    async fn each_stage_counts_once_and_the_latest_stage_is_kept() {
        use ShipmentStatus::*;
        let in_order = [
            ("p", Planned),
            ("d", InTransit),
            ("v", Delivered),
            ("p2", Planned),
        ];
        let reversed = [
            ("v", Delivered),
            ("d", InTransit),
            ("p", Planned),
            ("d2", InTransit),
        ];
        for order in [&in_order[..], &reversed[..]] {
            let (counts, entity) = counted(order).await;
            for (name, value) in ["departed", "late", "planned", "gone", "done"]
                .iter()
                .zip(&counts)
            {
                assert!(
                    (value - 1.0).abs() < 1e-9,
                    "{name} counted {value} times: {order:?}"
                );
            }
            assert!(
                matches!(entity, Some(Entity::Shipment(s)) if s.status == Delivered),
                "{order:?}"
            );
        }
    }

    async fn entity(store: &InMemoryFeatureStore, key: EntityKey) -> Option<Entity> {
        store
            .fetch_all(&FetchRequest {
                records: Vec::new(),
                lanes: Vec::new(),
                entities: vec![key],
            })
            .await
            .unwrap()
            .entities
            .pop()
            .flatten()
    }

    /// A carrier's reports flag a leg once however many say so, the later
    /// report is kept whatever the order they arrive in, and a report that
    /// does not say when it was made counts when it is received.
    #[tokio::test]
    async fn a_leg_is_flagged_once_and_the_later_report_wins() {
        use crate::domain::Tracking;
        let tracked = |id: &str, exception: Option<&str>, eta: f64, reported: Option<f64>| {
            let mut event = report(id, ShipmentStatus::InTransit).unwrap();
            if let EventPayload::Shipment(s) = &mut event.payload {
                s.tracking = Tracking {
                    exception: exception.map(str::to_string),
                    estimated_arrival: Some(DUE.plus_minutes(eta)),
                    reported_at: reported.map(|m| DUE.plus_minutes(m)),
                };
            }
            Ok(event)
        };
        let received = DUE.plus_minutes(600.0);
        let store = Arc::new(InMemoryFeatureStore::new(Duration::from_secs(3600)));
        let ingestor = Ingestor::new(Arc::clone(&store), FeatureSettings::default());
        let calls = [
            tracked("t1", Some("WEATHER"), 480.0, Some(60.0)),
            tracked("t2", None, 540.0, Some(120.0)),
            // The first report again, late and under another id.
            tracked("t1b", Some("WEATHER"), 480.0, Some(60.0)),
        ];
        for call in calls {
            let summary = ingestor
                .ingest_received(vec![call], received)
                .await
                .unwrap();
            assert_eq!(summary.accepted, 1);
        }
        let keys = [
            AggregateKey::carrier_exceptions("XPO", "JFK"),
            AggregateKey::exceptions_to("JFK"),
        ];
        let at = DUE.plus_minutes(60.0).as_secs_f64();
        for record in store.fetch_now(&keys) {
            let record = record.expect("written");
            assert_eq!(record.counters_at, Some(at), "counted when reported");
            let flagged = record.counter(mc::MOVED, WindowId::DEPARTURE_DAY, at);
            assert!((flagged - 1.0).abs() < 1e-9, "flagged {flagged} times");
            let late = record.counter(mc::DELAY_MINUTES, WindowId::DEPARTURE_DAY, at);
            assert!(
                (late - 180.0).abs() < 1e-9,
                "expected 3 h late, got {late} min"
            );
        }
        let Some(Entity::Shipment(kept)) = entity(&store, EntityKey::Shipment("L-1".into())).await
        else {
            panic!("the leg is kept");
        };
        assert_eq!(
            kept.tracking.estimated_arrival,
            Some(DUE.plus_minutes(540.0))
        );

        // A report without its time counts when received.
        let store = Arc::new(InMemoryFeatureStore::new(Duration::from_secs(3600)));
        let ingestor = Ingestor::new(Arc::clone(&store), FeatureSettings::default());
        let call = vec![tracked("u", Some("MECHANICAL"), 300.0, None)];
        ingestor.ingest_received(call, received).await.unwrap();
        let record = store.fetch_now(&keys[..1])[0].expect("written");
        assert_eq!(record.counters_at, Some(received.as_secs_f64()));
    }

    /// An order's steps each count once in its site's flow, and a stale
    /// report of fewer steps does not replace the order's state.
    #[tokio::test]
    async fn an_orders_steps_count_once_and_never_go_back() {
        use crate::domain::{Order, OrderPriority, OrderProgress};
        use crate::features::aggregates::flow_counters as flow;
        let created = DUE;
        let step = |id: &str, steps: usize| {
            let times: Vec<Option<Timestamp>> = (0..4)
                .map(|k| (k < steps).then(|| created.plus_minutes(30.0 * (k + 1) as f64)))
                .collect();
            Ok(Event {
                event_id: id.into(),
                payload: EventPayload::Order(Order {
                    order_id: "O-1".into(),
                    created_at: created,
                    channel: "web".into(),
                    site: "ATL".into(),
                    destination_region: "JFK".into(),
                    promise_at: created.plus_minutes(2880.0),
                    line_count: 1,
                    units: 1.0,
                    priority: OrderPriority::Standard,
                    outcome: None,
                    progress: OrderProgress {
                        allocated_at: times[0],
                        released_at: times[1],
                        picked_at: times[2],
                        shipped_at: times[3],
                    },
                }),
            })
        };
        let store = Arc::new(InMemoryFeatureStore::new(Duration::from_secs(3600)));
        let ingestor = Ingestor::new(Arc::clone(&store), FeatureSettings::default());
        for (id, steps) in [("a", 1), ("r", 2), ("p", 3), ("s", 4), ("r-again", 2)] {
            let summary = ingestor
                .ingest_received(vec![step(id, steps)], created.plus_minutes(600.0))
                .await
                .unwrap();
            assert_eq!(summary.accepted, 1, "{id}");
        }
        let record = store.fetch_now(&[AggregateKey::site_flow("ATL")])[0].expect("written");
        for (k, counter) in [flow::ALLOCATED, flow::RELEASED, flow::PICKED, flow::SHIPPED]
            .into_iter()
            .enumerate()
        {
            let at = created.plus_minutes(30.0 * (k + 1) as f64).as_secs_f64();
            // Read at the step's own time less the decay since: 1 if once.
            let count = record.counter(counter, WindowId::DEPARTURE_DAY, at);
            let decay = (-(record.counters_at.unwrap() - at) / 86_400.0f64).exp();
            assert!((count - decay).abs() < 1e-9, "step {k}: {count} vs {decay}");
        }
        let Some(Entity::Order(kept)) = entity(&store, EntityKey::Order("O-1".into())).await else {
            panic!("the order is kept");
        };
        assert_eq!(kept.progress.done(), 4, "the stale report did not win");
    }
}

/// The outcome an event reports, if it reports one: a shipment leg's failure
/// (cancelled, or delivered later than the grace) or an order's fallout.
fn outcome_of(event: &Event, grace_minutes: f64) -> Option<(RiskKind, String, bool)> {
    match &event.payload {
        EventPayload::Shipment(shipment) => shipment.outcome(grace_minutes).map(|o| {
            (
                RiskKind::CarrierFailure,
                shipment.shipment_id.clone(),
                o.failed,
            )
        }),
        EventPayload::Order(order) => order.outcome.map(|o| {
            (
                RiskKind::OrderFallout,
                order.order_id.clone(),
                o.is_fallout(),
            )
        }),
        _ => None,
    }
}
