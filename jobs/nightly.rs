//! The whole night for one date: validate the input, run every SQL model (the marts,
//! `customer_features`, `clv_summary`), then the segment, churn and lifetime-value stages, then
//! the morning report (`_reports/run_date=D/report.html`), and write the manifest last.
//!
//! Each stage publishes on its own; when a model stage cannot train, what the earlier stages
//! published stays, the manifest records the failure, and the run exits with its code.
//! With no input given it runs on the embedded sample, generating it first if it is absent.

use std::path::{Path, PathBuf};

use chrono::{NaiveDate, Utc};

use crate::error::{Error, Result};
use crate::input::contract::Source;
use crate::learn::features::AsOf;
use crate::output::manifest::Manifest;
use crate::output::run::Run;
use crate::sample::{self, SampleOptions};
use crate::stages::{Stage, StageContext};
use crate::storage::Root;
use crate::transform::{self, TransformOptions};

/// Where the embedded sample lives, relative to the repository root.
pub const SAMPLE_INPUT: &str = "data/sample";
/// Where outputs go by default, relative to the repository root.
pub(crate) const DEFAULT_OUTPUT: &str = "data/output";

/// Generates the embedded sample into `folder` unless it is already there.
pub(crate) fn ensure_sample(folder: &Path) -> Result<()> {
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

/// What the `nightly` command is asked to do.
#[derive(Clone, Debug)]
pub struct NightlyOptions {
    /// The SQL stage's options; an empty `input` means the embedded sample, a `run_date` of
    /// `None` the latest order day.
    pub transform: TransformOptions,
    /// Backfill: every date from `from` to `to` (default: the latest order day), in order.
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    /// Skip the stages a date already published with the same fingerprint.
    pub resume: bool,
    /// Print the plan, write nothing.
    pub dry_run: bool,
}

/// Runs the night for each date asked, in order, holding the output's lock; stops at the first
/// date that fails. Returns the manifests of the dates run (or, for a dry run, none).
pub async fn run_dates(mut options: NightlyOptions) -> Result<Vec<Manifest>> {
    if options.transform.input.is_empty() {
        let sample = Path::new(SAMPLE_INPUT);
        if options.dry_run && !sample.join("orders").is_dir() {
            println!(
                "dry run: the embedded sample is not generated yet; a run would generate it into {SAMPLE_INPUT} first"
            );
            return Ok(Vec::new());
        }
        ensure_sample(sample)?;
        options.transform.input = SAMPLE_INPUT.to_string();
    }
    crate::storage::refuse_overlap(&options.transform.input, &options.transform.output)?;
    // Validated once for the whole backfill; each date still applies its own row rules.
    let source = Source::open(&options.transform.input).await?;
    let dates = dates(&options, &source).await?;
    if options.dry_run {
        for date in dates {
            dry_run(&options, &source, date).await?;
        }
        return Ok(Vec::new());
    }
    crate::output::lock::with_lock(&options.transform.output, "nightly", async |output: &Root| {
        let mut manifests = Vec::new();
        let progress = crate::telemetry::progress();
        for (i, date) in dates.iter().enumerate() {
            if dates.len() > 1 {
                tracing::info!(date = %date, day = i + 1, days = dates.len(), "backfill");
            }
            progress.set_prefix(format!("{date}"));
            manifests.push(run_date(&options, &source, output, *date).await?);
        }
        Ok(manifests)
    })
    .await
}

/// The dates to run: `--from`..=`--to`, or the one `--date`, or the latest order day.
async fn dates(options: &NightlyOptions, source: &Source) -> Result<Vec<NaiveDate>> {
    let latest = async || transform::latest_order_day(&options.transform, source).await;
    let Some(from) = options.from else {
        return Ok(vec![match options.transform.run_date {
            Some(date) => date,
            None => latest().await?,
        }]);
    };
    let to = match options.to {
        Some(to) => to,
        None => latest().await?,
    };
    if to < from {
        return Err(Error::Usage(format!("--from {from} is after --to {to}")));
    }
    Ok(from.iter_days().take_while(|d| *d <= to).collect())
}

/// The stages a night runs for a plan: the SQL stage, then each model stage whose input the
/// plan builds.
fn stages(plan: &transform::Plan) -> Vec<&'static str> {
    let builds = |table: &str| plan.models.iter().any(|m| m.name == table);
    std::iter::once(transform::SQL_STAGE)
        .chain(
            Stage::ALL
                .into_iter()
                .filter(|stage| stage.needs().is_none_or(builds))
                .map(Stage::name),
        )
        .collect()
}

/// The date's manifest when it was made from the same inputs, code and settings (and so
/// `--resume` may skip the stages it lists as published).
async fn same_fingerprint(
    output: &Root,
    options: &TransformOptions,
    plan: &transform::Plan,
) -> Result<Option<Manifest>> {
    let fingerprint = transform::fingerprint(options, plan);
    Ok(Manifest::read(output, plan.run_date)
        .await?
        .filter(|m| m.fingerprint == fingerprint))
}

/// Runs (or resumes) the night for one date, recording each stage in its manifest.
async fn run_date(
    options: &NightlyOptions,
    source: &Source,
    output: &Root,
    date: NaiveDate,
) -> Result<Manifest> {
    let started_at = Utc::now();
    let mut watch = crate::telemetry::Stopwatch::new();
    let mut transform_options = options.transform.clone();
    transform_options.run_date = Some(date);
    let plan = transform::plan_from(&transform_options, source.clone()).await?;
    watch.lap("validate");
    let previous = match options.resume {
        true => same_fingerprint(output, &transform_options, &plan).await?,
        false => None,
    };
    let manifest = match previous {
        Some(done) if done.status == "succeeded" && stages(&plan).iter().all(|s| done.has_completed(s)) => {
            tracing::info!(date = %date, "already published with the same inputs, code and settings: skipped");
            return Ok(done);
        }
        Some(partial) if partial.has_completed(transform::SQL_STAGE) => {
            tracing::info!(date = %date, completed = ?partial.completed, "resuming after the stages already published");
            partial
        }
        _ => transform::build_planned(&transform_options, &plan, started_at, watch).await?,
    };
    let mut run = Run::begin(output, manifest).await?;
    // A failed data test blocks its model and what is downstream; the model stages run when
    // customer_features itself was published, and the night still ends failed.
    let tests_failed = run.manifest().test_failure();
    let outcome = model_stages(&transform_options, plan, &mut run)
        .await
        .and(tests_failed.map_or(Ok(()), Err));
    run.finish(outcome).await.map(|((), manifest)| manifest)
}

/// Runs the night for one date. `input: None` means the embedded sample.
pub async fn run(input: Option<String>, mut options: TransformOptions) -> Result<Manifest> {
    options.input = input.unwrap_or_default();
    let mut manifests = run_dates(NightlyOptions {
        transform: options,
        from: None,
        to: None,
        resume: false,
        dry_run: false,
    })
    .await?;
    manifests
        .pop()
        .ok_or_else(|| Error::Internal("the night ran no date".into()))
}

/// Prints what a run for `date` would do, from the validated input and the planned models.
async fn dry_run(options: &NightlyOptions, source: &Source, date: NaiveDate) -> Result<()> {
    let mut transform_options = options.transform.clone();
    transform_options.run_date = Some(date);
    let plan = transform::plan_from(&transform_options, source.clone()).await?;
    println!("dry run for {date}: nothing is written");
    println!("  input {}:", plan.source.root.display);
    for (table, summary) in plan.source.summaries() {
        if summary.present {
            println!(
                "    {table:<16} {:>4} files {:>12} rows",
                summary.files, summary.rows
            );
        } else {
            println!("    {table:<16} absent (models see it empty)");
        }
    }
    let same = match Root::open_existing(&transform_options.output)? {
        Some(output) if options.resume => same_fingerprint(&output, &transform_options, &plan).await?,
        _ => None,
    };
    let skipped = |stage: &str| same.as_ref().is_some_and(|m| m.has_completed(stage));
    println!("  output {}", transform_options.output);
    println!(
        "  stage sql: {} models in order{}",
        plan.models.len(),
        if skipped(transform::SQL_STAGE) {
            " (resume: already published, skipped)"
        } else {
            ""
        }
    );
    for (i, model) in plan.models.iter().enumerate() {
        println!(
            "    {:>2}. {:<28} {:<9} reads {}",
            i + 1,
            model.name,
            format!("{:?}", model.materialized).to_lowercase(),
            model.reads.join(", ")
        );
    }
    for stage in stages(&plan).into_iter().skip(1) {
        println!(
            "  stage {stage}{}",
            if skipped(stage) {
                " (resume: already published, skipped)"
            } else {
                ""
            }
        );
    }
    Ok(())
}

/// Whether the SQL stage of this run published `model`.
fn published(run: &Run<'_>, model: &str) -> bool {
    run.manifest()
        .models
        .iter()
        .any(|m| m.model == model && m.skipped.is_none())
}

/// The model stages in order, each when the SQL stage published what it needs and it is not
/// done yet; each one done is recorded in the manifest, written after it, so a killed run
/// resumes after it.
async fn model_stages(options: &TransformOptions, plan: transform::Plan, run: &mut Run<'_>) -> Result<()> {
    let to_run: Vec<Stage> = Stage::ALL
        .into_iter()
        .filter(|stage| match stage.needs() {
            Some(table) if !published(run, table) => {
                tracing::info!(
                    stage = stage.name(),
                    needs = table,
                    "not selected, or not published: stage skipped"
                );
                false
            }
            _ => !run.manifest().has_completed(stage.name()),
        })
        .collect();
    // The SQL stage checked the input at this date (or, resumed, a run with the same
    // fingerprint did): the churn stage's sessions skip what it passed.
    let as_of = match to_run.contains(&Stage::Churn) {
        true => Some(
            AsOf::new(plan.source, &options.models_dir, options.config.clone())?
                .with_checked(plan.run_date, run.manifest().quality.clone()),
        ),
        false => None,
    };
    for stage in to_run {
        let context = StageContext {
            output: run.output(),
            run_date: plan.run_date,
            config: &options.config,
            as_of: as_of.as_ref(),
        };
        let report = stage.run(&context).await?;
        run.record(report).await?;
    }
    Ok(())
}
