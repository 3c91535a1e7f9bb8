//! `score`: churn scores from a saved model, without training.

use clap::Parser;
use growth_jobs::cli;
use growth_jobs::learn::churn;
use growth_jobs::output::run::stage_alone;
use growth_jobs::storage::Root;

#[global_allocator]
static ALLOCATOR: growth_jobs::allocator::Allocator = growth_jobs::allocator::Allocator;

/// Scores the published customer_features of a run date with a saved churn model (by default
/// the one `churn` saved for that date under <output>/_models/churn/) and publishes
/// churn_scores.
#[derive(Parser, Debug)]
#[command(version, after_help = cli::EXIT_CODES)]
struct Args {
    /// A model.json to score with instead of the run date's own.
    #[arg(long)]
    model: Option<std::path::PathBuf>,
    #[command(flatten)]
    stage: cli::StageArgs,
}

fn main() {
    let args = Args::parse();
    cli::run_stage(async {
        let (output, date, _) = args.stage.open().await?;
        stage_alone(&output, date, "score", async |output: &Root| {
            churn::score(output, date, args.model.as_deref()).await
        })
        .await
    })
}
