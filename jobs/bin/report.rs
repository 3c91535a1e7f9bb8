//! `report`: the morning report alone.

use clap::Parser;
use growth_jobs::cli;
use growth_jobs::stages::Stage;

#[global_allocator]
static ALLOCATOR: growth_jobs::allocator::Allocator = growth_jobs::allocator::Allocator;

/// Builds the morning report of one run date from the tables published for it (the KPI
/// scorecard with statuses, alerts since the previous run, cohorts, RFM, clusters, the churn
/// model card, channel ROI, referrals, the forecast) and publishes it as one self-contained
/// page, <output>/_reports/run_date=D/report.html, replacing the date's earlier one atomically.
/// Sections whose tables are not published say so.
#[derive(Parser, Debug)]
#[command(version, after_help = cli::EXIT_CODES)]
struct Args {
    #[command(flatten)]
    stage: cli::StageArgs,
}

fn main() {
    let args = Args::parse();
    cli::run_stage_alone(Stage::Report, &args.stage, None)
}
