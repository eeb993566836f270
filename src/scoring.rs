//! Scoring: targets in, assessments out. Reads every feature the targets need in
//! one [`FeatureStore::fetch`], builds each family's vector and runs its model.
//! A store that fails degrades the answers (flagged), never fails them.
//!
//! Boundary: knows domain types, features and models; nothing of gRPC.

use std::collections::HashMap;
use std::sync::Arc;

use tracing::Instrument;

use crate::domain::{Order, RiskBand, RiskKind, Shipment, Timestamp};
use crate::features::vectors::{self, FeatureVector, Lookup};
use crate::features::{AggregateKey, AggregateRecord, FeatureStore};
use crate::network::Network;
use crate::registry::{ModelRegistry, schema_of};

/// How many factors an answer lists.
pub const TOP_FACTORS: usize = 3;

/// Something to score, with the time the decision is taken.
#[derive(Debug, Clone, PartialEq)]
pub enum ScoreTarget {
    Order {
        order: Order,
        as_of: Timestamp,
    },
    Shipment {
        shipment: Shipment,
        as_of: Timestamp,
    },
    Site {
        site: String,
        as_of: Timestamp,
    },
}

/// One feature's part in a score.
#[derive(Debug, Clone, PartialEq)]
pub struct Factor {
    pub feature: &'static str,
    pub unit: &'static str,
    pub value: f64,
    /// Change in calibrated log-odds against the average entity.
    pub contribution: f64,
}

/// The answer for one target.
#[derive(Debug, Clone, PartialEq)]
pub struct Assessment {
    pub entity_id: String,
    pub kind: RiskKind,
    pub probability: f64,
    pub band: RiskBand,
    pub model_name: String,
    pub model_version: String,
    /// Largest absolute contribution first.
    pub factors: Vec<Factor>,
    pub degraded_reasons: Vec<String>,
}

impl Assessment {
    /// Whether any feature was unavailable, unseen or stale.
    pub fn degraded(&self) -> bool {
        !self.degraded_reasons.is_empty()
    }
}

impl ScoreTarget {
    /// The family that scores this target.
    pub fn kind(&self) -> RiskKind {
        match self {
            ScoreTarget::Order { .. } => RiskKind::OrderFallout,
            ScoreTarget::Shipment { .. } => RiskKind::CarrierFailure,
            ScoreTarget::Site { .. } => RiskKind::SiteCongestion,
        }
    }

    /// The id reported back: order id, shipment id or site code.
    pub fn entity_id(&self) -> &str {
        match self {
            ScoreTarget::Order { order, .. } => &order.order_id,
            ScoreTarget::Shipment { shipment, .. } => &shipment.shipment_id,
            ScoreTarget::Site { site, .. } => site,
        }
    }

    fn push_keys(&self, keys: &mut Vec<AggregateKey>) {
        match self {
            ScoreTarget::Order { order, .. } => keys.extend(vectors::order_keys(order)),
            ScoreTarget::Shipment { shipment, .. } => keys.extend(vectors::shipment_keys(shipment)),
            ScoreTarget::Site { site, .. } => keys.extend(vectors::site_keys(site)),
        }
    }
}

/// Builds the feature vector of a target from fetched records (`None` when the
/// store could not be read). The trainer calls this too.
pub fn feature_vector<'r>(
    target: &ScoreTarget,
    lookup: &dyn Fn(&AggregateKey) -> Lookup<'r>,
    network: &Network,
    notes: &mut Vec<String>,
) -> FeatureVector {
    let mut keys = Vec::with_capacity(MAX_TARGET_KEYS);
    target.push_keys(&mut keys);
    let mut lookups = [None; MAX_TARGET_KEYS];
    for (slot, key) in lookups.iter_mut().zip(&keys) {
        *slot = lookup(key);
    }
    vector_of(target, &lookups, network, notes)
}

/// The most records one target reads (a shipment's).
const MAX_TARGET_KEYS: usize = 6;

/// The feature vector of a target from its records, looked up in the order of
/// [`ScoreTarget::push_keys`].
fn vector_of(
    target: &ScoreTarget,
    lookups: &[Lookup<'_>; MAX_TARGET_KEYS],
    network: &Network,
    notes: &mut Vec<String>,
) -> FeatureVector {
    match target {
        ScoreTarget::Order { order, as_of } => vectors::order_fallout_vector(
            order,
            *as_of,
            [lookups[0], lookups[1], lookups[2]],
            network,
            notes,
        ),
        ScoreTarget::Shipment { shipment, as_of } => {
            vectors::carrier_failure_vector(shipment, *as_of, *lookups, network, notes)
        }
        ScoreTarget::Site { site, as_of } => {
            vectors::site_congestion_vector(site, *as_of, [lookups[0]], network, notes)
        }
    }
}

/// Scores targets against a feature store and the loaded models.
#[derive(Debug)]
pub struct Scorer<S> {
    store: Arc<S>,
    registry: Arc<ModelRegistry>,
    network: Arc<Network>,
}

impl<S: FeatureStore> Scorer<S> {
    pub fn new(store: Arc<S>, registry: Arc<ModelRegistry>, network: Arc<Network>) -> Self {
        Scorer {
            store,
            registry,
            network,
        }
    }

    /// The loaded models.
    pub fn registry(&self) -> &ModelRegistry {
        &self.registry
    }

    /// Scores every target, in order, with one store read for all of them.
    pub async fn score(&self, targets: &[ScoreTarget]) -> Vec<Assessment> {
        // Each distinct record once; each target remembers where its records are.
        let mut keys: Vec<AggregateKey> = Vec::with_capacity(targets.len() * 4);
        let mut index: HashMap<AggregateKey, usize, foldhash::fast::RandomState> =
            HashMap::with_capacity_and_hasher(targets.len() * 4, Default::default());
        let mut slots: Vec<usize> = Vec::with_capacity(targets.len() * MAX_TARGET_KEYS);
        let mut counts: Vec<usize> = Vec::with_capacity(targets.len());
        let mut scratch = Vec::with_capacity(MAX_TARGET_KEYS);
        for target in targets {
            target.push_keys(&mut scratch);
            counts.push(scratch.len());
            for key in scratch.drain(..) {
                let next = index.len();
                let slot = *index.entry(key).or_insert_with_key(|key| {
                    keys.push(key.clone());
                    next
                });
                slots.push(slot);
            }
        }
        drop(index);
        let fetched = self
            .store
            .fetch(&keys)
            .instrument(tracing::debug_span!("feature_fetch", keys = keys.len()))
            .await;
        let (records, store_note): (Vec<Option<AggregateRecord>>, Option<String>) = match fetched {
            Ok(records) => (records, None),
            Err(error) => {
                tracing::warn!(%error, "scoring from defaults");
                (Vec::new(), Some(error.to_string()))
            }
        };
        let available = store_note.is_none();
        let _inference = tracing::debug_span!("inference", items = targets.len()).entered();
        let mut slots = slots.into_iter();
        targets
            .iter()
            .zip(counts)
            .map(|(target, count)| {
                let mut lookups = [None; MAX_TARGET_KEYS];
                for lookup in lookups.iter_mut().take(count) {
                    let slot = slots.next().expect("a slot per key");
                    *lookup = available.then(|| records[slot].as_ref());
                }
                let mut notes = Vec::new();
                if let Some(note) = &store_note {
                    notes.push(note.clone());
                }
                let features = vector_of(target, &lookups, &self.network, &mut notes);
                self.assess(target, &features, notes)
            })
            .collect()
    }

    fn assess(
        &self,
        target: &ScoreTarget,
        features: &FeatureVector,
        degraded_reasons: Vec<String>,
    ) -> Assessment {
        let kind = target.kind();
        let model = self.registry.model(kind);
        let prediction = model.predict(features);
        let schema = schema_of(kind);
        let mut order: Vec<usize> = (0..features.len)
            .filter(|&i| !features.values[i].is_nan() && prediction.contributions[i] != 0.0)
            .collect();
        let larger_first = |&a: &usize, &b: &usize| {
            prediction.contributions[b]
                .abs()
                .total_cmp(&prediction.contributions[a].abs())
                .then(a.cmp(&b))
        };
        if order.len() > TOP_FACTORS {
            order.select_nth_unstable_by(TOP_FACTORS, larger_first);
            order.truncate(TOP_FACTORS);
        }
        order.sort_unstable_by(larger_first);
        let factors = order
            .into_iter()
            .take(TOP_FACTORS)
            .map(|i| Factor {
                feature: schema[i].name,
                unit: schema[i].unit,
                value: features.values[i],
                contribution: prediction.contributions[i],
            })
            .collect();
        Assessment {
            entity_id: target.entity_id().to_string(),
            kind,
            probability: prediction.probability,
            band: model.band(prediction.probability),
            model_name: model.manifest.name.clone(),
            model_version: model.manifest.version.clone(),
            factors,
            degraded_reasons,
        }
    }
}
