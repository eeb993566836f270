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
use crate::monitor::Monitor;
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
    monitor: Option<Arc<Monitor>>,
}

impl<S: FeatureStore> Ingestor<S> {
    /// An ingestor writing to `store`.
    pub fn new(store: Arc<S>, settings: FeatureSettings) -> Self {
        Ingestor {
            store,
            settings,
            outcomes: None,
            monitor: None,
        }
    }

    /// Feeds what each call applied to the anomaly monitor's queue (its
    /// flusher publishes the alerts they open, moments later).
    pub fn with_monitor(mut self, monitor: Arc<Monitor>) -> Self {
        self.monitor = Some(monitor);
        self
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
        if let Some(monitor) = &self.monitor {
            // Queued for the monitor's flusher: no round trip here.
            monitor.observe(&run, &applied);
        }
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

#[cfg(test)]
mod tests;

#[cfg(test)]
mod lifecycle;
