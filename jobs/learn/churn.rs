//! The churn job: who among the recently active customers will stop buying.
//!
//! Label: a customer with a purchase in the `active_days` before a cut-off C churns when they
//! make no purchase in the `horizon_days` (H) after C. Time decides every split, never chance:
//! the candidates train on features as of C1 = D - 2H with labels from (C1, C1 + H], and are
//! compared on features as of C2 = D - H with labels from (C2, D]. Features as of a cut-off
//! come from the same SQL model as the published ones, run in a session that sees nothing
//! after the cut-off.
//!
//! Candidates: logistic regression (the baseline), one decision tree, and bagged trees
//! (bootstrap rows, a random subset of the features per tree). Trees give probabilities as the
//! smoothed churn rate of the training rows in each leaf, averaged over the ensemble. The one
//! with the best validation ROC AUC is retrained on the latest labelled window (C2) and scores
//! every customer active in the `active_days` before D, streamed batch by batch.
//!
//! Where no window can be trained on (a history shorter than the two windows, or a window with
//! one class), the stage does not fail: BG/NBD, which needs no labels, is fitted on every
//! buyer's features as of the run date, and a customer's churn probability is their chance of
//! no purchase in the horizon ([`NoPurchase`]); the model card says why, and there are no
//! validation figures.
//!
//! The model is saved as JSON (version, features, encoder, scaler, parameters, metrics) beside
//! a model card, so `score` can score from it without retraining.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{Days, NaiveDate};
use datafusion::arrow::array::{Array, Float64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::prelude::SessionContext;
use futures::TryStreamExt;
use linfa::prelude::*;
use linfa_logistic::LogisticRegression;
use linfa_preprocessing::linear_scaling::LinearScaler;
use linfa_trees::{DecisionTree, TreeNode};
use ndarray::{Array1, Array2, ArrayView1, ArrayView2, Axis, ShapeBuilder};
use object_store::ObjectStoreExt;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::config::{ChurnCandidate, ChurnConfig, Config};
use crate::error::{Error, Result};
use crate::learn::bg_nbd::{BgNbd, Histories, History};
use crate::learn::clv;
use crate::learn::evaluation::{self, CalibrationBin, Decile};
use crate::learn::features::{self, AsOf, CATEGORICAL, Encoder, NUMERIC, PURCHASES, numeric_column};
use crate::learn::model_metrics::{self, MetricRow};
use crate::learn::outputs::{self, StageDraft};
use crate::learn::tree;
use crate::output::described;
use crate::output::manifest::StageReport;
use crate::output::publish::{Draft, DraftTable};
use crate::output::published::{self, PART_FILE};
use crate::storage::Root;

pub(crate) const JOB: &str = "churn";
/// How many features `top_churn_drivers` names.
const DRIVERS: usize = 3;

/// A decision tree with the churn rate of the training rows in each of its leaves.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LeafTree {
    tree: DecisionTree<f64, bool>,
    /// The matrix columns the tree reads (all of them for a single tree).
    columns: Vec<usize>,
    /// Leaf (path code: 1 at the root, then 2c left, 2c + 1 right) and its smoothed churn
    /// rate, sorted by code.
    leaves: Vec<(u64, f64)>,
}

impl LeafTree {
    /// Routes the training rows to the leaves and records each leaf's churn rate, smoothed
    /// as (churners + 1) / (rows + 2) so no leaf says 0 or 1 outright.
    fn new(tree: DecisionTree<f64, bool>, columns: Vec<usize>, x: &Array2<f64>, churned: &[bool]) -> Self {
        let mut counts: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
        for (row, &c) in x.axis_iter(Axis(0)).zip(churned) {
            let entry = counts
                .entry(leaf_code(tree.root_node(), |f| row[columns[f]]))
                .or_default();
            entry.0 += u64::from(c);
            entry.1 += 1;
        }
        let leaves = counts
            .into_iter()
            .map(|(leaf, (churners, rows))| (leaf, (churners as f64 + 1.0) / (rows as f64 + 2.0)))
            .collect();
        LeafTree {
            tree,
            columns,
            leaves,
        }
    }

    fn probability(&self, row: ArrayView1<f64>) -> f64 {
        let leaf = leaf_code(self.tree.root_node(), |f| row[self.columns[f]]);
        // A leaf no training row reached: no evidence either way.
        self.leaves
            .binary_search_by_key(&leaf, |(code, _)| *code)
            .map(|i| self.leaves[i].1)
            .unwrap_or(0.5)
    }
}

/// The path code of the leaf a row falls in (linfa goes left when `x[feature] < split`);
/// `value(f)` is the row's value of the tree's feature `f`.
fn leaf_code(root: &TreeNode<f64, bool>, value: impl Fn(usize) -> f64) -> u64 {
    let mut node = root;
    let mut code = 1u64;
    while !node.is_leaf() {
        let (feature, split, _) = node.split();
        let right = value(feature) >= split;
        match node.children()[usize::from(right)] {
            Some(child) => {
                node = child;
                code = code * 2 + u64::from(right);
            }
            None => break,
        }
    }
    code
}

/// A logistic regression whose probability is always P(churn).
///
/// linfa's fit calls "positive" the class with more rows (the first seen on a tie), and its
/// probability is that class's: P(churn) only where churners are the majority. The fit is
/// therefore oriented here, once, from the fitted class labels: where linfa's positive class
/// is "stays", the intercept and coefficients change sign, since 1 - s(z) = s(-z).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Logit {
    pub intercept: f64,
    /// One per matrix column, in the model's feature order; positive pushes toward churn.
    pub coefficients: Array1<f64>,
}

impl Logit {
    fn fit(x: &Array2<f64>, churned: &[bool], config: &ChurnConfig) -> Result<Self> {
        // Column-major: every gradient walks the matrix column by column (linfa's `x.t().dot`),
        // which in row-major order reads the whole matrix once per column.
        let mut by_column = Array2::zeros(x.raw_dim().f());
        by_column.assign(x);
        let fitted = LogisticRegression::default()
            .alpha(config.logistic_alpha)
            .max_iterations(200)
            .fit(&Dataset::new(by_column, Array1::from(churned.to_vec())))
            .map_err(|e| Error::CannotTrain {
                job: JOB.into(),
                reason: format!("{}: {e}", ChurnCandidate::LogisticRegression.name()),
            })?;
        let sign = if fitted.labels().pos.class { 1.0 } else { -1.0 };
        Ok(Logit {
            intercept: sign * fitted.intercept(),
            coefficients: fitted.params().mapv(|w| sign * w),
        })
    }

    /// P(churn) of standardized rows (the logistic function as linfa writes it).
    fn probabilities(&self, x: &Array2<f64>) -> Vec<f64> {
        (x.dot(&self.coefficients) + self.intercept)
            .iter()
            .map(|z| 1.0 / (1.0 + (-z).exp()))
            .collect()
    }
}

/// The churn model where no labelled window can be trained on: BG/NBD fitted on every buyer's
/// features as of the run date, a customer's churn probability their chance of no purchase in
/// the horizon. Purchases are counted as `frequency` counts them (completed orders), the times
/// are those from the first and the latest purchase to the end of the run date.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NoPurchase {
    pub bg_nbd: BgNbd,
    /// Days in BG/NBD's time unit (`clv.time_unit`).
    pub unit_days: f64,
    pub horizon_days: u32,
    /// Why no classifier was trained.
    pub reason: String,
}

/// The feature columns [`NoPurchase`] reads.
const PURCHASE_HISTORY: [&str; 3] = ["frequency", "recency_days", "tenure_days"];

impl NoPurchase {
    /// The BG/NBD histories of a batch of `customer_features`, in the model's time unit.
    fn histories(batch: &RecordBatch, unit_days: f64) -> Result<Vec<History>> {
        let [frequency, recency, tenure] = PURCHASE_HISTORY.map(|c| numeric_column(batch, c));
        let (frequency, recency, tenure) = (frequency?, recency?, tenure?);
        Ok((0..batch.num_rows())
            .map(|row| {
                let purchases = frequency[row].unwrap_or(1.0).max(1.0);
                let (recency, tenure) = (recency[row].unwrap_or(0.0), tenure[row].unwrap_or(0.0));
                History {
                    x: purchases as u32 - 1,
                    t_x: (tenure - recency).max(0.0) / unit_days,
                    t: tenure / unit_days,
                }
            })
            .collect())
    }

    /// Fits BG/NBD on every customer of the published features of the run date.
    async fn fit(output: &Root, run_date: NaiveDate, config: &Config, reason: String) -> Result<Self> {
        let unit_days = config.clv.time_unit.days();
        let mut histories = Histories::default();
        let mut stream = features::read_published(output, run_date).await?;
        while let Some(batch) = stream
            .try_next()
            .await
            .map_err(Error::engine("reading customer_features"))?
        {
            Self::histories(&batch, unit_days)?
                .into_iter()
                .for_each(|h| histories.add(h));
        }
        let (bg_nbd, _) =
            BgNbd::fit(&histories, &clv::fit_bounds(&config.clv)).map_err(|e| Error::CannotTrain {
                job: JOB.into(),
                reason: format!("{reason}; the fallback, BG/NBD on every buyer's purchases, failed too: {e}"),
            })?;
        Ok(NoPurchase {
            bg_nbd,
            unit_days,
            horizon_days: config.churn.horizon_days,
            reason,
        })
    }

    fn probabilities(&self, batch: &RecordBatch) -> Result<Vec<f64>> {
        let horizon = f64::from(self.horizon_days) / self.unit_days;
        Ok(Self::histories(batch, self.unit_days)?
            .into_iter()
            .map(|h| self.bg_nbd.p_no_purchase(h, horizon))
            .collect())
    }
}

/// A fitted candidate, or the fallback without labels.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Classifier {
    LogisticRegression { model: Logit },
    DecisionTree { tree: LeafTree },
    BaggedTrees { trees: Vec<LeafTree> },
    BgNbdNoPurchase { model: NoPurchase },
}

impl Classifier {
    pub fn name(&self) -> &'static str {
        match self {
            Classifier::LogisticRegression { .. } => ChurnCandidate::LogisticRegression.name(),
            Classifier::DecisionTree { .. } => ChurnCandidate::DecisionTree.name(),
            Classifier::BaggedTrees { .. } => ChurnCandidate::BaggedTrees.name(),
            Classifier::BgNbdNoPurchase { .. } => "bg_nbd_no_purchase",
        }
    }

    /// Churn probabilities of standardized rows; the fallback reads the features themselves
    /// ([`ChurnModel::probabilities`] asks it), not a matrix, so none here.
    fn probabilities(&self, x: &Array2<f64>) -> Vec<f64> {
        match self {
            Classifier::LogisticRegression { model } => model.probabilities(x),
            Classifier::DecisionTree { tree } => per_row(x, |row| tree.probability(row)),
            Classifier::BaggedTrees { trees } => per_row(x, |row| {
                trees.iter().map(|t| t.probability(row)).sum::<f64>() / trees.len() as f64
            }),
            Classifier::BgNbdNoPurchase { .. } => Vec::new(),
        }
    }
}

/// `f` of every row, in order, computed on every core (the trees score 100,000 training rows
/// and every active customer).
fn per_row(x: &Array2<f64>, f: impl Fn(ArrayView1<f64>) -> f64 + Sync) -> Vec<f64> {
    (0..x.nrows()).into_par_iter().map(|i| f(x.row(i))).collect()
}

/// Everything needed to score: saved as `model.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ChurnModel {
    /// The growth-jobs version that trained it.
    pub version: String,
    /// The run date it was trained for, and the cut-off of the window it was trained on.
    pub run_date: NaiveDate,
    pub trained_cutoff: NaiveDate,
    pub horizon_days: u32,
    pub active_days: u32,
    /// The matrix columns, in order (the fallback's: the feature columns it reads).
    pub features: Vec<String>,
    /// The encoder and scaler of the matrix; the fallback has none.
    #[serde(default)]
    pub encoder: Option<Encoder>,
    #[serde(default)]
    pub scaler: Option<LinearScaler<f64>>,
    pub classifier: Classifier,
    /// The accuracy-maximising threshold on the training window.
    pub threshold: f64,
    pub high_risk: f64,
    pub medium_risk: f64,
    /// The validation figures of the chosen candidate; the fallback has none.
    #[serde(default)]
    pub metrics: Option<Metrics>,
}

impl ChurnModel {
    /// Churn probabilities for a batch of `customer_features`, with the standardized matrix
    /// they came from (none for the fallback).
    pub(crate) fn probabilities(&self, batch: &RecordBatch) -> Result<(Option<Array2<f64>>, Vec<f64>)> {
        if let Classifier::BgNbdNoPurchase { model } = &self.classifier {
            return Ok((None, model.probabilities(batch)?));
        }
        let (Some(encoder), Some(scaler)) = (&self.encoder, &self.scaler) else {
            return Err(Error::CannotTrain {
                job: JOB.into(),
                reason: format!(
                    "the saved {} model has no encoder or scaler",
                    self.classifier.name()
                ),
            });
        };
        let x = scaler.transform(encoder.encode(batch)?);
        let p = self.classifier.probabilities(&x);
        Ok((Some(x), p))
    }

    /// The risk tier of a probability (docs/methods/models.md: Churn prediction).
    pub(crate) fn tier(&self, probability: f64) -> &'static str {
        if probability >= self.high_risk {
            "high"
        } else if probability >= self.medium_risk {
            "medium"
        } else {
            "low"
        }
    }

    /// For the logistic model: the features pushing a customer's score up most (coefficient x
    /// standardized value, largest positive first).
    fn drivers(&self, row: ArrayView1<f64>) -> Option<String> {
        let Classifier::LogisticRegression { model } = &self.classifier else {
            return None;
        };
        let mut pushes: Vec<(f64, usize)> = model
            .coefficients
            .iter()
            .zip(row)
            .enumerate()
            .map(|(i, (w, x))| (w * x, i))
            .filter(|(push, _)| *push > 0.0)
            .collect();
        pushes.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        Some(
            pushes
                .iter()
                .take(DRIVERS)
                .map(|(_, i)| self.features[*i].as_str())
                .collect::<Vec<_>>()
                .join(", "),
        )
    }

    /// The fallback's parameters as `model_metrics` rows (none for a trained classifier).
    fn fallback_rows(&self) -> Vec<MetricRow> {
        let Classifier::BgNbdNoPurchase { model } = &self.classifier else {
            return Vec::new();
        };
        let BgNbd { r, alpha, a, b } = model.bg_nbd;
        [("r", r), ("alpha", alpha), ("a", a), ("b", b)]
            .into_iter()
            .map(|(metric, value)| {
                let mut row = MetricRow::new(JOB, self.classifier.name(), "fitting", metric, value);
                row.chosen = true;
                row
            })
            .collect()
    }

    /// The `churn_scores` rows of a batch of features.
    pub(crate) fn score_batch(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        let (x, p) = self.probabilities(batch)?;
        let drivers: Vec<Option<String>> = match &x {
            Some(x) => x.axis_iter(Axis(0)).map(|row| self.drivers(row)).collect(),
            None => vec![None; p.len()],
        };
        RecordBatch::try_new(
            scores_schema(),
            vec![
                Arc::new(features::customer_ids(batch)?.clone()),
                Arc::new(Float64Array::from(p.clone())),
                Arc::new(StringArray::from_iter_values(p.iter().map(|&p| self.tier(p)))),
                Arc::new(StringArray::from_iter(drivers)),
                Arc::new(StringArray::from_iter_values(std::iter::repeat_n(
                    self.classifier.name(),
                    p.len(),
                ))),
            ],
        )
        .map_err(Error::arrow("building churn_scores"))
    }
}

/// The table of the churn scores.
pub(crate) const SCORES: &str = "churn_scores";

/// The published schema of `churn_scores`, with its descriptions.
pub fn scores_schema() -> SchemaRef {
    described::schema(
        "Every customer with a purchase in the 180 days before the run date, scored by the churn \
         model the churn stage trained and chose that night.",
        vec![
            described::field("customer_id", DataType::Utf8, false, "The customer."),
            described::field(
                "churn_probability",
                DataType::Float64,
                false,
                "P(no purchase in the horizon, 90 days, after the run date), from 0 to 1.",
            ),
            described::field(
                "risk_tier",
                DataType::Utf8,
                false,
                "high (probability at or above [churn] high_risk, 0.6), medium (at or above \
                 medium_risk, 0.3) or low.",
            ),
            described::field(
                "top_churn_drivers",
                DataType::Utf8,
                true,
                "The logistic model's three features pushing this customer's score up most \
                 (coefficient x standardized value), comma-separated; null for tree models.",
            ),
            described::field(
                "model",
                DataType::Utf8,
                false,
                "The model that scored: logistic_regression, decision_tree, bagged_trees, or \
                 bg_nbd_no_purchase before there are labels.",
            ),
        ],
    )
}

/// A model's figures on one labelled window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub customers: usize,
    pub base_rate: f64,
    pub roc_auc: f64,
    pub pr_auc: f64,
    pub log_loss: f64,
    pub brier: f64,
    pub threshold: f64,
    pub accuracy: f64,
    /// Accuracy of always predicting the majority class.
    pub majority_accuracy: f64,
    pub top_decile_lift: f64,
    pub top_decile_capture: f64,
    pub calibration: Vec<CalibrationBin>,
    /// Absent from model files saved before it existed.
    #[serde(default)]
    pub deciles: Vec<Decile>,
}

impl Metrics {
    pub fn measure(probability: &[f64], churned: &[bool], threshold: f64) -> Self {
        let base_rate = evaluation::base_rate(churned);
        let (top_decile_lift, top_decile_capture) = evaluation::top_decile(probability, churned);
        Metrics {
            customers: churned.len(),
            base_rate,
            roc_auc: evaluation::roc_auc(probability, churned),
            pr_auc: evaluation::pr_auc(probability, churned),
            log_loss: evaluation::log_loss(probability, churned),
            brier: evaluation::brier(probability, churned),
            threshold,
            accuracy: evaluation::accuracy(probability, churned, threshold),
            majority_accuracy: base_rate.max(1.0 - base_rate),
            top_decile_lift,
            top_decile_capture,
            calibration: evaluation::calibration(probability, churned),
            deciles: evaluation::deciles(probability, churned),
        }
    }

    fn rows(&self, model: &str, evaluated_on: &str, chosen: bool) -> Vec<MetricRow> {
        let mut rows: Vec<MetricRow> = [
            ("customers", self.customers as f64),
            ("base_rate", self.base_rate),
            ("roc_auc", self.roc_auc),
            ("pr_auc", self.pr_auc),
            ("log_loss", self.log_loss),
            ("brier", self.brier),
            ("threshold", self.threshold),
            ("accuracy", self.accuracy),
            ("majority_accuracy", self.majority_accuracy),
            ("top_decile_lift", self.top_decile_lift),
            ("top_decile_capture", self.top_decile_capture),
        ]
        .into_iter()
        .map(|(metric, value)| MetricRow::new(JOB, model, evaluated_on, metric, value))
        .collect();
        for bin in &self.calibration {
            let parameter = format!("{:.1}-{:.1}", bin.lower, bin.upper);
            for (metric, value) in [
                ("calibration_customers", bin.customers as f64),
                ("calibration_mean_probability", bin.mean_probability),
                ("calibration_observed_churn_rate", bin.observed_churn_rate),
            ] {
                rows.push(
                    MetricRow::new(JOB, model, evaluated_on, metric, value).with_parameter(parameter.clone()),
                );
            }
        }
        for decile in &self.deciles {
            let parameter = format!("{:.1}", decile.share);
            for (metric, value) in [
                ("roc_false_positive_rate", decile.false_positive_rate),
                ("roc_true_positive_rate", decile.true_positive_rate),
                ("cumulative_lift", decile.cumulative_lift),
            ] {
                rows.push(
                    MetricRow::new(JOB, model, evaluated_on, metric, value).with_parameter(parameter.clone()),
                );
            }
        }
        for row in &mut rows {
            row.chosen = chosen;
        }
        rows
    }
}

/// A labelled window: sampled customers' features as of the cut-off and whether they churned.
pub struct Window {
    pub cutoff: NaiveDate,
    pub features: RecordBatch,
    pub churned: Vec<bool>,
}

impl Window {
    /// Its cut-off, customers and churn rate, for the model card.
    fn figures(&self) -> (NaiveDate, usize, f64) {
        (
            self.cutoff,
            self.churned.len(),
            evaluation::base_rate(&self.churned),
        )
    }
}

/// Builds a labelled window: features as of `cutoff` for a seeded sample of the customers
/// active in the `active_days` before it, labelled from purchases in the `horizon_days` after.
///
/// `later` is a session at or after `cutoff + horizon_days` (the run date's), built first.
pub async fn window(
    as_of: &AsOf,
    later: &SessionContext,
    cutoff: NaiveDate,
    config: &ChurnConfig,
) -> Result<Window> {
    let sampling = features::Sampling {
        seed: config.seed,
        size: config.sample_size,
        active_days: config.active_days,
    };
    let (session, active) = as_of.sampled_session(cutoff, &sampling).await?;
    let active_days = f64::from(config.active_days);
    let sampled = features::collect_rows(AsOf::features(&session, cutoff).await?, |batch| {
        features::active_within(batch, active_days)
    })
    .await?;

    // Who bought in (cutoff, cutoff + H], in days of each purchase's market (as the cut-off's
    // features end at the end of the cut-off day in each market): seen from the run date, which
    // is at or after cutoff + H.
    let horizon_end = cutoff + chrono::Days::new(u64::from(config.horizon_days));
    let ids = features::customer_ids(&sampled)?;
    let mut index: HashMap<&str, usize> = HashMap::with_capacity(ids.len());
    for (row, id) in ids.iter().enumerate() {
        index.insert(id.unwrap_or_default(), row);
    }
    let mut churned = vec![true; ids.len()];
    let mut stream = later
        .sql(&format!(
            "select distinct customer_id from {PURCHASES} \
             where order_date > date '{cutoff}' and order_date <= date '{horizon_end}'"
        ))
        .await
        .map_err(Error::engine("finding purchases after the cut-off"))?
        .execute_stream()
        .await
        .map_err(Error::engine("finding purchases after the cut-off"))?;
    while let Some(batch) = stream
        .try_next()
        .await
        .map_err(Error::engine("finding purchases after the cut-off"))?
    {
        for id in features::customer_ids(&batch)?.iter().flatten() {
            if let Some(&row) = index.get(id) {
                churned[row] = false;
            }
        }
    }
    tracing::info!(%cutoff, active, sampled = churned.len(), churn_rate = format!("{:.3}", evaluation::base_rate(&churned)), "labelled window");
    Ok(Window {
        cutoff,
        features: sampled,
        churned,
    })
}

fn check_trainable(window: &Window, config: &ChurnConfig, role: &str) -> Result<()> {
    let churners = window.churned.iter().filter(|&&c| c).count();
    let customers = window.churned.len();
    let reason = if customers < config.min_customers {
        Some(format!(
            "{customers} active customers in the {role} window (cut-off {}), fewer than min_customers = {}",
            window.cutoff, config.min_customers
        ))
    } else if churners == 0 || churners == customers {
        Some(format!(
            "the {role} window (cut-off {}) has one class only: {churners} of {customers} customers churned",
            window.cutoff
        ))
    } else {
        None
    };
    match reason {
        Some(reason) => Err(Error::CannotTrain {
            job: JOB.into(),
            reason,
        }),
        None => Ok(()),
    }
}

/// Row weights for the trees: churners weigh 1 + 2^-10. linfa-trees breaks a tie between
/// two equally weighted classes by `HashMap` order, which changes from process to process,
/// and then prunes on the result; with these weights no node can tie, so the same data gives
/// the same tree in every run.
fn tie_free_weights(churned: &[bool]) -> Vec<f32> {
    churned
        .iter()
        .map(|&c| if c { 1.0 + 1.0 / 1024.0 } else { 1.0 })
        .collect()
}

fn tree_params(config: &ChurnConfig) -> linfa_trees::DecisionTreeParams<f64, bool> {
    DecisionTree::params()
        .max_depth(Some(config.tree_max_depth))
        .min_weight_leaf(20.0)
        .min_weight_split(40.0)
}

/// linfa's tree for these rows, fitted by [`tree::fit`] (the same tree, far sooner).
fn fit_tree(x: ArrayView2<f64>, churned: &[bool], config: &ChurnConfig) -> Result<DecisionTree<f64, bool>> {
    let params = tree_params(config).check().map_err(|e| Error::CannotTrain {
        job: JOB.into(),
        reason: format!("decision tree: {e}"),
    })?;
    Ok(tree::fit(&params, x, churned, &tie_free_weights(churned)))
}

/// Bagged trees: each tree sees a bootstrap of 70% of the rows and 70% of the features (drawn
/// without replacement), from a seeded generator. linfa-ensemble's bagging drops row weights,
/// which the trees need to be deterministic (see [`tie_free_weights`]), so the draw is here.
/// Every draw is made first, in order, so the trees are the same however many cores fit them
/// (on every core, collected back in draw order).
fn fit_bagged_trees(x: &Array2<f64>, churned: &[bool], config: &ChurnConfig) -> Result<Vec<LeafTree>> {
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let (rows, columns) = x.dim();
    let draw = (rows as f64 * 0.7).ceil() as usize;
    let keep = ((columns as f64 * 0.7).ceil() as usize).max(1);
    let draws: Vec<(Vec<usize>, Vec<usize>)> = (0..config.forest_trees)
        .map(|_| {
            let picked: Vec<usize> = (0..draw).map(|_| rng.random_range(0..rows)).collect();
            let mut features = rand::seq::index::sample(&mut rng, columns, keep).into_vec();
            features.sort_unstable();
            (picked, features)
        })
        .collect();
    let fit = |(picked, features): &(Vec<usize>, Vec<usize>)| -> Result<LeafTree> {
        let sub = Array2::from_shape_fn((picked.len(), features.len()), |(r, c)| {
            x[(picked[r], features[c])]
        });
        let labels: Vec<bool> = picked.iter().map(|&i| churned[i]).collect();
        let tree = fit_tree(sub.view(), &labels, config)?;
        Ok(LeafTree::new(tree, features.clone(), x, churned))
    };
    draws.par_iter().map(fit).collect()
}

/// Fits one candidate on standardized rows and checks that it ranks its own training rows
/// better than chance: a model read backwards (P(stay) taken for P(churn)) fails here, not
/// silently in the selection.
fn fit_candidate(
    kind: ChurnCandidate,
    x: &Array2<f64>,
    churned: &[bool],
    config: &ChurnConfig,
    window: &str,
) -> Result<(Classifier, Vec<f64>)> {
    let classifier = match kind {
        ChurnCandidate::LogisticRegression => Classifier::LogisticRegression {
            model: Logit::fit(x, churned, config)?,
        },
        ChurnCandidate::DecisionTree => Classifier::DecisionTree {
            tree: LeafTree::new(
                fit_tree(x.view(), churned, config)?,
                (0..x.ncols()).collect(),
                x,
                churned,
            ),
        },
        ChurnCandidate::BaggedTrees => Classifier::BaggedTrees {
            trees: fit_bagged_trees(x, churned, config)?,
        },
    };
    let on_training = classifier.probabilities(x);
    better_than_chance(kind, window, &on_training, churned)?;
    Ok((classifier, on_training))
}

/// A candidate must rank its own training rows better than chance (ROC AUC above 0.5).
fn better_than_chance(
    kind: ChurnCandidate,
    window: &str,
    probability: &[f64],
    churned: &[bool],
) -> Result<()> {
    let roc_auc = evaluation::roc_auc(probability, churned);
    if roc_auc > 0.5 {
        return Ok(());
    }
    Err(Error::InvertedModel {
        job: JOB.into(),
        candidate: kind.name().into(),
        window: window.into(),
        roc_auc,
    })
}

/// A trained and compared set of candidates.
pub struct Trained {
    pub model: ChurnModel,
    /// Every candidate's training and validation figures.
    pub candidates: Vec<(String, Metrics, Metrics)>,
    pub training: (NaiveDate, usize, f64),
    pub validation: (NaiveDate, usize, f64),
}

/// Trains every candidate on the training window, picks by validation ROC AUC, and refits the
/// winner on the validation window (the latest labelled data).
pub fn train(
    training: &Window,
    validation: &Window,
    run_date: NaiveDate,
    config: &ChurnConfig,
) -> Result<Trained> {
    check_trainable(training, config, "training")?;
    check_trainable(validation, config, "validation")?;
    let numeric: Vec<&str> = NUMERIC.iter().map(|(c, _)| *c).collect();
    let prepare = |window: &Window| -> Result<(Encoder, LinearScaler<f64>, Array2<f64>)> {
        let encoder = Encoder::fit(&window.features, &numeric, CATEGORICAL, true)?;
        let raw = encoder.encode(&window.features)?;
        let scaler = LinearScaler::standard()
            .fit(&DatasetBase::from(raw.clone()))
            .map_err(|e| Error::CannotTrain {
                job: JOB.into(),
                reason: format!("standardizing: {e}"),
            })?;
        let x = scaler.transform(raw);
        Ok((encoder, scaler, x))
    };
    let (encoder, scaler, x_train) = prepare(training)?;
    let x_valid = scaler.transform(encoder.encode(&validation.features)?);
    let mut candidates = Vec::new();
    // The candidate with the best validation ROC AUC so far, and its validation figures.
    let mut best: Option<(ChurnCandidate, Metrics)> = None;
    for &kind in &config.candidates {
        let (classifier, on_training) = fit_candidate(kind, &x_train, &training.churned, config, "training")?;
        let threshold = evaluation::best_threshold(&on_training, &training.churned);
        let on_validation = classifier.probabilities(&x_valid);
        let train_metrics = Metrics::measure(&on_training, &training.churned, threshold);
        let valid_metrics = Metrics::measure(&on_validation, &validation.churned, threshold);
        tracing::info!(
            candidate = kind.name(),
            validation_roc_auc = format!("{:.4}", valid_metrics.roc_auc),
            "churn candidate"
        );
        if best
            .as_ref()
            .is_none_or(|(_, chosen)| valid_metrics.roc_auc > chosen.roc_auc)
        {
            best = Some((kind, valid_metrics.clone()));
        }
        candidates.push((kind.name().to_string(), train_metrics, valid_metrics));
    }
    let (kind, chosen_metrics) = best.expect("config checks that there are candidates");

    // The winner again, on the latest labelled window, with its own encoder, scaler, threshold.
    let (encoder, scaler, x_latest) = prepare(validation)?;
    let (classifier, on_latest) = fit_candidate(kind, &x_latest, &validation.churned, config, "validation")?;
    let threshold = evaluation::best_threshold(&on_latest, &validation.churned);
    let model = ChurnModel {
        version: env!("CARGO_PKG_VERSION").into(),
        run_date,
        trained_cutoff: validation.cutoff,
        horizon_days: config.horizon_days,
        active_days: config.active_days,
        features: encoder.names(),
        encoder: Some(encoder),
        scaler: Some(scaler),
        classifier,
        threshold,
        high_risk: config.high_risk,
        medium_risk: config.medium_risk,
        metrics: Some(chosen_metrics),
    };
    Ok(Trained {
        model,
        candidates,
        training: training.figures(),
        validation: validation.figures(),
    })
}

/// The fallback where no window can be trained on ([`NoPurchase`]), for `reason`.
async fn without_labels(
    output: &Root,
    run_date: NaiveDate,
    config: &Config,
    (training, validation): (&Window, &Window),
    reason: String,
) -> Result<Trained> {
    tracing::warn!(%reason, "no churn classifier can be trained: churn is BG/NBD's chance of no purchase in the horizon");
    let churn = &config.churn;
    let model = NoPurchase::fit(output, run_date, config, reason).await?;
    Ok(Trained {
        model: ChurnModel {
            version: env!("CARGO_PKG_VERSION").into(),
            run_date,
            trained_cutoff: run_date,
            horizon_days: churn.horizon_days,
            active_days: churn.active_days,
            features: PURCHASE_HISTORY.map(String::from).to_vec(),
            encoder: None,
            scaler: None,
            classifier: Classifier::BgNbdNoPurchase { model },
            threshold: 0.5,
            high_risk: churn.high_risk,
            medium_risk: churn.medium_risk,
            metrics: None,
        },
        candidates: Vec::new(),
        training: training.figures(),
        validation: validation.figures(),
    })
}

/// Scores every customer active in the `active_days` before the run date into `churn_scores`.
pub(crate) async fn score_all(
    model: &ChurnModel,
    output: &Root,
    run_date: NaiveDate,
    draft: &Draft,
) -> Result<DraftTable> {
    let mut writer = draft.writer(SCORES, PART_FILE, scores_schema())?;
    let mut stream = features::read_published(output, run_date).await?;
    let active_days = f64::from(model.active_days);
    while let Some(batch) = stream
        .try_next()
        .await
        .map_err(Error::engine("reading customer_features"))?
    {
        let active = features::filter_rows(&batch, features::active_within(&batch, active_days)?)?;
        if active.num_rows() > 0 {
            writer.write(&model.score_batch(&active)?).await?;
        }
    }
    writer.finish(draft).await
}

/// Runs the churn job for a run date: windows, candidates, the saved model and card, scores.
pub async fn run(
    as_of: &AsOf,
    output: &Root,
    run_date: NaiveDate,
    full_config: &Config,
) -> Result<StageReport> {
    let config = &full_config.churn;
    // Fail before the heavy work when the features to score are not there.
    features::require_published(output, run_date).await?;
    let horizon = Days::new(u64::from(config.horizon_days));
    let c2 = run_date - horizon;
    let c1 = c2 - horizon;
    let stage = StageDraft::begin(JOB, output, run_date);
    stage
        .run(async |draft: &Draft| {
            // The run date's session first: it labels both windows, and the cut-off sessions
            // reuse its row checks.
            let later = as_of.session(run_date).await?;
            let training = window(as_of, &later, c1, config).await?;
            let validation = window(as_of, &later, c2, config).await?;
            let trainable = check_trainable(&training, config, "training")
                .and_then(|()| check_trainable(&validation, config, "validation"));
            let trained = match trainable {
                Ok(()) => train(&training, &validation, run_date, config)?,
                Err(Error::CannotTrain { reason, .. }) => {
                    without_labels(output, run_date, full_config, (&training, &validation), reason).await?
                }
                Err(error) => return Err(error),
            };
            let scores = score_all(&trained.model, output, run_date, draft).await?;
            let card = model_card(&trained, config);
            let files = outputs::save_model(draft, JOB, run_date, &trained.model, &card).await?;
            let mut rows = trained.model.fallback_rows();
            for (name, on_training, on_validation) in &trained.candidates {
                let chosen = name == trained.model.classifier.name();
                rows.extend(on_training.rows(name, "training", chosen));
                rows.extend(on_validation.rows(name, "validation", chosen));
            }
            let metrics_table = draft
                .write_batch(
                    model_metrics::TABLE,
                    &model_metrics::part_file(JOB),
                    &model_metrics::batch(&rows)?,
                )
                .await?;
            let m = trained.model.metrics.as_ref();
            let summary = json!({
                "model": trained.model.classifier.name(),
                "validation_roc_auc": m.map(|m| m.roc_auc),
                "validation_accuracy": m.map(|m| m.accuracy),
                "validation_base_rate": m.map(|m| m.base_rate),
                "validation_majority_accuracy": m.map(|m| m.majority_accuracy),
                "validation_top_decile_lift": m.map(|m| m.top_decile_lift),
                "scored_customers": scores.rows,
            });
            Ok((vec![scores, metrics_table], files, summary))
        })
        .await
}

/// The model card: what the model is for, how it was trained and measured, and its limits.
pub fn model_card(trained: &Trained, config: &ChurnConfig) -> serde_json::Value {
    let model = &trained.model;
    json!({
        "model": "churn",
        "version": model.version,
        "run_date": model.run_date,
        "chosen": model.classifier.name(),
        "chosen_by": match &model.classifier {
            Classifier::BgNbdNoPurchase { model } => format!(
                "no labelled window could be trained on ({}): BG/NBD fitted on every buyer's purchases as of the run date needs no labels, and a customer's churn probability is their chance of no purchase in the {} days after it",
                model.reason, model.horizon_days
            ),
            _ => "validation ROC AUC".to_string(),
        },
        "label": format!(
            "a customer with a purchase in the {} days before the cut-off churns when they make no purchase in the {} days after it",
            config.active_days, config.horizon_days
        ),
        "training_window": {"cutoff": trained.training.0, "customers": trained.training.1, "churn_rate": trained.training.2},
        "validation_window": {"cutoff": trained.validation.0, "customers": trained.validation.1, "churn_rate": trained.validation.2},
        "refit_on": {"cutoff": model.trained_cutoff, "note": "the chosen candidate refitted on the validation window, the latest with known labels"},
        "validation_metrics": model.metrics,
        "candidates": trained.candidates.iter().map(|(name, t, v)| json!({
            "model": name, "training": {"roc_auc": t.roc_auc, "accuracy": t.accuracy},
            "validation": {"roc_auc": v.roc_auc, "pr_auc": v.pr_auc, "log_loss": v.log_loss, "brier": v.brier,
                           "accuracy": v.accuracy, "top_decile_lift": v.top_decile_lift},
        })).collect::<Vec<_>>(),
        "features": model.features,
        "risk_tiers": {"high": format!("probability >= {}", model.high_risk), "medium": format!("probability >= {}", model.medium_risk), "low": "otherwise"},
        "sampling": {"customers_per_window": config.sample_size, "seed": config.seed, "by": "SHA-256 of seed and customer_id"},
        "intended_use": "rank recently active customers for retention offers; not for decisions about individuals without review",
        "limits": [
            "accuracy is to be read next to the majority-class accuracy: with a churn rate far from 50% a high accuracy is easy",
            "trained on one window: a change in seasonality or in the product between the windows shifts the figures",
        ],
    })
}

/// Loads a saved model: from `path` when given, else the one saved for the run date.
pub async fn load(output: &Root, run_date: NaiveDate, path: Option<&std::path::Path>) -> Result<ChurnModel> {
    let (shown, bytes) = match path {
        Some(path) => (
            path.display().to_string(),
            std::fs::read(path).map_err(Error::io(format!("reading the churn model {}", path.display())))?,
        ),
        None => {
            let parts = published::model_parts(JOB, run_date, published::MODEL_FILE);
            let location = output.path(&parts.each_ref().map(String::as_str));
            let shown = output.describe(&location);
            let bytes = output
                .store
                .get(&location)
                .await
                .map_err(|_| Error::MissingStageInput {
                    stage: "score".into(),
                    location: shown.clone(),
                    hint: format!("run `churn --date {run_date}` (or `nightly`) first, or pass --model"),
                })?
                .bytes()
                .await
                .map_err(Error::store(format!("reading {shown}")))?;
            (shown, bytes.to_vec())
        }
    };
    serde_json::from_slice(&bytes).map_err(|e| Error::BadConfig {
        file: shown,
        reason: format!("not a churn model of this version: {e}"),
    })
}

/// The `score` job: scores the run date's features with a saved model, no training.
pub async fn score(
    output: &Root,
    run_date: NaiveDate,
    model_path: Option<&std::path::Path>,
) -> Result<StageReport> {
    let model = load(output, run_date, model_path).await?;
    features::require_published(output, run_date).await?;
    let stage = StageDraft::begin("score", output, run_date);
    stage
        .run(async |draft: &Draft| {
            let scores = score_all(&model, output, run_date, draft).await?;
            let summary = json!({"model": model.classifier.name(), "trained_for": model.run_date, "scored_customers": scores.rows});
            Ok((vec![scores], vec![], summary))
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{ArrayRef, BooleanArray};
    use datafusion::arrow::datatypes::{Field, Schema};
    use rand_distr::{Distribution, StandardNormal};

    /// A labelled window of `rows` customers whose churn follows a logistic model of six
    /// features (the others are noise), so logistic regression is the true model; `offset`
    /// sets the churn rate (negative: churners are the minority).
    fn planted_window(rows: usize, seed: u64, offset: f64) -> Window {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut columns: Vec<Vec<f64>> = vec![Vec::with_capacity(rows); NUMERIC.len()];
        let mut churned = Vec::with_capacity(rows);
        for _ in 0..rows {
            let mut z = offset;
            for (i, column) in columns.iter_mut().enumerate() {
                let value: f64 = StandardNormal.sample(&mut rng);
                // Non-negative values, so the log features see the same ranking.
                column.push(value + 5.0);
                if i < 6 {
                    z += 0.9 * value;
                }
            }
            churned.push(rng.random::<f64>() < 1.0 / (1.0 + (-z).exp()));
        }
        let mut fields = vec![Field::new("customer_id", DataType::Utf8, false)];
        let mut arrays: Vec<ArrayRef> = vec![Arc::new(StringArray::from_iter_values(
            (0..rows).map(|i| format!("c{seed}-{i}")),
        ))];
        for ((name, _), values) in NUMERIC.iter().zip(columns) {
            fields.push(Field::new(*name, DataType::Float64, false));
            arrays.push(Arc::new(Float64Array::from(values)));
        }
        for name in CATEGORICAL {
            fields.push(Field::new(*name, DataType::Utf8, false));
            arrays.push(Arc::new(StringArray::from_iter_values(
                (0..rows).map(|i| ["a", "b"][i % 2]),
            )));
        }
        fields.push(Field::new("is_member", DataType::Boolean, false));
        arrays.push(Arc::new(BooleanArray::from_iter(
            (0..rows).map(|i| Some(i % 3 == 0)),
        )));
        let features = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).unwrap();
        Window {
            cutoff: NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
            features,
            churned,
        }
    }

    /// The same window with its rows reordered: churners first, or stayers first.
    fn ordered(window: &Window, churners_first: bool) -> Window {
        let mut order: Vec<usize> = (0..window.churned.len()).collect();
        order.sort_by_key(|&i| window.churned[i] != churners_first);
        let indices =
            datafusion::arrow::array::UInt32Array::from_iter_values(order.iter().map(|&i| i as u32));
        Window {
            cutoff: window.cutoff,
            features: datafusion::arrow::compute::take_record_batch(&window.features, &indices).unwrap(),
            churned: order.iter().map(|&i| window.churned[i]).collect(),
        }
    }

    fn logistic_only() -> ChurnConfig {
        ChurnConfig {
            candidates: vec![ChurnCandidate::LogisticRegression],
            ..ChurnConfig::default()
        }
    }

    /// The window with just enough labels flipped that churners are exactly half: the tie
    /// where linfa calls the first row's class positive.
    fn balanced(window: Window) -> Window {
        let half = window.churned.len() / 2;
        let churners = window.churned.iter().filter(|&&c| c).count();
        let surplus = churners > half;
        let mut churned = window.churned;
        for label in churned
            .iter_mut()
            .filter(|c| **c == surplus)
            .take(churners.abs_diff(half))
        {
            *label = !surplus;
        }
        Window { churned, ..window }
    }

    #[test]
    fn logistic_probability_is_churn_whichever_class_is_larger_or_first() {
        let run_date = NaiveDate::from_ymd_opt(2026, 6, 30).unwrap();
        let scored = planted_window(500, 3, 0.0);
        let cases = [
            (
                "churners a minority",
                planted_window(2_000, 1, -2.0),
                planted_window(2_000, 2, -2.0),
            ),
            (
                "churners a majority",
                planted_window(2_000, 1, 2.0),
                planted_window(2_000, 2, 2.0),
            ),
            (
                "a tie",
                balanced(planted_window(2_000, 1, 0.0)),
                balanced(planted_window(2_000, 2, 0.0)),
            ),
        ];
        for (case, training, validation) in cases {
            let mut probabilities = Vec::new();
            for churners_first in [true, false] {
                let trained = train(
                    &ordered(&training, churners_first),
                    &ordered(&validation, churners_first),
                    run_date,
                    &logistic_only(),
                )
                .unwrap();
                let (_, on_training, on_validation) = &trained.candidates[0];
                assert!(
                    on_training.roc_auc > 0.75 && on_validation.roc_auc > 0.75,
                    "{case}: ROC AUC {} on training, {} on validation",
                    on_training.roc_auc,
                    on_validation.roc_auc
                );
                probabilities.push(trained.model.probabilities(&scored.features).unwrap().1);
            }
            let gap = probabilities[0]
                .iter()
                .zip(&probabilities[1])
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            assert!(gap < 1e-6, "{case}: the row order moved a probability by {gap}");
        }
    }

    /// The fit on a column-major copy is linfa's fit on the rows as given: only the order of
    /// the sums in its gradient differs, so the solver stops at the same optimum to ~1e-9.
    #[test]
    fn logistic_fit_on_columns_is_linfas_fit_on_rows() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let x: Array2<f64> = Array2::from_shape_fn((3_000, 6), |_| StandardNormal.sample(&mut rng));
        let churned: Vec<bool> = x
            .rows()
            .into_iter()
            .map(|row| {
                let z = row[0] - 0.5 * row[1] + 0.25 * row[4] - 0.3;
                rng.random::<f64>() < 1.0 / (1.0 + (-z).exp())
            })
            .collect();
        assert!(x.is_standard_layout(), "row-major, as the encoder writes it");
        let ours = Logit::fit(&x, &churned, &ChurnConfig::default()).unwrap();
        let theirs = LogisticRegression::default()
            .alpha(ChurnConfig::default().logistic_alpha)
            .max_iterations(200)
            .fit(&Dataset::new(x.clone(), Array1::from(churned.clone())))
            .unwrap();
        let sign = if theirs.labels().pos.class { 1.0 } else { -1.0 };
        let gap = ours
            .coefficients
            .iter()
            .zip(theirs.params().iter())
            .map(|(a, b)| (a - sign * b).abs())
            .fold((ours.intercept - sign * theirs.intercept()).abs(), f64::max);
        assert!(gap < 1e-6, "coefficients apart by {gap}: {ours:?}");
        assert!(
            ours.coefficients[0] > 0.5,
            "the planted driver pushes toward churn: {ours:?}"
        );
    }

    #[test]
    fn logistic_regression_wins_where_churn_is_linear_in_the_features() {
        let training = planted_window(3_000, 11, -1.0);
        let validation = planted_window(3_000, 12, -1.0);
        assert!(
            evaluation::base_rate(&training.churned) < 0.5,
            "churners are the minority here"
        );
        let trained = train(
            &training,
            &validation,
            NaiveDate::from_ymd_opt(2026, 6, 30).unwrap(),
            &ChurnConfig::default(),
        )
        .unwrap();
        let aucs: Vec<(String, f64)> = trained
            .candidates
            .iter()
            .map(|(name, _, v)| (name.clone(), v.roc_auc))
            .collect();
        assert_eq!(trained.model.classifier.name(), "logistic_regression", "{aucs:?}");
        assert!(trained.model.metrics.as_ref().unwrap().roc_auc > 0.75, "{aucs:?}");
        // Drivers come from the oriented coefficients: the six planted features push up.
        let Classifier::LogisticRegression { model } = &trained.model.classifier else {
            unreachable!("checked above")
        };
        let planted: Vec<f64> = model.coefficients.iter().take(6).copied().collect();
        assert!(planted.iter().all(|&w| w > 0.0), "{planted:?}");
    }

    #[test]
    fn a_candidate_ranking_backwards_is_refused_by_name() {
        let churned = [true, true, false, false];
        let backwards = [0.2, 0.1, 0.8, 0.9];
        let error =
            better_than_chance(ChurnCandidate::DecisionTree, "training", &backwards, &churned).unwrap_err();
        assert!(
            matches!(&error, Error::InvertedModel { candidate, roc_auc, .. } if candidate == "decision_tree" && *roc_auc < 0.5),
            "{error}"
        );
        assert_eq!(error.exit_code(), crate::error::exit_code::INTERNAL);
        // Chance is not better than chance, and no ranking at all (NaN) is refused too.
        assert!(better_than_chance(ChurnCandidate::BaggedTrees, "training", &[0.5; 4], &churned).is_err());
        assert!(
            better_than_chance(
                ChurnCandidate::BaggedTrees,
                "training",
                &[0.9, 0.6, 0.4, 0.3],
                &churned
            )
            .is_ok()
        );
    }

    #[test]
    fn leaf_codes_follow_the_splits() {
        // x0 < 0.5 is churn, else stay: one split, two leaves.
        let x = ndarray::array![[0.0], [0.1], [0.2], [0.9], [1.0], [0.8]];
        let y = vec![true, true, true, false, false, false];
        let tree = DecisionTree::params()
            .max_depth(Some(2))
            .fit(&Dataset::new(x.clone(), Array1::from(y.clone())))
            .unwrap();
        let leaf = LeafTree::new(tree, vec![0], &x, &y);
        // Three churners of three rows in the left leaf: (3 + 1) / (3 + 2).
        assert!((leaf.probability(ndarray::array![0.05].view()) - 0.8).abs() < 1e-12);
        assert!((leaf.probability(ndarray::array![0.95].view()) - 0.2).abs() < 1e-12);
        assert_eq!(leaf.leaves.len(), 2);
    }
}
