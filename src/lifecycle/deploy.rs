//! Deploying a version: the request's checks, the gate (loading, golden rows,
//! the metric check against the active version), the files written where
//! the registry keeps them, then the state that names the version.

use std::sync::Arc;

use super::gate::{
    Golden, Loaded, check_auto_promote, check_percent, check_version_name, load_checked,
    worse_metrics,
};
use super::held::set_candidate;
use super::{Actor, Deploy, Deployed, Lifecycle, LifecycleError, Start, family_named, now};
use crate::models::artifact::MANIFEST_FILE;
use crate::models::repository::{VersionInfo, version_dir};
use crate::models::{ArtifactFiles, ModelError};
use crate::schema::RiskKind;

impl Lifecycle {
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

    pub(super) async fn deploy_inner(
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
                let kind = family_named(named)?;
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
            None => family_named(&manifest.family)?,
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
            Some(
                load_checked(files.clone(), kind, Golden::Required)
                    .await
                    .map_err(invalid)?,
            )
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

    pub(super) fn write_version_dir(
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
}
