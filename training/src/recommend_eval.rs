//! `evaluate-recommendations`: does following the recommendations help? Replays a
//! simulated history and, in a held-out period, takes each sampled reroute and
//! reallocation decision with these policies:
//!
//! - **current**: keep the plan (the carrier or site the history used);
//! - **recommended**: the top-ranked option, from the same ranking code the
//!   server runs, with the shipped models, at the decision's horizon;
//! - **naive**: the carrier with the lowest four-week failure rate on the lane /
//!   the site nearest the destination;
//! - **naive, whole history** (reroutes): the carrier with the lowest failure
//!   rate on the lane over the whole history before the decision — the
//!   "historically best carrier" taken literally;
//! - **hindsight**: the option that turned out cheapest.
//!
//! The naive policies and hindsight choose among the same options the ranking may
//! (those passing the hard constraints — a site over its backlog limit is not
//! one — plus the current plan), so the comparison is between rankings.
//!
//! Outcomes come one of two ways:
//!
//! - **Simulated history** (`truth_reroutes.csv`, `truth_reallocations.csv`
//!   present): the plan that happened keeps its real outcome; any other option's
//!   outcome is drawn from the simulator's true probability for it at that moment,
//!   with a seed per entity and option so every policy sees the same draws.
//! - **A real, logged history** (no truth files; reroutes only): only the plan
//!   that happened has an outcome, so a policy is scored on the decisions where
//!   it picked what was actually done, each weighted by the inverse of how often
//!   the history used that carrier on the lane in the evaluated period — the
//!   self-normalised inverse-propensity estimate of off-policy evaluation. That
//!   share stands in for the probability that the history picked the carrier, so
//!   the estimate assumes the history chose among a lane's carriers for reasons
//!   unrelated to the outcome (true of the simulator's cheapest-half-the-time
//!   rule; a planner's choices in a real log may not be). The options are built
//!   without looking at what was done: a decision whose carrier the ranking could
//!   not have known (not in `network.toml`, no outcome on the lane yet) is left
//!   out, and the actual carrier's schedule is rebuilt by the rule every
//!   alternative's is. The table says how many decisions each policy was scored
//!   on and their effective number; hindsight is unknowable there and left out.
//!   A second, paired estimate puts every policy on the same decisions: a pick
//!   is scored by the failure share of its carrier's legs on the lane scheduled
//!   within [`MATCH_WINDOW_HOURS`] of the decision's departure and after the
//!   decision itself (they stand for how that carrier would have done; the
//!   best of those shares is hindsight's), with a standard error clustered by
//!   lane and week, since decisions there share legs.
//!   Reallocations need the truth: the ranking exempts the current site from the
//!   hard constraints (it is the baseline), so what it could pick would depend on
//!   what was done.
//!
//! Cost = transport (+ handling) + failure cost × failed, with the service's
//! default failure costs unless told otherwise. Reroute candidates are the lane's
//! carriers in `network.toml` plus those with an outcome on the lane already in
//! the replayed store, as the service adds carriers seen in ingested history; so a
//! history with only `shipments.csv` and a carrier model is enough for reroutes.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use detour::domain::{RiskKind, Shipment, ShipmentOutcome, Timestamp};
use detour::features::aggregates::{WindowId, shipment_counters as sc};
use detour::features::{AggregateKey, FeatureSettings, InMemoryFeatureStore};
use detour::models::{LoadedModel, load_model};
use detour::recommend::Policy;
use detour::recommend::reallocation::{self, ReallocationInput};
use detour::recommend::reroute::{self, RerouteInput};
use detour::schema::schema_of;

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
    /// A shipments.csv whose legs score the paired estimate instead of the
    /// history's own: a fuller record of the same carriers (public on-time
    /// data, say) when the log being replayed is thin.
    pub outcomes: Option<PathBuf>,
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

/// The policies for one kind of decision: current plan, top recommendation,
/// naive, naive over the whole history (reroutes; empty for reallocations),
/// best in hindsight.
pub type PolicyTable = [(&'static str, PolicyResult); 5];

/// Off-policy results of one policy on a logged history: scored on the decisions
/// where it chose what was done, each weighted by the inverse propensity of that
/// choice.
#[derive(Debug, Clone, Default)]
pub struct LoggedResult {
    /// Decisions the policy was asked about.
    pub decisions: usize,
    /// Decisions where it chose what the history did (the ones it is scored on).
    pub followed: usize,
    sum_w: f64,
    sum_w_failed: f64,
    sum_w_cost: f64,
    sum_w2: f64,
    sum_w2_failed: f64,
}

impl LoggedResult {
    fn add(&mut self, weight: f64, failed: bool, cost: f64) {
        let y = f64::from(u8::from(failed));
        self.followed += 1;
        self.sum_w += weight;
        self.sum_w_failed += weight * y;
        self.sum_w_cost += weight * cost;
        self.sum_w2 += weight * weight;
        self.sum_w2_failed += weight * weight * y;
    }

    /// Self-normalised estimate of the failure rate had the policy been followed
    /// (NaN when it agreed with no decision).
    pub fn failure_rate(&self) -> f64 {
        self.sum_w_failed / self.sum_w
    }

    /// Its standard error (delta method): √(Σ w²(y − r)²) / Σ w, taking the
    /// outcomes as independent — failures that cluster by lane and day make the
    /// true error larger.
    pub fn standard_error(&self) -> f64 {
        let r = self.failure_rate();
        // y² = y for a 0/1 outcome.
        let spread = self.sum_w2_failed * (1.0 - 2.0 * r) + r * r * self.sum_w2;
        spread.max(0.0).sqrt() / self.sum_w
    }

    /// Self-normalised estimate of the mean cost (NaN where rates are unknown).
    pub fn mean_cost(&self) -> f64 {
        self.sum_w_cost / self.sum_w
    }

    /// Effective number of decisions behind the estimate: (Σ w)² / Σ w².
    pub fn effective_decisions(&self) -> f64 {
        self.sum_w * self.sum_w / self.sum_w2
    }
}

/// The current plan, the top recommendation and the two naive policies, on a
/// logged history (hindsight needs outcomes that never happened).
pub type LoggedTable = [(&'static str, LoggedResult); 4];

/// Paired results of one policy on a logged history: its pick on each decision
/// is scored by the failure share of that carrier's legs on the lane scheduled
/// to depart within [`MATCH_WINDOW_HOURS`] of the decision's departure and after
/// the decision itself, on the decisions with a choice (two options or more)
/// where every option had such legs.
#[derive(Debug, Clone, Default)]
pub struct MatchedResult {
    pub decisions: usize,
    sum: f64,
    /// Per cluster (lane and week of departure: decisions there share legs),
    /// the sums of this policy's share minus each naive policy's (four-week
    /// record, whole history), and the decisions.
    clusters: HashMap<(String, i64), ([f64; 2], usize)>,
}

/// Which naive policy a paired difference is taken against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Naive {
    /// The best four-week record on the lane.
    FourWeeks = 0,
    /// The best record on the lane over the whole history before the decision.
    WholeHistory = 1,
}

impl MatchedResult {
    fn add(&mut self, share: f64, naive: [f64; 2], cluster: (String, i64)) {
        self.decisions += 1;
        self.sum += share;
        let c = self.clusters.entry(cluster).or_default();
        c.0[0] += share - naive[0];
        c.0[1] += share - naive[1];
        c.1 += 1;
    }

    /// Mean failure share of the picks.
    pub fn failure_rate(&self) -> f64 {
        self.sum / self.decisions as f64
    }

    /// Mean difference from a naive policy's pick (negative: fewer failures).
    pub fn versus(&self, naive: Naive) -> f64 {
        self.clusters
            .values()
            .map(|c| c.0[naive as usize])
            .sum::<f64>()
            / self.decisions as f64
    }

    /// Standard error of [`Self::versus`], robust to decisions within a
    /// cluster (same lane, same week) sharing legs: √(C/(C−1) · Σ_c (S_c − n_c·m)²) / n
    /// over C clusters with difference sums S_c; NaN with fewer than two clusters.
    pub fn versus_se(&self, naive: Naive) -> f64 {
        let clusters = self.clusters.len() as f64;
        if clusters < 2.0 {
            return f64::NAN;
        }
        let n = self.decisions as f64;
        let mean = self.versus(naive);
        let spread: f64 = self
            .clusters
            .values()
            .map(|&(sums, count)| (sums[naive as usize] - count as f64 * mean).powi(2))
            .sum();
        (clusters / (clusters - 1.0) * spread).sqrt() / n
    }
}

/// Current plan, top recommendation, the two naive policies, best in hindsight:
/// paired on nearby legs.
pub type MatchedTable = [(&'static str, MatchedResult); 5];

/// The two off-policy estimates of a logged history.
#[derive(Debug, Clone)]
pub struct LoggedEvaluation {
    /// Inverse propensity: unbiased if choices were unrelated to outcomes, noisy.
    pub inverse_propensity: LoggedTable,
    /// Paired on nearby legs: every policy on the same decisions, tighter.
    pub matched: MatchedTable,
    /// Where the paired estimate's legs came from, if not the replayed history.
    pub legs_from: Option<PathBuf>,
}

/// How one kind of decision was evaluated.
#[derive(Debug, Clone)]
pub enum Evaluation {
    /// Against the simulator's counterfactual truth.
    Simulated(Box<PolicyTable>),
    /// Off-policy, from the outcomes the history logged.
    Logged(Box<LoggedEvaluation>),
    /// Not evaluated, and why.
    Skipped(String),
}

/// One option of a decision: code, cost, true failure probability (NaN where
/// only a simulator would know it).
#[derive(Debug, Clone)]
struct Choice {
    option: String,
    cost: f64,
    p_fail: f64,
}

/// A decision taken, and what each policy chose.
struct Taken {
    entity: String,
    /// The lane (for reallocations, the destination region): where, off
    /// policy, the propensity of the actual choice is estimated.
    group: String,
    /// Week of the decision's departure (or order's creation), in weeks since
    /// the epoch: with `group`, the cluster of the paired standard error.
    week: i64,
    actual: String,
    /// The real outcome of the actual option.
    actual_failed: bool,
    /// The options that pass the hard constraints (and the current plan): what
    /// the naive policies and hindsight may choose from, as the ranking may.
    options: Vec<Choice>,
    recommended: String,
    naive: String,
    /// Reroutes: the carrier with the lowest failure rate on the lane over the
    /// whole history before the decision.
    naive_history: Option<String>,
    /// Off policy: each option's failure share among its legs on the lane
    /// scheduled within [`MATCH_WINDOW_HOURS`] of this one and after the
    /// decision (None: it had none).
    nearby: Vec<(String, Option<f64>)>,
}

/// Counterfactual truth per entity, where the history comes from the simulator.
type Truth = HashMap<String, Vec<Choice>>;

/// Carriers each (origin, destination) lane had in the history.
type LaneCarriers = HashMap<(String, String), Vec<String>>;

/// Finished legs of each (carrier, origin, destination): (a time, failed), in
/// time order; the time is the scheduled departure except in [`lane_records`].
type Legs = HashMap<(String, String, String), Vec<(i64, bool)>>;

/// Every leg of each (carrier, origin, destination) with an outcome, in the
/// order the outcomes became known: those times, and the failures among the
/// first k legs at index k.
type LaneRecords = HashMap<(String, String, String), (Vec<i64>, Vec<u32>)>;

/// Off policy, a carrier's legs on the lane scheduled this close to a decision's
/// departure (and after the decision) stand for how it would have done in its
/// place.
pub const MATCH_WINDOW_HOURS: f64 = 12.0;

/// The naive policy that reads the lane's whole history (the other reads four
/// weeks of it).
const NAIVE_HISTORY: &str = "naive, whole history";

/// A week in milliseconds: decisions on one lane in one week share legs (their
/// windows overlap), so they form one cluster of the paired standard error.
const WEEK_MS: i64 = 7 * 86_400_000;

/// What one kind of decision is evaluated with.
struct Setup {
    model: LoadedModel,
    truth: Option<Truth>,
    /// Minutes past schedule that make a leg failed: what the model was trained
    /// with (its manifest), the service's default if it does not say.
    grace_minutes: f64,
}

/// Runs the evaluation; prints and optionally writes the tables.
pub fn run(settings: &RecommendEvalSettings) -> anyhow::Result<(Evaluation, Evaluation)> {
    let (history, _) = read_history(&settings.data)?;
    let reroute = setup(
        settings,
        RiskKind::CarrierFailure,
        !history.shipments.is_empty(),
        "shipments.csv",
        "truth_reroutes.csv",
        (1, 2, 4),
        true,
    )?;
    let realloc = setup(
        settings,
        RiskKind::OrderFallout,
        !history.orders.is_empty(),
        "orders.csv",
        "truth_reallocations.csv",
        (1, 2, 3),
        // In a log the current site is the ranking's baseline, exempt from its
        // constraints, so what the ranking could pick would depend on what was done.
        false,
    )?;
    let (reroute, realloc) = match (reroute, realloc) {
        (Err(a), Err(b)) => anyhow::bail!("nothing to evaluate: {a}; {b}"),
        pair => pair,
    };
    let (_, last) = span(&history).context("the history is empty")?;
    // By default, the period neither model was fitted or calibrated on.
    let held_out = [&reroute, &realloc]
        .iter()
        .filter_map(|s| s.as_ref().ok())
        .filter_map(|s| s.model.manifest.training["test"]["from"].as_str())
        .filter_map(|t| Timestamp::parse_rfc3339(t).ok())
        .max();
    let from = settings
        .from
        .or(held_out)
        .context("no --from, and the manifests do not record a test slice")?;
    let to = settings.to.unwrap_or(last);
    eprintln!("evaluating recommendations from {from} to {to}");
    // The failure threshold the carrier model was trained with, for the replayed
    // features and the outcomes alike.
    let grace = reroute
        .as_ref()
        .map_or(FeatureSettings::default().sla_grace_minutes, |s| {
            s.grace_minutes
        });
    let replay_settings = ReplaySettings {
        features: FeatureSettings {
            sla_grace_minutes: grace,
        },
        congestion_horizon_hours: 8.0,
        until: Some(to),
        record_from: Some(from),
        unlabelled: true,
        shipment_lead_hours: Some(settings.lead_hours),
    };
    let lanes = lane_carriers(&history);
    let records = if reroute.is_ok() {
        lane_records(&history.shipments, grace)
    } else {
        LaneRecords::new()
    };
    // Only the paired estimate of a logged history needs every carrier's legs.
    let off_policy = matches!(&reroute, Ok(Setup { truth: None, .. }));
    if let (Some(path), false) = (&settings.outcomes, off_policy) {
        anyhow::bail!(
            "--outcomes {} scores the paired estimate of a logged history of reroutes, \
             and there is none here (truth files present, or no shipments or carrier model)",
            path.display()
        );
    }
    let legs = if off_policy {
        match &settings.outcomes {
            Some(path) => {
                let (shipments, _) = crate::csvio::read_shipments(path)
                    .with_context(|| format!("--outcomes {}", path.display()))?;
                legs(&shipments, grace)
            }
            None => legs(&history.shipments, grace),
        }
    } else {
        Legs::new()
    };
    let mut reroutes = Vec::new();
    let mut reallocations = Vec::new();
    walk(
        &history,
        &replay_settings,
        &mut |decision, store| match decision {
            Decision::Shipment(i, at) => {
                if let Ok(setup) = &reroute
                    && let Some(taken) = reroute_decision(
                        &history,
                        (&lanes, &legs, &records),
                        (i, at),
                        store,
                        setup,
                        settings.reroute_policy,
                    )
                {
                    reroutes.push(taken);
                }
            }
            Decision::Order(i, at) => {
                if let Ok(setup) = &realloc
                    && let Some(taken) = reallocation_decision(
                        &history,
                        (i, at),
                        store,
                        setup,
                        settings.reallocation_policy,
                    )
                {
                    reallocations.push(taken);
                }
            }
            Decision::Site(..) => {}
        },
    );
    let evaluate = |setup: &anyhow::Result<Setup>, taken: &[Taken], failure_cost: f64| match setup {
        Err(why) => Evaluation::Skipped(format!("{why:#}")),
        Ok(Setup { truth: Some(_), .. }) => {
            Evaluation::Simulated(Box::new(score(taken, failure_cost)))
        }
        Ok(Setup { truth: None, .. }) => Evaluation::Logged(Box::new(LoggedEvaluation {
            inverse_propensity: score_logged(taken, failure_cost),
            matched: score_matched(taken),
            legs_from: settings.outcomes.clone(),
        })),
    };

    let (reroute_cost, realloc_cost) = (
        settings.reroute_policy.failure_cost,
        settings.reallocation_policy.failure_cost,
    );
    let reroute_eval = evaluate(&reroute, &reroutes, reroute_cost);
    let realloc_eval = evaluate(&realloc, &reallocations, realloc_cost);
    let text = format!(
        "{}\n{}",
        section("Reroutes", &reroute_eval, reroute_cost, settings.lead_hours),
        section("Reallocations", &realloc_eval, realloc_cost, 0.0)
    );
    println!("{text}");
    if let Some(path) = &settings.report {
        std::fs::write(path, &text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok((reroute_eval, realloc_eval))
}

/// Loads what one kind of decision needs; an error says why it is skipped.
/// `off_policy`: whether a logged history without truth can be evaluated.
fn setup(
    settings: &RecommendEvalSettings,
    kind: RiskKind,
    has_history: bool,
    history_file: &str,
    truth_file: &str,
    columns: (usize, usize, usize),
    off_policy: bool,
) -> anyhow::Result<anyhow::Result<Setup>> {
    if !has_history {
        return Ok(Err(anyhow::anyhow!(
            "no {history_file} in {}",
            settings.data.display()
        )));
    }
    let model = match load_model(&settings.models, kind, schema_of(kind)) {
        Ok(model) => model,
        Err(e) => {
            return Ok(Err(
                anyhow::Error::new(e).context(format!("no {} model", kind.name()))
            ));
        }
    };
    let path = settings.data.join(truth_file);
    let truth = if path.exists() {
        let (code, cost, probability) = columns;
        Some(read_truth(&path, code, cost, probability)?)
    } else if !off_policy {
        return Ok(Err(anyhow::anyhow!(
            "no {truth_file}: a logged history has no outcomes for the options not used, \
             and the current one is the ranking's baseline (exempt from its constraints), \
             so this kind is only evaluated against a simulator's truth"
        )));
    } else {
        None
    };
    let grace_minutes = model.manifest.training["sla_grace_minutes"]
        .as_f64()
        .unwrap_or(FeatureSettings::default().sla_grace_minutes);
    Ok(Ok(Setup {
        model,
        truth,
        grace_minutes,
    }))
}

/// Every carrier each lane had anywhere in the history (sorted); a decision
/// only uses those with an outcome on the lane already in the replayed store.
fn lane_carriers(history: &History) -> LaneCarriers {
    let mut lanes: LaneCarriers = HashMap::new();
    for s in &history.shipments {
        let carriers = lanes
            .entry((s.origin.clone(), s.destination.clone()))
            .or_default();
        if !carriers.contains(&s.carrier) {
            carriers.push(s.carrier.clone());
        }
    }
    for carriers in lanes.values_mut() {
        carriers.sort_unstable();
    }
    lanes
}

/// The finished legs of every carrier on every lane; a leg fails when it is
/// cancelled or arrives more than `grace_minutes` late.
fn legs(shipments: &[Shipment], grace_minutes: f64) -> Legs {
    legs_by(shipments, grace_minutes, |s, _| s.scheduled_departure)
}

/// The finished legs of every carrier on every lane as (`time`, failed), in
/// time order.
fn legs_by(
    shipments: &[Shipment],
    grace_minutes: f64,
    time: impl Fn(&Shipment, &ShipmentOutcome) -> Timestamp,
) -> Legs {
    let mut legs: Legs = HashMap::new();
    for s in shipments {
        if let Some(outcome) = s.outcome(grace_minutes) {
            legs.entry((s.carrier.clone(), s.origin.clone(), s.destination.clone()))
                .or_default()
                .push((time(s, &outcome).0, outcome.failed));
        }
    }
    for v in legs.values_mut() {
        v.sort_unstable();
    }
    legs
}

/// Every carrier's record on every lane, leg by leg, in the order outcomes
/// became known; a leg fails as in [`legs`].
fn lane_records(shipments: &[Shipment], grace_minutes: f64) -> LaneRecords {
    legs_by(shipments, grace_minutes, |_, outcome| outcome.known_at)
        .into_iter()
        .map(|(key, v)| {
            let times = v.iter().map(|&(t, _)| t).collect();
            let failed = std::iter::once(0)
                .chain(v.iter().scan(0, |n, &(_, failed)| {
                    *n += u32::from(failed);
                    Some(*n)
                }))
                .collect();
            (key, (times, failed))
        })
        .collect()
}

/// (failed, finished) legs of `carrier` on the lane whose outcome was known
/// before `at` — as in the replayed store, where a decision comes before an
/// outcome known at the same moment.
fn record_before(
    records: &LaneRecords,
    carrier: &str,
    (origin, destination): (&str, &str),
    at: Timestamp,
) -> (u32, usize) {
    records
        .get(&(carrier.into(), origin.into(), destination.into()))
        .map_or((0, 0), |(times, failed)| {
            let done = times.partition_point(|&t| t < at.0);
            (failed[done], done)
        })
}

/// The naive policy taken literally: the option with the lowest failure rate on
/// the lane over the whole history before `at`, smoothed as the four-week naive
/// is (0.2 failures in 2 pseudo-legs); ties go to the cheaper, then to the
/// first code.
fn best_whole_record(
    options: &[Choice],
    records: &LaneRecords,
    lane: (&str, &str),
    at: Timestamp,
) -> Option<String> {
    options
        .iter()
        .map(|o| {
            let (failed, done) = record_before(records, &o.option, lane, at);
            let rate = (f64::from(failed) + 0.2) / (done as f64 + 2.0);
            (rate, o.cost, &o.option)
        })
        .min_by(|a, b| {
            a.0.total_cmp(&b.0)
                .then(a.1.total_cmp(&b.1))
                .then(a.2.cmp(b.2))
        })
        .map(|best| best.2.clone())
}

/// Failure share of `carrier`'s legs on the lane scheduled to depart within
/// [`MATCH_WINDOW_HOURS`] of `departure` and after `decided` (so none had an
/// outcome the ranking could have seen, and none is chosen by its outcome);
/// None if none.
fn nearby_failure_share(
    legs: &Legs,
    carrier: &str,
    (origin, destination): (&str, &str),
    departure: Timestamp,
    decided: Timestamp,
) -> Option<f64> {
    let window = (MATCH_WINDOW_HOURS * 3_600_000.0) as i64;
    let all = legs.get(&(carrier.into(), origin.into(), destination.into()))?;
    let from = all.partition_point(|&(t, _)| t < departure.0 - window || t <= decided.0);
    let to = all.partition_point(|&(t, _)| t <= departure.0 + window);
    let near = all.get(from..to).unwrap_or_default();
    let failed = near.iter().filter(|&&(_, failed)| failed).count();
    (!near.is_empty()).then(|| failed as f64 / near.len() as f64)
}

fn reroute_decision(
    history: &History,
    (lanes, legs, past): (&LaneCarriers, &Legs, &LaneRecords),
    (i, at): (usize, Timestamp),
    store: &InMemoryFeatureStore,
    setup: &Setup,
    policy: Policy,
) -> Option<Taken> {
    let shipment = &history.shipments[i];
    let actual_failed = shipment.outcome(setup.grace_minutes)?.failed;
    // Carriers the service would know on this lane: those with an outcome on it
    // already in the store (nothing later leaks in).
    let lane_carriers = lanes
        .get(&(shipment.origin.clone(), shipment.destination.clone()))
        .map_or(&[][..], Vec::as_slice);
    let lane_keys: Vec<AggregateKey> = lane_carriers
        .iter()
        .map(|c| AggregateKey::carrier_lane(c, &shipment.origin, &shipment.destination))
        .collect();
    let observed: Vec<String> = lane_carriers
        .iter()
        .zip(store.fetch_now(&lane_keys))
        .filter(|(_, record)| record.is_some())
        .map(|(c, _)| c.clone())
        .collect();
    let candidates = reroute::candidates(shipment, &history.network, &observed);
    // Off policy, the options must not depend on what was done: a carrier the
    // ranking only knows because the history used it is left out, and the
    // actual carrier's schedule follows the rule every alternative's does.
    let rebuilt;
    let shipment = if setup.truth.is_none() {
        let actual = candidates
            .first()
            .filter(|c| c.carrier == shipment.carrier)?;
        if actual.offer.is_none() && !observed.contains(&shipment.carrier) {
            return None;
        }
        rebuilt = reroute::with_carrier(shipment, actual);
        &rebuilt
    } else {
        shipment
    };
    let keys = reroute::keys(shipment, &candidates);
    let records = store.fetch_now(&keys);
    let lookup = |key: &AggregateKey| keys.binary_search(key).ok().map(|i| records[i].as_ref());
    let answer = reroute::reroute(&RerouteInput {
        shipment,
        as_of: at,
        candidates: &candidates,
        excluded: &[],
        network: &history.network,
        model: &setup.model,
        lookup: &lookup,
        policy,
    });
    let options = match &setup.truth {
        Some(truth) => truth.get(&shipment.shipment_id)?.clone(),
        // Rates only where network.toml has them: the ranking's stand-in for a
        // missing rate (the lane's median) is no cost that was paid.
        None => candidates
            .iter()
            .map(|c| Choice {
                option: c.carrier.clone(),
                cost: c.offer.map_or(f64::NAN, |(rate, _)| rate),
                p_fail: f64::NAN,
            })
            .collect(),
    };
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
        .min_by(|a, b| {
            a.0.total_cmp(&b.0)
                .then(a.1.total_cmp(&b.1))
                .then(a.2.cmp(&b.2))
        })?
        .2;
    let lane = (shipment.origin.as_str(), shipment.destination.as_str());
    let naive_history = best_whole_record(&options, past, lane, at);
    let nearby = if setup.truth.is_none() {
        options
            .iter()
            .map(|o| {
                let share =
                    nearby_failure_share(legs, &o.option, lane, shipment.scheduled_departure, at);
                (o.option.clone(), share)
            })
            .collect()
    } else {
        Vec::new()
    };
    Some(Taken {
        entity: shipment.shipment_id.clone(),
        group: format!("{}→{}", shipment.origin, shipment.destination),
        week: shipment.scheduled_departure.0.div_euclid(WEEK_MS),
        actual: shipment.carrier.clone(),
        actual_failed,
        options,
        recommended: answer.options.first()?.option.clone(),
        nearby,
        naive,
        naive_history,
    })
}

fn reallocation_decision(
    history: &History,
    (i, at): (usize, Timestamp),
    store: &InMemoryFeatureStore,
    setup: &Setup,
    policy: Policy,
) -> Option<Taken> {
    let order = &history.orders[i];
    let truth = setup.truth.as_ref()?.get(&order.order_id)?;
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
        model: &setup.model,
        lookup: &lookup,
        policy,
    });
    let options: Vec<Choice> = truth
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
        group: order.destination_region.clone(),
        week: order.created_at.0.div_euclid(WEEK_MS),
        actual: order.site.clone(),
        actual_failed,
        options,
        recommended: answer.options.first()?.option.clone(),
        naive,
        naive_history: None,
        nearby: Vec::new(),
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
        (NAIVE_HISTORY, PolicyResult::default()),
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
        // Reallocations have no whole-history naive: that row stays empty.
        let history = taken.naive_history.as_deref().and_then(pick);
        let [current, recommended, naive, hindsight] = chosen;
        let chosen = [current, recommended, naive, history, hindsight];
        for (slot, choice) in table.iter_mut().zip(chosen) {
            if let Some(choice) = choice {
                let (failed, cost) = outcome(choice);
                slot.1.add(failed, choice.p_fail, cost);
            }
        }
    }
    table
}

/// What a policy did on one logged decision.
enum Pick<'a> {
    /// Kept the plan: the history itself.
    Plan,
    /// Chose this option.
    Chose(&'a str),
    /// Does not apply to this kind of decision.
    NotApplicable,
}

/// Off-policy scores on a logged history. A policy is scored on the decisions
/// where it chose what was done, each weighted by 1 / the share of its group's
/// decisions that made that choice (the history's own policy, estimated); the
/// current plan is the history itself, unweighted.
fn score_logged(decisions: &[Taken], failure_cost: f64) -> LoggedTable {
    let mut used: HashMap<(&str, &str), usize> = HashMap::new();
    let mut total: HashMap<&str, usize> = HashMap::new();
    for t in decisions {
        *used.entry((&t.group, &t.actual)).or_default() += 1;
        *total.entry(&t.group).or_default() += 1;
    }
    let mut table: LoggedTable = [
        ("current plan", LoggedResult::default()),
        ("top recommendation", LoggedResult::default()),
        ("naive", LoggedResult::default()),
        (NAIVE_HISTORY, LoggedResult::default()),
    ];
    for t in decisions {
        let weight =
            total[t.group.as_str()] as f64 / used[&(t.group.as_str(), t.actual.as_str())] as f64;
        let transport = t
            .options
            .iter()
            .find(|c| c.option == t.actual)
            .map_or(f64::NAN, |c| c.cost);
        let cost = transport + failure_cost * f64::from(u8::from(t.actual_failed));
        let picks = [
            Pick::Plan,
            Pick::Chose(&t.recommended),
            Pick::Chose(&t.naive),
            t.naive_history
                .as_deref()
                .map_or(Pick::NotApplicable, Pick::Chose),
        ];
        for (slot, pick) in table.iter_mut().zip(picks) {
            match pick {
                Pick::NotApplicable => continue,
                Pick::Plan => slot.1.add(1.0, t.actual_failed, cost),
                Pick::Chose(code) if code == t.actual => slot.1.add(weight, t.actual_failed, cost),
                Pick::Chose(_) => {}
            }
            slot.1.decisions += 1;
        }
    }
    table
}

/// Paired scores on a logged history: every policy on the same decisions, each
/// pick scored by its carrier's nearby legs on the lane (see [`MatchedResult`]).
fn score_matched(decisions: &[Taken]) -> MatchedTable {
    let mut table: MatchedTable = [
        ("current plan", MatchedResult::default()),
        ("top recommendation", MatchedResult::default()),
        ("naive", MatchedResult::default()),
        (NAIVE_HISTORY, MatchedResult::default()),
        ("best in hindsight", MatchedResult::default()),
    ];
    for t in decisions {
        if t.nearby.len() < 2 || t.nearby.iter().any(|(_, share)| share.is_none()) {
            continue;
        }
        let share = |code: &str| {
            t.nearby
                .iter()
                .find(|(option, _)| option == code)
                .and_then(|(_, share)| *share)
        };
        let best = t
            .nearby
            .iter()
            .filter_map(|(_, share)| *share)
            .fold(f64::INFINITY, f64::min);
        let (Some(current), Some(recommended), Some(naive), Some(history)) = (
            share(&t.actual),
            share(&t.recommended),
            share(&t.naive),
            t.naive_history.as_deref().and_then(share),
        ) else {
            continue;
        };
        let cluster = (t.group.clone(), t.week);
        let picks = [current, recommended, naive, history, best];
        for (slot, value) in table.iter_mut().zip(picks) {
            slot.1.add(value, [naive, history], cluster.clone());
        }
    }
    table
}

fn section(title: &str, evaluation: &Evaluation, failure_cost: f64, lead: f64) -> String {
    match evaluation {
        Evaluation::Simulated(rows) => table(title, rows, failure_cost, lead),
        Evaluation::Logged(logged) => format!(
            "{}\n{}",
            logged_table(title, &logged.inverse_propensity, failure_cost, lead),
            matched_table(&logged.matched, logged.legs_from.as_deref())
        ),
        Evaluation::Skipped(why) => format!("### {title}: not evaluated ({why})\n"),
    }
}

/// ", decided N h before departure" for reroutes; nothing for reallocations.
fn horizon(lead: f64) -> String {
    if lead > 0.0 {
        format!(", decided {lead:.0} h before departure")
    } else {
        String::new()
    }
}

fn logged_table(title: &str, rows: &LoggedTable, failure_cost: f64, lead: f64) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "### {title} ({} decisions of a logged history{}; failure cost {failure_cost:.0})\n\n\
         No counterfactual outcomes: each policy is scored on the decisions where it chose \
         what was actually done, weighted by 1 / the share of the lane's decisions that \
         chose that carrier (self-normalised inverse propensity; the standard error takes \
         outcomes as independent). Mean cost needs rates from network.toml.\n",
        rows[0].1.decisions,
        horizon(lead)
    );
    let _ = writeln!(
        out,
        "| policy | decisions scored | effective | realised failure rate | ± s.e. | mean cost |\n|---|---:|---:|---:|---:|---:|"
    );
    for (name, r) in rows.iter().filter(|(_, r)| r.decisions > 0) {
        if r.followed == 0 {
            let _ = writeln!(out, "| {name} | 0 | – | – | – | – |");
            continue;
        }
        let cost = r.mean_cost();
        let _ = writeln!(
            out,
            "| {name} | {} | {:.0} | {:.4} | {:.4} | {} |",
            r.followed,
            r.effective_decisions(),
            r.failure_rate(),
            r.standard_error(),
            if cost.is_finite() {
                format!("{cost:.2}")
            } else {
                "–".into()
            }
        );
    }
    out
}

fn matched_table(rows: &MatchedTable, legs_from: Option<&Path>) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Paired, on the {} decisions with a choice where every option's carrier had legs \
         on the lane scheduled within {MATCH_WINDOW_HOURS:.0} h of the decision's departure \
         and after the decision itself: each pick is scored by the failure share of \
         those legs (they stand for how that carrier would have done), and compared with \
         each naive pick decision by decision (standard error clustered by lane and week).{}\n",
        rows[0].1.decisions,
        legs_from.map_or(String::new(), |path| format!(
            " The legs come from {}, not from the replayed history.",
            path.display()
        ))
    );
    let _ = writeln!(
        out,
        "| policy | failure share of its carrier's nearby legs | vs naive | ± s.e. | vs {NAIVE_HISTORY} | ± s.e. |\n|---|---:|---:|---:|---:|---:|"
    );
    let versus = |r: &MatchedResult, naive: Naive, itself: bool| {
        if itself {
            "0 | –".to_string()
        } else {
            format!("{:+.4} | {:.4}", r.versus(naive), r.versus_se(naive))
        }
    };
    for (name, r) in rows {
        if r.decisions == 0 {
            let _ = writeln!(out, "| {name} | – | – | – | – | – |");
        } else {
            let _ = writeln!(
                out,
                "| {name} | {:.4} | {} | {} |",
                r.failure_rate(),
                versus(r, Naive::FourWeeks, *name == "naive"),
                versus(r, Naive::WholeHistory, *name == NAIVE_HISTORY),
            );
        }
    }
    out
}

fn table(title: &str, rows: &PolicyTable, failure_cost: f64, lead: f64) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "### {title} ({} decisions{}; failure cost {failure_cost:.0})\n",
        rows[0].1.decisions,
        horizon(lead)
    );
    let _ = writeln!(
        out,
        "| policy | realised failure rate | expected failure rate | mean cost |\n|---|---:|---:|---:|"
    );
    // A policy that does not apply (no whole-history naive for reallocations)
    // has no row.
    for (name, r) in rows.iter().filter(|(_, r)| r.decisions > 0) {
        let n = r.decisions as f64;
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

#[cfg(test)]
mod tests {
    use super::*;
    use detour::domain::ShipmentStatus;

    fn taken(group: &str, actual: &str, failed: bool, recommended: &str) -> Taken {
        Taken {
            entity: format!("{group}-{actual}-{failed}"),
            group: group.into(),
            actual: actual.into(),
            actual_failed: failed,
            options: vec![Choice {
                option: actual.into(),
                cost: 10.0,
                p_fail: f64::NAN,
            }],
            recommended: recommended.into(),
            naive: actual.into(),
            naive_history: None,
            nearby: Vec::new(),
            week: 0,
        }
    }

    impl Taken {
        fn clone_with_week(&self, week: i64) -> Taken {
            Taken {
                entity: self.entity.clone(),
                group: self.group.clone(),
                week,
                actual: self.actual.clone(),
                actual_failed: self.actual_failed,
                options: self.options.clone(),
                recommended: self.recommended.clone(),
                naive: self.naive.clone(),
                naive_history: self.naive_history.clone(),
                nearby: self.nearby.clone(),
            }
        }
    }

    #[test]
    fn the_whole_history_naive_counts_outcomes_known_before_the_decision() {
        let hour = 3_600_000;
        // A leg of `carrier` on O→D due at `arrived` hours (departing 2 h
        // earlier), arriving `late` minutes late, or cancelled (known at its
        // departure).
        let leg = |carrier: &str, arrived: i64, late: Option<i64>| Shipment {
            shipment_id: format!("{carrier}{arrived}"),
            carrier: carrier.into(),
            origin: "O".into(),
            destination: "D".into(),
            scheduled_departure: Timestamp(arrived * hour - 2 * hour),
            scheduled_arrival: Timestamp(arrived * hour),
            actual_departure: None,
            actual_arrival: late.map(|m| Timestamp(arrived * hour + m * 60_000)),
            status: match late {
                Some(_) => ShipmentStatus::Delivered,
                None => ShipmentStatus::Cancelled,
            },
        };
        // A: on time at 1 h, 40 min late at 5 h, on time at 9 h (out of order).
        // B: cancelled (known at its departure, 8 h), still in transit at 3 h.
        let mut in_transit = leg("B", 3, Some(0));
        in_transit.status = ShipmentStatus::InTransit;
        let shipments = [
            leg("A", 9, Some(0)),
            leg("A", 1, Some(0)),
            leg("A", 5, Some(40)),
            leg("B", 10, None),
            in_transit,
        ];
        let records = lane_records(&shipments, 15.0);
        let at = |h: i64| Timestamp(h * hour);
        let lane = ("O", "D");
        assert_eq!(record_before(&records, "A", lane, at(0)), (0, 0));
        assert_eq!(record_before(&records, "A", lane, at(6)), (1, 2));
        // An outcome known at the decision's own moment is not yet in the store.
        assert_eq!(record_before(&records, "A", lane, at(9)), (1, 2));
        assert_eq!(
            record_before(&records, "A", lane, Timestamp(9 * hour + 1)),
            (1, 3)
        );
        assert_eq!(record_before(&records, "B", lane, at(8)), (0, 0));
        assert_eq!(record_before(&records, "B", lane, at(9)), (1, 1));
        assert_eq!(record_before(&records, "C", lane, at(9)), (0, 0));
        assert_eq!(record_before(&records, "A", ("O", "E"), at(9)), (0, 0));

        let option = |code: &str, cost: f64| Choice {
            option: code.into(),
            cost,
            p_fail: f64::NAN,
        };
        let best = |options: &[Choice], h: i64| best_whole_record(options, &records, lane, at(h));
        let options = [option("A", 10.0), option("B", 10.0), option("C", 10.0)];
        // At 6 h: A 1.2/4 = 0.3, B and C unseen at 0.1 — a tie, to the first code.
        assert_eq!(best(&options, 6).as_deref(), Some("B"));
        // Ties go to the cheaper first.
        let cheaper_c = [option("A", 10.0), option("B", 10.0), option("C", 5.0)];
        assert_eq!(best(&cheaper_c, 6).as_deref(), Some("C"));
        // After B's cancellation (1.2/3 = 0.4) only C is still unseen.
        assert_eq!(best(&options, 10).as_deref(), Some("C"));
        // With A's clean record longer, it beats B's failure.
        let a_or_b = [option("A", 10.0), option("B", 10.0)];
        assert_eq!(best(&a_or_b, 10).as_deref(), Some("A"));
        assert_eq!(best(&[], 10), None);
    }

    #[test]
    fn a_logged_policy_is_scored_where_it_did_what_was_done_weighted_by_propensity() {
        // Lane L1: A used 3 times (1 failure), B once (failed). Lane L2: C twice,
        // no failures. The policy picks B on L1 and C on L2.
        let decisions = [
            taken("L1", "A", true, "B"),
            taken("L1", "A", false, "B"),
            taken("L1", "A", false, "B"),
            taken("L1", "B", true, "B"),
            taken("L2", "C", false, "C"),
            taken("L2", "C", false, "C"),
        ];
        let [current, recommended, naive, history] = score_logged(&decisions, 100.0);
        assert_eq!(current.1.followed, 6);
        assert!((current.1.failure_rate() - 2.0 / 6.0).abs() < 1e-12);
        assert!((current.1.mean_cost() - (10.0 + 100.0 * 2.0 / 6.0)).abs() < 1e-9);
        // Scored on B (weight 4/1) and the two C rows (weight 2/2 each): had it
        // been followed, half the decisions (L1's) would have failed.
        assert_eq!(recommended.1.decisions, 6);
        assert_eq!(recommended.1.followed, 3);
        assert!((recommended.1.failure_rate() - 4.0 / 6.0).abs() < 1e-12);
        let se = recommended.1.standard_error();
        assert!(se > 0.0 && se < 1.0, "{se}");
        // A policy that agrees with every decision is scored on all of them.
        assert_eq!(naive.1.followed, 6);
        // One that does not apply (no whole-history pick) is asked nothing.
        assert_eq!(history.1.decisions, 0);

        // Where it applies, it is scored like the others: here it picks C on L2
        // (followed twice, no failure) and A on L1 (followed three times).
        let mut with_history = decisions.map(|t| t.clone_with_week(0));
        for t in &mut with_history {
            t.naive_history = Some(if t.group == "L1" { "A" } else { "C" }.into());
        }
        let [.., history] = score_logged(&with_history, 100.0);
        assert_eq!(history.1.decisions, 6);
        assert_eq!(history.1.followed, 5);
        // L1's A rows weigh 4/3 each (1 failure in 3), L2's C rows 2/2 each.
        let expected = (4.0 / 3.0) / (3.0 * 4.0 / 3.0 + 2.0);
        assert!((history.1.failure_rate() - expected).abs() < 1e-12);
    }

    #[test]
    fn matched_scores_pair_every_policy_on_decisions_where_all_options_had_nearby_legs() {
        let mut legs: Legs = HashMap::new();
        let lane = ("O".to_string(), "D".to_string());
        let hour = 3_600_000;
        // (scheduled departure, failed). A: 1 of 4 legs failed within 12 h of
        // t = 0, one far-off failure; B: 2 of 3 near, one an hour before t = 0.
        legs.insert(
            ("A".into(), lane.0.clone(), lane.1.clone()),
            vec![
                (-11 * hour, true),
                (0, false),
                (hour, false),
                (12 * hour, false),
                (13 * hour, true),
            ],
        );
        legs.insert(
            ("B".into(), lane.0.clone(), lane.1.clone()),
            vec![(-hour, false), (hour, true), (2 * hour, true)],
        );
        let share = |carrier: &str, departure: i64, decided: i64| {
            nearby_failure_share(
                &legs,
                carrier,
                ("O", "D"),
                Timestamp(departure),
                Timestamp(decided),
            )
        };
        let early = -24 * hour;
        assert_eq!(share("A", 0, early), Some(0.25));
        assert_eq!(share("B", 0, early), Some(2.0 / 3.0));
        // Decided at t = 0, only legs scheduled after it count, whatever their
        // outcome.
        assert_eq!(share("A", 0, 0), Some(0.0));
        assert_eq!(share("B", 0, 0), Some(1.0));
        assert_eq!(share("C", 0, early), None);
        assert_eq!(share("A", 40 * hour, early), None);
        assert_eq!(share("A", 0, 20 * hour), None);

        let decision = |week: i64,
                        (actual, recommended, naive, history): (&str, &str, &str, &str),
                        nearby: Vec<(&str, Option<f64>)>| {
            let mut t = taken("L", actual, false, recommended);
            t.week = week;
            t.naive = naive.into();
            t.naive_history = Some(history.into());
            t.nearby = nearby
                .into_iter()
                .map(|(c, s)| (c.to_string(), s))
                .collect();
            t
        };
        let decisions = [
            decision(
                1,
                ("A", "B", "A", "B"),
                vec![("A", Some(0.25)), ("B", Some(1.0))],
            ),
            decision(
                2,
                ("B", "A", "A", "B"),
                vec![("A", Some(0.5)), ("B", Some(0.0))],
            ),
            // Left out: an option without nearby legs, and a decision without a choice.
            decision(
                3,
                ("A", "B", "A", "A"),
                vec![("A", Some(0.25)), ("B", None)],
            ),
            decision(4, ("A", "A", "A", "A"), vec![("A", Some(0.25))]),
        ];
        let [current, recommended, naive, history, best] = score_matched(&decisions);
        for (name, r) in [&current, &recommended, &naive, &history, &best] {
            assert_eq!(r.decisions, 2, "{name}");
        }
        assert!((current.1.failure_rate() - 0.125).abs() < 1e-12);
        assert!((recommended.1.failure_rate() - 0.75).abs() < 1e-12);
        assert!((naive.1.failure_rate() - 0.375).abs() < 1e-12);
        assert!((history.1.failure_rate() - 0.5).abs() < 1e-12);
        assert!((best.1.failure_rate() - 0.125).abs() < 1e-12);
        // Paired: +0.75 and +0.0 against naive, in two clusters (two weeks).
        assert!((recommended.1.versus(Naive::FourWeeks) - 0.375).abs() < 1e-12);
        assert!((recommended.1.versus_se(Naive::FourWeeks) - 0.375).abs() < 1e-12);
        assert_eq!(naive.1.versus(Naive::FourWeeks), 0.0);
        // Against the whole-history naive (B both times): 0 and +0.5, a mean of
        // 0.25 with error √(2 · (0.25² + 0.25²)) / 2.
        assert!((recommended.1.versus(Naive::WholeHistory) - 0.25).abs() < 1e-12);
        assert!((recommended.1.versus_se(Naive::WholeHistory) - 0.25).abs() < 1e-12);
        assert_eq!(history.1.versus(Naive::WholeHistory), 0.0);
        // And the two naive policies against each other: +0.75 and −0.5.
        assert!((history.1.versus(Naive::FourWeeks) - 0.125).abs() < 1e-12);
        assert!((naive.1.versus(Naive::WholeHistory) + 0.125).abs() < 1e-12);
        // A decision without a whole-history pick (a reallocation) is not paired.
        let mut reallocation = decisions[0].clone_with_week(1);
        reallocation.naive_history = None;
        assert_eq!(score_matched(&[reallocation])[0].1.decisions, 0);

        // Clusters of several decisions: week 1 holds differences +0.75 and
        // +0.25 (sum 1.0), week 2 holds -0.5. Mean 0.5 / 3; the error is
        // √(2/1 · ((1.0 − 2m)² + (−0.5 − m)²)) / 3.
        let clustered = [
            decision(
                1,
                ("A", "B", "A", "A"),
                vec![("A", Some(0.25)), ("B", Some(1.0))],
            ),
            decision(
                1,
                ("A", "B", "A", "A"),
                vec![("A", Some(0.25)), ("B", Some(0.5))],
            ),
            decision(
                2,
                ("A", "B", "A", "A"),
                vec![("A", Some(0.5)), ("B", Some(0.0))],
            ),
        ];
        let [_, recommended, ..] = score_matched(&clustered);
        let m = 0.5 / 3.0;
        assert!((recommended.1.versus(Naive::FourWeeks) - m).abs() < 1e-12);
        let expected = (2.0 * ((1.0 - 2.0 * m).powi(2) + (-0.5 - m).powi(2))).sqrt() / 3.0;
        assert!((recommended.1.versus_se(Naive::FourWeeks) - expected).abs() < 1e-12);
        // Taken as independent, the same three differences would give less.
        let d = [0.75f64, 0.25, -0.5];
        let naive_se = (d.iter().map(|x| (x - m).powi(2)).sum::<f64>() / 2.0 / 3.0).sqrt();
        assert!(expected > naive_se, "{expected} vs {naive_se}");
        // One cluster in all: no error estimate.
        let one_week = [
            clustered[0].clone_with_week(1),
            clustered[2].clone_with_week(1),
        ];
        let [_, recommended, ..] = score_matched(&one_week);
        assert!(recommended.1.versus_se(Naive::FourWeeks).is_nan());
    }
}
