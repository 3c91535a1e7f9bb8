//! The trained-model stages after the SQL: customer features as of any cut-off, segments
//! (clustering), churn (classifiers and scores), their evaluation and published metrics.

pub mod churn;
pub mod evaluation;
pub mod features;
pub mod model_metrics;
pub mod outputs;
pub mod segment;
