//! The `model_metrics` table: every quality figure the segment, churn and lifetime-value stages
//! compute, one row per figure, so a dashboard can chart them night after night.
//!
//! Each stage publishes its own file in the run date's partition (`part-segment.parquet`,
//! `part-churn.parquet`, `part-clv.parquet`), so rerunning one stage replaces its figures and
//! leaves the others'.

use std::sync::Arc;

use datafusion::arrow::array::{BooleanArray, Float64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::output::described;

/// The table's name.
pub(crate) const TABLE: &str = "model_metrics";

/// The file a job publishes in the run date's partition of `model_metrics`.
pub(crate) fn part_file(job: &str) -> String {
    format!("part-{job}.parquet")
}

/// One quality figure.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MetricRow {
    /// `segment` or `churn`.
    pub job: String,
    /// The candidate: `k_means`, `gaussian_mixture`, `logistic_regression`, `decision_tree`, ...
    pub model: String,
    /// What varies between rows of one model: `k=5`, a calibration bin `0.2-0.3`; null if none.
    pub parameter: Option<String>,
    /// The data it was measured on: `fitting_sample`, `training`, `validation`, `all_customers`.
    pub evaluated_on: String,
    pub metric: String,
    pub value: f64,
    /// Whether this model is the one the job kept.
    pub chosen: bool,
}

impl MetricRow {
    pub fn new(job: &str, model: &str, evaluated_on: &str, metric: &str, value: f64) -> Self {
        MetricRow {
            job: job.into(),
            model: model.into(),
            parameter: None,
            evaluated_on: evaluated_on.into(),
            metric: metric.into(),
            value,
            chosen: false,
        }
    }

    pub(crate) fn with_parameter(mut self, parameter: impl Into<String>) -> Self {
        self.parameter = Some(parameter.into());
        self
    }
}

/// The schema of `model_metrics`.
pub fn schema() -> SchemaRef {
    let f = described::field;
    described::schema(
        "Every figure the model stages measured: candidates' fits and validation scores, fitted \
         parameters, holdout and backtest errors; one file per stage (part-segment, part-churn, \
         part-clv).",
        vec![
            f("job", DataType::Utf8, false, "The stage: segment, churn or clv."),
            f("model", DataType::Utf8, false, "The model or candidate measured."),
            f(
                "parameter",
                DataType::Utf8,
                true,
                "What the figure is about when it needs saying: k, a market scope, a parameter name.",
            ),
            f(
                "evaluated_on",
                DataType::Utf8,
                false,
                "Where it was measured: training, validation, fitting, holdout or backtest.",
            ),
            f(
                "metric",
                DataType::Utf8,
                false,
                "The measure: roc_auc, silhouette, r, mape_revenue_usd, ...",
            ),
            f(
                "value",
                DataType::Float64,
                true,
                "Its value; null when undefined.",
            ),
            f(
                "chosen",
                DataType::Boolean,
                false,
                "Whether this model was the one the stage kept.",
            ),
        ],
    )
}

/// The rows as one batch; a NaN (a figure that is undefined, such as an AUC with one class)
/// is written as null.
pub fn batch(rows: &[MetricRow]) -> Result<RecordBatch> {
    let text = |f: fn(&MetricRow) -> &str| Arc::new(StringArray::from_iter_values(rows.iter().map(f)));
    RecordBatch::try_new(
        schema(),
        vec![
            text(|r| &r.job),
            text(|r| &r.model),
            Arc::new(StringArray::from_iter(
                rows.iter().map(|r| r.parameter.as_deref()),
            )),
            text(|r| &r.evaluated_on),
            text(|r| &r.metric),
            Arc::new(Float64Array::from_iter(
                rows.iter().map(|r| r.value.is_finite().then_some(r.value)),
            )),
            Arc::new(BooleanArray::from_iter(rows.iter().map(|r| Some(r.chosen)))),
        ],
    )
    .map_err(Error::arrow(format!("building {TABLE}")))
}
