//! `transform`: the SQL stage alone, for a scheduler that runs stages apart.

use std::path::PathBuf;

use chrono::NaiveDate;
use clap::Parser;
use growth_jobs::{cli, transform};

/// Validates the input and runs the SQL models under `sql/` for one run date, publishing each
/// table under <output>/<table>/run_date=<date>/ and a manifest. Exit codes: 0 success,
/// 1 internal failure, 2 bad command line, 3 bad input data, 4 bad SQL model.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Input root: a folder or s3://bucket/prefix with one folder of Parquet files per table.
    #[arg(long, env = "GROWTH_INPUT")]
    input: String,
    /// Output root: a folder or s3://bucket/prefix.
    #[arg(long, env = "GROWTH_OUTPUT")]
    output: String,
    /// The folder of SQL models.
    #[arg(long, env = "GROWTH_SQL", default_value = "sql")]
    models: PathBuf,
    /// The run date (UTC, YYYY-MM-DD). Default: the day of the latest order.
    #[arg(long, env = "GROWTH_DATE")]
    date: Option<NaiveDate>,
    /// Run only these models (comma-separated) and the models they read.
    #[arg(long, value_delimiter = ',')]
    select: Vec<String>,
}

fn main() {
    let args = Args::parse();
    cli::init_logging();
    let options = transform::TransformOptions {
        input: args.input,
        output: args.output,
        models_dir: args.models,
        run_date: args.date,
        select: args.select,
    };
    let result = cli::runtime().and_then(|rt| rt.block_on(transform::run(&options)));
    cli::exit(result.map(|manifest| println!("{}", manifest.summary())))
}
