//! The production feature store: aggregates in Redis hashes, shared by every
//! replica.
//!
//! Keys (`{ns}` is the configured namespace, "detour" by default):
//!
//! | key | type | holds |
//! | --- | --- | --- |
//! | `{ns}:carrier:{carrier}` | record | shipment outcome counters of a carrier |
//! | `{ns}:lane:{origin}:{destination}` | record | the same, for a lane over all carriers |
//! | `{ns}:carrier_lane:{carrier}:{origin}:{destination}` | record | the same, per carrier-lane |
//! | `{ns}:site:{site}` | record | order counters and the latest snapshot gauges of a site |
//! | `{ns}:inventory:{site}:{sku}` | record | units on hand (gauge) |
//! | `{ns}:origin:{location}` | record | shipment outcome counters of everything leaving a location |
//! | `{ns}:destination:{location}` | record | the same, for everything arriving at a location |
//! | `{ns}:site_region:{site}:{region}` | record | order outcome counters of one site serving one region |
//! | `{ns}:seen:{bucket}` | set, expires whole | ids of the events applied in one time bucket (dedupe) |
//! | `{ns}:entities:{bucket}` | hash, expires whole | field `shipment:{id}` or `order:{id}`: the state of an ingested shipment or order written in one time bucket — its version (a little-endian double), then its JSON; the newest version over the live buckets is the entity |
//! | `{ns}:lane_carriers:{origin}:{destination}` | set | carriers seen serving the lane |
//! | `{ns}:refused:{…}` | string, 60 s TTL | an ingest round in which a chunk held an id seen before: the chunks after it wait for the retry |
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
//! see [`RedisFeatureStore::buckets`]) instead of a key with its own TTL each:
//! an ingest call then writes them with one command per chunk, not one per event.
//!
//! Every call is bounded by a timeout; the connection reconnects on its own after
//! Redis comes back, so callers only ever see [`FeatureError`]s, never a hang.

use std::collections::HashSet;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ErrorKind, RedisError, ServerErrorKind};

use super::aggregates::{
    AggregateKey, AggregateKind, AggregateRecord, MAX_COUNTER_FIELDS, MAX_GAUGES, WINDOWS,
};
use super::batch::Folded;
use super::coalesce::{Coalescer, MAX_COALESCED_KEYS};

type FoldHasher = foldhash::fast::RandomState;
use super::{
    ApplyOutcome, Entity, EventUpdates, FeatureError, FeatureStore, FetchRequest, Fetched,
};

const APPLY_EVENT_LUA: &str = include_str!("apply_event.lua");
/// Events per script run: large enough that many share each record write, small
/// enough that one run holds Redis for a few milliseconds at most.
const APPLY_CHUNK: usize = 500;
/// Time buckets of event ids and entities read by every ingest and every
/// entity lookup (see [`RedisFeatureStore::buckets`]).
pub const BUCKETS: usize = 6;

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
    reads: std::sync::Arc<Coalescer>,
    settings: RedisSettings,
    script: redis::Script,
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
        let bad_url = |e: RedisError| FeatureError::Unavailable(format!("bad Redis URL: {e}"));
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
        let connection = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| FeatureError::Unavailable(e.to_string()))?;
        Ok(RedisFeatureStore {
            reads: std::sync::Arc::new(Coalescer::new(connection.clone())),
            connection,
            script: redis::Script::new(APPLY_EVENT_LUA),
            settings,
        })
    }

    /// The Redis key of a record.
    pub fn record_key(&self, key: &AggregateKey) -> String {
        format!("{}:{}:{}", self.settings.namespace, key.kind.name(), key.id)
    }

    /// The time buckets that may hold event ids and entities at `now` (Unix
    /// seconds) — the current one first (the one written to), then the next
    /// one, then the four before — and when the current one expires.
    ///
    /// A bucket spans a quarter of the dedupe TTL and expires a TTL after it
    /// ends, so whatever is written to it is kept for at least the TTL and at
    /// most a quarter longer; the current bucket and the four before it cover
    /// everything still kept. The next bucket is read too, for what a replica
    /// whose clock runs ahead (by less than a bucket) has already written there.
    pub fn buckets(&self, now: u64) -> ([u64; BUCKETS], u64) {
        let ttl = self.settings.dedupe_ttl.as_secs().max(1);
        let width = ttl.div_ceil(4);
        let current = now / width;
        let buckets = std::array::from_fn(|i| match i {
            0 => current,
            1 => current + 1,
            back => current.saturating_sub(back as u64 - 1),
        });
        (buckets, (current + 1) * width + ttl)
    }

    /// A key no other round of any call uses: set (briefly) by the first chunk
    /// of a round that is refused, so the chunks after it hold back.
    fn round_marker(&self) -> String {
        static ROUNDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        format!(
            "{}:refused:{}:{nanos}:{}",
            self.settings.namespace,
            std::process::id(),
            ROUNDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        )
    }

    /// The Redis key of the set of event ids applied in a bucket.
    pub fn seen_key(&self, bucket: u64) -> String {
        format!("{}:seen:{bucket}", self.settings.namespace)
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

    /// Runs a Redis call under the timeout. A call that fails because the
    /// connection broke is tried once more: the manager reconnects meanwhile, so
    /// the first call after Redis returns succeeds instead of failing. Every call
    /// here is idempotent (reads, and event applications deduplicated by id).
    async fn run<T, F, Fut>(&self, call: F) -> Result<T, FeatureError>
    where
        F: Fn(ConnectionManager) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        self.run_within(self.settings.timeout, call).await
    }

    /// The deadline of a read of `keys` records: the configured one, longer for
    /// very large reads (a 10,000-item batch reads some 60,000 records).
    fn read_deadline(&self, keys: usize) -> Duration {
        self.settings.timeout * (1 + keys as u32 / 2_000)
    }

    /// [`Self::run`] with its own deadline per attempt.
    async fn run_within<T, F, Fut>(&self, deadline: Duration, call: F) -> Result<T, FeatureError>
    where
        F: Fn(ConnectionManager) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        let first = within(deadline, call(self.connection.clone())).await?;
        match first {
            Err(error) if is_broken_connection(&error) => {
                within(deadline, call(self.connection.clone()))
                    .await?
                    .map_err(to_feature_error)
            }
            other => other.map_err(to_feature_error),
        }
    }

    /// The script run that applies `events` — all of them, or none if any id
    /// was seen before — folded into one change per record, entity and lane set.
    fn apply_command<'a>(
        &self,
        events: impl Iterator<Item = &'a EventUpdates> + Clone,
        round_marker: &str,
    ) -> Result<redis::Cmd, FeatureError> {
        let folded = Folded::of(events.clone());
        let ids = events.clone().count();
        let (buckets, expire_at) = self.buckets(unix_now());
        let mut command = redis::cmd("EVALSHA");
        command
            .arg(self.script.get_hash())
            .arg(folded.records.len() + 2 * BUCKETS + folded.lanes.len() + 1);
        for (key, _) in &folded.records {
            command.arg(self.record_key(key));
        }
        for bucket in buckets {
            command.arg(self.entity_key(bucket));
        }
        for ((origin, destination), _) in &folded.lanes {
            command.arg(self.lane_key(origin, destination));
        }
        for bucket in buckets {
            command.arg(self.seen_key(bucket));
        }
        command.arg(round_marker);
        command.arg(expire_at).arg(BUCKETS).arg(WINDOWS.len());
        for window in WINDOWS {
            command.arg(window.tau_secs);
        }
        command
            .arg(folded.records.len())
            .arg(folded.entities.len())
            .arg(folded.lanes.len())
            .arg(ids);
        for event in events {
            command.arg(&event.event_id);
        }
        let mut bytes = Vec::with_capacity(8 * (2 + MAX_COUNTER_FIELDS + MAX_GAUGES));
        for (key, record) in &folded.records {
            encode_record(key.kind, record, &mut bytes);
            command
                .arg(key.kind.counters().len() * WINDOWS.len())
                .arg(&bytes[..]);
        }
        for write in &folded.entities {
            bytes.clear();
            bytes.extend_from_slice(&write.version.to_le_bytes());
            serde_json::to_writer(&mut bytes, &write.entity)
                .map_err(|e| FeatureError::Corrupt(e.to_string()))?;
            command.arg(write.key.suffix()).arg(&bytes[..]);
        }
        for (_, carriers) in &folded.lanes {
            command.arg(carriers.len()).arg(carriers);
        }
        Ok(command)
    }

    /// Runs script calls in one pipeline, loading the script first if Redis
    /// forgot it; each call answers the positions of ids it found already seen.
    async fn run_scripts(
        &self,
        pipeline: &redis::Pipeline,
        deadline: Duration,
    ) -> Result<Vec<Vec<usize>>, FeatureError> {
        let script = &self.script;
        self.run_within(deadline, |mut connection| async move {
            match pipeline.query_async(&mut connection).await {
                Err(error) if error.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                    // Redis restarted and forgot the script, so no EVALSHA ran:
                    // load it and go again.
                    script.prepare_invoke().load_async(&mut connection).await?;
                    pipeline.query_async(&mut connection).await
                }
                other => other,
            }
        })
        .await
    }

    /// The Redis key of the hash of entities written in a bucket; an entity's
    /// field there is [`super::EntityKey::suffix`].
    pub fn entity_key(&self, bucket: u64) -> String {
        format!("{}:entities:{bucket}", self.settings.namespace)
    }

    /// The Redis key of the set of carriers seen on a lane.
    pub fn lane_key(&self, origin: &str, destination: &str) -> String {
        format!(
            "{}:lane_carriers:{origin}:{destination}",
            self.settings.namespace
        )
    }
}

impl FeatureStore for RedisFeatureStore {
    async fn fetch(
        &self,
        keys: &[AggregateKey],
    ) -> Result<Vec<Option<AggregateRecord>>, FeatureError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut command = redis::cmd("MGET");
        for key in keys {
            command.arg(self.record_key(key));
        }
        let (command, reads) = (&command, &self.reads);
        let coalesce = keys.len() <= MAX_COALESCED_KEYS;
        let answer: redis::Value = self
            .run_within(
                self.read_deadline(keys.len()),
                |mut connection| async move {
                    if coalesce {
                        reads.query(command.clone()).await
                    } else {
                        command.query_async(&mut connection).await
                    }
                },
            )
            .await?;
        parse_records(keys, &strings_of(answer, keys.len())?)
    }

    async fn fetch_all(&self, request: &FetchRequest) -> Result<Fetched, FeatureError> {
        let mut pipeline = redis::pipe();
        let records = !request.records.is_empty();
        if records {
            let command = pipeline.cmd("MGET");
            for key in &request.records {
                command.arg(self.record_key(key));
            }
        }
        for (origin, destination) in &request.lanes {
            pipeline
                .cmd("SMEMBERS")
                .arg(self.lane_key(origin, destination));
        }
        let entities = !request.entities.is_empty();
        if entities {
            // An entity may sit in any live bucket; the newest version wins.
            for bucket in self.buckets(unix_now()).0 {
                let command = pipeline.cmd("HMGET").arg(self.entity_key(bucket));
                for key in &request.entities {
                    command.arg(key.suffix());
                }
            }
        }
        let commands =
            usize::from(records) + request.lanes.len() + if entities { BUCKETS } else { 0 };
        if commands == 0 {
            return Ok(Fetched::default());
        }
        let pipeline = &pipeline;
        let deadline = self.read_deadline(request.records.len() + request.entities.len());
        let answers: Vec<redis::Value> = self
            .run_within(deadline, |mut connection| async move {
                pipeline.query_async(&mut connection).await
            })
            .await?;
        if answers.len() != commands {
            return Err(FeatureError::Corrupt(format!(
                "{} answers for {commands} commands",
                answers.len()
            )));
        }
        let corrupt = |e: redis::ParsingError| FeatureError::Corrupt(e.to_string());
        let mut answers = answers.into_iter();
        let mut fetched = Fetched::default();
        if records {
            let values = strings_of(answers.next().expect("counted"), request.records.len())?;
            fetched.records = parse_records(&request.records, &values)?;
        }
        for _ in &request.lanes {
            let mut carriers: Vec<String> =
                redis::from_redis_value(answers.next().expect("counted")).map_err(corrupt)?;
            carriers.sort();
            fetched.lane_carriers.push(carriers);
        }
        if entities {
            let mut newest: Vec<Option<(f64, redis::Value)>> = vec![None; request.entities.len()];
            for answer in answers.by_ref().take(BUCKETS) {
                for (best, value) in newest
                    .iter_mut()
                    .zip(strings_of(answer, request.entities.len())?)
                {
                    let version = match &value {
                        redis::Value::BulkString(bytes) if bytes.len() >= 8 => {
                            f64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"))
                        }
                        redis::Value::Nil => continue,
                        other => {
                            return Err(FeatureError::Corrupt(format!("stored entity: {other:?}")));
                        }
                    };
                    if best.as_ref().is_none_or(|(v, _)| version > *v) {
                        *best = Some((version, value));
                    }
                }
            }
            for best in newest {
                fetched.entities.push(match best {
                    Some((_, value)) => parse_entity(&value)?,
                    None => None,
                });
            }
        }
        Ok(fetched)
    }

    async fn apply(&self, events: &[EventUpdates]) -> Result<Vec<ApplyOutcome>, FeatureError> {
        let mut outcomes = vec![ApplyOutcome::Applied; events.len()];
        // An id repeated within the call counts once, as the first occurrence.
        let mut ids = HashSet::with_capacity_and_hasher(events.len(), FoldHasher::default());
        let mut first: Vec<usize> = Vec::with_capacity(events.len());
        for (i, event) in events.iter().enumerate() {
            if ids.insert(event.event_id.as_str()) {
                first.push(i);
            } else {
                outcomes[i] = ApplyOutcome::Duplicate;
            }
        }
        // Every chunk is folded as if none of its events were seen before; a
        // chunk that holds one that was is refused whole and folded again without
        // it — a second round trip only when duplicates arrive. The chunks after
        // a refused one wait for that retry too (the round's marker tells them),
        // so the call's events are applied in their order.
        let mut pending: Vec<Vec<usize>> = first.chunks(APPLY_CHUNK).map(<[_]>::to_vec).collect();
        while !pending.is_empty() {
            let marker = self.round_marker();
            let mut pipeline = redis::pipe();
            for chunk in &pending {
                pipeline
                    .add_command(self.apply_command(chunk.iter().map(|&i| &events[i]), &marker)?);
            }
            let events_sent: usize = pending.iter().map(Vec::len).sum();
            // Applying takes Redis microseconds an event: scale the deadline.
            let deadline = self.settings.timeout * (1 + events_sent as u32 / 50);
            let answers = self.run_scripts(&pipeline, deadline).await?;
            let mut retry = Vec::new();
            for (chunk, seen) in pending.into_iter().zip(answers) {
                if seen.is_empty() {
                    continue;
                }
                if seen == [0] {
                    retry.push(chunk); // deferred behind a refused chunk
                    continue;
                }
                let mut rest = Vec::with_capacity(chunk.len());
                for (position, i) in chunk.into_iter().enumerate() {
                    if seen.contains(&(position + 1)) {
                        outcomes[i] = ApplyOutcome::Duplicate;
                    } else {
                        rest.push(i);
                    }
                }
                if !rest.is_empty() {
                    retry.push(rest);
                }
            }
            pending = retry;
        }
        Ok(outcomes)
    }

    fn backend_name(&self) -> &'static str {
        "redis"
    }
}

/// Runs one attempt under a deadline; a timeout is an error, the call's own
/// result is returned as it is.
async fn within<T>(
    deadline: Duration,
    call: impl Future<Output = Result<T, RedisError>>,
) -> Result<Result<T, RedisError>, FeatureError> {
    tokio::time::timeout(deadline, call)
        .await
        .map_err(|_| FeatureError::Timeout(deadline.as_millis() as u64))
}

/// The values of an `MGET` or `HMGET` answer for `count` keys or fields.
fn strings_of(answer: redis::Value, count: usize) -> Result<Vec<redis::Value>, FeatureError> {
    match answer {
        redis::Value::Array(values) if values.len() == count => Ok(values),
        redis::Value::Array(values) => Err(FeatureError::Corrupt(format!(
            "{} answers for {count} keys",
            values.len()
        ))),
        other => Err(FeatureError::Corrupt(format!("MGET answered {other:?}"))),
    }
}

/// Reads the records among an `MGET` answer's values, without copying them.
fn parse_records(
    keys: &[AggregateKey],
    values: &[redis::Value],
) -> Result<Vec<Option<AggregateRecord>>, FeatureError> {
    keys.iter()
        .zip(values)
        .map(|(key, value)| match value {
            redis::Value::Nil => Ok(None),
            redis::Value::BulkString(bytes) => parse_record(key.kind, bytes).map(Some),
            other => Err(FeatureError::Corrupt(format!("record {key}: {other:?}"))),
        })
        .collect()
}

/// Reads a stored entity: its version (8 bytes, skipped) then its JSON.
fn parse_entity(value: &redis::Value) -> Result<Option<Entity>, FeatureError> {
    match value {
        redis::Value::Nil => Ok(None),
        redis::Value::BulkString(bytes) if bytes.len() >= 8 => serde_json::from_slice(&bytes[8..])
            .map(Some)
            .map_err(|e| FeatureError::Corrupt(format!("stored entity: {e}"))),
        other => Err(FeatureError::Corrupt(format!("stored entity: {other:?}"))),
    }
}

/// Reads a stored record: little-endian doubles in
/// [`field_names`](super::aggregates::field_names) order, NaN
/// for a clock that was never set.
fn parse_record(kind: AggregateKind, bytes: &[u8]) -> Result<AggregateRecord, FeatureError> {
    let counters = kind.counters().len() * WINDOWS.len();
    let gauges = kind.gauges().len();
    if bytes.len() != 8 * (2 + counters + gauges) || counters > MAX_COUNTER_FIELDS {
        return Err(FeatureError::Corrupt(format!(
            "record of kind {} has {} bytes",
            kind.name(),
            bytes.len()
        )));
    }
    let number = |i: usize| {
        let mut raw = [0u8; 8];
        raw.copy_from_slice(&bytes[8 * i..8 * i + 8]);
        f64::from_le_bytes(raw)
    };
    let clock = |i: usize| Some(number(i)).filter(|x| !x.is_nan());
    let mut record = AggregateRecord {
        counters_at: clock(0),
        gauges_at: clock(1 + counters),
        ..AggregateRecord::default()
    };
    for i in 0..counters {
        record.counters[i] = number(1 + i);
    }
    for g in 0..gauges {
        record.gauges[g] = number(2 + counters + g);
    }
    Ok(record)
}

/// Seconds since the Unix epoch, by this machine's clock.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Writes a record as [`parse_record`] reads it.
fn encode_record(kind: AggregateKind, record: &AggregateRecord, out: &mut Vec<u8>) {
    let counters = kind.counters().len() * WINDOWS.len();
    let clock = |at: Option<f64>| at.unwrap_or(f64::NAN).to_le_bytes();
    out.clear();
    out.extend_from_slice(&clock(record.counters_at));
    for value in &record.counters[..counters] {
        out.extend_from_slice(&value.to_le_bytes());
    }
    out.extend_from_slice(&clock(record.gauges_at));
    for value in &record.gauges[..kind.gauges().len()] {
        out.extend_from_slice(&value.to_le_bytes());
    }
}

fn is_broken_connection(error: &RedisError) -> bool {
    error.is_io_error() || error.is_connection_dropped() || error.is_connection_refusal()
}

fn to_feature_error(error: RedisError) -> FeatureError {
    FeatureError::Unavailable(error.to_string())
}
