//! scikit-learn gradient boosting, from a JSON export of its trees
//! (scikit-learn has no portable format of its own; `export_gbc` and
//! `export_hgb` in `training/examples/byom_fixtures.py` write this one):
//!
//! ```json
//! {"input_dtype": "float32", "feature_names": ["..."], "n_features": 8,
//!  "learning_rate": 0.1, "init_raw_score": -0.3, "link": "sigmoid",
//!  "trees": [{"children_left": [], "children_right": [], "feature": [],
//!             "threshold": [], "value": [], "missing_go_to_left": [],
//!             "n_node_samples": []}]}
//! ```
//!
//! Semantics reproduced: the raw score is `init_raw_score + learning_rate ×
//! Σ value(leaf)`; a split sends `x <= threshold` left, with `x` first
//! rounded to `f32` when `input_dtype` is `"float32"` (the classic
//! `GradientBoostingClassifier`, and the default) and compared as an `f64`
//! when it is `"float64"` (`HistGradientBoostingClassifier`). A missing value
//! goes where `missing_go_to_left` says; without that array, to the child that
//! saw more training samples (scikit-learn's rule for a split that saw no
//! missing values), or right when the counts are absent too.

use serde::Deserialize;

use super::layout::{Node, RawTree, below_of_at_most, below_of_f32_at_most};
use super::{ImportError, Imported};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Export {
    #[serde(default)]
    library: Option<String>,
    #[serde(default)]
    sklearn_version: Option<String>,
    #[serde(default)]
    input_dtype: Option<String>,
    #[serde(default)]
    feature_names: Option<Vec<String>>,
    n_features: usize,
    learning_rate: f64,
    init_raw_score: f64,
    link: String,
    trees: Vec<ExportTree>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportTree {
    children_left: Vec<i64>,
    children_right: Vec<i64>,
    feature: Vec<i64>,
    threshold: Vec<f64>,
    value: Vec<f64>,
    #[serde(default)]
    missing_go_to_left: Option<Vec<u8>>,
    #[serde(default)]
    n_node_samples: Option<Vec<f64>>,
}

/// Reads the JSON export.
pub fn parse(text: &str) -> Result<Imported, ImportError> {
    let export: Export = serde_json::from_str(text)
        .map_err(|e| ImportError::Invalid(format!("not a scikit-learn tree export: {e}")))?;
    if export.link != "sigmoid" {
        return Err(ImportError::Unsupported(format!(
            "link {:?}: only \"sigmoid\" (binary classification) is supported",
            export.link
        )));
    }
    let float32 = match export.input_dtype.as_deref() {
        None | Some("float32") => true,
        Some("float64") => false,
        Some(other) => {
            return Err(ImportError::Invalid(format!(
                "input_dtype {other:?}: \"float32\" or \"float64\""
            )));
        }
    };
    if !(export.learning_rate.is_finite() && export.init_raw_score.is_finite()) {
        return Err(ImportError::Invalid(
            "learning_rate and init_raw_score must be finite numbers".into(),
        ));
    }
    if export.n_features > detour::schema::MAX_FEATURES {
        return Err(ImportError::Columns(format!(
            "the model has {} inputs; a family has at most {} features",
            export.n_features,
            detour::schema::MAX_FEATURES
        )));
    }
    let columns = match export.feature_names {
        Some(names) => names,
        None => (0..export.n_features).map(|i| format!("f{i}")).collect(),
    };
    if columns.len() != export.n_features {
        return Err(ImportError::Invalid(format!(
            "n_features={} but {} feature names",
            export.n_features,
            columns.len()
        )));
    }
    let trees = export
        .trees
        .iter()
        .enumerate()
        .map(|(t, tree)| {
            raw_tree(tree, export.n_features, export.learning_rate, float32)
                .map_err(|e| ImportError::Invalid(format!("tree {t}: {e}")))
        })
        .collect::<Result<_, _>>()?;
    let library = export.library.unwrap_or_else(|| "scikit-learn".to_string());
    Ok(Imported {
        library: match export.sklearn_version {
            Some(v) => format!("{library} {v}"),
            None => library,
        },
        columns,
        base_score: export.init_raw_score,
        trees,
    })
}

fn raw_tree(
    tree: &ExportTree,
    columns: usize,
    rate: f64,
    float32: bool,
) -> Result<RawTree, String> {
    let n = tree.children_left.len();
    let lengths = [
        tree.children_right.len(),
        tree.feature.len(),
        tree.threshold.len(),
        tree.value.len(),
    ];
    if n == 0 || lengths.iter().any(|&l| l != n) {
        return Err("node arrays are empty or differ in length".into());
    }
    for (name, len) in [
        (
            "missing_go_to_left",
            tree.missing_go_to_left.as_ref().map(Vec::len),
        ),
        ("n_node_samples", tree.n_node_samples.as_ref().map(Vec::len)),
    ] {
        if len.is_some_and(|l| l != n) {
            return Err(format!("{name} differs in length from the node arrays"));
        }
    }
    let samples = |i: usize| tree.n_node_samples.as_ref().map(|s| s[i]);
    let mut nodes = Vec::with_capacity(n);
    for i in 0..n {
        let left = tree.children_left[i];
        if left < 0 {
            nodes.push(Node::Leaf {
                value: rate * tree.value[i],
            });
            continue;
        }
        let column = usize::try_from(tree.feature[i])
            .ok()
            .filter(|&c| c < columns)
            .ok_or_else(|| {
                format!(
                    "node {i} splits on feature index {}; the model has {columns} inputs",
                    tree.feature[i]
                )
            })?;
        let child = |c: i64| usize::try_from(c).unwrap_or(usize::MAX);
        let (l, r) = (child(left), child(tree.children_right[i]));
        let missing_left = match &tree.missing_go_to_left {
            Some(m) => m[i] != 0,
            None => match (l < n && r < n).then(|| (samples(l), samples(r))) {
                Some((Some(sl), Some(sr))) => sl > sr,
                _ => false,
            },
        };
        let t = tree.threshold[i];
        nodes.push(Node::Split {
            column,
            below: if float32 {
                below_of_f32_at_most(t)
            } else {
                below_of_at_most(t)
            },
            left: l,
            right: r,
            missing_left,
        });
    }
    Ok(RawTree {
        nodes,
        cover: tree.n_node_samples.clone().unwrap_or_default(),
        root: 0,
    })
}
