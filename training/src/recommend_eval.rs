//! `evaluate-recommendations`: does following the recommendations help? Replays a
//! simulated history and, in a held-out period, takes each sampled reroute and
//! reallocation decision with four policies:
//!
//! - **current**: keep the plan (the carrier or site the history used);
//! - **recommended**: the top-ranked option, from the same ranking code the
//!   server runs, with the shipped models, at the decision's horizon;
//! - **naive**: the carrier with the lowest recent failure rate on the lane / the
//!   site nearest the destination;
//! - **hindsight**: the option that turned out cheapest.
//!
//! The naive policy and hindsight choose among the same options the ranking may
//! (those passing the hard constraints — a site over its backlog limit is not
//! one — plus the current plan), so the comparison is between rankings.
//!
//! Outcomes: the plan that happened keeps its real outcome; any other option's
//! outcome is drawn from the simulator's true probability for it at that moment
//! (`truth_reroutes.csv`, `truth_reallocations.csv`), with a seed per entity and
//! option so every policy sees the same draws. Cost = transport (+ handling) +
//! failure cost × failed, with the service's default failure costs unless told
//! otherwise.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use detour::domain::{RiskKind, Timestamp};
use detour::features::aggregates::{WindowId, shipment_counters as sc};
use detour::features::{AggregateKey, FeatureSettings, InMemoryFeatureStore};
use detour::models::{LoadedModel, load_model};
use detour::recommend::Policy;
use detour::recommend::reallocation::{self, ReallocationInput};
use detour::recommend::reroute::{self, RerouteInput};
use detour::registry::schema_of;

use crate::replay::{Decision, History, ReplaySettings, walk};
use crate::train::read_history;

/// What `evaluate-recommendations` needs.
#[derive(Debug, Clone)]
pub struct RecommendEvalSettings {
    pub data: PathBuf,
    pub models: PathBuf,
    /// Start of the evaluated period; the models' test slice when unset.
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
    /// Reroutes are decided this many hours before departure.
    pub lead_hours: f64,
    /// Ranking (and scoring) policies; the service's defaults unless changed.
    pub reroute_policy: Policy,
    pub reallocation_policy: Policy,
    pub report: Option<PathBuf>,
}

/// Realised results of one policy.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PolicyResult {
    pub decisions: usize,
    pub failures: usize,
    /// Mean of the true failure probability of the chosen options.
    pub expected_failure: f64,
    pub total_cost: f64,
}

impl PolicyResult {
    fn add(&mut self, failed: bool, p_true: f64, cost: f64) {
        self.decisions += 1;
        self.failures += usize::from(failed);
        self.expected_failure += p_true;
        self.total_cost += cost;
    }
}

/// The four policies for one kind of decision.
pub type PolicyTable = [(&'static str, PolicyResult); 4];

/// One option of a decision: code, cost, true failure probability.
#[derive(Debug, Clone)]
struct Choice {
    option: String,
    cost: f64,
    p_fail: f64,
}

/// A decision taken, and what each policy chose.
struct Taken {
    entity: String,
    actual: String,
    /// The real outcome of the actual option.
    actual_failed: bool,
    /// The options that pass the hard constraints (and the current plan): what
    /// the naive policy and hindsight may choose from, as the ranking may.
    options: Vec<Choice>,
    recommended: String,
    naive: String,
}

/// Runs the evaluation; prints and optionally writes the tables.
pub fn run(settings: &RecommendEvalSettings) -> anyhow::Result<(PolicyTable, PolicyTable)> {
    let (history, _) = read_history(&settings.data)?;
    let reroute_truth = read_truth(&settings.data.join("truth_reroutes.csv"), 1, 2, 4)?;
    let realloc_truth = read_truth(&settings.data.join("truth_reallocations.csv"), 1, 2, 3)?;
    let carrier_model = load_model(
        &settings.models,
        RiskKind::CarrierFailure,
        schema_of(RiskKind::CarrierFailure),
    )?;
    let fallout_model = load_model(
        &settings.models,
        RiskKind::OrderFallout,
        schema_of(RiskKind::OrderFallout),
    )?;
    let (_, last) = span(&history).context("the history is empty")?;
    // By default, the period neither model was fitted or calibrated on.
    let held_out = [&carrier_model, &fallout_model]
        .iter()
        .filter_map(|m| m.manifest.training["test"]["from"].as_str())
        .filter_map(|t| Timestamp::parse_rfc3339(t).ok())
        .max();
    let from = settings
        .from
        .or(held_out)
        .context("no --from, and the manifests do not record a test slice")?;
    let to = settings.to.unwrap_or(last);
    eprintln!("evaluating recommendations from {from} to {to}");
    let replay_settings = ReplaySettings {
        features: FeatureSettings::default(),
        congestion_horizon_hours: 8.0,
        until: Some(to),
        record_from: Some(from),
        unlabelled: true,
        shipment_lead_hours: Some(settings.lead_hours),
    };
    let mut reroutes = Vec::new();
    let mut reallocations = Vec::new();
    walk(
        &history,
        &replay_settings,
        &mut |decision, store| match decision {
            Decision::Shipment(i, at) => {
                if let Some(taken) = reroute_decision(
                    &history,
                    (i, at),
                    store,
                    &carrier_model,
                    &reroute_truth,
                    settings.reroute_policy,
                ) {
                    reroutes.push(taken);
                }
            }
            Decision::Order(i, at) => {
                if let Some(taken) = reallocation_decision(
                    &history,
                    (i, at),
                    store,
                    &fallout_model,
                    &realloc_truth,
                    settings.reallocation_policy,
                ) {
                    reallocations.push(taken);
                }
            }
            Decision::Site(..) => {}
        },
    );
    let (reroute_cost, realloc_cost) = (
        settings.reroute_policy.failure_cost,
        settings.reallocation_policy.failure_cost,
    );
    let reroute_table = score(&reroutes, reroute_cost);
    let realloc_table = score(&reallocations, realloc_cost);
    let text = format!(
        "{}\n{}",
        table(
            "Reroutes",
            &reroute_table,
            reroute_cost,
            settings.lead_hours
        ),
        table("Reallocations", &realloc_table, realloc_cost, 0.0)
    );
    println!("{text}");
    if let Some(path) = &settings.report {
        std::fs::write(path, &text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok((reroute_table, realloc_table))
}

fn reroute_decision(
    history: &History,
    (i, at): (usize, Timestamp),
    store: &InMemoryFeatureStore,
    model: &LoadedModel,
    truth: &HashMap<String, Vec<Choice>>,
    policy: Policy,
) -> Option<Taken> {
    let shipment = &history.shipments[i];
    let options = truth.get(&shipment.shipment_id)?;
    let actual_failed = shipment.outcome(15.0)?.failed;
    let candidates = reroute::candidates(shipment, &history.network, &[]);
    let keys = reroute::keys(shipment, &candidates);
    let records = store.fetch_now(&keys);
    let lookup = |key: &AggregateKey| keys.binary_search(key).ok().map(|i| records[i].as_ref());
    let answer = reroute::reroute(&RerouteInput {
        shipment,
        as_of: at,
        candidates: &candidates,
        excluded: &[],
        network: &history.network,
        model,
        lookup: &lookup,
        policy,
    });
    // Naive: the lowest smoothed failure rate on the lane over four weeks.
    let t = at.as_secs_f64();
    let naive = options
        .iter()
        .map(|o| {
            let key =
                AggregateKey::carrier_lane(&o.option, &shipment.origin, &shipment.destination);
            let rate = lookup(&key).flatten().map_or(0.1, |r| {
                (r.counter(sc::FAILED, WindowId::Month, t) + 0.2)
                    / (r.counter(sc::DONE, WindowId::Month, t) + 2.0)
            });
            (rate, o.cost, o.option.clone())
        })
        .min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)))?
        .2;
    Some(Taken {
        entity: shipment.shipment_id.clone(),
        actual: shipment.carrier.clone(),
        actual_failed,
        options: options.clone(),
        recommended: answer.options.first()?.option.clone(),
        naive,
    })
}

fn reallocation_decision(
    history: &History,
    (i, at): (usize, Timestamp),
    store: &InMemoryFeatureStore,
    model: &LoadedModel,
    truth: &HashMap<String, Vec<Choice>>,
    policy: Policy,
) -> Option<Taken> {
    let order = &history.orders[i];
    let options = truth.get(&order.order_id)?;
    let actual_failed = order.outcome?.is_fallout();
    let keys = reallocation::keys(order, &[], &history.network);
    let records = store.fetch_now(&keys);
    let lookup = |key: &AggregateKey| keys.binary_search(key).ok().map(|i| records[i].as_ref());
    let answer = reallocation::reallocation(&ReallocationInput {
        order,
        lines: &[],
        as_of: at,
        excluded: &[],
        stock: &[],
        network: &history.network,
        model,
        lookup: &lookup,
        policy,
    });
    let options: Vec<Choice> = options
        .iter()
        .filter(|o| !answer.rejected.iter().any(|r| r.option == o.option))
        .cloned()
        .collect();
    let naive = options
        .iter()
        .filter_map(|o| {
            let km = history
                .network
                .distance_km(&o.option, &order.destination_region)?;
            Some((km, o.option.clone()))
        })
        .min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)))?
        .1;
    Some(Taken {
        entity: order.order_id.clone(),
        actual: order.site.clone(),
        actual_failed,
        options,
        recommended: answer.options.first()?.option.clone(),
        naive,
    })
}

/// Realised failure of an option: the real outcome for the plan that happened,
/// otherwise a draw from its true probability, seeded by entity and option.
fn realised(taken: &Taken, choice: &Choice) -> bool {
    if choice.option == taken.actual {
        return taken.actual_failed;
    }
    let seed = format!("{}|{}", taken.entity, choice.option)
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    // SplitMix64 finaliser → uniform in [0, 1).
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    ((z >> 11) as f64 / (1u64 << 53) as f64) < choice.p_fail
}

fn score(decisions: &[Taken], failure_cost: f64) -> PolicyTable {
    let mut table: PolicyTable = [
        ("current plan", PolicyResult::default()),
        ("top recommendation", PolicyResult::default()),
        ("naive", PolicyResult::default()),
        ("best in hindsight", PolicyResult::default()),
    ];
    for taken in decisions {
        let outcome = |choice: &Choice| {
            let failed = realised(taken, choice);
            (
                failed,
                choice.cost + failure_cost * f64::from(u8::from(failed)),
            )
        };
        let pick = |code: &str| taken.options.iter().find(|c| c.option == code);
        let hindsight = taken.options.iter().min_by(|a, b| {
            outcome(a)
                .1
                .total_cmp(&outcome(b).1)
                .then(a.cost.total_cmp(&b.cost))
        });
        let chosen = [
            pick(&taken.actual),
            pick(&taken.recommended),
            pick(&taken.naive),
            hindsight,
        ];
        if chosen.iter().any(Option::is_none) {
            continue;
        }
        for (slot, choice) in table.iter_mut().zip(chosen) {
            let choice = choice.expect("checked");
            let (failed, cost) = outcome(choice);
            slot.1.add(failed, choice.p_fail, cost);
        }
    }
    table
}

fn table(title: &str, rows: &PolicyTable, failure_cost: f64, lead: f64) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "### {title} ({} decisions{}; failure cost {failure_cost:.0})\n",
        rows[0].1.decisions,
        if lead > 0.0 {
            format!(", decided {lead:.0} h before departure")
        } else {
            String::new()
        }
    );
    let _ = writeln!(
        out,
        "| policy | realised failure rate | expected failure rate | mean cost |\n|---|---:|---:|---:|"
    );
    for (name, r) in rows {
        let n = r.decisions.max(1) as f64;
        let _ = writeln!(
            out,
            "| {name} | {:.4} | {:.4} | {:.2} |",
            r.failures as f64 / n,
            r.expected_failure / n,
            r.total_cost / n
        );
    }
    out
}

/// Reads a truth file: entity id (column 0) → options (code, cost, probability).
fn read_truth(
    path: &Path,
    code: usize,
    cost: usize,
    probability: usize,
) -> anyhow::Result<HashMap<String, Vec<Choice>>> {
    let mut reader = csv::Reader::from_path(path).with_context(|| {
        format!(
            "{} (written by `detour-train simulate`) is needed",
            path.display()
        )
    })?;
    let mut out: HashMap<String, Vec<Choice>> = HashMap::new();
    for record in reader.records() {
        let record = record?;
        let field = |i: usize| record.get(i).unwrap_or_default();
        out.entry(field(0).to_string()).or_default().push(Choice {
            option: field(code).to_string(),
            cost: field(cost).parse()?,
            p_fail: field(probability).parse()?,
        });
    }
    Ok(out)
}

fn span(history: &History) -> Option<(Timestamp, Timestamp)> {
    let times = history
        .shipments
        .iter()
        .map(|s| s.scheduled_departure)
        .chain(history.orders.iter().map(|o| o.created_at));
    let first = times.clone().min()?;
    Some((first, times.max()?))
}
