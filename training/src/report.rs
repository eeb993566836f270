//! Evaluation reports written beside each artifact: `report.json` for machines,
//! `report.md` for people, and `reliability.svg` (predicted vs observed by decile,
//! one line per learner) that the Markdown shows.

use std::fmt::Write as _;
use std::path::Path;

use detour::schema::RiskKind;
use serde_json::json;

use crate::fit::{Candidate, SliceSpan};

/// Everything known about one family's training run.
#[derive(Debug, Clone)]
pub struct FamilyResult {
    pub kind: RiskKind,
    pub version: String,
    pub spans: [SliceSpan; 3],
    pub candidates: Vec<Candidate>,
    /// Index of the shipped candidate.
    pub chosen: usize,
    /// ROC-AUC of the simulator's true probabilities on the test slice, if known.
    pub ceiling_roc_auc: Option<f64>,
    /// Each feature's training median, where any training row knew it.
    pub priors: Vec<Option<f64>>,
    /// How the shipped learner was chosen.
    pub chosen_by: &'static str,
    /// Wall time for this family (replay excluded), seconds.
    pub seconds: f64,
}

impl FamilyResult {
    pub fn shipped(&self) -> &Candidate {
        &self.candidates[self.chosen]
    }
}

/// Writes the three report files into `dir`.
pub fn write_reports(dir: &Path, result: &FamilyResult) -> anyhow::Result<()> {
    std::fs::write(
        dir.join("report.json"),
        serde_json::to_vec_pretty(&json_report(result))?,
    )?;
    std::fs::write(dir.join("report.md"), markdown(result))?;
    std::fs::write(dir.join("reliability.svg"), reliability_svg(result))?;
    Ok(())
}

/// The report as JSON.
pub fn json_report(result: &FamilyResult) -> serde_json::Value {
    let learners: Vec<_> = result
        .candidates
        .iter()
        .map(|c| {
            json!({
                "learner": c.name,
                "fit_seconds": c.fit_seconds,
                "calibration": c.calibration,
                "isotonic_points": c.isotonic.as_ref().map(|m| m.x.len()),
                "validation": c.validation,
                "test": c.test,
                "top_features": c.top_features,
                "by_lead": c.by_lead,
            })
        })
        .collect();
    json!({
        "family": result.kind.name(),
        "version": result.version,
        "shipped": result.shipped().name,
        "chosen_by": result.chosen_by,
        "slices": {"train": result.spans[0], "validation": result.spans[1], "test": result.spans[2]},
        "ceiling_roc_auc": result.ceiling_roc_auc,
        "seconds": result.seconds,
        "learners": learners,
    })
}

fn markdown(result: &FamilyResult) -> String {
    let mut out = String::new();
    let shipped = result.shipped();
    let _ = writeln!(out, "# {} — {}\n", result.kind.name(), result.version);
    let _ = writeln!(
        out,
        "Shipped learner: **{}** ({}). Every learner is \
         fitted on the train slice, Platt-calibrated on the validation slice and measured on \
         the test slice, which nothing was fitted, calibrated or chosen on. Slices are cut by \
         decision time.\n",
        shipped.name, result.chosen_by
    );
    let _ = writeln!(out, "| slice | from | to | rows |\n|---|---|---|---:|");
    for (name, span) in ["train", "validation", "test"].iter().zip(result.spans) {
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {} |",
            span.from, span.to, span.rows
        );
    }
    let _ = writeln!(
        out,
        "\n## Test slice\n\n| learner | base rate | ROC-AUC | PR-AUC | Brier | log loss | ECE | fit s |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|"
    );
    for c in &result.candidates {
        let m = &c.test;
        let _ = writeln!(
            out,
            "| {} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} | {:.1} |",
            c.name, m.base_rate, m.roc_auc, m.pr_auc, m.brier, m.log_loss, m.ece, c.fit_seconds
        );
    }
    if let Some(ceiling) = result.ceiling_roc_auc {
        let _ = writeln!(
            out,
            "\nCeiling: the simulator's true failure probability scores ROC-AUC **{ceiling:.4}** \
             on the same test rows; no model can expect to beat it."
        );
    }
    let _ = writeln!(
        out,
        "\n## Reliability (test slice)\n\n![reliability](reliability.svg)\n\n\
         Mean predicted probability and observed rate per decile of prediction.\n"
    );
    let mut header = String::from("| decile |");
    let mut rule = String::from("|---:|");
    for c in &result.candidates {
        let _ = write!(header, " {0} predicted | {0} observed |", c.name);
        rule.push_str("---:|---:|");
    }
    let _ = writeln!(out, "{header}\n{rule}");
    for decile in 0..10 {
        let mut line = format!("| {} |", decile + 1);
        for c in &result.candidates {
            match c.test.reliability.get(decile) {
                Some(bin) => {
                    let _ = write!(
                        line,
                        " {:.4} | {:.4} |",
                        bin.mean_predicted, bin.observed_rate
                    );
                }
                None => line.push_str(" | |"),
            }
        }
        let _ = writeln!(out, "{line}");
    }
    if !shipped.by_lead.is_empty() {
        let _ = writeln!(
            out,
            "\n## By lead — {}\n\n\
             Decisions taken this many hours before departure: the test slice's figures, and \
             the five features that move the calibrated log-odds most on the validation slice \
             (mean absolute contribution).\n\n\
             | lead (h) | test rows | ROC-AUC | ECE | features that carry the signal |\n\
             |---:|---:|---:|---:|---|",
            shipped.name
        );
        for lead in &shipped.by_lead {
            let features: Vec<String> = lead
                .top_features
                .iter()
                .map(|(name, weight)| format!("{name} {weight:.3}"))
                .collect();
            let _ = writeln!(
                out,
                "| {} | {} | {:.3} | {:.3} | {} |",
                lead.lead_hours,
                lead.test.rows,
                lead.test.roc_auc,
                lead.test.ece,
                features.join(", ")
            );
        }
    }
    for c in &result.candidates {
        let _ = writeln!(
            out,
            "\n## Top features — {}\n\n\
             Mean absolute contribution to the calibrated log-odds on the validation slice.\n\n\
             | feature | mean abs. contribution |\n|---|---:|",
            c.name
        );
        for (name, weight) in c.top_features.iter().take(8) {
            let _ = writeln!(out, "| {name} | {weight:.4} |");
        }
    }
    out
}

/// A small reliability diagram: the diagonal, and observed vs predicted per decile.
fn reliability_svg(result: &FamilyResult) -> String {
    const SIZE: f64 = 320.0;
    const PAD: f64 = 40.0;
    let top = result
        .candidates
        .iter()
        .flat_map(|c| &c.test.reliability)
        .flat_map(|b| [b.mean_predicted, b.observed_rate])
        .fold(0.05f64, f64::max)
        .min(1.0);
    let scale = |v: f64| v / top * SIZE;
    let (x, y) = (|v: f64| PAD + scale(v), |v: f64| PAD + SIZE - scale(v));
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{w}\" \
         font-family=\"sans-serif\" font-size=\"11\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <line x1=\"{a}\" y1=\"{b}\" x2=\"{b}\" y2=\"{a}\" stroke=\"#bbb\" stroke-dasharray=\"4\"/>\n\
         <rect x=\"{a}\" y=\"{a}\" width=\"{s}\" height=\"{s}\" fill=\"none\" stroke=\"#333\"/>\n\
         <text x=\"{a}\" y=\"{c}\">0</text><text x=\"{b}\" y=\"{c}\" text-anchor=\"end\">{top:.2}</text>\n\
         <text x=\"{m}\" y=\"{d}\" text-anchor=\"middle\">mean predicted</text>\n\
         <text x=\"12\" y=\"{m}\" transform=\"rotate(-90 12 {m})\" text-anchor=\"middle\">observed rate</text>\n",
        w = SIZE + 2.0 * PAD,
        a = PAD,
        b = PAD + SIZE,
        s = SIZE,
        c = PAD + SIZE + 14.0,
        d = PAD + SIZE + 30.0,
        m = PAD + SIZE / 2.0,
    );
    let colours = ["#1f77b4", "#d62728", "#2ca02c"];
    for (i, candidate) in result.candidates.iter().enumerate() {
        let colour = colours[i % colours.len()];
        let points: Vec<String> = candidate
            .test
            .reliability
            .iter()
            .map(|b| format!("{:.1},{:.1}", x(b.mean_predicted), y(b.observed_rate)))
            .collect();
        let _ = writeln!(
            svg,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\"/>\n\
             <text x=\"{:.0}\" y=\"{:.0}\" fill=\"{colour}\">{}</text>",
            points.join(" "),
            PAD + 8.0,
            PAD + 16.0 + 14.0 * i as f64,
            candidate.name
        );
    }
    svg.push_str("</svg>\n");
    svg
}
