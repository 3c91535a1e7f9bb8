//! What every binary shares: its flags, its runtime, and turning a result into one error
//! line and an exit code. Only binaries use it; logging and progress live in
//! [`crate::telemetry`].

use crate::error::{Error, exit_code};

/// The exit codes, as every binary's `--help` ends (docs/reference/binaries.md: Exit codes).
pub const EXIT_CODES: &str = "Exit codes: 0 success; 1 internal failure; 2 bad command line; \
3 bad input data, or a stage's input not published or too thin to train on; 4 bad SQL model, \
config or saved model; 5 a data test failed; 6 out of memory under --memory-limit, out of disk \
or the output not writable; 7 another run holds the output's lock; 8 stopped by SIGTERM or SIGINT \
at a safe point; 9 the input is stale (quality.max_input_age).";

/// Ends the process: prints the error, if any, as one line and exits with its code.
pub fn exit(result: Result<(), Error>) -> ! {
    crate::telemetry::progress().finish_and_clear();
    match result {
        Ok(()) => std::process::exit(exit_code::SUCCESS),
        Err(error) => {
            if crate::telemetry::json_logs() {
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

/// The flags every binary shares: where the output goes, the date, and the config with its
/// overrides. Precedence, highest first: flag, environment variable, config file, default.
#[derive(clap::Args, Debug)]
pub struct CommonArgs {
    /// Output root: a folder or s3://bucket/prefix. Default: [run] output in the config, else
    /// data/output.
    #[arg(long, env = "GROWTH_OUTPUT")]
    pub output: Option<String>,
    /// The run date (UTC, YYYY-MM-DD); nothing after its end is seen.
    #[arg(long, env = "GROWTH_DATE")]
    pub date: Option<chrono::NaiveDate>,
    /// The TOML file of paths, thresholds and model settings. Default: sql/growth.toml when
    /// present, else the built-in defaults (docs/reference/config.md).
    #[arg(long, env = "GROWTH_CONFIG")]
    pub config: Option<std::path::PathBuf>,
    /// Overrides one key of the config file, as section.key=value (repeatable), such as
    /// --set churn.horizon_days=60; GROWTH_SET takes several separated by ';'.
    #[arg(
        long = "set",
        env = "GROWTH_SET",
        value_delimiter = ';',
        value_name = "KEY=VALUE"
    )]
    pub overrides: Vec<String>,
    /// Memory for DataFusion's sorts, aggregations and joins in this process, such as 3GiB;
    /// beyond it sorts and aggregations spill to the temp folder (TMPDIR); a hash join's build
    /// side cannot spill. At least 1GiB. Default: [run] memory_limit in the config, else no cap.
    #[arg(long, env = "GROWTH_MEMORY_LIMIT", value_name = "SIZE")]
    pub memory_limit: Option<String>,
}

/// Where the SQL models run, for the binaries that run them.
#[derive(clap::Args, Debug)]
pub struct EngineArgs {
    /// Where the SQL models run: local (this process) or ballista://HOST:PORT, a Ballista
    /// scheduler whose executors see the input and output roots at the same paths (a shared
    /// folder, or s3:// opened from their own AWS_* environment). Default: [run] engine in the
    /// config, else local.
    #[arg(long, env = "GROWTH_ENGINE", value_name = "ENGINE")]
    pub engine: Option<String>,
}

impl CommonArgs {
    /// Loads the config with every override applied, and caps this process's memory (or, without
    /// a cap, keeps freed memory for reuse).
    pub fn config(&self) -> Result<crate::config::Config, Error> {
        let mut overrides = self.overrides.clone();
        if let Some(limit) = &self.memory_limit {
            overrides.push(format!("run.memory_limit=\"{limit}\""));
        }
        let config = crate::config::Config::load_with(self.config.as_deref(), &overrides)?;
        crate::input::rules::check_policies(&config.quality).map_err(|reason| Error::BadConfig {
            file: self.config.as_ref().map_or_else(
                || crate::config::DEFAULT_CONFIG.into(),
                |p| p.display().to_string(),
            ),
            reason,
        })?;
        if let Some(bytes) = config.run.memory_limit_bytes().map_err(Error::Internal)? {
            crate::engine::limit_memory(bytes)?;
        } else {
            crate::allocator::keep_freed_memory();
        }
        Ok(config)
    }

    /// The output root: the flag, else the config's, else `data/output`.
    pub fn output(&self, config: &crate::config::Config) -> String {
        self.output
            .clone()
            .or_else(|| config.run.output.clone())
            .unwrap_or_else(|| crate::nightly::DEFAULT_OUTPUT.to_string())
    }
}

/// The flags of every binary that runs the SQL models for a date.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// The folder of SQL models.
    #[arg(long, env = "GROWTH_SQL", default_value = "sql")]
    pub models: std::path::PathBuf,
    /// Run only these models (comma-separated) and the models they read.
    #[arg(long, value_delimiter = ',')]
    pub select: Vec<String>,
    #[command(flatten)]
    pub engine: EngineArgs,
}

impl RunArgs {
    /// The transform's options; `input` is the flag's, else the config's (absent: empty).
    pub fn options(&self, input: Option<String>) -> Result<crate::transform::TransformOptions, Error> {
        let mut config = self.common.config()?;
        if let Some(engine) = &self.engine.engine {
            engine
                .parse::<crate::config::Engine>()
                .map_err(|e| Error::Usage(format!("--engine: {e}")))?;
            config.run.engine = Some(engine.clone());
        }
        Ok(crate::transform::TransformOptions {
            input: input.or_else(|| config.run.input.clone()).unwrap_or_default(),
            output: self.common.output(&config),
            models_dir: self.models.clone(),
            run_date: self.common.date,
            select: self.select.clone(),
            config,
        })
    }
}

/// The flags of the model stages that read published outputs (segment, churn, score).
#[derive(clap::Args, Debug)]
pub struct StageArgs {
    #[command(flatten)]
    pub common: CommonArgs,
}

impl StageArgs {
    /// The output root, the run date (default: the latest published customer_features) and
    /// the config.
    pub async fn open(
        &self,
    ) -> Result<(crate::storage::Root, chrono::NaiveDate, crate::config::Config), Error> {
        self.open_reading(crate::learn::features::TABLE).await
    }

    /// [`open`](Self::open) for a stage that reads `table`: the run date defaults to its latest
    /// published partition.
    pub(crate) async fn open_reading(
        &self,
        table: &str,
    ) -> Result<(crate::storage::Root, chrono::NaiveDate, crate::config::Config), Error> {
        let config = self.common.config()?;
        let output = crate::storage::Root::open(&self.common.output(&config), true)?;
        let date = match self.common.date {
            Some(date) => date,
            None => crate::output::published::latest(&output, table).await?,
        };
        Ok((output, date, config))
    }
}

/// The body of a model stage's binary: the stage alone for one date (by default the latest
/// partition of what it reads), holding the output's lock and recorded in the date's manifest.
/// `input` (a root and the models folder) is for the stages that compute features at earlier
/// dates.
pub fn run_stage_alone(
    stage: crate::stages::Stage,
    args: &StageArgs,
    input: Option<(&str, &std::path::Path)>,
) -> ! {
    run_stage(async {
        let (output, date, config) = args.open_reading(stage.dated_by()).await?;
        let as_of = match input {
            Some((root, models)) => Some(crate::learn::features::AsOf::new(
                crate::input::contract::Source::open(root).await?,
                models,
                config.clone(),
            )?),
            None => None,
        };
        crate::output::run::stage_alone(&output, date, stage.name(), async |output| {
            let context = crate::stages::StageContext {
                output,
                run_date: date,
                config: &config,
                as_of: as_of.as_ref(),
            };
            stage.run(&context).await
        })
        .await
    })
}

/// The body of a model stage's binary: sets up logging, runs the stage, prints what it
/// published, and exits with the code of the outcome.
pub fn run_stage(stage: impl Future<Output = Result<crate::output::manifest::StageReport, Error>>) -> ! {
    crate::telemetry::init_logging();
    let result = runtime().and_then(|rt| rt.block_on(stage));
    exit(result.map(|report| {
        println!("{} published:", report.stage);
        for line in report.lines() {
            println!("{line}");
        }
        println!("  {}", report.summary);
    }))
}
