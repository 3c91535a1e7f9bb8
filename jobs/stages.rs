//! The model stages that follow the SQL stage, as one type: each reads what the SQL stage
//! published for a run date, publishes its own tables and files at once, and reports to the
//! manifest. `nightly` runs them in order after the SQL stage; each has its own binary too.

use chrono::NaiveDate;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::learn::features::{self, AsOf};
use crate::learn::{churn, clv, segment};
use crate::output::manifest::StageReport;
use crate::report;
use crate::storage::Root;

/// A model stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Clusters the customers (customer_segments, segment_profiles).
    Segment,
    /// Trains the churn classifiers and scores every customer (churn_scores).
    Churn,
    /// Lifetime value and the growth forecast (clv_scores, predicted_ltv, growth_forecast).
    Clv,
    /// The morning report (`_reports/run_date=D/report.html`).
    Report,
}

/// What a stage runs with: where, for which date, under which settings.
pub struct StageContext<'a> {
    pub output: &'a Root,
    pub run_date: NaiveDate,
    pub config: &'a Config,
    /// The input as of any cut-off, for the stages that compute features at earlier dates
    /// (churn's training windows).
    pub as_of: Option<&'a AsOf>,
}

impl Stage {
    /// Every model stage, in the order a night runs them.
    pub(crate) const ALL: [Stage; 4] = [Stage::Segment, Stage::Churn, Stage::Clv, Stage::Report];

    /// Its name in the manifest (`completed`, `jobs[].stage`) and in the lock.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Segment => segment::JOB,
            Stage::Churn => churn::JOB,
            Stage::Clv => clv::JOB,
            Stage::Report => report::JOB,
        }
    }

    /// The SQL model it needs published for the date: without it the night skips the stage.
    pub fn needs(self) -> Option<&'static str> {
        match self {
            Stage::Segment | Stage::Churn => Some(features::TABLE),
            Stage::Clv => Some(clv::SUMMARY),
            Stage::Report => None,
        }
    }

    /// The table whose latest partition is the stage's run date when none is given.
    pub(crate) fn dated_by(self) -> &'static str {
        self.needs().unwrap_or(report::DATED_BY)
    }

    /// Runs the stage for the context's date and publishes what it made.
    pub async fn run(self, context: &StageContext<'_>) -> Result<StageReport> {
        let StageContext {
            output,
            run_date,
            config,
            as_of,
        } = *context;
        match self {
            Stage::Segment => segment::run(output, run_date, &config.segment).await,
            Stage::Churn => {
                let as_of = as_of.ok_or_else(|| {
                    Error::Internal("the churn stage needs the input to compute its training windows".into())
                })?;
                churn::run(as_of, output, run_date, config).await
            }
            Stage::Clv => clv::run(output, run_date, config).await,
            Stage::Report => report::run(output, run_date, config).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_names_are_distinct_and_the_sql_stage_is_none_of_them() {
        let names: Vec<&str> = Stage::ALL.iter().map(|s| s.name()).collect();
        assert_eq!(names, ["segment", "churn", "clv", "report"]);
        assert!(!names.contains(&crate::transform::SQL_STAGE));
        assert_eq!(Stage::Report.dated_by(), "kpi_monthly");
        assert_eq!(Stage::Churn.dated_by(), features::TABLE);
    }
}
