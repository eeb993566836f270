//! The `EventIngest` service: validates events, applies the valid ones to the
//! feature store in one call, and counts what happened.

use std::sync::Arc;

use tonic::{Request, Response, Status};
use tracing::Instrument;

use super::{ApiError, convert};
use crate::domain::Timestamp;
use crate::features::{ApplyOutcome, FeatureSettings, FeatureStore, updates_received};
use crate::pb;
use crate::pb::event_ingest_server::EventIngest;

/// Most events one call may carry.
pub const MAX_EVENTS: usize = 10_000;

/// gRPC adapter that applies events to a feature store.
#[derive(Debug)]
pub struct EventIngestService<S> {
    store: Arc<S>,
    settings: FeatureSettings,
}

impl<S> EventIngestService<S> {
    pub fn new(store: Arc<S>, settings: FeatureSettings) -> Self {
        EventIngestService { store, settings }
    }
}

#[tonic::async_trait]
impl<S: FeatureStore> EventIngest for EventIngestService<S> {
    async fn ingest_events(
        &self,
        request: Request<pb::IngestEventsRequest>,
    ) -> Result<Response<pb::IngestEventsResponse>, Status> {
        let events = &request.get_ref().events;
        if events.is_empty() {
            return Err(ApiError::invalid("events", "at least one event is required").into());
        }
        if events.len() > MAX_EVENTS {
            return Err(ApiError::invalid(
                "events",
                format!("at most {MAX_EVENTS} events per call, got {}", events.len()),
            )
            .into());
        }
        let mut rejections = Vec::new();
        let mut valid = Vec::with_capacity(events.len());
        let received_at = Timestamp::now();
        for (index, message) in events.iter().enumerate() {
            match convert::event(message, &format!("events[{index}]")) {
                Ok(event) => valid.push(updates_received(&event, &self.settings, received_at)),
                Err(error) => rejections.push(rejection(index, message, error)),
            }
        }
        let span = tracing::info_span!(
            "ingest",
            backend = self.store.backend_name(),
            events = events.len(),
            rejected = rejections.len()
        );
        let outcomes = self
            .store
            .apply(&valid)
            .instrument(span)
            .await
            .map_err(|error| {
                tracing::warn!(%error, events = valid.len(), "ingest not applied");
                ApiError::Unavailable(format!(
                    "{error}; none of the {} valid events is acknowledged: retry the call \
                     (ingest is idempotent by event_id)",
                    valid.len()
                ))
            })?;
        let applied = outcomes
            .iter()
            .filter(|o| **o == ApplyOutcome::Applied)
            .count();
        Ok(Response::new(pb::IngestEventsResponse {
            accepted: applied as u32,
            duplicate: (outcomes.len() - applied) as u32,
            rejected: rejections.len() as u32,
            rejections,
        }))
    }
}

fn rejection(index: usize, message: &pb::Event, error: ApiError) -> pb::Rejection {
    let (field, reason) = match error {
        ApiError::InvalidArgument { field, reason } => (field, reason),
        other => (String::new(), other.to_string()),
    };
    pb::Rejection {
        index: index as u32,
        event_id: message.event_id.clone(),
        field,
        reason,
    }
}
