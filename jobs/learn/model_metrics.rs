//! The `model_metrics` table: every quality figure the segment, churn and lifetime-value stages
//! compute, one row per figure, so a dashboard can chart them night after night.
//!
//! Each stage publishes its own file in the run date's partition (`part-segment.parquet`,
//! `part-churn.parquet`, `part-clv.parquet`), so rerunning one stage replaces its figures and
//! leaves the others'.

use std::sync::Arc;

use datafusion::arrow::array::{BooleanArray, Float64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use serde::Serialize;

use crate::error::{Error, Result};

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
    Arc::new(Schema::new(vec![
        Field::new("job", DataType::Utf8, false),
        Field::new("model", DataType::Utf8, false),
        Field::new("parameter", DataType::Utf8, true),
        Field::new("evaluated_on", DataType::Utf8, false),
        Field::new("metric", DataType::Utf8, false),
        Field::new("value", DataType::Float64, true),
        Field::new("chosen", DataType::Boolean, false),
    ]))
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
