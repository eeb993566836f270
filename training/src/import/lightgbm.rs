//! LightGBM's text model format (`Booster.save_model`), binary objectives.
//!
//! Semantics reproduced (LightGBM's `Tree::NumericalDecision`): a split sends
//! `x <= threshold` left. Its `decision_type` carries the default direction
//! (bit 1) and the missing type (bits 2–3): with missing type *NaN* a missing
//! value takes the default direction; with *None* it is read as 0 and
//! compared; with *Zero*, 0 and missing both take the default direction,
//! which Detour's one test can express only when the comparison sends 0 that
//! way anyway (anything else is refused). A categorical split (bit 0) sends
//! a value, cast to an integer, left when it is in the split's set
//! (`cat_threshold` bits), and a missing or negative one right. Leaves already include the learning rate and the initial score
//! (`boost_from_average` folds it into the first tree); the probability is
//! `1 / (1 + exp(-sigmoid * raw))`, so leaves are scaled by `sigmoid`, and by
//! `1 / trees` under `average_output` (random forests).

use std::collections::HashMap;

use super::layout::{Node, RawTree, below_of_at_most};
use super::{ImportError, Imported};

/// LightGBM's tolerance for "zero" under missing type Zero (`kZeroThreshold`,
/// a `float`).
const ZERO_THRESHOLD: f64 = 1e-35_f32 as f64;

/// Reads a model saved by `Booster.save_model`.
pub fn parse(text: &str) -> Result<Imported, ImportError> {
    let bad = |detail: String| ImportError::Invalid(detail);
    let text = text.trim_start_matches('\u{feff}').trim_start();
    let (header, rest) = text
        .split_once("\nTree=")
        .map(|(h, r)| (h, Some(r)))
        .unwrap_or((text, None));
    let header = pairs(header);
    let get = |key: &str| header.get(key).copied();
    if !text.starts_with("tree") {
        return Err(bad(
            "not a LightGBM text model (it does not start with \"tree\")".into(),
        ));
    }
    let objective = get("objective").ok_or_else(|| bad("no objective line".into()))?;
    let mut words = objective.split_whitespace();
    let name = words.next().unwrap_or("");
    let mut sigmoid = 1.0;
    match name {
        "binary" => {
            for word in words {
                if let Some(s) = word.strip_prefix("sigmoid:") {
                    sigmoid = s
                        .parse::<f64>()
                        .ok()
                        .filter(|s| s.is_finite() && *s > 0.0)
                        .ok_or_else(|| bad(format!("objective {objective:?}: bad sigmoid")))?;
                }
            }
        }
        "cross_entropy" | "xentropy" => {}
        other => {
            return Err(ImportError::Unsupported(format!(
                "objective {other:?}: only binary classification (binary, cross_entropy) \
                 gives a probability Detour serves"
            )));
        }
    }
    for key in ["num_class", "num_tree_per_iteration"] {
        if let Some(v) = get(key).filter(|v| *v != "1") {
            return Err(ImportError::Unsupported(format!(
                "{key}={v}: only one tree per iteration (binary) is supported"
            )));
        }
    }
    let columns: Vec<String> = get("feature_names")
        .ok_or_else(|| bad("no feature_names line".into()))?
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let max_feature = get("max_feature_idx")
        .and_then(|v| v.parse::<usize>().ok())
        .ok_or_else(|| bad("no max_feature_idx line".into()))?;
    if max_feature + 1 != columns.len() {
        return Err(bad(format!(
            "max_feature_idx={max_feature} but {} feature names",
            columns.len()
        )));
    }
    let average = text.lines().any(|l| l.trim() == "average_output");
    let expected_trees = get("tree_sizes").map(|s| s.split_whitespace().count());
    let rest = rest.ok_or_else(|| bad("no trees (no \"Tree=\" section)".into()))?;
    let Some((body, _)) = rest.split_once("end of trees") else {
        return Err(bad("no \"end of trees\" line: the file is truncated".into()));
    };
    let mut trees = Vec::new();
    for (t, block) in body.split("Tree=").enumerate() {
        let fields = pairs(block);
        trees.push(tree(&fields, columns.len()).map_err(|e| bad(format!("tree {t}: {e}")))?);
    }
    if let Some(n) = expected_trees.filter(|&n| n != trees.len()) {
        return Err(bad(format!(
            "tree_sizes lists {n} trees, the file holds {}: truncated or edited",
            trees.len()
        )));
    }
    let scale = if average {
        sigmoid / trees.len().max(1) as f64
    } else {
        sigmoid
    };
    for tree in &mut trees {
        for node in &mut tree.nodes {
            if let Node::Leaf { value } = node {
                *value *= scale;
            }
        }
    }
    Ok(Imported {
        library: format!("lightgbm {}", get("version").unwrap_or("?")),
        columns,
        base_score: 0.0,
        trees,
    })
}

/// `key=value` lines.
fn pairs(text: &str) -> HashMap<&str, &str> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim(), v.trim()))
        .collect()
}

fn numbers<T: std::str::FromStr>(
    fields: &HashMap<&str, &str>,
    key: &str,
    len: usize,
) -> Result<Vec<T>, String> {
    let text = fields.get(key).ok_or_else(|| format!("no {key}"))?;
    let values: Vec<T> = text
        .split_whitespace()
        .map(|v| {
            v.parse()
                .map_err(|_| format!("{key}: {v:?} is not a number"))
        })
        .collect::<Result<_, _>>()?;
    if values.len() != len {
        return Err(format!("{key} has {} values, expected {len}", values.len()));
    }
    Ok(values)
}

/// One `Tree=` block: splits 0..leaves-1 are nodes 0..leaves-1, leaf `k`
/// (written `-(k+1)` as a child) is node `leaves - 1 + k`.
fn tree(fields: &HashMap<&str, &str>, columns: usize) -> Result<RawTree, String> {
    let leaves: usize = fields
        .get("num_leaves")
        .and_then(|v| v.parse().ok())
        .filter(|&n| n >= 1)
        .ok_or("no num_leaves")?;
    if fields.get("is_linear").is_some_and(|v| *v != "0") {
        return Err("linear trees (linear_tree=true) are not supported".into());
    }
    let sets: usize = match fields.get("num_cat") {
        Some(n) => n.parse().map_err(|_| format!("num_cat {n:?}"))?,
        None => 0,
    };
    // Each categorical split's set: the bits of its words in cat_threshold.
    let category_sets: Vec<Vec<u32>> = if sets == 0 {
        Vec::new()
    } else {
        let bounds: Vec<usize> = numbers(fields, "cat_boundaries", sets + 1)?;
        let words_len = *bounds.last().expect("sets + 1 values");
        let words: Vec<u32> = numbers(fields, "cat_threshold", words_len)?;
        bounds
            .windows(2)
            .map(|w| {
                let span = words.get(w[0]..w[1]).ok_or("cat_boundaries out of order")?;
                Ok(span
                    .iter()
                    .enumerate()
                    .flat_map(|(k, &word)| {
                        (0..32u32)
                            .filter(move |b| word >> b & 1 == 1)
                            .map(move |b| k as u32 * 32 + b)
                    })
                    .collect())
            })
            .collect::<Result<_, String>>()?
    };
    let leaf_value: Vec<f64> = numbers(fields, "leaf_value", leaves)?;
    let leaf_cover: Vec<f64> = numbers(fields, "leaf_weight", leaves)
        .or_else(|_| numbers(fields, "leaf_count", leaves))
        .unwrap_or_else(|_| vec![1.0; leaves]);
    let splits = leaves - 1;
    if splits == 0 {
        return Ok(RawTree {
            nodes: vec![Node::Leaf {
                value: leaf_value[0],
            }],
            cover: leaf_cover,
            root: 0,
        });
    }
    let feature: Vec<usize> = numbers(fields, "split_feature", splits)?;
    let threshold: Vec<f64> = numbers(fields, "threshold", splits)?;
    let decision: Vec<u8> = numbers(fields, "decision_type", splits)?;
    let left: Vec<i64> = numbers(fields, "left_child", splits)?;
    let right: Vec<i64> = numbers(fields, "right_child", splits)?;
    let node_of = |child: i64| -> usize {
        if child >= 0 {
            child as usize
        } else {
            // Out of range stays out of range: the layout refuses it.
            splits.saturating_add((!child) as usize)
        }
    };
    let mut nodes = Vec::with_capacity(2 * leaves - 1);
    for i in 0..splits {
        let kind = decision[i];
        if feature[i] >= columns {
            return Err(format!(
                "node {i} splits on feature index {}; the model has {columns} inputs",
                feature[i]
            ));
        }
        if kind & 1 != 0 {
            // LightGBM's CategoricalDecision: a missing value goes right; a
            // value, cast to an integer, left when its bit is set.
            let set = category_sets
                .get(threshold[i] as usize)
                .filter(|_| threshold[i] >= 0.0)
                .ok_or_else(|| format!("node {i}: no category set {}", threshold[i]))?;
            nodes.push(Node::Categorical {
                column: feature[i],
                categories: set.clone(),
                set_goes_left: true,
                left: node_of(left[i]),
                right: node_of(right[i]),
                missing_left: false,
            });
            continue;
        }
        let default_left = kind & 2 != 0;
        let t = threshold[i];
        let missing_left = match (kind >> 2) & 3 {
            // None: a missing value is read as 0.
            0 => 0.0 <= t,
            // Zero: 0 and missing take the default branch; exact here only
            // when the comparison sends every "zero" that way too.
            1 => {
                let zero_goes_left = 0.0 <= t;
                let straddles = (-ZERO_THRESHOLD..ZERO_THRESHOLD).contains(&t);
                if zero_goes_left != default_left || straddles {
                    return Err(format!(
                        "node {i}: a zero-as-missing split that sends 0 against its \
                         comparison; retrain with zero_as_missing=false"
                    ));
                }
                default_left
            }
            2 => default_left,
            other => return Err(format!("node {i}: unknown missing type {other}")),
        };
        nodes.push(Node::Split {
            column: feature[i],
            below: below_of_at_most(t),
            left: node_of(left[i]),
            right: node_of(right[i]),
            missing_left,
        });
    }
    let split_cover: Vec<f64> = numbers(fields, "internal_weight", splits)
        .or_else(|_| numbers(fields, "internal_count", splits))
        .unwrap_or_else(|_| vec![1.0; splits]);
    nodes.extend(leaf_value.iter().map(|&value| Node::Leaf { value }));
    let mut cover = split_cover;
    cover.extend(leaf_cover);
    Ok(RawTree {
        nodes,
        cover,
        root: 0,
    })
}
