//! The anomaly monitor: turns what ingest applied into points of the series
//! Detour keeps (per site: orders received per hour, backlog, units picked
//! per labour-hour; per carrier × region and per lane: failed of finished
//! legs), runs each series' detector and episodes, and publishes the alert
//! changes to a log that subscribers read from a cursor.
//!
//! Ingest hands each call's points to a queue and returns; a flusher runs
//! everything queued — every call that arrived while it was busy — with one
//! read of every touched series (state and the seasonal buckets its points
//! need), the detectors in process, and one write (each series only if no
//! other replica wrote it meanwhile; a series that lost is loaded and run
//! again). Under load a series is read and written once for many calls.
//! The state and the log live in the same store as the features: this
//! process, or Redis for every replica.
//!
//! Boundary: speaks domain types; the API turns alerts into messages.

pub mod evaluate;
pub mod feed;
mod flush;
pub mod memory;
pub mod redis;
pub mod series;
pub mod signal;
pub mod store;
mod words;

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::broadcast;

use crate::anomaly::{Acknowledgement, Alert, AlertStatus, AnomalyKind, Severity, Suggestion};
use crate::features::{ApplyOutcome, EventUpdates, FeatureError};
use crate::network::Network;
pub use evaluate::SeriesState;
pub use feed::{Cursor, FeedItem, Logged};
use series::{Point, SeriesId};
pub use store::{AnomalyStore, Commit, LoadRequest, Loaded};

/// Entries the live feed holds for a subscriber that is behind; one further
/// behind is told to resume from its cursor.
pub const FEED_CAPACITY: usize = 4_096;
/// Points waiting for a flush at most; beyond, new points are dropped (and
/// counted) rather than holding ingest up.
pub const MAX_PENDING_POINTS: usize = 1_000_000;
/// Flushes start at most this often: under load the points of every call
/// in the gap are written in one commit (the store's work per call drops
/// with it); a lone call is flushed at once.
const FLUSH_GAP: std::time::Duration = std::time::Duration::from_millis(25);
/// Rounds a series is loaded and run again when another replica wrote it
/// first (or its points needed buckets not loaded).
const ROUNDS: usize = 4;

/// Which alerts a subscriber or a listing wants.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertFilter {
    /// Only these kinds; empty: every kind.
    pub kinds: Vec<AnomalyKind>,
    /// Only alerts that mention this code (a site, carrier, region or
    /// location); `None`: any.
    pub entity: Option<String>,
    /// Only alerts at least this severe at their worst (so a watcher that
    /// saw one open sees it update and end).
    pub min_severity: Option<Severity>,
}

impl AlertFilter {
    /// Whether `alert` passes.
    pub fn matches(&self, alert: &Alert) -> bool {
        (self.kinds.is_empty() || self.kinds.contains(&alert.kind))
            && self
                .entity
                .as_deref()
                .is_none_or(|code| alert.entities.mentions(code))
            && self
                .min_severity
                .is_none_or(|min| alert.worst_severity >= min)
    }
}

/// What one call to [`Monitor::observe`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Observed {
    /// Points taken.
    pub points: usize,
    /// Series written.
    pub series: usize,
    /// Alert changes published.
    pub alerts: usize,
    /// Series whose points were dropped: another replica kept writing them.
    pub dropped: usize,
}

/// The anomaly monitor of one replica.
pub struct Monitor {
    store: AnomalyStore,
    feed: broadcast::Sender<FeedItem>,
    network: Arc<Network>,
    /// Points taken from ingest calls and not yet run, by series.
    pending: std::sync::Mutex<Pending>,
    /// Wakes the flusher when points arrive.
    wake: tokio::sync::Notify,
    /// Held while points are run and committed: one flush at a time.
    flushing: tokio::sync::Mutex<()>,
    /// Asks the recommendations for a leg's top reroute (set by the app).
    suggest: std::sync::OnceLock<Suggest>,
    /// Writes committed alert changes to the feature store (set by the app).
    signal: std::sync::OnceLock<signal::Signal>,
    /// The latest event time of any point taken (Unix s): the ingest clock
    /// a sweep judges quiet series by.
    clock: std::sync::atomic::AtomicI64,
    /// When legs this replica saw leave become overdue, with their
    /// carrier-region series, soonest first: a sweep ticks each series
    /// once its legs come due, so they are counted even if the series gets
    /// no other point.
    due: std::sync::Mutex<DueLegs>,
}

/// When legs come due (Unix s) and their series, soonest on top.
type DueLegs = std::collections::BinaryHeap<std::cmp::Reverse<(i64, SeriesId)>>;

/// The top reroute of a leg, by its id: how an alert's at-risk legs get
/// their suggestions without the monitor knowing the planner.
pub type Suggest = Arc<
    dyn Fn(String) -> std::pin::Pin<Box<dyn Future<Output = Option<Suggestion>> + Send>>
        + Send
        + Sync,
>;

/// How often the sweeper looks for open alerts whose series went quiet.
const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(60);
/// An open alert whose series had no point for this long, by the ingest
/// clock, is judged without one (its episode may end).
pub const QUIET_SECS: i64 = 3 * 3_600;
/// At-risk legs of one alert given a suggestion at most.
const SUGGESTED_LEGS: usize = 5;
/// A leg that left and has not arrived this long after it was due has
/// failed (the default SLA grace): its carrier-region series counts it
/// then, not when its arrival is finally reported.
pub const OVERDUE_AFTER_SECS: i64 = 15 * 60;
/// Legs this replica waits on to come due at most (a report of a leg under
/// way adds one; about 100 bytes each); beyond, a leg is found overdue
/// only at its series' next point, and a warning says so.
const MAX_DUE_LEGS: usize = 250_000;

impl std::fmt::Debug for Monitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Monitor")
            .field("store", &self.store)
            .field("suggesting", &self.suggest.get().is_some())
            .field("signalling", &self.signal.get().is_some())
            .finish_non_exhaustive()
    }
}

/// Points waiting for the next flush.
#[derive(Debug, Default)]
struct Pending {
    series: HashMap<SeriesId, Vec<Point>, foldhash::fast::RandomState>,
    points: usize,
    /// Points dropped because the queue was full (Redis down for long).
    dropped: u64,
}

impl Monitor {
    /// A monitor keeping its state in this process.
    pub fn in_memory(network: Arc<Network>) -> Self {
        let (feed, _) = broadcast::channel(FEED_CAPACITY);
        Monitor::with(AnomalyStore::memory(feed.clone()), feed, network)
    }

    /// A monitor keeping its state in Redis; starts reading the shared log
    /// for this replica's subscribers (call within a Tokio runtime).
    pub fn redis(
        url: &str,
        namespace: &str,
        timeout: std::time::Duration,
        network: Arc<Network>,
    ) -> Result<Self, FeatureError> {
        let (feed, _) = broadcast::channel(FEED_CAPACITY);
        let store = redis::RedisAnomalies::new(url, namespace, timeout)?;
        store.spawn_reader(feed.clone());
        Ok(Monitor::with(AnomalyStore::Redis(store), feed, network))
    }

    fn with(store: AnomalyStore, feed: broadcast::Sender<FeedItem>, network: Arc<Network>) -> Self {
        Monitor {
            store,
            feed,
            network,
            pending: Default::default(),
            wake: Default::default(),
            flushing: Default::default(),
            suggest: Default::default(),
            signal: Default::default(),
            clock: std::sync::atomic::AtomicI64::new(i64::MIN),
            due: Default::default(),
        }
    }

    /// Where state is kept ("memory", "redis").
    pub fn backend_name(&self) -> &'static str {
        self.store.backend_name()
    }

    /// Takes the points of what a store applied (`applied` answers `run`)
    /// into the queue of the next flush, and wakes the flusher; returns the
    /// number of points taken. Changes the store did not apply add nothing.
    /// Costs the ingest call no store round trip: the flusher runs the
    /// points of every call that arrived while it was busy in one load and
    /// one commit (group commit), so under load a series is written once
    /// for many calls.
    pub fn observe(&self, run: &[EventUpdates], applied: &[ApplyOutcome]) -> usize {
        let mut taken = 0;
        let mut coming_due = Vec::new();
        {
            let mut pending = self.pending.lock().expect("pending points poisoned");
            let pending = &mut *pending;
            let mut latest = i64::MIN;
            series::points(run, applied, |id, point| {
                match point.value {
                    series::PointValue::Leg {
                        arrival,
                        departed: true,
                        finished: false,
                        ..
                    } if arrival > 0 => coming_due.push((arrival + OVERDUE_AFTER_SECS, id.clone())),
                    series::PointValue::Leg { .. } => {}
                    _ => latest = latest.max(point.at),
                }
                if pending.points >= MAX_PENDING_POINTS {
                    pending.dropped += 1;
                    return;
                }
                taken += 1;
                pending.points += 1;
                pending.series.entry(id).or_default().push(point);
            });
            self.clock
                .fetch_max(latest, std::sync::atomic::Ordering::Relaxed);
        }
        if !coming_due.is_empty() {
            let mut due = self.due.lock().expect("due legs poisoned");
            let room = MAX_DUE_LEGS.saturating_sub(due.len());
            if coming_due.len() > room {
                tracing::warn!(
                    legs = coming_due.len() - room,
                    "legs under way not awaited: too many already; each is found overdue at its series' next point"
                );
            }
            for entry in coming_due.into_iter().take(room) {
                due.push(std::cmp::Reverse(entry));
            }
        }
        if taken > 0 {
            self.wake.notify_one();
        }
        taken
    }

    /// Has every alert's at-risk legs that have not left suggested a
    /// reroute by `suggest` (once; later calls change nothing).
    pub fn suggest_with(&self, suggest: Suggest) {
        let _ = self.suggest.set(suggest);
    }

    /// Has every committed alert change on a series the carrier model reads
    /// written to its disruption record by `signal` (once; later calls
    /// change nothing): an open disruption raises the risk of the legs it
    /// touches within a flush of its opening.
    pub fn signal_with(&self, signal: signal::Signal) {
        let _ = self.signal.set(signal);
    }

    /// The live feed: every log entry from now on, in log order.
    pub fn subscribe(&self) -> broadcast::Receiver<FeedItem> {
        self.feed.subscribe()
    }

    /// Up to `limit` log entries after `after`, oldest first; `Err` with the
    /// oldest cursor kept when the log lost what came right after `after`.
    pub async fn since(
        &self,
        after: Cursor,
        limit: usize,
    ) -> Result<Result<Vec<Logged>, Cursor>, FeatureError> {
        self.store.since(after, limit).await
    }

    /// Alerts that pass `filter`, open ones first, then the most recently
    /// changed.
    pub async fn list(
        &self,
        filter: &AlertFilter,
        open_only: bool,
    ) -> Result<Vec<Alert>, FeatureError> {
        let mut alerts: Vec<Alert> = self
            .store
            .recent()
            .await?
            .into_iter()
            .filter(|a| filter.matches(a) && (!open_only || a.status == AlertStatus::Open))
            .collect();
        // Stable: within each group, newest change first as stored.
        alerts.sort_by_key(|a| a.status != AlertStatus::Open);
        Ok(alerts)
    }

    /// Records that `by` acknowledged alert `id` with `note`; the alert as
    /// it now stands, or `None` if there is no such alert.
    pub async fn acknowledge(
        &self,
        id: &str,
        by: &str,
        note: &str,
    ) -> Result<Option<Alert>, FeatureError> {
        let ack = Acknowledgement {
            by: by.to_string(),
            note: note.to_string(),
            at: crate::domain::Timestamp::now().0 / 1000,
        };
        self.store.acknowledge(id, ack).await
    }
}

#[cfg(test)]
mod tests;
