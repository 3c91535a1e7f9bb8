//! linfa-trees' decision tree, fitted in a fraction of the time: the same tree, node for node.
//!
//! linfa-trees 0.8 fits a node by walking every training row, in each feature's sorted
//! order, and skipping the rows outside the node: a tree of depth 8 walks the whole training
//! set about 500 times per feature, with a `HashMap` update per row. Here each node walks only its own rows: each feature's sorted order is split between the
//! children as the rows are, so a tree walks the training set once per level. A node holds its
//! own copy of its part of each order (value, next value in the whole order, weight, row and
//! class), so the walk reads memory in sequence: walking positions into one shared order
//! instead missed the cache on nearly every row below the first levels.
//!
//! Everything else is linfa's, operation for operation, so the fitted tree is the one
//! `DecisionTreeParams::fit` returns, built through its serde form: the same sort, the same
//! sums in the same order in `f32`, split values halfway to the next value in the whole
//! training set's order (not the node's), a node with one empty side kept as a leaf, and the
//! same pruning. The tests compare the two fits' serialized trees on data with ties.

use linfa_trees::{DecisionTree, DecisionTreeValidParams, SplitQuality};
use ndarray::ArrayView2;
use serde_json::{Value, json};

/// The decision tree linfa-trees fits with `params` on the rows of `x`, their labels and their
/// weights (one per row), whose features are unnamed.
pub fn fit(
    params: &DecisionTreeValidParams<f64, bool>,
    x: ArrayView2<f64>,
    labels: &[bool],
    weights: &[f32],
) -> DecisionTree<f64, bool> {
    let x = x.view();
    assert_eq!(x.nrows(), labels.len(), "one label per row");
    assert_eq!(x.nrows(), weights.len(), "one weight per row");
    let rows = x.nrows();
    assert!(rows < ROW as usize, "fewer than 2^30 rows");
    let orders: Vec<Vec<Entry>> = (0..x.ncols())
        .map(|feature| {
            // linfa's sort, stable, with its treatment of incomparable values.
            let mut pairs: Vec<(usize, f64)> = x.column(feature).iter().copied().enumerate().collect();
            pairs.sort_by(|a, b| a.1.partial_cmp(&b.1).unwrap_or(std::cmp::Ordering::Greater));
            (0..pairs.len())
                .map(|position| {
                    let (row, value) = pairs[position];
                    let next = pairs.get(position + 1);
                    Entry {
                        value,
                        next: next.map_or(value, |n| n.1),
                        weight: weights[row],
                        tagged_row: row as u32
                            | if labels[row] { CHURNED } else { 0 }
                            | if next.is_none() { LAST } else { 0 },
                    }
                })
                .collect()
        })
        .collect();
    let fitter = Fitter {
        params,
        x,
        labels,
        weights,
        goes_left: std::cell::RefCell::new(vec![false; rows]),
    };
    let all_rows: Vec<u32> = (0..rows as u32).collect();
    let mut root = fitter.node(all_rows, orders, 0);
    root.prune();
    serde_json::from_value(json!({ "root_node": root.to_json(), "num_features": x.ncols() }))
        .expect("the serde form of linfa-trees' DecisionTree")
}

struct Fitter<'a> {
    params: &'a DecisionTreeValidParams<f64, bool>,
    x: ArrayView2<'a, f64>,
    labels: &'a [bool],
    weights: &'a [f32],
    /// Scratch: which side of the split being applied each row of the node goes to.
    goes_left: std::cell::RefCell<Vec<bool>>,
}

/// One training row at its position in a feature's sorted order.
#[derive(Clone, Copy)]
struct Entry {
    value: f64,
    /// The value at the next position of the whole training set's order (linfa's split point
    /// is halfway to it); the value itself at the last position.
    next: f64,
    weight: f32,
    /// The row, with [`CHURNED`] set for a `true` label and [`LAST`] at the last position.
    tagged_row: u32,
}

const CHURNED: u32 = 1 << 31;
const LAST: u32 = 1 << 30;
/// Rows are below this; the bits above hold the tags.
const ROW: u32 = 1 << 30;

impl Entry {
    fn row(&self) -> usize {
        (self.tagged_row & (ROW - 1)) as usize
    }

    fn class(&self) -> usize {
        usize::from(self.tagged_row & CHURNED != 0)
    }

    fn is_last(&self) -> bool {
        self.tagged_row & LAST != 0
    }
}

/// Weights per class, indexed by the label (`false`, `true`); a class absent from the node
/// is 0.0, which adds nothing to linfa's sums over the classes present.
type Frequencies = [f32; 2];

struct Node {
    /// Whether the node was split (linfa names the feature then; its empty leaves have none).
    was_split: bool,
    feature: usize,
    split: f64,
    impurity_decrease: f64,
    left: Option<Box<Node>>,
    right: Option<Box<Node>>,
    leaf: bool,
    prediction: bool,
    depth: usize,
}

impl Fitter<'_> {
    /// Fits the node of `rows` (ascending), given for each feature the node's entries in the
    /// feature's sorted order.
    fn node(&self, rows: Vec<u32>, orders: Vec<Vec<Entry>>, depth: usize) -> Node {
        let mut parent: Frequencies = [0.0; 2];
        for &row in &rows {
            parent[usize::from(self.labels[row as usize])] += self.weights[row as usize];
        }
        let prediction = modal_class(&parent);
        let leaf = |prediction| Node {
            was_split: false,
            feature: 0,
            split: 0.0,
            impurity_decrease: 0.0,
            left: None,
            right: None,
            leaf: true,
            prediction,
            depth,
        };
        if (rows.len() as f32) < self.params.min_weight_split()
            || self.params.max_depth().is_some_and(|max| depth >= max)
        {
            return leaf(prediction);
        }
        let Some((feature, split, score)) = self.best_split(&parent, &orders) else {
            return leaf(prediction);
        };
        let impurity_decrease = f64::from(self.impurity(&parent)) - f64::from(score);
        if impurity_decrease < self.params.min_impurity_decrease() {
            return leaf(prediction);
        }

        let (left_rows, right_rows) = {
            let mut goes_left = self.goes_left.borrow_mut();
            let (mut left, mut right) = (Vec::new(), Vec::new());
            for &row in &rows {
                let is_left = self.x[(row as usize, feature)] <= split;
                goes_left[row as usize] = is_left;
                if is_left { left.push(row) } else { right.push(row) }
            }
            (left, right)
        };
        let (left_orders, right_orders): (Vec<Vec<Entry>>, Vec<Vec<Entry>>) = {
            let goes_left = self.goes_left.borrow();
            orders
                .into_iter()
                .map(|order| {
                    let mut sides = (
                        Vec::with_capacity(left_rows.len()),
                        Vec::with_capacity(right_rows.len()),
                    );
                    for entry in order {
                        if goes_left[entry.row()] {
                            sides.0.push(entry)
                        } else {
                            sides.1.push(entry)
                        }
                    }
                    sides
                })
                .unzip()
        };
        let left = (!left_rows.is_empty()).then(|| Box::new(self.node(left_rows, left_orders, depth + 1)));
        let right =
            (!right_rows.is_empty()).then(|| Box::new(self.node(right_rows, right_orders, depth + 1)));
        Node {
            was_split: true,
            feature,
            split,
            impurity_decrease,
            leaf: left.is_none() || right.is_none(),
            left,
            right,
            prediction,
            depth,
        }
    }

    /// linfa's search: for each feature in turn, the node's rows move one by one, in sorted
    /// order, from the right side to the left; after each, unless the next value in the whole
    /// order is within 1e-5, a split halfway to it is scored. The first lowest score wins.
    fn best_split(&self, parent: &Frequencies, orders: &[Vec<Entry>]) -> Option<(usize, f64, f32)> {
        let total = parent[0] + parent[1];
        let min_leaf = self.params.min_weight_leaf();
        let mut best: Option<(usize, f64, f32)> = None;
        for (feature, order) in orders.iter().enumerate() {
            let mut right = *parent;
            let mut left: Frequencies = [0.0; 2];
            let (mut right_weight, mut left_weight) = (total, 0.0f32);
            for entry in order {
                if entry.is_last() {
                    break;
                }
                let (class, weight, value, next) = (entry.class(), entry.weight, entry.value, entry.next);
                right[class] -= weight;
                right_weight -= weight;
                left[class] += weight;
                left_weight += weight;
                if (value - next).abs() < 1e-5 || right_weight < min_leaf || left_weight < min_leaf {
                    continue;
                }
                let share = right_weight / total;
                let score = share * self.impurity(&right) + (1.0 - share) * self.impurity(&left);
                if best.is_none_or(|(_, _, lowest)| score < lowest) {
                    best = Some((feature, (value + next) / 2.0, score));
                }
            }
        }
        best
    }

    fn impurity(&self, frequencies: &Frequencies) -> f32 {
        let total = frequencies[0] + frequencies[1];
        assert!(total > 0.0);
        match self.params.split_quality() {
            SplitQuality::Gini => 1.0 - frequencies.iter().map(|f| f / total).map(|p| p * p).sum::<f32>(),
            SplitQuality::Entropy => frequencies
                .iter()
                .map(|f| f / total)
                .map(|p| if p > 0.0 { -p * p.log2() } else { 0.0 })
                .sum(),
        }
    }
}

/// The class with the larger weight. (linfa breaks an exact tie by `HashMap` order, which
/// changes from process to process; churn's row weights keep ties away.)
fn modal_class(frequencies: &Frequencies) -> bool {
    frequencies[1] >= frequencies[0]
}

impl Node {
    /// linfa's pruning: a node whose two sides both end in leaves of one prediction becomes a
    /// leaf of it. Returns the prediction of a subtree that is one leaf.
    fn prune(&mut self) -> Option<bool> {
        if self.leaf {
            return Some(self.prediction);
        }
        let left = self.left.as_mut().and_then(|n| n.prune());
        let right = self.right.as_mut().and_then(|n| n.prune());
        match (left, right) {
            (Some(l), Some(r)) if l == r => {
                self.prediction = l;
                self.left = None;
                self.right = None;
                self.leaf = true;
                Some(l)
            }
            _ => None,
        }
    }

    /// linfa-trees' serde form of a `TreeNode<f64, bool>`.
    fn to_json(&self) -> Value {
        let child = |node: &Option<Box<Node>>| node.as_ref().map_or(Value::Null, |n| n.to_json());
        let name = if self.was_split {
            format!("feature-{}", self.feature)
        } else {
            String::new()
        };
        json!({
            "feature_idx": self.feature,
            "feature_name": name,
            "split_value": self.split,
            "impurity_decrease": self.impurity_decrease,
            "left_child": child(&self.left),
            "right_child": child(&self.right),
            "leaf_node": self.leaf,
            "prediction": self.prediction,
            "depth": self.depth,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use linfa::prelude::*;
    use ndarray::{Array1, Array2};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Rows whose label depends on two of the features, with noise, values rounded so that
    /// many tie, and churn's tie-free weights.
    fn data(rows: usize, features: usize, seed: u64) -> (Array2<f64>, Vec<bool>, Vec<f32>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let x = Array2::from_shape_fn((rows, features), |(_, f)| {
            let v: f64 = rng.random_range(-2.0..2.0);
            if f % 2 == 0 { (v * 4.0).round() / 4.0 } else { v }
        });
        let labels: Vec<bool> = x
            .rows()
            .into_iter()
            .map(|r| r[0] + 0.5 * r[1] * r[1] + rng.random_range(-0.8..0.8) > 0.3)
            .collect();
        let weights = labels
            .iter()
            .map(|&c| if c { 1.0 + 1.0 / 1024.0 } else { 1.0 })
            .collect();
        (x, labels, weights)
    }

    fn linfa_fit(
        params: &DecisionTreeValidParams<f64, bool>,
        x: &Array2<f64>,
        labels: &[bool],
        weights: &[f32],
    ) -> DecisionTree<f64, bool> {
        let dataset = Dataset::new(x.clone(), Array1::from(labels.to_vec()))
            .with_weights(Array1::from(weights.to_vec()));
        params.fit(&dataset).unwrap()
    }

    #[test]
    fn the_tree_is_linfas_node_for_node() {
        let cases = [
            (
                DecisionTree::params()
                    .max_depth(Some(8))
                    .min_weight_leaf(20.0)
                    .min_weight_split(40.0),
                3_000,
                6,
                1,
            ),
            (
                DecisionTree::params()
                    .max_depth(Some(4))
                    .min_weight_leaf(5.0)
                    .min_weight_split(10.0),
                800,
                4,
                2,
            ),
            (DecisionTree::params().max_depth(None), 400, 3, 3),
            (
                DecisionTree::params()
                    .max_depth(Some(6))
                    .split_quality(SplitQuality::Entropy),
                1_500,
                5,
                4,
            ),
        ];
        for (params, rows, features, seed) in cases {
            let params = params.check().unwrap();
            let (x, labels, weights) = data(rows, features, seed);
            let theirs = serde_json::to_value(linfa_fit(&params, &x, &labels, &weights)).unwrap();
            let ours = serde_json::to_value(fit(&params, x.view(), &labels, &weights)).unwrap();
            assert!(
                theirs["root_node"]["left_child"].is_object(),
                "case {seed} grew no tree"
            );
            assert_eq!(ours, theirs, "case {seed}");
        }
    }

    /// Bagged trees fit bootstraps, where rows repeat.
    #[test]
    fn repeated_rows_give_linfas_tree_too() {
        let params = DecisionTree::params()
            .max_depth(Some(8))
            .min_weight_leaf(20.0)
            .min_weight_split(40.0)
            .check()
            .unwrap();
        let (x, labels, weights) = data(1_000, 5, 7);
        let picked: Vec<usize> = (0..1_400).map(|i| (i * 7919) % 1_000).collect();
        let x = x.select(ndarray::Axis(0), &picked);
        let labels: Vec<bool> = picked.iter().map(|&i| labels[i]).collect();
        let weights: Vec<f32> = picked.iter().map(|&i| weights[i]).collect();
        let theirs = serde_json::to_value(linfa_fit(&params, &x, &labels, &weights)).unwrap();
        let ours = serde_json::to_value(fit(&params, x.view(), &labels, &weights)).unwrap();
        assert_eq!(ours, theirs);
    }
}
