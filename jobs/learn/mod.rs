//! The trained-model stages after the SQL: customer features as of any cut-off, segments
//! (clustering), churn (classifiers and scores), lifetime value (BG/NBD and Gamma-Gamma),
//! their evaluation and published metrics.

pub mod bg_nbd;
pub mod churn;
pub mod clv;
pub mod evaluation;
pub mod features;
pub mod forecast;
pub mod gamma_gamma;
pub mod likelihood;
pub mod model_metrics;
pub mod outputs;
pub mod predicted_ltv;
pub mod segment;
pub mod tree;
