//! `segment`: the clustering stage alone.

use clap::Parser;
use growth_jobs::cli;
use growth_jobs::stages::Stage;

#[global_allocator]
static ALLOCATOR: growth_jobs::allocator::Allocator = growth_jobs::allocator::Allocator;

/// Clusters the customers of one run date from the published customer_features: publishes
/// customer_segments, segment_profiles and the segment part of model_metrics. Settings are the
/// [segment] section of the config.
#[derive(Parser, Debug)]
#[command(version, after_help = cli::EXIT_CODES)]
struct Args {
    #[command(flatten)]
    stage: cli::StageArgs,
}

fn main() {
    let args = Args::parse();
    cli::run_stage_alone(Stage::Segment, &args.stage, None)
}
