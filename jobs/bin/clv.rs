//! `clv`: the lifetime-value stage alone.

use clap::Parser;
use growth_jobs::cli;
use growth_jobs::stages::Stage;

#[global_allocator]
static ALLOCATOR: growth_jobs::allocator::Allocator = growth_jobs::allocator::Allocator;

/// Fits BG/NBD (purchase days, P(alive)) and Gamma-Gamma (spend) on the published clv_summary
/// of one run date, per market when a market has enough buyers, checks BG/NBD on a holdout,
/// and publishes clv_scores, predicted_ltv, growth_forecast (with its backtest; when the run
/// date's kpi_monthly and cohort_retention are published), the clv part of model_metrics, and
/// the fitted models with a model card under <output>/_models/clv/. Settings are the [clv]
/// section of the config (and the ltv_to_cac thresholds).
#[derive(Parser, Debug)]
#[command(version, after_help = cli::EXIT_CODES)]
struct Args {
    #[command(flatten)]
    stage: cli::StageArgs,
}

fn main() {
    let args = Args::parse();
    cli::run_stage_alone(Stage::Clv, &args.stage, None)
}
