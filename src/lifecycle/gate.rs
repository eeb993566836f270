//! The gate: what a version must pass to be loaded, and the checks of the
//! requests that name versions. Loading runs on the blocking pool; nothing
//! here changes the registry's state.

use std::sync::Arc;

use super::LifecycleError;
use crate::models::artifact::{GoldenRows, require_golden_rows};
use crate::models::repository::AutoPromote;
use crate::models::{ArtifactFiles, LoadedModel, ModelError, load_files};
use crate::schema::{FeatureVector, RiskKind, schema_of};

/// Whether `version` may name a folder: 1 to 64 of `[A-Za-z0-9._-]`, not
/// starting with a dot.
pub(super) fn check_version_name(version: &str) -> Result<(), LifecycleError> {
    let fine = !version.is_empty()
        && version.len() <= 64
        && !version.starts_with('.')
        && version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if fine {
        Ok(())
    } else {
        Err(LifecycleError::Invalid(format!(
            "version {:?} must be 1 to 64 letters, digits, '.', '_' or '-', not starting with '.'",
            crate::domain::validate::echoed(version)
        )))
    }
}

pub(super) fn check_percent(percent: f64) -> Result<(), LifecycleError> {
    if percent.is_finite() && percent > 0.0 && percent <= 100.0 {
        Ok(())
    } else {
        Err(LifecycleError::Invalid(format!(
            "canary percent must be within (0, 100], got {percent}"
        )))
    }
}

/// An auto-promote rule needs outcomes (site congestion has no outcome
/// event) and a number of standard errors ≥ 0.
pub(super) fn check_auto_promote(kind: RiskKind, rule: &AutoPromote) -> Result<(), LifecycleError> {
    if !(rule.sigmas.is_finite() && rule.sigmas >= 0.0) {
        return Err(LifecycleError::Invalid(format!(
            "auto_promote.sigmas must be a number ≥ 0, got {}",
            rule.sigmas
        )));
    }
    if kind == RiskKind::SiteCongestion {
        return Err(LifecycleError::Invalid(
            "auto_promote needs outcomes, and site congestion has no outcome event: compare \
             its candidate by agreement and promote by hand"
                .into(),
        ));
    }
    Ok(())
}

/// Where the held-out metrics of `candidate` are worse than `active`'s by
/// more than `tolerance` (relative), one line each.
pub(super) fn worse_metrics(
    candidate: &LoadedModel,
    active: &LoadedModel,
    tolerance: f64,
) -> Vec<String> {
    let metric = |m: &LoadedModel, name: &str| m.manifest.metrics["test"][name].as_f64();
    let mut worse = Vec::new();
    for (name, higher_is_better) in [("roc_auc", true), ("brier", false), ("log_loss", false)] {
        let (Some(c), Some(a)) = (metric(candidate, name), metric(active, name)) else {
            continue;
        };
        let allowed = tolerance * a.abs();
        let is_worse = if higher_is_better {
            c < a - allowed
        } else {
            c > a + allowed
        };
        if is_worse {
            worse.push(format!(
                "held-out {name} {c:.4} against the active version's {a:.4} (tolerance {:.1} %)",
                tolerance * 100.0
            ));
        }
    }
    worse
}

/// A loaded version and the identity of the files it came from.
#[derive(Debug, Clone)]
pub(super) struct Loaded {
    pub(super) model: Arc<LoadedModel>,
    pub(super) identity: String,
}

/// Loads files as a version of `kind`, refusing them when they are not the
/// files the state recorded.
pub(super) async fn load_identified(
    files: ArtifactFiles,
    kind: RiskKind,
    recorded: &str,
) -> Result<Loaded, ModelError> {
    let identity = files.identity()?;
    if !recorded.is_empty() && identity != recorded {
        return Err(ModelError::Mismatch {
            path: files.origin.clone(),
            detail: format!(
                "its manifest hashes to {identity}, but the registry recorded {recorded} when \
                 it was deployed: the files changed since (deploy a changed model as a new \
                 version)"
            ),
        });
    }
    let model = load_checked(files, kind, Golden::IfPresent).await?;
    Ok(Loaded {
        model: Arc::new(model),
        identity,
    })
}

/// Whether an artifact must carry golden rows to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Golden {
    /// A deploy: the gate's rule.
    Required,
    /// The repository's own versions, which may be from before golden rows.
    IfPresent,
}

/// Loads and checks a version (golden rows as `golden` says) and warms it,
/// on the blocking pool, off the serving threads.
pub(super) async fn load_checked(
    files: ArtifactFiles,
    kind: RiskKind,
    golden: Golden,
) -> Result<LoadedModel, ModelError> {
    tokio::task::spawn_blocking(move || {
        let model = load_files(&files, kind, schema_of(kind))?;
        if golden == Golden::Required {
            require_golden_rows(&model, &files)?;
        }
        warm(&model, &files);
        Ok(model)
    })
    .await
    .unwrap_or_else(|e| {
        Err(ModelError::Mismatch {
            path: kind.name().into(),
            detail: format!("loading stopped: {e}"),
        })
    })
}

/// Runs the model over its golden rows on every path requests take (single,
/// explained, batched), so its first requests find it in cache.
fn warm(model: &LoadedModel, files: &ArtifactFiles) {
    let Some(file) = &model.manifest.golden_file else {
        return;
    };
    let Ok(golden) = files
        .get(file)
        .map_err(|_| ())
        .and_then(|b| serde_json::from_slice::<GoldenRows>(b).map_err(|_| ()))
    else {
        return;
    };
    let rows: Vec<FeatureVector> = golden.vectors().collect();
    for row in &rows {
        std::hint::black_box(model.predict(row));
    }
    std::hint::black_box(model.probabilities(&rows));
}
