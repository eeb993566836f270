//! The models being served. A [`ModelSnapshot`] is an immutable set of one
//! loaded model per family; the [`ModelRegistry`] holds the current snapshot
//! and swaps it atomically. A request takes the snapshot **once**, when it
//! starts, and reads every model and version from it: its answer, its span and
//! its metrics name the same versions, and a request in flight during a swap
//! finishes on the snapshot it started with.
//!
//! Besides its active model, a family may have a candidate: in **shadow**
//! (every request is also scored by it, callers get the active answer) or as
//! a **canary** (a share of entities, chosen by a hash of the entity id so
//! that an entity always gets the same version, get the candidate's answer).
//! Either way both scores of each decision go to the candidate's
//! [`Comparison`], which ingest resolves with outcomes.
//!
//! Boundary: holds loaded models; does no IO after [`ModelSnapshot::load`].

pub mod comparison;

use std::fmt;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwap;
use tokio::sync::mpsc::UnboundedSender;

pub use comparison::Comparison;

use crate::models::{LoadedModel, ModelError, load_model};
use crate::schema::RiskKind;
use crate::schema::{FAMILIES, schema_of};

/// Canary shares are resolved to parts per million of the entity-id hash.
const CANARY_PARTS: u64 = 1_000_000;

/// How one family's requests are served.
#[derive(Debug, Clone)]
pub struct Route {
    /// The active model.
    pub active: Arc<LoadedModel>,
    /// The version compared with it, if any.
    pub candidate: Option<CandidateRoute>,
}

/// A candidate's part in a [`Route`].
#[derive(Debug, Clone)]
pub struct CandidateRoute {
    /// The candidate model.
    pub model: Arc<LoadedModel>,
    /// `None`: shadow. `Some(parts)`: canary, answering the entities whose id
    /// hashes below `parts` per million.
    pub canary_parts: Option<u64>,
    /// Where both scores of each decision go.
    pub comparison: Arc<Comparison>,
}

impl CandidateRoute {
    /// A candidate in shadow (`canary_percent` `None`) or canary.
    pub fn new(
        model: Arc<LoadedModel>,
        canary_percent: Option<f64>,
        comparison: Arc<Comparison>,
    ) -> Self {
        CandidateRoute {
            model,
            canary_parts: canary_percent.map(|p| {
                (p / 100.0 * CANARY_PARTS as f64)
                    .round()
                    .clamp(0.0, CANARY_PARTS as f64) as u64
            }),
            comparison,
        }
    }
}

impl Route {
    /// The model whose answer `entity_id` gets, and whether it is the
    /// candidate (a canary that the entity's hash falls in).
    pub fn answering(&self, entity_id: &str) -> (&LoadedModel, bool) {
        match &self.candidate {
            Some(CandidateRoute {
                model,
                canary_parts: Some(parts),
                ..
            }) if entity_bucket(entity_id) < *parts => (model, true),
            _ => (&self.active, false),
        }
    }
}

/// Where an entity falls among [`CANARY_PARTS`]: FNV-1a of its id, the same
/// on every replica and every run, so a canary is sticky per entity.
pub fn entity_bucket(entity_id: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in entity_id.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash % CANARY_PARTS
}

/// One route per family, fixed for the life of the snapshot.
#[derive(Debug, Clone)]
pub struct ModelSnapshot {
    /// Indexed by [`RiskKind::index`]; the models are shared between snapshots
    /// that differ in other families.
    routes: Vec<Route>,
}

impl ModelSnapshot {
    /// Loads every family's active artifact from the repository `dir`;
    /// refuses the whole set if any artifact is refused, so a server never
    /// starts with a partial set.
    pub fn load(dir: &Path) -> Result<Self, ModelError> {
        let routes = FAMILIES
            .iter()
            .map(|family| {
                load_model(dir, family.kind, schema_of(family.kind)).map(|model| Route {
                    active: Arc::new(model),
                    candidate: None,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ModelSnapshot { routes })
    }

    /// A snapshot of one route per family, in [`RiskKind::ALL`] order.
    pub fn from_routes(routes: Vec<Route>) -> Self {
        assert_eq!(routes.len(), RiskKind::ALL.len(), "one route per family");
        for (route, kind) in routes.iter().zip(RiskKind::ALL) {
            assert_eq!(route.active.kind, kind, "routes in family order");
        }
        ModelSnapshot { routes }
    }

    /// The active model of a family: what recommendations rank with, and the
    /// version a request's span names.
    pub fn model(&self, kind: RiskKind) -> &LoadedModel {
        &self.routes[kind.index()].active
    }

    /// How a family's scoring requests are served.
    pub fn route(&self, kind: RiskKind) -> &Route {
        &self.routes[kind.index()]
    }

    /// This snapshot with `model` serving its family instead (without a
    /// candidate); the other families keep their routes (shared, not copied).
    pub fn with_model(&self, model: impl Into<Arc<LoadedModel>>) -> ModelSnapshot {
        let model = model.into();
        let index = model.kind.index();
        let mut routes = self.routes.clone();
        routes[index] = Route {
            active: model,
            candidate: None,
        };
        ModelSnapshot { routes }
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
        for (i, route) in self.0.routes.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            let model = &route.active;
            write!(
                f,
                "{}={}@{}",
                model.kind.name(),
                model.manifest.name,
                model.manifest.version
            )?;
            if let Some(candidate) = &route.candidate {
                let mode = if candidate.canary_parts.is_some() {
                    "canary"
                } else {
                    "shadow"
                };
                write!(f, "+{mode}@{}", candidate.model.manifest.version)?;
            }
        }
        Ok(())
    }
}

/// The current [`ModelSnapshot`], swappable while serving.
#[derive(Debug)]
pub struct ModelRegistry {
    current: ArcSwap<ModelSnapshot>,
    /// Where a comparison whose auto-promote rule now holds is sent.
    verdicts: OnceLock<UnboundedSender<Arc<Comparison>>>,
}

impl ModelRegistry {
    /// A registry serving `snapshot`.
    pub fn new(snapshot: ModelSnapshot) -> Self {
        ModelRegistry {
            current: ArcSwap::from_pointee(snapshot),
            verdicts: OnceLock::new(),
        }
    }

    /// Sends each comparison whose auto-promote rule comes to hold to `tx`
    /// (the lifecycle, which promotes); set once.
    pub fn on_verdict(&self, tx: UnboundedSender<Arc<Comparison>>) {
        let _ = self.verdicts.set(tx);
    }

    /// Whether any family has a candidate, so outcomes are worth reporting.
    pub fn comparing(&self) -> bool {
        self.current
            .load()
            .routes
            .iter()
            .any(|r| r.candidate.is_some())
    }

    /// Counts the outcome of an entity (`adverse`: the event the family
    /// predicts happened) in its family's comparison, if one is running.
    pub fn observe_outcome(&self, kind: RiskKind, entity_id: &str, adverse: bool) {
        let snapshot = self.current.load();
        if let Some(candidate) = &snapshot.route(kind).candidate
            && candidate.comparison.resolve(entity_id, adverse)
            && let Some(tx) = self.verdicts.get()
        {
            let _ = tx.send(Arc::clone(&candidate.comparison));
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
