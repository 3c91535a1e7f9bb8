//! `dictionary`: prints the data dictionary of every SQL model, read from the models' headers.

use std::path::PathBuf;

use clap::Parser;
use growth_jobs::cli;
use growth_jobs::transform::sql_models;

#[global_allocator]
static ALLOCATOR: growth_jobs::allocator::Allocator = growth_jobs::allocator::Allocator;

/// Prints, as Markdown, every model under the models folder: what it is, its grain, whether it
/// is published, and each column with its definition. The text comes from the header comment of
/// each .sql file, which the runner checks against the columns the query returns.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// The folder of SQL models.
    #[arg(long, env = "GROWTH_SQL", default_value = "sql")]
    models: PathBuf,
}

fn main() {
    let args = Args::parse();
    growth_jobs::telemetry::init_logging();
    cli::exit(sql_models::discover(&args.models).map(|models| {
        println!("# Data dictionary\n");
        for model in &models {
            println!("{}", model.doc.markdown(model));
        }
    }))
}
