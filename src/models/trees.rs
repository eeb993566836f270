//! Gradient-boosted trees: the sum of one leaf value per tree, plus a base score,
//! is the log-odds. Missing values (NaN) follow each split's learned default
//! branch, so a tree model needs no imputation.
//!
//! Explanations are path contributions (Saabas): walking a tree from root to
//! leaf, each split credits its feature with the change in node value it causes.
//! Per tree, the credits sum to leaf value − root value, so all contributions plus
//! the roots and the base score give exactly the log-odds. It is an approximation
//! of Shapley values that is exact in total and costs nothing beyond the walk.

use serde::{Deserialize, Serialize};

use crate::schema::MAX_FEATURES;

use super::logistic::RawScore;

/// One tree in parallel arrays, node 0 the root. A node with `left[i] == 0` is a
/// leaf (no node points back at the root).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tree {
    /// Index in the schema of the feature each split reads (unused at leaves).
    pub feature: Vec<u32>,
    /// Go left when `value < threshold`.
    pub threshold: Vec<f64>,
    /// Left child of each node; 0 marks a leaf.
    pub left: Vec<u32>,
    /// Right child of each node.
    pub right: Vec<u32>,
    /// Where a missing value goes.
    pub missing: Vec<u32>,
    /// Node value in log-odds (the leaf's output for leaves).
    pub value: Vec<f64>,
    /// The nodes that split on a set of categories instead of a threshold
    /// (imported LightGBM and XGBoost models); none in Detour's own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categorical: Vec<CategoricalSplit>,
}

/// A split on categories: a missing value takes the node's `missing` child;
/// otherwise the value, truncated to an integer, is a category. One in
/// `categories` goes to the left child when `set_goes_left` (LightGBM), to
/// the right otherwise (XGBoost); any other category — a negative or
/// fractional-only value included — goes the other way.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CategoricalSplit {
    /// The node, in the tree's arrays.
    pub node: u32,
    /// The categories (non-negative integers) of the set.
    pub categories: Vec<u32>,
    /// Whether the set goes left.
    pub set_goes_left: bool,
}

/// A [`CategoricalSplit`]'s set as a bitset, for inference.
#[derive(Debug, Clone, PartialEq)]
struct CategorySet {
    bits: Vec<u64>,
    set_goes_left: bool,
}

impl CategorySet {
    fn contains(&self, category: f64) -> bool {
        // Truncated toward zero, as both libraries cast to an integer.
        let c = category.trunc();
        if !(0.0..(self.bits.len() * 64) as f64).contains(&c) {
            return false;
        }
        let c = c as usize;
        self.bits[c / 64] >> (c % 64) & 1 == 1
    }
}

/// The largest category a set may hold, plus one (LightGBM's and XGBoost's
/// categories are small integers; this bounds a set's bitset at 128 KiB).
pub const MAX_CATEGORY: u32 = 1 << 20;

/// Marks a packed node's `feature` as a categorical split; its `threshold`
/// then holds the index of its set.
const CATEGORICAL: u32 = 1 << 31;

/// A boosted ensemble.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TreeEnsemble {
    /// Log-odds before any tree.
    pub base_score: f64,
    /// The trees, each adding its leaf's value.
    pub trees: Vec<Tree>,
    /// Every node of every tree, packed for inference (built by [`Self::pack`]).
    #[serde(skip)]
    packed: Vec<PackedNode>,
    /// Where each tree starts in `packed`.
    #[serde(skip)]
    roots: Vec<u32>,
    /// The sets of every categorical split, indexed by their packed node's
    /// `threshold`.
    #[serde(skip)]
    sets: Vec<CategorySet>,
}

/// One node in a single cache-friendly array; children are absolute indexes.
#[derive(Debug, Clone, Copy, PartialEq)]
struct PackedNode {
    threshold: f64,
    value: f64,
    feature: u32,
    /// 0 for a leaf.
    left: u32,
    right: u32,
    missing: u32,
}

impl PackedNode {
    /// The child `row` goes to from this split: missing values take their
    /// learned branch, the others go left below the threshold.
    #[inline]
    fn child(&self, row: &[f64]) -> u32 {
        let value = row[self.feature as usize];
        if value.is_nan() {
            self.missing
        } else if value < self.threshold {
            self.left
        } else {
            self.right
        }
    }
}

impl TreeEnsemble {
    /// An ensemble from its trees, packed for inference.
    pub fn new(base_score: f64, trees: Vec<Tree>) -> Self {
        let mut ensemble = TreeEnsemble {
            base_score,
            trees,
            packed: Vec::new(),
            roots: Vec::new(),
            sets: Vec::new(),
        };
        ensemble.pack();
        ensemble
    }

    /// Lays every node out in one array (call after deserialising).
    pub fn pack(&mut self) {
        self.packed.clear();
        self.roots.clear();
        self.sets.clear();
        for tree in &self.trees {
            let offset = self.packed.len() as u32;
            self.roots.push(offset);
            let first_node = self.packed.len();
            for i in 0..tree.value.len() {
                let leaf = tree.left[i] == 0;
                let absolute = |child: u32| if leaf { 0 } else { offset + child };
                self.packed.push(PackedNode {
                    threshold: tree.threshold[i],
                    value: tree.value[i],
                    feature: tree.feature[i],
                    left: absolute(tree.left[i]),
                    right: absolute(tree.right[i]),
                    missing: absolute(tree.missing[i]),
                });
            }
            for split in &tree.categorical {
                // `check` refuses what is skipped here; `pack` may run first.
                let largest = split.categories.iter().copied().max().unwrap_or(0);
                let Some(node) = self.packed.get_mut(first_node + split.node as usize) else {
                    continue;
                };
                if largest >= MAX_CATEGORY || node.left == 0 {
                    continue;
                }
                let mut bits = vec![0u64; largest as usize / 64 + 1];
                for &c in &split.categories {
                    bits[c as usize / 64] |= 1 << (c % 64);
                }
                node.feature |= CATEGORICAL;
                node.threshold = self.sets.len() as f64;
                self.sets.push(CategorySet {
                    bits,
                    set_goes_left: split.set_goes_left,
                });
            }
        }
    }

    /// The child `row` goes to from the split `node`.
    #[inline(always)]
    fn step(&self, node: &PackedNode, row: &[f64]) -> u32 {
        if node.feature & CATEGORICAL == 0 {
            node.child(row)
        } else {
            self.categorical_step(node, row)
        }
    }

    /// [`Self::step`] at a categorical split: out of line, so the numeric
    /// walk every model takes stays as small as before categories.
    #[cold]
    #[inline(never)]
    fn categorical_step(&self, node: &PackedNode, row: &[f64]) -> u32 {
        let value = row[(node.feature & !CATEGORICAL) as usize];
        if value.is_nan() {
            return node.missing;
        }
        let set = &self.sets[node.threshold as usize];
        if set.contains(value) == set.set_goes_left {
            node.left
        } else {
            node.right
        }
    }

    /// The leaf `row` reaches in the tree starting at `root`.
    #[inline]
    fn leaf(&self, root: u32, row: &[f64]) -> &PackedNode {
        let mut node = &self.packed[root as usize];
        // Detour's own models have no categorical split: their walk keeps
        // the one test it had before categories.
        if self.sets.is_empty() {
            while node.left != 0 {
                node = &self.packed[node.child(row) as usize];
            }
        } else {
            while node.left != 0 {
                node = &self.packed[self.step(node, row) as usize];
            }
        }
        node
    }

    /// Log-odds only, for callers that need no explanation (ranking).
    pub fn logit(&self, row: &[f64]) -> f64 {
        let mut logit = self.base_score;
        for &root in &self.roots {
            logit += self.leaf(root, row).value;
        }
        logit
    }

    /// Indexes of the features any split uses (with repeats).
    pub fn split_features(&self) -> impl Iterator<Item = usize> + '_ {
        self.trees.iter().flat_map(|t| {
            (0..t.feature.len())
                .filter(|&i| t.left[i] != 0)
                .map(|i| t.feature[i] as usize)
        })
    }

    /// Checks every tree is well formed for `features` inputs: equal array lengths,
    /// children in range and after their parent (so every walk ends), finite numbers.
    pub fn check(&self, features: usize) -> Result<(), String> {
        if !super::within_log_odds(self.base_score) {
            return Err(format!(
                "base score is not a number within ±{:e}",
                super::MAX_LOG_ODDS
            ));
        }
        if features > MAX_FEATURES {
            return Err(format!(
                "{features} features; at most {MAX_FEATURES} are supported"
            ));
        }
        for (t, tree) in self.trees.iter().enumerate() {
            let n = tree.value.len();
            let lengths = [
                tree.feature.len(),
                tree.threshold.len(),
                tree.left.len(),
                tree.right.len(),
                tree.missing.len(),
            ];
            if n == 0 || lengths.iter().any(|&l| l != n) {
                return Err(format!(
                    "tree {t}: node arrays differ in length or are empty"
                ));
            }
            for i in 0..n {
                if !super::within_log_odds(tree.value[i]) {
                    return Err(format!(
                        "tree {t} node {i}: value is not a number within ±{:e}",
                        super::MAX_LOG_ODDS
                    ));
                }
                if tree.left[i] == 0 {
                    continue;
                }
                let children = [tree.left[i], tree.right[i], tree.missing[i]];
                // Children come after their parent, so every walk ends.
                if children.iter().any(|&c| c as usize >= n || c as usize <= i) {
                    return Err(format!("tree {t} node {i}: child out of order or range"));
                }
                if tree.feature[i] as usize >= features || tree.threshold[i].is_nan() {
                    return Err(format!("tree {t} node {i}: bad split"));
                }
            }
            for split in &tree.categorical {
                let node = split.node as usize;
                if node >= n || tree.left[node] == 0 {
                    return Err(format!(
                        "tree {t}: categorical split at node {node}, which is not a split"
                    ));
                }
                if split.categories.iter().any(|&c| c >= MAX_CATEGORY) {
                    return Err(format!(
                        "tree {t} node {node}: a category beyond {MAX_CATEGORY}"
                    ));
                }
            }
        }
        Ok(())
    }

    /// Log-odds of many rows, walking one tree over every row before the next
    /// (the tree's nodes stay in cache): for ranking many candidates.
    pub fn logits(&self, rows: &[&[f64]], out: &mut Vec<f64>) {
        out.clear();
        out.resize(rows.len(), self.base_score);
        for &root in &self.roots {
            for (logit, row) in out.iter_mut().zip(rows) {
                *logit += self.leaf(root, row).value;
            }
        }
    }

    /// Log-odds and path contributions for one row.
    pub fn predict(&self, row: &[f64]) -> RawScore {
        let mut contributions = [0.0; MAX_FEATURES];
        let mut logit = self.base_score;
        let numeric = self.sets.is_empty();
        for &root in &self.roots {
            let mut node = &self.packed[root as usize];
            while node.left != 0 {
                let next = if numeric {
                    node.child(row)
                } else {
                    self.step(node, row)
                };
                let child = &self.packed[next as usize];
                contributions[(node.feature & !CATEGORICAL) as usize] += child.value - node.value;
                node = child;
            }
            logit += node.value;
        }
        RawScore {
            logit,
            contributions,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// x0 < 1 → -1 ; else (x1 < 5 → 0.5 ; else 2); missing x0 goes right.
    fn stump() -> TreeEnsemble {
        TreeEnsemble::new(
            0.25,
            vec![Tree {
                feature: vec![0, 0, 1, 0, 0],
                threshold: vec![1.0, 0.0, 5.0, 0.0, 0.0],
                left: vec![1, 0, 3, 0, 0],
                right: vec![2, 0, 4, 0, 0],
                missing: vec![2, 0, 3, 0, 0],
                value: vec![0.1, -1.0, 1.0, 0.5, 2.0],
                categorical: Vec::new(),
            }],
        )
    }

    #[test]
    fn walks_splits_and_missing_branches() {
        let model = stump();
        assert!(model.check(2).is_ok());
        assert_eq!(model.predict(&[0.0, 9.0]).logit, 0.25 - 1.0);
        assert_eq!(model.predict(&[3.0, 9.0]).logit, 0.25 + 2.0);
        assert_eq!(model.predict(&[f64::NAN, 1.0]).logit, 0.25 + 0.5);
        let rows = [[0.0, 9.0], [3.0, 1.0], [f64::NAN, 7.0]];
        let mut many = Vec::new();
        model.logits(&rows.each_ref().map(|r| &r[..]), &mut many);
        for (row, batched) in rows.iter().zip(many) {
            assert_eq!(model.logit(row), model.predict(row).logit);
            assert_eq!(batched, model.logit(row));
        }
    }

    #[test]
    fn batches_score_each_row_as_alone() {
        let model = stump();
        let rows: Vec<[f64; 2]> = (0..150)
            .map(|i| {
                let x0 = if i % 7 == 0 {
                    f64::NAN
                } else {
                    (i % 5) as f64 * 0.5
                };
                [x0, (i % 11) as f64]
            })
            .collect();
        let refs: Vec<&[f64]> = rows.iter().map(|r| &r[..]).collect();
        let mut many = Vec::new();
        model.logits(&refs, &mut many);
        assert_eq!(many.len(), rows.len());
        for (row, batched) in rows.iter().zip(many) {
            assert_eq!(batched, model.logit(row));
        }
    }

    #[test]
    fn categorical_splits_send_their_set_one_way() {
        // Node 0 splits x0 on {1, 3, 70} going left; missing goes right.
        let mut tree = stump().trees[0].clone();
        tree.categorical.push(CategoricalSplit {
            node: 0,
            categories: vec![1, 3, 70],
            set_goes_left: true,
        });
        let model = TreeEnsemble::new(0.0, vec![tree.clone()]);
        assert!(model.check(2).is_ok());
        let left = -1.0;
        for (x0, expected_left) in [(1.0, true), (3.9, true), (70.0, true), (2.0, false)] {
            let goes_left = model.logit(&[x0, 9.0]) == left;
            assert_eq!(goes_left, expected_left, "x0 = {x0}");
        }
        // Negative, huge and missing values are not in the set.
        for x0 in [-1.0, -70.0, 1e12, f64::NAN] {
            assert_ne!(model.logit(&[x0, 9.0]), left, "x0 = {x0}");
        }
        // XGBoost's orientation: the set goes right.
        tree.categorical[0].set_goes_left = false;
        let flipped = TreeEnsemble::new(0.0, vec![tree.clone()]);
        assert_ne!(flipped.logit(&[3.0, 9.0]), left);
        assert_eq!(flipped.logit(&[2.0, 9.0]), left);
        // A categorical split at a leaf, or a category beyond the bound: refused.
        tree.categorical[0].node = 1;
        assert!(TreeEnsemble::new(0.0, vec![tree.clone()]).check(2).is_err());
        tree.categorical[0].node = 0;
        tree.categorical[0].categories.push(MAX_CATEGORY);
        assert!(TreeEnsemble::new(0.0, vec![tree]).check(2).is_err());
    }

    #[test]
    fn contributions_add_up_to_the_score() {
        let model = stump();
        let score = model.predict(&[3.0, 1.0]);
        // root 0.1 → node 2 (1.0): x0 gets +0.9; → node 3 (0.5): x1 gets -0.5.
        assert!((score.contributions[0] - 0.9).abs() < 1e-12);
        assert!((score.contributions[1] + 0.5).abs() < 1e-12);
        let total: f64 = score.contributions.iter().sum();
        assert!((0.25 + 0.1 + total - score.logit).abs() < 1e-12);
    }

    #[test]
    fn malformed_trees_are_refused() {
        let mut model = stump();
        model.trees[0].left[0] = 0;
        model.trees[0].left[2] = 1; // points back up: could loop
        assert!(model.check(2).is_err());
        assert!(stump().check(1).is_err(), "feature 1 does not exist");
    }
}
