//! The monitor's state in Redis, shared by every replica:
//!
//! | key | type | holds |
//! | --- | --- | --- |
//! | `{ns}:anomaly:series:{series}` | hash | `v` (version, bumped by every commit), `s` (the series' state, JSON), and one field per seasonal bucket (`all`, `d7`, `w31`: its moments as text) |
//! | `{ns}:anomaly:log` | stream | every alert change, field `e` (JSON: change and alert); trimmed to about [`LOG_ENTRIES`]; its ids are the cursors |
//! | `{ns}:anomaly:alerts` | hash | each alert's latest state (JSON, without its acknowledgement) |
//! | `{ns}:anomaly:acks` | hash | acknowledgements by alert id (JSON) |
//! | `{ns}:anomaly:recent` | sorted set | alert ids by when they last changed (ms); trimmed to [`RECENT_ALERTS`], never an open one |
//! | `{ns}:anomaly:open` | set | ids of the alerts open now |
//!
//! A commit is one script run per flush: it writes each series only if its
//! version is still the one loaded (so two replicas never both take a
//! point, and an episode opens once), and appends the series' alert changes
//! to the log in the same step. This file holds the series (load, cache,
//! commit); `log.rs` the alert log (entries after a cursor, listings,
//! acknowledgements, and the reader: each replica reads the log with a
//! blocking `XREAD` on a connection of its own and hands entries to its
//! subscribers).

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::evaluate::SeriesState;
use super::store::{Commit, LOG_ENTRIES, LoadRequest, Loaded, RECENT_ALERTS};
use crate::anomaly::{Bucket, Moments};
use crate::features::FeatureError;
use std::collections::HashMap;

mod log;

/// Commits the series of one flush: KEYS log, alerts, recent, acks, open,
/// then each series' hash; ARGV now (ms), then per series its expected
/// version, state, bucket count, (field, value)…, alert count, (id, change,
/// alert JSON)… . Writes each series only if its version is still the one
/// loaded, appending its alert changes to the log in the same step; answers
/// 1 or 0 per series.
const COMMIT: &str = r#"
local now = ARGV[1]
local i = 2
local answers = {}
for s = 6, #KEYS do
  local series = KEYS[s]
  local expected = tonumber(ARGV[i])
  local state = ARGV[i + 1]
  local buckets = tonumber(ARGV[i + 2])
  local fields = i + 3
  local alerts_at = fields + 2 * buckets
  local alerts = tonumber(ARGV[alerts_at])
  i = alerts_at + 1 + 3 * alerts
  local v = tonumber(redis.call('HGET', series, 'v') or '0')
  if v ~= expected then
    answers[#answers + 1] = 0
  else
    redis.call('HSET', series, 'v', v + 1, 's', state)
    for f = fields, alerts_at - 1, 2 do
      redis.call('HSET', series, ARGV[f], ARGV[f + 1])
    end
    for a = alerts_at + 1, alerts_at + 3 * alerts, 3 do
      local id, change, alert = ARGV[a], ARGV[a + 1], ARGV[a + 2]
      redis.call('HSET', KEYS[2], id, alert)
      redis.call('ZADD', KEYS[3], now, id)
      if change == 'resolved' then
        redis.call('SREM', KEYS[5], id)
      else
        redis.call('SADD', KEYS[5], id)
      end
      local ack = redis.call('HGET', KEYS[4], id)
      if ack then alert = string.sub(alert, 1, -2) .. ',"acknowledged":' .. ack .. '}' end
      redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV_LOG, '*', 'e',
        '{"change":"' .. change .. '","alert":' .. alert .. '}')
    end
    answers[#answers + 1] = 1
  end
end
local extra = redis.call('ZCARD', KEYS[3]) - ARGV_RECENT
if extra > 0 then
  -- The oldest changes go, but never an open alert (nor its acknowledgement).
  local old = redis.call('ZRANGE', KEYS[3], 0, extra - 1)
  for _, id in ipairs(old) do
    if redis.call('SISMEMBER', KEYS[5], id) == 0 then
      redis.call('ZREM', KEYS[3], id)
      redis.call('HDEL', KEYS[2], id)
      redis.call('HDEL', KEYS[4], id)
    end
  end
end
return answers
"#;

/// Acknowledges one alert: KEYS alerts, acks, log, recent; ARGV id, ack
/// JSON, now (ms). Answers the alert with its acknowledgement, or nil.
const ACKNOWLEDGE: &str = r#"
local alert = redis.call('HGET', KEYS[1], ARGV[1])
if not alert then return false end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[4], ARGV[3], ARGV[1])
alert = string.sub(alert, 1, -2) .. ',"acknowledged":' .. ARGV[2] .. '}'
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV_LOG, '*', 'e',
  '{"change":"acknowledged","alert":' .. alert .. '}')
return alert
"#;

/// Series kept after a commit at most; beyond, the cache starts afresh.
const CACHED_SERIES: usize = 100_000;

/// A series as this replica last committed it.
#[derive(Debug, Clone)]
struct Cached {
    version: u64,
    state: SeriesState,
    buckets: HashMap<Bucket, Moments>,
}

type Cache = HashMap<String, Cached, foldhash::fast::RandomState>;

/// Series, alerts and the alert log in Redis.
#[derive(Clone)]
pub struct RedisAnomalies {
    /// The series this replica committed last, as committed: while Redis
    /// still holds the same version, a flush need not read them again (a
    /// commit whose version moved is refused, and the series is read anew).
    cache: Arc<std::sync::Mutex<Cache>>,
    connection: ConnectionManager,
    client: redis::Client,
    prefix: String,
    timeout: Duration,
    commit: Arc<redis::Script>,
    acknowledge: Arc<redis::Script>,
}

impl std::fmt::Debug for RedisAnomalies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisAnomalies")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

pub(super) fn unavailable(error: redis::RedisError) -> FeatureError {
    FeatureError::redis(error)
}

fn script(text: &str) -> redis::Script {
    redis::Script::new(
        &text
            .replace("ARGV_LOG", &LOG_ENTRIES.to_string())
            .replace("ARGV_RECENT", &RECENT_ALERTS.to_string()),
    )
}

pub(super) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl RedisAnomalies {
    /// The store at `url` under `namespace`; connects lazily.
    pub fn new(url: &str, namespace: &str, timeout: Duration) -> Result<Self, FeatureError> {
        let client = redis::Client::open(url).map_err(unavailable)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(200));
        let connection =
            ConnectionManager::new_lazy_with_config(client.clone(), config).map_err(unavailable)?;
        Ok(RedisAnomalies {
            cache: Default::default(),
            connection,
            client,
            prefix: format!("{namespace}:anomaly"),
            timeout,
            commit: Arc::new(script(COMMIT)),
            acknowledge: Arc::new(script(ACKNOWLEDGE)),
        })
    }

    pub(super) fn key(&self, tail: &str) -> String {
        format!("{}:{tail}", self.prefix)
    }

    pub(super) async fn run<T>(
        &self,
        call: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, FeatureError> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(result) => result.map_err(unavailable),
            Err(_) => Err(FeatureError::Timeout(self.timeout.as_millis() as u64)),
        }
    }

    /// Runs a pipeline of script calls, loading the script first if Redis
    /// forgot it.
    pub(super) async fn run_scripts<T: redis::FromRedisValue>(
        &self,
        pipeline: &redis::Pipeline,
        script: &redis::Script,
    ) -> Result<T, FeatureError> {
        let mut connection = self.connection.clone();
        self.run(async {
            match pipeline.query_async(&mut connection).await {
                Err(error)
                    if error.kind()
                        == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
                {
                    script.prepare_invoke().load_async(&mut connection).await?;
                    pipeline.query_async(&mut connection).await
                }
                other => other,
            }
        })
        .await
    }

    pub(super) async fn load(&self, requests: &[LoadRequest]) -> Result<Vec<Loaded>, FeatureError> {
        // What the cache can answer (the state and every bucket asked for).
        let mut answers: Vec<Option<Loaded>> = {
            let cache = self.cache.lock().expect("series cache poisoned");
            requests
                .iter()
                .map(|request| {
                    let cached = cache.get(&request.key)?;
                    let buckets = request
                        .buckets
                        .iter()
                        .map(|b| cached.buckets.get(b).map(|m| (*b, Some(*m))))
                        .collect::<Option<Vec<_>>>()?;
                    Some(Loaded {
                        version: cached.version,
                        state: Some(cached.state.clone()),
                        buckets,
                    })
                })
                .collect()
        };
        let missing: Vec<&LoadRequest> = requests
            .iter()
            .zip(&answers)
            .filter(|(_, a)| a.is_none())
            .map(|(r, _)| r)
            .collect();
        let mut read = self.read(&missing).await?.into_iter();
        for answer in answers.iter_mut().filter(|a| a.is_none()) {
            *answer = read.next();
        }
        Ok(answers
            .into_iter()
            .map(|a| a.expect("every request answered"))
            .collect())
    }

    /// Reads series from Redis, in one round trip.
    async fn read(&self, requests: &[&LoadRequest]) -> Result<Vec<Loaded>, FeatureError> {
        if requests.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipeline = redis::pipe();
        for request in requests {
            let command = pipeline
                .cmd("HMGET")
                .arg(self.key(&format!("series:{}", request.key)))
                .arg("v")
                .arg("s");
            for bucket in &request.buckets {
                command.arg(bucket.name());
            }
        }
        let mut connection = self.connection.clone();
        let answers: Vec<Vec<Option<String>>> =
            self.run(pipeline.query_async(&mut connection)).await?;
        requests
            .iter()
            .zip(answers)
            .map(|(request, mut fields)| {
                if fields.len() != 2 + request.buckets.len() {
                    return Err(FeatureError::corrupt(
                        "HMGET answered a wrong number of fields",
                    ));
                }
                let buckets = fields.split_off(2);
                let version = match &fields[0] {
                    None => 0,
                    Some(v) => v.parse().map_err(|_| {
                        FeatureError::corrupt(format!("series {}: version {v:?}", request.key))
                    })?,
                };
                let state = match fields[1].take() {
                    Some(text) => Some(serde_json::from_str(&text).map_err(|e| {
                        FeatureError::corrupt_with(format!("series {}: {e}", request.key), e)
                    })?),
                    None => None,
                };
                Ok(Loaded {
                    version,
                    state,
                    buckets: request
                        .buckets
                        .iter()
                        .zip(buckets)
                        .map(|(b, text)| (*b, text.as_deref().and_then(Moments::decode)))
                        .collect(),
                })
            })
            .collect()
    }

    pub(super) async fn commit(&self, commits: Vec<Commit>) -> Result<Vec<bool>, FeatureError> {
        if commits.is_empty() {
            return Ok(Vec::new());
        }
        let mut command = redis::cmd("EVALSHA");
        command
            .arg(self.commit.get_hash())
            .arg(5 + commits.len())
            .arg(self.key("log"))
            .arg(self.key("alerts"))
            .arg(self.key("recent"))
            .arg(self.key("acks"))
            .arg(self.key("open"));
        for commit in &commits {
            command.arg(self.key(&format!("series:{}", commit.key)));
        }
        command.arg(now_ms());
        for commit in &commits {
            let state = serde_json::to_string(&commit.state).map_err(|e| {
                FeatureError::corrupt_with(format!("series {}: {e}", commit.key), e)
            })?;
            command
                .arg(commit.expected)
                .arg(state)
                .arg(commit.buckets.len());
            for (bucket, moments) in &commit.buckets {
                command.arg(bucket.name()).arg(moments.encode());
            }
            command.arg(commit.alerts.len());
            for (change, alert) in &commit.alerts {
                let json = serde_json::to_string(alert)
                    .map_err(|e| FeatureError::corrupt_with("alert as JSON", e))?;
                command.arg(&alert.id).arg(change.name()).arg(json);
            }
        }
        let mut pipeline = redis::pipe();
        pipeline.add_command(command);
        let answered: Result<(Vec<i64>,), _> = self.run_scripts(&pipeline, &self.commit).await;
        let mut cache = self.cache.lock().expect("series cache poisoned");
        let answers = match answered {
            Ok((answers,)) if answers.len() == commits.len() => answers,
            other => {
                // Whether any was written is unknown: read them all anew.
                for commit in &commits {
                    cache.remove(&commit.key);
                }
                let (answers,) = other?;
                check_answered(answers.len(), commits.len())?;
                unreachable!("checked above")
            }
        };
        if cache.len() > CACHED_SERIES {
            cache.clear();
        }
        for (commit, answer) in commits.into_iter().zip(&answers) {
            if *answer == 1 {
                let cached = cache.entry(commit.key).or_insert_with(|| Cached {
                    version: commit.expected,
                    state: SeriesState::default(),
                    buckets: HashMap::new(),
                });
                // Buckets cached from an older version may since have been
                // written by another replica: keep them only when this
                // commit followed the cached version itself.
                if cached.version != commit.expected {
                    cached.buckets.clear();
                }
                cached.version = commit.expected + 1;
                cached.state = commit.state;
                cached.buckets.extend(commit.buckets);
            } else {
                cache.remove(&commit.key);
            }
        }
        Ok(answers.into_iter().map(|a| a == 1).collect())
    }
}

fn check_answered(got: usize, want: usize) -> Result<(), FeatureError> {
    if got == want {
        Ok(())
    } else {
        Err(FeatureError::corrupt(format!(
            "the commit script answered {got} series of {want}"
        )))
    }
}
