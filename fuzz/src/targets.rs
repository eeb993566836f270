//! The four targets and what each demands of every case: no panic, every
//! answer within its documented range, every refusal a clear error (a status a
//! stock client reads, naming the field, short enough for its metadata limit).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use detour::api::{EventIngestService, RecommendationsService, RiskScoringService, convert};
use detour::features::aggregates::WindowId;
use detour::features::{AggregateKey, FeatureSettings, InMemoryFeatureStore, vectors};
use detour::ingest::Ingestor;
use detour::models::{Manifest, load_model};
use detour::network::Network;
use detour::pb;
use detour::pb::event_ingest_server::EventIngest;
use detour::pb::recommendations_server::Recommendations;
use detour::pb::risk_scoring_server::RiskScoring;
use detour::planning::Planner;
use detour::recommend::Policy;
use detour::registry::ModelRegistry;
use detour::schema::{FeatureVector, RiskKind, schema_of};
use detour::scoring::Scorer;
use prost::Message;
use tonic::{Code, Request, Status};

/// Longest error text a refusal may carry: far below the 16 KiB of metadata
/// the Python and C clients accept.
pub const MAX_ERROR_BYTES: usize = 1_024;

type Store = InMemoryFeatureStore;

/// The services of one case, over a store of their own: a failing case
/// reproduces, and shrinks, on its own.
struct Services {
    store: Arc<Store>,
    scoring: RiskScoringService<Store>,
    ingest: EventIngestService<Store>,
    recommend: RecommendationsService<Store>,
}

/// What the services under test are built from — the shipped models and
/// network — and a scratch directory for the file targets.
pub struct Harness {
    runtime: tokio::runtime::Runtime,
    registry: Arc<ModelRegistry>,
    network: Arc<Network>,
    manifests: Vec<(RiskKind, Manifest)>,
    scratch: PathBuf,
    tally: RefCell<BTreeMap<&'static str, u64>>,
}

impl Harness {
    /// Services over `models` (the shipped `models/` directory); file targets
    /// write under `scratch`.
    pub fn new(models: &Path, scratch: &Path) -> anyhow::Result<Self> {
        let registry = Arc::new(ModelRegistry::load(models)?);
        let network = Arc::new(Network::load(&models.join("network.toml"))?);
        let mut manifests = Vec::new();
        for kind in RiskKind::ALL {
            let path = detour::models::repository::active_dir(models, kind)?.join("manifest.json");
            manifests.push((kind, serde_json::from_slice(&std::fs::read(path)?)?));
        }
        std::fs::create_dir_all(scratch)?;
        Ok(Harness {
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()?,
            registry,
            network,
            manifests,
            scratch: scratch.to_path_buf(),
            tally: RefCell::default(),
        })
    }

    /// How the cases ended, by kind ("answered", "INVALID_ARGUMENT", ...):
    /// how deep the generators reach.
    pub fn tally(&self) -> BTreeMap<&'static str, u64> {
        self.tally.borrow().clone()
    }

    /// Fresh services over an empty store.
    fn services(&self) -> Services {
        let store = Arc::new(Store::new(Duration::from_secs(3600)));
        let scorer = Scorer::new(
            Arc::clone(&store),
            Arc::clone(&self.registry),
            Arc::clone(&self.network),
        );
        let planner = Planner::new(
            Arc::clone(&store),
            Arc::clone(&self.registry),
            Arc::clone(&self.network),
            Policy::REROUTE,
            Policy::REALLOCATION,
        );
        let ingestor = Ingestor::new(Arc::clone(&store), FeatureSettings::default());
        Services {
            scoring: RiskScoringService::new(Arc::new(scorer)),
            ingest: EventIngestService::new(Arc::new(ingestor)),
            recommend: RecommendationsService::new(Arc::new(planner)),
            store,
        }
    }

    fn count(&self, what: &'static str) {
        self.count_n(what, 1);
    }

    fn count_n(&self, what: &'static str, n: u64) {
        *self.tally.borrow_mut().entry(what).or_default() += n;
    }

    /// Raw bytes as the body of RPC `which` (0..7): decoded as its request,
    /// and, when they decode, validated and answered by the service.
    pub fn request_bytes(&self, which: u8, bytes: &[u8]) -> Result<(), String> {
        fn decoded<M: Message + Default>(bytes: &[u8]) -> Option<M> {
            // An undecodable body is refused by the codec (INVALID_ARGUMENT,
            // tests/bad_input.rs); here it only must not panic.
            M::decode(bytes).ok()
        }
        let request = match which % 7 {
            0 => decoded(bytes).map(crate::inputs::Request::Order),
            1 => decoded(bytes).map(crate::inputs::Request::Shipment),
            2 => decoded(bytes).map(crate::inputs::Request::Site),
            3 => decoded(bytes).map(crate::inputs::Request::Batch),
            4 => decoded(bytes).map(crate::inputs::Request::Ingest),
            5 => decoded(bytes).map(crate::inputs::Request::Reroute),
            _ => decoded(bytes).map(crate::inputs::Request::Reallocation),
        };
        match request {
            Some(request) => self.request(request),
            None => {
                self.count("request: undecodable");
                Ok(())
            }
        }
    }

    /// One structured request, answered by fresh services.
    pub fn request(&self, request: crate::inputs::Request) -> Result<(), String> {
        self.request_on(&self.services(), request)
    }

    fn request_on(
        &self,
        services: &Services,
        request: crate::inputs::Request,
    ) -> Result<(), String> {
        use crate::inputs::Request as R;
        let tally = |what| self.count(what);
        let t = &tally;
        self.runtime.block_on(async {
            match request {
                R::Order(m) => answer(
                    services.scoring.score_order(Request::new(m)).await,
                    score,
                    t,
                ),
                R::Shipment(m) => answer(
                    services.scoring.score_shipment(Request::new(m)).await,
                    score,
                    t,
                ),
                R::Site(m) => answer(services.scoring.score_site(Request::new(m)).await, score, t),
                R::Batch(m) => {
                    let items = m.items.len();
                    let result = services.scoring.score_batch(Request::new(m)).await;
                    answer(result, |r| batch(r, items), t)
                }
                R::Ingest(m) => {
                    let events = m.events.len();
                    let result = services.ingest.ingest_events(Request::new(m)).await;
                    if let Ok(r) = &result {
                        let r = r.get_ref();
                        self.count_n("event: accepted", r.accepted.into());
                        self.count_n("event: rejected", r.rejected.into());
                    }
                    answer(result, |r| ingested(r, events), t)
                }
                R::Reroute(m) => answer(
                    services.recommend.recommend_reroute(Request::new(m)).await,
                    recommendation,
                    t,
                ),
                R::Reallocation(m) => answer(
                    services
                        .recommend
                        .recommend_reallocation(Request::new(m))
                        .await,
                    recommendation,
                    t,
                ),
            }
        })
    }

    /// Events through ingest, then the arithmetic they fed: every record they
    /// touched holds finite numbers, and every entity they name scores within
    /// [0, 1].
    pub fn events(&self, events: Vec<pb::Event>) -> Result<(), String> {
        let services = self.services();
        self.request_on(
            &services,
            crate::inputs::Request::Ingest(pb::IngestEventsRequest {
                events: events.clone(),
            }),
        )?;
        for event in &events {
            use pb::event::Payload;
            let (keys, score): (Vec<AggregateKey>, Option<crate::inputs::Request>) =
                match &event.payload {
                    Some(Payload::Shipment(s)) => match convert::shipment(Some(s), "") {
                        Ok(domain) => (
                            vectors::shipment_keys(&domain, domain.scheduled_departure).to_vec(),
                            Some(crate::inputs::Request::Shipment(pb::ScoreShipmentRequest {
                                shipment: Some(s.clone()),
                                as_of: None,
                            })),
                        ),
                        Err(_) => continue,
                    },
                    Some(Payload::Order(o)) => match convert::order(Some(o), "") {
                        Ok(domain) => (
                            vectors::order_keys(&domain).to_vec(),
                            Some(crate::inputs::Request::Order(pb::ScoreOrderRequest {
                                order: Some(o.clone()),
                                as_of: None,
                            })),
                        ),
                        Err(_) => continue,
                    },
                    Some(Payload::Site(s)) => (
                        vec![AggregateKey::site(s.site.trim())],
                        Some(crate::inputs::Request::Site(pb::ScoreSiteRequest {
                            site: s.site.clone(),
                            as_of: s.at,
                        })),
                    ),
                    Some(Payload::Inventory(i)) => (
                        vec![AggregateKey::inventory(i.site.trim(), i.sku.trim())],
                        None,
                    ),
                    None => continue,
                };
            for (key, record) in keys.iter().zip(services.store.fetch_now(&keys)) {
                let Some(record) = record else { continue };
                let now = record.counters_at.unwrap_or(0.0);
                for c in 0..key.kind.counters().len() {
                    for (index, window) in key.kind.windows().iter().enumerate() {
                        let w = WindowId {
                            index,
                            tau_secs: window.tau_secs,
                        };
                        let value = record.counter(c, w, now);
                        if !value.is_finite() || value < 0.0 {
                            return Err(format!(
                                "{key:?}: counter {} is {value} after {event:?}",
                                key.kind.counters()[c]
                            ));
                        }
                    }
                }
                if let Some((_, at)) = record.gauge(0) {
                    let gauges = &record.gauges[..key.kind.gauges().len()];
                    if !at.is_finite() || gauges.iter().any(|g| !g.is_finite()) {
                        return Err(format!("{key:?}: gauges {gauges:?} at {at}"));
                    }
                }
            }
            if let Some(score) = score {
                self.request_on(&services, score)?;
            }
        }
        Ok(())
    }

    /// A CSV export file (`which`: shipments, orders, site metrics) through the
    /// trainer's reader: a report that adds up, or an error that says why.
    pub fn csv(&self, which: u8, text: &[u8]) -> Result<(), String> {
        use detour_training::csvio;
        let name = ["shipments.csv", "orders.csv", "site_metrics.csv"][usize::from(which % 3)];
        let path = self.scratch.join(name);
        std::fs::write(&path, text).map_err(|e| format!("writing {}: {e}", path.display()))?;
        let report = match which % 3 {
            0 => csvio::read_shipments(&path).map(|(rows, report)| (rows.len(), report)),
            1 => csvio::read_orders(&path).map(|(rows, report)| (rows.len(), report)),
            _ => csvio::read_site_metrics(&path).map(|(rows, report)| (rows.len(), report)),
        };
        match report {
            Err(error) => {
                self.count("csv: file refused");
                clear(&format!("{error:#}"))
            }
            Ok((rows, report)) => {
                self.count(if report.accepted > 0 {
                    "csv: some rows accepted"
                } else {
                    "csv: no row accepted"
                });
                if rows > report.accepted || report.accepted > report.rows {
                    return Err(format!("{rows} rows kept of {report:?}"));
                }
                let noted: usize = report.problems.values().map(|p| p.count).sum();
                if noted != report.rejected() {
                    return Err(format!("{noted} problems noted for {report:?}"));
                }
                report.problems.keys().try_for_each(|p| clear(p))
            }
        }
    }

    /// An artifact (a manifest and weights, as JSON) through the loader: refused
    /// with the file and the reason, or loaded and then answering within [0, 1]
    /// for any vector, missing values included.
    pub fn artifact(
        &self,
        kind_index: u8,
        manifest: &dyn Fn(&Manifest) -> Vec<u8>,
        weights: &[u8],
        rows: &[Vec<f64>],
    ) -> Result<(), String> {
        let (kind, shipped) = &self.manifests[usize::from(kind_index) % self.manifests.len()];
        let dir = self.scratch.join("artifact");
        let family = dir.join(kind.name());
        std::fs::create_dir_all(&family).map_err(|e| e.to_string())?;
        let mut base = shipped.clone();
        base.weights_sha256 = detour::models::artifact::sha256_hex(weights);
        // Generated weights never reproduce the shipped model's golden rows:
        // without them the loader's other checks, and scoring, are reached
        // (the golden gate has its own test in `detour::models`).
        base.golden_file = None;
        base.golden_sha256 = None;
        std::fs::write(family.join(&base.weights_file), weights).map_err(|e| e.to_string())?;
        std::fs::write(family.join("manifest.json"), manifest(&base)).map_err(|e| e.to_string())?;
        let schema = schema_of(*kind);
        match load_model(&dir, *kind, schema) {
            Err(error) => {
                self.count("artifact: refused");
                let text = error.to_string();
                if !text.contains(&dir.display().to_string()) {
                    return Err(format!("refusal does not name the file: {text}"));
                }
                clear(&text)
            }
            Ok(model) => {
                self.count("artifact: loaded");
                for row in rows {
                    let mut values = row.clone();
                    values.resize(schema.len(), f64::NAN);
                    let features = FeatureVector::from_slice(&values);
                    let p = model.predict(&features).probability;
                    let q = model.probability(&features);
                    let batch = model.probabilities(&[features]);
                    for value in [p, q, batch[0]] {
                        if !(0.0..=1.0).contains(&value) {
                            return Err(format!(
                                "loaded {} answers {value} for {values:?}",
                                kind.name()
                            ));
                        }
                    }
                }
                Ok(())
            }
        }
    }
}

/// A refusal's text: present, and short.
fn clear(text: &str) -> Result<(), String> {
    if text.trim().is_empty() || text.len() > MAX_ERROR_BYTES {
        return Err(format!(
            "unclear refusal ({} bytes): {text:.200}",
            text.len()
        ));
    }
    Ok(())
}

/// Checks an RPC's result: the answer by `check`, a refusal by its code and
/// text; tallies which it was.
fn answer<T>(
    result: Result<tonic::Response<T>, Status>,
    check: impl FnOnce(&T) -> Result<(), String>,
    tally: &dyn Fn(&'static str),
) -> Result<(), String> {
    match result {
        Ok(response) => {
            tally("request: answered");
            check(response.get_ref())
        }
        Err(status) => {
            match status.code() {
                Code::InvalidArgument => tally("request: INVALID_ARGUMENT"),
                Code::NotFound => tally("request: NOT_FOUND"),
                _ => return Err(format!("unexpected status {status:?}")),
            }
            clear(status.message())
        }
    }
}

fn score(s: &pb::RiskScore) -> Result<(), String> {
    let band = pb::RiskBand::try_from(s.band).map_err(|_| format!("band {}", s.band))?;
    if !(0.0..=1.0).contains(&s.probability) || band == pb::RiskBand::Unspecified {
        return Err(format!("score out of range: {s:?}"));
    }
    if band == pb::RiskBand::Unknown && !s.degraded {
        return Err(format!("an unknown band without a reason: {s:?}"));
    }
    if s.factors
        .iter()
        .any(|f| !f.value.is_finite() || !f.contribution.is_finite())
    {
        return Err(format!("a factor is not finite: {s:?}"));
    }
    Ok(())
}

fn batch(r: &pb::ScoreBatchResponse, items: usize) -> Result<(), String> {
    if r.results.len() != items {
        return Err(format!("{} results for {items} items", r.results.len()));
    }
    for result in &r.results {
        match &result.outcome {
            Some(pb::score_result::Outcome::Score(s)) => score(s)?,
            Some(pb::score_result::Outcome::Error(e)) if e.code == "NOT_FOUND" => {
                clear(&e.message)?
            }
            other => return Err(format!("batch result {other:?}")),
        }
    }
    Ok(())
}

fn ingested(r: &pb::IngestEventsResponse, events: usize) -> Result<(), String> {
    let counted = (r.accepted + r.duplicate + r.rejected) as usize;
    if counted != events || r.rejections.len() != r.rejected as usize {
        return Err(format!("{r:?} for {events} events"));
    }
    for rejection in &r.rejections {
        if !rejection
            .field
            .starts_with(&format!("events[{}]", rejection.index))
        {
            return Err(format!("rejection names no field: {rejection:?}"));
        }
        clear(&rejection.reason)?;
    }
    Ok(())
}

fn recommendation(r: &pb::Recommendation) -> Result<(), String> {
    if !r.options.iter().any(|o| o.baseline) {
        return Err(format!("no baseline among the options: {r:?}"));
    }
    for option in &r.options {
        let c = option
            .criteria
            .as_ref()
            .ok_or("an option without criteria")?;
        if !(0.0..=1.0).contains(&c.risk) || !c.expected_cost.is_finite() || !c.cost.is_finite() {
            return Err(format!("option out of range: {option:?}"));
        }
    }
    Ok(())
}
