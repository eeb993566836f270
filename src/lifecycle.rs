//! The model lifecycle: versions deployed into the running service, checked
//! by the gate, compared in shadow or canary, promoted and rolled back, with
//! the registry's state kept where replicas and restarts find it.
//!
//! Every change is made under one lock, on a copy of the family's
//! [`FamilyState`]; the copy is persisted (the model repository's
//! `state.json`, or Redis with its compare-and-set) and only then served: a new
//! [`ModelSnapshot`] is built from models already loaded and swapped in
//! atomically. Loading, checking and warming a version run on the blocking
//! pool, before any state changes, so serving threads never wait on them and
//! a refused version changes nothing. Requests in flight finish on the
//! snapshot they took.
//!
//! With Redis, a poller on each replica reads the epoch every
//! [`POLL_INTERVAL`] and adopts any change (loading the versions it names from
//! Redis), so a deploy through one replica serves on all within a second. A
//! replica that cannot reach Redis keeps serving what it has loaded and
//! reports the registry as stale.
//!
//! Here: the public types and the changes (promote, rollback, shadow, canary,
//! unload) over one lock. Beside it: `deploy.rs` (a deployment end to end),
//! `gate.rs` (loading and checking a version, the requests' checks),
//! `held.rs` (what the lock guards, and the pure steps on it), `sync.rs`
//! (following Redis), `shared.rs` (the registry's keys in Redis) and
//! `audit.rs` (the admin log).

pub mod audit;
mod deploy;
mod gate;
mod held;
pub mod shared;
mod sync;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::models::repository::{
    AutoPromote, FamilyState, VersionInfo, artifact_dir, family_state, write_state,
};
use crate::models::{ArtifactFiles, LoadedModel, ModelError};
use crate::registry::{Comparison, ModelRegistry};
use crate::schema::RiskKind;
pub use audit::AdminAction;
use audit::{LocalAudit, bounded};
use gate::{check_auto_promote, check_percent, check_version_name, load_identified};
use held::{
    Held, build_snapshot, not_deployed, promote_in, recorded, require_loaded, set_candidate,
};
use shared::SharedRegistry;

/// How many of the last admin actions `list` shows.
const RECENT_LISTED: usize = 50;

/// How often a replica sharing Redis looks for changes.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// Who acts, as the admin API learned it.
pub type Actor = str;

/// Why a lifecycle call was refused; nothing changed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LifecycleError {
    /// The request or the artifact is malformed or fails the gate's checks.
    #[error("{0}")]
    Invalid(String),
    /// No such version.
    #[error("{0}")]
    NotFound(String),
    /// The state does not allow it (not loaded, nothing to roll back to,
    /// metrics worse than the active version's).
    #[error("{0}")]
    Precondition(String),
    /// The version exists with other content.
    #[error("{0}")]
    Exists(String),
    /// The shared registry could not be reached or changed meanwhile.
    #[error("{0}")]
    Unavailable(String),
}

/// How a deployed version starts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Start {
    /// Registered and loaded only.
    Idle,
    /// As the family's shadow.
    Shadow,
    /// As its canary, answering this percentage of entities.
    Canary(f64),
}

/// A deployment.
#[derive(Debug, Clone)]
pub struct Deploy {
    /// The family the caller means; `None` takes the manifest's.
    pub family: Option<String>,
    /// The artifact.
    pub files: ArtifactFiles,
    /// Override the metric check (only it), recorded.
    pub force: bool,
    /// How it starts.
    pub start: Start,
    /// Promote it once the comparison says so (with a shadow or canary start).
    pub auto_promote: Option<AutoPromote>,
}

/// What a deployment did.
#[derive(Debug, Clone, PartialEq)]
pub struct Deployed {
    /// The family.
    pub kind: RiskKind,
    /// The version.
    pub version: String,
    /// It was already registered with the same content: nothing changed.
    pub already: bool,
    /// The metric check was overridden and found it worse.
    pub forced_past: Option<String>,
}

/// One version as listed.
#[derive(Debug, Clone)]
pub struct VersionView {
    /// Its name.
    pub version: String,
    /// What was recorded when it was deployed.
    pub info: VersionInfo,
    /// Its manifest, when loaded here.
    pub model: Option<Arc<LoadedModel>>,
    /// Why this replica could not load it, if it could not.
    pub refused: Option<String>,
}

/// One family as listed.
#[derive(Debug, Clone)]
pub struct FamilyView {
    /// The family.
    pub kind: RiskKind,
    /// Its state.
    pub state: FamilyState,
    /// Every registered version.
    pub versions: Vec<VersionView>,
    /// The current comparison, or the last one.
    pub comparison: Option<Arc<Comparison>>,
}

/// The registry as listed.
#[derive(Debug, Clone)]
pub struct RegistryView {
    /// Every family.
    pub families: Vec<FamilyView>,
    /// "redis" or "directory".
    pub backend: &'static str,
    /// Why the state served here may be behind the shared one, if it may.
    pub stale: Option<String>,
    /// The last admin actions, newest first.
    pub recent: Vec<AdminAction>,
}

/// The lifecycle's settings.
#[derive(Debug, Clone)]
pub struct LifecycleSettings {
    /// The model repository (the models directory).
    pub repo: PathBuf,
    /// How much worse, relatively, a candidate's held-out ROC-AUC, Brier score
    /// or log loss may be than the active version's before the gate refuses it.
    pub metric_tolerance: f64,
}

/// The model lifecycle of one server.
#[derive(Debug)]
pub struct Lifecycle {
    registry: Arc<ModelRegistry>,
    settings: LifecycleSettings,
    shared: Option<SharedRegistry>,
    held: tokio::sync::Mutex<Held>,
    stale: Mutex<Option<String>>,
    audit: LocalAudit,
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Parses a family name as the admin API receives it.
pub fn family_named(name: &str) -> Result<RiskKind, LifecycleError> {
    RiskKind::ALL
        .into_iter()
        .find(|k| k.name() == name)
        .ok_or_else(|| {
            LifecycleError::Invalid(format!(
                "unknown family {:?}; the families are {}",
                crate::domain::validate::echoed(name),
                RiskKind::ALL.map(RiskKind::name).join(", ")
            ))
        })
}

impl Lifecycle {
    /// Starts the lifecycle over the repository (and Redis, when given):
    /// reads the state, loads every version it needs, and returns the
    /// registry to serve with. A family's active version that cannot be
    /// loaded stops the start; a candidate or rollback version that cannot is
    /// listed as refused and left out.
    pub async fn start(
        settings: LifecycleSettings,
        shared: Option<SharedRegistry>,
    ) -> Result<Arc<Self>, ModelError> {
        let mut held = Held {
            states: Vec::new(),
            loaded: HashMap::new(),
            refused: HashMap::new(),
            comparisons: vec![None; RiskKind::ALL.len()],
            epoch: 0,
        };
        for kind in RiskKind::ALL {
            held.states.push(family_state(&settings.repo, kind)?);
        }
        for kind in RiskKind::ALL {
            let state = held.states[kind.index()].clone();
            for version in state.needed() {
                if held.loaded.contains_key(&(kind, version.to_string())) {
                    continue;
                }
                let recorded = recorded(&state, version);
                let dir = artifact_dir(&settings.repo, kind, version);
                let loaded = match ArtifactFiles::read_dir(&dir) {
                    Ok(files) => load_identified(files, kind, &recorded).await,
                    Err(e) => Err(e),
                };
                match loaded {
                    Ok(loaded) => {
                        held.loaded.insert((kind, version.to_string()), loaded);
                    }
                    Err(e) if Some(version) == state.active.as_deref() => return Err(e),
                    Err(e) => {
                        tracing::warn!(family = kind.name(), version, error = %e, "version not loaded");
                        held.refused
                            .insert((kind, version.to_string()), (recorded, e.to_string()));
                    }
                }
            }
        }
        let snapshot = build_snapshot(&mut held)
            .expect("every active version was loaded or the start stopped");
        let lifecycle = Arc::new(Lifecycle {
            registry: Arc::new(ModelRegistry::new(snapshot)),
            audit: LocalAudit::new(settings.repo.join("audit.jsonl")),
            settings,
            shared,
            held: tokio::sync::Mutex::new(held),
            stale: Mutex::new(None),
        });
        if lifecycle.shared.is_some() {
            // Adopt what the shared registry holds (or seed it with ours).
            if let Err(e) = lifecycle.sync().await {
                tracing::warn!(error = %e, "model registry: Redis not reachable; serving the local versions until it is");
            }
        }
        Ok(lifecycle)
    }

    /// The registry requests are served from.
    pub fn registry(&self) -> &Arc<ModelRegistry> {
        &self.registry
    }

    /// "redis" or "directory".
    pub fn backend(&self) -> &'static str {
        if self.shared.is_some() {
            "redis"
        } else {
            "directory"
        }
    }

    /// Follows the shared registry until the process ends (a no-op without
    /// Redis), and promotes candidates whose comparison says so.
    pub fn spawn_background(self: &Arc<Self>) {
        let (tx, mut rx) = mpsc::unbounded_channel::<Arc<Comparison>>();
        self.registry.on_verdict(tx);
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            while let Some(comparison) = rx.recv().await {
                let Some(lifecycle) = weak.upgrade() else {
                    return;
                };
                lifecycle.auto_promote(&comparison).await;
            }
        });
        if self.shared.is_some() {
            let weak = Arc::downgrade(self);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(POLL_INTERVAL);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    let Some(lifecycle) = weak.upgrade() else {
                        return;
                    };
                    lifecycle.poll().await;
                }
            });
        }
    }

    /// The registry as it stands.
    pub async fn list(&self) -> RegistryView {
        let held = self.held.lock().await;
        let families = RiskKind::ALL
            .into_iter()
            .map(|kind| {
                let state = held.states[kind.index()].clone();
                let versions = state
                    .versions
                    .iter()
                    .map(|(version, info)| VersionView {
                        version: version.clone(),
                        info: info.clone(),
                        model: held.model(kind, version).cloned(),
                        refused: held
                            .refusal(kind, version, &info.identity)
                            .map(str::to_string),
                    })
                    .collect();
                FamilyView {
                    kind,
                    state,
                    versions,
                    comparison: held.comparisons[kind.index()].clone(),
                }
            })
            .collect();
        drop(held);
        let recent = match &self.shared {
            Some(shared) => shared
                .recent_actions(50)
                .await
                .unwrap_or_else(|_| self.recent_local()),
            None => self.recent_local(),
        };
        RegistryView {
            families,
            backend: self.backend(),
            stale: self.stale_reason(),
            recent,
        }
    }

    fn recent_local(&self) -> Vec<AdminAction> {
        self.audit.recent(RECENT_LISTED)
    }

    /// The current (or last) comparison of a family.
    pub async fn comparison(&self, kind: RiskKind) -> Option<Arc<Comparison>> {
        self.held.lock().await.comparisons[kind.index()].clone()
    }

    async fn record(
        &self,
        who: &Actor,
        action: &str,
        family: &str,
        version: &str,
        result: &Result<String, LifecycleError>,
    ) {
        let (outcome, detail) = match result {
            Ok(detail) => ("ok", detail.clone()),
            Err(e) => ("refused", e.to_string()),
        };
        // What callers sent is recorded bounded and printable.
        let entry = AdminAction {
            at: now(),
            who: bounded(who),
            action: action.to_string(),
            family: bounded(family),
            version: bounded(version),
            outcome: outcome.to_string(),
            detail,
        };
        tracing::info!(who = %entry.who, action = %entry.action, family = %entry.family, version = %entry.version, outcome = %entry.outcome, detail = %entry.detail, "admin action");
        self.audit.keep(&entry);
        match &self.shared {
            Some(shared) => {
                if let Err(e) = shared.push_action(&entry).await {
                    tracing::warn!(error = %e, "admin action not recorded in Redis");
                }
            }
            None => self.audit.append(&entry),
        }
    }

    /// Applies `change` to a copy of the family's state, persists it and
    /// serves it; records the action either way.
    async fn change(
        &self,
        who: &Actor,
        action: &str,
        kind: RiskKind,
        version: &str,
        change: impl FnOnce(&mut FamilyState, &Held) -> Result<String, LifecycleError>,
    ) -> Result<String, LifecycleError> {
        let result = async {
            let mut held = self.held.lock().await;
            self.change_locked(&mut held, kind, change).await
        }
        .await;
        self.record(who, action, kind.name(), version, &result)
            .await;
        result
    }

    /// [`Self::change`] under a lock already held, unrecorded.
    async fn change_locked(
        &self,
        held: &mut Held,
        kind: RiskKind,
        change: impl FnOnce(&mut FamilyState, &Held) -> Result<String, LifecycleError>,
    ) -> Result<String, LifecycleError> {
        self.sync_locked(held).await?;
        let mut next = held.states[kind.index()].clone();
        let detail = change(&mut next, held)?;
        self.commit(held, kind, next).await?;
        Ok(detail)
    }

    /// Builds what a family's next state would serve, persists the state,
    /// then serves it: nothing is persisted that cannot be served, and
    /// nothing is served that was not persisted.
    async fn commit(
        &self,
        held: &mut Held,
        kind: RiskKind,
        next: FamilyState,
    ) -> Result<(), LifecycleError> {
        if next == held.states[kind.index()] {
            return Ok(());
        }
        let previous = std::mem::replace(&mut held.states[kind.index()], next.clone());
        let snapshot = build_snapshot(held);
        held.states[kind.index()] = previous;
        let Some(snapshot) = snapshot else {
            return Err(LifecycleError::Precondition(
                "a version the new state names is not loaded here".into(),
            ));
        };
        match &self.shared {
            Some(shared) => match shared
                .put_state(held.epoch, kind, &next)
                .await
                .map_err(LifecycleError::Unavailable)?
            {
                Some(epoch) => held.epoch = epoch,
                None => {
                    return Err(LifecycleError::Unavailable(
                        "the shared registry changed meanwhile (another admin, through another \
                         replica); nothing was changed, retry"
                            .into(),
                    ));
                }
            },
            None => write_state(&self.settings.repo, kind, &next).map_err(|e| {
                LifecycleError::Unavailable(format!(
                    "cannot record the state in {}: {e}",
                    self.settings.repo.display()
                ))
            })?,
        }
        held.states[kind.index()] = next;
        self.registry.swap(snapshot);
        Ok(())
    }

    /// Makes a loaded version active; the active one is remembered for
    /// rollback and stays loaded.
    pub async fn promote(
        &self,
        who: &Actor,
        kind: RiskKind,
        version: &str,
    ) -> Result<String, LifecycleError> {
        self.change(who, "promote", kind, version, |state, held| {
            check_version_name(version)?;
            require_loaded(state, held, kind, version, &self.settings.repo)?;
            if state.active.as_deref() == Some(version) {
                return Ok(format!("{version} is already active"));
            }
            promote_in(state, version);
            Ok(format!("{version} is active"))
        })
        .await
    }

    /// Makes the previous active version active again (it stayed loaded).
    pub async fn rollback(&self, who: &Actor, kind: RiskKind) -> Result<String, LifecycleError> {
        self.change(who, "rollback", kind, "", |state, held| {
            let Some(back) = state.previous.pop() else {
                return Err(LifecycleError::Precondition(format!(
                    "{} has no previous active version to roll back to",
                    kind.name()
                )));
            };
            require_loaded(state, held, kind, &back, &self.settings.repo)?;
            let from = state.active.replace(back.clone()).unwrap_or_default();
            if state.candidate.as_ref().is_some_and(|c| c.version == back) {
                // Active now: no longer a candidate of itself.
                state.candidate = None;
            }
            Ok(format!("{back} is active again (was {from})"))
        })
        .await
    }

    /// Sets (or, with `version` `None`, clears) the family's candidate:
    /// shadow when `canary_percent` is `None`, else canary.
    pub async fn set_candidate(
        &self,
        who: &Actor,
        kind: RiskKind,
        version: Option<&str>,
        canary_percent: Option<f64>,
        auto_promote: Option<AutoPromote>,
    ) -> Result<String, LifecycleError> {
        let action = if canary_percent.is_some() {
            "canary"
        } else {
            "shadow"
        };
        self.change(who, action, kind, version.unwrap_or(""), |state, held| {
            let Some(version) = version else {
                return Ok(match state.candidate.take() {
                    Some(c) => format!("{} is no longer compared", c.version),
                    None => "no candidate was set".into(),
                });
            };
            check_version_name(version)?;
            if let Some(p) = canary_percent {
                check_percent(p)?;
            }
            if let Some(rule) = &auto_promote {
                check_auto_promote(kind, rule)?;
            }
            require_loaded(state, held, kind, version, &self.settings.repo)?;
            if state.active.as_deref() == Some(version) {
                return Err(LifecycleError::Precondition(format!(
                    "{version} is the active version; a candidate is another version"
                )));
            }
            set_candidate(state, version, canary_percent, auto_promote);
            Ok(match canary_percent {
                Some(p) => format!("{version} answers {p} % of entities"),
                None => format!("{version} scores every request in shadow"),
            })
        })
        .await
    }

    /// Forgets a version that neither serves nor is compared.
    pub async fn unload(
        &self,
        who: &Actor,
        kind: RiskKind,
        version: &str,
    ) -> Result<String, LifecycleError> {
        let result = async {
            check_version_name(version)?;
            let mut held = self.held.lock().await;
            let mut identity = String::new();
            let detail = self
                .change_locked(&mut held, kind, |state, _| {
                    if !state.versions.contains_key(version) {
                        return Err(not_deployed(kind, version));
                    }
                    if state.active.as_deref() == Some(version) {
                        return Err(LifecycleError::Precondition(format!(
                            "{version} is the active version; promote or roll back to another \
                             first"
                        )));
                    }
                    if state
                        .candidate
                        .as_ref()
                        .is_some_and(|c| c.version == version)
                    {
                        return Err(LifecycleError::Precondition(format!(
                            "{version} is the candidate; clear the shadow or canary first"
                        )));
                    }
                    identity = recorded(state, version);
                    state.versions.remove(version);
                    state.previous.retain(|v| v != version);
                    Ok(format!("{version} unloaded"))
                })
                .await?;
            // Still under the lock: a redeploy waits for this to finish.
            held.loaded.remove(&(kind, version.to_string()));
            held.refused.remove(&(kind, version.to_string()));
            if let Some(shared) = &self.shared {
                let _ = shared.delete_files(kind, version, &identity).await;
            }
            Ok(detail)
        }
        .await;
        self.record(who, "unload", kind.name(), version, &result)
            .await;
        result
    }

    async fn auto_promote(&self, comparison: &Comparison) {
        let report = comparison.report();
        let kind = comparison.kind;
        let version = comparison.candidate_version.clone();
        let detail = format!(
            "Brier {:.5} against {:.5} (difference {:+.5} ± {:.5}) on {} resolved outcomes",
            report.brier.candidate,
            report.brier.active,
            report.brier.difference,
            report.brier.standard_error,
            report.outcomes_resolved
        );
        let result = self
            .change(AUTO_PROMOTE, "promote", kind, &version, |state, held| {
                // Still the comparison that fired: same active, same candidate.
                let current = state.active.as_deref() == Some(comparison.active_version.as_str())
                    && state
                        .candidate
                        .as_ref()
                        .is_some_and(|c| c.version == version && c.since == comparison.started_at);
                if !current {
                    return Err(LifecycleError::Precondition(
                        "the comparison that fired is no longer the family's".into(),
                    ));
                }
                require_loaded(state, held, kind, &version, &self.settings.repo)?;
                promote_in(state, &version);
                Ok(format!("{version} is active: {detail}"))
            })
            .await;
        if let Err(e) = result {
            tracing::warn!(family = kind.name(), version, error = %e, "auto-promote did not happen");
            if !matches!(e, LifecycleError::Precondition(_)) {
                // A Redis blip: let the next outcome try again.
                comparison.rearm();
            }
        }
    }
}

/// Who acts when a comparison promotes its candidate.
pub const AUTO_PROMOTE: &str = "auto-promote";
