//! The one error type of the library, and the exit code each failure maps to.
//!
//! Every variant names what went wrong and where (table, file, column, model) so that the
//! person on call can act on the message alone. The exit code tells a scheduler whether the
//! input or the project is to blame, or something internal.

use std::path::PathBuf;

/// Where the input contract is documented; quoted in input errors.
pub(crate) const CONTRACT_DOC: &str = "docs: docs/reference/input-contract.md";

/// Process exit codes, documented in docs/reference/binaries.md.
pub mod exit_code {
    /// The run finished and published everything it was asked to.
    pub(crate) const SUCCESS: i32 = 0;
    /// Something internal failed (I/O, the engine): rerun, or report a bug.
    pub const INTERNAL: i32 = 1;
    /// The command line was wrong (clap's own code).
    pub const USAGE: i32 = 2;
    /// The input data breaks the contract: fix the input, then rerun.
    pub const BAD_INPUT: i32 = 3;
    /// A SQL model is wrong (syntax, unknown table, cycle, failure at run time): fix `sql/`.
    pub const BAD_MODEL: i32 = 4;
    /// A data test failed: that model and everything downstream were not published, the
    /// others were; the manifest names the test and its failing rows.
    pub const DATA_TEST: i32 = 5;
    /// Out of memory under `--memory-limit`, out of disk, or the output cannot be written: raise
    /// the cap, free disk space, or fix the output's permissions.
    pub const RESOURCES: i32 = 6;
    /// Another run holds the output's lock: it is named in the message; try again later.
    pub const LOCKED: i32 = 7;
    /// SIGTERM or SIGINT stopped the run at a safe point: nothing is half-published and the
    /// lock is released; rerun (a backfill with --resume) to go on.
    pub const STOPPED: i32 = 8;
    /// The input is stale: its newest order is older than `quality.max_input_age`; nothing
    /// was run. Wait for the export (retry later), or alert when it stays stale.
    pub const STALE_INPUT: i32 = 9;
}

/// Everything that can stop a run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot open {root}: {reason}")]
    BadRoot { root: String, reason: String },

    #[error("{table}: required table missing: no folder {location}; {CONTRACT_DOC}")]
    MissingTable { table: String, location: String },

    #[error("{table}: folder {location} holds no Parquet files; remove it if the table is absent on purpose")]
    EmptyTable { table: String, location: String },

    #[error("{table}: cannot read Parquet file {file}: {reason}")]
    BadFile {
        table: String,
        file: String,
        reason: String,
    },

    #[error("{table}: column {column} missing in {file}; {CONTRACT_DOC}")]
    MissingColumn {
        table: String,
        column: String,
        file: String,
    },

    #[error(
        "{table}: column {column} in {file} is {found}, which cannot be cast losslessly to {expected}; {CONTRACT_DOC}"
    )]
    BadType {
        table: String,
        column: String,
        file: String,
        found: String,
        expected: String,
    },

    #[error("{table}: {rows} rows fail a check: {check}")]
    BadRows { table: String, check: String, rows: u64 },

    #[error(
        "{table}: none of its {rows} rows is on or before the run date {run_date} (in {location}); pass a later --date, or check the export"
    )]
    NothingAsOf {
        table: String,
        rows: u64,
        run_date: chrono::NaiveDate,
        location: String,
    },

    #[error("{stage}: needs {location}, which is not there; {hint}")]
    MissingStageInput {
        stage: String,
        location: String,
        hint: String,
    },

    #[error("{job}: cannot train: {reason}; earlier outputs stay published")]
    CannotTrain { job: String, reason: String },

    #[error(
        "{job}: the {candidate} model ranks its own {window} data no better than chance (ROC AUC {roc_auc:.4}); this is a bug in growth-jobs, please report it with the manifest"
    )]
    InvertedModel {
        job: String,
        candidate: String,
        window: String,
        roc_auc: f64,
    },

    #[error("no run date given and {reason}; pass --date YYYY-MM-DD")]
    NoRunDate { reason: String },

    #[error("config {file}: {reason}")]
    BadConfig { file: String, reason: String },

    #[error("cannot read model file {}: {source}", path.display())]
    ModelUnreadable { path: PathBuf, source: std::io::Error },

    #[error("models {first} and {second} share the table name {name}: rename one file")]
    DuplicateModel {
        name: String,
        first: String,
        second: String,
    },

    #[error("model {model} ({file}): {reason}")]
    BadModel {
        model: String,
        file: String,
        reason: String,
    },

    #[error("model {model} ({file}) reads table {table}, which is neither an input table nor a model")]
    UnknownTable {
        model: String,
        file: String,
        table: String,
    },

    #[error("models form a dependency cycle: {}", files.join(" -> "))]
    ModelCycle { files: Vec<String> },

    #[error("unknown model {name} in the selection; models are the .sql file names under sql/")]
    UnknownSelection { name: String },

    #[error("model {model} ({file}) failed while running: {reason}")]
    ModelFailed {
        model: String,
        file: String,
        reason: String,
    },

    #[error("{failed} of {tests} data tests failed: {}; those models and everything downstream were not published", details.join("; "))]
    DataTests {
        tests: usize,
        failed: usize,
        details: Vec<String>,
    },

    #[error(
        "out of resources while {context}: {reason}; raise --memory-limit, free disk space (output and TMPDIR), then rerun"
    )]
    OutOfResources { context: String, reason: String },

    #[error("cannot write to the output {output}: {reason}")]
    OutputUnwritable { output: String, reason: String },

    #[error(
        "{output} is locked by {holder}; wait for it to finish or for its lease to expire, or run `unlock --output {output}` if no such run is alive (the lock: {lock})"
    )]
    Locked {
        output: String,
        holder: String,
        lock: String,
    },

    #[error(
        "lost the lock of {output}: another run took it over (this run's lease could not be renewed in time); this run published nothing more, and the other run's output stands (the lock: {lock})"
    )]
    LostLock { output: String, lock: String },

    #[error(
        "the input {input} is stale: its newest order_ts is {newest} before {reference}, more than quality.max_input_age ({max_age}); nothing was run: check the export, or run a date the input reaches"
    )]
    StaleInput {
        input: String,
        /// The newest order time and its age.
        newest: String,
        reference: String,
        max_age: String,
    },

    #[error("{count} of the {of} dates failed (the exit code is the first one's): {dates}")]
    DatesFailed {
        code: i32,
        count: usize,
        of: usize,
        dates: String,
    },

    #[error(
        "stopped by {signal} at a safe point: nothing is half-published and the lock is released; rerun (a backfill with --resume) to go on"
    )]
    Stopped { signal: &'static str },

    #[error("{context}: {source}")]
    Engine {
        context: String,
        source: datafusion::error::DataFusionError,
    },

    #[error("{context}: {source}")]
    Store {
        context: String,
        source: object_store::Error,
    },

    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },

    #[error("{context}: {source}")]
    Arrow {
        context: String,
        source: datafusion::arrow::error::ArrowError,
    },

    #[error("{context}: {source}")]
    Parquet {
        context: String,
        source: datafusion::parquet::errors::ParquetError,
    },

    #[error("{table}: column {column} {problem}; check the model that builds {table}")]
    BadColumn {
        table: String,
        column: String,
        problem: String,
    },

    #[error("cannot run on {engine}: {reason}")]
    EngineUnavailable { engine: String, reason: String },

    #[error("{0}")]
    Usage(String),

    #[error("{0}")]
    Internal(String),
}

impl Error {
    /// The process exit code for this failure.
    pub fn exit_code(&self) -> i32 {
        use Error::*;
        match self {
            BadRoot { .. }
            | MissingTable { .. }
            | EmptyTable { .. }
            | BadFile { .. }
            | MissingColumn { .. }
            | BadType { .. }
            | BadRows { .. }
            | NothingAsOf { .. }
            | MissingStageInput { .. }
            | CannotTrain { .. }
            | NoRunDate { .. } => exit_code::BAD_INPUT,
            BadConfig { .. }
            | ModelUnreadable { .. }
            | DuplicateModel { .. }
            | BadModel { .. }
            | UnknownTable { .. }
            | ModelCycle { .. }
            | UnknownSelection { .. }
            | ModelFailed { .. }
            | BadColumn { .. } => exit_code::BAD_MODEL,
            Usage(_) => exit_code::USAGE,
            DataTests { .. } => exit_code::DATA_TEST,
            OutOfResources { .. } | OutputUnwritable { .. } => exit_code::RESOURCES,
            Locked { .. } | LostLock { .. } => exit_code::LOCKED,
            Stopped { .. } => exit_code::STOPPED,
            StaleInput { .. } => exit_code::STALE_INPUT,
            DatesFailed { code, .. } => *code,
            Engine { .. }
            | EngineUnavailable { .. }
            | Store { .. }
            | Io { .. }
            | Arrow { .. }
            | Parquet { .. }
            | InvertedModel { .. }
            | Internal(_) => exit_code::INTERNAL,
        }
    }

    /// Whether this failure ends a backfill even under `--keep-going`: a stop asked for, or
    /// the output's lock held or lost, concerns every later date too.
    pub(crate) fn ends_a_backfill(&self) -> bool {
        matches!(
            self,
            Error::Stopped { .. } | Error::Locked { .. } | Error::LostLock { .. }
        )
    }

    /// Wraps an engine error with what we were doing.
    pub fn engine(context: impl Into<String>) -> impl FnOnce(datafusion::error::DataFusionError) -> Self {
        wrap(context, |context, source| Error::Engine { context, source })
    }

    /// Wraps an object-store error with what we were doing.
    pub fn store(context: impl Into<String>) -> impl FnOnce(object_store::Error) -> Self {
        wrap(context, |context, source| Error::Store { context, source })
    }

    /// Wraps an Arrow error with what we were doing.
    pub fn arrow(context: impl Into<String>) -> impl FnOnce(datafusion::arrow::error::ArrowError) -> Self {
        wrap(context, |context, source| Error::Arrow { context, source })
    }

    /// Wraps a Parquet error with what we were doing: a full disk under a writer is exit 6,
    /// not a bug.
    pub fn parquet(
        context: impl Into<String>,
    ) -> impl FnOnce(datafusion::parquet::errors::ParquetError) -> Self {
        wrap(context, |context, source| Error::Parquet { context, source })
    }

    /// Wraps an I/O error with what we were doing.
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        wrap(context, |context, source| Error::Io { context, source })
    }
}

/// A wrapper of an error from below with what we were doing: a lack of memory or disk
/// anywhere in its chain is [`Error::OutOfResources`] (exit 6), anything else `variant`.
fn wrap<E: std::error::Error + 'static>(
    context: impl Into<String>,
    variant: fn(String, E) -> Error,
) -> impl FnOnce(E) -> Error {
    let context = context.into();
    move |source| match out_of_resources(&source) {
        Some(reason) => Error::OutOfResources { context, reason },
        None => variant(context, source),
    }
}

/// Why an error is a lack of memory or disk, if it is one. The cause may sit under several
/// layers (a stream inside a write inside a task), so the whole chain is searched, and its
/// text too: some layers keep only the message of what they wrap.
pub(crate) fn out_of_resources(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::StorageFull
        {
            return Some(format!("the disk is full ({io})"));
        }
        cause = e.source();
    }
    let text = error.to_string();
    if text.contains("Resources exhausted") {
        let detail = text
            .split("Resources exhausted")
            .nth(1)
            .unwrap_or("")
            .trim_start_matches(':')
            .trim();
        return Some(format!("the memory cap was reached: {detail}"));
    }
    // A task that failed on a Ballista executor comes back as text holding the executor's
    // error in its Debug form: `...DataFusionError(ResourcesExhausted("Failed to allocate
    // ..."))`. The cap reached is then the executor's, not this process's.
    if let Some(rest) = text.split("ResourcesExhausted(\"").nth(1) {
        let detail = rest.split("\")").next().unwrap_or(rest);
        return Some(format!(
            "an executor's memory cap was reached (growth-executor --memory-limit): {detail}"
        ));
    }
    if text.contains("No space left on device") || text.contains("os error 28") {
        return Some(format!("the disk is full ({text})"));
    }
    None
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::error::ArrowError;
    use datafusion::parquet::errors::ParquetError;

    fn disk_full() -> std::io::Error {
        std::io::Error::from(std::io::ErrorKind::StorageFull)
    }

    #[test]
    fn a_cluster_task_out_of_memory_is_a_resource_failure_naming_the_executors_cap() {
        // The text of a failed job as the Ballista client returns it (10M customers, 2 GiB
        // executors, 2026-12-06).
        let text = "Job 038JC5JDBT000 failed: Job failed due to stage 4 failed: Task failed due \
            to runtime execution error: DataFusionError(Shared(External(DataFusionError(\
            ResourcesExhausted(\"Failed to allocate additional 34.0 KB for \
            ExternalSorterMerge[0] with 94.4 MB already allocated for this reservation - 2.7 KB \
            remain available for the total memory pool: fair(pool_size: 2.0 GB)\")))))";
        let e = datafusion::error::DataFusionError::Execution(text.into());
        let reason = out_of_resources(&e).expect("a resource failure");
        assert!(reason.contains("growth-executor --memory-limit"), "{reason}");
        assert!(reason.contains("ExternalSorterMerge[0]"), "{reason}");
        assert!(reason.ends_with("pool_size: 2.0 GB)"), "{reason}");
        let plain = datafusion::error::DataFusionError::Execution("Job 1 failed: bad cast".into());
        assert_eq!(out_of_resources(&plain), None);
    }

    #[test]
    fn a_full_disk_under_a_writer_is_a_resource_failure_not_a_bug() {
        let parquet = Error::parquet("writing orders")(ParquetError::from(disk_full()));
        assert_eq!(parquet.exit_code(), exit_code::RESOURCES, "{parquet}");
        let arrow = Error::arrow("writing orders")(ArrowError::IoError("writing".into(), disk_full()));
        assert_eq!(arrow.exit_code(), exit_code::RESOURCES, "{arrow}");
    }

    #[test]
    fn other_arrow_and_parquet_errors_keep_their_cause() {
        let parquet = Error::parquet("reading a footer")(ParquetError::General("bad magic".into()));
        assert_eq!(parquet.exit_code(), exit_code::INTERNAL);
        assert!(std::error::Error::source(&parquet).is_some(), "{parquet}");
        let arrow = Error::arrow("casting")(ArrowError::CastError("no".into()));
        assert!(matches!(arrow, Error::Arrow { .. }));
        assert!(std::error::Error::source(&arrow).is_some(), "{arrow}");
    }
}
