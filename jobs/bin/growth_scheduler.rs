//! `growth-scheduler`: the Ballista scheduler the SQL models run on with
//! `--engine ballista://HOST:PORT` (docs/design/ballista.md: Running on a Ballista cluster).

use clap::Parser;
use growth_jobs::{cli, cluster};

#[global_allocator]
static ALLOCATOR: growth_jobs::allocator::Allocator = growth_jobs::allocator::Allocator;

/// Runs an Apache DataFusion Ballista scheduler, built with the same DataFusion as growth-jobs,
/// until stopped. Executors (growth-executor) register with it; nightly and transform send it
/// their queries with --engine ballista://HOST:PORT.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    #[command(flatten)]
    scheduler: cluster::SchedulerArgs,
}

fn main() {
    let args = Args::parse();
    growth_jobs::telemetry::init_logging();
    let result = cluster::runtime().and_then(|rt| rt.block_on(cluster::run_scheduler(&args.scheduler)));
    cli::exit(result)
}
