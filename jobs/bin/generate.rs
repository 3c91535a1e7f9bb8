//! `generate`: writes a synthetic marketplace in the input contract.

use std::path::PathBuf;

use chrono::NaiveDate;
use clap::Parser;
use growth_jobs::{cli, nightly, sample};

#[global_allocator]
static ALLOCATOR: growth_jobs::allocator::Allocator = growth_jobs::allocator::Allocator;

/// Writes a seeded synthetic marketplace (customers, orders, sessions, marketing_spend,
/// invites, shipments) as Parquet, one folder per table, plus the planted truth in _truth/.
/// The same flags give byte-identical files.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Customers to simulate (1,000 to 10,000,000 are the tested range).
    #[arg(long, default_value_t = 10_000)]
    customers: u64,
    /// Random seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// First day of the history.
    #[arg(long, default_value = "2024-07-01")]
    start: NaiveDate,
    /// Days of history.
    #[arg(long, default_value_t = 730)]
    days: u32,
    /// Rows per Parquet file before the next file is started.
    #[arg(long, default_value_t = 2_000_000)]
    rows_per_file: usize,
    /// Output folder (replaced as a whole once complete).
    #[arg(long, default_value = nightly::SAMPLE_INPUT)]
    output: PathBuf,
    /// Replace the output folder if it exists.
    #[arg(long)]
    force: bool,
}

fn main() {
    let args = Args::parse();
    growth_jobs::telemetry::init_logging();
    let options = sample::SampleOptions {
        customers: args.customers,
        seed: args.seed,
        start: args.start,
        days: args.days,
        rows_per_file: args.rows_per_file,
        output: args.output,
        force: args.force,
        threads: 0,
    };
    cli::exit(sample::generate(&options).map(|report| {
        for (table, rows) in report {
            println!("{table}: {rows} rows");
        }
    }))
}
