//! The SQL stage: validate the input, plan every model, run them in dependency order into
//! staging, publish, and write the manifest.
//!
//! Nothing is written before the input is validated and every selected model has been
//! planned, so a bad input or a broken model leaves the output untouched.

pub mod data_tests;
pub mod sql_models;

use std::path::PathBuf;
use std::time::Instant;

use chrono::{NaiveDate, Utc};
use datafusion::prelude::SessionContext;
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::input::catalog::{self, RunDate};
use crate::input::contract::{self, Input};
use crate::output::manifest::{Manifest, ModelEntry, Versions};
use crate::output::publish::Staging;
use crate::storage::Root;
use crate::telemetry::Stopwatch;
use sql_models::{Materialized, Model};

/// What the transform is asked to do.
#[derive(Clone, Debug)]
pub struct TransformOptions {
    /// Input root: a folder or an `s3://` URL with one folder per table.
    pub input: String,
    /// Output root: where tables, manifests and staging live.
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
    pub input_root: Root,
    pub input: Input,
    pub run_date: NaiveDate,
    pub models: Vec<Model>,
    /// What the row rules found, and set aside.
    pub quality: crate::input::quality::Report,
    /// Each model's data tests, compiled.
    pub tests: std::collections::BTreeMap<String, Vec<crate::transform::data_tests::Test>>,
    /// The session the models were planned in, with the inputs checked: the build runs in it.
    pub ctx: SessionContext,
}

/// Validates the input and the models, and plans every model; writes nothing.
pub async fn plan(options: &TransformOptions) -> Result<Plan> {
    let input_root = Root::open(&options.input, false)?;
    let input = contract::validate(&input_root).await?;
    tracing::info!(tables = input.tables.len(), absent = ?input.absent(), "input valid");
    let run_date = match options.run_date {
        Some(date) => date,
        None => catalog::latest_order_day(&input_root, &input, options.config.quality.latest_bound()).await?,
    };
    let discovered = sql_models::discover(&options.models_dir)?;
    let ordered = sql_models::order(discovered, &catalog::known_tables())?;
    let models = sql_models::select(ordered, &options.select)?;
    let (ctx, quality) = crate::input::session::session_for(
        &input_root,
        &input,
        RunDate { date: run_date },
        &options.config,
        None,
    )
    .await?;
    if quality.rows.get("orders") == Some(&0) {
        return Err(Error::NothingAsOf {
            table: "orders".into(),
            rows: input.tables["orders"].rows,
            run_date,
            location: input_root.describe(&input_root.path(&["orders"])),
        });
    }
    // Plan every model as a view: a wrong column or type fails here, before any write.
    let mut tests = std::collections::BTreeMap::new();
    for model in &models {
        let df = plan_model(&ctx, model).await?;
        check_documented_columns(model, &df)?;
        if let Some(declared) = &model.tests {
            let compiled = declared
                .compile(&model.name, df.schema(), run_date)
                .map_err(|reason| Error::BadModel {
                    model: model.name.clone(),
                    file: model.file.replace(".sql", crate::transform::data_tests::SUFFIX),
                    reason,
                })?;
            tests.insert(model.name.clone(), compiled);
        }
        ctx.register_table(model.name.as_str(), df.into_view())
            .map_err(Error::engine(format!("registering model {}", model.name)))?;
    }
    Ok(Plan {
        input_root,
        input,
        run_date,
        models,
        quality,
        tests,
        ctx,
    })
}

/// A model with a `columns:` header must document exactly the columns it returns, so the data
/// dictionary cannot drift from the SQL; one without is only warned about.
fn check_documented_columns(model: &Model, df: &datafusion::prelude::DataFrame) -> Result<()> {
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

async fn plan_model(ctx: &SessionContext, model: &Model) -> Result<datafusion::prelude::DataFrame> {
    ctx.sql(&model.sql).await.map_err(|e| Error::BadModel {
        model: model.name.clone(),
        file: model.file.clone(),
        reason: e.to_string(),
    })
}

/// Runs the SQL stage for one date and publishes its tables and manifest, holding the output's
/// lock.
pub async fn run(options: &TransformOptions) -> Result<Manifest> {
    crate::output::lock::with_lock(&options.output, "transform", async |output: &Root| {
        let (mut manifest, _) = build(options).await?;
        let failure = test_failure(&manifest);
        manifest.status = if failure.is_some() { "failed" } else { "succeeded" }.into();
        manifest.error = failure.as_ref().map(|e| e.to_string());
        manifest.write(output).await?;
        match failure {
            Some(error) => Err(error),
            None => Ok(manifest),
        }
    })
    .await
}

/// Validates, plans and runs the SQL stage for one date, and publishes its tables; returns the
/// manifest, unwritten, for later stages to add to, and the validated plan they can reuse.
pub async fn build(options: &TransformOptions) -> Result<(Manifest, Plan)> {
    let started_at = Utc::now();
    let mut watch = Stopwatch::new();
    let plan = plan(options).await?;
    watch.lap("validate");
    let manifest = build_planned(options, &plan, started_at, watch).await?;
    Ok((manifest, plan))
}

/// A fingerprint of everything a date's outputs depend on: the input files (path, size,
/// modification time or ETag), the code versions, every model's SQL, the selection and the
/// settings. Equal fingerprints mean a rerun would publish the same bytes, so `--resume` can
/// skip what is already published.
pub fn fingerprint(options: &TransformOptions, plan: &Plan) -> String {
    let mut settings = options.config.clone();
    // Where the run reads and writes, and its memory cap, change no output.
    settings.run = Default::default();
    let inputs: Vec<(String, Option<String>)> = plan
        .input
        .summaries(&plan.input_root)
        .into_iter()
        .map(|(table, summary)| (table, summary.fingerprint))
        .collect();
    let models: Vec<(&str, String, Vec<&str>)> = plan
        .models
        .iter()
        .map(|m| {
            let tests = plan
                .tests
                .get(&m.name)
                .map(|t| t.iter().map(|t| t.sql.as_str()).collect())
                .unwrap_or_default();
            (
                m.name.as_str(),
                format!("{:x}", Sha256::digest(m.sql.as_bytes())),
                tests,
            )
        })
        .collect();
    let everything = serde_json::json!({
        "run_date": plan.run_date,
        "inputs": inputs,
        "versions": Versions::current(),
        "models": models,
        "select": options.select,
        "settings": settings,
    });
    format!("{:x}", Sha256::digest(everything.to_string().as_bytes()))
}

/// Runs the SQL stage of a validated plan and publishes its tables.
pub async fn build_planned(
    options: &TransformOptions,
    plan: &Plan,
    started_at: chrono::DateTime<Utc>,
    mut watch: Stopwatch,
) -> Result<Manifest> {
    let output = Root::open(&options.output, true)?;
    Staging::remove_leftovers(&output).await?;
    let run_id = format!(
        "{}-{}-{}",
        plan.run_date,
        started_at.format("%Y%m%dT%H%M%S%.6fZ"),
        std::process::id()
    );
    let staging = Staging::new(&output, &run_id, plan.run_date);
    let ctx = &plan.ctx;
    output.register(ctx);

    let entries = match build_models(ctx, plan, &staging, &mut watch).await {
        Ok(entries) => entries,
        Err(error) => {
            // Nothing was published; the staged files of this run are of no use.
            if let Err(cleanup) = staging.remove().await {
                tracing::warn!(%cleanup, "could not remove this run's staging files");
            }
            return Err(error);
        }
    };
    staging.remove().await?;
    watch.lap("publish");

    Ok(Manifest {
        run_id,
        run_date: plan.run_date,
        status: "running".into(),
        started_at,
        finished_at: Utc::now(),
        fingerprint: fingerprint(options, plan),
        completed: if failures(&entries).is_empty() {
            vec![SQL_STAGE.into()]
        } else {
            Vec::new()
        },
        input_root: plan.input_root.display.clone(),
        output_root: output.display.clone(),
        versions: Versions::current(),
        inputs: plan.input.summaries(&plan.input_root),
        absent_inputs: plan.input.absent().iter().map(|s| s.to_string()).collect(),
        models: entries,
        quality: plan.quality.clone(),
        config: options.config.clone(),
        stages: watch.into_stages(),
        jobs: Vec::new(),
        error: None,
    })
}

/// The data tests that failed in a run, as `model: test (n rows)`.
pub fn failures(entries: &[ModelEntry]) -> Vec<String> {
    entries
        .iter()
        .flat_map(|e| {
            e.tests
                .iter()
                .filter(|t| t.failing_rows > 0)
                .map(move |t| format!("{}: {} ({} rows)", e.model, t.test, t.failing_rows))
        })
        .collect()
}

/// The error of a run whose data tests failed, if any did.
pub fn test_failure(manifest: &Manifest) -> Option<Error> {
    let failed = failures(&manifest.models);
    (!failed.is_empty()).then(|| Error::DataTests {
        tests: manifest.models.iter().map(|e| e.tests.len()).sum(),
        failed: failed.len(),
        details: failed,
    })
}

/// The name of the SQL stage in the manifest's `completed` list.
pub const SQL_STAGE: &str = "sql";

/// Builds every model into staging, then publishes the staged tables.
async fn build_models(
    ctx: &SessionContext,
    plan: &Plan,
    staging: &Staging,
    watch: &mut Stopwatch,
) -> Result<Vec<ModelEntry>> {
    let models = &plan.models;
    let mut entries: Vec<ModelEntry> = Vec::with_capacity(models.len());
    // Models kept from publishing: a failed data test, or one upstream.
    let mut blocked: std::collections::BTreeSet<&str> = std::collections::BTreeSet::new();
    let progress = crate::telemetry::progress();
    progress.set_length(models.len() as u64);
    for model in models {
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
            Materialized::Table => Some(staging.write(ctx, &model.name, &model.file, df).await?),
        };
        for test in plan.tests.get(&model.name).into_iter().flatten() {
            entry.tests.push(test.run(ctx, &model.name, &model.file).await?);
        }
        let failed: Vec<&crate::transform::data_tests::Outcome> =
            entry.tests.iter().filter(|t| t.failing_rows > 0).collect();
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

    let staged: Vec<_> = entries
        .iter()
        .filter(|e| e.skipped.is_none())
        .filter_map(|e| e.output.clone())
        .collect();
    staging.publish(&staged).await?;
    Ok(entries)
}
