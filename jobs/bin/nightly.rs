//! `nightly`: everything for one run date, in one command a scheduler can call.

use std::path::PathBuf;

use chrono::NaiveDate;
use clap::Parser;
use growth_jobs::{cli, nightly, transform::TransformOptions};

/// Runs the night for one date: validates the input, runs every SQL model under `sql/` as of
/// that date, and publishes each table as Parquet under <output>/<table>/run_date=<date>/ with
/// a manifest under <output>/_manifests/. Exit codes: 0 success, 1 internal failure, 2 bad
/// command line, 3 bad input data, 4 bad SQL model.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Input root: a folder or s3://bucket/prefix holding one folder of Parquet files per
    /// table. Default: the embedded sample in data/sample, generated on first use.
    #[arg(long, env = "GROWTH_INPUT")]
    input: Option<String>,
    /// Output root: a folder or s3://bucket/prefix.
    #[arg(long, env = "GROWTH_OUTPUT", default_value = nightly::DEFAULT_OUTPUT)]
    output: String,
    /// The folder of SQL models.
    #[arg(long, env = "GROWTH_SQL", default_value = "sql")]
    models: PathBuf,
    /// The run date (UTC, YYYY-MM-DD); nothing after its end is seen. Default: the day of the
    /// latest order in the input.
    #[arg(long, env = "GROWTH_DATE")]
    date: Option<NaiveDate>,
    /// Run only these models (comma-separated) and the models they read.
    #[arg(long, value_delimiter = ',')]
    select: Vec<String>,
}

fn main() {
    let args = Args::parse();
    cli::init_logging();
    let options = TransformOptions {
        input: String::new(),
        output: args.output,
        models_dir: args.models,
        run_date: args.date,
        select: args.select,
    };
    let result = cli::runtime().and_then(|rt| rt.block_on(nightly::run(args.input, options)));
    cli::exit(result.map(|manifest| {
        println!("{}", manifest.summary());
    }))
}
