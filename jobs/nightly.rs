//! The whole night for one date: validate the input, run every SQL model (the marts,
//! `customer_features`, `clv_summary`), then the segment, churn and lifetime-value stages, then
//! the morning report (`_reports/run_date=D/report.html`), and write the manifest last.
//!
//! Each stage publishes on its own; when a model stage cannot train, what the earlier stages
//! published stays, the manifest records the failure, and the run exits with its code.
//! With `--sample` it runs on the embedded sample, generating it first if it is absent.

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
use crate::transform::sql_models::{self, Model};
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
    /// The SQL stage's options; a `run_date` of `None` means the latest order day.
    pub transform: TransformOptions,
    /// Run on the embedded sample (generated on first use) instead of `transform.input`.
    pub sample: bool,
    /// Backfill: every date from `from` to `to` (default: yesterday, UTC), in order.
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    /// Skip the stages a date already published with the same fingerprint.
    pub resume: bool,
    /// Run every date of a backfill even when one fails; fail at the end, listing them.
    pub keep_going: bool,
    /// Print the plan, write nothing.
    pub dry_run: bool,
}

/// Runs the night for each date asked, in order, holding the output's lock; stops at the first
/// date that fails. Returns the manifests of the dates run (or, for a dry run, none).
pub async fn run_dates(mut options: NightlyOptions) -> Result<Vec<Manifest>> {
    if options.sample {
        let sample = Path::new(SAMPLE_INPUT);
        if options.dry_run && !sample.join("orders").is_dir() {
            println!(
                "dry run: the embedded sample is not generated yet; a run would generate it into {SAMPLE_INPUT} first"
            );
            return Ok(Vec::new());
        }
        ensure_sample(sample)?;
        options.transform.input = SAMPLE_INPUT.to_string();
    } else if options.transform.input.is_empty() {
        // A missing setting on a production box must not publish the sample's figures.
        return Err(Error::Usage(
            "no input: pass --input (or GROWTH_INPUT, or [run] input in the config) a folder or s3:// root of the tables, or --sample to run on the embedded sample".into(),
        ));
    }
    crate::storage::refuse_overlap(&options.transform.input, &options.transform.output)?;
    // Validated once for the whole backfill; each date still applies its own row rules.
    let source = Source::open(&options.transform.input).await?;
    let dates = dates(&options, &source).await?;
    let asked = options.from.or(options.transform.run_date).is_some();
    check_freshness(
        &options.transform,
        &source,
        dates.last().filter(|_| asked).copied(),
    )
    .await?;
    if options.dry_run {
        for date in dates {
            dry_run(&options, &source, date).await?;
        }
        return Ok(Vec::new());
    }
    crate::output::lock::with_lock(&options.transform.output, "nightly", async |output: &Root| {
        let mut manifests = Vec::new();
        let mut failed = Vec::new();
        let progress = crate::telemetry::progress();
        for (i, date) in dates.iter().enumerate() {
            if dates.len() > 1 {
                tracing::info!(date = %date, day = i + 1, days = dates.len(), "backfill");
            }
            progress.set_prefix(format!("{date}"));
            crate::output::lock::safe_point(output)?;
            let outcome = match run_date(&options, &source, output, *date).await {
                Err(error) => Err(source.explain(error).await),
                done => done,
            };
            match outcome {
                Ok(manifest) => manifests.push(manifest),
                // A stop, or another run's lock, ends the backfill whatever was asked.
                Err(error) if options.keep_going && !error.ends_a_backfill() => {
                    tracing::error!(date = %date, "{error}; going on with the next date");
                    failed.push((*date, error));
                }
                Err(error) => return Err(error),
            }
        }
        match failed.is_empty() {
            true => Ok(manifests),
            false => Err(Error::DatesFailed {
                code: failed[0].1.exit_code(),
                count: failed.len(),
                of: dates.len(),
                dates: failed
                    .iter()
                    .map(|(date, error)| format!("{date} (exit {}: {error})", error.exit_code()))
                    .collect::<Vec<_>>()
                    .join("; "),
            }),
        }
    })
    .await
}

/// The dates to run: `--from`..=`--to` (by default yesterday, UTC), or the one `--date`, or
/// the latest order day.
async fn dates(options: &NightlyOptions, source: &Source) -> Result<Vec<NaiveDate>> {
    let latest = async || transform::latest_order_day(&options.transform, source).await;
    let Some(from) = options.from else {
        return Ok(vec![match options.transform.run_date {
            Some(date) => date,
            None => latest().await?,
        }]);
    };
    // A scheduled backfill ends on the last whole day: the latest order day would follow a
    // stalled export backwards, and once it fell behind --from every night would be refused.
    let to = options
        .to
        .unwrap_or_else(|| Utc::now().date_naive() - chrono::Days::new(1));
    if to < from {
        return Err(Error::Usage(format!("--from {from} is after --to {to}")));
    }
    Ok(from.iter_days().take_while(|d| *d <= to).collect())
}

/// Stops a night whose input is stale: its newest order older than `quality.max_input_age`
/// at the end of `last` (the last date asked), or now when that is earlier or no date was
/// asked (the default date follows the input, so only the clock can tell it is behind).
async fn check_freshness(options: &TransformOptions, source: &Source, last: Option<NaiveDate>) -> Result<()> {
    let Some(max_age) = options.config.quality.max_input_age().map_err(Error::Usage)? else {
        return Ok(());
    };
    let now = Utc::now();
    let reference = match last {
        Some(date) => now.min(
            (date + chrono::Days::new(1))
                .and_time(chrono::NaiveTime::MIN)
                .and_utc(),
        ),
        None => now,
    };
    let bound = options.config.quality.latest_bound();
    let newest = crate::input::catalog::newest_order_time(&source.root, &source.input, bound).await?;
    let age = newest.map(|at| (reference - at).to_std().unwrap_or_default());
    if age.is_some_and(|age| age <= max_age) {
        return Ok(());
    }
    Err(Error::StaleInput {
        input: source.root.display.clone(),
        newest: match (newest, age) {
            (Some(at), Some(age)) => format!(
                "{}, {:.1} hours",
                at.format("%Y-%m-%d %H:%M:%S UTC"),
                age.as_secs_f64() / 3600.0
            ),
            _ => "absent (no order at all)".into(),
        },
        reference: match last {
            Some(date) if reference < now => format!("the end of {date}"),
            _ => "now".into(),
        },
        max_age: options.config.quality.max_input_age.clone().unwrap_or_default(),
    })
}

/// The stages a night runs for its models: the SQL stage, then each model stage whose input
/// the models build.
fn stages(models: &[Model]) -> Vec<&'static str> {
    let builds = |table: &str| models.iter().any(|m| m.name == table);
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
    source: &Source,
    models: &[Model],
    date: NaiveDate,
) -> Result<Option<Manifest>> {
    let fingerprint = transform::fingerprint(options, source, models, date)?;
    Ok(Manifest::read(output, date)
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
    // Decided before any query: a skip costs a hash of what the date can see and a manifest.
    let previous = match options.resume {
        true => {
            let models = sql_models::load(&transform_options.models_dir, &transform_options.select)?;
            match same_fingerprint(output, &transform_options, source, &models, date).await? {
                Some(done)
                    if done.status == "succeeded"
                        && stages(&models).iter().all(|s| done.has_completed(s)) =>
                {
                    tracing::info!(date = %date, "already published with the same inputs, code and settings: skipped");
                    return Ok(done);
                }
                previous => previous,
            }
        }
        false => None,
    };
    let plan = transform::plan_from(&transform_options, source.clone()).await?;
    watch.lap("validate");
    let manifest = match previous {
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
        sample: options.input.is_empty(),
        transform: options,
        from: None,
        to: None,
        resume: false,
        keep_going: false,
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
        Some(output) if options.resume => {
            same_fingerprint(&output, &transform_options, source, &plan.models, date).await?
        }
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
    for stage in stages(&plan.models).into_iter().skip(1) {
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
        crate::output::lock::safe_point(run.output())?;
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
