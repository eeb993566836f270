//! The Markdown tables `evaluate-recommendations` prints (and writes with
//! `--report`): one section per kind of decision, from an [`Evaluation`].

use std::fmt::Write as _;
use std::path::Path;

use super::Evaluation;
use super::estimators::{LoggedTable, MatchedResult, MatchedTable, PolicyTable};
use super::legs::MATCH_WINDOW_HOURS;
use super::policy::{Naive, Policy};

/// The section of one kind of decision; `lead` is the reroutes' horizon in
/// hours (0 for reallocations).
pub(super) fn section(
    title: &str,
    evaluation: &Evaluation,
    failure_cost: f64,
    lead: f64,
) -> String {
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
    for (policy, r) in rows.iter().filter(|(_, r)| r.decisions > 0) {
        let n = r.decisions as f64;
        let _ = writeln!(
            out,
            "| {policy} | {:.4} | {:.4} | {:.2} |",
            r.failures as f64 / n,
            r.expected_failure / n,
            r.total_cost / n
        );
    }
    out
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
    for (policy, r) in rows.iter().filter(|(_, r)| r.decisions > 0) {
        if r.followed == 0 {
            let _ = writeln!(out, "| {policy} | 0 | – | – | – | – |");
            continue;
        }
        let cost = r.mean_cost();
        let _ = writeln!(
            out,
            "| {policy} | {} | {:.0} | {:.4} | {:.4} | {} |",
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
        "| policy | failure share of its carrier's nearby legs | vs {} | ± s.e. | vs {} | ± s.e. |\n|---|---:|---:|---:|---:|---:|",
        Naive::FourWeeks.policy(),
        Naive::WholeHistory.policy(),
    );
    // A naive policy against itself is 0 by construction, with no error.
    let versus = |r: &MatchedResult, policy: Policy, naive: Naive| {
        if policy == naive.policy() {
            "0 | –".to_string()
        } else {
            format!("{:+.4} | {:.4}", r.versus(naive), r.versus_se(naive))
        }
    };
    for (policy, r) in rows {
        if r.decisions == 0 {
            let _ = writeln!(out, "| {policy} | – | – | – | – | – |");
        } else {
            let _ = writeln!(
                out,
                "| {policy} | {:.4} | {} | {} |",
                r.failure_rate(),
                versus(r, *policy, Naive::FourWeeks),
                versus(r, *policy, Naive::WholeHistory),
            );
        }
    }
    out
}
