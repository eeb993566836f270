//! The model repository on disk: one folder per family, one folder per
//! version inside it, and the family's state beside the versions:
//!
//! ```text
//! models/
//!   network.toml
//!   carrier_failure/
//!     state.json              which version is active, the ones before it,
//!                             the candidate (shadow or canary), who deployed what
//!     lrgbt-8c4f651de8/       manifest.json, weights.json, golden.json, reports
//!     lrgbt-7e01c2aa31/
//! ```
//!
//! The state says which version serves; without it, a family with a single
//! version folder serves that one. Artifacts from before versioning
//! (`{family}/manifest.json`, no version folders) still load.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::artifact::{MANIFEST_FILE, load_version};
use super::files::ArtifactFiles;
use super::{LoadedModel, ModelError};
use crate::schema::{FeatureDef, RiskKind};

/// The state file's name, in each family's folder.
pub const STATE_FILE: &str = "state.json";

/// The most versions [`FamilyState::previous`] remembers for rollback.
pub const MAX_PREVIOUS: usize = 8;

/// Which versions of one family exist and what each does.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FamilyState {
    /// The version answering every request (but a canary's share).
    pub active: Option<String>,
    /// The versions active before, most recent last: [`RollbackModel`] goes
    /// back to the last one. They stay loaded.
    ///
    /// [`RollbackModel`]: crate::lifecycle
    pub previous: Vec<String>,
    /// The version being compared with the active one, if any, and how.
    pub candidate: Option<Candidate>,
    /// Every registered version, by name.
    pub versions: BTreeMap<String, VersionInfo>,
}

/// A version being compared with the active one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// The version.
    pub version: String,
    /// `None`: shadow (every request is also scored by it; callers get the
    /// active version's answer). `Some(p)`: canary, answering `p` percent of
    /// entities, chosen by a hash of the entity id.
    pub canary_percent: Option<f64>,
    /// Promote it automatically once the comparison on outcomes says so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_promote: Option<AutoPromote>,
    /// When it became the candidate, RFC 3339.
    pub since: String,
}

/// When a candidate is promoted without a person: better than the active
/// version, on Brier score, on at least `min_outcomes` resolved decisions by
/// more than `sigmas` standard errors of the difference.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AutoPromote {
    /// Resolved decisions needed before the rule is looked at.
    pub min_outcomes: u64,
    /// How many standard errors the candidate's Brier score must be below
    /// the active version's.
    pub sigmas: f64,
}

/// What is recorded of a registered version.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct VersionInfo {
    /// When it was deployed, RFC 3339.
    pub deployed_at: String,
    /// Who deployed it.
    pub deployed_by: String,
    /// Whether the metric check was overridden.
    pub forced: bool,
    /// SHA-256 of its manifest (which records its files' checksums).
    pub identity: String,
}

impl FamilyState {
    /// Every version held loaded: the active one first, then those a
    /// rollback may return to, the candidate, and the other registered ones
    /// (a name may come more than once).
    pub fn needed(&self) -> impl Iterator<Item = &str> {
        self.active
            .iter()
            .chain(&self.previous)
            .map(String::as_str)
            .chain(self.candidate.iter().map(|c| c.version.as_str()))
            .chain(self.versions.keys().map(String::as_str))
    }
}

/// The folder of one version.
pub fn version_dir(repo: &Path, kind: RiskKind, version: &str) -> PathBuf {
    repo.join(kind.name()).join(version)
}

/// The family's recorded state; `None` when it has none yet.
pub fn read_state(repo: &Path, kind: RiskKind) -> Result<Option<FamilyState>, ModelError> {
    let path = repo.join(kind.name()).join(STATE_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| ModelError::Parse {
                path: path.display().to_string(),
                detail: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ModelError::Read {
            path: path.display().to_string(),
            source,
        }),
    }
}

/// Records the family's state, atomically (written aside, then renamed).
pub fn write_state(repo: &Path, kind: RiskKind, state: &FamilyState) -> std::io::Result<()> {
    let dir = repo.join(kind.name());
    std::fs::create_dir_all(&dir)?;
    let temporary = dir.join(format!(".{STATE_FILE}.{}", std::process::id()));
    std::fs::write(&temporary, serde_json::to_vec_pretty(state)?)?;
    std::fs::rename(&temporary, dir.join(STATE_FILE))
}

/// The version folders of a family, by name.
pub fn version_names(repo: &Path, kind: RiskKind) -> std::io::Result<Vec<String>> {
    let dir = repo.join(kind.name());
    let mut names = Vec::new();
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(names),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        // A dot-folder is a version being written (`detour-train import`).
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        if !hidden && entry.file_type()?.is_dir() && entry.path().join(MANIFEST_FILE).is_file() {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// A family's state in the repository, or one made from its layout when it
/// has none: its single version folder, or an artifact from before
/// versioning (the family folder itself).
pub fn family_state(repo: &Path, kind: RiskKind) -> Result<FamilyState, ModelError> {
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
pub fn artifact_dir(repo: &Path, kind: RiskKind, version: &str) -> PathBuf {
    let dir = version_dir(repo, kind, version);
    if dir.is_dir() {
        dir
    } else {
        repo.join(kind.name())
    }
}

/// Where the active artifact of a family is (see [`family_state`]).
pub fn active_dir(repo: &Path, kind: RiskKind) -> Result<PathBuf, ModelError> {
    let state = family_state(repo, kind)?;
    let active = state.active.as_deref().unwrap_or_default();
    Ok(artifact_dir(repo, kind, active))
}

/// Loads the active version of `kind` from the repository `repo`; its
/// features must be exactly `schema`.
pub fn load_model(
    repo: &Path,
    kind: RiskKind,
    schema: &[FeatureDef],
) -> Result<LoadedModel, ModelError> {
    load_version(&active_dir(repo, kind)?, kind, schema)
}

/// Registers a version the trainer has just written. The family's first
/// version becomes active, so a fresh repository serves at once; with
/// `activate`, a later one does too (the one before it kept for rollback).
/// Otherwise a later version is left unregistered: it reaches traffic through
/// the lifecycle (deploy, shadow, canary, promote). Returns whether it became
/// active.
pub fn register_trained(
    repo: &Path,
    kind: RiskKind,
    version: &str,
    identity: String,
    now: String,
    activate: bool,
) -> std::io::Result<bool> {
    let state = read_state(repo, kind).map_err(|e| std::io::Error::other(e.to_string()))?;
    let mut state = match state {
        Some(state) if !activate => {
            return Ok(state.active.as_deref() == Some(version));
        }
        Some(state) => state,
        None => FamilyState::default(),
    };
    state.versions.insert(
        version.to_string(),
        VersionInfo {
            deployed_at: now,
            deployed_by: "detour-train".into(),
            forced: false,
            identity,
        },
    );
    if let Some(active) = state.active.replace(version.to_string())
        && active != version
    {
        state.previous.retain(|v| v != &active);
        state.previous.push(active);
        if state.previous.len() > MAX_PREVIOUS {
            state.previous.remove(0);
        }
    }
    write_state(repo, kind, &state)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trained_version_is_active_in_a_fresh_repository_and_otherwise_only_with_activate() {
        let repo = std::env::temp_dir().join(format!("detour-repo-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&repo);
        let kind = RiskKind::OrderFallout;
        let now = || "2026-12-06T00:00:00Z".to_string();
        assert!(register_trained(&repo, kind, "v1", "a".into(), now(), false).unwrap());
        assert!(!register_trained(&repo, kind, "v2", "b".into(), now(), false).unwrap());
        let state = read_state(&repo, kind).unwrap().unwrap();
        assert_eq!(state.active.as_deref(), Some("v1"));
        assert!(!state.versions.contains_key("v2"), "left for deploy");
        assert!(register_trained(&repo, kind, "v2", "b".into(), now(), true).unwrap());
        let state = read_state(&repo, kind).unwrap().unwrap();
        assert_eq!(state.active.as_deref(), Some("v2"));
        assert_eq!(state.previous, vec!["v1".to_string()]);
        assert_eq!(state.versions["v2"].identity, "b");
        let _ = std::fs::remove_dir_all(&repo);
    }

    #[test]
    fn every_version_the_shipped_repository_names_is_there_and_loads() {
        // A walkthrough run against `models/` itself once left a forced
        // deploy of a version that was never committed in its state.
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
        for kind in RiskKind::ALL {
            let state = read_state(&repo, kind)
                .unwrap()
                .expect("a state per family");
            assert!(state.active.is_some(), "{}", kind.name());
            for version in state.needed() {
                let dir = version_dir(&repo, kind, version);
                crate::models::artifact::load_version(&dir, kind, crate::schema::schema_of(kind))
                    .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
            }
        }
    }
}
