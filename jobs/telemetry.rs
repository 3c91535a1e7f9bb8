//! What a run tells the people and machines watching it: log lines (plain or JSON), the
//! progress bar on a terminal, run ids, stage timings and the process's peak memory.
//!
//! Logs go to stderr through `tracing` (`RUST_LOG` sets the level, `info` by default). On a
//! terminal a progress bar shows the models as they run and log lines print above it; with no
//! terminal (a scheduler, CI) there is no bar, only plain log lines.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Once, OnceLock};
use std::time::Instant;

use chrono::{NaiveDate, Utc};
use indicatif::{ProgressBar, ProgressStyle};
use tracing_subscriber::EnvFilter;

use serde::{Deserialize, Serialize};

static BAR: OnceLock<ProgressBar> = OnceLock::new();

/// The progress bar, hidden unless stderr is a terminal.
pub(crate) fn progress() -> &'static ProgressBar {
    BAR.get_or_init(|| {
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}")
                    .expect("the template is valid"),
            );
            bar
        } else {
            ProgressBar::hidden()
        }
    })
}

/// A log line buffered, then written to stderr with the progress bar moved out of the way.
struct LogLine(Vec<u8>);

impl Write for LogLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LogLine {
    fn drop(&mut self) {
        let line = std::mem::take(&mut self.0);
        progress().suspend(|| {
            let _ = std::io::stderr().write_all(&line);
        });
    }
}

/// The environment variable that switches logs to JSON lines (`GROWTH_LOG_FORMAT=json`), for
/// log shippers; anything else means plain text.
pub const LOG_FORMAT: &str = "GROWTH_LOG_FORMAT";

pub(crate) fn json_logs() -> bool {
    std::env::var(LOG_FORMAT).is_ok_and(|f| f.eq_ignore_ascii_case("json"))
}

/// Sets up logging for a binary.
pub fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(|| LogLine(Vec::new()));
    let _ = if json_logs() {
        // One JSON object per line: timestamp, level, message and every field at the top level.
        builder.json().flatten_event(true).with_ansi(false).try_init()
    } else {
        builder.with_ansi(std::io::stderr().is_terminal()).try_init()
    };
}

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
pub(crate) fn peak_memory() -> Option<u64> {
    let now = resident_memory()?;
    Some(PEAK_RSS.load(Ordering::Relaxed).max(now))
}

/// Starts a new peak at the current resident memory (and the sampler, the first time).
pub(crate) fn reset_peak_memory() {
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

/// The time one stage took, and the process's peak resident memory during it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StageTiming {
    pub stage: String,
    pub seconds: f64,
    /// Bytes (Linux only; see [`peak_memory`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_rss_bytes: Option<u64>,
}

/// Times stages for the manifest, and takes their peak memory.
pub(crate) struct Stopwatch {
    stages: Vec<StageTiming>,
    last: Instant,
    /// The peak of the current stage's parts read so far (see [`Stopwatch::part_peak`]).
    peak: Option<u64>,
}

impl Default for Stopwatch {
    fn default() -> Self {
        Self::new()
    }
}

impl Stopwatch {
    pub fn new() -> Self {
        reset_peak_memory();
        Stopwatch {
            stages: Vec::new(),
            last: Instant::now(),
            peak: None,
        }
    }

    pub(crate) fn lap(&mut self, stage: &str) {
        let now = Instant::now();
        self.part_peak();
        let peak_rss_bytes = self.peak.take();
        self.stages.push(StageTiming {
            stage: stage.into(),
            seconds: (now - self.last).as_secs_f64(),
            peak_rss_bytes,
        });
        tracing::info!(
            stage,
            seconds = format!("{:.2}", (now - self.last).as_secs_f64()),
            peak_rss_mib = peak_rss_bytes.map(|b| b / (1024 * 1024)),
            "stage done"
        );
        self.last = now;
    }

    /// The stages timed so far, for the manifest.
    pub(crate) fn into_stages(self) -> Vec<StageTiming> {
        self.stages
    }

    /// The peak memory since the last part ended (a model), starting a new one; the stage's
    /// own peak keeps the highest.
    pub(crate) fn part_peak(&mut self) -> Option<u64> {
        let peak = peak_memory();
        self.peak = self.peak.max(peak);
        reset_peak_memory();
        peak
    }
}
