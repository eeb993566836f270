//! `detour-train import`: a model trained in Python — a LightGBM, XGBoost
//! or scikit-learn tree ensemble, or a feed-forward network in safetensors
//! — becomes a Detour artifact of a family, served natively: trees by the
//! same walker as Detour's own boosted trees, networks with `candle-core`.
//!
//! - Each library's file is read by its own module (`lightgbm.rs`,
//!   `xgboost.rs`, `sklearn.rs`), which states the semantics it reproduces,
//!   into library-neutral trees that `layout.rs` lays out and checks;
//!   `mlp.rs` reads a network's description and its safetensors weights.
//! - The model's input columns are matched to the family's schema by name:
//!   any subset, in any order; unknown names are refused, listed.
//! - `--expected` checks parity against the library's own probabilities
//!   before anything is written ([`PARITY_TOLERANCE`]).
//! - `--data` replays Detour's history as `train` does: the artifact gets
//!   the same report as a trained one, measured on the same held-out
//!   decisions, and optionally a Platt calibration fitted on the validation
//!   slice.
//!
//! Nothing is written until every check has passed, and a version folder is
//! never rewritten.

pub mod layout;
pub mod lightgbm;
pub mod mlp;
pub mod parity;
pub mod sklearn;
pub mod xgboost;

pub use parity::{Parity, parity, read_expected};

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use detour::models::artifact::{
    GoldenRows, MANIFEST_FILE, learner_name, save_golden_rows, save_model, sha256_hex, weights_json,
};
use detour::models::isotonic::IsotonicMap;
use detour::models::repository::{register_trained, version_dir};
use detour::models::{
    Calibration, FeatureSpec, Learner, LoadedModel, Manifest, TreeEnsemble, sigmoid,
};
use detour::schema::{FeatureVector, RiskKind, schema_of};
use serde_json::json;

use crate::fit::{Candidate, SliceSpan, measure, platt, split};
use crate::metrics::Metrics;
use crate::publish::{headline, unchanged};
use crate::replay::{ReplaySettings, Row, replay};
use crate::report::{FamilyResult, write_reports};
use crate::train::{BANDS, read_history};

use layout::RawTree;

/// Largest difference in probability from the library's own, on any row of
/// `--expected`, that `import` accepts by default (`--tolerance`).
pub const PARITY_TOLERANCE: f64 = 1e-6;

/// Golden rows an imported artifact carries, at most.
const GOLDEN_ROWS: usize = 256;

/// Largest model file read (a 5,000-tree LightGBM model is about 10 MB).
const MAX_MODEL_BYTES: u64 = 256 << 20;

/// A library's model, read: its input columns by name, the raw score before
/// any tree, and its trees over those columns.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The library and its version, as the file says.
    pub library: String,
    /// The model's input columns, in its own order.
    pub columns: Vec<String>,
    /// Log-odds before any tree.
    pub base_score: f64,
    /// The trees, by the library's own node indexes.
    pub trees: Vec<RawTree>,
}

/// Why a model file was refused.
#[derive(Debug, Clone, PartialEq)]
pub enum ImportError {
    /// Not a well-formed model of the library (truncated, malformed, a node
    /// out of range).
    Invalid(String),
    /// Well formed, but of a kind Detour does not serve (regression,
    /// multiclass, categorical splits).
    Unsupported(String),
    /// Its input columns do not name the family's features.
    Columns(String),
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImportError::Invalid(d) => write!(f, "invalid model: {d}"),
            ImportError::Unsupported(d) => write!(f, "unsupported model: {d}"),
            ImportError::Columns(d) => write!(f, "input columns: {d}"),
        }
    }
}

impl std::error::Error for ImportError {}

/// The libraries whose files `import` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// LightGBM `Booster.save_model` text.
    Lightgbm,
    /// XGBoost `Booster.save_model` JSON.
    Xgboost,
    /// scikit-learn trees as JSON (see `import/sklearn.rs`).
    Sklearn,
    /// A feed-forward network: JSON description + safetensors (`import/mlp.rs`).
    Mlp,
}

impl Format {
    /// The format a file's text is in, by its first bytes and keys.
    pub fn detect(text: &str) -> Option<Format> {
        let start = text.trim_start();
        if start.starts_with("tree\n") || start.starts_with("tree\r\n") {
            Some(Format::Lightgbm)
        } else if start.starts_with('{') && text.contains("\"learner\"") {
            Some(Format::Xgboost)
        } else if start.starts_with('{') && text.contains("\"children_left\"") {
            Some(Format::Sklearn)
        } else if start.starts_with('{') && text.contains(mlp::FORMAT) {
            Some(Format::Mlp)
        } else {
            None
        }
    }

    /// Short name, the prefix of version names.
    pub fn short(self) -> &'static str {
        match self {
            Format::Lightgbm => "lgbm",
            Format::Xgboost => "xgb",
            Format::Sklearn => "skl",
            Format::Mlp => "mlp",
        }
    }

    fn learner_name(self) -> &'static str {
        match self {
            Format::Lightgbm => "imported_lightgbm",
            Format::Xgboost => "imported_xgboost",
            Format::Sklearn => "imported_sklearn",
            Format::Mlp => "imported_mlp",
        }
    }

    /// Reads a tree ensemble's text (not [`Format::Mlp`], whose weights are
    /// another file: see [`read_model`]).
    pub fn parse(self, text: &str) -> Result<Imported, ImportError> {
        match self {
            Format::Lightgbm => lightgbm::parse(text),
            Format::Xgboost => xgboost::parse(text, false),
            Format::Sklearn => sklearn::parse(text),
            Format::Mlp => Err(ImportError::Invalid(
                "a network's description names its weights file: read it with read_model".into(),
            )),
        }
    }
}

/// An imported model over the family's schema, and which schema feature
/// each model column became.
#[derive(Debug, Clone)]
pub struct Mapped {
    /// Boosted trees, or a network.
    pub learner: Learner,
    /// Schema index of each model column, in the model's order.
    pub columns: Vec<usize>,
    /// The model's column names (after `--feature-names`).
    pub names: Vec<String>,
    /// The library (and version) that made it.
    pub library: String,
    /// Its trees, or its layers.
    pub parts: usize,
    /// A network's weights file (the model file is its description).
    pub weights_file: Option<PathBuf>,
}

impl Mapped {
    /// The trees, when the model is a tree ensemble.
    pub fn ensemble(&self) -> Option<&TreeEnsemble> {
        match &self.learner {
            Learner::Boosted(ensemble) => Some(ensemble),
            _ => None,
        }
    }
}

/// The schema index of each of the model's input `names`: unknown names are
/// refused, listed, and so is a name given twice.
pub fn schema_columns(names: &[String], kind: RiskKind) -> Result<Vec<usize>, ImportError> {
    let schema = schema_of(kind);
    let unknown: Vec<&str> = names
        .iter()
        .filter(|n| !schema.iter().any(|f| f.name == n.as_str()))
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        let shown: Vec<&str> = unknown.iter().take(12).copied().collect();
        return Err(ImportError::Columns(format!(
            "{} of the model's {} inputs are not {} features: {}{} (train on the columns \
             `detour-train dataset` writes, or name the inputs with --feature-names)",
            unknown.len(),
            names.len(),
            kind.name(),
            shown.join(", "),
            if unknown.len() > shown.len() {
                ", …"
            } else {
                ""
            },
        )));
    }
    if let Some(i) = (0..names.len()).find(|&i| names[..i].contains(&names[i])) {
        return Err(ImportError::Columns(format!(
            "{} names two inputs",
            names[i]
        )));
    }
    Ok(names
        .iter()
        .map(|n| schema.iter().position(|f| f.name == n).expect("known"))
        .collect())
}

/// Lays out `imported` over `kind`'s schema: `names` (from `--feature-names`)
/// replaces the file's column names when given.
pub fn map_to_schema(
    imported: &Imported,
    kind: RiskKind,
    names: Option<&[String]>,
) -> Result<Mapped, ImportError> {
    let schema = schema_of(kind);
    let names: Vec<String> = match names {
        Some(given) if given.len() != imported.columns.len() => {
            return Err(ImportError::Columns(format!(
                "--feature-names gives {} names, the model has {} inputs",
                given.len(),
                imported.columns.len()
            )));
        }
        Some(given) => given.to_vec(),
        None => imported.columns.clone(),
    };
    let columns = schema_columns(&names, kind)?;
    let mut trees = Vec::with_capacity(imported.trees.len());
    for (t, raw) in imported.trees.iter().enumerate() {
        let mut tree = layout::layout(raw, names.len())
            .map_err(|e| ImportError::Invalid(format!("tree {t}: {e}")))?;
        for (feature, left) in tree.feature.iter_mut().zip(&tree.left) {
            if *left != 0 {
                *feature = columns[*feature as usize] as u32;
            }
        }
        trees.push(tree);
    }
    let ensemble = TreeEnsemble::new(imported.base_score, trees);
    ensemble.check(schema.len()).map_err(ImportError::Invalid)?;
    Ok(Mapped {
        learner: Learner::Boosted(ensemble),
        columns,
        names,
        library: imported.library.clone(),
        parts: imported.trees.len(),
        weights_file: None,
    })
}

/// Reads and maps a model file (for a network, its description; the
/// weights are read from the file it names).
pub fn read_model(
    path: &Path,
    format: Option<Format>,
    kind: RiskKind,
    names: Option<&[String]>,
) -> anyhow::Result<(Format, Mapped)> {
    read_model_with(path, format, kind, names, false)
}

/// [`read_model`], keeping every XGBoost round when `all_rounds` (as
/// `Booster.predict` does) rather than those up to `best_iteration`.
pub fn read_model_with(
    path: &Path,
    format: Option<Format>,
    kind: RiskKind,
    names: Option<&[String]>,
    all_rounds: bool,
) -> anyhow::Result<(Format, Mapped)> {
    let size = std::fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .len();
    anyhow::ensure!(
        size <= MAX_MODEL_BYTES,
        "{}: {size} bytes; at most {MAX_MODEL_BYTES} are read",
        path.display()
    );
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let format = match format.or_else(|| Format::detect(&text)) {
        Some(format) => format,
        None => anyhow::bail!(
            "{}: not a LightGBM text model, an XGBoost JSON model, a scikit-learn tree \
             export or a detour-mlp/1 network description; name it with --format",
            path.display()
        ),
    };
    let mapped = match format {
        Format::Mlp => mlp::read(path, &text, kind, names),
        Format::Xgboost => xgboost::parse(&text, all_rounds)
            .and_then(|imported| map_to_schema(&imported, kind, names)),
        _ => format
            .parse(&text)
            .and_then(|imported| map_to_schema(&imported, kind, names)),
    }
    .with_context(|| format!("{}", path.display()))?;
    Ok((format, mapped))
}

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
    pub version: Option<String>,
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
    let parity_report = expected.as_ref().map(|rows| parity(&mapped, rows));
    if let Some(p) = &parity_report {
        anyhow::ensure!(
            p.max_abs_diff <= settings.tolerance,
            "the imported model differs from {}'s probabilities by up to {:.3e} (row {}; \
             tolerance {:e}): nothing written. Are the columns named right, and is --format \
             right? An early-stopped XGBoost model scored with Booster.predict needs \
             --all-rounds; one of thousands of trees, which XGBoost sums in f32, may need a \
             larger --tolerance",
            mapped.library,
            p.max_abs_diff,
            p.worst_row + 1,
            settings.tolerance
        );
    }
    let learner = mapped.learner.clone();
    let history_rows: Option<Vec<Row>> = match (&settings.data, &settings.replay) {
        (Some(data), Some(replay_settings)) => {
            let (history, _) = read_history(data)?;
            let mut datasets = replay(&history, replay_settings);
            Some(datasets.rows.remove(&kind).unwrap_or_default())
        }
        _ => None,
    };
    let measured: Option<(Candidate, [SliceSpan; 3])> = match &history_rows {
        Some(rows) => {
            let split = split(rows)?;
            let logits: Vec<f64> = split
                .validation
                .iter()
                .map(|r| learner.raw_score(r.features.as_slice()).logit)
                .collect();
            let labels: Vec<bool> = split.validation.iter().map(|r| r.label).collect();
            let (calibration, isotonic) = match settings.calibrate {
                Calibrate::None => (IDENTITY, None),
                Calibrate::Platt => (platt(&logits, &labels)?, None),
                Calibrate::Isotonic => {
                    let scores: Vec<f64> = logits.iter().map(|&z| sigmoid(z)).collect();
                    let map = IsotonicMap::fit(&scores, &labels).context(
                        "--calibrate isotonic: the validation slice's scores and outcomes give \
                         no increasing map (one class only?)",
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
            Some((candidate, split.spans()))
        }
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
    let source = std::fs::read(&settings.model)?;
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
                "sha256": sha256_hex(&source),
                "weights_file": mapped.weights_file.as_ref().map(|p| p.display().to_string()),
                "weights_sha256": mapped.weights_file.as_ref()
                    .map(|p| std::fs::read(p).map(|b| sha256_hex(&b)))
                    .transpose()?,
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
            let test = &rows[test_start..];
            let step = test.len().div_ceil(GOLDEN_ROWS).max(1);
            test.iter().step_by(step).map(|r| &r.features).collect()
        }
        (_, Some(rows)) => {
            let step = rows.len().div_ceil(GOLDEN_ROWS).max(1);
            rows.iter().step_by(step).map(|(v, _)| v).collect()
        }
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
