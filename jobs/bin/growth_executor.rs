//! `growth-executor`: a Ballista executor for the SQL models (docs/design/ballista.md: Running on a Ballista
//! cluster).

use clap::Parser;
use growth_jobs::{cli, cluster};

#[global_allocator]
static ALLOCATOR: growth_jobs::allocator::Allocator = growth_jobs::allocator::Allocator;

/// Runs an Apache DataFusion Ballista executor, built with the same DataFusion as growth-jobs,
/// until stopped: it registers with the scheduler and runs the tasks it is given. It must see
/// the input and output roots at the same paths as the client (a shared folder or s3://).
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    #[command(flatten)]
    executor: cluster::ExecutorArgs,
}

fn main() {
    let args = Args::parse();
    growth_jobs::telemetry::init_logging();
    let result = cluster::runtime().and_then(|rt| rt.block_on(cluster::run_executor(&args.executor)));
    cli::exit(result)
}
