//! Where the monitor keeps series, alerts and the alert log: this process
//! (no Redis) or Redis (shared by every replica). One enum, so the monitor
//! and the API are not generic over it.

use tokio::sync::broadcast;

use super::evaluate::SeriesState;
use super::feed::{Cursor, FeedItem, Logged};
use super::memory::MemoryAnomalies;
use super::redis::RedisAnomalies;
use crate::anomaly::{Acknowledgement, Alert, Bucket, Change, Moments};
use crate::features::FeatureError;

/// Entries the alert log keeps (about, with Redis): a subscriber may resume
/// from any of them.
pub const LOG_ENTRIES: usize = 100_000;
/// Alerts `ListAnomalies` can page through: the most recently changed.
pub const RECENT_ALERTS: usize = 2_000;

/// A series to load, with the seasonal buckets its points need.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadRequest {
    /// The series' key.
    pub key: String,
    /// The buckets wanted.
    pub buckets: Vec<Bucket>,
}

/// A series as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    /// Its version (0: never written).
    pub version: u64,
    /// Its state, if written.
    pub state: Option<SeriesState>,
    /// Each bucket asked for, with its moments if stored.
    pub buckets: Vec<(Bucket, Option<Moments>)>,
}

/// A series' new state, written only if its version is still `expected`,
/// with the alert changes its points made.
#[derive(Debug, Clone, PartialEq)]
pub struct Commit {
    /// The series' key.
    pub key: String,
    /// The version it was loaded at.
    pub expected: u64,
    /// Its new state.
    pub state: SeriesState,
    /// Buckets changed, with their moments.
    pub buckets: Vec<(Bucket, Moments)>,
    /// Alert changes to append to the log, in order.
    pub alerts: Vec<(Change, Alert)>,
}

/// The store behind a monitor.
#[derive(Debug)]
pub enum AnomalyStore {
    /// In this process.
    Memory(MemoryAnomalies),
    /// In Redis.
    Redis(RedisAnomalies),
}

impl AnomalyStore {
    /// A store in this process, publishing to `feed`.
    pub fn memory(feed: broadcast::Sender<FeedItem>) -> Self {
        AnomalyStore::Memory(MemoryAnomalies::new(feed))
    }

    /// "memory" or "redis".
    pub fn backend_name(&self) -> &'static str {
        match self {
            AnomalyStore::Memory(_) => "memory",
            AnomalyStore::Redis(_) => "redis",
        }
    }

    /// Loads series, in request order, in one round trip.
    pub async fn load(&self, requests: &[LoadRequest]) -> Result<Vec<Loaded>, FeatureError> {
        match self {
            AnomalyStore::Memory(m) => Ok(m.load(requests)),
            AnomalyStore::Redis(r) => r.load(requests).await,
        }
    }

    /// Writes series whose versions did not move, with their alerts; says
    /// which were written, in one round trip.
    pub async fn commit(&self, commits: Vec<Commit>) -> Result<Vec<bool>, FeatureError> {
        match self {
            AnomalyStore::Memory(m) => Ok(m.commit(commits)),
            AnomalyStore::Redis(r) => r.commit(commits).await,
        }
    }

    /// Up to `limit` log entries after `after`, oldest first; or, when the
    /// log no longer holds what came right after `after`, the oldest cursor
    /// it holds.
    pub async fn since(
        &self,
        after: Cursor,
        limit: usize,
    ) -> Result<Result<Vec<Logged>, Cursor>, FeatureError> {
        match self {
            AnomalyStore::Memory(m) => Ok(m.since(after, limit)),
            AnomalyStore::Redis(r) => r.since(after, limit).await,
        }
    }

    /// The most recently changed alerts, newest first, with their
    /// acknowledgements.
    pub async fn recent(&self) -> Result<Vec<Alert>, FeatureError> {
        match self {
            AnomalyStore::Memory(m) => Ok(m.recent()),
            AnomalyStore::Redis(r) => r.recent(RECENT_ALERTS).await,
        }
    }

    /// Records who acknowledged alert `id`; `None` if no such alert.
    pub async fn acknowledge(
        &self,
        id: &str,
        ack: Acknowledgement,
    ) -> Result<Option<Alert>, FeatureError> {
        match self {
            AnomalyStore::Memory(m) => Ok(m.acknowledge(id, ack)),
            AnomalyStore::Redis(r) => r.acknowledge(id, &ack).await,
        }
    }
}
