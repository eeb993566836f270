//! Planning: the IO around a recommendation. Finds the order or shipment (inline,
//! or ingested and named by id), reads every record the candidates need — in one
//! round trip when the entity is inline and every candidate is known from the
//! network — and hands them to the pure ranking in [`crate::recommend`]. A store
//! that fails degrades the answer (flagged), as in scoring.

use std::collections::HashMap;
use std::sync::Arc;

use crate::anomaly::Suggestion;
use crate::domain::{InventoryPosition, Order, Shipment, Timestamp};
use crate::features::vectors::Lookup;
use crate::features::{
    AggregateKey, AggregateRecord, Entity, EntityKey, FeatureError, FeatureStore, FetchRequest,
};
use crate::network::Network;
use crate::recommend::reallocation::{self, OrderLine, ReallocationInput};
use crate::recommend::reroute::{self, RerouteInput};
use crate::recommend::{Policy, Recommendation};
use crate::registry::{ModelRegistry, ModelSnapshot};
use crate::schema::RiskKind;

/// An entity given inline or named by the id it was ingested under.
#[derive(Debug, Clone, PartialEq)]
pub enum Subject<T> {
    /// The entity as the request carries it.
    Inline(T),
    /// The id it was ingested under; read from the store.
    ById(String),
}

/// Per-request changes to the policy (unset fields keep the configured value).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PolicyOverrides {
    /// Replaces [`Policy::failure_cost`].
    pub failure_cost: Option<f64>,
    /// Replaces [`Policy::approval_cost_delta`].
    pub approval_cost_delta: Option<f64>,
    /// Replaces [`Policy::safe_risk`].
    pub safe_risk: Option<f64>,
    /// Replaces [`Policy::max_options`].
    pub max_options: Option<usize>,
}

impl PolicyOverrides {
    fn apply(&self, mut policy: Policy) -> Policy {
        policy.failure_cost = self.failure_cost.unwrap_or(policy.failure_cost);
        policy.approval_cost_delta = self
            .approval_cost_delta
            .unwrap_or(policy.approval_cost_delta);
        policy.safe_risk = self.safe_risk.unwrap_or(policy.safe_risk);
        policy.max_options = self.max_options.unwrap_or(policy.max_options);
        policy
    }
}

/// A reroute request in domain terms.
#[derive(Debug, Clone, PartialEq)]
pub struct RerouteRequest {
    /// The shipment leg to reroute.
    pub shipment: Subject<Shipment>,
    /// Decision time; now (but not after departure) when unset.
    pub as_of: Option<Timestamp>,
    /// Carrier codes the caller rules out; the current carrier stays as the baseline.
    pub excluded_carriers: Vec<String>,
    /// This request's changes to the configured reroute policy.
    pub overrides: PolicyOverrides,
}

/// A reallocation request in domain terms.
#[derive(Debug, Clone, PartialEq)]
pub struct ReallocationRequest {
    /// The order to place elsewhere.
    pub order: Subject<Order>,
    /// What the order needs; each candidate site's stock is checked against it.
    pub lines: Vec<OrderLine>,
    /// Stock known to the caller; wins over ingested inventory for its site and SKU.
    pub stock: Vec<InventoryPosition>,
    /// Decision time; the order's creation when unset.
    pub as_of: Option<Timestamp>,
    /// Site codes the caller rules out; the current site stays as the baseline.
    pub excluded_sites: Vec<String>,
    /// This request's changes to the configured reallocation policy.
    pub overrides: PolicyOverrides,
}

/// Why a plan could not be made.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PlanningError {
    /// The entity was named by id and no event about it was ingested (or it
    /// has expired).
    #[error("no ingested {kind} {id:?}: ingest it first, or send it inline")]
    NotFound {
        /// "order" or "shipment".
        kind: &'static str,
        /// The id the request named.
        id: String,
    },
    /// The entity was named by id and the store could not be read.
    #[error(transparent)]
    Store(#[from] FeatureError),
    /// The order's site or region is not in the network: there is nothing to
    /// compare other sites with.
    #[error(transparent)]
    UnknownCode(#[from] crate::scoring::UnknownCode),
}

/// Plans with at least this many candidate carriers or sites rank where they
/// cannot stall the reactor ([`crate::cpu`]). Ranking costs 2–3 µs per
/// candidate (10 carriers: 22 µs; 50 sites: 150 µs), so the same rule as for
/// scoring (`scoring::BLOCKING_INFERENCE_TARGETS`) applies: about 0.75 ms of
/// work (BENCHMARKS.md, "Work off the reactor").
pub const BLOCKING_RANKING_CANDIDATES: usize = 256;

/// Plans reroutes and reallocations over a feature store.
#[derive(Debug)]
pub struct Planner<S> {
    store: Arc<S>,
    registry: Arc<ModelRegistry>,
    network: Arc<Network>,
    reroute_policy: Policy,
    reallocation_policy: Policy,
}

impl<S: FeatureStore> Planner<S> {
    /// A planner reading `store` and ranking with the registry's current models.
    pub fn new(
        store: Arc<S>,
        registry: Arc<ModelRegistry>,
        network: Arc<Network>,
        reroute_policy: Policy,
        reallocation_policy: Policy,
    ) -> Self {
        Planner {
            store,
            registry,
            network,
            reroute_policy,
            reallocation_policy,
        }
    }

    /// The models to plan one request with: take it once per request and pass
    /// it to [`Planner::reroute`] or [`Planner::reallocate`].
    pub fn models(&self) -> Arc<ModelSnapshot> {
        self.registry.snapshot()
    }

    /// Ranked carriers for a shipment, predicted by `models`.
    pub async fn reroute(
        &self,
        models: &Arc<ModelSnapshot>,
        request: RerouteRequest,
    ) -> Result<Recommendation, PlanningError> {
        let shipment = match request.shipment {
            Subject::Inline(shipment) => shipment,
            Subject::ById(id) => match self.entity(EntityKey::Shipment(id.clone())).await? {
                Some(Entity::Shipment(shipment)) => shipment,
                _ => {
                    return Err(PlanningError::NotFound {
                        kind: "shipment",
                        id,
                    });
                }
            },
        };
        let as_of = request
            .as_of
            .unwrap_or_else(|| Timestamp::now().min(shipment.scheduled_departure));
        let known = reroute::candidates(&shipment, &self.network, &[]);
        let lane = (shipment.origin.clone(), shipment.destination.clone());
        let mut reads = Reads::default();
        let observed = reads
            .fetch(
                &*self.store,
                reroute::keys(&shipment, as_of, &known),
                vec![lane],
            )
            .await
            .pop()
            .unwrap_or_default();
        let candidates = reroute::candidates(&shipment, &self.network, &observed);
        if candidates.len() > known.len() {
            let more = reroute::keys(&shipment, as_of, &candidates);
            reads.fetch(&*self.store, more, Vec::new()).await;
        }
        let heavy = candidates.len() >= BLOCKING_RANKING_CANDIDATES;
        let policy = request.overrides.apply(self.reroute_policy);
        let (models, network) = (Arc::clone(models), Arc::clone(&self.network));
        let rank = move || {
            let lookup = |key: &AggregateKey| reads.lookup(key);
            let mut answer = reroute::reroute(&RerouteInput {
                shipment: &shipment,
                as_of,
                candidates: &candidates,
                excluded: &request.excluded_carriers,
                network: &network,
                model: models.model(RiskKind::CarrierFailure),
                lookup: &lookup,
                policy,
            });
            reads.note_failure(&mut answer.degraded_reasons);
            answer
        };
        Ok(crate::cpu::run(heavy, rank).await)
    }

    /// The top answer for an ingested leg, as an alert suggests it: the
    /// best carrier when it beats the current one, else the later promise
    /// offered when none is safe, else nothing (also when the leg is not
    /// found or the ranking fails).
    pub async fn top_reroute(&self, shipment_id: &str) -> Option<Suggestion> {
        let request = RerouteRequest {
            shipment: Subject::ById(shipment_id.to_string()),
            as_of: None,
            excluded_carriers: Vec::new(),
            overrides: PolicyOverrides::default(),
        };
        let answer = self.reroute(&self.models(), request).await.ok()?;
        let best = answer.options.iter().find(|o| o.rank == 1)?;
        if !best.baseline {
            return Some(Suggestion {
                option: best.option.clone(),
                risk: best.criteria.risk,
                risk_removed: best.risk_removed,
                cost_delta: best.cost_delta,
                new_promise: None,
            });
        }
        answer.promise_adjustment.map(|later| Suggestion {
            option: String::new(),
            risk: best.criteria.risk,
            risk_removed: 0.0,
            cost_delta: 0.0,
            new_promise: Some(later.new_promise.0.div_euclid(1000)),
        })
    }

    /// Ranked sites for an order, predicted by `models`.
    pub async fn reallocate(
        &self,
        models: &Arc<ModelSnapshot>,
        request: ReallocationRequest,
    ) -> Result<Recommendation, PlanningError> {
        let order = match request.order {
            Subject::Inline(order) => order,
            Subject::ById(id) => match self.entity(EntityKey::Order(id.clone())).await? {
                Some(Entity::Order(order)) => order,
                _ => return Err(PlanningError::NotFound { kind: "order", id }),
            },
        };
        let as_of = request.as_of.unwrap_or(order.created_at);
        crate::scoring::check_order_codes(&order, &self.network)?;
        let mut reads = Reads::default();
        let keys = reallocation::keys(&order, &request.lines, &self.network);
        reads.fetch(&*self.store, keys, Vec::new()).await;
        let heavy = self.network.sites.len() >= BLOCKING_RANKING_CANDIDATES;
        let policy = request.overrides.apply(self.reallocation_policy);
        let (models, network) = (Arc::clone(models), Arc::clone(&self.network));
        let rank = move || {
            let lookup = |key: &AggregateKey| reads.lookup(key);
            let mut answer = reallocation::reallocation(&ReallocationInput {
                order: &order,
                lines: &request.lines,
                as_of,
                excluded: &request.excluded_sites,
                stock: &request.stock,
                network: &network,
                model: models.model(RiskKind::OrderFallout),
                lookup: &lookup,
                policy,
            });
            reads.note_failure(&mut answer.degraded_reasons);
            answer
        };
        Ok(crate::cpu::run(heavy, rank).await)
    }

    async fn entity(&self, key: EntityKey) -> Result<Option<Entity>, FeatureError> {
        let request = FetchRequest {
            entities: vec![key],
            ..FetchRequest::default()
        };
        Ok(self
            .store
            .fetch_all(&request)
            .await?
            .entities
            .pop()
            .flatten())
    }
}

/// Records read so far for one plan, and whether any read failed.
#[derive(Default)]
struct Reads {
    records: HashMap<AggregateKey, Option<AggregateRecord>, foldhash::fast::RandomState>,
    failure: Option<String>,
}

impl Reads {
    /// Reads `keys` not read yet and the carriers of `lanes`, in one round trip.
    async fn fetch<S: FeatureStore>(
        &mut self,
        store: &S,
        keys: Vec<AggregateKey>,
        lanes: Vec<(String, String)>,
    ) -> Vec<Vec<String>> {
        let records: Vec<AggregateKey> = keys
            .into_iter()
            .filter(|k| !self.records.contains_key(k))
            .collect();
        let request = FetchRequest {
            records,
            lanes,
            entities: Vec::new(),
        };
        match store.fetch_all(&request).await {
            Ok(fetched) => {
                self.records
                    .extend(request.records.into_iter().zip(fetched.records));
                fetched.lane_carriers
            }
            Err(error) => {
                tracing::warn!(%error, "planning from defaults");
                self.failure = Some(error.to_string());
                Vec::new()
            }
        }
    }

    fn lookup(&self, key: &AggregateKey) -> Lookup<'_> {
        if self.failure.is_some() {
            return None;
        }
        // Not read: treat as unavailable rather than as "never seen".
        self.records.get(key).map(Option::as_ref)
    }

    fn note_failure(&self, reasons: &mut Vec<String>) {
        if let Some(failure) = &self.failure {
            reasons.insert(0, failure.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::*;
    use crate::domain::OrderPriority;
    use crate::features::InMemoryFeatureStore;
    use crate::network::{Carrier, Lane, Region, Site};

    /// `sites` sites, each with one carrier lane to the region "JFK".
    fn network(sites: usize) -> Network {
        let sites: Vec<Site> = (0..sites)
            .map(|i| Site {
                code: format!("S{i:02}"),
                name: String::new(),
                region: String::new(),
                lat: 30.0 + (i % 10) as f64,
                lon: -100.0 + (i % 7) as f64,
                capacity_per_hour: 40.0,
                backlog_limit: 120.0,
                handling_cost: 5.0,
            })
            .collect();
        let lanes = sites
            .iter()
            .map(|s| Lane {
                origin: s.code.clone(),
                destination: "JFK".into(),
                rate: 80.0 + s.lat,
                transit_hours: 20.0,
            })
            .collect();
        let region = Region {
            code: "JFK".into(),
            area: "NE".into(),
            lat: 40.6,
            lon: -73.8,
        };
        let carrier = Carrier {
            code: "K1".into(),
            name: String::new(),
            lanes,
        };
        Network::new(sites, vec![region], vec![carrier])
    }

    #[tokio::test]
    async fn a_ranking_over_many_sites_on_the_blocking_pool_matches_the_pure_ranking() {
        let network = Arc::new(network(BLOCKING_RANKING_CANDIDATES + 6));
        let models = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/models"));
        let registry = Arc::new(ModelRegistry::load(models).unwrap());
        let store = Arc::new(InMemoryFeatureStore::new(Duration::from_secs(60)));
        let planner = Planner::new(
            store,
            Arc::clone(&registry),
            Arc::clone(&network),
            Policy::REROUTE,
            Policy::REALLOCATION,
        );
        let order = Order {
            progress: Default::default(),
            order_id: "O-1".into(),
            created_at: Timestamp(1_790_000_000_000),
            channel: "web".into(),
            site: "S00".into(),
            destination_region: "JFK".into(),
            promise_at: Timestamp(1_790_000_000_000 + 72 * 3_600_000),
            line_count: 1,
            units: 1.0,
            priority: OrderPriority::Standard,
            outcome: None,
        };
        let lines = vec![OrderLine {
            sku: "SKU-1".into(),
            quantity: 1.0,
        }];
        let stock: Vec<InventoryPosition> = network
            .sites
            .iter()
            .map(|s| InventoryPosition {
                site: s.code.clone(),
                sku: "SKU-1".into(),
                on_hand: 5.0,
                at: order.created_at,
            })
            .collect();
        let snapshot = planner.models();
        let answer = planner
            .reallocate(
                &snapshot,
                ReallocationRequest {
                    order: Subject::Inline(order.clone()),
                    lines: lines.clone(),
                    stock: stock.clone(),
                    as_of: None,
                    excluded_sites: Vec::new(),
                    overrides: PolicyOverrides::default(),
                },
            )
            .await
            .unwrap();

        // The empty store has seen nothing: every record is known to be absent.
        let unseen = |_: &AggregateKey| -> Lookup<'_> { Some(None) };
        let expected = reallocation::reallocation(&ReallocationInput {
            order: &order,
            lines: &lines,
            as_of: order.created_at,
            excluded: &[],
            stock: &stock,
            network: &network,
            model: snapshot.model(RiskKind::OrderFallout),
            lookup: &unseen,
            policy: Policy::REALLOCATION,
        });
        assert!(answer.options.len() > 1, "{answer:?}");
        assert_eq!(answer, expected);
        assert_eq!(
            answer.model_version,
            snapshot.model(RiskKind::OrderFallout).manifest.version
        );
    }
}
