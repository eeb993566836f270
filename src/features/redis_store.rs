//! The production feature store: aggregates in Redis hashes, shared by every
//! replica.
//!
//! Keys (`{ns}` is the configured namespace, "detour" by default):
//!
//! | key | type | holds |
//! | --- | --- | --- |
//! | `{ns}:carrier:{carrier}` | record | shipment outcome counters of a carrier |
//! | `{ns}:lane:{origin}:{destination}` | record | the same, for a lane over all carriers |
//! | `{ns}:carrier_lane_shipments:{carrier}:{origin}:{destination}` | record | the same, per carrier-lane, over all time, 7 and 28 days |
//! | `{ns}:site:{site}` | record | order counters and the latest snapshot gauges of a site |
//! | `{ns}:inventory:{site}:{sku}` | record | units on hand (gauge) |
//! | `{ns}:origin:{location}` | record | shipment outcome counters of everything leaving a location |
//! | `{ns}:destination:{location}` | record | the same, for everything arriving at a location |
//! | `{ns}:site_region_orders:{site}:{region}` | record | order outcome counters of one site serving one region, over a year, all time and 28 days |
//! | `{ns}:site_history:{site}` | record | the same, for a site over all regions |
//! | `{ns}:order_network:all` | record | the same, for every order |
//! | `{ns}:departures:{location}` | record | legs that left a location, and how late, over 1 h, 3 h and a day |
//! | `{ns}:carrier_departures:{carrier}:{location}` | record | the same, for one carrier |
//! | `{ns}:carrier_network_departures:{carrier}` | record | the same, for one carrier anywhere |
//! | `{ns}:departures_to:{location}` | record | the same, for legs bound for a location |
//! | `{ns}:arrivals:{location}` | record | legs that arrived at a location, and how late |
//! | `{ns}:departure_slot:{location}:{slot}` | record, 10-day TTL from its last write | legs due to leave in one half-hour slot (number since the epoch): planned, and gone |
//! | `{ns}:carrier_exceptions:{carrier}:{location}` | record | legs of a carrier bound for a location that it flagged (an exception, or an estimated arrival past the grace), and how late it expects them, over 1 h, 3 h and a day |
//! | `{ns}:exceptions_to:{location}` | record | the same, over all carriers |
//! | `{ns}:site_flow:{site}` | record | a site's orders allocated, released, picked and shipped, over 1 h, 3 h and a day |
//! | `{ns}:disruption:{series}` | record (gauges only) | the anomaly monitor's open alert on a series a leg's risk reads (`carrier_region:{carrier}:{region}`, `lane:{origin}:{destination}`, `inbound:{location}`): its severity and when it opened, zeros once resolved |
//! | `{ns}:seen:{bucket}` | set, expires whole | ids of the events applied in one time bucket (dedupe) |
//! | `{ns}:entities:{bucket}` | hash, expires whole | field `shipment:{id}` or `order:{id}`: the state of an ingested shipment or order written in one time bucket — its version and the bit mask of its stages counted (two little-endian doubles), then its JSON (none: only stages were counted); the newest version over the live buckets is the entity, and its stages counted are those of every live bucket |
//! | `{ns}:lane_carriers:{origin}:{destination}` | set | carriers seen serving the lane |
//! | `{ns}:refused:{…}` | string, 60 s TTL | an ingest round in which a chunk held an id seen before or a wrong belief about a stage: the chunks after it wait for the retry |
//!
//! A record is a string of 8-byte little-endian IEEE-754 doubles, in the order
//! of [`super::aggregates::field_names`]: `t` (counter clock, epoch seconds), every
//! `{counter}_{window}` (decayed counters), `gt` (gauge clock), every gauge; a
//! clock never set is NaN. One string per record lets a scoring request read all
//! its records with a single `MGET` and decode them without parsing text, and lets
//! the Lua script read and write each record in one call. (To look at one:
//! `redis-cli --raw GET key | python3 -c 'import sys,struct; b=sys.stdin.buffer.read().rstrip(b"\n"); print(struct.unpack(f"<{len(b)//8}d", b))'`.)
//!
//! Ids and entities are kept in time buckets (a quarter of the dedupe TTL each,
//! see `Keys::buckets` in `keys.rs`) instead of a key with its own TTL each: an
//! ingest call then writes them with one command per chunk, not one per event.
//!
//! Every call is bounded by a timeout; the connection reconnects on its own after
//! Redis comes back, so callers only ever see [`FeatureError`]s, never a hang.
//!
//! The parts: `keys` (the layout above and the buckets), `codec` (records and
//! entities as bytes), `read` (the read pipeline and its answer), `apply` (the
//! Lua script, its chunks and retries), `seen_facts` (which legs' stages this
//! replica believes applied) and `coalesce` (small reads of concurrent
//! requests sent together). This file holds the store, its connection and
//! deadlines, and wires them into [`FeatureStore`].

use std::sync::Arc;
use std::time::Duration;

use redis::RedisError;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::aggregates::{AggregateKey, AggregateRecord};
use super::{ApplyOutcome, EventUpdates, FeatureError, FeatureStore, FetchRequest, Fetched};
use coalesce::Coalescer;
use keys::Keys;

mod apply;
mod coalesce;
mod codec;
mod keys;
mod read;
mod seen_facts;

pub use keys::BUCKETS;

/// How to reach Redis and how long to wait for it.
#[derive(Debug, Clone, PartialEq)]
pub struct RedisSettings {
    /// `redis://host:port[/db]`.
    pub url: String,
    /// Prefix of every key.
    pub namespace: String,
    /// Deadline of one call (a whole pipeline).
    pub timeout: Duration,
    /// How long an event id is remembered for dedupe.
    pub dedupe_ttl: Duration,
}

/// Aggregates in Redis.
#[derive(Clone)]
pub struct RedisFeatureStore {
    connection: ConnectionManager,
    /// Small scoring reads, coalesced with those of concurrent requests.
    reads: Arc<Coalescer>,
    settings: RedisSettings,
    keys: Keys,
    script: redis::Script,
    /// The legs' stages this replica believes Redis has seen.
    seen_facts: Arc<seen_facts::SeenFacts>,
}

impl std::fmt::Debug for RedisFeatureStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisFeatureStore")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl RedisFeatureStore {
    /// A store for `settings.url`. Connects lazily: the server starts (degraded)
    /// even when Redis is down, and picks Redis up when it appears.
    pub fn new(settings: RedisSettings) -> Result<Self, FeatureError> {
        use redis::IntoConnectionInfo;
        let bad_url = |e: RedisError| FeatureError::Unavailable {
            detail: format!("bad Redis URL: {e}"),
            source: Some(Arc::new(e)),
        };
        // Without TCP_NODELAY, Nagle's algorithm and delayed ACKs add milliseconds
        // to some round trips.
        let info = settings
            .url
            .as_str()
            .into_connection_info()
            .map_err(bad_url)?
            .set_tcp_settings(redis::io::tcp::TcpSettings::default().set_nodelay(true));
        let client = redis::Client::open(info).map_err(bad_url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(settings.timeout))
            // Each call's own deadline (see `run`) bounds the wait instead: an
            // ingest pipeline of thousands of events needs longer than a read.
            .set_response_timeout(None)
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(200));
        let connection =
            ConnectionManager::new_lazy_with_config(client, config).map_err(FeatureError::redis)?;
        Ok(RedisFeatureStore {
            reads: Arc::new(Coalescer::new(connection.clone())),
            connection,
            keys: Keys::new(&settings.namespace, settings.dedupe_ttl),
            script: apply::script(),
            seen_facts: Arc::new(seen_facts::SeenFacts::new()),
            settings,
        })
    }

    /// The Redis key of a record.
    pub fn record_key(&self, key: &AggregateKey) -> String {
        self.keys.record(key)
    }

    /// The Redis key of the set of event ids applied in a bucket.
    pub fn seen_key(&self, bucket: u64) -> String {
        self.keys.seen(bucket)
    }

    /// The Redis key of the hash of entities written in a bucket; an entity's
    /// field there is [`super::EntityKey::suffix`].
    pub fn entity_key(&self, bucket: u64) -> String {
        self.keys.entities(bucket)
    }

    /// The Redis key of the set of carriers seen on a lane.
    pub fn lane_key(&self, origin: &str, destination: &str) -> String {
        self.keys.lane_carriers(origin, destination)
    }

    /// Checks Redis answers (PING), within the timeout.
    pub async fn ping(&self) -> Result<(), FeatureError> {
        self.run(|mut connection| async move {
            redis::cmd("PING")
                .query_async::<String>(&mut connection)
                .await
        })
        .await
        .map(|_| ())
    }

    /// How the Redis it talks to persists writes (`CONFIG GET appendonly`,
    /// `appendfsync`, `save`), where `CONFIG` is allowed.
    pub async fn persistence(&self) -> Result<Persistence, FeatureError> {
        let settings: Vec<std::collections::HashMap<String, String>> = self
            .run(|mut connection| async move {
                let mut pipeline = redis::pipe();
                for name in ["appendonly", "appendfsync", "save"] {
                    pipeline.cmd("CONFIG").arg("GET").arg(name);
                }
                pipeline.query_async(&mut connection).await
            })
            .await?;
        let get = |name: &str| {
            settings
                .iter()
                .find_map(|s| s.get(name).cloned())
                .unwrap_or_default()
        };
        Ok(Persistence {
            append_only: get("appendonly") == "yes",
            append_fsync: get("appendfsync"),
            snapshots: get("save"),
        })
    }

    /// Runs a Redis call under the timeout. A call that fails because the
    /// connection broke is tried once more, within what is left of the same
    /// deadline: the manager reconnects meanwhile, so the first call after
    /// Redis returns succeeds instead of failing, and an answer during an
    /// outage never waits longer than the one deadline. Every call here is
    /// idempotent (reads, and event applications deduplicated by id).
    async fn run<T, F, Fut>(&self, call: F) -> Result<T, FeatureError>
    where
        F: Fn(ConnectionManager) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        self.run_within(self.settings.timeout, call).await
    }

    /// [`Self::run`] with its own deadline, shared by both attempts.
    async fn run_within<T, F, Fut>(&self, deadline: Duration, call: F) -> Result<T, FeatureError>
    where
        F: Fn(ConnectionManager) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        let until = tokio::time::Instant::now() + deadline;
        let first = within(until, deadline, call(self.connection.clone())).await?;
        match first {
            Err(error) if is_broken_connection(&error) => {
                within(until, deadline, call(self.connection.clone()))
                    .await?
                    .map_err(FeatureError::redis)
            }
            other => other.map_err(FeatureError::redis),
        }
    }
}

impl FeatureStore for RedisFeatureStore {
    async fn fetch(
        &self,
        keys: &[AggregateKey],
    ) -> Result<Vec<Option<AggregateRecord>>, FeatureError> {
        self.read_records(keys).await
    }

    async fn fetch_all(&self, request: &FetchRequest) -> Result<Fetched, FeatureError> {
        self.read_all(request).await
    }

    async fn apply(&self, events: &[EventUpdates]) -> Result<Vec<ApplyOutcome>, FeatureError> {
        self.apply_events(events).await
    }

    fn backend_name(&self) -> &'static str {
        "redis"
    }
}

/// How a Redis server persists what it is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Persistence {
    /// `appendonly yes`: every write goes to the append-only file.
    pub append_only: bool,
    /// `appendfsync`: "always", "everysec" or "no".
    pub append_fsync: String,
    /// `save`: the RDB snapshot schedule; empty when there is none.
    pub snapshots: String,
}

impl Persistence {
    /// What a restart or crash of Redis can lose of the events Detour has
    /// acknowledged, when it can lose any: the warning `serve` logs at start.
    pub fn risk(&self) -> Option<String> {
        match (
            self.append_only,
            self.append_fsync.as_str(),
            self.snapshots.trim(),
        ) {
            (true, "always", _) => None,
            (true, "everysec", _) => Some(
                "Redis has appendonly yes with appendfsync everysec: a crash of the Redis host \
                 can lose about the last second of acknowledged events (appendfsync always \
                 loses none)"
                    .into(),
            ),
            (true, fsync, _) => Some(format!(
                "Redis has appendonly yes with appendfsync {fsync}: a crash of the Redis host \
                 can lose the acknowledged events the OS had not yet written (appendfsync \
                 always loses none)"
            )),
            (false, _, "") => Some(
                "Redis has persistence off (appendonly no, no save schedule): a Redis restart \
                 loses every acknowledged event and all features; set appendonly yes and \
                 appendfsync always (README, \"Durability\")"
                    .into(),
            ),
            (false, _, schedule) => Some(format!(
                "Redis persists by RDB snapshots only (save {schedule:?}): a Redis restart \
                 loses the acknowledged events since the last snapshot; set appendonly yes \
                 and appendfsync always (README, \"Durability\")"
            )),
        }
    }
}

/// Runs one attempt until `until` (the end of a call's `deadline`); a timeout
/// is an error, the call's own result is returned as it is.
async fn within<T>(
    until: tokio::time::Instant,
    deadline: Duration,
    call: impl Future<Output = Result<T, RedisError>>,
) -> Result<Result<T, RedisError>, FeatureError> {
    tokio::time::timeout_at(until, call)
        .await
        .map_err(|_| FeatureError::Timeout(deadline.as_millis() as u64))
}

fn is_broken_connection(error: &RedisError) -> bool {
    error.is_io_error() || error.is_connection_dropped() || error.is_connection_refusal()
}

/// Every kind of record, for the unit tests of the layout and the codec.
#[cfg(test)]
fn every_kind() -> [super::aggregates::AggregateKind; super::aggregates::AggregateKind::ALL.len()] {
    super::aggregates::AggregateKind::ALL
}
