//! What the lifecycle's lock guards — each family's state, the versions
//! loaded here and refused here, the comparisons — and the pure steps on it:
//! checking a version is loaded, promoting and setting a candidate in a
//! state, and building the snapshot a state describes.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use super::LifecycleError;
use super::gate::Loaded;
use crate::models::LoadedModel;
use crate::models::artifact::MANIFEST_FILE;
use crate::models::repository::{AutoPromote, Candidate, FamilyState, MAX_PREVIOUS, version_dir};
use crate::registry::{CandidateRoute, Comparison, ModelSnapshot, Route};
use crate::schema::RiskKind;

/// What the lock guards.
#[derive(Debug)]
pub(super) struct Held {
    /// By [`RiskKind::index`].
    pub(super) states: Vec<FamilyState>,
    /// Loaded versions, with the identity (manifest SHA-256) of the files
    /// they were loaded from.
    pub(super) loaded: HashMap<(RiskKind, String), Loaded>,
    /// Versions this replica could not load: the identity tried, and why.
    pub(super) refused: HashMap<(RiskKind, String), (String, String)>,
    /// The current comparison of each family, or its last.
    pub(super) comparisons: Vec<Option<Arc<Comparison>>>,
    /// The shared epoch the states are from (0 without Redis).
    pub(super) epoch: i64,
}

impl Held {
    pub(super) fn model(&self, kind: RiskKind, version: &str) -> Option<&Arc<LoadedModel>> {
        self.loaded
            .get(&(kind, version.to_string()))
            .map(|l| &l.model)
    }

    /// Whether `version` is loaded here from the files its state records
    /// (any files, when the state records no identity).
    pub(super) fn holds(&self, kind: RiskKind, version: &str, recorded: &str) -> bool {
        self.loaded
            .get(&(kind, version.to_string()))
            .is_some_and(|l| recorded.is_empty() || l.identity == recorded)
    }

    /// Why `version` with the recorded identity was refused here, if it was.
    pub(super) fn refusal(&self, kind: RiskKind, version: &str, recorded: &str) -> Option<&str> {
        self.refused
            .get(&(kind, version.to_string()))
            .filter(|(identity, _)| recorded.is_empty() || identity == recorded)
            .map(|(_, why)| why.as_str())
    }
}

/// The identity a state records for a version ("" when it records none).
pub(super) fn recorded(state: &FamilyState, version: &str) -> String {
    state
        .versions
        .get(version)
        .map(|v| v.identity.clone())
        .unwrap_or_default()
}

pub(super) fn not_deployed(kind: RiskKind, version: &str) -> LifecycleError {
    LifecycleError::NotFound(format!(
        "{} has no version {:?}",
        kind.name(),
        crate::domain::validate::echoed(version)
    ))
}

pub(super) fn require_loaded(
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

/// Makes `version` active in `state`, remembering the active one for rollback.
pub(super) fn promote_in(state: &mut FamilyState, version: &str) {
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

pub(super) fn set_candidate(
    state: &mut FamilyState,
    version: &str,
    canary_percent: Option<f64>,
    auto_promote: Option<AutoPromote>,
) {
    let since = match &state.candidate {
        Some(c) if c.version == version => c.since.clone(),
        _ => super::now(),
    };
    state.candidate = Some(Candidate {
        version: version.to_string(),
        canary_percent,
        auto_promote,
        since,
    });
}

/// The snapshot the held state describes, reusing comparisons whose pair is
/// unchanged. `None` when an active version is not loaded. A candidate that
/// is not loaded here is left out.
pub(super) fn build_snapshot(held: &mut Held) -> Option<ModelSnapshot> {
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
