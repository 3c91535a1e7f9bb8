//! The segment job: learned customer groups from `customer_features`.
//!
//! The chosen features are encoded (`ln(1 + x)` of money and counts, nulls to the median) and
//! standardized, and k-means (k-means++ initialisation, fixed seed) or a Gaussian mixture is
//! fitted on a seeded sample. k is the configured one, or the best silhouette over
//! `k_min..=k_max` (computed on a sub-sample, since silhouette is O(n^2)). Every customer is
//! then assigned to the nearest centre in two streamed passes over the published features:
//! the first builds the cluster profiles (and so the readable labels), the second writes
//! `customer_segments`. Memory is the sample plus one batch, whatever the customer count.
//!
//! Clusters are numbered by descending mean revenue in the fitting sample: cluster 0 is the
//! most valuable group, whatever the initialisation.

use std::sync::Arc;

use chrono::NaiveDate;
use datafusion::arrow::array::{Float64Array, Int32Array, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use futures::TryStreamExt;
use linfa::prelude::*;
use linfa_clustering::{GaussianMixtureModel, KMeans};
use linfa_preprocessing::linear_scaling::LinearScaler;
use ndarray::{Array1, Array2, Axis};
use rand_xoshiro::Xoshiro256Plus;
use rand_xoshiro::rand_core::SeedableRng;
use rayon::prelude::*;
use serde_json::json;

use crate::config::{Algorithm, SegmentConfig};
use crate::error::{Error, Result};
use crate::learn::evaluation;
use crate::learn::features::{self, Encoder, NUMERIC};
use crate::learn::model_metrics::{self, MetricRow};
use crate::learn::outputs::StageDraft;
use crate::output::described;
use crate::output::manifest::StageReport;
use crate::output::publish::Draft;
use crate::storage::Root;

pub(crate) const JOB: &str = "segment";

/// A fitted clustering: encoder, scaler and centres, with the renumbering to value order.
pub struct Segmentation {
    pub encoder: Encoder,
    scaler: LinearScaler<f64>,
    model: Fitted,
    /// `order[c]` is the published number of fitted cluster `c`.
    order: Vec<usize>,
    pub k: usize,
    pub algorithm: Algorithm,
}

enum Fitted {
    KMeans(KMeans<f64, linfa_nn::distance::L2Dist>),
    Mixture(Box<GaussianMixtureModel<f64>>),
}

impl Fitted {
    fn centres(&self) -> &Array2<f64> {
        match self {
            Fitted::KMeans(m) => m.centroids(),
            Fitted::Mixture(m) => m.means(),
        }
    }

    fn predict(&self, x: &Array2<f64>) -> Array1<usize> {
        match self {
            Fitted::KMeans(m) => m.predict(x),
            Fitted::Mixture(m) => m.predict(x),
        }
    }
}

/// The quality of one candidate k on the fitting sample.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Candidate {
    pub k: usize,
    pub silhouette: f64,
    pub davies_bouldin: f64,
    pub inertia: f64,
}

impl Segmentation {
    /// Published cluster numbers and distances to their centres (standardized units).
    pub(crate) fn assign(&self, batch: &RecordBatch) -> Result<(Vec<usize>, Vec<f64>)> {
        let x = self.scaler.transform(self.encoder.encode(batch)?);
        let fitted = self.model.predict(&x);
        let centres = self.model.centres();
        let distances = x
            .axis_iter(Axis(0))
            .zip(fitted.iter())
            .map(|(row, &c)| evaluation::distance(row, centres.row(c)))
            .collect();
        Ok((fitted.iter().map(|&c| self.order[c]).collect(), distances))
    }
}

/// Fits the clustering on a batch of sampled features, choosing k when the config has none.
pub fn fit(sample: &RecordBatch, config: &SegmentConfig) -> Result<(Segmentation, Vec<Candidate>)> {
    let columns: Vec<&str> = config.features.iter().map(String::as_str).collect();
    let k_max = config.k.unwrap_or(config.k_max);
    if sample.num_rows() < k_max.max(10) * 5 {
        return Err(Error::CannotTrain {
            job: JOB.into(),
            reason: format!(
                "{} customers in the fitting sample, fewer than 5 per cluster for k = {k_max}",
                sample.num_rows()
            ),
        });
    }
    let encoder = Encoder::fit(sample, &columns, &[], false).map_err(|e| match e {
        Error::BadColumn {
            table,
            column,
            problem,
        } => Error::BadConfig {
            file: "segment.features".into(),
            reason: format!("{column} {problem} of {table}"),
        },
        other => other,
    })?;
    let raw = encoder.encode(sample)?;
    let scaler = LinearScaler::standard()
        .fit(&DatasetBase::from(raw.clone()))
        .map_err(|e| cannot_train(format!("standardizing: {e}")))?;
    let x = scaler.transform(raw);

    let ks: Vec<usize> = match config.k {
        Some(k) => vec![k],
        None => (config.k_min..=config.k_max).collect(),
    };
    let probe = every_nth(x.nrows(), config.silhouette_sample);
    let probe_x = x.select(Axis(0), &probe);
    // Each k is fitted with its own seeded generator, so the candidates are fitted on every
    // core at once and are the same whatever the number of cores.
    let fits = ks
        .par_iter()
        .map(|&k| {
            let model = fit_one(&x, k, config)?;
            let labels = model.predict(&probe_x);
            let silhouette = DatasetBase::new(probe_x.clone(), labels)
                .silhouette_score()
                .unwrap_or(f64::NAN);
            let all_labels = model.predict(&x);
            let davies_bouldin = evaluation::davies_bouldin(
                x.view(),
                all_labels.as_slice().expect("contiguous"),
                model.centres(),
            );
            let inertia = x
                .axis_iter(Axis(0))
                .zip(all_labels.iter())
                .map(|(row, &c)| evaluation::distance(row, model.centres().row(c)).powi(2))
                .sum();
            let candidate = Candidate {
                k,
                silhouette,
                davies_bouldin,
                inertia,
            };
            Ok((candidate, model))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut candidates = Vec::new();
    let mut best: Option<(f64, Fitted)> = None;
    for (candidate, model) in fits {
        let silhouette = candidate.silhouette;
        tracing::info!(
            k = candidate.k,
            silhouette = format!("{silhouette:.4}"),
            "clustering candidate"
        );
        candidates.push(candidate);
        if best.as_ref().is_none_or(|(score, _)| silhouette > *score) {
            best = Some((silhouette, model));
        }
    }
    let (_, model) = best.expect("at least one k was tried");
    let k = model.centres().nrows();
    let order = value_order(&model, &x, sample)?;
    Ok((
        Segmentation {
            encoder,
            scaler,
            model,
            order,
            k,
            algorithm: config.algorithm,
        },
        candidates,
    ))
}

fn fit_one(x: &Array2<f64>, k: usize, config: &SegmentConfig) -> Result<Fitted> {
    let rng = Xoshiro256Plus::seed_from_u64(config.seed);
    let dataset = DatasetBase::from(x.clone());
    match config.algorithm {
        Algorithm::KMeans => KMeans::params_with_rng(k, rng)
            .n_runs(config.n_runs)
            .max_n_iterations(config.max_iterations)
            .tolerance(config.tolerance)
            .fit(&dataset)
            .map(Fitted::KMeans)
            .map_err(|e| cannot_train(format!("k-means with k = {k}: {e}"))),
        Algorithm::GaussianMixture => GaussianMixtureModel::params_with_rng(k, rng)
            .n_runs(config.n_runs as u64)
            .max_n_iterations(config.max_iterations)
            .tolerance(config.tolerance)
            .reg_covariance(1e-4)
            .fit(&dataset)
            .map(|m| Fitted::Mixture(Box::new(m)))
            .map_err(|e| cannot_train(format!("Gaussian mixture with k = {k}: {e}"))),
    }
}

/// Published numbers: fitted clusters ranked by descending mean revenue in the sample.
fn value_order(model: &Fitted, x: &Array2<f64>, sample: &RecordBatch) -> Result<Vec<usize>> {
    let k = model.centres().nrows();
    let revenue = features::numeric_column(sample, "monetary_usd")?;
    let mut sums = vec![(0.0, 0usize); k];
    for (&c, value) in model.predict(x).iter().zip(revenue) {
        sums[c].0 += value.unwrap_or(0.0);
        sums[c].1 += 1;
    }
    let mean = |c: usize| sums[c].0 / sums[c].1.max(1) as f64;
    let mut ranked: Vec<usize> = (0..k).collect();
    ranked.sort_by(|&a, &b| mean(b).total_cmp(&mean(a)).then(a.cmp(&b)));
    let mut order = vec![0; k];
    for (published, fitted) in ranked.into_iter().enumerate() {
        order[fitted] = published;
    }
    Ok(order)
}

/// `n` evenly spaced row indices out of `rows` (all of them when `n >= rows`).
fn every_nth(rows: usize, n: usize) -> Vec<usize> {
    if n >= rows {
        return (0..rows).collect();
    }
    (0..n).map(|i| i * rows / n).collect()
}

fn cannot_train(reason: String) -> Error {
    Error::CannotTrain {
        job: JOB.into(),
        reason,
    }
}

/// Per-cluster sums over every customer, from which the profiles and labels come.
#[derive(Clone, Debug)]
pub struct Profile {
    pub cluster: usize,
    pub customers: u64,
    pub revenue_usd: f64,
    /// Sum and non-null count of every numeric feature, in [`NUMERIC`] order.
    sums: Vec<(f64, u64)>,
    pub label: String,
}

impl Profile {
    fn new(cluster: usize) -> Self {
        Profile {
            cluster,
            customers: 0,
            revenue_usd: 0.0,
            sums: vec![(0.0, 0); NUMERIC.len()],
            label: String::new(),
        }
    }

    /// The mean of a numeric feature over the cluster's customers (nulls left out).
    pub fn mean(&self, column: &str) -> f64 {
        NUMERIC
            .iter()
            .position(|(c, _)| *c == column)
            .map(|i| self.sums[i].0 / self.sums[i].1.max(1) as f64)
            .unwrap_or(f64::NAN)
    }
}

/// Readable labels from the profiles: value, activity and habit words, compared with all
/// customers (docs/methods/models.md: Learned segments).
///
/// - value: `high-value` when mean revenue is at least 1.5 x the overall mean, `low-value` at
///   most 0.5 x, else `mid-value`;
/// - activity: `lapsed` when the mean recency is over 180 days, `active` when the cluster
///   averages at least one purchase in the last 90 days, else `cooling`;
/// - habit: `one-timers` under 1.5 purchases on average, `bargain hunters` when at least 40%
///   of purchases are discounted, `frequent buyers` at twice the overall purchase count or
///   more, else `regulars`.
///
/// Two clusters with the same words get `#2`, `#3` in published order.
pub fn label(profiles: &mut [Profile]) {
    let customers: u64 = profiles.iter().map(|p| p.customers).sum();
    let overall = |column: &str| {
        profiles
            .iter()
            .map(|p| p.mean(column) * p.customers as f64)
            .sum::<f64>()
            / customers.max(1) as f64
    };
    let (revenue, frequency) = (overall("monetary_usd"), overall("frequency"));
    let mut seen: Vec<String> = Vec::new();
    for profile in profiles.iter_mut() {
        let value = match profile.mean("monetary_usd") / revenue {
            r if r >= 1.5 => "high-value",
            r if r <= 0.5 => "low-value",
            _ => "mid-value",
        };
        let activity = if profile.mean("recency_days") > 180.0 {
            "lapsed"
        } else if profile.mean("purchases_90d") >= 1.0 {
            "active"
        } else {
            "cooling"
        };
        let habit = if profile.mean("frequency") < 1.5 {
            "one-timers"
        } else if profile.mean("discount_share") >= 0.4 {
            "bargain hunters"
        } else if profile.mean("frequency") >= 2.0 * frequency {
            "frequent buyers"
        } else {
            "regulars"
        };
        let words = format!("{value} {activity} {habit}");
        let repeats = seen.iter().filter(|w| **w == words).count();
        profile.label = if repeats == 0 {
            words.clone()
        } else {
            format!("{words} #{}", repeats + 1)
        };
        seen.push(words);
    }
}

/// Runs the segment job for a run date over the published `customer_features`.
pub async fn run(output: &Root, run_date: NaiveDate, config: &SegmentConfig) -> Result<StageReport> {
    let stage = StageDraft::begin(JOB, output, run_date);
    stage
        .run(async |draft: &Draft| {
            let rows = features::require_published(output, run_date).await?;
            let fraction = config.sample_size as f64 / rows.max(1) as f64;
            let seed = config.seed;
            let sample = features::collect_rows(features::read_published(output, run_date).await?, |batch| {
                features::in_sample(batch, seed, fraction)
            })
            .await?;
            tracing::info!(customers = rows, sample = sample.num_rows(), "fitting the clustering");
            let (segmentation, candidates) = fit(&sample, config)?;

            let mut profiles: Vec<Profile> = (0..segmentation.k).map(Profile::new).collect();
            let mut stream = features::read_published(output, run_date).await?;
            while let Some(batch) = stream.try_next().await.map_err(Error::engine("reading customer_features"))? {
                accumulate(&segmentation, &batch, &mut profiles)?;
            }
            label(&mut profiles);

            let mut writer = draft.writer(SEGMENTS, crate::output::published::PART_FILE, segments_schema())?;
            let mut stream = features::read_published(output, run_date).await?;
            while let Some(batch) = stream.try_next().await.map_err(Error::engine("reading customer_features"))? {
                writer.write(&segments_batch(&segmentation, &batch, &profiles)?).await?;
            }
            let segments = writer.finish(draft).await?;
            let profiles_table = draft
                .write_batch(PROFILES, crate::output::published::PART_FILE, &profiles_batch(&profiles)?)
                .await?;
            let metrics = metric_rows(&segmentation, &candidates, sample.num_rows());
            let metrics_table = draft
                .write_batch(model_metrics::TABLE, &model_metrics::part_file(JOB), &model_metrics::batch(&metrics)?)
                .await?;
            let chosen = candidates.iter().find(|c| c.k == segmentation.k);
            let summary = json!({
                "algorithm": segmentation.algorithm,
                "k": segmentation.k,
                "k_chosen_by": if config.k.is_some() { "config" } else { "silhouette" },
                "silhouette": chosen.map(|c| c.silhouette),
                "davies_bouldin": chosen.map(|c| c.davies_bouldin),
                "customers": rows,
                "fitting_sample": sample.num_rows(),
                "silhouette_curve": candidates,
                "labels": profiles.iter().map(|p| json!({"cluster": p.cluster, "label": p.label, "customers": p.customers})).collect::<Vec<_>>(),
            });
            Ok((vec![segments, profiles_table, metrics_table], vec![], summary))
        })
        .await
}

fn accumulate(segmentation: &Segmentation, batch: &RecordBatch, profiles: &mut [Profile]) -> Result<()> {
    let (clusters, _) = segmentation.assign(batch)?;
    let columns = NUMERIC
        .iter()
        .map(|(name, _)| features::numeric_column(batch, name))
        .collect::<Result<Vec<_>>>()?;
    let revenue = NUMERIC
        .iter()
        .position(|(c, _)| *c == "monetary_usd")
        .expect("monetary_usd is a feature");
    for (row, &c) in clusters.iter().enumerate() {
        let profile = &mut profiles[c];
        profile.customers += 1;
        profile.revenue_usd += columns[revenue][row].unwrap_or(0.0);
        for (i, column) in columns.iter().enumerate() {
            if let Some(v) = column[row] {
                profile.sums[i].0 += v;
                profile.sums[i].1 += 1;
            }
        }
    }
    Ok(())
}

/// The table of every customer's segment.
pub(crate) const SEGMENTS: &str = "customer_segments";
/// The table of one row per segment.
pub(crate) const PROFILES: &str = "segment_profiles";

/// The published schema of `customer_segments`, with its descriptions.
pub fn segments_schema() -> SchemaRef {
    described::schema(
        "Every buying customer in customer_features, assigned to the nearest centre of the \
         segment stage's clustering (k-means or a Gaussian mixture on the [segment] features).",
        vec![
            described::field("customer_id", DataType::Utf8, false, "The customer."),
            described::field(
                "cluster",
                DataType::Int32,
                false,
                "The cluster, numbered by mean revenue, highest first (0 is the most valuable).",
            ),
            described::field(
                "cluster_label",
                DataType::Utf8,
                false,
                "The cluster's three-word label: value, activity and habit against all \
                 customers (segment_profiles has one row per label).",
            ),
            described::field(
                "distance_to_centre",
                DataType::Float64,
                false,
                "Distance from the customer to the cluster's centre, in standardized units.",
            ),
        ],
    )
}

/// The published schema of `segment_profiles`, with its descriptions.
pub fn profiles_schema() -> SchemaRef {
    let mut fields = vec![
        described::field(
            "cluster",
            DataType::Int32,
            false,
            "The cluster, as in customer_segments.",
        ),
        described::field("cluster_label", DataType::Utf8, false, "The cluster's label."),
        described::field("customers", DataType::Int64, false, "Customers in the cluster."),
        described::field(
            "customer_share",
            DataType::Float64,
            false,
            "The cluster's share of segmented customers, from 0 to 1.",
        ),
        described::field(
            "revenue_usd",
            DataType::Float64,
            false,
            "The cluster's customers' net revenue to date, USD (monetary_usd summed).",
        ),
        described::field(
            "revenue_share",
            DataType::Float64,
            false,
            "The cluster's share of that revenue, from 0 to 1.",
        ),
    ];
    for (name, _) in NUMERIC {
        fields.push(described::field(
            format!("mean_{name}"),
            DataType::Float64,
            true,
            &format!("Mean of customer_features.{name} over the cluster, raw units; null when undefined."),
        ));
    }
    described::schema(
        "One row per cluster of the segment stage: its size, revenue and mean features.",
        fields,
    )
}

fn segments_batch(
    segmentation: &Segmentation,
    batch: &RecordBatch,
    profiles: &[Profile],
) -> Result<RecordBatch> {
    let (clusters, distances) = segmentation.assign(batch)?;
    RecordBatch::try_new(
        segments_schema(),
        vec![
            Arc::new(features::customer_ids(batch)?.clone()),
            Arc::new(Int32Array::from_iter_values(clusters.iter().map(|&c| c as i32))),
            Arc::new(StringArray::from_iter_values(
                clusters.iter().map(|&c| profiles[c].label.as_str()),
            )),
            Arc::new(Float64Array::from(distances)),
        ],
    )
    .map_err(Error::arrow("building customer_segments"))
}

fn profiles_batch(profiles: &[Profile]) -> Result<RecordBatch> {
    let customers: u64 = profiles.iter().map(|p| p.customers).sum();
    let revenue: f64 = profiles.iter().map(|p| p.revenue_usd).sum();
    let mut columns: Vec<Arc<dyn datafusion::arrow::array::Array>> = vec![
        Arc::new(Int32Array::from_iter_values(
            profiles.iter().map(|p| p.cluster as i32),
        )),
        Arc::new(StringArray::from_iter_values(
            profiles.iter().map(|p| p.label.as_str()),
        )),
        Arc::new(Int64Array::from_iter_values(
            profiles.iter().map(|p| p.customers as i64),
        )),
        Arc::new(Float64Array::from_iter_values(
            profiles
                .iter()
                .map(|p| p.customers as f64 / customers.max(1) as f64),
        )),
        Arc::new(Float64Array::from_iter_values(
            profiles.iter().map(|p| (p.revenue_usd * 100.0).round() / 100.0),
        )),
        Arc::new(Float64Array::from_iter_values(profiles.iter().map(|p| {
            if revenue > 0.0 {
                p.revenue_usd / revenue
            } else {
                0.0
            }
        }))),
    ];
    for (name, _) in NUMERIC {
        columns.push(Arc::new(Float64Array::from_iter(
            profiles
                .iter()
                .map(|p| Some(p.mean(name)).filter(|m| m.is_finite())),
        )));
    }
    RecordBatch::try_new(profiles_schema(), columns).map_err(Error::arrow("building segment_profiles"))
}

fn metric_rows(segmentation: &Segmentation, candidates: &[Candidate], sample: usize) -> Vec<MetricRow> {
    let model = match segmentation.algorithm {
        Algorithm::KMeans => "k_means",
        Algorithm::GaussianMixture => "gaussian_mixture",
    };
    let mut rows = Vec::new();
    for c in candidates {
        for (metric, value) in [
            ("silhouette", c.silhouette),
            ("davies_bouldin", c.davies_bouldin),
            ("inertia", c.inertia),
            ("k", c.k as f64),
        ] {
            let mut row = MetricRow::new(JOB, model, "fitting_sample", metric, value)
                .with_parameter(format!("k={}", c.k));
            row.chosen = c.k == segmentation.k;
            rows.push(row);
        }
    }
    let mut size = MetricRow::new(JOB, model, "fitting_sample", "customers", sample as f64);
    size.chosen = true;
    rows.push(size);
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{ArrayRef, Float64Array};

    #[test]
    fn a_feature_that_is_not_a_numeric_column_is_a_config_error() {
        let recency: ArrayRef = Arc::new(Float64Array::from_iter_values((0..100).map(f64::from)));
        let sample = RecordBatch::try_from_iter([("recency_days", recency)]).unwrap();
        let config = SegmentConfig {
            features: vec!["recency_days".into(), "shoe_size".into()],
            ..SegmentConfig::default()
        };
        let error = fit(&sample, &config).err().expect("shoe_size is no feature");
        assert!(
            matches!(&error, Error::BadConfig { file, reason } if file == "segment.features" && reason.contains("shoe_size")),
            "{error}"
        );
        assert_eq!(error.exit_code(), crate::error::exit_code::BAD_MODEL);
    }

    fn profile(cluster: usize, customers: u64, means: &[(&str, f64)]) -> Profile {
        let mut p = Profile::new(cluster);
        p.customers = customers;
        for (column, mean) in means {
            let i = NUMERIC.iter().position(|(c, _)| c == column).unwrap();
            p.sums[i] = (mean * customers as f64, customers);
        }
        p
    }

    #[test]
    fn labels_say_value_activity_and_habit() {
        let mut profiles = vec![
            profile(
                0,
                10,
                &[
                    ("monetary_usd", 900.0),
                    ("recency_days", 20.0),
                    ("purchases_90d", 3.0),
                    ("frequency", 20.0),
                    ("discount_share", 0.1),
                ],
            ),
            profile(
                1,
                50,
                &[
                    ("monetary_usd", 100.0),
                    ("recency_days", 60.0),
                    ("purchases_90d", 0.5),
                    ("frequency", 4.0),
                    ("discount_share", 0.6),
                ],
            ),
            profile(
                2,
                40,
                &[
                    ("monetary_usd", 30.0),
                    ("recency_days", 300.0),
                    ("purchases_90d", 0.0),
                    ("frequency", 1.1),
                    ("discount_share", 0.2),
                ],
            ),
            profile(
                3,
                40,
                &[
                    ("monetary_usd", 30.0),
                    ("recency_days", 300.0),
                    ("purchases_90d", 0.0),
                    ("frequency", 1.2),
                    ("discount_share", 0.2),
                ],
            ),
        ];
        label(&mut profiles);
        // Overall revenue mean: (9000 + 5000 + 1200 + 1200) / 140 = 117.1.
        assert_eq!(profiles[0].label, "high-value active frequent buyers");
        assert_eq!(profiles[1].label, "mid-value cooling bargain hunters");
        assert_eq!(profiles[2].label, "low-value lapsed one-timers");
        assert_eq!(profiles[3].label, "low-value lapsed one-timers #2");
    }

    #[test]
    fn every_nth_spreads_over_the_rows() {
        assert_eq!(every_nth(10, 5), [0, 2, 4, 6, 8]);
        assert_eq!(every_nth(3, 5), [0, 1, 2]);
    }
}
