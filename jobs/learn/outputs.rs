//! What the model stages (segment, churn, score) share: a staging area of their own, publishing
//! all their outputs together when they succeed, and a report for the manifest.
//!
//! Each stage publishes on its own, so a stage that cannot train leaves what earlier stages
//! published for the date untouched.

use std::time::Instant;

use chrono::NaiveDate;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::prelude::ParquetReadOptions;
use object_store::ObjectStoreExt;

use crate::error::{Error, Result};
use crate::output::manifest::StageReport;
use crate::output::publish::{Draft, DraftFile, DraftTable, PART_FILE, partition};
use crate::storage::Root;

/// The folder of saved models below the output root.
pub const MODELS: &str = "_models";
/// A saved model's file name in `_models/<job>/run_date=D/`.
pub const MODEL_FILE: &str = "model.json";
/// The model card's file name beside it.
pub const CARD_FILE: &str = "model_card.json";

/// Where a job's model of a run date is saved, relative to the output root.
pub fn model_parts(job: &str, run_date: NaiveDate) -> [String; 4] {
    [MODELS.into(), job.into(), partition(run_date), MODEL_FILE.into()]
}

/// Stages a job's fitted model and its card for `_models/<job>/run_date=D/`.
pub async fn save_model(
    draft: &Draft,
    job: &str,
    run_date: NaiveDate,
    model: &impl serde::Serialize,
    card: &serde_json::Value,
) -> Result<Vec<DraftFile>> {
    let date = partition(run_date);
    let json = |value: serde_json::Result<Vec<u8>>| {
        value.map_err(|e| Error::Internal(format!("serializing the {job} model: {e}")))
    };
    Ok(vec![
        draft
            .put(
                &[MODELS, job, &date, MODEL_FILE],
                json(serde_json::to_vec(model))?,
            )
            .await?,
        draft
            .put(
                &[MODELS, job, &date, CARD_FILE],
                json(serde_json::to_vec_pretty(card))?,
            )
            .await?,
    ])
}

/// Where the SQL stage publishes `table` for a run date, relative to the output root.
pub fn published_path(output: &Root, table: &str, run_date: NaiveDate) -> object_store::path::Path {
    output.path(&[table, &partition(run_date), PART_FILE])
}

/// The error of a stage whose input table is not published: names the file and what to run.
fn missing(output: &Root, table: &str, run_date: NaiveDate) -> Error {
    Error::MissingStageInput {
        stage: table.into(),
        location: output.describe(&published_path(output, table, run_date)),
        hint: format!("run `transform --select {table} --date {run_date}` (or `nightly`) first"),
    }
}

/// How many rows the published `table` of a run date holds, from the footer; the stages call
/// it first, to fail before any work when their input is not there.
pub async fn require_published(output: &Root, table: &str, run_date: NaiveDate) -> Result<u64> {
    let (rows, _, _) =
        crate::output::publish::describe_parquet(output, &published_path(output, table, run_date))
            .await
            .map_err(|_| missing(output, table, run_date))?;
    Ok(rows)
}

/// Streams the published `table` of a run date, in file order; a clear error when it is not
/// there.
pub async fn read_published(
    output: &Root,
    table: &str,
    run_date: NaiveDate,
) -> Result<SendableRecordBatchStream> {
    let path = published_path(output, table, run_date);
    output
        .store
        .head(&path)
        .await
        .map_err(|_| missing(output, table, run_date))?;
    let ctx = crate::engine::new_session();
    // One partition: the rows come in file order. With several, DataFusion interleaves the
    // row groups as they finish, and the segment stage's sample (and its silhouette subsample)
    // then varied from run to run at 10M customers, choosing k = 3 one night and k = 5 the next.
    ctx.state_ref()
        .write()
        .config_mut()
        .options_mut()
        .execution
        .target_partitions = 1;
    output.register(&ctx);
    ctx.read_parquet(output.url_of(&path), ParquetReadOptions::default())
        .await
        .map_err(Error::engine(format!("reading {}", output.describe(&path))))?
        .execute_stream()
        .await
        .map_err(Error::engine(format!("reading {}", output.describe(&path))))
}

/// A stage's staging area, published all at once.
pub struct Stage {
    name: String,
    pub draft: Draft,
    started: Instant,
}

impl Stage {
    pub fn begin(name: &str, output: &Root, run_date: NaiveDate) -> Self {
        crate::telemetry::reset_peak_memory();
        Stage {
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
        let outcome = work(&self.draft).await;
        let (tables, files, summary) = match outcome {
            Ok(done) => done,
            Err(error) => {
                if let Err(cleanup) = self.draft.remove().await {
                    tracing::warn!(%cleanup, stage = self.name, "could not remove the stage's staging files");
                }
                return Err(error);
            }
        };
        self.draft.publish(&tables).await?;
        self.draft.publish_files(&files).await?;
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

/// The run dates for which `table` has a published partition (none when it has no folder).
pub async fn partitions(output: &Root, table: &str) -> Vec<NaiveDate> {
    let folder = output.path(&[table]);
    match output.store.list_with_delimiter(Some(&folder)).await {
        Ok(listing) => listing
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename()?.strip_prefix("run_date=")?.parse::<NaiveDate>().ok())
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// The latest run date for which `table` has a published partition.
pub async fn latest_partition(output: &Root, table: &str) -> Result<NaiveDate> {
    partitions(output, table)
        .await
        .into_iter()
        .max()
        .ok_or_else(|| Error::NoRunDate {
            reason: format!(
                "{} has no published partition",
                output.describe(&output.path(&[table]))
            ),
        })
}
