//! Online features: the [`FeatureStore`] trait, its in-memory and Redis backends,
//! how events update aggregates ([`updates`]) and how aggregates become model
//! inputs ([`vectors`]).
//!
//! Boundary: this module knows Redis but not gRPC. A read for any number of
//! entities is one call to [`FeatureStore::fetch`], which the Redis backend serves
//! in one pipelined round trip.

pub mod aggregates;
pub mod batch;
mod bounded;
pub mod entities;
pub mod memory;
pub mod redis_store;
pub mod updates;
pub mod vectors;

use std::future::Future;
use std::sync::Arc;

pub use aggregates::{AggregateKey, AggregateRecord};
pub use entities::{Entity, EntityKey};
pub use memory::{InMemoryFeatureStore, MemoryUsage};
pub use redis_store::{Persistence, RedisFeatureStore, RedisSettings};
pub use updates::{EventUpdates, FeatureSettings, updates_for, updates_received, with_facts};

/// Why the feature store could not answer.
///
/// The message of each variant is what callers report (the API's error text);
/// the error underneath, when there is one, stays reachable as its
/// [`source`](std::error::Error::source). Sources are shared (`Arc`) so that the
/// error stays `Clone`.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FeatureError {
    /// The store is unreachable or failed mid-request.
    #[error("feature store unavailable: {detail}")]
    Unavailable {
        /// What failed, as reported.
        detail: String,
        /// The Redis error behind it, if one was.
        #[source]
        source: Option<Arc<redis::RedisError>>,
    },
    /// The store did not answer within its deadline.
    #[error("feature store timed out after {0} ms")]
    Timeout(u64),
    /// The store answered something this version cannot read.
    #[error("feature store returned unexpected data: {detail}")]
    Corrupt {
        /// What could not be read, as reported.
        detail: String,
        /// The decoding error behind it, if one was.
        #[source]
        source: Option<Arc<dyn std::error::Error + Send + Sync>>,
    },
}

impl FeatureError {
    /// The store failed with a Redis error: reported with its text, kept as the
    /// source.
    pub fn redis(error: redis::RedisError) -> Self {
        FeatureError::Unavailable {
            detail: error.to_string(),
            source: Some(Arc::new(error)),
        }
    }

    /// The store answered something unreadable, with no error underneath.
    pub fn corrupt(detail: impl Into<String>) -> Self {
        FeatureError::Corrupt {
            detail: detail.into(),
            source: None,
        }
    }

    /// The store answered something that failed to decode (or a value failed to
    /// encode) with `error`: reported as `context` (which usually quotes
    /// `error`), kept as the source.
    pub fn corrupt_with(
        context: impl Into<String>,
        error: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        FeatureError::Corrupt {
            detail: context.into(),
            source: Some(Arc::new(error)),
        }
    }
}

/// What applying one event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyOutcome {
    /// The event was new; its updates were written.
    Applied,
    /// The event id was seen before; nothing changed.
    Duplicate,
}

/// Everything one read may ask for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FetchRequest {
    /// Aggregate records to read.
    pub records: Vec<AggregateKey>,
    /// (origin, destination) lanes whose observed carriers are wanted.
    pub lanes: Vec<(String, String)>,
    /// Ingested orders and shipments to read.
    pub entities: Vec<EntityKey>,
}

/// The answer to a [`FetchRequest`], in request order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fetched {
    /// One per requested record; `None` for a record never written.
    pub records: Vec<Option<AggregateRecord>>,
    /// Carriers seen on each lane, sorted.
    pub lane_carriers: Vec<Vec<String>>,
    /// One per requested entity; `None` for an id never ingested.
    pub entities: Vec<Option<Entity>>,
}

/// A place where online aggregates live.
pub trait FeatureStore: Send + Sync + 'static {
    /// Reads the records of `keys` (in order; `None` for a record never written),
    /// in one round trip.
    fn fetch(
        &self,
        keys: &[AggregateKey],
    ) -> impl Future<Output = Result<Vec<Option<AggregateRecord>>, FeatureError>> + Send;

    /// Reads records, the carriers seen on lanes and ingested entities, all in one
    /// round trip.
    fn fetch_all(
        &self,
        request: &FetchRequest,
    ) -> impl Future<Output = Result<Fetched, FeatureError>> + Send;

    /// Applies events in order, each at most once by event id. On error, some
    /// events may have been applied; applying them again is safe.
    fn apply(
        &self,
        events: &[EventUpdates],
    ) -> impl Future<Output = Result<Vec<ApplyOutcome>, FeatureError>> + Send;

    /// A short name for logs ("memory", "redis").
    fn backend_name(&self) -> &'static str;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error;

    #[test]
    fn a_redis_failure_keeps_its_cause_and_its_message() {
        let cause = redis::RedisError::from((redis::ErrorKind::Io, "connection reset"));
        let text = cause.to_string();
        let error = FeatureError::redis(cause);
        assert_eq!(
            error.to_string(),
            format!("feature store unavailable: {text}")
        );
        let source = error.source().expect("the Redis error is kept");
        assert_eq!(source.to_string(), text);
        let copy = error.clone();
        assert!(copy.source().is_some(), "a clone shares the cause");
        assert!(FeatureError::corrupt("x").source().is_none());
    }
}
