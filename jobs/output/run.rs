//! The run lifecycle every command follows for a date: take the output's lock, begin (the
//! date's manifest says `running`), record each stage as it publishes, finish (`succeeded` or
//! `failed`, with the error). The manifest is written at each step, so a killed run leaves a
//! record of what it published and `--resume` knows where to go on.

use chrono::{NaiveDate, Utc};

use crate::error::Result;
use crate::output::manifest::{Manifest, StageReport};
use crate::output::{commit, lock};
use crate::storage::Root;

/// A date's run in progress: its manifest, written at each step.
pub struct Run<'a> {
    output: &'a Root,
    manifest: Manifest,
}

impl<'a> Run<'a> {
    /// Marks the run `running` and writes the manifest.
    pub(crate) async fn begin(output: &'a Root, mut manifest: Manifest) -> Result<Run<'a>> {
        manifest.status = "running".into();
        manifest.error = None;
        manifest.write(output).await?;
        Ok(Run { output, manifest })
    }

    /// The output root the run writes to.
    pub fn output(&self) -> &'a Root {
        self.output
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Records a published stage, replacing an earlier report of the same stage, and writes
    /// the manifest: a run killed after this resumes past the stage.
    pub async fn record(&mut self, report: StageReport) -> Result<()> {
        let manifest = &mut self.manifest;
        if !manifest.has_completed(&report.stage) {
            manifest.completed.push(report.stage.clone());
        }
        manifest.jobs.retain(|j| j.stage != report.stage);
        manifest.jobs.push(report);
        manifest.write(self.output).await
    }

    /// Ends the run: `failed` with the error when `outcome` is one or a data test of the date
    /// failed, else `succeeded`; writes the manifest and returns the outcome with it.
    pub(crate) async fn finish<T>(mut self, outcome: Result<T>) -> Result<(T, Manifest)> {
        let manifest = &mut self.manifest;
        manifest.finished_at = Utc::now();
        let error = match &outcome {
            Err(error) => Some(error.to_string()),
            Ok(_) => manifest.test_failure().map(|e| e.to_string()),
        };
        manifest.status = if error.is_some() { "failed" } else { "succeeded" }.into();
        manifest.error = error;
        manifest.write(self.output).await?;
        // The commit point: the manifest says succeeded, then the pointers name the date.
        commit::advance(self.output, manifest).await?;
        outcome.map(|value| (value, self.manifest))
    }
}

/// Runs a model stage on its own (the `segment`, `churn` and `score` commands) holding the
/// output's lock, and records it in the date's manifest when the SQL stage wrote one.
pub async fn stage_alone(
    output: &Root,
    run_date: NaiveDate,
    command: &str,
    stage: impl AsyncFnOnce(&Root) -> Result<StageReport>,
) -> Result<StageReport> {
    lock::with_lock(&output.display, command, async |output: &Root| {
        let Some(manifest) = Manifest::read(output, run_date).await? else {
            tracing::info!(date = %run_date, "no manifest for the date: the stage is not recorded");
            return stage(output).await;
        };
        let mut run = Run::begin(output, manifest).await?;
        let outcome = stage(output).await;
        if let Ok(report) = &outcome {
            run.record(report.clone()).await?;
        }
        run.finish(outcome).await.map(|(report, _)| report)
    })
    .await
}
