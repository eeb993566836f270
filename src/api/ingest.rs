//! The `EventIngest` service: decodes and validates each event, hands the call
//! to the core's one ingest path ([`crate::ingest::Ingestor`]) and renders its
//! counts.

use std::sync::Arc;

use tonic::{Request, Response, Status};
use tracing::Instrument;

use super::{ApiError, convert};
use crate::features::FeatureStore;
use crate::ingest::{self, Ingestor, Invalid};
use crate::pb;
use crate::pb::event_ingest_server::EventIngest;

/// gRPC adapter over an [`Ingestor`].
#[derive(Debug)]
pub struct EventIngestService<S> {
    ingestor: Arc<Ingestor<S>>,
}

impl<S> EventIngestService<S> {
    /// A service applying events through `ingestor`.
    pub fn new(ingestor: Arc<Ingestor<S>>) -> Self {
        EventIngestService { ingestor }
    }
}

#[tonic::async_trait]
impl<S: FeatureStore> EventIngest for EventIngestService<S> {
    async fn ingest_events(
        &self,
        request: Request<pb::IngestEventsRequest>,
    ) -> Result<Response<pb::IngestEventsResponse>, Status> {
        let events = &request.get_ref().events;
        ingest::check_count(events.len()).map_err(ApiError::from)?;
        let span = tracing::info_span!(
            "ingest",
            backend = self.ingestor.store().backend_name(),
            events = events.len(),
            rejected = tracing::field::Empty,
        );
        let candidates = events
            .iter()
            .enumerate()
            .map(|(index, message)| {
                convert::event(message, &format!("events[{index}]"))
                    .map_err(|error| invalid(message, error))
            })
            .collect();
        let summary = self
            .ingestor
            .ingest(candidates)
            .instrument(span.clone())
            .await
            .map_err(ApiError::from)?;
        span.record("rejected", summary.rejections.len());
        Ok(Response::new(pb::IngestEventsResponse {
            accepted: summary.accepted as u32,
            duplicate: summary.duplicate as u32,
            rejected: summary.rejections.len() as u32,
            rejections: summary
                .rejections
                .into_iter()
                .map(|r| pb::Rejection {
                    index: r.index as u32,
                    event_id: r.invalid.event_id,
                    field: r.invalid.field,
                    reason: r.invalid.reason,
                })
                .collect(),
        }))
    }
}

/// An event that failed validation, as the core reports it back.
fn invalid(message: &pb::Event, error: ApiError) -> Invalid {
    let (field, reason) = error.into_field_and_reason();
    Invalid {
        event_id: message.event_id.clone(),
        field,
        reason,
    }
}
