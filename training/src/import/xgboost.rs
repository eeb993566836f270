//! XGBoost's JSON model format (`Booster.save_model("model.json")`),
//! logistic objectives, `gbtree` boosters.
//!
//! Semantics reproduced (XGBoost's CPU predictor): the input is rounded to
//! `f32` and a split sends `x < split_condition` left; a missing value takes
//! `default_left`. A leaf's value is its `split_condition`. The base score is
//! a probability: the raw score starts at its log-odds. After early
//! stopping (`best_iteration` among the attributes) only the trees of the
//! rounds up to it are kept, as the scikit-learn wrapper's `predict_proba`
//! uses them. A categorical split (`split_type` 1) sends a category in its
//! set right and any other left (a missing value `default_left`).
//! Multi-target and multiclass models and `dart` boosters are refused.

use serde::Deserialize;

use super::layout::{Node, RawTree, below_of_f32_less};
use super::{ImportError, Imported};

#[derive(Deserialize)]
struct Model {
    learner: Learner,
    #[serde(default)]
    version: Vec<u32>,
}

#[derive(Deserialize)]
struct Learner {
    #[serde(default)]
    attributes: std::collections::HashMap<String, String>,
    #[serde(default)]
    feature_names: Vec<String>,
    gradient_booster: Booster,
    learner_model_param: ModelParam,
    objective: Objective,
}

#[derive(Deserialize)]
struct ModelParam {
    base_score: String,
    #[serde(default)]
    num_class: Option<String>,
    num_feature: String,
    #[serde(default)]
    num_target: Option<String>,
}

#[derive(Deserialize)]
struct Objective {
    name: String,
}

#[derive(Deserialize)]
struct Booster {
    name: String,
    #[serde(default)]
    model: Option<Trees>,
}

#[derive(Deserialize)]
struct TreeParam {
    #[serde(default)]
    num_parallel_tree: Option<String>,
}

#[derive(Deserialize)]
struct Trees {
    #[serde(default)]
    gbtree_model_param: Option<TreeParam>,
    trees: Vec<JsonTree>,
    /// Where each boosting round's trees start (and the last ends).
    #[serde(default)]
    iteration_indptr: Vec<usize>,
}

/// `default_left` entries: 0/1 in current versions, booleans in some.
#[derive(Deserialize, Clone, Copy)]
#[serde(untagged)]
enum Flag {
    Int(u8),
    Bool(bool),
}

impl Flag {
    fn set(self) -> bool {
        match self {
            Flag::Int(i) => i != 0,
            Flag::Bool(b) => b,
        }
    }
}

#[derive(Deserialize)]
struct JsonTree {
    left_children: Vec<i64>,
    right_children: Vec<i64>,
    split_indices: Vec<i64>,
    /// `NaN` (read as `None`) at categorical splits.
    split_conditions: Vec<Option<f32>>,
    default_left: Vec<Flag>,
    #[serde(default)]
    split_type: Vec<u8>,
    #[serde(default)]
    sum_hessian: Vec<f64>,
    #[serde(default)]
    categories: Vec<u32>,
    #[serde(default)]
    categories_nodes: Vec<usize>,
    #[serde(default)]
    categories_segments: Vec<usize>,
    #[serde(default)]
    categories_sizes: Vec<usize>,
}

/// Reads a model saved as JSON by `Booster.save_model`, keeping the rounds
/// up to `best_iteration` after early stopping (as the scikit-learn
/// wrapper's `predict_proba` does) unless `all_rounds` (as `Booster.predict`
/// does).
pub fn parse(text: &str, all_rounds: bool) -> Result<Imported, ImportError> {
    let text = bare_nan_as_null(text);
    let file: Model = serde_json::from_str(&text)
        .map_err(|e| ImportError::Invalid(format!("not an XGBoost JSON model: {e}")))?;
    let learner = file.learner;
    let objective = learner.objective.name.as_str();
    if !matches!(objective, "binary:logistic" | "reg:logistic") {
        return Err(ImportError::Unsupported(format!(
            "objective {objective:?}: only binary:logistic (or reg:logistic) gives a \
             probability Detour serves"
        )));
    }
    let param = &learner.learner_model_param;
    for (key, value) in [
        ("num_class", &param.num_class),
        ("num_target", &param.num_target),
    ] {
        if let Some(v) = value.as_deref().filter(|v| !matches!(*v, "0" | "1")) {
            return Err(ImportError::Unsupported(format!(
                "{key}={v}: only one binary target is supported"
            )));
        }
    }
    if learner.gradient_booster.name != "gbtree" {
        return Err(ImportError::Unsupported(format!(
            "booster {:?}: only gbtree is supported",
            learner.gradient_booster.name
        )));
    }
    let columns_n: usize = param
        .num_feature
        .parse()
        .map_err(|_| ImportError::Invalid(format!("num_feature {:?}", param.num_feature)))?;
    if columns_n > detour::schema::MAX_FEATURES {
        return Err(ImportError::Columns(format!(
            "the model has {columns_n} inputs; a family has at most {} features",
            detour::schema::MAX_FEATURES
        )));
    }
    let columns = if learner.feature_names.is_empty() {
        (0..columns_n).map(|i| format!("f{i}")).collect()
    } else {
        learner.feature_names
    };
    if columns.len() != columns_n {
        return Err(ImportError::Invalid(format!(
            "num_feature={columns_n} but {} feature names",
            columns.len()
        )));
    }
    // "5E-1", or "[5E-1]" from XGBoost 3.
    let base: f32 = param
        .base_score
        .trim_matches(|c| c == '[' || c == ']')
        .parse()
        .ok()
        .filter(|b: &f32| *b > 0.0 && *b < 1.0)
        .ok_or_else(|| {
            ImportError::Invalid(format!(
                "base_score {:?} is not a probability",
                param.base_score
            ))
        })?;
    let base = f64::from(base);
    let model = learner
        .gradient_booster
        .model
        .ok_or_else(|| ImportError::Invalid("the booster holds no trees".into()))?;
    let best = if all_rounds {
        None
    } else {
        learner.attributes.get("best_iteration")
    };
    let kept = kept_trees(&model, best)?;
    let trees = model.trees[..kept]
        .iter()
        .enumerate()
        .map(|(t, tree)| {
            raw_tree(tree, columns_n).map_err(|e| ImportError::Invalid(format!("tree {t}: {e}")))
        })
        .collect::<Result<_, _>>()?;
    let version: Vec<String> = file.version.iter().map(u32::to_string).collect();
    Ok(Imported {
        library: format!("xgboost {}", version.join(".")),
        columns,
        base_score: (base / (1.0 - base)).ln(),
        trees,
    })
}

/// How many trees `predict_proba` uses: after early stopping, those of the
/// rounds up to `best_iteration` (the scikit-learn wrapper's default);
/// otherwise all.
fn kept_trees(model: &Trees, best_iteration: Option<&String>) -> Result<usize, ImportError> {
    let Some(best) = best_iteration else {
        return Ok(model.trees.len());
    };
    let best: usize = best
        .parse()
        .map_err(|_| ImportError::Invalid(format!("best_iteration {best:?}")))?;
    let rounds = best.checked_add(1);
    // XGBoost 2 records where each round's trees end; before it, every
    // round has num_parallel_tree trees.
    let end = if model.iteration_indptr.is_empty() {
        let per_round = model
            .gbtree_model_param
            .as_ref()
            .and_then(|p| p.num_parallel_tree.as_deref())
            .map_or(Some(1), |n| n.parse::<usize>().ok());
        rounds.zip(per_round).and_then(|(r, p)| r.checked_mul(p))
    } else {
        rounds.and_then(|r| model.iteration_indptr.get(r).copied())
    };
    end.filter(|&end| end <= model.trees.len()).ok_or_else(|| {
        ImportError::Invalid(format!(
            "best_iteration {best} is beyond the model's {} trees",
            model.trees.len()
        ))
    })
}

/// XGBoost writes `NaN` (not JSON) where a categorical split has no
/// threshold: outside strings, each bare `NaN` becomes `null`.
fn bare_nan_as_null(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains("NaN") {
        return text.into();
    }
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if !in_string && rest.starts_with("NaN") {
            out.push_str("null");
            rest = &rest[3..];
            continue;
        }
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out.into()
}

fn raw_tree(tree: &JsonTree, columns: usize) -> Result<RawTree, String> {
    let n = tree.left_children.len();
    let lengths = [
        tree.right_children.len(),
        tree.split_indices.len(),
        tree.split_conditions.len(),
        tree.default_left.len(),
    ];
    if n == 0 || lengths.iter().any(|&l| l != n) {
        return Err("node arrays are empty or differ in length".into());
    }
    let mut nodes = Vec::with_capacity(n);
    for i in 0..n {
        let left = tree.left_children[i];
        if left < 0 {
            let value = tree.split_conditions[i].ok_or_else(|| format!("leaf {i}: no value"))?;
            nodes.push(Node::Leaf {
                value: f64::from(value),
            });
            continue;
        }
        let column = usize::try_from(tree.split_indices[i])
            .ok()
            .filter(|&c| c < columns)
            .ok_or_else(|| {
                format!(
                    "node {i} splits on feature index {}; the model has {columns} inputs",
                    tree.split_indices[i]
                )
            })?;
        let child = |c: i64| usize::try_from(c).unwrap_or(usize::MAX);
        if tree.split_type.get(i).is_some_and(|&t| t != 0) {
            // XGBoost's categorical Decision: a category in the node's set
            // goes right, any other (or an invalid one) left.
            let at = tree
                .categories_nodes
                .iter()
                .position(|&n| n == i)
                .ok_or_else(|| format!("node {i}: a categorical split without categories"))?;
            let (start, size) = (
                tree.categories_segments.get(at).copied(),
                tree.categories_sizes.get(at).copied(),
            );
            let set = start
                .zip(size)
                .and_then(|(start, size)| tree.categories.get(start..start.checked_add(size)?))
                .ok_or_else(|| format!("node {i}: categories out of range"))?;
            nodes.push(Node::Categorical {
                column,
                categories: set.to_vec(),
                set_goes_left: false,
                left: child(left),
                right: child(tree.right_children[i]),
                missing_left: tree.default_left[i].set(),
            });
            continue;
        }
        let threshold = tree.split_conditions[i]
            .ok_or_else(|| format!("node {i}: a numeric split without a threshold"))?;
        nodes.push(Node::Split {
            column,
            below: below_of_f32_less(threshold),
            left: child(left),
            right: child(tree.right_children[i]),
            missing_left: tree.default_left[i].set(),
        });
    }
    Ok(RawTree {
        nodes,
        cover: tree.sum_hessian.clone(),
        root: 0,
    })
}
