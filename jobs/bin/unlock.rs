//! `unlock`: removes an output's run lock by hand, when its holder is known to be gone.

use clap::Parser;
use growth_jobs::cli;
use growth_jobs::output::lock::{self, Unlocked};

#[global_allocator]
static ALLOCATOR: growth_jobs::allocator::Allocator = growth_jobs::allocator::Allocator;

/// Removes <output>/_lock.json when its holder is gone: its lease expired, or its process on
/// this host no longer exists. A lock that looks alive stays (exit 7) unless --force is given.
/// The removal is conditional: a lock renewed meanwhile is kept.
#[derive(Parser, Debug)]
#[command(version, after_help = cli::EXIT_CODES)]
struct Args {
    /// Output root: a folder or s3://bucket/prefix.
    #[arg(long, env = "GROWTH_OUTPUT")]
    output: String,
    /// Remove the lock even though its lease has not expired: only when you know its holder
    /// is dead (a run that still lives would go on publishing beside the next one).
    #[arg(long)]
    force: bool,
}

fn main() {
    let args = Args::parse();
    growth_jobs::telemetry::init_logging();
    let result = cli::runtime().and_then(|rt| rt.block_on(lock::unlock(&args.output, args.force)));
    cli::exit(result.map(|unlocked| match unlocked {
        Unlocked::Nothing => println!("{}: not locked", args.output),
        Unlocked::Removed(holder) => println!("{}: removed the lock of {holder}", args.output),
    }))
}
