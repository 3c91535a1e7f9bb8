//! Helpers shared by the integration tests: writing input tables, running the transform,
//! reading published tables back.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use datafusion::arrow::array::{ArrayRef, Float64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use growth_jobs::sample::{self, SampleOptions};
use growth_jobs::transform::{self, TransformOptions};

/// Microseconds since the epoch of a UTC time written `2025-01-31T23:59:59` (a fraction of a
/// second, `.999999`, may follow).
pub fn micros(text: &str) -> i64 {
    chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
        .expect("a valid test timestamp")
        .and_utc()
        .timestamp_micros()
}

pub fn date(text: &str) -> NaiveDate {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").expect("a valid test date")
}

pub fn strings(values: &[&str]) -> ArrayRef {
    Arc::new(StringArray::from(values.to_vec()))
}

pub fn floats(values: &[f64]) -> ArrayRef {
    Arc::new(Float64Array::from(values.to_vec()))
}

pub fn timestamps(values: &[&str]) -> ArrayRef {
    Arc::new(
        TimestampMicrosecondArray::from(values.iter().map(|v| micros(v)).collect::<Vec<_>>())
            .with_timezone("UTC"),
    )
}

/// Writes one Parquet file of the given columns.
pub fn write_parquet(path: &Path, columns: Vec<(&str, ArrayRef)>) {
    std::fs::create_dir_all(path.parent().expect("a file has a folder")).unwrap();
    let batch = RecordBatch::try_from_iter(columns).expect("columns of one length");
    let mut writer =
        ArrowWriter::try_new(std::fs::File::create(path).unwrap(), batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

/// A minimal valid `orders` table: (order_id, customer_id, order_ts, amount_usd, status).
pub fn write_orders(input: &Path, file: &str, rows: &[(&str, &str, &str, f64, &str)]) {
    write_parquet(
        &input.join("orders").join(file),
        vec![
            ("order_id", strings(&rows.iter().map(|r| r.0).collect::<Vec<_>>())),
            (
                "customer_id",
                strings(&rows.iter().map(|r| r.1).collect::<Vec<_>>()),
            ),
            (
                "order_ts",
                timestamps(&rows.iter().map(|r| r.2).collect::<Vec<_>>()),
            ),
            (
                "amount_usd",
                floats(&rows.iter().map(|r| r.3).collect::<Vec<_>>()),
            ),
            ("status", strings(&rows.iter().map(|r| r.4).collect::<Vec<_>>())),
        ],
    );
}

/// Writes `customers/c.parquet`: one row per `(customer_id, signup_ts, market, acquisition_channel)`.
pub fn write_customers(input: &Path, rows: &[(&str, &str, &str, &str)]) {
    write_parquet(
        &input.join("customers/c.parquet"),
        vec![
            (
                "customer_id",
                strings(&rows.iter().map(|r| r.0).collect::<Vec<_>>()),
            ),
            (
                "signup_ts",
                timestamps(&rows.iter().map(|r| r.1).collect::<Vec<_>>()),
            ),
            ("market", strings(&rows.iter().map(|r| r.2).collect::<Vec<_>>())),
            (
                "acquisition_channel",
                strings(&rows.iter().map(|r| r.3).collect::<Vec<_>>()),
            ),
        ],
    );
}

/// A temp workspace: `in/` for inputs, `out/` for outputs, `sql/` for models.
pub struct Workspace {
    pub dir: tempfile::TempDir,
}

impl Workspace {
    pub fn new() -> Self {
        Workspace {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn input(&self) -> PathBuf {
        self.dir.path().join("in")
    }

    pub fn output(&self) -> PathBuf {
        self.dir.path().join("out")
    }

    pub fn models(&self) -> PathBuf {
        self.dir.path().join("sql")
    }

    /// Writes a model file below `sql/`.
    pub fn model(&self, file: &str, sql: &str) {
        let path = self.models().join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, sql).unwrap();
    }

    /// Makes `daily_sales` (of this workspace's copy of the models) fail a data test: a
    /// relationship of its `market` to an ephemeral `markets` model holding MY alone, which
    /// every other market's rows break.
    pub fn fail_daily_sales_outside_my(&self) {
        let tests = self.models().join("marts/daily_sales.tests.toml");
        let declared = std::fs::read_to_string(&tests).unwrap();
        std::fs::write(
            &tests,
            format!("{declared}\n[relationships]\nmarket = \"markets.code\"\n"),
        )
        .unwrap();
        self.model(
            "staging/markets.sql",
            "-- materialized: ephemeral\nselect 'MY' as code",
        );
    }

    /// `binary` on this workspace's input and output with the repository's models, logging
    /// warnings only, with no `GROWTH_SET` from the environment.
    pub fn command(&self, binary: &str) -> Command {
        self.command_with_models(binary, &repo_models())
    }

    /// `binary` as [`Workspace::command`] does, with the models of `models`.
    pub fn command_with_models(&self, binary: impl AsRef<std::ffi::OsStr>, models: &Path) -> Command {
        let mut command = Command::new(binary);
        command
            .arg("--input")
            .arg(self.input())
            .arg("--output")
            .arg(self.output())
            .arg("--models")
            .arg(models)
            .env("RUST_LOG", "warn")
            .env_remove("GROWTH_SET");
        command
    }

    /// The manifest of the run for `run_date`.
    pub fn manifest(&self, run_date: &str) -> serde_json::Value {
        let path = self
            .output()
            .join(format!("_manifests/run_date={run_date}/manifest.json"));
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
    }

    pub fn options(&self, run_date: Option<&str>) -> TransformOptions {
        TransformOptions {
            input: self.input().to_string_lossy().into_owned(),
            output: self.output().to_string_lossy().into_owned(),
            models_dir: self.models(),
            run_date: run_date.map(date),
            select: vec![],
            config: growth_jobs::config::Config::default(),
        }
    }

    pub async fn run(
        &self,
        run_date: Option<&str>,
    ) -> growth_jobs::Result<growth_jobs::output::manifest::Manifest> {
        transform::run(&self.options(run_date)).await
    }

    /// The published partition file of a table.
    pub fn published(&self, table: &str, run_date: &str) -> PathBuf {
        self.output()
            .join(table)
            .join(format!("run_date={run_date}"))
            .join("part-0.parquet")
    }

    /// Every file below the output folder with its bytes, sorted by path.
    pub fn snapshot(&self) -> Vec<(PathBuf, Vec<u8>)> {
        let mut files = Vec::new();
        collect(&self.output(), &mut files);
        files.sort();
        files
            .into_iter()
            .map(|p| {
                let bytes = std::fs::read(&p).unwrap();
                (p, bytes)
            })
            .collect()
    }
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// A published table's rows as a pretty-printed table, ordered by `order_by`.
pub async fn query(file: &Path, sql_after_from: &str) -> String {
    let ctx = SessionContext::new();
    ctx.register_parquet("t", file.to_str().unwrap(), ParquetReadOptions::default())
        .await
        .unwrap();
    let batches = ctx
        .sql(&format!("select * from t {sql_after_from}"))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    pretty_format_batches(&batches).unwrap().to_string()
}

/// The lines of a pretty-printed table, trimmed, for comparing with a literal.
pub fn lines(table: &str) -> Vec<String> {
    table.lines().map(|l| l.trim().to_string()).collect()
}

/// The result of a query over a published file (registered as `t`), pretty-printed.
pub async fn query_sql(file: &Path, sql: &str) -> String {
    let ctx = SessionContext::new();
    ctx.register_parquet("t", file.to_str().unwrap(), ParquetReadOptions::default())
        .await
        .unwrap();
    let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    pretty_format_batches(&batches).unwrap().to_string()
}

/// Generates a sample of `customers` customers into `folder`.
pub fn generate_into(folder: &Path, customers: u64, seed: u64) {
    let mut options = SampleOptions::embedded(folder.to_path_buf());
    options.customers = customers;
    options.seed = seed;
    options.force = true;
    sample::generate(&options).unwrap();
}

/// Copies a folder's files and subfolders into another.
pub fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

/// The repository's `sql/` folder.
pub fn repo_models() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("sql")
}

/// A finished command's standard error, as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Every row of a Parquet file, as one batch.
pub async fn read_rows(file: PathBuf) -> RecordBatch {
    let ctx = SessionContext::new();
    let df = ctx
        .read_parquet(file.to_str().unwrap(), ParquetReadOptions::default())
        .await
        .unwrap();
    let schema = Arc::new(df.schema().as_arrow().clone());
    let batches = df.collect().await.unwrap();
    datafusion::arrow::compute::concat_batches(&schema, &batches).unwrap()
}

/// Waits up to a minute for `what` to listen on `port` on loopback.
pub fn wait_for_port(port: u16, what: &str) {
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{what} never listened on port {port}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
