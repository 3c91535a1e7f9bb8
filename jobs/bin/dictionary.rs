//! `dictionary`: prints the data dictionary of every table the night publishes.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};
use growth_jobs::cli;
use growth_jobs::dictionary;
use growth_jobs::transform::sql_models;

#[global_allocator]
static ALLOCATOR: growth_jobs::allocator::Allocator = growth_jobs::allocator::Allocator;

/// Prints every model under the models folder and every table the model stages publish: what
/// it is, its grain, what builds it, whether it is published, and each column with its
/// definition. A SQL model's text comes from its header comment, which the runner checks
/// against the columns the query returns; a stage table's from the schema the stage writes.
/// The same texts are written into every published Parquet file and `_catalog/`.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// The folder of SQL models.
    #[arg(long, env = "GROWTH_SQL", default_value = "sql")]
    models: PathBuf,
    /// Markdown for people, JSON (an array of tables) for tools.
    #[arg(long, value_enum, default_value_t = Format::Markdown)]
    format: Format,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Format {
    Markdown,
    Json,
}

fn main() {
    let args = Args::parse();
    growth_jobs::telemetry::init_logging();
    cli::exit(sql_models::discover(&args.models).map(|models| {
        let entries = dictionary::entries(&models);
        match args.format {
            Format::Markdown => print!("{}", dictionary::markdown(&entries)),
            Format::Json => println!(
                "{}",
                serde_json::to_string_pretty(&entries).expect("the dictionary serializes")
            ),
        }
    }))
}
