//! The side-by-side benchmark against the peer a user would pick instead: the DuckDB +
//! scikit-learn pipeline in `../shared/peer/`, on the same input, on the same cores, alternated.
//!
//! Absolute times move from run to run on a shared machine; a ratio measured on one input in
//! alternation does not move as much, so the report's unit is the ratio. Two comparisons:
//! - **the night**: our whole `nightly` (validation and row rules, every SQL model with its data
//!   tests, segment, churn) against the peer's whole pipeline;
//! - **the same work**: what the peer builds, one for one: `cohort_retention`, `rfm_segments` and
//!   `customer_features` (`transform --select`), then `segment`, then `churn`, against the peer's
//!   marts + features, k-means, and churn stages.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::benchmark::{Measurement, measure, sibling};
use crate::error::{Error, Result};

/// What to compare.
#[derive(Clone, Debug)]
pub struct SideBySideOptions {
    pub scales: Vec<u64>,
    /// Where inputs and outputs go (one folder per scale).
    pub work_dir: PathBuf,
    /// The folder of SQL models.
    pub models_dir: PathBuf,
    /// The peer's folder: `make_scale.py` and `anchor_pipeline.py`.
    pub peer_dir: PathBuf,
    /// The Python that runs the peer (with duckdb, pyarrow, numpy, scikit-learn).
    pub python: String,
    /// The run date: the peer's generator writes orders up to 2024-12-31.
    pub run_date: String,
    /// How many times each side runs, alternated (ours first in odd rounds, the peer first in
    /// even ones).
    pub rounds: u32,
    /// Compare the night (`night`) and the same work (`same-work`).
    pub comparisons: Vec<String>,
    /// Our side runs once per entry, with that `--memory-limit` (`None`: no cap). The peer has
    /// no cap to set; the 10M target is our night within 2 GiB.
    pub memory_limits: Vec<Option<String>>,
}

/// One compared stage of one round: our seconds and peak, the peer's.
#[derive(Clone, Debug)]
pub struct Compared {
    pub customers: u64,
    pub round: u32,
    pub stage: String,
    pub ours: Measurement,
    pub peer: Measurement,
}

pub(crate) const MARKDOWN_HEADER: &str = "| customers | round | stage | ours s | peer s | time ratio | ours peak MiB | peer peak MiB | memory ratio |\n|---|---|---|---|---|---|---|---|---|";

impl Compared {
    pub fn markdown(&self) -> String {
        let mib = |m: &Measurement| m.peak_rss_bytes as f64 / (1024.0 * 1024.0);
        let ratio = |a: f64, b: f64| {
            if b > 0.0 {
                format!("{:.2}", a / b)
            } else {
                String::new()
            }
        };
        let peak = |m: &Measurement| {
            if m.peak_rss_bytes > 0 {
                format!("{:.0}", mib(m))
            } else {
                String::new()
            }
        };
        format!(
            "| {} | {} | {} | {:.1} | {:.1} | {} | {} | {} | {} |",
            self.customers,
            self.round,
            self.stage,
            self.ours.seconds,
            self.peer.seconds,
            ratio(self.ours.seconds, self.peer.seconds),
            peak(&self.ours),
            peak(&self.peer),
            ratio(mib(&self.ours), mib(&self.peer)),
        )
    }
}

/// A stage's time without a peak of its own (the manifest's per-stage seconds, the peer's).
fn seconds(seconds: f64) -> Measurement {
    Measurement {
        seconds,
        peak_rss_bytes: 0,
    }
}

/// The peer's whole pipeline, and the seconds of its stages from the JSON it prints last.
fn run_peer(
    options: &SideBySideOptions,
    input: &Path,
    output: &Path,
) -> Result<(Measurement, serde_json::Value)> {
    let _ = std::fs::remove_dir_all(output);
    let report = output.with_extension("out");
    let file = std::fs::File::create(&report).map_err(Error::io(format!("creating {}", report.display())))?;
    let measurement = measure(
        Command::new(&options.python)
            .arg(options.peer_dir.join("anchor_pipeline.py"))
            .arg(input)
            .arg(output)
            .arg(&options.run_date)
            .args(["--threads", "2"])
            .stdout(file),
    )?;
    let text =
        std::fs::read_to_string(&report).map_err(Error::io(format!("reading {}", report.display())))?;
    let summary = text
        .lines()
        .rev()
        .find_map(|line| serde_json::from_str::<serde_json::Value>(line.trim()).ok())
        .ok_or_else(|| Error::Internal(format!("{} holds no summary", report.display())))?;
    Ok((measurement, summary["seconds"].clone()))
}

/// Runs our side (`ours`) and the peer's whole pipeline, the peer first when `peer_first`.
fn alternated<T>(
    options: &SideBySideOptions,
    input: &Path,
    peer_out: &Path,
    peer_first: bool,
    ours: impl FnOnce() -> Result<T>,
) -> Result<(T, (Measurement, serde_json::Value))> {
    if peer_first {
        let peer = run_peer(options, input, peer_out)?;
        Ok((ours()?, peer))
    } else {
        let ours = ours()?;
        Ok((ours, run_peer(options, input, peer_out)?))
    }
}

/// One of our binaries on the compared input, measured.
fn run_ours(
    options: &SideBySideOptions,
    binary: &str,
    input: &Path,
    output: &Path,
    memory_limit: Option<&str>,
    extra: &[&str],
) -> Result<Measurement> {
    let mut command = Command::new(sibling(binary)?);
    if let Some(limit) = memory_limit {
        command.args(["--memory-limit", limit]);
    }
    command
        .arg("--output")
        .arg(output)
        .args(["--date", &options.run_date])
        .env("RUST_LOG", "warn")
        .env_remove("GROWTH_MEMORY_LIMIT")
        .stdout(Stdio::null());
    if binary != "segment" {
        command
            .arg("--input")
            .arg(input)
            .arg("--models")
            .arg(&options.models_dir);
    }
    measure(command.args(extra))
}

/// The seconds of our night's stages, from its manifest: validation, SQL models, segment, churn.
fn night_stages(output: &Path, run_date: &str) -> Result<Vec<(String, f64)>> {
    let day = run_date
        .parse()
        .map_err(|e| Error::Usage(format!("run date {run_date}: {e}")))?;
    let path = output.join(crate::output::published::manifest_parts(day).join("/"));
    let text = std::fs::read_to_string(&path).map_err(Error::io(format!("reading {}", path.display())))?;
    let manifest: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Error::Internal(format!("parsing {}: {e}", path.display())))?;
    let mut stages = Vec::new();
    for list in ["stages", "jobs"] {
        for entry in manifest[list].as_array().into_iter().flatten() {
            let name = entry["stage"].as_str().unwrap_or("?").to_string();
            stages.push((name, entry["seconds"].as_f64().unwrap_or(f64::NAN)));
        }
    }
    Ok(stages)
}

/// The rounds to run at each scale, numbered from 1, each with our memory cap: every round
/// under every cap.
fn rounds(options: &SideBySideOptions) -> Vec<(u32, Option<String>)> {
    let mut rounds = Vec::new();
    for round in 1..=options.rounds {
        for limit in &options.memory_limits {
            rounds.push((round, limit.clone()));
        }
    }
    rounds
}

/// Runs the comparison, printing each row as it is measured.
pub async fn run(options: &SideBySideOptions) -> Result<Vec<Compared>> {
    let mut rows = Vec::new();
    println!("{MARKDOWN_HEADER}");
    for &customers in &options.scales {
        let folder = options.work_dir.join(format!("peer-input-{customers}"));
        let input = folder.join("input");
        if !input.join("orders").is_dir() {
            let generated = measure(
                Command::new(&options.python)
                    .arg(options.peer_dir.join("make_scale.py"))
                    .arg(customers.to_string())
                    .arg(&input)
                    .stdout(Stdio::null()),
            )?;
            eprintln!(
                "generated {customers} customers with the peer's make_scale.py in {:.1} s",
                generated.seconds
            );
        }
        for (round, limit) in rounds(options) {
            let limit = limit.as_deref();
            let mut record = |stage: &str, ours: Measurement, peer: Measurement| {
                let row = Compared {
                    customers,
                    round,
                    stage: match limit {
                        Some(limit) => format!("{stage} (ours within {limit})"),
                        None => stage.into(),
                    },
                    ours,
                    peer,
                };
                println!("{}", row.markdown());
                rows.push(row);
            };
            let peer_first = round % 2 == 0;
            let ours_out = folder.join("ours");
            let peer_out = folder.join("peer");
            if options.comparisons.iter().any(|c| c == "night") {
                let _ = std::fs::remove_dir_all(&ours_out);
                let (night, (peer_night, peer_stages)) =
                    alternated(options, &input, &peer_out, peer_first, || {
                        run_ours(options, "nightly", &input, &ours_out, limit, &[])
                    })?;
                let stage = |name: &str| peer_stages[name].as_f64().unwrap_or(0.0);
                for (name, ours) in night_stages(&ours_out, &options.run_date)? {
                    let peer = match name.as_str() {
                        "models" => stage("marts") + stage("features"),
                        "segment" => stage("kmeans"),
                        "churn" => stage("churn") + stage("write"),
                        _ => 0.0,
                    };
                    record(&format!("night: {name}"), seconds(ours), seconds(peer));
                }
                record("night: whole process", night, peer_night);
            }
            if options.comparisons.iter().any(|c| c == "same-work") {
                let _ = std::fs::remove_dir_all(&ours_out);
                let ((marts, segment, churn), (peer_whole, peer_stages)) =
                    alternated(options, &input, &peer_out, peer_first, || {
                        let marts = run_ours(
                            options,
                            "transform",
                            &input,
                            &ours_out,
                            limit,
                            &["--select", "cohort_retention,rfm_segments,customer_features"],
                        )?;
                        let segment = run_ours(options, "segment", &input, &ours_out, limit, &[])?;
                        let churn = run_ours(options, "churn", &input, &ours_out, limit, &[])?;
                        Ok((marts, segment, churn))
                    })?;
                let stage = |name: &str| peer_stages[name].as_f64().unwrap_or(0.0);
                let total = Measurement {
                    seconds: marts.seconds + segment.seconds + churn.seconds,
                    peak_rss_bytes: marts
                        .peak_rss_bytes
                        .max(segment.peak_rss_bytes)
                        .max(churn.peak_rss_bytes),
                };
                record(
                    "same work: marts + features",
                    marts,
                    seconds(stage("marts") + stage("features")),
                );
                record("same work: k-means (segment)", segment, seconds(stage("kmeans")));
                record(
                    "same work: churn",
                    churn,
                    seconds(stage("churn") + stage("write")),
                );
                record("same work: total", total, peer_whole);
            }
        }
    }
    Ok(rows)
}
