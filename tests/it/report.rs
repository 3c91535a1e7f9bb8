//! The morning report in a real browser: Debian's headless Chromium, driven through its
//! chromedriver by `tests/report_in_browser.py`, opens the page a night published; it must load
//! with no console error and no network request, draw every chart, and show the KPI figures the
//! scorecard mart holds.

use std::path::Path;
use std::process::Command;

use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::Float64Type;
use serde_json::Value;

use crate::support::{self, Workspace};

const RUN_DATE: &str = "2026-06-30";

#[tokio::test]
async fn the_report_loads_offline_draws_every_chart_and_shows_the_marts_figures() {
    let ws = Workspace::new();
    // The embedded sample (10,000 customers, seed 42), generated: a clean clone has none.
    support::generate_into(&ws.input(), 10_000, 42);
    // A month earlier, the scorecard and RFM: what the alerts and the migration compare with.
    let earlier = ws
        .command(env!("CARGO_BIN_EXE_transform"))
        .args(["--select", "kpi_monthly,rfm_segments", "--date", "2026-05-31"])
        .output()
        .unwrap();
    assert!(
        earlier.status.success(),
        "{}",
        String::from_utf8_lossy(&earlier.stderr)
    );
    let night = ws
        .command(env!("CARGO_BIN_EXE_nightly"))
        .args(["--date", RUN_DATE])
        .output()
        .unwrap();
    assert!(
        night.status.success(),
        "{}",
        String::from_utf8_lossy(&night.stderr)
    );
    let report = ws
        .output()
        .join(format!("_reports/run_date={RUN_DATE}/report.html"));
    let html = std::fs::read(&report).unwrap();
    assert!(html.len() < 2_000_000, "{} bytes", html.len());
    let manifest = std::fs::read_to_string(
        ws.output()
            .join(format!("_manifests/run_date={RUN_DATE}/manifest.json")),
    )
    .unwrap();
    assert!(
        manifest.contains(&format!("_reports/run_date={RUN_DATE}/report.html")),
        "{manifest}"
    );

    let screenshot = ws.output().parent().unwrap().join("report.png");
    let seen = Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/report_in_browser.py"))
        .arg(&report)
        .arg(&screenshot)
        .output()
        .unwrap();
    assert!(seen.status.success(), "{}", String::from_utf8_lossy(&seen.stderr));
    let seen: Value = serde_json::from_slice(&seen.stdout).unwrap();
    assert_eq!(seen["title"], format!("Growth report, {RUN_DATE}"));
    assert_eq!(seen["console"], Value::Array(vec![]), "console messages");
    assert_eq!(seen["requests"], Value::Array(vec![]), "network requests");
    let charts = seen["charts"].as_array().unwrap();
    for expected in [
        "trend-cac_usd",
        "cohort-heatmap",
        "ltv-curves",
        "rfm-sizes",
        "rfm-grid",
        "cluster-revenue",
        "churn-roc",
        "churn-lift",
        "churn-calibration",
        "channel-roi",
        "referral-funnel",
        "forecast-revenue_usd",
    ] {
        assert!(charts.iter().any(|c| c["id"] == expected), "no chart {expected}");
    }
    for chart in charts {
        assert!(chart["marks"].as_u64().unwrap() > 0, "nothing drawn in {chart}");
    }
    let sections: Vec<&str> = seen["sections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    let text = sections.join("\n");
    assert!(!text.contains("Not in this run"), "{text}");
    assert!(
        text.contains("largest moves between segments since the run of 2026-05-31"),
        "{text}"
    );
    assert!(
        text.contains("no KPI turned red since the run of 2026-05-31")
            || text.contains("red now and not in the run of 2026-05-31"),
        "{text}"
    );
    // The plan's five regions, each with its own column of the scorecard.
    let regions = sections.iter().find(|s| s.starts_with("regions:")).unwrap();
    for region in [
        "South-East Asia",
        "Latin America",
        "North America",
        "Europe",
        "Japan/Korea",
    ] {
        assert!(regions.contains(region), "{regions}");
    }
    assert!(regions.contains("repurchase_rate"), "{regions}");
    assert!(std::fs::metadata(&screenshot).unwrap().len() > 10_000);

    // The figures shown are the scorecard's, at its latest complete month.
    let kpis = [
        "cac_usd",
        "ltv_to_cac",
        "monthly_churn_rate",
        "retention_6m",
        "repurchase_rate",
    ];
    let ctx = datafusion::prelude::SessionContext::new();
    ctx.register_parquet(
        "kpi",
        ws.published("kpi_monthly", RUN_DATE).to_str().unwrap(),
        Default::default(),
    )
    .await
    .unwrap();
    let sql = format!(
        "select {} from kpi where region = '(all)' and market = '(all)' and channel = '(all)' and period_complete \
         order by month_start desc limit 1",
        kpis.map(|k| format!("cast({k} as double)")).join(", ")
    );
    let batch = &ctx.sql(&sql).await.unwrap().collect().await.unwrap()[0];
    for (i, kpi) in kpis.iter().enumerate() {
        let mart = batch.column(i).as_primitive::<Float64Type>().value(0);
        let shown = &seen["kpis"][kpi];
        let value: f64 = shown["value"].as_str().unwrap().parse().unwrap();
        assert_eq!(value, mart, "{kpi}: {shown}");
        let text = shown["text"].as_str().unwrap();
        let digits: String = text.chars().filter(|c| c.is_ascii_digit() || *c == '.').collect();
        let shown_number: f64 = digits.parse().unwrap();
        // Shown rounded: percentages to one decimal, money and ratios to two.
        let (scale, rounding) = if text.ends_with('%') {
            (100.0, 0.05)
        } else {
            (1.0, 0.005)
        };
        assert!(
            (shown_number - mart * scale).abs() <= rounding + 1e-9,
            "{kpi}: {text} against {mart}"
        );
    }

    // The report binary rebuilds the same page from the same tables.
    let again = Command::new(env!("CARGO_BIN_EXE_report"))
        .arg("--output")
        .arg(ws.output())
        .args(["--date", RUN_DATE])
        .env("RUST_LOG", "warn")
        .env_remove("GROWTH_SET")
        .output()
        .unwrap();
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(std::fs::read(&report).unwrap(), html);
}
