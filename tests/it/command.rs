//! The `nightly` command as a scheduler drives it: dry runs, backfills, `--resume`, the lock,
//! the config file with its overrides, and the memory cap.

use std::path::PathBuf;
use std::process::{Command, Output};

use growth_jobs::error::exit_code;

use crate::support::*;

const RUN_DATE: &str = "2026-06-30";

/// A workspace with a generated input of 2,000 customers.
fn workspace() -> Workspace {
    let ws = Workspace::new();
    generate_into(&ws.input(), 2_000, 5);
    ws
}

/// Runs `nightly` on the workspace with the repository's models and `args`.
fn nightly(ws: &Workspace, args: &[&str]) -> Output {
    ws.command(env!("CARGO_BIN_EXE_nightly"))
        .args(args)
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn manifest(ws: &Workspace, date: &str) -> serde_json::Value {
    ws.manifest(date)
}

#[test]
fn a_dry_run_prints_the_plan_and_writes_nothing() {
    let ws = workspace();
    let result = nightly(&ws, &["--dry-run", "--date", RUN_DATE]);
    assert!(result.status.success(), "{}", stderr(&result));
    let out = stdout(&result);
    for needle in [
        "dry run for 2026-06-30",
        "orders",
        "stg_customers",
        "customer_features",
        "stage segment",
        "stage churn",
    ] {
        assert!(out.contains(needle), "{needle} missing from:\n{out}");
    }
    // Models print in dependency order.
    assert!(out.find("stg_customers").unwrap() < out.find("kpi_monthly").unwrap());
    assert!(!ws.output().exists(), "a dry run created the output folder");
}

#[test]
fn a_backfill_runs_each_date_and_resume_skips_what_is_published() {
    let ws = workspace();
    let dates = ["2026-06-28", "2026-06-29", "2026-06-30"];
    let backfill = ["--from", dates[0], "--to", dates[2], "--select", "daily_sales"];
    let result = nightly(&ws, &backfill);
    assert!(result.status.success(), "{}", stderr(&result));
    let first: Vec<serde_json::Value> = dates.iter().map(|d| manifest(&ws, d)).collect();
    for (m, d) in first.iter().zip(dates) {
        assert_eq!(m["status"], "succeeded");
        assert_eq!(m["run_date"], d);
        assert!(ws.published("daily_sales", d).exists());
    }
    // A later date sees more days of sales.
    let rows = |m: &serde_json::Value| {
        m["models"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["model"] == "daily_sales")
            .unwrap()["output"]["rows"]
            .as_u64()
            .unwrap()
    };
    assert!(rows(&first[0]) < rows(&first[2]));

    let before = ws.snapshot();
    let resumed = nightly(&ws, &[&backfill[..], &["--resume"]].concat());
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    assert_eq!(
        ws.snapshot(),
        before,
        "--resume with nothing changed rewrote something"
    );

    // Another setting changes the fingerprint: every date runs again.
    let changed = nightly(
        &ws,
        &[&backfill[..], &["--resume", "--set", "preferred_roi=4.5"]].concat(),
    );
    assert!(changed.status.success(), "{}", stderr(&changed));
    for (old, d) in first.iter().zip(dates) {
        let new = manifest(&ws, d);
        assert_ne!(new["run_id"], old["run_id"], "{d} was not rerun");
        assert_ne!(new["fingerprint"], old["fingerprint"]);
        assert_eq!(new["config"]["preferred_roi"], 4.5);
    }

    let backwards = nightly(&ws, &["--from", dates[2], "--to", dates[0]]);
    assert_eq!(
        backwards.status.code(),
        Some(exit_code::USAGE),
        "{}",
        stderr(&backwards)
    );
    assert!(stderr(&backwards).contains("is after --to"));
}

#[test]
fn resume_runs_only_the_stages_a_failed_night_left() {
    let ws = workspace();
    // A lifetime-value stage that cannot train (more repeat customers asked for than there
    // are) fails the night after the SQL, segment and churn stages published.
    let impossible = "clv.min_repeat_customers=100000000";
    let failing = nightly(&ws, &["--date", RUN_DATE, "--set", impossible]);
    assert_eq!(
        failing.status.code(),
        Some(exit_code::BAD_INPUT),
        "{}",
        stderr(&failing)
    );
    let failed = manifest(&ws, RUN_DATE);
    assert_eq!(failed["status"], "failed");
    assert_eq!(
        failed["completed"],
        serde_json::json!(["sql", "segment", "churn"])
    );
    assert!(
        failed["error"].as_str().unwrap().contains("clv"),
        "{}",
        failed["error"]
    );

    // Resuming with the same inputs, code and settings retries the clv stage alone.
    let segments = std::fs::read(ws.published("customer_segments", RUN_DATE)).unwrap();
    let scores = std::fs::read(ws.published("churn_scores", RUN_DATE)).unwrap();
    let retried = nightly(&ws, &["--date", RUN_DATE, "--resume", "--set", impossible]);
    assert_eq!(retried.status.code(), Some(exit_code::BAD_INPUT));
    let again = manifest(&ws, RUN_DATE);
    assert_eq!(again["run_id"], failed["run_id"], "the SQL stage ran again");
    assert_eq!(again["completed"], serde_json::json!(["sql", "segment", "churn"]));
    assert_eq!(
        std::fs::read(ws.published("customer_segments", RUN_DATE)).unwrap(),
        segments
    );
    assert_eq!(
        std::fs::read(ws.published("churn_scores", RUN_DATE)).unwrap(),
        scores
    );
}

#[test]
fn resume_after_the_sql_stage_alone_runs_the_model_stages() {
    let ws = workspace();
    let transform = ws
        .command(env!("CARGO_BIN_EXE_transform"))
        .args(["--date", RUN_DATE])
        .output()
        .unwrap();
    assert!(transform.status.success(), "{}", stderr(&transform));
    let sql_only = manifest(&ws, RUN_DATE);
    assert_eq!(sql_only["status"], "succeeded");
    assert_eq!(sql_only["completed"], serde_json::json!(["sql"]));
    let features = std::fs::read(ws.published("customer_features", RUN_DATE)).unwrap();

    // Same inputs, code and settings: the night keeps the SQL stage and runs the model stages.
    let resumed = nightly(&ws, &["--date", RUN_DATE, "--resume"]);
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    let night = manifest(&ws, RUN_DATE);
    assert_eq!(night["run_id"], sql_only["run_id"], "the SQL stage ran again");
    assert_eq!(night["status"], "succeeded");
    assert_eq!(
        night["completed"],
        serde_json::json!(["sql", "segment", "churn", "clv", "report"])
    );
    assert!(ws.published("churn_scores", RUN_DATE).exists());
    assert!(ws.published("clv_scores", RUN_DATE).exists());
    assert_eq!(
        std::fs::read(ws.published("customer_features", RUN_DATE)).unwrap(),
        features
    );
}

#[test]
fn a_backfill_validates_its_input_once() {
    let ws = workspace();
    let result = ws
        .command(env!("CARGO_BIN_EXE_nightly"))
        .args(["--from", "2026-06-28", "--to", RUN_DATE, "--dry-run"])
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    assert!(result.status.success(), "{}", stderr(&result));
    assert_eq!(
        stdout(&result).matches("dry run for ").count(),
        3,
        "{}",
        stdout(&result)
    );
    assert_eq!(
        stderr(&result).matches("input valid").count(),
        1,
        "{}",
        stderr(&result)
    );
}

#[test]
fn a_held_lock_stops_a_second_run_and_a_dead_holder_is_taken_over() {
    let ws = workspace();
    std::fs::create_dir_all(ws.output()).unwrap();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let lock = |pid: u32| {
        serde_json::json!({
            "command": "nightly", "host": host.trim(), "pid": pid,
            "started_at": "2026-11-26T02:00:00Z"
        })
        .to_string()
    };
    let lock_file = ws.output().join("_lock.json");
    // This test process is alive: the lock holds.
    std::fs::write(&lock_file, lock(std::process::id())).unwrap();
    let refused = nightly(&ws, &["--date", RUN_DATE, "--select", "daily_sales"]);
    assert_eq!(
        refused.status.code(),
        Some(exit_code::LOCKED),
        "{}",
        stderr(&refused)
    );
    let errors: Vec<String> = stderr(&refused)
        .lines()
        .filter(|l| l.starts_with("error: "))
        .map(String::from)
        .collect();
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].contains(&format!("pid {}", std::process::id())) && errors[0].contains("_lock.json"),
        "{}",
        errors[0]
    );
    assert!(!ws.published("daily_sales", RUN_DATE).exists());

    // A process that has exited: its lock is stale and taken over, then released.
    let mut gone = Command::new("true").spawn().unwrap();
    gone.wait().unwrap();
    std::fs::write(&lock_file, lock(gone.id())).unwrap();
    let result = nightly(&ws, &["--date", RUN_DATE, "--select", "daily_sales"]);
    assert!(result.status.success(), "{}", stderr(&result));
    assert!(ws.published("daily_sales", RUN_DATE).exists());
    assert!(!lock_file.exists(), "the lock was not released");
}

#[test]
fn the_config_file_sets_paths_and_flags_and_environment_override_it() {
    let ws = workspace();
    let from_file = ws.dir.path().join("from-file");
    let config = ws.dir.path().join("growth.toml");
    std::fs::write(
        &config,
        format!(
            "preferred_roi = 4.25\n[run]\ninput = {:?}\noutput = {:?}\nmemory_limit = \"1GiB\"\n",
            ws.input(),
            from_file
        ),
    )
    .unwrap();
    let run = |extra: &[&str], env: &[(&str, &str)]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_nightly"));
        command
            .arg("--config")
            .arg(&config)
            .arg("--models")
            .arg(repo_models())
            .args(["--date", RUN_DATE, "--select", "channel_performance"])
            .args(extra)
            .env("RUST_LOG", "warn")
            .env_remove("GROWTH_OUTPUT")
            .env_remove("GROWTH_SET");
        for (k, v) in env {
            command.env(k, v);
        }
        command.output().unwrap()
    };
    let result = run(&[], &[]);
    assert!(result.status.success(), "{}", stderr(&result));
    let written: serde_json::Value = serde_json::from_slice(
        &std::fs::read(from_file.join(format!("_manifests/run_date={RUN_DATE}/manifest.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(written["config"]["preferred_roi"], 4.25);
    assert_eq!(written["config"]["run"]["memory_limit"], "1GiB");

    // The environment beats the file, the flag beats the environment.
    let env_output = ws.dir.path().join("from-env");
    let result = run(
        &[],
        &[
            ("GROWTH_OUTPUT", env_output.to_str().unwrap()),
            ("GROWTH_SET", "preferred_roi=4.75"),
        ],
    );
    assert!(result.status.success(), "{}", stderr(&result));
    let written: serde_json::Value = serde_json::from_slice(
        &std::fs::read(env_output.join(format!("_manifests/run_date={RUN_DATE}/manifest.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(written["config"]["preferred_roi"], 4.75);
    let flag_output = ws.dir.path().join("from-flag");
    let result = run(
        &[
            "--output",
            flag_output.to_str().unwrap(),
            "--set",
            "preferred_roi=5.5",
        ],
        &[
            ("GROWTH_OUTPUT", env_output.to_str().unwrap()),
            ("GROWTH_SET", "preferred_roi=4.75"),
        ],
    );
    assert!(result.status.success(), "{}", stderr(&result));
    assert!(flag_output.join("channel_performance").exists());

    // A misspelt key is a config error naming it; a cap below the floor too.
    let bad = run(&["--set", "churn.horizon=60"], &[]);
    assert_eq!(bad.status.code(), Some(exit_code::BAD_MODEL));
    assert!(stderr(&bad).contains("horizon"), "{}", stderr(&bad));
    let tiny = run(&["--memory-limit", "1MiB"], &[]);
    assert_eq!(tiny.status.code(), Some(exit_code::BAD_MODEL));
    assert!(stderr(&tiny).contains("smallest cap"), "{}", stderr(&tiny));
}

/// The whole night under a 1 GiB cap (small batches, a fair pool, spilling) publishes
/// the same rows, in the same order, as without one. The files may differ in bytes: the
/// writer cuts pages where batches end, and a capped run batches differently.
#[tokio::test]
async fn a_night_under_a_memory_cap_publishes_the_same_tables() {
    let free = workspace();
    let capped = Workspace::new();
    copy_dir(&free.input(), &{
        std::fs::create_dir_all(capped.input()).unwrap();
        capped.input()
    });
    let result = nightly(&free, &["--date", RUN_DATE]);
    assert!(result.status.success(), "{}", stderr(&result));
    // The fair pool gives each of stg_kpi_daily_counts' ~160 spillable operators an equal share,
    // and its roll-up aggregation (days x regions, markets and channels, whatever the customers)
    // takes about 7 MB in one allocation: 1 GiB left it a share of 6.3 MB on a busy machine.
    let result = nightly(&capped, &["--date", RUN_DATE, "--memory-limit", "1536MiB"]);
    assert!(result.status.success(), "{}", stderr(&result));
    let files = |ws: &Workspace| -> Vec<PathBuf> {
        ws.snapshot()
            .into_iter()
            .filter(|(p, _)| p.extension().is_some_and(|e| e == "parquet"))
            .map(|(p, _)| p.strip_prefix(ws.output()).unwrap().to_path_buf())
            .collect()
    };
    let tables = files(&free);
    assert!(tables.len() >= 20, "{} tables", tables.len());
    assert_eq!(tables, files(&capped));
    for table in &tables {
        let rows = |ws: &Workspace| read_rows(ws.output().join(table));
        assert!(
            rows(&free).await == rows(&capped).await,
            "{} differs under the cap",
            table.display()
        );
    }
}

/// With `quality.max_input_age`, an input whose newest order is older than allowed stops the
/// night with exit 9 before anything is written: for a date past the input's end, for the
/// default date (judged against the clock), and for a backfill whose `--to` defaults to
/// yesterday. A date the input reaches runs.
#[test]
fn a_stale_input_gets_its_own_exit_code_and_writes_nothing() {
    let ws = workspace();
    let fresh = ["--set", "quality.max_input_age=36h"];
    let stale = |args: &[&str]| {
        let result = nightly(&ws, &[&fresh[..], args].concat());
        assert_eq!(
            result.status.code(),
            Some(exit_code::STALE_INPUT),
            "{args:?}: {}",
            stderr(&result)
        );
        let error = stderr(&result);
        let error = error
            .lines()
            .rfind(|l| l.starts_with("error: "))
            .unwrap()
            .to_string();
        assert!(
            error.contains("stale") && error.contains("max_input_age (36h)") && error.contains("2026-06-30"),
            "{error}"
        );
        assert!(!ws.output().exists(), "{args:?} wrote into the output");
        error
    };
    assert!(stale(&["--date", "2026-07-03", "--select", "daily_sales"]).contains("the end of 2026-07-03"));
    // The sample's last order is months before the clock, whatever date the test runs on.
    assert!(stale(&["--select", "daily_sales"]).contains("before now"));
    stale(&["--from", RUN_DATE, "--select", "daily_sales"]);

    let reached = nightly(
        &ws,
        &[&fresh[..], &["--date", RUN_DATE, "--select", "daily_sales"]].concat(),
    );
    assert!(reached.status.success(), "{}", stderr(&reached));
}

/// With no input configured, `nightly` stops with exit 2 and says how to give one, instead of
/// publishing the sample's figures; the sample runs only when asked for.
#[test]
fn a_missing_input_setting_exits_2_and_the_sample_runs_only_when_asked() {
    let ws = Workspace::new();
    let result = Command::new(env!("CARGO_BIN_EXE_nightly"))
        .current_dir(ws.dir.path())
        .arg("--output")
        .arg(ws.output())
        .arg("--models")
        .arg(repo_models())
        .env("RUST_LOG", "warn")
        .env_remove("GROWTH_INPUT")
        .env_remove("GROWTH_CONFIG")
        .env_remove("GROWTH_SET")
        .output()
        .unwrap();
    assert_eq!(
        result.status.code(),
        Some(exit_code::USAGE),
        "{}",
        stderr(&result)
    );
    let error = stderr(&result);
    assert!(
        error.contains("no input") && error.contains("--sample"),
        "{error}"
    );
    assert!(!ws.output().exists(), "nothing was written");
    assert!(
        !ws.dir.path().join("data").exists(),
        "the sample was not generated"
    );
    let both = nightly(&ws, &["--sample"]);
    assert_eq!(
        both.status.code(),
        Some(exit_code::USAGE),
        "--sample and --input conflict"
    );
}

/// The rows of `sql` over the workspace's generated orders (registered as `orders`).
async fn orders(ws: &Workspace, sql: &str) -> Vec<datafusion::arrow::array::RecordBatch> {
    let ctx = datafusion::prelude::SessionContext::new();
    let folder = ws.input().join("orders");
    ctx.register_parquet("orders", folder.to_str().unwrap(), Default::default())
        .await
        .unwrap();
    ctx.sql(sql).await.unwrap().collect().await.unwrap()
}

/// Writes `batches` as one Parquet file.
fn write_batches(path: &std::path::Path, batches: &[datafusion::arrow::array::RecordBatch]) {
    let file = std::fs::File::create(path).unwrap();
    let mut writer =
        datafusion::parquet::arrow::ArrowWriter::try_new(file, batches[0].schema(), None).unwrap();
    for batch in batches {
        writer.write(batch).unwrap();
    }
    writer.close().unwrap();
}

/// A week's backfill with `--resume`, run again after the input gained the next day's file
/// (as a daily export does), reruns only the new date: the fingerprint of each earlier date
/// covers only the files it can see.
#[tokio::test]
async fn a_backfill_whose_input_gains_a_file_a_day_reruns_only_the_new_date() {
    let ws = workspace();
    let last_day = "2026-06-30";
    let select =
        |day: &str| format!("select * from orders where order_ts {day} timestamp '{last_day}T00:00:00Z'");
    let (before, after) = (orders(&ws, &select("<")).await, orders(&ws, &select(">=")).await);
    assert!(
        after.iter().map(|b| b.num_rows()).sum::<usize>() > 0,
        "the sample has orders on {last_day}"
    );
    std::fs::remove_dir_all(ws.input().join("orders")).unwrap();
    std::fs::create_dir_all(ws.input().join("orders")).unwrap();
    write_batches(&ws.input().join("orders/until-2026-06-29.parquet"), &before);

    let week = |to: &str| {
        let args = [
            "--from",
            "2026-06-24",
            "--to",
            to,
            "--resume",
            "--select",
            "daily_sales",
        ];
        let result = nightly(&ws, &args);
        assert!(result.status.success(), "{}", stderr(&result));
    };
    week("2026-06-29");
    let days = [
        "2026-06-24",
        "2026-06-25",
        "2026-06-26",
        "2026-06-27",
        "2026-06-28",
        "2026-06-29",
    ];
    let runs: Vec<serde_json::Value> = days.iter().map(|d| manifest(&ws, d)["run_id"].clone()).collect();

    write_batches(&ws.input().join("orders/2026-06-30.parquet"), &after);
    let started = std::time::Instant::now();
    week(last_day);
    eprintln!(
        "a week with one new date took {:.1} s (debug build)",
        started.elapsed().as_secs_f64()
    );
    for (day, run) in days.iter().zip(&runs) {
        assert_eq!(&manifest(&ws, day)["run_id"], run, "{day} ran again");
    }
    assert_eq!(manifest(&ws, last_day)["status"], "succeeded");
    assert!(ws.published("daily_sales", last_day).exists());
}

/// With `--keep-going` a backfill runs every date though some fail, then exits with the first
/// failure's code, naming each failed date; without it, it stops at the first.
#[tokio::test]
async fn keep_going_runs_every_date_and_lists_the_failed_ones() {
    let ws = workspace();
    let first = orders(&ws, "select cast(min(order_ts) as date) as day from orders").await;
    let first = datafusion::arrow::util::display::array_value_to_string(first[0].column(0), 0).unwrap();
    let first = date(&first);
    let (from, to) = (first - chrono::Days::new(2), first.to_string());
    let backfill = [
        "--from",
        &from.to_string(),
        "--to",
        &to,
        "--select",
        "daily_sales",
    ];

    let stopped = nightly(&ws, &backfill);
    assert_eq!(
        stopped.status.code(),
        Some(exit_code::BAD_INPUT),
        "{}",
        stderr(&stopped)
    );
    assert!(
        !ws.output().join(format!("_manifests/run_date={to}")).exists(),
        "a later date ran"
    );

    let kept = nightly(&ws, &[&backfill[..], &["--keep-going"]].concat());
    assert_eq!(
        kept.status.code(),
        Some(exit_code::BAD_INPUT),
        "{}",
        stderr(&kept)
    );
    let error = stderr(&kept);
    let error = error
        .lines()
        .rfind(|l| l.starts_with("error: "))
        .unwrap()
        .to_string();
    assert!(error.contains("2 of the 3 dates failed"), "{error}");
    for failed in [from, first - chrono::Days::new(1)] {
        assert!(error.contains(&format!("{failed} (exit 3")), "{error}");
    }
    assert_eq!(manifest(&ws, &to)["status"], "succeeded");
}
