//! The whole night for one date. Today: validate the input and run every SQL model; later
//! stages (features, segments, churn) join here.
//!
//! With no input given it runs on the embedded sample, generating it first if it is absent.

use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::manifest::Manifest;
use crate::sample::{self, SampleOptions};
use crate::transform::{self, TransformOptions};

/// Where the embedded sample lives, relative to the repository root.
pub const SAMPLE_INPUT: &str = "data/sample";
/// Where outputs go by default, relative to the repository root.
pub const DEFAULT_OUTPUT: &str = "data/output";

/// Generates the embedded sample into `folder` unless it is already there.
pub fn ensure_sample(folder: &Path) -> Result<()> {
    if folder.join("orders").is_dir() {
        return Ok(());
    }
    tracing::info!(folder = %folder.display(), "generating the embedded sample (10,000 customers)");
    let report = sample::generate(&SampleOptions {
        force: true,
        ..SampleOptions::embedded(PathBuf::from(folder))
    })?;
    tracing::info!(?report, "sample written");
    Ok(())
}

/// Runs the night. `input: None` means the embedded sample.
pub async fn run(input: Option<String>, mut options: TransformOptions) -> Result<Manifest> {
    options.input = match input {
        Some(input) => input,
        None => {
            ensure_sample(Path::new(SAMPLE_INPUT))?;
            SAMPLE_INPUT.to_string()
        }
    };
    transform::run(&options).await
}
