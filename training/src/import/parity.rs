//! `--expected`: rows with a library's own probabilities, read by column
//! name, and how far the imported model is from them.

use std::path::Path;

use anyhow::Context;
use detour::models::{Learner, sigmoid};
use detour::schema::{FeatureVector, RiskKind, schema_of};

use super::Mapped;

/// How far the imported model is from the library's own probabilities.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Parity {
    /// Rows compared.
    pub rows: usize,
    /// Rows with at least one missing input.
    pub rows_with_missing: usize,
    /// The largest |Δp| (infinite when a probability is not a number).
    pub max_abs_diff: f64,
    /// The mean |Δp|.
    pub mean_abs_diff: f64,
    /// The first row (0-based, after the header) with the largest difference.
    pub worst_row: usize,
}

/// Rows of a CSV with the model's inputs by name (empty: missing) and the
/// library's probability in `column`, as full schema vectors with their
/// expected probabilities.
pub fn read_expected(
    path: &Path,
    column: &str,
    kind: RiskKind,
    mapped: &Mapped,
) -> anyhow::Result<Vec<(FeatureVector, f64)>> {
    let mut reader =
        csv::Reader::from_path(path).with_context(|| format!("reading {}", path.display()))?;
    let header = reader.headers()?.clone();
    let find = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .with_context(|| format!("{}: no column {name:?}", path.display()))
    };
    let sources: Vec<(usize, usize)> = mapped
        .names
        .iter()
        .zip(&mapped.columns)
        .map(|(name, &schema)| Ok((find(name)?, schema)))
        .collect::<anyhow::Result<_>>()?;
    let expected_at = find(column)?;
    let width = schema_of(kind).len();
    let mut rows = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let record = record.with_context(|| format!("{}: row {}", path.display(), i + 1))?;
        let mut values = vec![f64::NAN; width];
        for &(at, schema) in &sources {
            let cell = record.get(at).unwrap_or("").trim();
            if !cell.is_empty() && !cell.eq_ignore_ascii_case("nan") {
                values[schema] = cell.parse().with_context(|| {
                    format!(
                        "{}: row {}, column {}: {cell:?}",
                        path.display(),
                        i + 1,
                        &header[at]
                    )
                })?;
            }
        }
        let p: f64 = record
            .get(expected_at)
            .unwrap_or("")
            .trim()
            .parse()
            .with_context(|| format!("{}: row {}, column {column}", path.display(), i + 1))?;
        rows.push((FeatureVector::from_slice(&values), p));
    }
    anyhow::ensure!(!rows.is_empty(), "{}: no rows", path.display());
    Ok(rows)
}

/// Compares the imported probabilities (no calibration) with the expected.
pub fn parity(mapped: &Mapped, rows: &[(FeatureVector, f64)]) -> Parity {
    // All rows at once: a network runs once for the batch.
    let vectors: Vec<&[f64]> = rows.iter().map(|(v, _)| v.as_slice()).collect();
    let mut logits = Vec::with_capacity(rows.len());
    match &mapped.learner {
        Learner::Mlp(network) => network.logits(&vectors, &mut logits),
        learner => logits.extend(vectors.iter().map(|v| learner.raw_score(v).logit)),
    }
    let mut max_abs_diff: f64 = 0.0;
    let mut worst_row = 0;
    let mut total = 0.0;
    let mut rows_with_missing = 0;
    for (i, (row, expected)) in rows.iter().enumerate() {
        let values = row.as_slice();
        if mapped.columns.iter().any(|&c| values[c].is_nan()) {
            rows_with_missing += 1;
        }
        let diff = (sigmoid(logits[i]) - expected).abs();
        // A probability that is not a number is as far off as can be.
        let diff = if diff.is_nan() { f64::INFINITY } else { diff };
        total += diff;
        if diff > max_abs_diff {
            max_abs_diff = diff;
            worst_row = i;
        }
    }
    Parity {
        rows: rows.len(),
        rows_with_missing,
        max_abs_diff,
        mean_abs_diff: total / rows.len().max(1) as f64,
        worst_row,
    }
}
