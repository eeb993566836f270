//! Settings, layered: built-in defaults, then a TOML file, then `DETOUR_*`
//! environment variables, then command-line flags. Every layer speaks the same
//! keys (`listen`, `redis`, `models`, ...), so `--redis URL`, `DETOUR_REDIS=URL`
//! and `redis = "URL"` in the file are one setting.
//!
//! The environment is read through a lookup function, so tests pass a map.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::recommend::Policy;

/// Prefix of environment variables: `DETOUR_LISTEN` sets `listen`.
pub const ENV_PREFIX: &str = "DETOUR_";
/// Default ceiling of each table of the embedded store: measured with
/// `bench/memory.sh` on the demo network, about 195 MB resident once full, with
/// a peak near 270 MB while the tables grew (README).
pub const DEFAULT_MEMORY_MAX_ENTRIES: usize = 250_000;

/// Every setting of the server.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address the gRPC server listens on.
    pub listen: SocketAddr,
    /// Redis URL; the in-memory store when unset.
    pub redis: Option<String>,
    /// Directory holding the model artifacts and `network.toml`; a relative
    /// path is resolved against the working directory. It must exist.
    pub models: PathBuf,
    /// Prefix of every Redis key.
    pub namespace: String,
    /// Deadline of one Redis call, in milliseconds.
    pub redis_timeout_ms: u64,
    /// How long an event id is remembered for dedupe, in hours.
    pub dedupe_ttl_hours: u64,
    /// Without Redis: the most entries each table of the embedded store holds
    /// (aggregate records, event ids, orders and shipments, lanes); past it the
    /// least recently written are forgotten. README gives the memory it takes.
    pub memory_max_entries: usize,
    /// A delivery later than scheduled by more than this is a carrier failure.
    pub sla_grace_minutes: f64,
    /// How long in-flight requests may run after a shutdown signal, in seconds.
    pub shutdown_grace_secs: u64,
    /// "text" or "json".
    pub log_format: LogFormat,
    /// Cost of a failed shipment leg, for ranking reroutes.
    pub reroute_failure_cost: f64,
    /// Cost of a fallen-out order, for ranking reallocations.
    pub reallocation_failure_cost: f64,
    /// Options costing more than this above the current plan need approval.
    pub approval_cost_delta: f64,
    /// Risk at or below which a carrier counts as safe (else a promise adjustment
    /// is offered).
    pub safe_risk: f64,
    /// Threads serving requests; 0 (the default) is one per core. Where the
    /// server shares its cores with Redis or other busy processes, fewer answer
    /// single calls faster (threads that outnumber the free cores spend their
    /// time waking each other) and batches somewhat slower.
    pub workers: usize,
    /// The token `ModelAdmin` callers must present (`authorization: Bearer
    /// …`); admin is disabled without one.
    pub admin_token: Option<String>,
    /// How much worse (relative) a deployed version's held-out ROC-AUC, Brier
    /// score or log loss may be than the active version's before the deploy
    /// gate refuses it without `force`.
    pub metric_tolerance: f64,
    /// Whether ingest feeds the anomaly monitor (series, detectors, alerts
    /// on `WatchAnomalies`); off only to measure what it costs.
    pub anomalies: bool,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines, for a terminal.
    Text,
    /// One JSON object a line, for a log collector.
    Json,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            redis: None,
            models: PathBuf::from("models"),
            namespace: "detour".to_string(),
            redis_timeout_ms: 50,
            dedupe_ttl_hours: 7 * 24,
            memory_max_entries: DEFAULT_MEMORY_MAX_ENTRIES,
            sla_grace_minutes: 15.0,
            shutdown_grace_secs: 10,
            log_format: LogFormat::Text,
            reroute_failure_cost: Policy::REROUTE.failure_cost,
            reallocation_failure_cost: Policy::REALLOCATION.failure_cost,
            approval_cost_delta: Policy::REROUTE.approval_cost_delta,
            safe_risk: Policy::REROUTE.safe_risk,
            workers: 0,
            admin_token: None,
            metric_tolerance: 0.02,
            anomalies: true,
        }
    }
}

/// Why the settings could not be assembled.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file's path as given.
        path: String,
        /// Why reading it failed.
        source: std::io::Error,
    },
    /// The layers (`origin`) gave settings that are malformed or do not fit
    /// together; `detail` lists every problem found, separated by "; ".
    #[error("invalid settings ({origin}): {detail}")]
    Invalid {
        /// Where the settings came from: the file, or every layer read, earliest
        /// first, joined by " < ".
        origin: String,
        /// What is wrong.
        detail: String,
    },
}

impl Config {
    /// Assembles settings from the optional file, the environment (through
    /// `env`) and flags given as `(key, value)` pairs, later layers winning.
    pub fn load(
        file: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
        flags: &[(&str, String)],
    ) -> Result<Self, ConfigError> {
        let mut table = toml::Table::new();
        let mut origin = vec!["defaults".to_string()];
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.display().to_string(),
                source,
            })?;
            table = text
                .parse()
                .map_err(|e: toml::de::Error| ConfigError::Invalid {
                    origin: path.display().to_string(),
                    detail: e.to_string(),
                })?;
            origin.push(path.display().to_string());
        }
        for key in KEYS {
            let var = format!("{ENV_PREFIX}{}", key.to_uppercase());
            if let Some(raw) = env(&var) {
                table.insert(key.to_string(), scalar(key, &raw));
                origin.push(var);
            }
        }
        for (key, raw) in flags {
            table.insert(key.to_string(), scalar(key, raw));
            origin.push(format!("--{}", key.replace('_', "-")));
        }
        let config: Config =
            toml::Value::Table(table)
                .try_into()
                .map_err(|e: toml::de::Error| ConfigError::Invalid {
                    origin: origin.join(" < "),
                    detail: e.to_string(),
                })?;
        let problems = config.problems();
        if !problems.is_empty() {
            return Err(ConfigError::Invalid {
                origin: origin.join(" < "),
                detail: problems.join("; "),
            });
        }
        Ok(config)
    }

    /// [`Config::redis_timeout_ms`] as a duration.
    pub fn redis_timeout(&self) -> Duration {
        Duration::from_millis(self.redis_timeout_ms)
    }

    /// [`Config::dedupe_ttl_hours`] as a duration.
    pub fn dedupe_ttl(&self) -> Duration {
        Duration::from_secs(self.dedupe_ttl_hours * 3600)
    }

    /// [`Config::shutdown_grace_secs`] as a duration.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }

    /// The reroute ranking policy these settings give.
    pub fn reroute_policy(&self) -> Policy {
        Policy {
            failure_cost: self.reroute_failure_cost,
            approval_cost_delta: self.approval_cost_delta,
            safe_risk: self.safe_risk,
            ..Policy::REROUTE
        }
    }

    /// The reallocation ranking policy these settings give.
    pub fn reallocation_policy(&self) -> Policy {
        Policy {
            failure_cost: self.reallocation_failure_cost,
            approval_cost_delta: self.approval_cost_delta,
            safe_risk: self.safe_risk,
            ..Policy::REALLOCATION
        }
    }

    /// Every problem of these settings (empty when there is none), so that an
    /// operator fixes them all in one go.
    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.redis_timeout_ms == 0 {
            problems.push("redis_timeout_ms must be at least 1".into());
        }
        if self.memory_max_entries < 1_000 {
            problems.push("memory_max_entries must be at least 1000".into());
        }
        if self.dedupe_ttl_hours == 0 {
            problems.push("dedupe_ttl_hours must be at least 1".into());
        }
        if !(self.sla_grace_minutes.is_finite() && self.sla_grace_minutes >= 0.0) {
            problems.push("sla_grace_minutes must be a number ≥ 0".into());
        }
        for (name, value) in [
            ("reroute_failure_cost", self.reroute_failure_cost),
            ("reallocation_failure_cost", self.reallocation_failure_cost),
            ("approval_cost_delta", self.approval_cost_delta),
        ] {
            if !(value.is_finite() && value >= 0.0) {
                problems.push(format!("{name} must be a number ≥ 0"));
            }
        }
        if !(self.metric_tolerance.is_finite() && self.metric_tolerance >= 0.0) {
            problems.push("metric_tolerance must be a number ≥ 0".into());
        }
        if self
            .admin_token
            .as_ref()
            .is_some_and(|t| t.trim().len() < 16 || t.trim() != t)
        {
            problems.push(
                "admin_token must be at least 16 characters, without surrounding spaces".into(),
            );
        }
        if self.workers > 1024 {
            problems.push("workers must be at most 1024 (0: one per core)".into());
        }
        if !(0.0..=1.0).contains(&self.safe_risk) {
            problems.push("safe_risk must be within [0, 1]".into());
        }
        if self.namespace.is_empty() || self.namespace.contains(char::is_whitespace) {
            problems.push("namespace must be non-empty, without spaces".into());
        }
        if let Some(url) = &self.redis {
            problems.extend(redis_url_problem(url));
        }
        problems.extend(models_problem(&self.models));
        problems
    }
}

/// Why `url` cannot be the Redis URL, if it cannot: read by the redis client's
/// own parser, so that a URL refused here is one the store could not have used
/// (and a malformed one stops the start instead of leaving the store
/// unavailable).
fn redis_url_problem(url: &str) -> Option<String> {
    use redis::IntoConnectionInfo;
    if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
        return Some(format!("redis must be a redis:// URL, got {url:?}"));
    }
    url.into_connection_info()
        .err()
        .map(|e| format!("redis URL {url:?} is malformed: {e}"))
}

/// Why `models` cannot be the models directory, if it cannot: it must exist.
/// A relative path is resolved against the working directory, never against
/// where the binary was built, so the message says where it looked.
fn models_problem(models: &Path) -> Option<String> {
    if models.is_dir() {
        return None;
    }
    let looked_at = std::path::absolute(models).unwrap_or_else(|_| models.to_path_buf());
    let relative = if models.is_relative() {
        format!(
            " (the relative path `{}`, resolved against the working directory)",
            models.display()
        )
    } else {
        String::new()
    };
    Some(format!(
        "no models directory at {}{relative}: set --models or DETOUR_MODELS (or `models` \
         in the config file) to the directory of the model artifacts and network.toml",
        looked_at.display()
    ))
}

/// Every key a layer may set.
const KEYS: [&str; 18] = [
    "listen",
    "redis",
    "models",
    "namespace",
    "redis_timeout_ms",
    "dedupe_ttl_hours",
    "memory_max_entries",
    "sla_grace_minutes",
    "shutdown_grace_secs",
    "log_format",
    "reroute_failure_cost",
    "reallocation_failure_cost",
    "approval_cost_delta",
    "safe_risk",
    "workers",
    "admin_token",
    "metric_tolerance",
    "anomalies",
];

/// Keys whose values are text even when they look like numbers.
const TEXT_KEYS: [&str; 6] = [
    "listen",
    "redis",
    "models",
    "namespace",
    "log_format",
    "admin_token",
];

/// A raw environment or flag value as TOML: text for the text keys; otherwise a
/// number or boolean when it reads as one, text when not.
fn scalar(key: &str, raw: &str) -> toml::Value {
    if TEXT_KEYS.contains(&key) {
        return toml::Value::String(raw.to_string());
    }
    raw.parse::<i64>()
        .map(toml::Value::Integer)
        .or_else(|_| raw.parse::<f64>().map(toml::Value::Float))
        .or_else(|_| raw.parse::<bool>().map(toml::Value::Boolean))
        .unwrap_or_else(|_| toml::Value::String(raw.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |key| map.get(key).cloned()
    }

    #[test]
    fn later_layers_win() {
        let dir = std::env::temp_dir().join(format!("detour-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("detour.toml");
        std::fs::write(&file, "namespace = \"from-file\"\nredis_timeout_ms = 7\n").unwrap();
        let env = env_of(&[
            ("DETOUR_NAMESPACE", "2024"),
            ("DETOUR_LISTEN", "127.0.0.1:1"),
            ("DETOUR_WORKERS", "1"),
        ]);
        let flags = [("listen", "127.0.0.1:2".to_string())];
        let config = Config::load(Some(&file), &env, &flags).unwrap();
        assert_eq!(
            config.namespace, "2024",
            "a numeric-looking name stays text"
        );
        assert_eq!(config.redis_timeout_ms, 7);
        assert_eq!(config.listen, "127.0.0.1:2".parse().unwrap());
        assert_eq!(config.sla_grace_minutes, 15.0);
        assert_eq!(config.workers, 1);
    }

    #[test]
    fn bad_values_name_the_setting() {
        let env = env_of(&[("DETOUR_LISTEN", "not-an-address")]);
        let error = Config::load(None, &env, &[]).unwrap_err().to_string();
        assert!(error.contains("DETOUR_LISTEN"), "{error}");
        let env = env_of(&[("DETOUR_REDIS", "localhost:6379")]);
        let error = Config::load(None, &env, &[]).unwrap_err().to_string();
        assert!(error.contains("redis://"), "{error}");
        let env = env_of(&[("DETOUR_WORKERS", "many")]);
        let error = Config::load(None, &env, &[]).unwrap_err().to_string();
        assert!(error.contains("DETOUR_WORKERS"), "{error}");
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let env = env_of(&[
            ("DETOUR_REDIS_TIMEOUT_MS", "0"),
            ("DETOUR_SAFE_RISK", "2"),
            ("DETOUR_NAMESPACE", "two words"),
        ]);
        let error = Config::load(None, &env, &[]).unwrap_err().to_string();
        for problem in ["redis_timeout_ms", "safe_risk", "namespace"] {
            assert!(error.contains(problem), "{problem} missing from: {error}");
        }
        assert!(
            error.contains("DETOUR_SAFE_RISK"),
            "names the layers: {error}"
        );
    }

    #[test]
    fn a_malformed_redis_url_is_a_configuration_error() {
        for url in [
            "redis://:::bad",
            "redis://host:notaport",
            "redis://127.0.0.1:6379/notadb",
            "redis://127.0.0.1:99999",
        ] {
            let env = env_of(&[("DETOUR_REDIS", url)]);
            let error = Config::load(None, &env, &[]).unwrap_err().to_string();
            assert!(
                error.contains("malformed") && error.contains(url),
                "{url}: {error}"
            );
        }
        for url in [
            "redis://127.0.0.1:6379",
            "redis://localhost",
            "redis://:secret@127.0.0.1:6380/2",
        ] {
            let env = env_of(&[("DETOUR_REDIS", url)]);
            let config = Config::load(None, &env, &[]).unwrap();
            assert_eq!(config.redis.as_deref(), Some(url));
        }
    }

    #[test]
    fn a_missing_models_directory_says_where_it_looked_and_how_to_set_it() {
        // Tests run in the crate's directory, which holds the shipped `models`.
        assert_eq!(
            Config::load(None, &env_of(&[]), &[]).unwrap().models,
            Path::new("models")
        );
        let env = env_of(&[("DETOUR_MODELS", "no-such-models-dir")]);
        let error = Config::load(None, &env, &[]).unwrap_err().to_string();
        let looked_at = std::env::current_dir().unwrap().join("no-such-models-dir");
        assert!(
            error.contains(&looked_at.display().to_string()),
            "{looked_at:?} missing from: {error}"
        );
        assert!(error.contains("working directory"), "{error}");
        assert!(
            error.contains("--models") && error.contains("DETOUR_MODELS"),
            "{error}"
        );
    }
}
