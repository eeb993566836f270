//! `detour-train import`: a model trained in Python — a LightGBM, XGBoost
//! or scikit-learn tree ensemble, or a feed-forward network in safetensors
//! — becomes a Detour artifact of a family, served natively: trees by the
//! same walker as Detour's own boosted trees, networks with `candle-core`.
//!
//! This file reads a model and maps it onto a family's schema; `command.rs`
//! is the command around it (parity, measurement, calibration, writing).
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

mod command;
pub mod layout;
pub mod lightgbm;
pub mod mlp;
pub mod parity;
pub mod sklearn;
pub mod xgboost;

pub use command::{Calibrate, ImportSettings, ImportSummary, run};
pub use parity::{Parity, parity, read_expected};

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use detour::models::artifact::sha256_hex;
use detour::models::{Learner, TreeEnsemble};
use detour::schema::{RiskKind, schema_of};

use layout::RawTree;

/// Largest difference in probability from the library's own, on any row of
/// `--expected`, that `import` accepts by default (`--tolerance`).
pub const PARITY_TOLERANCE: f64 = 1e-6;

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
    /// SHA-256 of the model file, lower-case hex.
    pub source_sha256: String,
    /// A network's weights file and its SHA-256 (the model file is its
    /// description).
    pub weights_file: Option<(PathBuf, String)>,
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
        source_sha256: String::new(),
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
    let mut mapped = match format {
        Format::Mlp => mlp::read(path, &text, kind, names),
        Format::Xgboost => xgboost::parse(&text, all_rounds)
            .and_then(|imported| map_to_schema(&imported, kind, names)),
        _ => format
            .parse(&text)
            .and_then(|imported| map_to_schema(&imported, kind, names)),
    }
    .with_context(|| format!("{}", path.display()))?;
    mapped.source_sha256 = sha256_hex(text.as_bytes());
    Ok((format, mapped))
}
