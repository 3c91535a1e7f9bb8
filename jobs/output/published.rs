//! The published layout, known here alone, and the readers of what is published:
//!
//! - a table: `<output>/<table>/run_date=YYYY-MM-DD/part-0.parquet` (one file; `model_metrics`
//!   has one `part-<stage>.parquet` per model stage instead);
//! - a saved model and its card: `_models/<stage>/run_date=D/model.json`, `model_card.json`;
//! - the morning report: `_reports/run_date=D/report.html`;
//! - the manifest: `_manifests/run_date=D/manifest.json`;
//! - a data test's failing rows: `_test_failures/<model>/run_date=D/<nn>-<test>.parquet`.
//!
//! Folders starting with `_` are not tables, so Spark's and Hive's readers skip them.

use chrono::NaiveDate;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::prelude::ParquetReadOptions;
use object_store::ObjectStoreExt;
use object_store::path::Path;

use crate::error::{Error, Result};
use crate::storage::Root;

/// The file name of a table's partition.
pub(crate) const PART_FILE: &str = "part-0.parquet";
/// The folder of saved models.
pub(crate) const MODELS: &str = "_models";
/// A saved model's file name in `_models/<stage>/run_date=D/`.
pub(crate) const MODEL_FILE: &str = "model.json";
/// The model card's file name beside it.
pub(crate) const CARD_FILE: &str = "model_card.json";
/// The folder of the morning reports.
pub(crate) const REPORTS: &str = "_reports";
/// A report's file name in `_reports/run_date=D/`.
pub(crate) const REPORT_FILE: &str = "report.html";
/// The folder of the data tests' stored failing rows.
pub(crate) const FAILURES: &str = "_test_failures";
/// The folder of the manifests.
pub(crate) const MANIFESTS: &str = "_manifests";
/// A manifest's file name in `_manifests/run_date=D/`.
pub(crate) const MANIFEST_FILE: &str = "manifest.json";

/// The partition folder name for a run date.
pub fn partition(run_date: NaiveDate) -> String {
    format!("run_date={}", run_date.format("%Y-%m-%d"))
}

/// A file of a table's partition: [`PART_FILE`], or a stage's own part of a shared table.
pub(crate) fn table_file(output: &Root, table: &str, run_date: NaiveDate, file: &str) -> Path {
    output.path(&[table, &partition(run_date), file])
}

/// Where `table` is published for a run date.
pub(crate) fn table_path(output: &Root, table: &str, run_date: NaiveDate) -> Path {
    table_file(output, table, run_date, PART_FILE)
}

/// A saved model's file (`file` is [`MODEL_FILE`] or [`CARD_FILE`]), as path segments.
pub(crate) fn model_parts(stage: &str, run_date: NaiveDate, file: &str) -> [String; 4] {
    [MODELS.into(), stage.into(), partition(run_date), file.into()]
}

/// The morning report of a run date, as path segments.
pub(crate) fn report_parts(run_date: NaiveDate) -> [String; 3] {
    [REPORTS.into(), partition(run_date), REPORT_FILE.into()]
}

/// The manifest of a run date, as path segments.
pub(crate) fn manifest_parts(run_date: NaiveDate) -> [String; 3] {
    [MANIFESTS.into(), partition(run_date), MANIFEST_FILE.into()]
}

/// The error of a stage whose input table is not published: names the file and what to run.
fn missing(output: &Root, table: &str, run_date: NaiveDate) -> Error {
    Error::MissingStageInput {
        stage: table.into(),
        location: output.describe(&table_path(output, table, run_date)),
        hint: format!("run `transform --select {table} --date {run_date}` (or `nightly`) first"),
    }
}

/// How many rows the published `table` of a run date holds, from the footer; the stages call
/// it first, to fail before any work when their input is not there.
pub(crate) async fn require(output: &Root, table: &str, run_date: NaiveDate) -> Result<u64> {
    let meta = output
        .store
        .head(&table_path(output, table, run_date))
        .await
        .map_err(|_| missing(output, table, run_date))?;
    let footer = crate::storage::parquet_footer(output, &meta)
        .await
        .map_err(|_| missing(output, table, run_date))?;
    Ok(footer.rows)
}

/// Streams the published `table` of a run date, in file order; a clear error when it is not
/// there.
pub async fn read(output: &Root, table: &str, run_date: NaiveDate) -> Result<SendableRecordBatchStream> {
    let path = table_path(output, table, run_date);
    output
        .store
        .head(&path)
        .await
        .map_err(|_| missing(output, table, run_date))?;
    let ctx = crate::engine::new_session();
    // One partition: the rows come in file order. With several, DataFusion interleaves the
    // row groups as they finish, and a seeded sample of them would differ from run to run.
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
pub async fn latest(output: &Root, table: &str) -> Result<NaiveDate> {
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
