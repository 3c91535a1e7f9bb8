//! Real history is not bad input: a purchase history from 1997-98 with orders only (the shape
//! of the public CDNOW data set) runs through the whole night on the default settings, and a
//! lower bound that would reject it says which one flag admits it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use chrono::NaiveDate;
use growth_jobs::error::exit_code;
use growth_jobs::sample::{self, SampleOptions};

use crate::support::*;

const RUN_DATE: &str = "1998-06-30";

/// Generated orders from 1997-01-01 to 1998-06-30, the other tables dropped, made once.
fn old_orders() -> &'static Path {
    static INPUT: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, input) = INPUT.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let mut options = SampleOptions::embedded(dir.path().join("generated"));
        options.customers = 2_000;
        options.seed = 1997;
        options.start = NaiveDate::from_ymd_opt(1997, 1, 1).unwrap();
        options.days = 546;
        sample::generate(&options).unwrap();
        let input = dir.path().join("in");
        std::fs::create_dir_all(&input).unwrap();
        std::fs::rename(dir.path().join("generated/orders"), input.join("orders")).unwrap();
        (dir, input)
    });
    input
}

fn nightly(output: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nightly"))
        .arg("--input")
        .arg(old_orders())
        .arg("--output")
        .arg(output)
        .arg("--models")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("sql"))
        .args(["--date", RUN_DATE])
        .args(args)
        .env("RUST_LOG", "warn")
        .env_remove("GROWTH_SET")
        .output()
        .unwrap()
}

fn partition(output: &Path, table: &str) -> PathBuf {
    output.join(table).join(format!("run_date={RUN_DATE}"))
}

#[tokio::test]
async fn a_purchase_history_from_1997_runs_the_whole_night_on_the_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("out");
    let result = nightly(&output, &[]);
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );

    // Every order counts: nothing set aside, and the months go back to the first one.
    let rejects = query_sql(&partition(&output, "rejects"), "select count(*) as n from t").await;
    assert!(rejects.contains("| 0 "), "{rejects}");
    let months = query_sql(
        &partition(&output, "kpi_monthly"),
        "select cast(min(month_start) as varchar) as first, count(distinct month_start) as months \
         from t where market = '(all)'",
    )
    .await;
    assert!(months.contains("1997-01-01"), "{months}");
    assert!(months.contains("| 18 "), "{months}");

    // The learned stages ran on it too.
    let scores = query_sql(
        &partition(&output, "churn_scores"),
        "select count(*) > 100 as scored from t",
    )
    .await;
    assert!(scores.contains("true"), "{scores}");
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(partition(&output, "_manifests").join("manifest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["status"], "succeeded", "{manifest}");
}

#[test]
fn a_lower_bound_that_rejects_the_history_names_the_one_flag_that_admits_it() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("out");
    let result = nightly(
        &output,
        &["--set", "quality.earliest=2000-01-01", "--select", "kpi_monthly"],
    );
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert_eq!(result.status.code(), Some(exit_code::BAD_INPUT), "{stderr}");
    let error = stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .expect("an error line");
    for needle in [
        "orders",
        "out_of_range_time on order_ts",
        "orders.order_ts runs from 1997-01-0",
        "to 1998-06-",
        "quality.earliest",
    ] {
        assert!(error.contains(needle), "{needle:?} missing from: {error}");
    }
    assert!(!partition(&output, "kpi_monthly").exists());

    // The flag the message names is the whole remedy.
    let flag = error
        .split_whitespace()
        .skip_while(|w| *w != "--set")
        .nth(1)
        .expect("a --set flag in the message");
    assert!(flag.starts_with("quality.earliest=1997-01-0"), "{error}");
    let result = nightly(&output, &["--set", flag, "--select", "kpi_monthly"]);
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
}
