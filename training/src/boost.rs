//! The stronger learner: gradient-boosted trees with log loss, grown on
//! histograms of binned features, written straight into the service's tree
//! format (`detour::models::TreeEnsemble`).
//!
//! Why this is our own code (see ARCHITECTURE.md): `perpetual`, the maintained
//! pure-Rust boosting crate, needs a nightly compiler (`#![feature]`) in every
//! release, and this machine has stable Rust only; `smartcore` 0.7's boosting
//! (`XGRegressor`) has only a squared-error objective and exact greedy splits that
//! sort every node's rows, far too slow at 350,000 rows; its random forest grows
//! deep trees that make large artifacts. The algorithm here is the standard
//! second-order one (XGBoost's gain and leaf weights, LightGBM's histograms and
//! histogram subtraction), in about two hundred lines.
//!
//! Missing values (NaN) get a bin of their own; each split learns which side they
//! go to. Boosting stops when the validation log loss has not improved for
//! `patience` rounds (the validation slice is never the test slice).

use detour::models::trees::{Tree, TreeEnsemble};
use detour::models::{LogisticWeights, sigmoid};

use crate::replay::Row;

/// Settings of the boosted learner.
#[derive(Debug, Clone, Copy)]
pub struct BoostSettings {
    pub max_trees: usize,
    pub learning_rate: f64,
    pub max_depth: usize,
    /// L2 penalty on leaf values.
    pub lambda: f64,
    /// Smallest hessian sum a child may have.
    pub min_child_hessian: f64,
    /// Rounds without validation improvement before stopping.
    pub patience: usize,
}

impl Default for BoostSettings {
    fn default() -> Self {
        BoostSettings {
            max_trees: 300,
            learning_rate: 0.1,
            max_depth: 5,
            lambda: 1.0,
            min_child_hessian: 5.0,
            patience: 20,
        }
    }
}

/// Most value bins per feature (bin 0 holds missing values).
const MAX_BINS: usize = 64;
/// Rows sampled to place the bin edges.
const EDGE_SAMPLE: usize = 200_000;

/// Where boosting starts and what the trees may split on.
#[derive(Debug, Clone, Copy, Default)]
pub struct Start<'a> {
    /// Boost on top of this model's log-odds (the ensemble's base score is then
    /// 0: the two are summed); from the base rate when unset.
    pub linear: Option<&'a LogisticWeights>,
    /// Features the trees may not split on (by index).
    pub frozen: &'a [usize],
}

/// Fits boosted trees on `train`, stopping early on `validation`.
pub fn fit_boosted(
    train: &[Row],
    validation: &[Row],
    width: usize,
    settings: &BoostSettings,
    start: Start<'_>,
) -> anyhow::Result<TreeEnsemble> {
    anyhow::ensure!(!train.is_empty() && width > 0, "nothing to fit");
    // A feature without bin edges never splits.
    let edges: Vec<Vec<f64>> = (0..width)
        .map(|j| {
            if start.frozen.contains(&j) {
                Vec::new()
            } else {
                bin_edges(train, j)
            }
        })
        .collect();
    let bins = BinnedColumns::new(train, &edges);
    let labels: Vec<f64> = train.iter().map(|r| f64::from(u8::from(r.label))).collect();
    let base_rate = (labels.iter().sum::<f64>() / labels.len() as f64).clamp(1e-6, 1.0 - 1e-6);
    let base_score = match start.linear {
        Some(_) => 0.0,
        None => (base_rate / (1.0 - base_rate)).ln(),
    };
    // Each row's log-odds before the first tree.
    let initial = |r: &Row| match start.linear {
        Some(linear) => linear.predict(r.features.as_slice()).logit,
        None => base_score,
    };
    let mut trees = Vec::new();
    let mut scores: Vec<f64> = train.iter().map(&initial).collect();
    let mut validation_scores: Vec<f64> = validation.iter().map(&initial).collect();
    // On a linear base, no tree at all is an answer too (the linear model alone).
    let (mut best_loss, mut best_trees) = match start.linear {
        Some(_) => (log_loss(&validation_scores, validation), 0),
        None => (f64::INFINITY, 0),
    };
    let mut gradients = vec![0.0; train.len()];
    let mut hessians = vec![0.0; train.len()];
    for round in 0..settings.max_trees {
        for i in 0..train.len() {
            let p = sigmoid(scores[i]);
            gradients[i] = p - labels[i];
            hessians[i] = (p * (1.0 - p)).max(1e-12);
        }
        let grower = Grower {
            bins: &bins,
            edges: &edges,
            gradients: &gradients,
            hessians: &hessians,
            settings,
        };
        let (tree, leaf_of_row) = grower.grow();
        for (score, leaf) in scores.iter_mut().zip(&leaf_of_row) {
            *score += tree.value[*leaf as usize];
        }
        let single = TreeEnsemble::new(0.0, vec![tree]);
        for (score, row) in validation_scores.iter_mut().zip(validation) {
            *score += single.logit(row.features.as_slice());
        }
        trees.extend(single.trees);
        let loss = log_loss(&validation_scores, validation);
        if loss < best_loss - 1e-7 {
            (best_loss, best_trees) = (loss, round + 1);
        } else if round + 1 - best_trees >= settings.patience {
            break;
        }
    }
    trees.truncate(if start.linear.is_some() {
        best_trees
    } else {
        best_trees.max(1)
    });
    let ensemble = TreeEnsemble::new(base_score, trees);
    ensemble
        .check(width)
        .map_err(|e| anyhow::anyhow!("grown trees are malformed: {e}"))?;
    Ok(ensemble)
}

fn log_loss(scores: &[f64], rows: &[Row]) -> f64 {
    if rows.is_empty() {
        return 0.0;
    }
    scores
        .iter()
        .zip(rows)
        .map(|(s, r)| {
            let p = sigmoid(*s).clamp(1e-12, 1.0 - 1e-12);
            if r.label { -p.ln() } else { -(1.0 - p).ln() }
        })
        .sum::<f64>()
        / rows.len() as f64
}

/// Quantile edges of feature `j`: a value `x` falls in bin `1 + #{edges <= x}`.
fn bin_edges(rows: &[Row], j: usize) -> Vec<f64> {
    let step = (rows.len() / EDGE_SAMPLE).max(1);
    let mut values: Vec<f64> = rows
        .iter()
        .step_by(step)
        .map(|r| r.features.values[j])
        .filter(|v| !v.is_nan())
        .collect();
    values.sort_by(f64::total_cmp);
    let mut edges: Vec<f64> = (1..MAX_BINS - 1)
        .filter_map(|q| values.get(q * values.len() / (MAX_BINS - 1)).copied())
        .collect();
    edges.dedup();
    // An edge equal to the smallest value would leave bin 1 empty. (A feature that
    // is always missing has no values and no edges: it never splits.)
    if !edges.is_empty() && values.first() == edges.first() {
        edges.remove(0);
    }
    edges
}

/// Training rows as bin numbers, one column per feature.
struct BinnedColumns {
    rows: usize,
    bins: Vec<u8>,
}

impl BinnedColumns {
    fn new(rows: &[Row], edges: &[Vec<f64>]) -> Self {
        let mut bins = vec![0u8; rows.len() * edges.len()];
        for (j, edges) in edges.iter().enumerate() {
            for (i, row) in rows.iter().enumerate() {
                let v = row.features.values[j];
                bins[j * rows.len() + i] = if v.is_nan() {
                    0
                } else {
                    1 + edges.partition_point(|e| *e <= v) as u8
                };
            }
        }
        BinnedColumns {
            rows: rows.len(),
            bins,
        }
    }

    fn column(&self, j: usize) -> &[u8] {
        &self.bins[j * self.rows..(j + 1) * self.rows]
    }
}

/// Gradient and hessian sums per (feature, bin).
type Histogram = Vec<[f64; 2]>;

struct Grower<'a> {
    bins: &'a BinnedColumns,
    edges: &'a [Vec<f64>],
    gradients: &'a [f64],
    hessians: &'a [f64],
    settings: &'a BoostSettings,
}

/// A chosen split of a node.
struct Split {
    feature: usize,
    /// Bins `1..=bin` go left.
    bin: usize,
    missing_left: bool,
}

impl Grower<'_> {
    /// Grows one tree depth-first; returns it and each training row's leaf.
    fn grow(&self) -> (Tree, Vec<u32>) {
        let mut tree = Tree {
            feature: Vec::new(),
            threshold: Vec::new(),
            left: Vec::new(),
            right: Vec::new(),
            missing: Vec::new(),
            value: Vec::new(),
            categorical: Vec::new(),
        };
        let mut leaf_of_row = vec![0u32; self.bins.rows];
        let rows: Vec<u32> = (0..self.bins.rows as u32).collect();
        let histogram = self.histogram(&rows);
        self.grow_node(&mut tree, &mut leaf_of_row, rows, histogram, 0);
        (tree, leaf_of_row)
    }

    fn grow_node(
        &self,
        tree: &mut Tree,
        leaf_of_row: &mut [u32],
        rows: Vec<u32>,
        histogram: Histogram,
        depth: usize,
    ) -> u32 {
        let (g, h) = totals(&histogram);
        let id = tree.value.len() as u32;
        tree.value
            .push(-g / (h + self.settings.lambda) * self.settings.learning_rate);
        for list in [
            &mut tree.feature,
            &mut tree.left,
            &mut tree.right,
            &mut tree.missing,
        ] {
            list.push(0);
        }
        tree.threshold.push(0.0);
        let split = (depth < self.settings.max_depth)
            .then(|| self.best_split(&histogram, g, h))
            .flatten();
        let Some(split) = split else {
            for &r in &rows {
                leaf_of_row[r as usize] = id;
            }
            return id;
        };
        let column = self.bins.column(split.feature);
        let (left_rows, right_rows): (Vec<u32>, Vec<u32>) = rows.iter().partition(|&&r| {
            let bin = column[r as usize] as usize;
            if bin == 0 {
                split.missing_left
            } else {
                bin <= split.bin
            }
        });
        drop(rows);
        // Build the smaller child's histogram; the other is the parent's minus it.
        let left_is_smaller = left_rows.len() <= right_rows.len();
        let small_histogram = self.histogram(if left_is_smaller {
            &left_rows
        } else {
            &right_rows
        });
        let mut large_histogram = histogram;
        for (l, s) in large_histogram.iter_mut().zip(&small_histogram) {
            l[0] -= s[0];
            l[1] -= s[1];
        }
        let (left_histogram, right_histogram) = if left_is_smaller {
            (small_histogram, large_histogram)
        } else {
            (large_histogram, small_histogram)
        };
        let left = self.grow_node(tree, leaf_of_row, left_rows, left_histogram, depth + 1);
        let right = self.grow_node(tree, leaf_of_row, right_rows, right_histogram, depth + 1);
        let i = id as usize;
        tree.feature[i] = split.feature as u32;
        tree.threshold[i] = self.edges[split.feature][split.bin - 1];
        tree.left[i] = left;
        tree.right[i] = right;
        tree.missing[i] = if split.missing_left { left } else { right };
        id
    }

    fn histogram(&self, rows: &[u32]) -> Histogram {
        let stride = MAX_BINS + 1;
        let mut histogram = vec![[0.0; 2]; self.edges.len() * stride];
        for j in 0..self.edges.len() {
            let column = self.bins.column(j);
            let part = &mut histogram[j * stride..(j + 1) * stride];
            for &r in rows {
                let cell = &mut part[column[r as usize] as usize];
                cell[0] += self.gradients[r as usize];
                cell[1] += self.hessians[r as usize];
            }
        }
        histogram
    }

    fn best_split(&self, histogram: &Histogram, g: f64, h: f64) -> Option<Split> {
        let stride = MAX_BINS + 1;
        let lambda = self.settings.lambda;
        let min_h = self.settings.min_child_hessian;
        let score = |g: f64, h: f64| g * g / (h + lambda);
        let parent = score(g, h);
        let mut best: Option<(f64, Split)> = None;
        for (j, edges) in self.edges.iter().enumerate() {
            let part = &histogram[j * stride..(j + 1) * stride];
            let missing = part[0];
            let (mut gl, mut hl) = (0.0, 0.0);
            // Bins 1..=b go left; b < number of value bins so the right is not empty.
            for (b, cell) in part.iter().enumerate().take(edges.len() + 1).skip(1) {
                gl += cell[0];
                hl += cell[1];
                for missing_left in [false, true] {
                    let (gl, hl) = if missing_left {
                        (gl + missing[0], hl + missing[1])
                    } else {
                        (gl, hl)
                    };
                    let (gr, hr) = (g - gl, h - hl);
                    if hl < min_h || hr < min_h {
                        continue;
                    }
                    let gain = score(gl, hl) + score(gr, hr) - parent;
                    if gain > 1e-9 && best.as_ref().is_none_or(|(best, _)| gain > *best) {
                        best = Some((
                            gain,
                            Split {
                                feature: j,
                                bin: b,
                                missing_left,
                            },
                        ));
                    }
                }
            }
        }
        best.map(|(_, split)| split)
    }
}

/// Gradient and hessian sums of a node (every row is in one bin of feature 0).
fn totals(histogram: &Histogram) -> (f64, f64) {
    histogram[..MAX_BINS + 1]
        .iter()
        .fold((0.0, 0.0), |(g, h), cell| (g + cell[0], h + cell[1]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use detour::domain::Timestamp;
    use detour::schema::FeatureVector;
    use rand::{Rng, SeedableRng};

    /// Label = (x0 > 0) XOR (x1 > 0), flipped 10 % of the time; x1 is missing in a
    /// fifth of the rows, where the label follows x0 alone.
    fn rows(n: usize, seed: u64) -> Vec<Row> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        (0..n)
            .map(|i| {
                let x0: f64 = rng.gen_range(-1.0..1.0);
                let x1: f64 = rng.gen_range(-1.0..1.0);
                let missing = rng.gen_bool(0.2);
                let mut label = if missing {
                    x0 > 0.0
                } else {
                    (x0 > 0.0) ^ (x1 > 0.0)
                };
                if rng.gen_bool(0.1) {
                    label = !label;
                }
                let mut values = [f64::NAN; detour::schema::MAX_FEATURES];
                values[0] = x0;
                values[1] = if missing { f64::NAN } else { x1 };
                values[2] = rng.gen_range(0.0..1.0); // noise
                Row {
                    at: Timestamp(i as i64),
                    entity_id: format!("r{i}"),
                    features: FeatureVector { values, len: 3 },
                    label,
                    labelled: true,
                    lead_hours: None,
                }
            })
            .collect()
    }

    #[test]
    fn learns_an_interaction_and_missing_values() {
        let train = rows(20_000, 1);
        let validation = rows(5_000, 2);
        let test = rows(5_000, 3);
        let model = fit_boosted(
            &train,
            &validation,
            3,
            &BoostSettings::default(),
            Start::default(),
        )
        .unwrap();
        let p: Vec<f64> = test
            .iter()
            .map(|r| sigmoid(model.predict(r.features.as_slice()).logit))
            .collect();
        let y: Vec<bool> = test.iter().map(|r| r.label).collect();
        let metrics = crate::metrics::evaluate(&p, &y);
        // A linear model can do no better than chance on XOR; the ceiling here is 0.9.
        assert!(metrics.roc_auc > 0.85, "ROC-AUC {}", metrics.roc_auc);
        assert!(
            model.trees.len() < BoostSettings::default().max_trees,
            "early stopping"
        );
    }

    #[test]
    fn boosts_on_a_linear_base_without_splitting_on_frozen_features() {
        let train = rows(20_000, 1);
        let validation = rows(5_000, 2);
        // A linear base that leans on x0 alone.
        let linear = LogisticWeights {
            mean: vec![0.0; 3],
            std: vec![1.0; 3],
            coefficients: vec![0.5, 0.0, 0.0],
            intercept: 0.0,
        };
        let split_features = |start: Start<'_>| {
            let model =
                fit_boosted(&train, &validation, 3, &BoostSettings::default(), start).unwrap();
            let features: Vec<usize> = model.split_features().collect();
            (model.base_score, features)
        };
        // Free to, the trees split on the noise feature x2 somewhere.
        let (_, free) = split_features(Start {
            linear: Some(&linear),
            frozen: &[],
        });
        assert!(free.contains(&2), "{free:?}");
        let (base_score, frozen) = split_features(Start {
            linear: Some(&linear),
            frozen: &[2],
        });
        assert_eq!(base_score, 0.0, "the base is the linear model's logit");
        assert!(!frozen.contains(&2), "x2 is frozen: {frozen:?}");
        assert!(frozen.contains(&0) && frozen.contains(&1), "{frozen:?}");
    }
}
