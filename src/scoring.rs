//! Scoring: targets in, assessments out. Reads every feature the targets need in
//! one [`FeatureStore::fetch`], builds each family's vector and runs its model.
//! A store that fails degrades the answers (flagged), never fails them.
//!
//! Boundary: knows domain types, features and models; nothing of gRPC.

use std::collections::HashMap;
use std::sync::Arc;

use tracing::Instrument;

use crate::domain::{Order, RiskBand, Shipment, Timestamp};
use crate::features::vectors::{self, Gaps, Lookup};
use crate::features::{AggregateKey, AggregateRecord, FeatureStore};
use crate::models::Prediction;
use crate::network::Network;
use crate::registry::{ModelRegistry, ModelSnapshot};
use crate::schema::RiskKind;
use crate::schema::{FeatureVector, schema_of};

mod codes;

pub use codes::{UnknownCode, check_codes, check_order_codes};

/// How many factors an answer lists.
pub const TOP_FACTORS: usize = 3;
/// Requests with at least this many targets plan their keys and infer where
/// they cannot stall the other connections served by the same worker thread
/// ([`crate::cpu`]). Scoring costs about 3 µs per target, so this is about
/// 0.75 ms of work. Measured on this two-core machine, one server worker, with
/// Redis and the load generator beside it (BENCHMARKS.md, "Work off the
/// reactor"): beside 500-target batches, single calls on other connections
/// answered in 0.13 ms at the median instead of 1.76 ms; below a few hundred
/// targets moving the work costs the batch more than it spares the others
/// (100-target batches lost 40 % of their throughput for no gain in the single
/// calls' p99).
pub const BLOCKING_INFERENCE_TARGETS: usize = 256;

/// Something to score, with the time the decision is taken.
#[derive(Debug, Clone, PartialEq)]
pub enum ScoreTarget {
    /// An order's risk of fallout.
    Order {
        /// The order as the request gives it.
        order: Order,
        /// Decision time; features are read as of then.
        as_of: Timestamp,
    },
    /// A shipment leg's risk of carrier failure.
    Shipment {
        /// The leg as the request gives it.
        shipment: Shipment,
        /// Decision time; the model predicts at this lead before departure.
        as_of: Timestamp,
    },
    /// A site's risk of congestion.
    Site {
        /// The site's code.
        site: String,
        /// Decision time; the horizon starts here.
        as_of: Timestamp,
    },
}

/// One feature's part in a score.
#[derive(Debug, Clone, PartialEq)]
pub struct Factor {
    /// The feature's name in the family's schema.
    pub feature: &'static str,
    /// The unit of `value`.
    pub unit: &'static str,
    /// The feature's value for this entity; never NaN (unknown features are
    /// not listed).
    pub value: f64,
    /// Change in calibrated log-odds against the average entity.
    pub contribution: f64,
}

/// The answer for one target.
#[derive(Debug, Clone, PartialEq)]
pub struct Assessment {
    /// The order id, shipment id or site code that was scored.
    pub entity_id: String,
    /// The family that scored it.
    pub kind: RiskKind,
    /// Calibrated probability of the adverse outcome, in [0, 1].
    pub probability: f64,
    /// The band `probability` falls in, by the model's thresholds; `Unknown`
    /// when the state the family leans on most was missing or stale.
    pub band: RiskBand,
    /// Name of the model, from the request's registry snapshot.
    pub model_name: String,
    /// Version of the model, from the same snapshot.
    pub model_version: String,
    /// At most [`TOP_FACTORS`], largest absolute contribution first.
    pub factors: Vec<Factor>,
    /// Why some features were unknown and defaults stood in, one line each;
    /// empty when the answer is not degraded.
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

    /// The id reported back, taken out of the target.
    pub fn into_entity_id(self) -> String {
        match self {
            ScoreTarget::Order { order, .. } => order.order_id,
            ScoreTarget::Shipment { shipment, .. } => shipment.shipment_id,
            ScoreTarget::Site { site, .. } => site,
        }
    }

    /// Appends the records this target's features read, in the order its
    /// family's vector builder takes them.
    pub fn push_keys(&self, keys: &mut Vec<AggregateKey>) {
        match self {
            ScoreTarget::Order { order, .. } => keys.extend(vectors::order_keys(order)),
            ScoreTarget::Shipment { shipment, as_of } => {
                keys.extend(vectors::shipment_keys(shipment, *as_of))
            }
            ScoreTarget::Site { site, .. } => keys.extend(vectors::site_keys(site)),
        }
    }
}

/// Builds the feature vector of a target from fetched records (`None` when the
/// store could not be read), recording what was missing in `gaps`. The trainer
/// calls this too.
pub fn feature_vector<'r>(
    target: &ScoreTarget,
    lookup: &dyn Fn(&AggregateKey) -> Lookup<'r>,
    network: &Network,
    gaps: &mut Gaps,
) -> FeatureVector {
    let mut keys = Vec::with_capacity(MAX_TARGET_KEYS);
    target.push_keys(&mut keys);
    let mut lookups = [None; MAX_TARGET_KEYS];
    for (slot, key) in lookups.iter_mut().zip(&keys) {
        *slot = lookup(key);
    }
    vector_of(target, &lookups, network, gaps)
}

/// The most records one target reads (a shipment's).
const MAX_TARGET_KEYS: usize = vectors::SHIPMENT_KEYS;

/// The feature vector of a target from its records, looked up in the order of
/// [`ScoreTarget::push_keys`].
fn vector_of(
    target: &ScoreTarget,
    lookups: &[Lookup<'_>; MAX_TARGET_KEYS],
    network: &Network,
    gaps: &mut Gaps,
) -> FeatureVector {
    match target {
        ScoreTarget::Order { order, as_of } => vectors::order_fallout_vector(
            order,
            *as_of,
            std::array::from_fn(|i| lookups[i]),
            network,
            gaps,
        ),
        ScoreTarget::Shipment { shipment, as_of } => {
            vectors::carrier_failure_vector(shipment, *as_of, *lookups, network, gaps)
        }
        ScoreTarget::Site { site, as_of } => {
            vectors::site_congestion_vector(site, *as_of, [lookups[0]], network, gaps)
        }
    }
}

/// Scores targets against a feature store and the models being served.
#[derive(Debug)]
pub struct Scorer<S> {
    store: Arc<S>,
    registry: Arc<ModelRegistry>,
    network: Arc<Network>,
}

impl<S: FeatureStore> Scorer<S> {
    /// A scorer reading `store` and serving the registry's current models.
    pub fn new(store: Arc<S>, registry: Arc<ModelRegistry>, network: Arc<Network>) -> Self {
        Scorer {
            store,
            registry,
            network,
        }
    }

    /// The models to serve one request with: take it once per request, name
    /// its versions in the request's span, and pass it to [`Scorer::score`].
    pub fn models(&self) -> Arc<ModelSnapshot> {
        self.registry.snapshot()
    }

    /// Scores every target, in order, with one store read for all of them and
    /// the models of `models`. A target naming a code the network does not
    /// know ([`check_codes`]) gets its [`UnknownCode`] instead of a score.
    pub async fn score(
        &self,
        models: &Arc<ModelSnapshot>,
        targets: Vec<ScoreTarget>,
    ) -> Vec<Result<Assessment, UnknownCode>> {
        // The common case, every code known, allocates nothing more.
        if targets
            .iter()
            .all(|t| check_codes(t, &self.network).is_ok())
        {
            let answers = self.score_known(models, targets).await;
            return answers.into_iter().map(Ok).collect();
        }
        let mut unknown: Vec<Option<UnknownCode>> = Vec::with_capacity(targets.len());
        let mut known = Vec::with_capacity(targets.len());
        for target in targets {
            match check_codes(&target, &self.network) {
                Ok(()) => {
                    unknown.push(None);
                    known.push(target);
                }
                Err(error) => unknown.push(Some(error)),
            }
        }
        let mut answers = self.score_known(models, known).await.into_iter();
        unknown
            .into_iter()
            .map(|error| match error {
                None => Ok(answers.next().expect("an answer per known target")),
                Some(error) => Err(error),
            })
            .collect()
    }

    /// Scores targets whose codes were checked.
    async fn score_known(
        &self,
        models: &Arc<ModelSnapshot>,
        targets: Vec<ScoreTarget>,
    ) -> Vec<Assessment> {
        if targets.is_empty() {
            return Vec::new();
        }
        // A large request plans its keys and infers where it cannot stall the
        // reactor (`cpu::run`); the read in between is the only await.
        let heavy = targets.len() >= BLOCKING_INFERENCE_TARGETS;
        let planned = crate::cpu::run(heavy, move || Planned::of(targets)).await;
        let fetched = self
            .store
            .fetch(&planned.keys)
            .instrument(tracing::debug_span!(
                "feature_fetch",
                keys = planned.keys.len()
            ))
            .await;
        let fetched = match fetched {
            Ok(records) => Fetched {
                records,
                store_note: None,
            },
            Err(error) => {
                tracing::warn!(%error, "scoring from defaults");
                Fetched {
                    records: Vec::new(),
                    store_note: Some(error.to_string()),
                }
            }
        };
        let work = Inference { planned, fetched };
        let models = Arc::clone(models);
        let network = Arc::clone(&self.network);
        crate::cpu::run(heavy, move || work.run(&models, &network)).await
    }
}

/// The records a request reads: each distinct key once, and where each
/// target's keys are among them.
struct Planned {
    targets: Vec<ScoreTarget>,
    /// Each distinct record once, in first-seen order.
    keys: Vec<AggregateKey>,
    /// The slot in `keys` of each target's keys, target after target.
    slots: Vec<usize>,
    /// How many keys each target has.
    counts: Vec<usize>,
}

impl Planned {
    fn of(targets: Vec<ScoreTarget>) -> Self {
        let mut keys: Vec<AggregateKey> = Vec::with_capacity(targets.len() * 4);
        let mut index: HashMap<AggregateKey, usize, foldhash::fast::RandomState> =
            HashMap::with_capacity_and_hasher(targets.len() * 4, Default::default());
        let mut slots: Vec<usize> = Vec::with_capacity(targets.len() * MAX_TARGET_KEYS);
        let mut counts: Vec<usize> = Vec::with_capacity(targets.len());
        let mut scratch = Vec::with_capacity(MAX_TARGET_KEYS);
        for target in &targets {
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
        Planned {
            targets,
            keys,
            slots,
            counts,
        }
    }
}

/// What the store answered for one request.
struct Fetched {
    /// One per distinct key; empty when the store failed.
    records: Vec<Option<AggregateRecord>>,
    /// Why the store could not be read, if it could not.
    store_note: Option<String>,
}

/// The CPU half of a request: vectors, models and explanations, no IO.
struct Inference {
    planned: Planned,
    fetched: Fetched,
}

impl Inference {
    fn run(self, models: &ModelSnapshot, network: &Network) -> Vec<Assessment> {
        let Planned {
            targets,
            slots,
            counts,
            ..
        } = self.planned;
        let _inference = tracing::debug_span!("inference", items = targets.len()).entered();
        let Fetched {
            records,
            store_note,
        } = self.fetched;
        let available = store_note.is_none();
        let mut slots = slots.into_iter();
        targets
            .into_iter()
            .zip(counts)
            .map(|(target, count)| {
                let mut lookups = [None; MAX_TARGET_KEYS];
                for lookup in lookups.iter_mut().take(count) {
                    let slot = slots.next().expect("a slot per key");
                    *lookup = available.then(|| records[slot].as_ref());
                }
                let mut gaps = Gaps::default();
                if let Some(note) = &store_note {
                    gaps.decisive(note.clone());
                }
                let features = vector_of(&target, &lookups, network, &mut gaps);
                assess(models, target, &features, gaps)
            })
            .collect()
    }
}

/// The answer for one target from its features and what they lacked.
fn assess(
    models: &ModelSnapshot,
    target: ScoreTarget,
    features: &FeatureVector,
    gaps: Gaps,
) -> Assessment {
    let kind = target.kind();
    let route = models.route(kind);
    let (model, by_candidate) = route.answering(target.entity_id());
    let prediction = model.predict(features);
    if let Some(candidate) = &route.candidate {
        // Both versions score the same features: the pair is what the
        // comparison on outcomes counts.
        let other = if by_candidate {
            &route.active
        } else {
            &candidate.model
        };
        let other = other.probability(features);
        let (active, by) = if by_candidate {
            (other, prediction.probability)
        } else {
            (prediction.probability, other)
        };
        candidate.comparison.record(target.entity_id(), active, by);
    }
    let factors = top_factors(kind, features, &prediction);
    Assessment {
        entity_id: target.into_entity_id(),
        kind,
        probability: prediction.probability,
        band: if gaps.decisive {
            RiskBand::Unknown
        } else {
            model.band(prediction.probability)
        },
        model_name: model.manifest.name.clone(),
        model_version: model.manifest.version.clone(),
        factors,
        degraded_reasons: gaps.reasons,
    }
}

/// The features that moved `prediction` most, at most [`TOP_FACTORS`],
/// largest absolute contribution first; unknown features are not listed.
pub fn top_factors(
    kind: RiskKind,
    features: &FeatureVector,
    prediction: &Prediction,
) -> Vec<Factor> {
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
    order
        .into_iter()
        .take(TOP_FACTORS)
        .map(|i| Factor {
            feature: schema[i].name,
            unit: schema[i].unit,
            value: features.values[i],
            contribution: prediction.contributions[i],
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::*;
    use crate::features::InMemoryFeatureStore;

    #[tokio::test]
    async fn a_request_answers_with_the_snapshot_it_took_even_after_a_swap() {
        let models = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/models"));
        let registry = Arc::new(ModelRegistry::load(models).unwrap());
        let store = Arc::new(InMemoryFeatureStore::new(Duration::from_secs(60)));
        let network = Network::load(&models.join("network.toml")).unwrap();
        let scorer = Scorer::new(store, Arc::clone(&registry), Arc::new(network));
        let site = |code: &str| ScoreTarget::Site {
            site: code.into(),
            as_of: Timestamp(1_790_000_000_000),
        };

        let before = scorer.models();
        let mut next = before.model(RiskKind::SiteCongestion).clone();
        next.manifest.version = "swapped".into();
        registry.replace(next);

        // Enough targets to take the heavy path too: both paths use the snapshot given.
        for count in [1, BLOCKING_INFERENCE_TARGETS] {
            let targets = vec![site("ATL"); count];
            let old: Vec<Assessment> = scorer
                .score(&before, targets.clone())
                .await
                .into_iter()
                .map(Result::unwrap)
                .collect();
            let new: Vec<Assessment> = scorer
                .score(&scorer.models(), targets)
                .await
                .into_iter()
                .map(Result::unwrap)
                .collect();
            assert_eq!(old.len(), count);
            let expected = &before.model(RiskKind::SiteCongestion).manifest.version;
            assert!(old.iter().all(|a| &a.model_version == expected));
            assert!(new.iter().all(|a| a.model_version == "swapped"));
            assert_eq!(old[0].probability, new[0].probability, "same weights");
        }
    }
}
