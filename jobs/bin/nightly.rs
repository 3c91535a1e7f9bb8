//! `nightly`: everything for one run date, or a range of dates, in one command a scheduler
//! can call.

use clap::Parser;
use growth_jobs::cli;
use growth_jobs::nightly::{self, NightlyOptions};

#[global_allocator]
static ALLOCATOR: growth_jobs::allocator::Allocator = growth_jobs::allocator::Allocator;

/// Runs the night: validates the input, runs every SQL model under sql/ as of the run date,
/// then the segment, churn, lifetime-value and report stages, and publishes each table as Parquet under
/// <output>/<table>/run_date=<date>/, with a manifest under <output>/_manifests/ written after
/// each stage (status succeeded once all are published). One run at a time per output: the
/// lock <output>/_lock.json names its holder.
///
/// Settings: flag, then environment variable, then the config file (sql/growth.toml), then the
/// default.
#[derive(Parser, Debug)]
#[command(version, after_help = cli::EXIT_CODES)]
struct Args {
    /// Input root: a folder or s3://bucket/prefix holding one folder of Parquet files per
    /// table. Default: [run] input in the config; with none, the night stops (exit 2).
    #[arg(long, env = "GROWTH_INPUT")]
    input: Option<String>,
    /// Run on the embedded sample in data/sample (10,000 customers, generated on first use)
    /// instead of an input root.
    #[arg(long, conflicts_with = "input")]
    sample: bool,
    /// Backfill: run every date from this one (UTC, YYYY-MM-DD) to --to, in order; stops at the
    /// first date that fails, unless --keep-going.
    #[arg(long, conflicts_with = "date")]
    from: Option<chrono::NaiveDate>,
    /// The last date of a backfill. Default: yesterday (UTC).
    #[arg(long, requires = "from")]
    to: Option<chrono::NaiveDate>,
    /// Skip, for each date, the stages already published with the same input files (those the
    /// date can see), build, SQL and settings (the manifest's fingerprint); run the rest.
    #[arg(long)]
    resume: bool,
    /// Run every date of the backfill even when some fail; exit non-zero at the end (with the
    /// first failed date's code), listing each failed date and why.
    #[arg(long)]
    keep_going: bool,
    /// Print the plan (dates, input tables found, stages and models in order, what --resume
    /// would skip) and write nothing.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    run: cli::RunArgs,
}

fn main() {
    let args = Args::parse();
    growth_jobs::telemetry::init_logging();
    let result = args.run.options(args.input.clone()).and_then(|transform| {
        let options = NightlyOptions {
            transform,
            sample: args.sample,
            from: args.from,
            to: args.to,
            resume: args.resume,
            keep_going: args.keep_going,
            dry_run: args.dry_run,
        };
        cli::runtime().and_then(|rt| rt.block_on(nightly::run_dates(options)))
    });
    cli::exit(result.map(|manifests| {
        for manifest in manifests {
            println!("{}", manifest.summary());
        }
    }))
}
