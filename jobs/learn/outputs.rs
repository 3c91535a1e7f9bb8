//! What the model stages (segment, churn, clv, report, score) share: a staging area of their own, publishing
//! all their outputs together when they succeed, and a report for the manifest.
//!
//! Each stage publishes on its own, so a stage that cannot train leaves what earlier stages
//! published for the date untouched.

use std::time::Instant;

use chrono::NaiveDate;

use crate::error::{Error, Result};
use crate::output::manifest::StageReport;
use crate::output::publish::{Draft, DraftFile, DraftTable};
use crate::output::published::{CARD_FILE, MODEL_FILE, model_parts};
use crate::storage::Root;

/// Stages a job's fitted model and its card for `_models/<job>/run_date=D/`.
pub(crate) async fn save_model(
    draft: &Draft,
    job: &str,
    run_date: NaiveDate,
    model: &impl serde::Serialize,
    card: &serde_json::Value,
) -> Result<Vec<DraftFile>> {
    let json = |value: serde_json::Result<Vec<u8>>| {
        value.map_err(|e| Error::Internal(format!("serializing the {job} model: {e}")))
    };
    Ok(vec![
        draft
            .put(
                &model_parts(job, run_date, MODEL_FILE)
                    .each_ref()
                    .map(String::as_str),
                json(serde_json::to_vec(model))?,
            )
            .await?,
        draft
            .put(
                &model_parts(job, run_date, CARD_FILE)
                    .each_ref()
                    .map(String::as_str),
                json(serde_json::to_vec_pretty(card))?,
            )
            .await?,
    ])
}

/// A stage's staging area, published all at once.
pub(crate) struct StageDraft {
    name: String,
    pub draft: Draft,
    started: Instant,
}

impl StageDraft {
    pub(crate) fn begin(name: &str, output: &Root, run_date: NaiveDate) -> Self {
        crate::telemetry::reset_peak_memory();
        StageDraft {
            name: name.into(),
            draft: Draft::new(output, &crate::telemetry::run_id(run_date, name), run_date),
            started: Instant::now(),
        }
    }

    /// Runs the stage's work; publishes what it staged when it succeeds, discards it when not.
    pub async fn run<F>(self, work: F) -> Result<StageReport>
    where
        F: AsyncFnOnce(&Draft) -> Result<(Vec<DraftTable>, Vec<DraftFile>, serde_json::Value)>,
    {
        let outcome = async {
            let (tables, files, summary) = work(&self.draft).await?;
            crate::output::commit::publish(&self.draft, &tables, &files).await?;
            Ok((tables, files, summary))
        };
        let (tables, files, summary) = match outcome.await {
            Ok(done) => done,
            Err(error) => {
                // Nothing more of the stage is published (a stop or a lost lease ends here too).
                if let Err(cleanup) = self.draft.remove().await {
                    tracing::warn!(%cleanup, stage = self.name, "could not remove the stage's staging files");
                }
                return Err(error);
            }
        };
        self.draft.remove().await?;
        let seconds = self.started.elapsed().as_secs_f64();
        let peak_rss_bytes = crate::telemetry::peak_memory();
        tracing::info!(
            stage = self.name,
            seconds = format!("{seconds:.2}"),
            peak_rss_mib = peak_rss_bytes.map(|b| b / (1024 * 1024)),
            "stage published"
        );
        Ok(StageReport {
            stage: self.name,
            seconds,
            peak_rss_bytes,
            tables,
            files,
            summary,
        })
    }
}
