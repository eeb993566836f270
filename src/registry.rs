//! The models being served. A [`ModelSnapshot`] is an immutable set of one
//! loaded model per family; the [`ModelRegistry`] holds the current snapshot
//! and swaps it atomically. A request takes the snapshot **once**, when it
//! starts, and reads every model and version from it: its answer, its span and
//! its metrics name the same versions, and a request in flight during a swap
//! finishes on the snapshot it started with.
//!
//! Boundary: holds loaded models; does no IO after [`ModelSnapshot::load`].

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::models::{LoadedModel, ModelError, load_model};
use crate::schema::RiskKind;
use crate::schema::{FAMILIES, schema_of};

/// One loaded model per family, fixed for the life of the snapshot.
#[derive(Debug, Clone)]
pub struct ModelSnapshot {
    /// Indexed by [`RiskKind::index`]; the models are shared between snapshots
    /// that differ in other families.
    models: Vec<Arc<LoadedModel>>,
}

impl ModelSnapshot {
    /// Loads every family's artifact from `dir`; refuses the whole set if any
    /// artifact is refused, so a server never starts with a partial set.
    pub fn load(dir: &Path) -> Result<Self, ModelError> {
        let models = FAMILIES
            .iter()
            .map(|family| load_model(dir, family.kind, schema_of(family.kind)).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ModelSnapshot { models })
    }

    /// The model serving a family.
    pub fn model(&self, kind: RiskKind) -> &LoadedModel {
        &self.models[kind.index()]
    }

    /// This snapshot with `model` serving its family instead; the other
    /// families keep their models (shared, not copied).
    pub fn with_model(&self, model: impl Into<Arc<LoadedModel>>) -> ModelSnapshot {
        let model = model.into();
        let index = model.kind.index();
        let mut models = self.models.clone();
        models[index] = model;
        ModelSnapshot { models }
    }

    /// Every family's model name and version, for logs and spans
    /// (`order_fallout=name@version …`); formatted only when displayed.
    pub fn versions(&self) -> Versions<'_> {
        Versions(self)
    }
}

/// See [`ModelSnapshot::versions`].
#[derive(Debug, Clone, Copy)]
pub struct Versions<'a>(&'a ModelSnapshot);

impl fmt::Display for Versions<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, model) in self.0.models.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(
                f,
                "{}={}@{}",
                model.kind.name(),
                model.manifest.name,
                model.manifest.version
            )?;
        }
        Ok(())
    }
}

/// The current [`ModelSnapshot`], swappable while serving.
#[derive(Debug)]
pub struct ModelRegistry {
    current: ArcSwap<ModelSnapshot>,
}

impl ModelRegistry {
    /// A registry serving `snapshot`.
    pub fn new(snapshot: ModelSnapshot) -> Self {
        ModelRegistry {
            current: ArcSwap::from_pointee(snapshot),
        }
    }

    /// Loads every family's artifact from `dir` (see [`ModelSnapshot::load`]).
    pub fn load(dir: &Path) -> Result<Self, ModelError> {
        ModelSnapshot::load(dir).map(ModelRegistry::new)
    }

    /// The snapshot to serve one request with. Cheap (an atomic reference
    /// count); take it once per request and pass it down.
    pub fn snapshot(&self) -> Arc<ModelSnapshot> {
        self.current.load_full()
    }

    /// Serves `next` from now on; returns the snapshot it replaced, which
    /// requests already holding it keep using until they finish.
    pub fn swap(&self, next: ModelSnapshot) -> Arc<ModelSnapshot> {
        self.current.swap(Arc::new(next))
    }

    /// Serves `model` for its family from now on, keeping the other families'
    /// models (atomic with respect to concurrent replacements); returns the
    /// snapshot it replaced.
    pub fn replace(&self, model: LoadedModel) -> Arc<ModelSnapshot> {
        let model = Arc::new(model);
        self.current
            .rcu(|current| current.with_model(Arc::clone(&model)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> ModelSnapshot {
        ModelSnapshot::load(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/models")))
            .expect("shipped models load")
    }

    fn renamed(model: &LoadedModel, version: &str) -> LoadedModel {
        let mut model = model.clone();
        model.manifest.version = version.to_string();
        model
    }

    #[test]
    fn a_snapshot_taken_before_a_swap_keeps_its_versions() {
        let registry = ModelRegistry::new(shipped());
        let before = registry.snapshot();
        let carrier = before.model(RiskKind::CarrierFailure);
        let old_version = carrier.manifest.version.clone();
        let previous = registry.replace(renamed(carrier, "v-next"));

        assert!(Arc::ptr_eq(&previous, &before));
        assert_eq!(
            before.model(RiskKind::CarrierFailure).manifest.version,
            old_version,
            "an in-flight request keeps the snapshot it started with"
        );
        let after = registry.snapshot();
        assert_eq!(
            after.model(RiskKind::CarrierFailure).manifest.version,
            "v-next"
        );
        // The other families are the same loaded models, not copies.
        assert!(std::ptr::eq(
            after.model(RiskKind::OrderFallout),
            before.model(RiskKind::OrderFallout)
        ));
        assert!(after.versions().to_string().contains("carrier_failure="));
        assert!(after.versions().to_string().contains("@v-next"));
    }

    #[test]
    fn swap_replaces_the_whole_set() {
        let registry = ModelRegistry::new(shipped());
        let first = registry.snapshot();
        let next = first.with_model(renamed(first.model(RiskKind::SiteCongestion), "v2"));
        registry.swap(next);
        assert_eq!(
            registry
                .snapshot()
                .model(RiskKind::SiteCongestion)
                .manifest
                .version,
            "v2"
        );
        let original =
            ModelSnapshot::load(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/models"))).unwrap();
        for kind in RiskKind::ALL {
            assert_eq!(
                first.model(kind).manifest.version,
                original.model(kind).manifest.version,
                "the replaced snapshot is untouched"
            );
        }
    }

    #[test]
    fn each_family_is_served_by_its_own_model() {
        let snapshot = shipped();
        for kind in RiskKind::ALL {
            assert_eq!(snapshot.model(kind).kind, kind);
            assert_eq!(snapshot.model(kind).manifest.family, kind.name());
        }
    }
}
