//! The whole night for one date: validate the input, run every SQL model (the marts and
//! `customer_features`), then the segment and churn stages, and write the manifest last.
//!
//! Each stage publishes on its own; when a model stage cannot train, what the earlier stages
//! published stays, the manifest records the failure, and the run exits with its code.
//! With no input given it runs on the embedded sample, generating it first if it is absent.

use std::path::{Path, PathBuf};

use chrono::Utc;

use crate::error::{Error, Result};
use crate::features::AsOf;
use crate::manifest::Manifest;
use crate::sample::{self, SampleOptions};
use crate::storage::Root;
use crate::transform::{self, TransformOptions};
use crate::{churn, segment};

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
    let (mut manifest, plan) = transform::build(&options).await?;
    let output = Root::open(&options.output, true)?;
    let outcome = model_stages(&options, plan, &output, &mut manifest).await;
    manifest.finished_at = Utc::now();
    if let Err(error) = &outcome {
        manifest.status = "failed".into();
        manifest.error = Some(error.to_string());
    }
    manifest.write(&output).await?;
    outcome.map(|()| manifest)
}

/// The segment and churn stages, when the SQL stage built `customer_features`.
async fn model_stages(
    options: &TransformOptions,
    plan: transform::Plan,
    output: &Root,
    manifest: &mut Manifest,
) -> Result<()> {
    if !plan.models.iter().any(|m| m.name == crate::features::TABLE) {
        tracing::info!("customer_features is not among the selected models: no segment or churn stage");
        return Ok(());
    }
    manifest
        .jobs
        .push(segment::run(output, plan.run_date, &options.config.segment).await?);
    let as_of = AsOf::new(
        plan.input_root,
        plan.input,
        &options.models_dir,
        options.config.clone(),
    )?;
    manifest
        .jobs
        .push(churn::run(&as_of, output, plan.run_date, &options.config.churn).await?);
    Ok::<(), Error>(())
}
