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

pub mod shared;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::models::artifact::{MANIFEST_FILE, require_golden_rows};
use crate::models::repository::{
    AutoPromote, Candidate, FamilyState, MAX_PREVIOUS, VersionInfo, read_state, version_dir,
    version_names, write_state,
};
use crate::models::{ArtifactFiles, LoadedModel, ModelError, load_files};
use crate::registry::{CandidateRoute, Comparison, ModelRegistry, ModelSnapshot, Route};
use crate::schema::{RiskKind, schema_of};
use shared::SharedRegistry;

/// How often a replica sharing Redis looks for changes.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// How many admin actions a server without Redis keeps in memory (all are
/// appended to `audit.jsonl` in the models directory).
const AUDIT_IN_MEMORY: usize = 1000;

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

/// One admin action as recorded: who, what, when, outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdminAction {
    /// When, RFC 3339.
    pub at: String,
    /// Who.
    pub who: String,
    /// What: deploy, promote, rollback, shadow, canary, unload, auto-promote.
    pub action: String,
    /// The family.
    pub family: String,
    /// The version it was about, if any.
    pub version: String,
    /// "ok" or "refused".
    pub outcome: String,
    /// What happened or why it was refused.
    pub detail: String,
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

/// What the lock guards.
#[derive(Debug)]
struct Held {
    /// By [`RiskKind::index`].
    states: Vec<FamilyState>,
    /// Loaded versions, with the identity (manifest SHA-256) of the files
    /// they were loaded from.
    loaded: HashMap<(RiskKind, String), Loaded>,
    /// Versions this replica could not load: the identity tried, and why.
    refused: HashMap<(RiskKind, String), (String, String)>,
    /// The current comparison of each family, or its last.
    comparisons: Vec<Option<Arc<Comparison>>>,
    /// The shared epoch the states are from (0 without Redis).
    epoch: i64,
}

/// A loaded version and the identity of the files it came from.
#[derive(Debug, Clone)]
struct Loaded {
    model: Arc<LoadedModel>,
    identity: String,
}

impl Held {
    fn model(&self, kind: RiskKind, version: &str) -> Option<&Arc<LoadedModel>> {
        self.loaded
            .get(&(kind, version.to_string()))
            .map(|l| &l.model)
    }

    /// Whether `version` is loaded here from the files its state records
    /// (any files, when the state records no identity).
    fn holds(&self, kind: RiskKind, version: &str, recorded: &str) -> bool {
        self.loaded
            .get(&(kind, version.to_string()))
            .is_some_and(|l| recorded.is_empty() || l.identity == recorded)
    }

    /// Why `version` with the recorded identity was refused here, if it was.
    fn refusal(&self, kind: RiskKind, version: &str, recorded: &str) -> Option<&str> {
        self.refused
            .get(&(kind, version.to_string()))
            .filter(|(identity, _)| recorded.is_empty() || identity == recorded)
            .map(|(_, why)| why.as_str())
    }
}

/// The identity a state records for a version ("" when it records none).
fn recorded(state: &FamilyState, version: &str) -> String {
    state
        .versions
        .get(version)
        .map(|v| v.identity.clone())
        .unwrap_or_default()
}

/// Loads files as a version of `kind`, refusing them when they are not the
/// files the state recorded.
async fn load_identified(
    files: ArtifactFiles,
    kind: RiskKind,
    recorded: &str,
) -> Result<Loaded, ModelError> {
    let identity = files.identity()?;
    if !recorded.is_empty() && identity != recorded {
        return Err(ModelError::Mismatch {
            path: files.origin.clone(),
            detail: format!(
                "its manifest hashes to {identity}, but the registry recorded {recorded} when \
                 it was deployed: the files changed since (deploy a changed model as a new \
                 version)"
            ),
        });
    }
    let model = load_checked_lenient(files, kind).await?;
    Ok(Loaded {
        model: Arc::new(model),
        identity,
    })
}

/// The model lifecycle of one server.
#[derive(Debug)]
pub struct Lifecycle {
    registry: Arc<ModelRegistry>,
    settings: LifecycleSettings,
    shared: Option<SharedRegistry>,
    held: tokio::sync::Mutex<Held>,
    stale: Mutex<Option<String>>,
    audit: Mutex<std::collections::VecDeque<AdminAction>>,
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn kind_of(name: &str) -> Result<RiskKind, LifecycleError> {
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

/// Parses a family name as the admin API receives it.
pub fn family_named(name: &str) -> Result<RiskKind, LifecycleError> {
    kind_of(name)
}

/// Whether `version` may name a folder: 1 to 64 of `[A-Za-z0-9._-]`, not
/// starting with a dot.
fn check_version_name(version: &str) -> Result<(), LifecycleError> {
    let fine = !version.is_empty()
        && version.len() <= 64
        && !version.starts_with('.')
        && version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if fine {
        Ok(())
    } else {
        Err(LifecycleError::Invalid(format!(
            "version {:?} must be 1 to 64 letters, digits, '.', '_' or '-', not starting with '.'",
            crate::domain::validate::echoed(version)
        )))
    }
}

/// Loads, checks (golden rows mandatory) and warms a version, off the
/// serving threads.
async fn load_checked(files: ArtifactFiles, kind: RiskKind) -> Result<LoadedModel, ModelError> {
    tokio::task::spawn_blocking(move || {
        let model = load_files(&files, kind, schema_of(kind))?;
        require_golden_rows(&model, &files)?;
        warm(&model, &files);
        Ok(model)
    })
    .await
    .unwrap_or_else(|e| {
        Err(ModelError::Mismatch {
            path: kind.name().into(),
            detail: format!("loading stopped: {e}"),
        })
    })
}

/// Runs the model over its golden rows on every path requests take (single,
/// explained, batched), so its first requests find it in cache.
fn warm(model: &LoadedModel, files: &ArtifactFiles) {
    use crate::models::artifact::GoldenRows;
    use crate::schema::FeatureVector;
    let Some(file) = &model.manifest.golden_file else {
        return;
    };
    let Ok(golden) = files
        .get(file)
        .map_err(|_| ())
        .and_then(|b| serde_json::from_slice::<GoldenRows>(b).map_err(|_| ()))
    else {
        return;
    };
    let rows: Vec<FeatureVector> = golden
        .rows
        .iter()
        .map(|r| {
            let values: Vec<f64> = r.features.iter().map(|v| v.unwrap_or(f64::NAN)).collect();
            FeatureVector::from_slice(&values)
        })
        .collect();
    for row in &rows {
        std::hint::black_box(model.predict(row));
    }
    std::hint::black_box(model.probabilities(&rows));
}

/// Where the held-out metrics of `candidate` are worse than `active`'s by
/// more than `tolerance` (relative), one line each.
fn worse_metrics(candidate: &LoadedModel, active: &LoadedModel, tolerance: f64) -> Vec<String> {
    let metric = |m: &LoadedModel, name: &str| m.manifest.metrics["test"][name].as_f64();
    let mut worse = Vec::new();
    for (name, higher_is_better) in [("roc_auc", true), ("brier", false), ("log_loss", false)] {
        let (Some(c), Some(a)) = (metric(candidate, name), metric(active, name)) else {
            continue;
        };
        let allowed = tolerance * a.abs();
        let is_worse = if higher_is_better {
            c < a - allowed
        } else {
            c > a + allowed
        };
        if is_worse {
            worse.push(format!(
                "held-out {name} {c:.4} against the active version's {a:.4} (tolerance {:.1} %)",
                tolerance * 100.0
            ));
        }
    }
    worse
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
            held.states.push(local_state(&settings.repo, kind)?);
        }
        for kind in RiskKind::ALL {
            let state = held.states[kind.index()].clone();
            for version in state.needed() {
                if held.loaded.contains_key(&(kind, version.to_string())) {
                    continue;
                }
                let recorded = recorded(&state, version);
                let dir = local_version_dir(&settings.repo, kind, version);
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
            settings,
            shared,
            held: tokio::sync::Mutex::new(held),
            stale: Mutex::new(None),
            audit: Mutex::new(Default::default()),
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

    async fn poll(&self) {
        let Some(shared) = &self.shared else { return };
        let epoch = match shared.epoch().await {
            Ok(epoch) => epoch,
            Err(e) => {
                self.set_stale(Some(format!("cannot reach the shared registry: {e}")));
                return;
            }
        };
        let current = match self.held.try_lock() {
            Ok(held) => held.epoch,
            // An admin change is under way here; it syncs itself.
            Err(_) => return,
        };
        let before = self.stale_reason();
        if (epoch != current || before.is_some())
            && let Err(e) = self.sync().await
            && before.as_deref() != Some(e.to_string().as_str())
        {
            // Once per reason, not every poll.
            tracing::warn!(error = %e, "model registry: sync failed");
        }
    }

    /// Reads the shared state and serves it (seeding families Redis lacks).
    async fn sync(&self) -> Result<(), LifecycleError> {
        let mut held = self.held.lock().await;
        self.sync_locked(&mut held).await
    }

    async fn sync_locked(&self, held: &mut Held) -> Result<(), LifecycleError> {
        let Some(shared) = &self.shared else {
            return Ok(());
        };
        let result = self.sync_shared(shared, held).await;
        match &result {
            Ok(()) => self.set_stale(None),
            Err(e) => self.set_stale(Some(e.to_string())),
        }
        result
    }

    async fn sync_shared(
        &self,
        shared: &SharedRegistry,
        held: &mut Held,
    ) -> Result<(), LifecycleError> {
        let unavailable = LifecycleError::Unavailable;
        let (mut epoch, states) = shared.states().await.map_err(unavailable)?;
        let mut next = held.states.clone();
        for kind in RiskKind::ALL {
            match states.get(kind.name()) {
                Some(state) => next[kind.index()] = state.clone(),
                None => {
                    // First replica on this Redis: publish ours, each version
                    // under the identity of the files it was loaded from.
                    let mut ours = held.states[kind.index()].clone();
                    let versions: std::collections::BTreeSet<String> =
                        ours.needed().map(str::to_string).collect();
                    for version in versions {
                        let Some(loaded) = held.loaded.get(&(kind, version.clone())) else {
                            continue;
                        };
                        let Some(files) = self.local_files(kind, &version) else {
                            continue;
                        };
                        if files.identity().ok().as_deref() != Some(loaded.identity.as_str()) {
                            continue;
                        }
                        shared
                            .put_files(kind, &version, &loaded.identity, &files)
                            .await
                            .map_err(unavailable)?;
                        ours.versions.entry(version).or_default().identity =
                            loaded.identity.clone();
                    }
                    match shared
                        .put_state(epoch, kind, &ours)
                        .await
                        .map_err(unavailable)?
                    {
                        Some(e) => {
                            epoch = e;
                            next[kind.index()] = ours;
                        }
                        None => {
                            return Err(LifecycleError::Unavailable(
                                "the shared registry changed while seeding it; retrying".into(),
                            ));
                        }
                    }
                }
            }
        }
        // Load what the shared state needs and this replica lacks (or holds
        // from other files).
        for kind in RiskKind::ALL {
            let state = &next[kind.index()];
            for version in state.needed() {
                let recorded = recorded(state, version);
                if held.holds(kind, version, &recorded)
                    || held.refusal(kind, version, &recorded).is_some()
                {
                    continue;
                }
                let files = shared
                    .files(kind, version, &recorded)
                    .await
                    .map_err(unavailable)?;
                let key = (kind, version.to_string());
                match load_identified(files, kind, &recorded).await {
                    Ok(loaded) => {
                        held.refused.remove(&key);
                        held.loaded.insert(key, loaded);
                    }
                    Err(e) => {
                        tracing::warn!(family = kind.name(), version, error = %e, "shared version refused here");
                        held.refused.insert(key, (recorded, e.to_string()));
                    }
                }
            }
        }
        if next == held.states {
            held.epoch = epoch;
            return Ok(());
        }
        let previous = std::mem::replace(&mut held.states, next);
        let Some(snapshot) = build_snapshot(held) else {
            // Keep serving, and showing, what was served; the epoch stays
            // behind, so the next poll tries again.
            held.states = previous;
            return Err(LifecycleError::Unavailable(
                "an active version of the shared registry could not be loaded here; serving \
                 the previous one"
                    .into(),
            ));
        };
        held.epoch = epoch;
        self.registry.swap(snapshot);
        // Versions another replica unloaded are let go here too.
        let states = &held.states;
        held.loaded
            .retain(|(kind, version), _| states[kind.index()].needed().any(|v| v == version));
        held.refused
            .retain(|(kind, version), _| states[kind.index()].needed().any(|v| v == version));
        tracing::info!(models = %self.registry.snapshot().versions(), epoch, "model registry: adopted the shared state");
        Ok(())
    }

    fn local_files(&self, kind: RiskKind, version: &str) -> Option<ArtifactFiles> {
        ArtifactFiles::read_dir(&local_version_dir(&self.settings.repo, kind, version)).ok()
    }

    fn set_stale(&self, reason: Option<String>) {
        *self.stale.lock().unwrap_or_else(|e| e.into_inner()) = reason;
    }

    /// Why the served state may be behind the shared one, if it may.
    pub fn stale_reason(&self) -> Option<String> {
        self.stale.lock().unwrap_or_else(|e| e.into_inner()).clone()
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
        let audit = self.audit.lock().unwrap_or_else(|e| e.into_inner());
        audit.iter().rev().take(50).cloned().collect()
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
        {
            let mut audit = self.audit.lock().unwrap_or_else(|e| e.into_inner());
            if audit.len() >= AUDIT_IN_MEMORY {
                audit.pop_front();
            }
            audit.push_back(entry.clone());
        }
        match &self.shared {
            Some(shared) => {
                if let Err(e) = shared.push_action(&entry).await {
                    tracing::warn!(error = %e, "admin action not recorded in Redis");
                }
            }
            None => {
                let line = serde_json::to_string(&entry).unwrap_or_default() + "\n";
                let path = self.settings.repo.join("audit.jsonl");
                let written = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .and_then(|mut f| std::io::Write::write_all(&mut f, line.as_bytes()));
                if let Err(e) = written {
                    tracing::warn!(error = %e, path = %path.display(), "admin action not recorded on disk");
                }
            }
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

    /// Checks, loads, warms and registers a version, without traffic (unless
    /// it starts as shadow or canary).
    pub async fn deploy(&self, who: &Actor, deploy: Deploy) -> Result<Deployed, LifecycleError> {
        let mut family_name = deploy.family.clone().unwrap_or_default();
        let mut version_name = String::new();
        let result = self
            .deploy_inner(who, deploy, &mut family_name, &mut version_name)
            .await;
        let recorded = result.as_ref().map(|d| {
            if d.already {
                "already deployed with the same content; nothing changed".to_string()
            } else if let Some(past) = &d.forced_past {
                format!("deployed with force past the metric check: {past}")
            } else {
                "checked, loaded, warmed and registered".to_string()
            }
        });
        let recorded = recorded.map_err(Clone::clone);
        self.record(who, "deploy", &family_name, &version_name, &recorded)
            .await;
        result
    }

    async fn deploy_inner(
        &self,
        who: &Actor,
        deploy: Deploy,
        family_name: &mut String,
        version_name: &mut String,
    ) -> Result<Deployed, LifecycleError> {
        let invalid = |e: ModelError| LifecycleError::Invalid(e.to_string());
        if let Start::Canary(percent) = deploy.start {
            check_percent(percent)?;
        }
        let files = deploy.files;
        let manifest = files.manifest().map_err(invalid)?;
        *version_name = manifest.version.clone();
        let kind = match &deploy.family {
            Some(named) => {
                let kind = kind_of(named)?;
                if manifest.family != kind.name() {
                    return Err(LifecycleError::Invalid(format!(
                        "{}/{MANIFEST_FILE}: family is {:?}, but the deploy names {:?}",
                        files.origin,
                        crate::domain::validate::echoed(&manifest.family),
                        kind.name()
                    )));
                }
                kind
            }
            None => kind_of(&manifest.family)?,
        };
        *family_name = kind.name().to_string();
        let version = manifest.version.clone();
        check_version_name(&version)?;
        let identity = files.identity().map_err(invalid)?;

        if let Some(rule) = &deploy.auto_promote {
            check_auto_promote(kind, rule)?;
        }

        let mut held = self.held.lock().await;
        self.sync_locked(&mut held).await?;
        let already = match held.states[kind.index()].versions.get(&version) {
            Some(info) if info.identity == identity => true,
            Some(info) => {
                return Err(LifecycleError::Exists(format!(
                    "{} version {version} is already deployed with other content (its manifest \
                     hashes to {}, this one to {identity}); give the new model a new version",
                    kind.name(),
                    &info.identity
                )));
            }
            None => false,
        };
        // The gate: everything that can be wrong with the artifact itself. A
        // version deployed before and loaded here is not loaded again.
        let model = if already && held.holds(kind, &version, &identity) {
            None
        } else {
            Some(load_checked(files.clone(), kind).await.map_err(invalid)?)
        };
        let active = held.states[kind.index()]
            .active
            .as_ref()
            .and_then(|a| held.model(kind, a));
        let mut forced_past = None;
        if let (Some(model), Some(active), false) = (&model, active, already) {
            let worse = worse_metrics(model, active, self.settings.metric_tolerance);
            if !worse.is_empty() {
                let reasons = worse.join("; ");
                if !deploy.force {
                    return Err(LifecycleError::Precondition(format!(
                        "{} {version} is worse than the active {}: {reasons}. Deploy with force \
                         to override this check (it is recorded)",
                        kind.name(),
                        active.manifest.version
                    )));
                }
                forced_past = Some(reasons);
            }
        }
        // Files first, then the state that names them.
        if model.is_some() {
            match &self.shared {
                Some(shared) => shared
                    .put_files(kind, &version, &identity, &files)
                    .await
                    .map_err(LifecycleError::Unavailable)?,
                None => self.write_version_dir(kind, &version, &files, &identity)?,
            }
        }
        let mut next = held.states[kind.index()].clone();
        if !already {
            next.versions.insert(
                version.clone(),
                VersionInfo {
                    deployed_at: now(),
                    deployed_by: who.to_string(),
                    forced: forced_past.is_some(),
                    identity: identity.clone(),
                },
            );
        }
        if next.active.as_deref() != Some(version.as_str()) {
            match deploy.start {
                Start::Idle => {}
                Start::Shadow => set_candidate(&mut next, &version, None, deploy.auto_promote),
                Start::Canary(p) => {
                    set_candidate(&mut next, &version, Some(p), deploy.auto_promote)
                }
            }
        }
        let key = (kind, version.clone());
        let replaced = match model {
            Some(model) => {
                held.refused.remove(&key);
                held.loaded.insert(
                    key.clone(),
                    Loaded {
                        model: Arc::new(model),
                        identity,
                    },
                )
            }
            None => None,
        };
        if let Err(e) = self.commit(&mut held, kind, next).await {
            if !already {
                held.loaded.remove(&key);
            } else if let Some(replaced) = replaced {
                held.loaded.insert(key, replaced);
            }
            return Err(e);
        }
        Ok(Deployed {
            kind,
            version,
            already,
            forced_past,
        })
    }

    fn write_version_dir(
        &self,
        kind: RiskKind,
        version: &str,
        files: &ArtifactFiles,
        identity: &str,
    ) -> Result<(), LifecycleError> {
        let dir = version_dir(&self.settings.repo, kind, version);
        if let Ok(existing) = ArtifactFiles::read_dir(&dir) {
            // The trainer may have written it here already.
            return match existing.identity() {
                Ok(same) if same == identity => Ok(()),
                _ => Err(LifecycleError::Exists(format!(
                    "{} holds another artifact of version {version}; give the new model a new \
                     version",
                    dir.display()
                ))),
            };
        }
        let parent = self.settings.repo.join(kind.name());
        let temporary = parent.join(format!(".{version}.{}", std::process::id()));
        let written = files
            .write_dir(&temporary)
            .and_then(|()| std::fs::rename(&temporary, &dir));
        written.map_err(|e| {
            let _ = std::fs::remove_dir_all(&temporary);
            LifecycleError::Unavailable(format!("cannot write {}: {e}", dir.display()))
        })
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

/// At most 64 characters of `text`, without control characters: what a
/// caller sent, fit for the audit log.
fn bounded(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(64).collect()
}

/// Who acts when a comparison promotes its candidate.
pub const AUTO_PROMOTE: &str = "auto-promote";

/// Makes `version` active in `state`, remembering the active one for rollback.
fn promote_in(state: &mut FamilyState, version: &str) {
    if let Some(active) = state.active.take() {
        state.previous.retain(|v| v != &active && v != version);
        state.previous.push(active);
        if state.previous.len() > MAX_PREVIOUS {
            state.previous.remove(0);
        }
    }
    state.active = Some(version.to_string());
    if state
        .candidate
        .as_ref()
        .is_some_and(|c| c.version == version)
    {
        state.candidate = None;
    }
}

fn not_deployed(kind: RiskKind, version: &str) -> LifecycleError {
    LifecycleError::NotFound(format!(
        "{} has no version {:?}",
        kind.name(),
        crate::domain::validate::echoed(version)
    ))
}

fn require_loaded(
    state: &FamilyState,
    held: &Held,
    kind: RiskKind,
    version: &str,
    repo: &Path,
) -> Result<(), LifecycleError> {
    if !state.versions.contains_key(version) && state.active.as_deref() != Some(version) {
        let dir = version_dir(repo, kind, version);
        if dir.join(MANIFEST_FILE).is_file() {
            return Err(LifecycleError::Precondition(format!(
                "{} {version} is in the repository ({}) but not deployed, so not loaded: \
                 deploy it first",
                kind.name(),
                dir.display()
            )));
        }
        return Err(not_deployed(kind, version));
    }
    let recorded = recorded(state, version);
    if let Some(why) = held.refusal(kind, version, &recorded) {
        return Err(LifecycleError::Precondition(format!(
            "{} {version} is not loaded here: {why}",
            kind.name()
        )));
    }
    if !held.holds(kind, version, &recorded) {
        return Err(LifecycleError::Precondition(format!(
            "{} {version} is not loaded; deploy it again",
            kind.name()
        )));
    }
    Ok(())
}

/// An auto-promote rule needs outcomes (site congestion has no outcome
/// event) and a number of standard errors ≥ 0.
fn check_auto_promote(kind: RiskKind, rule: &AutoPromote) -> Result<(), LifecycleError> {
    if !(rule.sigmas.is_finite() && rule.sigmas >= 0.0) {
        return Err(LifecycleError::Invalid(format!(
            "auto_promote.sigmas must be a number ≥ 0, got {}",
            rule.sigmas
        )));
    }
    if kind == RiskKind::SiteCongestion {
        return Err(LifecycleError::Invalid(
            "auto_promote needs outcomes, and site congestion has no outcome event: compare \
             its candidate by agreement and promote by hand"
                .into(),
        ));
    }
    Ok(())
}

fn check_percent(percent: f64) -> Result<(), LifecycleError> {
    if percent.is_finite() && percent > 0.0 && percent <= 100.0 {
        Ok(())
    } else {
        Err(LifecycleError::Invalid(format!(
            "canary percent must be within (0, 100], got {percent}"
        )))
    }
}

fn set_candidate(
    state: &mut FamilyState,
    version: &str,
    canary_percent: Option<f64>,
    auto_promote: Option<AutoPromote>,
) {
    let since = match &state.candidate {
        Some(c) if c.version == version => c.since.clone(),
        _ => now(),
    };
    state.candidate = Some(Candidate {
        version: version.to_string(),
        canary_percent,
        auto_promote,
        since,
    });
}

/// Like [`load_checked`], but an artifact from before golden rows loads
/// (the repository's own versions; deploys must carry them).
async fn load_checked_lenient(
    files: ArtifactFiles,
    kind: RiskKind,
) -> Result<LoadedModel, ModelError> {
    tokio::task::spawn_blocking(move || {
        let model = load_files(&files, kind, schema_of(kind))?;
        warm(&model, &files);
        Ok(model)
    })
    .await
    .unwrap_or_else(|e| {
        Err(ModelError::Mismatch {
            path: kind.name().into(),
            detail: format!("loading stopped: {e}"),
        })
    })
}

/// A family's state in the repository, or one made from its layout: the
/// single version folder, or an artifact from before versioning.
fn local_state(repo: &Path, kind: RiskKind) -> Result<FamilyState, ModelError> {
    if let Some(state) = read_state(repo, kind)?
        && state.active.is_some()
    {
        return Ok(state);
    }
    let family = repo.join(kind.name());
    let names = version_names(repo, kind).map_err(|source| ModelError::Read {
        path: family.display().to_string(),
        source,
    })?;
    let version = match names.as_slice() {
        [only] => only.clone(),
        [] => {
            let files = ArtifactFiles::read_dir(&family)?;
            files.manifest()?.version
        }
        _ => {
            return Err(ModelError::Mismatch {
                path: family.display().to_string(),
                detail: format!(
                    "{} versions ({}) and no state.json saying which is active",
                    names.len(),
                    names.join(", ")
                ),
            });
        }
    };
    let mut state = FamilyState {
        active: Some(version.clone()),
        ..FamilyState::default()
    };
    state.versions.insert(version, VersionInfo::default());
    Ok(state)
}

/// A version's folder; for an artifact from before versioning, the family
/// folder itself.
fn local_version_dir(repo: &Path, kind: RiskKind, version: &str) -> PathBuf {
    let dir = version_dir(repo, kind, version);
    if dir.is_dir() {
        dir
    } else {
        repo.join(kind.name())
    }
}

/// The snapshot the held state describes, reusing comparisons whose pair is
/// unchanged. `None` when an active version is not loaded. A candidate that
/// is not loaded here is left out.
fn build_snapshot(held: &mut Held) -> Option<ModelSnapshot> {
    let mut routes = Vec::with_capacity(RiskKind::ALL.len());
    for kind in RiskKind::ALL {
        let state = &held.states[kind.index()];
        let active_version = state.active.clone()?;
        if !held.holds(kind, &active_version, &recorded(state, &active_version)) {
            return None;
        }
        let active = Arc::clone(held.model(kind, &active_version)?);
        let candidate = state
            .candidate
            .clone()
            .filter(|c| held.holds(kind, &c.version, &recorded(state, &c.version)))
            .and_then(|c| held.model(kind, &c.version).map(|m| (c, Arc::clone(m))));
        let candidate = candidate.map(|(c, model)| {
            let slot = &mut held.comparisons[kind.index()];
            let comparison = match slot {
                Some(existing)
                    if existing.active_version == active_version
                        && existing.candidate_version == c.version
                        && existing.started_at == c.since
                        && existing.auto_promote == c.auto_promote =>
                {
                    Arc::clone(existing)
                }
                _ => {
                    let fresh = Arc::new(Comparison::new(
                        kind,
                        active_version.clone(),
                        c.version.clone(),
                        c.since.clone(),
                        c.auto_promote,
                    ));
                    *slot = Some(Arc::clone(&fresh));
                    fresh
                }
            };
            CandidateRoute::new(model, c.canary_percent, comparison)
        });
        routes.push(Route { active, candidate });
    }
    Some(ModelSnapshot::from_routes(routes))
}
