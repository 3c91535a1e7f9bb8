//! The SQL models on a real Ballista cluster: one `growth-scheduler` and two `growth-executor`
//! processes on loopback, driven by `nightly --engine ballista://...`, against the local engine.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use growth_jobs::error::exit_code;

use crate::support::*;

const RUN_DATE: &str = "2026-06-30";

/// A scheduler and its executors, killed when dropped.
struct Cluster {
    scheduler_port: u16,
    scheduler: Child,
    executors: Vec<Child>,
    _work: tempfile::TempDir,
}

/// A port free on loopback now, with the next one free too (an executor listens on both).
fn free_port_pair() -> u16 {
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if port < u16::MAX
            && TcpListener::bind(("127.0.0.1", port)).is_ok()
            && TcpListener::bind(("127.0.0.1", port + 1)).is_ok()
        {
            return port;
        }
    }
}

impl Cluster {
    /// Starts a scheduler that gives up on a silent executor after `executor_timeout` seconds,
    /// and `executors` executors with one-second heartbeats.
    fn start(executors: usize, executor_timeout: u64) -> Cluster {
        Self::start_with_env(executors, executor_timeout, &[])
    }

    /// [`Cluster::start`], every process with `env` added to its environment.
    fn start_with_env(executors: usize, executor_timeout: u64, env: &[(&'static str, String)]) -> Cluster {
        let work = tempfile::tempdir().unwrap();
        let scheduler_port = free_port_pair();
        let logs = work.path().to_path_buf();
        let log = move |name: &str| Stdio::from(std::fs::File::create(logs.join(name)).unwrap());
        let scheduler = Command::new(env!("CARGO_BIN_EXE_growth-scheduler"))
            .args(["--bind", "127.0.0.1", "--external-host", "127.0.0.1"])
            .args(["--port", &scheduler_port.to_string()])
            .args(["--executor-timeout-seconds", &executor_timeout.to_string()])
            .env("RUST_LOG", "warn")
            .envs(env.iter().cloned())
            .stdout(log("scheduler.log"))
            .stderr(log("scheduler.err"))
            .spawn()
            .unwrap();
        wait_for_port(scheduler_port, "the scheduler");
        let mut cluster = Cluster {
            scheduler_port,
            scheduler,
            executors: Vec::new(),
            _work: work,
        };
        for n in 0..executors {
            let port = free_port_pair();
            let shuffle = cluster._work.path().join(format!("executor-{n}"));
            std::fs::create_dir_all(&shuffle).unwrap();
            let child = Command::new(env!("CARGO_BIN_EXE_growth-executor"))
                .args(["--scheduler", &format!("127.0.0.1:{scheduler_port}")])
                .args(["--bind", "127.0.0.1", "--external-host", "127.0.0.1"])
                .args(["--port", &port.to_string(), "--concurrent-tasks", "2"])
                .args(["--heartbeat-seconds", "1"])
                .arg("--work-dir")
                .arg(&shuffle)
                .env("RUST_LOG", "warn")
                .envs(env.iter().cloned())
                .stdout(log(&format!("executor-{n}.log")))
                .stderr(log(&format!("executor-{n}.err")))
                .spawn()
                .unwrap();
            wait_for_port(port, "an executor");
            wait_for_port(port + 1, "an executor's gRPC");
            cluster.executors.push(child);
        }
        // Registration follows listening; give the first heartbeat time to arrive.
        std::thread::sleep(Duration::from_secs(2));
        cluster
    }

    fn engine(&self) -> String {
        format!("ballista://127.0.0.1:{}", self.scheduler_port)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in self
            .executors
            .iter_mut()
            .chain(std::iter::once(&mut self.scheduler))
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn workspace() -> Workspace {
    let ws = Workspace::new();
    generate_into(&ws.input(), 2_000, 5);
    ws
}

/// A second workspace reading the same input files (a link to the first's input folder: the
/// same files, so the same input fingerprint).
fn same_input(ws: &Workspace) -> Workspace {
    let other = Workspace::new();
    std::os::unix::fs::symlink(ws.input(), other.input()).unwrap();
    other
}

fn nightly(ws: &Workspace, args: &[&str]) -> Output {
    ws.command(env!("CARGO_BIN_EXE_nightly"))
        .args(["--date", RUN_DATE])
        .args(args)
        .output()
        .unwrap()
}

/// The published Parquet files below an output, relative to it, in path order.
fn published(ws: &Workspace) -> Vec<PathBuf> {
    ws.snapshot()
        .into_iter()
        .map(|(p, _)| p.strip_prefix(ws.output()).unwrap().to_path_buf())
        .filter(|p| p.extension().is_some_and(|e| e == "parquet") && !p.starts_with("_growth_drafts"))
        .collect()
}

fn manifest(ws: &Workspace) -> serde_json::Value {
    ws.manifest(RUN_DATE)
}

/// Every published table of `ours` holds the rows of `local`'s, in the same order (every
/// published model orders its rows).
async fn assert_same_tables(local: &Workspace, ours: &Workspace) {
    let tables = published(local);
    assert!(tables.len() >= 20, "{} tables", tables.len());
    assert_eq!(tables, published(ours));
    for table in &tables {
        let rows = |ws: &Workspace| read_rows(ws.output().join(table));
        assert!(
            rows(local).await == rows(ours).await,
            "{} differs between the local engine and the cluster",
            table.display()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_night_on_a_ballista_cluster_publishes_what_the_local_engine_does() {
    let local = workspace();
    let ours = same_input(&local);
    let cluster = Cluster::start(2, 180);

    let result = nightly(&local, &[]);
    assert!(result.status.success(), "{}", stderr(&result));
    let result = nightly(&ours, &["--engine", &cluster.engine()]);
    assert!(result.status.success(), "{}", stderr(&result));

    assert_same_tables(&local, &ours).await;
    assert_eq!(manifest(&local)["engine"], "local");
    assert_eq!(manifest(&ours)["engine"], cluster.engine());
    assert_eq!(manifest(&ours)["status"], "succeeded");
    // Same inputs, code and settings: the engine is not part of what the outputs depend on.
    assert_eq!(manifest(&local)["fingerprint"], manifest(&ours)["fingerprint"]);
}

/// Absent optional tables are empty views; the cluster must resolve the models reading them.
#[tokio::test(flavor = "multi_thread")]
async fn a_night_without_the_optional_tables_runs_on_the_cluster_too() {
    let local = workspace();
    for table in ["sessions", "invites", "shipments"] {
        std::fs::remove_dir_all(local.input().join(table)).unwrap();
    }
    let ours = same_input(&local);
    let cluster = Cluster::start(2, 180);
    let transform = |ws: &Workspace, args: &[&str]| {
        ws.command(env!("CARGO_BIN_EXE_transform"))
            .args(["--date", RUN_DATE])
            .args(args)
            .output()
            .unwrap()
    };
    let result = transform(&local, &[]);
    assert!(result.status.success(), "{}", stderr(&result));
    let result = transform(&ours, &["--engine", &cluster.engine()]);
    assert!(result.status.success(), "{}", stderr(&result));
    assert_same_tables(&local, &ours).await;
}

/// Input and output in an S3 bucket (moto's server on loopback): the scheduler and the
/// executors open the bucket from their own `AWS_*` environment.
#[tokio::test(flavor = "multi_thread")]
async fn a_night_from_s3_to_s3_on_the_cluster_publishes_what_the_local_engine_does() {
    use crate::s3::{BUCKET, S3Server, download, upload};
    let local = workspace();
    let result = nightly(&local, &[]);
    assert!(result.status.success(), "{}", stderr(&result));

    let server = S3Server::start();
    server.create_bucket();
    let store = std::sync::Arc::new(server.store());
    upload(&store, &local.input(), "in").await;
    let cluster = Cluster::start_with_env(2, 180, &server.env());
    let result = Command::new(env!("CARGO_BIN_EXE_nightly"))
        .args(["--date", RUN_DATE, "--engine", &cluster.engine()])
        .args(["--input", &format!("s3://{BUCKET}/in")])
        .args(["--output", &format!("s3://{BUCKET}/out")])
        .arg("--models")
        .arg(repo_models())
        .envs(server.env())
        .env("RUST_LOG", "warn")
        .env_remove("GROWTH_SET")
        .output()
        .unwrap();
    assert!(result.status.success(), "{}", stderr(&result));

    let ours = Workspace::new();
    download(&store, "out", &ours.output()).await;
    assert!(
        !ours.output().join("_growth_drafts").exists(),
        "drafts left in the bucket"
    );
    assert_same_tables(&local, &ours).await;
    assert_eq!(manifest(&ours)["engine"], cluster.engine());
    assert_eq!(manifest(&ours)["status"], "succeeded");
}

#[test]
fn a_model_the_cluster_cannot_run_fails_with_exit_4_and_publishes_nothing() {
    let ws = workspace();
    let cluster = Cluster::start(1, 180);
    ws.model(
        "marts/orders_per_day.sql",
        "select cast(order_ts as date) as day, count(*) as orders from orders group by 1 order by 1",
    );
    // generate_series plans here, but its table has no wire format: Ballista cannot ship it.
    ws.model(
        "marts/series.sql",
        "select value from generate_series(1, 3) order by value",
    );
    let result = ws
        .command_with_models(env!("CARGO_BIN_EXE_transform"), &ws.models())
        .args(["--date", RUN_DATE, "--engine", &cluster.engine()])
        .output()
        .unwrap();
    assert_eq!(
        result.status.code(),
        Some(exit_code::BAD_MODEL),
        "{}",
        stderr(&result)
    );
    let error = stderr(&result);
    assert!(error.contains("series"), "{error}");
    assert!(published(&ws).is_empty(), "{:?}", published(&ws));
}

#[test]
fn an_absent_scheduler_is_exit_1_before_anything_is_read() {
    let ws = workspace();
    let port = free_port_pair();
    let result = nightly(&ws, &["--engine", &format!("ballista://127.0.0.1:{port}")]);
    assert_eq!(
        result.status.code(),
        Some(exit_code::INTERNAL),
        "{}",
        stderr(&result)
    );
    assert!(
        stderr(&result).contains("growth-scheduler"),
        "{}",
        stderr(&result)
    );
    assert!(!ws.output().join("_manifests").exists());
}

/// Kills one of two executors while the night's SQL stage runs on them.
#[tokio::test(flavor = "multi_thread")]
async fn an_executor_killed_during_the_night_leaves_nothing_half_published() {
    let local = workspace();
    let ours = same_input(&local);
    let mut cluster = Cluster::start(2, 5);
    let result = nightly(&local, &[]);
    assert!(result.status.success(), "{}", stderr(&result));

    let night = ours
        .command(env!("CARGO_BIN_EXE_nightly"))
        .args(["--date", RUN_DATE, "--engine", &cluster.engine()])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Once the first model's draft is written, the stage is well under way.
    let drafts = ours.output().join("_growth_drafts");
    let started = Instant::now();
    while !has_parquet(&drafts) {
        assert!(started.elapsed() < Duration::from_secs(300), "no draft appeared");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut victim = cluster.executors.remove(0);
    victim.kill().unwrap();
    victim.wait().unwrap();
    let output = night.wait_with_output().unwrap();
    eprintln!(
        "night with an executor killed: {:?}\n{}",
        output.status.code(),
        stderr(&output)
    );
    if output.status.success() {
        // Ballista ran the lost tasks on the other executor.
        assert_same_tables(&local, &ours).await;
    } else {
        // Nothing was published, and a rerun on what is left of the cluster completes.
        assert!(published(&ours).is_empty(), "{:?}", published(&ours));
        let rerun = nightly(&ours, &["--engine", &cluster.engine()]);
        assert!(rerun.status.success(), "{}", stderr(&rerun));
        assert_same_tables(&local, &ours).await;
    }
}

fn has_parquet(folder: &Path) -> bool {
    let Ok(runs) = std::fs::read_dir(folder) else {
        return false;
    };
    runs.flatten().any(|run| {
        std::fs::read_dir(run.path()).is_ok_and(|files| {
            files
                .flatten()
                .any(|f| f.path().extension().is_some_and(|e| e == "parquet"))
        })
    })
}
