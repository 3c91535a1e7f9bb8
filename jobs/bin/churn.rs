//! `churn`: the churn stage alone.

use clap::Parser;
use growth_jobs::cli;
use growth_jobs::stages::Stage;

#[global_allocator]
static ALLOCATOR: growth_jobs::allocator::Allocator = growth_jobs::allocator::Allocator;

/// Trains the churn candidates on time-split windows of the input, keeps the best by
/// validation ROC AUC, saves it with a model card under <output>/_models/churn/, and scores
/// the published customer_features of the run date into churn_scores. Settings are the
/// [churn] section of the config.
#[derive(Parser, Debug)]
#[command(version, after_help = cli::EXIT_CODES)]
struct Args {
    /// Input root: the tables the features are computed from at each cut-off.
    #[arg(long, env = "GROWTH_INPUT")]
    input: String,
    /// The folder of SQL models (customer_features and what it reads).
    #[arg(long, env = "GROWTH_SQL", default_value = "sql")]
    models: std::path::PathBuf,
    #[command(flatten)]
    stage: cli::StageArgs,
}

fn main() {
    let args = Args::parse();
    cli::run_stage_alone(Stage::Churn, &args.stage, Some((&args.input, &args.models)))
}
