//! The registry kept in Redis, for replicas that share it: each family's
//! [`FamilyState`] in one hash, an epoch that every change increments (what
//! replicas poll), each version's files in a hash of their own, and the last
//! admin actions in a list.
//!
//! A change is a compare-and-set on the epoch (a Lua script): two admins
//! acting at once through two replicas cannot both win, and the loser is told
//! to retry instead of overwriting.

use std::collections::HashMap;
use std::time::Duration;

use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::AdminAction;
use crate::models::ArtifactFiles;
use crate::models::repository::FamilyState;
use crate::schema::RiskKind;

/// How many admin actions Redis keeps.
pub const AUDIT_KEPT: isize = 1000;

/// Compare-and-set of one family's state: KEYS = epoch, state hash;
/// ARGV = expected epoch, family, state JSON. Returns the new epoch, or -1
/// when another change came first.
const PUT_STATE: &str = r"
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if current ~= tonumber(ARGV[1]) then return -1 end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
return redis.call('INCR', KEYS[1])
";

/// The registry's keys and connection.
#[derive(Clone)]
pub struct SharedRegistry {
    connection: ConnectionManager,
    prefix: String,
    timeout: Duration,
    put_state: redis::Script,
}

impl std::fmt::Debug for SharedRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedRegistry")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// A Redis failure, as text for the admin's answer and the stale flag.
pub type SharedError = String;

impl SharedRegistry {
    /// The registry at `url` under `namespace`; connects lazily.
    pub fn new(url: &str, namespace: &str, timeout: Duration) -> Result<Self, SharedError> {
        let client = redis::Client::open(url).map_err(|e| format!("bad Redis URL: {e}"))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(200));
        let connection = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| format!("Redis: {e}"))?;
        Ok(SharedRegistry {
            connection,
            prefix: format!("{namespace}:registry"),
            // Artifacts are megabytes: their reads and writes get longer than
            // a feature read.
            timeout: timeout.max(Duration::from_secs(5)),
            put_state: redis::Script::new(PUT_STATE),
        })
    }

    fn key(&self, tail: &str) -> String {
        format!("{}:{tail}", self.prefix)
    }

    /// A version's files are keyed by their identity too: two deploys of one
    /// version name with different content never write the same key, so the
    /// loser of the compare-and-set cannot replace the winner's files.
    fn files_key(&self, kind: RiskKind, version: &str, identity: &str) -> String {
        self.key(&format!("files:{}:{version}:{identity}", kind.name()))
    }

    async fn run<T>(
        &self,
        call: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, SharedError> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(format!("Redis: {e}")),
            Err(_) => Err(format!("Redis: no answer within {:?}", self.timeout)),
        }
    }

    /// The current epoch (0 before any change).
    pub async fn epoch(&self) -> Result<i64, SharedError> {
        let mut c = self.connection.clone();
        let key = self.key("epoch");
        let epoch: Option<i64> = self.run(c.get(key)).await?;
        Ok(epoch.unwrap_or(0))
    }

    /// The epoch and every family's state, read atomically.
    pub async fn states(&self) -> Result<(i64, HashMap<String, FamilyState>), SharedError> {
        let mut c = self.connection.clone();
        let (epoch, raw): (Option<i64>, HashMap<String, String>) = self
            .run(
                redis::pipe()
                    .atomic()
                    .get(self.key("epoch"))
                    .hgetall(self.key("state"))
                    .query_async(&mut c),
            )
            .await?;
        let mut states = HashMap::new();
        for (family, json) in raw {
            let state = serde_json::from_str(&json)
                .map_err(|e| format!("Redis holds an unreadable state of {family}: {e}"))?;
            states.insert(family, state);
        }
        Ok((epoch.unwrap_or(0), states))
    }

    /// Sets one family's state if the epoch is still `expected`; the new
    /// epoch, or `None` when another change came first.
    pub async fn put_state(
        &self,
        expected: i64,
        kind: RiskKind,
        state: &FamilyState,
    ) -> Result<Option<i64>, SharedError> {
        let json = serde_json::to_string(state).map_err(|e| e.to_string())?;
        let mut c = self.connection.clone();
        let mut invocation = self.put_state.key(self.key("epoch"));
        invocation
            .key(self.key("state"))
            .arg(expected)
            .arg(kind.name())
            .arg(json);
        let epoch: i64 = self.run(invocation.invoke_async(&mut c)).await?;
        Ok((epoch >= 0).then_some(epoch))
    }

    /// A version's files of one identity (empty when Redis has none).
    pub async fn files(
        &self,
        kind: RiskKind,
        version: &str,
        identity: &str,
    ) -> Result<ArtifactFiles, SharedError> {
        let mut c = self.connection.clone();
        let raw: HashMap<String, Vec<u8>> = self
            .run(c.hgetall(self.files_key(kind, version, identity)))
            .await?;
        Ok(ArtifactFiles {
            origin: format!("redis:{}/{version}", kind.name()),
            files: raw.into_iter().collect(),
        })
    }

    /// Stores a version's files (before the state that names it).
    pub async fn put_files(
        &self,
        kind: RiskKind,
        version: &str,
        identity: &str,
        files: &ArtifactFiles,
    ) -> Result<(), SharedError> {
        let mut c = self.connection.clone();
        let key = self.files_key(kind, version, identity);
        let mut pipe = redis::pipe();
        pipe.atomic().del(&key).ignore();
        for (name, bytes) in &files.files {
            pipe.hset(&key, name, bytes.as_slice()).ignore();
        }
        self.run(pipe.query_async::<()>(&mut c)).await
    }

    /// Forgets a version's files.
    pub async fn delete_files(
        &self,
        kind: RiskKind,
        version: &str,
        identity: &str,
    ) -> Result<(), SharedError> {
        let mut c = self.connection.clone();
        self.run(c.del::<_, ()>(self.files_key(kind, version, identity)))
            .await
    }

    /// Records an admin action.
    pub async fn push_action(&self, action: &AdminAction) -> Result<(), SharedError> {
        let json = serde_json::to_string(action).map_err(|e| e.to_string())?;
        let mut c = self.connection.clone();
        let key = self.key("audit");
        self.run(
            redis::pipe()
                .lpush(&key, json)
                .ignore()
                .ltrim(&key, 0, AUDIT_KEPT - 1)
                .ignore()
                .query_async::<()>(&mut c),
        )
        .await
    }

    /// The last `count` admin actions, newest first.
    pub async fn recent_actions(&self, count: usize) -> Result<Vec<AdminAction>, SharedError> {
        let mut c = self.connection.clone();
        let raw: Vec<String> = self
            .run(c.lrange(self.key("audit"), 0, count.saturating_sub(1) as isize))
            .await?;
        Ok(raw
            .iter()
            .filter_map(|json| serde_json::from_str(json).ok())
            .collect())
    }
}
