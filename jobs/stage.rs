//! What the model stages (segment, churn, score) share: a staging area of their own, publishing
//! all their outputs together when they succeed, and a report for the manifest.
//!
//! Each stage publishes on its own, so a stage that cannot train leaves what earlier stages
//! published for the date untouched.

use std::sync::Once;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use chrono::{NaiveDate, Utc};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::publish::{StagedFile, StagedTable, Staging};
use crate::storage::Root;

/// The id of a run of one stage: date, start time and process, so two runs never share one.
pub fn run_id(run_date: NaiveDate, stage: &str) -> String {
    format!(
        "{run_date}-{stage}-{}-{}",
        Utc::now().format("%Y%m%dT%H%M%S%.6fZ"),
        std::process::id()
    )
}

/// The highest resident memory the sampler has seen since the last [`reset_peak_memory`].
static PEAK_RSS: AtomicU64 = AtomicU64::new(0);
static SAMPLER: Once = Once::new();

/// This process's resident memory now, in bytes (Linux's `/proc/self/statm`); `None`
/// elsewhere.
fn resident_memory() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok()?)
}

/// The peak resident memory since the last [`reset_peak_memory`], in bytes: what the manifest
/// reports per model and stage, the figure an operator sizes `--memory-limit` and the machine
/// by. Sampled every 50 ms by a background thread, so a shorter spike can be missed; the
/// kernel's whole-process peak (`ru_maxrss`, what `bench` and `/usr/bin/time` report) is
/// exact. The kernel's own high-water mark is not reset instead, because resetting it
/// (`clear_refs`) also loses the whole-process peak.
pub fn peak_memory() -> Option<u64> {
    let now = resident_memory()?;
    Some(PEAK_RSS.load(Ordering::Relaxed).max(now))
}

/// Starts a new peak at the current resident memory (and the sampler, the first time).
pub fn reset_peak_memory() {
    let Some(now) = resident_memory() else {
        return;
    };
    PEAK_RSS.store(now, Ordering::Relaxed);
    SAMPLER.call_once(|| {
        let spawned = std::thread::Builder::new()
            .name("rss-sampler".into())
            .spawn(|| {
                while let Some(now) = resident_memory() {
                    PEAK_RSS.fetch_max(now, Ordering::Relaxed);
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
            });
        if let Err(error) = spawned {
            tracing::warn!(%error, "no memory sampler: peak memory figures are only what each stage ends with");
        }
    });
}

/// What a stage published, for the manifest and the terminal.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct StageReport {
    pub stage: String,
    pub seconds: f64,
    /// Peak resident memory of the process during the stage, bytes (Linux only; sampled, see
    /// [`peak_memory`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_rss_bytes: Option<u64>,
    pub tables: Vec<StagedTable>,
    pub files: Vec<StagedFile>,
    /// The stage's headline figures (chosen k, AUC, ...).
    pub summary: serde_json::Value,
}

impl StageReport {
    /// A few lines for the terminal.
    pub fn lines(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .tables
            .iter()
            .map(|t| format!("  {:<28} {:>10} rows  {}", t.table, t.rows, t.path))
            .collect();
        lines.extend(
            self.files
                .iter()
                .map(|f| format!("  {:<28} {:>15}  {}", self.stage, "file", f.path)),
        );
        lines
    }
}

/// A stage's staging area, published all at once.
pub struct Stage {
    name: String,
    pub staging: Staging,
    started: Instant,
}

impl Stage {
    pub fn begin(name: &str, output: &Root, run_date: NaiveDate) -> Self {
        reset_peak_memory();
        Stage {
            name: name.into(),
            staging: Staging::new(output, &run_id(run_date, name), run_date),
            started: Instant::now(),
        }
    }

    /// Runs the stage's work; publishes what it staged when it succeeds, discards it when not.
    pub async fn run<F>(self, work: F) -> Result<StageReport>
    where
        F: AsyncFnOnce(&Staging) -> Result<(Vec<StagedTable>, Vec<StagedFile>, serde_json::Value)>,
    {
        let outcome = work(&self.staging).await;
        let (tables, files, summary) = match outcome {
            Ok(done) => done,
            Err(error) => {
                if let Err(cleanup) = self.staging.remove().await {
                    tracing::warn!(%cleanup, stage = self.name, "could not remove the stage's staging files");
                }
                return Err(error);
            }
        };
        self.staging.publish(&tables).await?;
        self.staging.publish_files(&files).await?;
        self.staging.remove().await?;
        let seconds = self.started.elapsed().as_secs_f64();
        let peak_rss_bytes = peak_memory();
        tracing::info!(
            stage = self.name,
            seconds = format!("{seconds:.2}"),
            peak_rss_mib = peak_rss_bytes.map(|b| b / (1024 * 1024)),
            "stage published"
        );
        Ok(StageReport {
            stage: self.name,
            seconds,
            peak_rss_bytes,
            tables,
            files,
            summary,
        })
    }
}

/// The latest run date for which `table` has a published partition.
pub async fn latest_partition(output: &Root, table: &str) -> Result<NaiveDate> {
    let folder = output.path(&[table]);
    let listing = output
        .store
        .list_with_delimiter(Some(&folder))
        .await
        .map_err(Error::store(format!("listing {}", output.describe(&folder))));
    let dates = match listing {
        Ok(listing) => listing
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename()?.strip_prefix("run_date=")?.parse::<NaiveDate>().ok())
            .collect::<Vec<_>>(),
        Err(_) => Vec::new(),
    };
    dates.into_iter().max().ok_or_else(|| Error::NoRunDate {
        reason: format!("{} has no published partition", output.describe(&folder)),
    })
}
