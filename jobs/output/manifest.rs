//! The manifest: one JSON document per run date saying what ran, on what, and what it made.
//!
//! Written last, after every table of the run is published, to
//! `<output>/_manifests/run_date=YYYY-MM-DD/manifest.json` (an atomic put). A scheduler or a
//! BI refresh can treat its presence as the commit point of the night.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::input::contract::InputSummary;
use crate::output::publish::{DraftFile, DraftTable};
use crate::output::published::manifest_parts;
use crate::storage::Root;

/// Versions of what produced the outputs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Versions {
    pub growth_jobs: String,
    pub datafusion: String,
    /// The build: a hash of the library's sources and the dependency lock (build.rs), so a
    /// new build counts as new code even when the version number stays.
    #[serde(default)]
    pub build: String,
}

impl Versions {
    pub(crate) fn current() -> Self {
        Versions {
            growth_jobs: env!("CARGO_PKG_VERSION").into(),
            datafusion: datafusion::DATAFUSION_VERSION.into(),
            build: env!("GROWTH_BUILD").into(),
        }
    }
}

/// One model of the run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ModelEntry {
    pub model: String,
    pub file: String,
    pub materialized: Materialized,
    /// SHA-256 of the model's SQL text.
    pub sql_sha256: String,
    pub reads: Vec<String>,
    /// The table built; absent for ephemeral models. Published unless `skipped` says why not.
    pub output: Option<DraftTable>,
    pub seconds: f64,
    /// Peak resident memory of the process while it was built, bytes (Linux only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_rss_bytes: Option<u64>,
    /// Its data tests and the rows failing each.
    #[serde(default)]
    pub tests: Vec<TestOutcome>,
    /// Why it was not published: its data tests failed, or an upstream model's did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

/// How a model's result is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Materialized {
    /// Written as Parquet under `<output>/<model>/run_date=D/`.
    Table,
    /// A view: inlined into the models that read it, never written.
    Ephemeral,
}

/// How one test went, for the manifest.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TestOutcome {
    pub test: String,
    /// Rows breaking it: 0 when it passed (for row_count and freshness, 1 when it failed).
    pub failing_rows: u64,
    /// `error` (the default: a failure blocks the model) or `warn`.
    #[serde(default)]
    pub severity: Severity,
    /// What the failing rows made of it by the test's thresholds; absent in manifests written
    /// before thresholds, where any failing row was an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<TestStatus>,
    /// Where a sample of the failing rows was stored, and how many.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored: Option<StoredFailures>,
}

impl TestOutcome {
    /// Pass, warn or error.
    pub fn status(&self) -> TestStatus {
        self.status.unwrap_or(if self.failing_rows > 0 {
            TestStatus::Error
        } else {
            TestStatus::Pass
        })
    }
}

/// How much a failing data test weighs, as dbt's `severity`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Past `error_if`, the model and what reads it are not published.
    #[default]
    Error,
    /// Past `warn_if`, the run warns and publishes.
    Warn,
}

/// What a data test came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TestStatus {
    Pass,
    Warn,
    Error,
}

/// A sample of a test's failing rows, stored as Parquet below the output root.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct StoredFailures {
    /// Relative to the output root: `_test_failures/<model>/run_date=D/<test>.parquet`.
    pub path: String,
    /// Rows stored: the failing rows, at most the test's `store_failures`.
    pub rows: u64,
}

/// What a stage published, for the manifest and the terminal.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StageReport {
    pub stage: String,
    pub seconds: f64,
    /// Peak resident memory of the process during the stage, bytes (Linux only; sampled, see
    /// [`crate::telemetry::peak_memory`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_rss_bytes: Option<u64>,
    pub tables: Vec<DraftTable>,
    pub files: Vec<DraftFile>,
    /// The stage's headline figures (chosen k, AUC, ...).
    pub summary: serde_json::Value,
}

impl StageReport {
    /// A few lines for the terminal.
    pub fn lines(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .tables
            .iter()
            .map(|t| format!("  {:<28} {:>10} rows  {}", t.table, t.rows, t.path))
            .collect();
        lines.extend(
            self.files
                .iter()
                .map(|f| format!("  {:<28} {:>15}  {}", self.stage, "file", f.path)),
        );
        lines
    }
}

/// What one run did.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub run_id: String,
    pub run_date: NaiveDate,
    /// `succeeded` once every stage published: the commit point of the night. While the run
    /// goes on it is `running` (written after each stage, so `--resume` knows what is done),
    /// and `failed` when a stage stopped it.
    pub status: String,
    /// What the outputs depend on (inputs, code, SQL, settings): see `transform::fingerprint`.
    pub fingerprint: String,
    /// Stages published, in order: `sql`, then `segment`, `churn`, `clv` and `report`.
    pub completed: Vec<String>,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub input_root: String,
    pub output_root: String,
    /// Where the SQL models ran: `local` or `ballista://HOST:PORT`.
    #[serde(default = "local_engine")]
    pub engine: String,
    pub versions: Versions,
    pub inputs: BTreeMap<String, InputSummary>,
    /// Optional input tables not given: models saw them empty.
    pub absent_inputs: Vec<String>,
    /// What the night noticed and did not stop for, in words (for example a configured organic
    /// channel that no input names).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    pub models: Vec<ModelEntry>,
    /// Rows the row rules set aside, per table and rule (listed in the `rejects` table).
    pub quality: crate::input::quality::Report,
    /// The thresholds and settings the models read.
    pub config: crate::config::Config,
    pub stages: Vec<crate::telemetry::StageTiming>,
    /// The model stages after the SQL (segment, churn), each published on its own.
    pub jobs: Vec<StageReport>,
    /// Why the run stopped, when it did; the tables listed were published before that.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What manifests written before the engine was recorded ran on.
fn local_engine() -> String {
    crate::config::Engine::Local.to_string()
}

impl Manifest {
    /// Where the manifest of a run date lives, relative to the output root.
    pub(crate) fn relative_path(run_date: NaiveDate) -> String {
        manifest_parts(run_date).join("/")
    }

    /// The manifest of a run date, when there is a readable one.
    pub async fn read(output: &Root, run_date: NaiveDate) -> Result<Option<Manifest>> {
        let path = output.path(&manifest_parts(run_date).each_ref().map(String::as_str));
        let Some(bytes) = output.read_if_exists(&path).await? else {
            return Ok(None);
        };
        // A manifest from an older version, or damaged, is no proof of anything: run again.
        Ok(serde_json::from_slice(bytes.as_ref()).ok())
    }

    /// Writes the manifest in one put (atomic on a local disk and on object stores), flushed.
    pub async fn write(&self, output: &Root) -> Result<()> {
        let path = output.path(&manifest_parts(self.run_date).each_ref().map(String::as_str));
        let mut json = serde_json::to_vec_pretty(self)
            .map_err(|e| Error::Internal(format!("serializing the manifest: {e}")))?;
        json.push(b'\n');
        output.put_durable(&path, json).await
    }
}

/// The stages of a whole night, in order: the SQL stage, then the model stages.
pub(crate) const NIGHT: [&str; 5] = ["sql", "segment", "churn", "clv", "report"];

impl Manifest {
    /// Whether the run succeeded with every stage of a night: the date is whole.
    pub(crate) fn is_whole_night(&self) -> bool {
        self.status == "succeeded" && NIGHT.iter().all(|stage| self.has_completed(stage))
    }

    /// The tables the run published: the SQL models built and not held back by a data test,
    /// and the model stages' tables.
    pub(crate) fn published_tables(&self) -> std::collections::BTreeSet<String> {
        let sql = self
            .models
            .iter()
            .filter(|m| m.skipped.is_none())
            .filter_map(|m| m.output.as_ref().map(|o| o.table.clone()));
        let stages = self
            .jobs
            .iter()
            .flat_map(|j| j.tables.iter().map(|t| t.table.clone()));
        sql.chain(stages).collect()
    }

    /// The data tests of the run that came to `status`, as `model: test (n rows)`.
    pub(crate) fn tests_with(&self, status: TestStatus) -> Vec<String> {
        self.models
            .iter()
            .flat_map(|e| {
                e.tests
                    .iter()
                    .filter(move |t| t.status() == status)
                    .map(move |t| format!("{}: {} ({} rows)", e.model, t.test, t.failing_rows))
            })
            .collect()
    }

    /// The data tests that failed in the run (status error), as `model: test (n rows)`.
    pub(crate) fn failed_tests(&self) -> Vec<String> {
        self.tests_with(TestStatus::Error)
    }

    /// The error of a run whose data tests failed, if any did.
    pub(crate) fn test_failure(&self) -> Option<Error> {
        let failed = self.failed_tests();
        (!failed.is_empty()).then(|| Error::DataTests {
            tests: self.models.iter().map(|e| e.tests.len()).sum(),
            failed: failed.len(),
            details: failed,
        })
    }

    /// Whether a stage (`sql`, `segment`, `churn`) is published for the date.
    pub(crate) fn has_completed(&self, stage: &str) -> bool {
        self.completed.iter().any(|s| s == stage)
    }

    /// A few lines for the terminal: what was published.
    pub fn summary(&self) -> String {
        let mut lines = vec![format!(
            "run {} for {}: {}",
            self.run_id, self.run_date, self.status
        )];
        for model in &self.models {
            if let Some(output) = &model.output {
                lines.push(format!(
                    "  {:<28} {:>10} rows  {}",
                    model.model, output.rows, output.path
                ));
            }
        }
        for job in &self.jobs {
            lines.extend(job.lines());
        }
        lines.push(format!("  manifest: {}", Self::relative_path(self.run_date)));
        lines.join("\n")
    }
}
