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

/// A table a model stage publishes, with the stage and the schema (descriptions included) it
/// writes: the data dictionary's entries for what no SQL model builds.
pub struct TrainedTable {
    pub table: &'static str,
    pub stage: &'static str,
    pub schema: datafusion::arrow::datatypes::SchemaRef,
}

/// Every table the model stages publish, in the order the night builds them.
pub fn trained_tables() -> Vec<TrainedTable> {
    let table = |table, stage, schema| TrainedTable { table, stage, schema };
    vec![
        table(segment::SEGMENTS, "segment", segment::segments_schema()),
        table(segment::PROFILES, "segment", segment::profiles_schema()),
        table(churn::SCORES, "churn", churn::scores_schema()),
        table(clv::SCORES, "clv", clv::scores_schema()),
        table(predicted_ltv::TABLE, "clv", predicted_ltv::schema()),
        table(forecast::TABLE, "clv", forecast::schema()),
        table(
            model_metrics::TABLE,
            "segment, churn, clv",
            model_metrics::schema(),
        ),
    ]
}
