//! `transform`: the SQL stage alone, for a scheduler that runs stages apart.

use clap::Parser;
use growth_jobs::{cli, transform};

#[global_allocator]
static ALLOCATOR: growth_jobs::allocator::Allocator = growth_jobs::allocator::Allocator;

/// Validates the input and runs the SQL models under `sql/` for one run date, publishing each
/// table under <output>/<table>/run_date=<date>/ and a manifest.
#[derive(Parser, Debug)]
#[command(version, after_help = cli::EXIT_CODES)]
struct Args {
    /// Input root: a folder or s3://bucket/prefix with one folder of Parquet files per table.
    /// Default: [run] input in the config.
    #[arg(long, env = "GROWTH_INPUT")]
    input: Option<String>,
    #[command(flatten)]
    run: cli::RunArgs,
}

fn main() {
    let args = Args::parse();
    growth_jobs::telemetry::init_logging();
    let result = args
        .run
        .options(args.input.clone())
        .and_then(|options| {
            if options.input.is_empty() {
                Err(growth_jobs::Error::Usage(
                    "no input: pass --input, set GROWTH_INPUT, or set [run] input in the config".into(),
                ))
            } else {
                Ok(options)
            }
        })
        .and_then(|options| cli::runtime().and_then(|rt| rt.block_on(transform::run(&options))));
    cli::exit(result.map(|manifest| println!("{}", manifest.summary())))
}
