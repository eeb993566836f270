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
//!
//! This file reads the inputs and runs the replay; the parts live beside it:
//! `policy` (the policies and their labels), `legs` (the history's legs grouped
//! by lane), `decision` (one decision taken every way), `scoring` (decisions
//! into tables), `estimators` (what the tables hold) and `tables` (the Markdown
//! printed).

mod decision;
mod estimators;
mod legs;
mod policy;
mod scoring;
mod tables;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use anyhow::Context;
use detour::domain::Timestamp;
use detour::features::FeatureSettings;
use detour::models::{LoadedModel, load_model};
use detour::recommend::Policy as RankingPolicy;
use detour::schema::RiskKind;
use detour::schema::schema_of;

use crate::replay::{Decision, History, ReplaySettings, walk};
use crate::train::read_history;

use decision::{Choice, Taken, Truth, reallocation_decision, reroute_decision};
pub use estimators::{
    LoggedResult, LoggedTable, MatchedResult, MatchedTable, PolicyResult, PolicyTable,
};
pub use legs::MATCH_WINDOW_HOURS;
use legs::{LaneRecords, Legs, lane_carriers, lane_records, legs};
pub use policy::{Naive, Policy};
use scoring::{score, score_logged, score_matched};
use tables::section;

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
    pub reroute_policy: RankingPolicy,
    pub reallocation_policy: RankingPolicy,
    pub report: Option<PathBuf>,
    /// A shipments.csv whose legs score the paired estimate instead of the
    /// history's own: a fuller record of the same carriers (public on-time
    /// data, say) when the log being replayed is thin.
    pub outcomes: Option<PathBuf>,
    /// Replay through the anomaly monitor, so decisions see open alerts.
    pub alerts: bool,
}

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
        also_at_departure: false,
        announced_hours: crate::replay::DEFAULT_ANNOUNCED_HOURS,
        alerts: settings.alerts,
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

/// Reads a truth file: entity id (column 0) → options (code, cost, probability).
fn read_truth(path: &Path, code: usize, cost: usize, probability: usize) -> anyhow::Result<Truth> {
    let mut reader = csv::Reader::from_path(path).with_context(|| {
        format!(
            "{} (written by `detour-train simulate`) is needed",
            path.display()
        )
    })?;
    let mut out = Truth::new();
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
