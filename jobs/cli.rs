//! What every binary shares: logging, the progress display, and turning a result into an
//! exit code.
//!
//! Logs go to stderr through `tracing` (`RUST_LOG` sets the level, `info` by default). On a
//! terminal a progress bar shows the models as they run and log lines print above it; with no
//! terminal (a scheduler, CI) there is no bar, only plain log lines.

use std::io::{IsTerminal, Write};
use std::sync::OnceLock;

use indicatif::{ProgressBar, ProgressStyle};
use tracing_subscriber::EnvFilter;

use crate::error::{Error, exit_code};

static BAR: OnceLock<ProgressBar> = OnceLock::new();

/// The progress bar, hidden unless stderr is a terminal.
pub fn progress() -> &'static ProgressBar {
    BAR.get_or_init(|| {
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}")
                    .expect("the template is valid"),
            );
            bar
        } else {
            ProgressBar::hidden()
        }
    })
}

/// A log line buffered, then written to stderr with the progress bar moved out of the way.
struct LogLine(Vec<u8>);

impl Write for LogLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LogLine {
    fn drop(&mut self) {
        let line = std::mem::take(&mut self.0);
        progress().suspend(|| {
            let _ = std::io::stderr().write_all(&line);
        });
    }
}

/// The environment variable that switches logs to JSON lines (`GROWTH_LOG_FORMAT=json`), for
/// log shippers; anything else means plain text.
pub const LOG_FORMAT: &str = "GROWTH_LOG_FORMAT";

fn json_logs() -> bool {
    std::env::var(LOG_FORMAT).is_ok_and(|f| f.eq_ignore_ascii_case("json"))
}

/// Sets up logging for a binary.
pub fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(|| LogLine(Vec::new()));
    let _ = if json_logs() {
        // One JSON object per line: timestamp, level, message and every field at the top level.
        builder.json().flatten_event(true).with_ansi(false).try_init()
    } else {
        builder.with_ansi(std::io::stderr().is_terminal()).try_init()
    };
}

/// Ends the process: prints the error, if any, as one line and exits with its code.
pub fn exit(result: Result<(), Error>) -> ! {
    progress().finish_and_clear();
    match result {
        Ok(()) => std::process::exit(exit_code::SUCCESS),
        Err(error) => {
            if json_logs() {
                // The one error line, as a log event a shipper can parse like the others.
                tracing::error!(exit_code = error.exit_code(), "{error}");
            } else {
                eprintln!("error: {error}");
            }
            std::process::exit(error.exit_code())
        }
    }
}

/// A multi-threaded runtime for a binary's async work.
pub fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(Error::io("starting the async runtime"))
}

/// The flags of every binary that runs the SQL models for a date.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Output root: a folder or s3://bucket/prefix.
    #[arg(long, env = "GROWTH_OUTPUT", default_value = crate::nightly::DEFAULT_OUTPUT)]
    pub output: String,
    /// The folder of SQL models.
    #[arg(long, env = "GROWTH_SQL", default_value = "sql")]
    pub models: std::path::PathBuf,
    /// The run date (UTC, YYYY-MM-DD); nothing after its end is seen. Default: the day of the
    /// latest order in the input.
    #[arg(long, env = "GROWTH_DATE")]
    pub date: Option<chrono::NaiveDate>,
    /// Run only these models (comma-separated) and the models they read.
    #[arg(long, value_delimiter = ',')]
    pub select: Vec<String>,
    /// The TOML file of KPI thresholds and settings. Default: sql/growth.toml when present,
    /// else the built-in defaults (README: Configuration).
    #[arg(long, env = "GROWTH_CONFIG")]
    pub config: Option<std::path::PathBuf>,
}

impl RunArgs {
    /// The transform's options for an input root.
    pub fn options(self, input: String) -> Result<crate::transform::TransformOptions, Error> {
        Ok(crate::transform::TransformOptions {
            input,
            output: self.output,
            models_dir: self.models,
            run_date: self.date,
            select: self.select,
            config: crate::config::Config::load(self.config.as_deref())?,
        })
    }
}

/// The flags of the model stages that read published outputs (segment, churn, score).
#[derive(clap::Args, Debug)]
pub struct StageArgs {
    /// Output root: a folder or s3://bucket/prefix, where customer_features is published.
    #[arg(long, env = "GROWTH_OUTPUT", default_value = crate::nightly::DEFAULT_OUTPUT)]
    pub output: String,
    /// The run date (UTC, YYYY-MM-DD). Default: the latest published customer_features.
    #[arg(long, env = "GROWTH_DATE")]
    pub date: Option<chrono::NaiveDate>,
    /// The TOML file of settings ([segment], [churn]). Default: sql/growth.toml when present.
    #[arg(long, env = "GROWTH_CONFIG")]
    pub config: Option<std::path::PathBuf>,
}

impl StageArgs {
    /// The output root, the run date and the config.
    pub async fn open(
        &self,
    ) -> Result<(crate::storage::Root, chrono::NaiveDate, crate::config::Config), Error> {
        let output = crate::storage::Root::open(&self.output, true)?;
        let date = match self.date {
            Some(date) => date,
            None => crate::stage::latest_partition(&output, crate::features::TABLE).await?,
        };
        let config = crate::config::Config::load(self.config.as_deref())?;
        Ok((output, date, config))
    }
}

/// The body of a model stage's binary: sets up logging, runs the stage, prints what it
/// published, and exits with the code of the outcome.
pub fn run_stage(stage: impl Future<Output = Result<crate::stage::StageReport, Error>>) -> ! {
    init_logging();
    let result = runtime().and_then(|rt| rt.block_on(stage));
    exit(result.map(|report| {
        println!("{} published:", report.stage);
        for line in report.lines() {
            println!("{line}");
        }
        println!("  {}", report.summary);
    }))
}
