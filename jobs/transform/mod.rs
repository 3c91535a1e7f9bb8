//! The SQL stage: validate the input, plan every model, run them in dependency order into
//! the run's draft, publish, and write the manifest.
//!
//! Nothing is written before the input is validated and every selected model has been
//! planned, so a bad input or a broken model leaves the output untouched.

pub mod data_tests;
pub mod sql_models;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use chrono::{NaiveDate, Utc};
use datafusion::prelude::{DataFrame, SessionContext};
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::input::catalog::{self, RunDate};
use crate::input::contract::Source;
use crate::input::quality;
use crate::output::manifest::{
    Manifest, Materialized, ModelEntry, StoredFailures, TestOutcome, TestStatus, Versions,
};
use crate::output::publish::Draft;
use crate::storage::Root;
use crate::telemetry::Stopwatch;
use sql_models::Model;

/// What the transform is asked to do.
#[derive(Clone, Debug)]
pub struct TransformOptions {
    /// Input root: a folder or an `s3://` URL with one folder per table.
    pub input: String,
    /// Output root: where tables, manifests and drafts live.
    pub output: String,
    /// The folder of SQL models.
    pub models_dir: PathBuf,
    /// The run date; the latest order day when absent.
    pub run_date: Option<NaiveDate>,
    /// Models to run (with everything they read); empty means all.
    pub select: Vec<String>,
    /// Thresholds and settings the models read.
    pub config: Config,
}

/// A validated input with the models to run over it, before anything is written.
pub struct Plan {
    pub source: Source,
    pub run_date: NaiveDate,
    pub models: Vec<Model>,
    /// What the row rules found, and set aside.
    pub quality: quality::Report,
    /// Each model's data tests, compiled.
    pub tests: BTreeMap<String, Vec<data_tests::Test>>,
    /// The session the models were planned in, with the inputs checked: the build runs in it.
    pub ctx: SessionContext,
}

/// Validates the input and the models, and plans every model; writes nothing.
pub async fn plan(options: &TransformOptions) -> Result<Plan> {
    crate::storage::refuse_overlap(&options.input, &options.output)?;
    plan_from(options, Source::open(&options.input).await?).await
}

/// Plans every model over an input validated before (a backfill validates it once for all its
/// dates); writes nothing.
pub(crate) async fn plan_from(options: &TransformOptions, source: Source) -> Result<Plan> {
    let run_date = match options.run_date {
        Some(date) => date,
        None => latest_order_day(options, &source).await?,
    };
    let models = sql_models::load(&options.models_dir, &options.select)?;
    // A wrong column or type fails here, before any write.
    let mut tests = BTreeMap::new();
    let (ctx, quality) = session(&source, run_date, &options.config, None, &models, |model, df| {
        check_documented_columns(model, df)?;
        if let Some(declared) = &model.tests {
            let compiled = declared
                .compile(&model.name, df.schema(), run_date)
                .map_err(|reason| Error::BadModel {
                    model: model.name.clone(),
                    file: model.file.replace(".sql", data_tests::SUFFIX),
                    reason,
                })?;
            tests.insert(model.name.clone(), compiled);
        }
        Ok(())
    })
    .await?;
    if quality.rows.get("orders") == Some(&0) {
        return Err(Error::NothingAsOf {
            table: "orders".into(),
            rows: source.input.tables["orders"].rows,
            run_date,
            location: source.root.describe(&source.root.path(&["orders"])),
        });
    }
    Ok(Plan {
        source,
        run_date,
        models,
        quality,
        tests,
        ctx,
    })
}

/// The latest order day of the input before the config's bound: the run date when none is given.
pub(crate) async fn latest_order_day(options: &TransformOptions, source: &Source) -> Result<NaiveDate> {
    let bound = options.config.quality.latest_bound();
    catalog::latest_order_day(&source.root, &source.input, bound).await
}

/// A session that sees the input as of `run_date`, with `models` planned into it in order, each
/// as a view: the one place SQL models are planned, for the transform and for features computed
/// as of a cut-off. `check` sees each planned model before it is registered. `later` is a
/// report of the same input at a later date, whose clean results spare checks here.
pub async fn session(
    source: &Source,
    run_date: NaiveDate,
    config: &Config,
    later: Option<&quality::Report>,
    models: &[Model],
    check: impl FnMut(&Model, &DataFrame) -> Result<()>,
) -> Result<(SessionContext, quality::Report)> {
    let (ctx, quality) = crate::input::session::session_for(
        &source.root,
        &source.input,
        RunDate { date: run_date },
        config,
        later,
        &config.run.engine().map_err(Error::Usage)?,
    )
    .await?;
    plan_models(&ctx, models, check).await?;
    Ok((ctx, quality))
}

/// Plans `models` into a session in order, each registered as a view under its name. `check`
/// sees each planned model before it is registered.
pub async fn plan_models(
    ctx: &SessionContext,
    models: &[Model],
    mut check: impl FnMut(&Model, &DataFrame) -> Result<()>,
) -> Result<()> {
    for model in models {
        let df = plan_model(ctx, model).await?;
        check(model, &df)?;
        ctx.register_table(model.name.as_str(), df.into_view())
            .map_err(Error::engine(format!("registering model {}", model.name)))?;
    }
    Ok(())
}

/// A model with a `columns:` header must document exactly the columns it returns, so the data
/// dictionary cannot drift from the SQL; one without is only warned about.
fn check_documented_columns(model: &Model, df: &DataFrame) -> Result<()> {
    let returned: Vec<String> = df.schema().fields().iter().map(|f| f.name().clone()).collect();
    if model.doc.columns.is_empty() {
        tracing::warn!(
            model = model.name,
            file = model.file,
            "the model's header documents no columns"
        );
        return Ok(());
    }
    model
        .doc
        .check_columns(&returned)
        .map_err(|reason| Error::BadModel {
            model: model.name.clone(),
            file: model.file.clone(),
            reason,
        })
}

async fn plan_model(ctx: &SessionContext, model: &Model) -> Result<DataFrame> {
    ctx.sql(&model.sql).await.map_err(|e| Error::BadModel {
        model: model.name.clone(),
        file: model.file.clone(),
        reason: e.to_string(),
    })
}

/// Runs the SQL stage for one date and publishes its tables and manifest, holding the output's
/// lock. Failed data tests fail the run, after what passed was published.
pub async fn run(options: &TransformOptions) -> Result<Manifest> {
    crate::output::lock::with_lock(&options.output, "transform", async |output: &Root| {
        let (manifest, _) = build(options).await?;
        let tests = manifest.test_failure();
        let run = crate::output::run::Run::begin(output, manifest).await?;
        run.finish(tests.map_or(Ok(()), Err))
            .await
            .map(|((), manifest)| manifest)
    })
    .await
}

/// Validates, plans and runs the SQL stage for one date, and publishes its tables; returns the
/// manifest, unwritten, for later stages to add to, and the validated plan they can reuse.
pub async fn build(options: &TransformOptions) -> Result<(Manifest, Plan)> {
    let started_at = Utc::now();
    let mut watch = Stopwatch::new();
    crate::storage::refuse_overlap(&options.input, &options.output)?;
    let source = Source::open(&options.input).await?;
    let built = async {
        let plan = plan_from(options, source.clone()).await?;
        watch.lap("validate");
        let manifest = build_planned(options, &plan, started_at, watch).await?;
        Ok::<_, Error>((manifest, plan))
    };
    match built.await {
        Ok(built) => Ok(built),
        Err(error) => Err(source.explain(error).await),
    }
}

/// A fingerprint of everything a date's outputs depend on: the input files that date can see
/// (path, size, modification time or ETag of every file but those whose statistics put all
/// their events after the date's end in its last market), the build, every model's SQL and
/// data tests, the selection and the settings. Equal fingerprints mean a rerun would publish
/// the same bytes, so `--resume` can skip what is already published. It needs only the
/// validated input (its footers), not a query: a skip costs a hash and a manifest read.
pub fn fingerprint(
    options: &TransformOptions,
    source: &Source,
    models: &[Model],
    run_date: NaiveDate,
) -> Result<String> {
    let mut settings = options.config.clone();
    // Where the run reads and writes, and its memory cap, change no output.
    settings.run = Default::default();
    let zones =
        crate::input::time_zones::Zones::from_config(&options.config.time_zone).map_err(|reason| {
            Error::BadConfig {
                file: "[time_zone]".into(),
                reason,
            }
        })?;
    let inputs = source
        .input
        .visible_hashes(&source.root, zones.latest_end(run_date));
    let digest = |text: &str| format!("{:x}", Sha256::digest(text.as_bytes()));
    let models: Vec<(&str, String, String)> = models
        .iter()
        .map(|m| (m.name.as_str(), digest(&m.sql), digest(&format!("{:?}", m.tests))))
        .collect();
    let everything = serde_json::json!({
        "run_date": run_date,
        "inputs": inputs,
        "versions": Versions::current(),
        "models": models,
        "select": options.select,
        "settings": settings,
    });
    Ok(digest(&everything.to_string()))
}

/// A configured organic channel that no input names counts nothing: organic_session_share and
/// self_growth_ratio would read 0% (red) without a word, for example with `organic_search` in
/// the input and `organic` in the config.
async fn absent_organic_channels(ctx: &SessionContext, organic: &[String]) -> Result<Vec<String>> {
    if organic.is_empty() {
        return Ok(Vec::new());
    }
    let seen = ctx
        .sql(
            "select distinct channel from sessions \
             union select distinct acquisition_channel from customers \
             union select distinct channel from orders",
        )
        .await
        .map_err(Error::engine("listing the input's channels"))?
        .collect()
        .await
        .map_err(Error::engine("listing the input's channels"))?;
    let mut channels = std::collections::BTreeSet::new();
    for batch in &seen {
        let column =
            datafusion::arrow::compute::cast(batch.column(0), &datafusion::arrow::datatypes::DataType::Utf8)
                .map_err(|e| Error::engine("listing the input's channels")(e.into()))?;
        let strings = datafusion::arrow::array::AsArray::as_string::<i32>(&column);
        channels.extend(strings.iter().flatten().map(str::to_string));
    }
    Ok(organic
        .iter()
        .filter(|c| !channels.contains(*c))
        .map(|c| {
            format!(
                "organic channel {c:?} (organic_channels in the config) is in no input's channel column \
                 (orders, customers, sessions): organic_session_share and self_growth_ratio count nothing \
                 under it; the input's channels are {}",
                channels.iter().cloned().collect::<Vec<_>>().join(", ")
            )
        })
        .collect())
}

/// Runs the SQL stage of a validated plan and publishes its tables.
pub(crate) async fn build_planned(
    options: &TransformOptions,
    plan: &Plan,
    started_at: chrono::DateTime<Utc>,
    mut watch: Stopwatch,
) -> Result<Manifest> {
    let output = Root::open(&options.output, true)?;
    Draft::remove_leftovers(&output).await?;
    let run_id = format!(
        "{}-{}-{}",
        plan.run_date,
        started_at.format("%Y%m%dT%H%M%S%.6fZ"),
        std::process::id()
    );
    let draft = Draft::new(&output, &run_id, plan.run_date);
    let ctx = &plan.ctx;
    output.register(ctx);

    let entries = match build_models(ctx, plan, &draft, &mut watch).await {
        Ok(entries) => entries,
        Err(error) => {
            // Nothing was published; this run's drafts are of no use.
            if let Err(cleanup) = draft.remove().await {
                tracing::warn!(%cleanup, "could not remove this run's drafts");
            }
            return Err(error);
        }
    };
    draft.remove().await?;
    watch.lap("publish");
    let mut warnings = plan.source.input.defaulted_warnings();
    warnings.extend(absent_organic_channels(ctx, &options.config.organic_channels).await?);
    for warning in &warnings {
        tracing::warn!("{warning}");
    }

    let mut manifest = Manifest {
        run_id,
        run_date: plan.run_date,
        status: "running".into(),
        started_at,
        finished_at: Utc::now(),
        fingerprint: fingerprint(options, &plan.source, &plan.models, plan.run_date)?,
        completed: Vec::new(),
        input_root: plan.source.root.display.clone(),
        output_root: output.display.clone(),
        engine: options.config.run.engine().map_err(Error::Usage)?.to_string(),
        versions: Versions::current(),
        inputs: plan.source.summaries(),
        absent_inputs: plan.source.input.absent().iter().map(|s| s.to_string()).collect(),
        warnings,
        models: entries,
        quality: plan.quality.clone(),
        config: options.config.clone(),
        stages: watch.into_stages(),
        jobs: Vec::new(),
        error: None,
    };
    let warned = manifest.tests_with(TestStatus::Warn);
    manifest
        .warnings
        .extend(warned.into_iter().map(|test| format!("data test warns: {test}")));
    // The SQL stage counts as published only when no data test came to an error.
    if manifest.test_failure().is_none() {
        manifest.completed.push(SQL_STAGE.into());
    }
    Ok(manifest)
}

/// The name of the SQL stage in the manifest's `completed` list.
pub(crate) const SQL_STAGE: &str = "sql";

/// Builds every model into the draft, then publishes the drafted tables.
async fn build_models(
    ctx: &SessionContext,
    plan: &Plan,
    draft: &Draft,
    watch: &mut Stopwatch,
) -> Result<Vec<ModelEntry>> {
    let models = &plan.models;
    let mut entries: Vec<ModelEntry> = Vec::with_capacity(models.len());
    // Drafts of the data tests' failing rows, published beside the tables.
    let mut failures = Vec::new();
    // Models kept from publishing: a failed data test, or one upstream.
    let mut blocked: std::collections::BTreeSet<&str> = std::collections::BTreeSet::new();
    let progress = crate::telemetry::progress();
    progress.set_length(models.len() as u64);
    for model in models {
        crate::output::lock::safe_point(draft.root())?;
        progress.set_message(model.name.clone());
        let began = Instant::now();
        watch.part_peak();
        let mut entry = ModelEntry {
            model: model.name.clone(),
            file: model.file.clone(),
            materialized: model.materialized,
            sql_sha256: format!("{:x}", Sha256::digest(model.sql.as_bytes())),
            reads: model.reads.clone(),
            output: None,
            seconds: 0.0,
            peak_rss_bytes: None,
            tests: Vec::new(),
            skipped: None,
        };
        if let Some(upstream) = model.reads.iter().find(|r| blocked.contains(r.as_str())) {
            tracing::warn!(
                model = model.name,
                upstream,
                "not built: an upstream model failed its data tests"
            );
            entry.skipped = Some(format!("upstream model {upstream} did not pass its data tests"));
            blocked.insert(&model.name);
            entries.push(entry);
            progress.inc(1);
            continue;
        }
        let df = plan_model(ctx, model).await?;
        // The plan registered every model as a view; the build registers what it wrote.
        ctx.deregister_table(model.name.as_str())
            .map_err(Error::engine(format!("replacing model {}", model.name)))?;
        entry.output = match model.materialized {
            Materialized::Ephemeral => {
                ctx.register_table(model.name.as_str(), df.into_view())
                    .map_err(Error::engine(format!("registering model {}", model.name)))?;
                None
            }
            Materialized::Table => Some(
                crate::output::lock::until_stopped(draft.write(
                    ctx,
                    &model.name,
                    &model.file,
                    df,
                    &model.doc.description,
                    &model.doc.columns,
                ))
                .await?,
            ),
        };
        for (position, test) in plan.tests.get(&model.name).into_iter().flatten().enumerate() {
            let ran = test.run(ctx, &model.name, &model.file).await?;
            let mut outcome = ran.outcome;
            if let Some(first) = ran.failures.first() {
                let mut writer =
                    draft.failures_writer(&model.name, &test.failures_file(position), first.schema())?;
                for batch in &ran.failures {
                    writer.write(batch).await?;
                }
                let stored = writer.finish(draft).await?;
                outcome.stored = Some(StoredFailures {
                    path: stored.path.clone(),
                    rows: stored.rows,
                });
                failures.push(stored);
            }
            entry.tests.push(outcome);
        }
        let judged = |status| entry.tests.iter().filter(move |t| t.status() == status);
        let warned: Vec<&TestOutcome> = judged(TestStatus::Warn).collect();
        if !warned.is_empty() {
            tracing::warn!(model = model.name, warned = ?warned, "data tests warn: published all the same");
        }
        let failed: Vec<&TestOutcome> = judged(TestStatus::Error).collect();
        if !failed.is_empty() {
            tracing::warn!(model = model.name, failed = ?failed, "data tests failed: not published");
            entry.skipped = Some("its data tests failed".into());
            blocked.insert(&model.name);
        }
        entry.seconds = began.elapsed().as_secs_f64();
        entry.peak_rss_bytes = watch.part_peak();
        tracing::info!(
            model = model.name,
            rows = entry.output.as_ref().map(|s| s.rows),
            tests = entry.tests.len(),
            seconds = format!("{:.2}", entry.seconds),
            peak_rss_mib = entry.peak_rss_bytes.map(|b| b / (1024 * 1024)),
            "model built"
        );
        entries.push(entry);
        progress.inc(1);
    }
    watch.lap("models");

    let built: Vec<_> = entries
        .iter()
        .filter(|e| e.skipped.is_none())
        .filter_map(|e| e.output.clone())
        .collect();
    crate::output::commit::publish(draft, &built, &[]).await?;
    for entry in &entries {
        draft.clear_failures(&entry.model).await?;
    }
    draft.publish(&failures).await?;
    Ok(entries)
}
