//! The `import` command around a model read by [`super::read_model_with`]:
//! parity with the library's own probabilities, measurement (and
//! calibration) on Detour's history as `train` replays it, and the version
//! written to a scratch folder, loaded back, then renamed into place.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use detour::models::artifact::{
    GoldenRows, MANIFEST_FILE, learner_name, save_golden_rows, save_model, sha256_hex, weights_json,
};
use detour::models::isotonic::IsotonicMap;
use detour::models::repository::{register_trained, version_dir};
use detour::models::{Calibration, FeatureSpec, Learner, LoadedModel, Manifest, sigmoid};
use detour::schema::{FeatureDef, FeatureVector, RiskKind, schema_of};
use serde_json::json;

use super::{Format, Mapped, Parity, parity, read_expected, read_model_with};
use crate::fit::{Candidate, SliceSpan, measure, platt, split};
use crate::metrics::Metrics;
use crate::publish::{golden_sample, headline, unchanged};
use crate::replay::{ReplaySettings, Row, replay};
use crate::report::{FamilyResult, write_reports};
use crate::train::{BANDS, read_history};

/// How the imported log-odds are calibrated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Calibrate {
    /// Serve the library's probabilities as they are.
    None,
    /// Platt scaling fitted on the validation slice of `--data`.
    Platt,
    /// An isotonic map (pool-adjacent-violators) fitted on the validation
    /// slice of `--data`, after no Platt scaling.
    Isotonic,
}

/// What `import` needs.
#[derive(Debug, Clone)]
pub struct ImportSettings {
    /// The model file (for a network, its description).
    pub model: PathBuf,
    /// The library; detected from the file when absent.
    pub format: Option<Format>,
    /// The family whose schema the model's inputs name.
    pub family: RiskKind,
    /// Detour names of the model's inputs, in its order, replacing the file's.
    pub feature_names: Option<Vec<String>>,
    /// A CSV of rows with the library's own probabilities.
    pub expected: Option<PathBuf>,
    /// The probability column of `expected`.
    pub expected_column: String,
    /// Largest accepted difference from the expected probabilities.
    pub tolerance: f64,
    /// Keep every XGBoost round, not only those up to `best_iteration`.
    pub all_rounds: bool,
    /// Detour history to measure (and calibrate) on, replayed as `train` does.
    pub data: Option<PathBuf>,
    /// How `data` is replayed (as `train` replays it).
    pub replay: Option<ReplaySettings>,
    /// The calibration fitted on `data`'s validation slice, if any.
    pub calibrate: Calibrate,
    /// The model repository to write the version into.
    pub out: PathBuf,
    /// The version's name (default: the format's short name and a checksum).
    pub version: Option<String>,
    /// Make it the family's active version.
    pub activate: bool,
}

/// What was written.
#[derive(Debug, Clone)]
pub struct ImportSummary {
    /// The version's name.
    pub version: String,
    /// Its folder in the repository.
    pub dir: PathBuf,
    /// Against `--expected`, when given.
    pub parity: Option<Parity>,
    /// Held-out test metrics, with `--data`.
    pub test: Option<Metrics>,
    /// Whether it became the family's active version.
    pub activated: bool,
}

/// Reads, checks, measures and writes an imported model.
pub fn run(settings: &ImportSettings) -> anyhow::Result<ImportSummary> {
    let began = Instant::now();
    let kind = settings.family;
    let schema = schema_of(kind);
    let (format, mapped) = read_model_with(
        &settings.model,
        settings.format,
        kind,
        settings.feature_names.as_deref(),
        settings.all_rounds,
    )?;
    anyhow::ensure!(
        settings.expected.is_some() || settings.data.is_some(),
        "give --expected (rows with the library's own probabilities) or --data (Detour \
         history): an artifact carries golden rows, taken from one of them"
    );
    anyhow::ensure!(
        settings.calibrate == Calibrate::None || settings.data.is_some(),
        "--calibrate platt or isotonic fits on the validation slice of --data: give --data"
    );
    let expected = match &settings.expected {
        Some(path) => Some(read_expected(
            path,
            &settings.expected_column,
            kind,
            &mapped,
        )?),
        None => None,
    };
    let parity_report = match &expected {
        Some(rows) => Some(check_parity(&mapped, rows, settings.tolerance)?),
        None => None,
    };
    let learner = mapped.learner.clone();
    let history_rows: Option<Vec<Row>> = match (&settings.data, &settings.replay) {
        (Some(data), Some(replay_settings)) => {
            let (history, _) = read_history(data)?;
            let mut datasets = replay(&history, replay_settings);
            Some(datasets.rows.remove(&kind).unwrap_or_default())
        }
        _ => None,
    };
    let measured = match &history_rows {
        Some(rows) => Some(measure_on(
            rows,
            format,
            &learner,
            settings.calibrate,
            schema,
        )?),
        None => None,
    };
    let candidate = measured.as_ref().map(|(c, _)| c);
    let calibration = candidate.map_or(IDENTITY, |c| c.calibration);
    let isotonic = candidate.and_then(|c| c.isotonic.clone());
    let weights = weights_json(&learner);
    // Named by what it serves: the same weights under another calibration
    // are another version.
    let version = settings.version.clone().unwrap_or_else(|| {
        let mut identity = weights.clone();
        identity.extend(serde_json::to_vec(&calibration).expect("serialises"));
        identity.extend(serde_json::to_vec(&isotonic).expect("serialises"));
        format!("{}-{}", format.short(), &sha256_hex(&identity)[..10])
    });
    let mut manifest = Manifest {
        name: kind.name().to_string(),
        family: kind.name().to_string(),
        version: version.clone(),
        learner: learner_name(&learner).to_string(),
        // No priors: a missing value reaches the trees, which send it where
        // the library would.
        features: schema
            .iter()
            .map(|f| FeatureSpec {
                name: f.name.to_string(),
                unit: f.unit.to_string(),
                prior: None,
            })
            .collect(),
        weights_file: "weights.json".to_string(),
        weights_sha256: String::new(),
        calibration,
        bands: BANDS,
        training: json!({
            "imported_from": {
                "library": mapped.library,
                "file": settings.model.display().to_string(),
                "sha256": mapped.source_sha256,
                "weights_file": mapped.weights_file.as_ref().map(|(p, _)| p.display().to_string()),
                "weights_sha256": mapped.weights_file.as_ref().map(|(_, sha)| sha),
                "inputs": mapped.names,
                "parts": mapped.parts,
            },
            "calibration": match settings.calibrate {
                Calibrate::None => "none: the library's probabilities",
                Calibrate::Platt => "platt, fitted on the validation slice of data",
                Calibrate::Isotonic => "isotonic, fitted on the validation slice of data",
            },
            "data": settings.data.as_ref().map(|d| d.display().to_string()),
            "parity": parity_report,
            "seconds": began.elapsed().as_secs_f64(),
        }),
        metrics: candidate.map_or(
            json!({}),
            |c| json!({"test": headline(&c.test), "validation": headline(&c.validation)}),
        ),
        golden_file: None,
        golden_sha256: None,
        isotonic: isotonic.clone(),
    };
    let in_memory = LoadedModel {
        manifest: manifest.clone(),
        kind,
        learner,
    };
    let golden: Vec<&FeatureVector> = match (&history_rows, &expected) {
        (Some(rows), _) if !rows.is_empty() => {
            let (_, test_start) = crate::fit::split_bounds(rows.len());
            golden_sample(&rows[test_start..])
                .map(|r| &r.features)
                .collect()
        }
        (_, Some(rows)) => golden_sample(rows).map(|(v, _)| v).collect(),
        _ => anyhow::bail!(
            "no rows for golden rows: the history has no {} decisions",
            kind.name()
        ),
    };
    let dir = version_dir(&settings.out, kind, &version);
    if unchanged(&dir, &weights, &version)? {
        let existing = detour::models::ArtifactFiles::read_dir(&dir)?.manifest()?;
        anyhow::ensure!(
            existing.calibration == calibration && existing.isotonic == isotonic,
            "{} holds version {version} with another calibration: pass a new --version",
            dir.display()
        );
        eprintln!(
            "{}: version {version} is already in {} with the same weights; left as it is",
            kind.name(),
            dir.display()
        );
    } else {
        // Written into a scratch folder beside the version's, checked by
        // loading it as a server would, then renamed: a failure leaves no
        // partial version.
        let scratch = dir.with_file_name(format!(".{version}.importing-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&scratch);
        let written = write_version(
            &scratch,
            &mut manifest,
            &weights,
            &GoldenRows::of(&in_memory, &golden),
            measured.clone().map(|(candidate, spans)| FamilyResult {
                kind,
                version: version.clone(),
                spans,
                candidates: vec![candidate],
                chosen: 0,
                ceiling_roc_auc: None,
                priors: vec![None; schema.len()],
                chosen_by: "imported",
                seconds: began.elapsed().as_secs_f64(),
            }),
        )
        .and_then(|()| {
            std::fs::rename(&scratch, &dir)
                .with_context(|| format!("moving {} to {}", scratch.display(), dir.display()))
        });
        if written.is_err() {
            let _ = std::fs::remove_dir_all(&scratch);
        }
        written?;
    }
    let identity = sha256_hex(&std::fs::read(dir.join(MANIFEST_FILE))?);
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let activated = register_trained(
        &settings.out,
        kind,
        &version,
        identity,
        now,
        settings.activate,
    )?;
    Ok(ImportSummary {
        version,
        dir,
        parity: parity_report,
        test: candidate.map(|c| c.test.clone()),
        activated,
    })
}

/// Refuses, naming the worst row, a model farther than `tolerance` from the
/// library's own probabilities.
fn check_parity(
    mapped: &Mapped,
    rows: &[(FeatureVector, f64)],
    tolerance: f64,
) -> anyhow::Result<Parity> {
    let p = parity(mapped, rows);
    anyhow::ensure!(
        p.max_abs_diff <= tolerance,
        "the imported model differs from {}'s probabilities by up to {:.3e} (row {}; \
         tolerance {tolerance:e}): nothing written. Are the columns named right, and is \
         --format right? An early-stopped XGBoost model scored with Booster.predict needs \
         --all-rounds; one of thousands of trees, which XGBoost sums in f32, may need a \
         larger --tolerance",
        mapped.library,
        p.max_abs_diff,
        p.worst_row + 1,
    );
    Ok(p)
}

/// Calibrates `learner` as asked on the validation slice of `rows` (in time
/// order, cut as `train` cuts them) and measures it there and on the test
/// slice, as `train` measures its own learners.
fn measure_on(
    rows: &[Row],
    format: Format,
    learner: &Learner,
    calibrate: Calibrate,
    schema: &[FeatureDef],
) -> anyhow::Result<(Candidate, [SliceSpan; 3])> {
    let split = split(rows)?;
    let logits: Vec<f64> = split
        .validation
        .iter()
        .map(|r| learner.raw_score(r.features.as_slice()).logit)
        .collect();
    let labels: Vec<bool> = split.validation.iter().map(|r| r.label).collect();
    let (calibration, isotonic) = match calibrate {
        Calibrate::None => (IDENTITY, None),
        Calibrate::Platt => (platt(&logits, &labels)?, None),
        Calibrate::Isotonic => {
            let scores: Vec<f64> = logits.iter().map(|&z| sigmoid(z)).collect();
            let map = IsotonicMap::fit(&scores, &labels).context(
                "--calibrate isotonic: the validation slice's scores and outcomes give no \
                 increasing map (one class only?)",
            )?;
            (IDENTITY, Some(map))
        }
    };
    let candidate = measure(
        format.learner_name(),
        learner.clone(),
        calibration,
        isotonic,
        &split,
        schema,
        0.0,
    );
    Ok((candidate, split.spans()))
}

/// Writes the artifact (and its reports, when measured) into `dir` and
/// checks it loads as a server would load it.
fn write_version(
    dir: &Path,
    manifest: &mut Manifest,
    weights: &[u8],
    golden: &GoldenRows,
    result: Option<FamilyResult>,
) -> anyhow::Result<()> {
    save_golden_rows(dir, manifest, golden)?;
    save_model(dir, manifest, weights)?;
    if let Some(result) = &result {
        write_reports(dir, result)?;
    }
    let kind = result.map_or_else(|| crate::dataset::family(&manifest.family), |r| Ok(r.kind))?;
    detour::models::load_version(dir, kind, schema_of(kind))
        .with_context(|| format!("the written artifact in {} does not load", dir.display()))?;
    Ok(())
}

/// No calibration: the library's own probabilities.
const IDENTITY: Calibration = Calibration {
    slope: 1.0,
    intercept: 0.0,
};
