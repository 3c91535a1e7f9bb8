//! `nightly`: everything for one run date, in one command a scheduler can call.

use clap::Parser;
use growth_jobs::{cli, nightly};

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
    #[command(flatten)]
    run: cli::RunArgs,
}

fn main() {
    let args = Args::parse();
    cli::init_logging();
    let result = args
        .run
        .options(String::new())
        .and_then(|options| cli::runtime().and_then(|rt| rt.block_on(nightly::run(args.input, options))));
    cli::exit(result.map(|manifest| println!("{}", manifest.summary())))
}
