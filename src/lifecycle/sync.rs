//! Following the shared registry in Redis: the poller, adopting the shared
//! state (loading the versions it names that this replica lacks), seeding an
//! empty Redis with this replica's state, and the stale flag.

use super::gate::load_identified;
use super::held::{build_snapshot, recorded};
use super::shared::SharedRegistry;
use super::{Held, Lifecycle, LifecycleError};
use crate::models::ArtifactFiles;
use crate::models::repository::artifact_dir;
use crate::schema::RiskKind;

impl Lifecycle {
    pub(super) async fn poll(&self) {
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
    pub(super) async fn sync(&self) -> Result<(), LifecycleError> {
        let mut held = self.held.lock().await;
        self.sync_locked(&mut held).await
    }

    pub(super) async fn sync_locked(&self, held: &mut Held) -> Result<(), LifecycleError> {
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

    pub(super) async fn sync_shared(
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

    pub(super) fn local_files(&self, kind: RiskKind, version: &str) -> Option<ArtifactFiles> {
        ArtifactFiles::read_dir(&artifact_dir(&self.settings.repo, kind, version)).ok()
    }

    pub(super) fn set_stale(&self, reason: Option<String>) {
        *self.stale.lock().unwrap_or_else(|e| e.into_inner()) = reason;
    }

    /// Why the served state may be behind the shared one, if it may.
    pub fn stale_reason(&self) -> Option<String> {
        self.stale.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}
