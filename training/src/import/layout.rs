//! What every importer shares: a library's tree, read into [`RawTree`], is laid
//! out as Detour's [`Tree`] (node 0 the root, children after their parent),
//! checked as it goes, and each library's split test is rewritten as Detour's
//! one test, `value < threshold`, chosen so that every `f64` input takes the
//! branch the library would take.
//!
//! Node values of split nodes (what path contributions measure changes of)
//! are the cover-weighted mean of their children's, bottom up, as XGBoost's
//! own approximate contributions define them: every library gives leaves, not
//! all give split nodes a value on the same scale.

use detour::models::trees::{CategoricalSplit, MAX_CATEGORY, Tree};

/// A node of a library's tree, by the library's own indexes.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// Go to `left` when the input is below `below` (Detour's test), to
    /// `right` otherwise; a missing input goes left when `missing_left`.
    Split {
        /// Column of the model's input.
        column: usize,
        /// The `<` threshold (see the conversion functions below).
        below: f64,
        left: usize,
        right: usize,
        missing_left: bool,
    },
    /// A split on categories ([`CategoricalSplit`]'s semantics): a category
    /// in `categories` goes left when `set_goes_left`, right otherwise; a
    /// missing input goes left when `missing_left`.
    Categorical {
        column: usize,
        categories: Vec<u32>,
        set_goes_left: bool,
        left: usize,
        right: usize,
        missing_left: bool,
    },
    /// A leaf, in log-odds.
    Leaf { value: f64 },
}

/// A library's tree before layout: its nodes, each node's cover (hessian sum
/// or sample count; used only to weight split nodes' values), and its root.
#[derive(Debug, Clone, Default)]
pub struct RawTree {
    /// The nodes, by the library's indexes.
    pub nodes: Vec<Node>,
    /// Each node's cover (may be empty: every node then weighs the same).
    pub cover: Vec<f64>,
    /// The root's index.
    pub root: usize,
}

/// Lays out `raw` as a Detour tree over `columns` model inputs: every node
/// reachable from the root exactly once, in depth-first order. Refuses, with
/// the node at fault, a child out of range, a node reached twice (a cycle or
/// a shared subtree), a column out of range and a number that is not finite.
pub fn layout(raw: &RawTree, columns: usize) -> Result<Tree, String> {
    let n = raw.nodes.len();
    if raw.root >= n {
        return Err(format!("root {} is not one of its {n} nodes", raw.root));
    }
    // Depth-first, children after their parent: order[i] is the library index
    // of Detour's node i.
    let mut order = Vec::with_capacity(n);
    let mut placed = vec![usize::MAX; n];
    let mut stack = vec![raw.root];
    while let Some(at) = stack.pop() {
        if placed[at] != usize::MAX {
            return Err(format!("node {at} is reached twice"));
        }
        placed[at] = order.len();
        order.push(at);
        let split = match &raw.nodes[at] {
            Node::Split {
                column,
                below,
                left,
                right,
                ..
            } => {
                if below.is_nan() {
                    return Err(format!("node {at}: threshold is not a number"));
                }
                Some((*column, *left, *right))
            }
            Node::Categorical {
                column,
                categories,
                left,
                right,
                ..
            } => {
                if categories.iter().any(|&c| c >= MAX_CATEGORY) {
                    return Err(format!("node {at}: a category beyond {MAX_CATEGORY}"));
                }
                Some((*column, *left, *right))
            }
            Node::Leaf { .. } => None,
        };
        if let Some((column, left, right)) = split {
            if column >= columns {
                return Err(format!(
                    "node {at} splits on feature index {column}; the model has {columns} inputs"
                ));
            }
            for child in [right, left] {
                if child >= n {
                    return Err(format!(
                        "node {at}: child {child} is not one of its {n} nodes"
                    ));
                }
                stack.push(child);
            }
        }
    }
    let mut tree = Tree {
        feature: vec![0; order.len()],
        threshold: vec![0.0; order.len()],
        left: vec![0; order.len()],
        right: vec![0; order.len()],
        missing: vec![0; order.len()],
        value: vec![0.0; order.len()],
        categorical: Vec::new(),
    };
    let mut weight = vec![0.0; order.len()];
    // Children come after their parent, so walking backwards values every
    // child before its parent.
    for (i, &at) in order.iter().enumerate().rev() {
        let cover = raw.cover.get(at).copied().unwrap_or(1.0);
        if !cover.is_finite() || cover < 0.0 {
            return Err(format!("node {at}: cover {cover} is not a count"));
        }
        match &raw.nodes[at] {
            &Node::Leaf { value } => {
                if !value.is_finite() {
                    return Err(format!("leaf {at}: value is not a finite number"));
                }
                tree.value[i] = value;
                weight[i] = cover;
            }
            node @ (Node::Split { .. } | Node::Categorical { .. }) => {
                let (column, below, left, right, missing_left) = match node {
                    &Node::Split {
                        column,
                        below,
                        left,
                        right,
                        missing_left,
                    } => (column, below, left, right, missing_left),
                    Node::Categorical {
                        column,
                        categories,
                        set_goes_left,
                        left,
                        right,
                        missing_left,
                    } => {
                        tree.categorical.push(CategoricalSplit {
                            node: i as u32,
                            categories: categories.clone(),
                            set_goes_left: *set_goes_left,
                        });
                        (*column, 0.0, *left, *right, *missing_left)
                    }
                    Node::Leaf { .. } => unreachable!("matched above"),
                };
                let (l, r) = (placed[left], placed[right]);
                tree.feature[i] = column as u32;
                tree.threshold[i] = below;
                tree.left[i] = l as u32;
                tree.right[i] = r as u32;
                tree.missing[i] = if missing_left { l } else { r } as u32;
                let (wl, wr) = (weight[l], weight[r]);
                tree.value[i] = if wl + wr > 0.0 {
                    (wl * tree.value[l] + wr * tree.value[r]) / (wl + wr)
                } else {
                    (tree.value[l] + tree.value[r]) / 2.0
                };
                weight[i] = wl + wr;
            }
        }
    }
    Ok(tree)
}

/// The `<` threshold equal to a library's `x <= t` on `f64` inputs
/// (LightGBM, scikit-learn's histogram boosting).
pub fn below_of_at_most(t: f64) -> f64 {
    t.next_up()
}

/// The `<` threshold equal to XGBoost's test, `(x as f32) < t`, in which the
/// input is rounded to `f32` first: the least `f64` that rounds to `t` or
/// above. Every `f64` below it rounds below `t`; it and everything above, to
/// `t` or above.
pub fn below_of_f32_less(t: f32) -> f64 {
    if !t.is_finite() || t == f32::MIN {
        return f64::from(t);
    }
    let under = t.next_down();
    // The midpoint of two neighbouring f32 values is exact in f64; it rounds
    // to whichever of them has an even mantissa.
    let mid = (f64::from(under) + f64::from(t)) / 2.0;
    if mid as f32 == t { mid } else { mid.next_up() }
}

/// The `<` threshold equal to scikit-learn's classic trees' test,
/// `(x as f32) <= t` with `t` an `f64`.
pub fn below_of_f32_at_most(t: f64) -> f64 {
    // The greatest f32 at or below t; inputs rounding to it or below go left.
    let mut v = t as f32;
    if f64::from(v) > t {
        v = v.next_down();
    }
    below_of_f32_less(v.next_up())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_take_the_library_branch_for_every_input_near_them() {
        let thresholds = [
            0.1f32,
            0.90028,
            -0.024984999,
            1.0,
            3.0e-8,
            16_777_217.0,
            -7.5,
        ];
        for t in thresholds {
            let below = below_of_f32_less(t);
            let mut x = f64::from(t) - 4.0 * f64::from(t.abs() * f32::EPSILON);
            let end = f64::from(t) + 4.0 * f64::from(t.abs() * f32::EPSILON);
            let mut seen = 0;
            while x <= end && seen < 10_000 {
                assert_eq!((x as f32) < t, x < below, "t {t} x {x}");
                // Walk in steps that land on midpoints and their neighbours.
                x = if seen % 3 == 0 {
                    x.next_up()
                } else {
                    x + f64::from(t.abs() * f32::EPSILON) / 8.0
                };
                seen += 1;
            }
            let d = f64::from(t);
            for x in [d, d.next_up(), d.next_down(), below, below.next_down()] {
                assert_eq!((x as f32) < t, x < below, "t {t} x {x}");
                assert_eq!(x <= d, x < below_of_at_most(d));
            }
        }
        for t in [0.40576033294200897f64, -0.5809463262557983, 2.5, 1e-40] {
            let below = below_of_f32_at_most(t);
            for x in [
                t,
                t.next_up(),
                t.next_down(),
                below,
                below.next_down(),
                t as f32 as f64,
            ] {
                assert_eq!((x as f32) as f64 <= t, x < below, "t {t} x {x}");
            }
        }
    }

    fn stump() -> RawTree {
        // Library order: leaves first, root last.
        RawTree {
            nodes: vec![
                Node::Leaf { value: -1.0 },
                Node::Leaf { value: 3.0 },
                Node::Split {
                    column: 1,
                    below: 0.5,
                    left: 0,
                    right: 1,
                    missing_left: false,
                },
            ],
            cover: vec![3.0, 1.0, 4.0],
            root: 2,
        }
    }

    #[test]
    fn layout_puts_the_root_first_and_weights_split_values_by_cover() {
        let tree = layout(&stump(), 2).unwrap();
        assert_eq!(tree.left[0], 1);
        assert_eq!(tree.right[0], 2);
        assert_eq!(tree.missing[0], 2);
        assert_eq!(tree.value, vec![0.0, -1.0, 3.0]);
        assert_eq!(tree.feature[0], 1);
    }

    #[test]
    fn malformed_trees_are_refused_with_the_node() {
        let mut cyclic = stump();
        cyclic.nodes[2] = Node::Split {
            column: 0,
            below: 0.0,
            left: 2,
            right: 1,
            missing_left: true,
        };
        assert!(layout(&cyclic, 2).unwrap_err().contains("reached twice"));
        assert!(layout(&stump(), 1).unwrap_err().contains("feature index 1"));
        let mut far = stump();
        far.nodes[2] = Node::Split {
            column: 0,
            below: 0.0,
            left: 0,
            right: 9,
            missing_left: true,
        };
        assert!(layout(&far, 2).unwrap_err().contains("child 9"));
    }
}
