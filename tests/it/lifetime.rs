//! The lifetime-value stage on real data: the CDNOW sample of Fader, Hardie and Lee's BG/NBD
//! paper (`data/cdnow/`), turned into an `orders` table of the input contract, must give the
//! paper's parameters through the real binaries; the holdout check must report what happened.

use std::path::Path;
use std::process::Output;

use datafusion::arrow::array::{ArrayRef, Float64Array, StringArray, TimestampMicrosecondArray};
use std::sync::Arc;

use crate::support::{self, Workspace};

/// Writes the CDNOW sample as `orders`: one completed order per line, placed at midnight UTC
/// of its day, identified by the sample's customer id.
fn cdnow_input(input: &Path) {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("data/cdnow/CDNOW_sample.txt"))
            .unwrap();
    let (mut orders, mut customers, mut times, mut amounts) = (vec![], vec![], vec![], vec![]);
    for (line, row) in text.lines().enumerate() {
        let fields: Vec<&str> = row.split_whitespace().collect();
        let day = chrono::NaiveDate::parse_from_str(fields[2], "%Y%m%d").unwrap();
        orders.push(format!("o{line}"));
        customers.push(format!("c{}", fields[1]));
        times.push(day.and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp_micros());
        amounts.push(fields[4].parse::<f64>().unwrap());
    }
    assert_eq!(orders.len(), 6919);
    let column = |values: Vec<String>| Arc::new(StringArray::from(values)) as ArrayRef;
    support::write_parquet(
        &input.join("orders/cdnow.parquet"),
        vec![
            ("order_id", column(orders)),
            ("customer_id", column(customers)),
            (
                "order_ts",
                Arc::new(TimestampMicrosecondArray::from(times).with_timezone("UTC")),
            ),
            ("amount_usd", Arc::new(Float64Array::from(amounts))),
        ],
    );
}

/// `transform --select clv_summary` then `clv`, for `date`, with `--set` overrides.
fn run_clv(ws: &Workspace, date: &str, sets: &[&str]) -> Output {
    run_clv_after(ws, "clv_summary", date, sets)
}

/// `transform --select <select>` then `clv`, for `date`, with `--set` overrides.
fn run_clv_after(ws: &Workspace, select: &str, date: &str, sets: &[&str]) -> Output {
    let mut transform = ws.command(env!("CARGO_BIN_EXE_transform"));
    transform.args(["--select", select, "--date", date]);
    for set in sets {
        transform.args(["--set", set]);
    }
    let done = transform.output().unwrap();
    assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
    let mut clv = std::process::Command::new(env!("CARGO_BIN_EXE_clv"));
    clv.arg("--output")
        .arg(ws.output())
        .args(["--date", date])
        .env("RUST_LOG", "warn")
        .env_remove("GROWTH_SET");
    for set in sets {
        clv.args(["--set", set]);
    }
    clv.output().unwrap()
}

/// The clv metrics of a run date, as `(model, evaluated_on, metric) -> value` for scope `all`.
pub(crate) async fn metrics(
    ws: &Workspace,
    date: &str,
) -> std::collections::HashMap<(String, String, String), f64> {
    let file = ws
        .output()
        .join(format!("model_metrics/run_date={date}/part-clv.parquet"));
    let ctx = datafusion::prelude::SessionContext::new();
    ctx.register_parquet("t", file.to_str().unwrap(), Default::default())
        .await
        .unwrap();
    let batches = ctx
        .sql("select arrow_cast(model, 'Utf8'), arrow_cast(evaluated_on, 'Utf8'), arrow_cast(metric, 'Utf8'), value \
             from t where parameter in ('all', '(all)')")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let mut out = std::collections::HashMap::new();
    for b in &batches {
        use datafusion::arrow::array::AsArray;
        let text = |i: usize| b.column(i).as_string::<i32>().clone();
        let (model, on, metric) = (text(0), text(1), text(2));
        let value = b
            .column(3)
            .as_primitive::<datafusion::arrow::datatypes::Float64Type>();
        for row in 0..b.num_rows() {
            out.insert(
                (
                    model.value(row).into(),
                    on.value(row).into(),
                    metric.value(row).into(),
                ),
                value.value(row),
            );
        }
    }
    out
}

/// `value` rounded to three significant digits equals `published` rounded the same way.
fn three_digits(name: &str, value: f64, published: f64) {
    let round = |v: f64| {
        let scale = 10f64.powi(2 - v.abs().log10().floor() as i32);
        (v * scale).round() / scale
    };
    assert_eq!(
        round(value),
        round(published),
        "{name}: fitted {value}, published {published}"
    );
}

#[tokio::test]
async fn bg_nbd_and_gamma_gamma_reproduce_the_cdnow_papers_parameters() {
    // Calibration: the 39 weeks to 1997-09-30, in weeks. Fader, Hardie and Lee (2005):
    // r = 0.243, alpha = 4.414, a = 0.793, b = 2.426; Gamma-Gamma (Fader, Hardie and Lee 2005b,
    // and lifetimes' CDNOW example): p = 6.25, q = 3.74, v = 15.44.
    let ws = Workspace::new();
    cdnow_input(&ws.input());
    let done = run_clv(&ws, "1997-09-30", &[]);
    assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
    let m = metrics(&ws, "1997-09-30").await;
    let fitted =
        |model: &str, metric: &str| m[&(model.to_string(), "fitting".to_string(), metric.to_string())];
    assert_eq!(fitted("bg_nbd", "customers"), 2357.0);
    for (metric, published) in [("r", 0.243), ("alpha", 4.414), ("a", 0.793), ("b", 2.426)] {
        three_digits(metric, fitted("bg_nbd", metric), published);
    }
    for (metric, published) in [("p", 6.25), ("q", 3.74), ("v", 15.44)] {
        three_digits(metric, fitted("gamma_gamma", metric), published);
    }
    // lifetimes' CDNOW example: 946 customers with a repeat purchase day by 1997-09-30.
    assert_eq!(fitted("gamma_gamma", "repeat_customers"), 946.0);
    // Every buying customer scored, P(alive) a probability.
    let scores = ws.published("clv_scores", "1997-09-30");
    let summary = support::query_sql(
        &scores,
        "select count(*) as n, min(p_alive) >= 0 and max(p_alive) <= 1 as probability, \
         min(clv_12m_usd) >= 0 as non_negative from t",
    )
    .await;
    assert!(
        support::lines(&summary).contains(&"| 2357 | true        | true         |".to_string()),
        "{summary}"
    );
}

#[tokio::test]
async fn the_holdout_check_reports_the_papers_forecast_against_what_happened() {
    // Run on 1998-06-30 with a 273-day holdout: the check fits on the same 39 weeks as the
    // paper (to 1997-09-30) and forecasts the next 39 weeks.
    let ws = Workspace::new();
    cdnow_input(&ws.input());
    let done = run_clv(&ws, "1998-06-30", &["clv.holdout_days=273"]);
    assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
    let m = metrics(&ws, "1998-06-30").await;
    let holdout = |metric: &str| m[&("bg_nbd".to_string(), "holdout".to_string(), metric.to_string())];
    for (metric, published) in [("r", 0.243), ("alpha", 4.414), ("a", 0.793), ("b", 2.426)] {
        three_digits(metric, holdout(metric), published);
    }
    assert_eq!(holdout("customers"), 2357.0);
    assert_eq!(holdout("holdout_days"), 273.0);
    // What happened: the distinct (customer, day) pairs after 1997-09-30, counted from the file.
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("data/cdnow/CDNOW_sample.txt"))
            .unwrap();
    let after: std::collections::BTreeSet<(&str, &str)> = text
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[1], f[2])
        })
        .filter(|(_, day)| *day > "19970930")
        .collect();
    assert_eq!(holdout("actual_purchase_days"), after.len() as f64);
    // The forecast: equation 10 summed over the customers with scipy.special.hyp2f1 at the
    // fitted parameters gives 1,653.41, 12% under the 1,882 that happened.
    let predicted = holdout("predicted_purchase_days");
    assert!((predicted - 1653.4086).abs() < 0.01, "{predicted}");
    // Better per customer than carrying each customer's past rate forward.
    assert!(holdout("mean_absolute_error") < holdout("naive_mean_absolute_error"));
}

#[test]
fn too_few_repeat_customers_exit_3_and_publish_nothing() {
    let ws = Workspace::new();
    cdnow_input(&ws.input());
    let done = run_clv(&ws, "1997-09-30", &["clv.min_repeat_customers=5000"]);
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert_eq!(done.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("946 customers with a repeat purchase day"),
        "{stderr}"
    );
    assert!(stderr.contains("clv.min_repeat_customers"), "{stderr}");
    assert!(!ws.output().join("clv_scores").exists());
    assert!(!ws.output().join("model_metrics").exists());
}

#[tokio::test]
async fn spend_too_heavy_tailed_for_gamma_gamma_falls_back_and_the_night_goes_on() {
    // Four groups of 250 customers spending $15, $60, $200 and $600 a purchase: Gamma-Gamma's
    // best fit has q at most 1 (an infinite mean spend), which once stopped the stage (exit 3).
    let ws = Workspace::new();
    let bases = [15.0, 60.0, 200.0, 600.0];
    let mut rows: Vec<(String, String, String, f64)> = Vec::new();
    for customer in 0..1_000 {
        let base = bases[customer % 4];
        for purchase in 0..=(customer % 5) {
            let day = chrono::NaiveDate::from_ymd_opt(2024, 1, 1).unwrap()
                + chrono::Days::new((customer % 50 + purchase * 45) as u64);
            let wobble = 0.9 + 0.2 * ((customer * 7 + purchase * 3) % 10) as f64 / 10.0;
            rows.push((
                format!("o{customer}-{purchase}"),
                format!("c{customer}"),
                format!("{day}T10:00:00"),
                (base * wobble * 100.0).round() / 100.0,
            ));
        }
    }
    let rows: Vec<(&str, &str, &str, f64, &str)> = rows
        .iter()
        .map(|(o, c, t, a)| (o.as_str(), c.as_str(), t.as_str(), *a, "completed"))
        .collect();
    support::write_orders(&ws.input(), "o.parquet", &rows);
    let done = run_clv(&ws, "2024-12-31", &[]);
    assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
    let m = metrics(&ws, "2024-12-31").await;
    let spend = |metric: &str| {
        m.get(&(
            "gamma_gamma".to_string(),
            "fitting".to_string(),
            metric.to_string(),
        ))
    };
    assert_eq!(spend("fallback"), Some(&1.0), "{m:?}");
    assert_eq!(spend("q"), None);
    assert_eq!(spend("spend_prior_days"), Some(&1.0));
    // The scope's mean per repeat purchase day: sum of x m over sum of x, from the rows.
    let observed = *spend("observed_mean_spend_usd").unwrap();
    let (mut spent, mut days) = (0.0, 0.0);
    for customer in 0..1_000usize {
        let repeat: f64 = rows
            .iter()
            .filter(|r| r.1 == format!("c{customer}"))
            .skip(1)
            .map(|r| r.3)
            .sum();
        spent += repeat;
        days += (customer % 5) as f64;
    }
    assert!(
        (observed - spent / days).abs() < 1e-6,
        "{observed} against {}",
        spent / days
    );
    // The model card says why, and each group is valued near its own spend.
    let card: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            ws.output()
                .join("_models/clv/run_date=2024-12-31/model_card.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let reason = card["scopes"]["all"]["spend"]["reason"].as_str().unwrap();
    assert!(reason.contains("is at most 1"), "{reason}");
    let by_group = support::query_sql(
        &ws.published("clv_scores", "2024-12-31"),
        "select cast(substr(customer_id, 2) as int) % 4 as grp, \
         round(avg(expected_order_value_usd)) as spend from t \
         where repeat_days = 4 group by 1 order by 1",
    )
    .await;
    let spends: Vec<f64> = support::lines(&by_group)
        .iter()
        .filter_map(|l| l.split('|').nth(2)?.trim().parse().ok())
        .collect();
    assert_eq!(spends.len(), 4, "{by_group}");
    for (spend, base) in spends.iter().zip(bases) {
        // Four days at the group's spend against one at the scope's mean.
        assert!(
            (spend - (4.0 * base + observed) / 5.0).abs() < 0.1 * base + 1.0,
            "{by_group}"
        );
    }
}

#[tokio::test]
async fn days_instead_of_weeks_scale_alpha_only() {
    // The time unit is a scale: in days, alpha is seven times the weekly one and r, a, b, the
    // spend model and every published expectation stay the same.
    let (weeks, days) = (Workspace::new(), Workspace::new());
    cdnow_input(&weeks.input());
    cdnow_input(&days.input());
    assert!(run_clv(&weeks, "1997-09-30", &[]).status.success());
    let done = run_clv(&days, "1997-09-30", &["clv.time_unit=\"days\""]);
    assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
    let (w, d) = (
        metrics(&weeks, "1997-09-30").await,
        metrics(&days, "1997-09-30").await,
    );
    let fitted = |m: &std::collections::HashMap<(String, String, String), f64>, metric: &str| {
        m[&("bg_nbd".to_string(), "fitting".to_string(), metric.to_string())]
    };
    assert!((fitted(&d, "alpha") / fitted(&w, "alpha") - 7.0).abs() < 1e-4);
    for metric in ["r", "a", "b"] {
        assert!(
            (fitted(&d, metric) / fitted(&w, metric) - 1.0).abs() < 1e-4,
            "{metric}"
        );
    }
    let total = async |ws: &Workspace| {
        support::query_sql(
            &ws.published("clv_scores", "1997-09-30"),
            "select round(sum(expected_purchases_365d), 1) as e, round(sum(clv_12m_usd), 0) as clv from t",
        )
        .await
    };
    assert_eq!(total(&weeks).await, total(&days).await);
}

/// The growth forecast's rows of a kind as (market, month, [value, lower, upper, actual] per
/// measure), the actual NaN where there is none.
async fn forecast_rows(ws: &Workspace, date: &str, kind: &str) -> Vec<(String, String, Vec<[f64; 4]>)> {
    let file = ws.published("growth_forecast", date);
    let ctx = datafusion::prelude::SessionContext::new();
    ctx.register_parquet("t", file.to_str().unwrap(), Default::default())
        .await
        .unwrap();
    let mut columns = vec![
        "market".to_string(),
        "cast(month_start as varchar) as month".to_string(),
    ];
    for measure in ["new_customers", "active_customers", "orders", "revenue_usd"] {
        for suffix in ["", "_lower", "_upper", "_actual"] {
            columns.push(format!("coalesce({measure}{suffix}, 'NaN'::double)"));
        }
    }
    let sql = format!(
        "select {} from t where kind = '{kind}' order by market, month_start",
        columns.join(", ")
    );
    let batches = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
    let mut rows = Vec::new();
    for b in &batches {
        use datafusion::arrow::array::AsArray;
        use datafusion::arrow::datatypes::Float64Type;
        for row in 0..b.num_rows() {
            let text = |i: usize| {
                datafusion::arrow::compute::cast(b.column(i), &datafusion::arrow::datatypes::DataType::Utf8)
                    .unwrap()
                    .as_string::<i32>()
                    .value(row)
                    .to_string()
            };
            let number = |i: usize| b.column(i).as_primitive::<Float64Type>().value(row);
            let measures = (0..4)
                .map(|m| [0, 1, 2, 3].map(|j| number(2 + m * 4 + j)))
                .collect();
            rows.push((text(0), text(1), measures));
        }
    }
    rows
}

#[tokio::test]
async fn the_forecast_and_the_predicted_ltv_match_what_the_planted_sample_did() {
    // The embedded sample is planted: seasonal signups growing through two years, seasonal
    // Poisson buying until dropout. On 2026-06-30 the backtest forecasts January to June 2026
    // from 2025-12-31; what happened is in the data.
    let ws = Workspace::new();
    // The embedded sample (10,000 customers, seed 42), generated: a clean clone has none.
    support::generate_into(&ws.input(), 10_000, 42);
    let select = "clv_summary,kpi_monthly,cohort_retention";
    let done = run_clv_after(&ws, select, "2026-06-30", &[]);
    assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
    let backtest = forecast_rows(&ws, "2026-06-30", "backtest").await;
    let all: Vec<_> = backtest.iter().filter(|(market, ..)| market == "(all)").collect();
    let months: Vec<&str> = all.iter().map(|(_, month, _)| month.as_str()).collect();
    assert_eq!(
        months,
        [
            "2026-01-01",
            "2026-02-01",
            "2026-03-01",
            "2026-04-01",
            "2026-05-01",
            "2026-06-01"
        ]
    );
    let m = metrics(&ws, "2026-06-30").await;
    for (i, measure) in ["new_customers", "active_customers", "orders", "revenue_usd"]
        .iter()
        .enumerate()
    {
        // Every month of every-market total inside its 80% interval, and off by under 20%.
        for (_, month, values) in &all {
            let [value, lower, upper, actual] = values[i];
            assert!(
                actual > 0.0 && lower <= value && value <= upper,
                "{measure} {month}: {values:?}"
            );
            assert!(
                lower <= actual && actual <= upper,
                "{measure} {month}: {actual} outside {lower}..{upper}"
            );
        }
        let key = |metric: String| ("growth_forecast".to_string(), "backtest".to_string(), metric);
        let mape = m[&key(format!("mape_{measure}"))];
        assert!(mape < 0.2, "{measure}: MAPE {mape}");
        assert_eq!(m[&key(format!("coverage_{measure}"))], 1.0);
    }
    // Market by market (a few hundred customers each), the 80% intervals hold the truth about
    // as often as they should: not never, not always.
    let markets: Vec<_> = backtest.iter().filter(|(market, ..)| market != "(all)").collect();
    let covered = markets
        .iter()
        .flat_map(|(_, _, values)| values.iter())
        .filter(|[_, lower, upper, actual]| lower <= actual && actual <= upper)
        .count();
    let share = covered as f64 / (markets.len() * 4) as f64;
    assert!(
        (0.6..0.95).contains(&share),
        "market intervals held the truth {share:.2} of the time"
    );

    // The backtest is the forecast the night of 2025-12-31 made, value for value.
    let before = Workspace::new();
    support::copy_dir(&ws.input(), &before.input());
    let done = run_clv_after(&before, select, "2025-12-31", &[]);
    assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
    let forecast = forecast_rows(&before, "2025-12-31", "forecast").await;
    assert_eq!(
        forecast.len(),
        backtest.len() * 2,
        "12 months forecast, 6 backtested"
    );
    for (market, month, values) in &backtest {
        let (_, _, then) = forecast
            .iter()
            .find(|(m, mo, _)| m == market && mo == month)
            .unwrap_or_else(|| panic!("{market} {month} not forecast on 2025-12-31"));
        for i in 0..4 {
            let (now, then) = (values[i][0], then[i][0]);
            assert!(
                (now - then).abs() <= 1e-9 * then.abs().max(1.0),
                "{market} {month} {i}: {now} vs {then}"
            );
            assert!(then.is_finite());
        }
    }
    // The 12 months of a forecast add up over markets, and start the month after the run date.
    let sum_of_markets: f64 = forecast
        .iter()
        .filter(|(market, month, _)| market != "(all)" && month == "2026-12-01")
        .map(|(_, _, values)| values[3][0])
        .sum();
    let (_, _, total) = forecast
        .iter()
        .find(|(market, month, _)| market == "(all)" && month == "2026-12-01")
        .unwrap();
    assert!((total[3][0] - sum_of_markets).abs() < 1e-6 * sum_of_markets);
    assert_eq!(
        forecast.iter().find(|(m, ..)| m == "(all)").unwrap().1,
        "2026-01-01"
    );

    // The predicted LTV of the cohorts acquired in 2025, made on 2025-12-31, against what
    // they turned out to bring in their first year (kpi_monthly of 2026-06-30, 12 months on).
    let ctx = datafusion::prelude::SessionContext::new();
    for (name, file) in [
        ("then", before.published("predicted_ltv", "2025-12-31")),
        ("now", ws.published("predicted_ltv", "2026-06-30")),
        ("kpi", ws.published("kpi_monthly", "2026-06-30")),
    ] {
        ctx.register_parquet(name, file.to_str().unwrap(), Default::default())
            .await
            .unwrap();
    }
    let numbers = async |sql: &str| -> Vec<Vec<f64>> {
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        let mut rows = Vec::new();
        for b in &batches {
            use datafusion::arrow::array::AsArray;
            use datafusion::arrow::datatypes::{DataType, Float64Type};
            for row in 0..b.num_rows() {
                rows.push(
                    (0..b.num_columns())
                        .map(|c| {
                            let v =
                                datafusion::arrow::compute::cast(b.column(c), &DataType::Float64).unwrap();
                            v.as_primitive::<Float64Type>().value(row)
                        })
                        .collect(),
                );
            }
        }
        rows
    };
    let ltv = numbers(
        "select then.predicted_ltv_12m_usd, kpi.ltv_12m_usd from then join kpi \
         on kpi.month_start = then.month_start + interval '12 months' \
         and kpi.market = then.market and kpi.channel = then.channel \
         where then.market = '(all)' and then.channel = '(all)' and kpi.region = '(all)' order by then.month_start",
    )
    .await;
    assert_eq!(
        ltv.len(),
        6,
        "the cohorts of January to June 2025 have a full year by 2026-06-30"
    );
    // January 2025's year ended with the origin: nothing left to predict.
    assert!((ltv[0][0] - ltv[0][1]).abs() < 1e-6 * ltv[0][1], "{:?}", ltv[0]);
    for row in &ltv[1..] {
        assert!(
            (row[0] / row[1] - 1.0).abs() < 0.1,
            "predicted {} against {} observed",
            row[0],
            row[1]
        );
    }
    // Row for row with the scorecard (its rows over every region): the same new customers, the
    // last 12 acquisition months, gross margin at the default rate (0.3), the ratio of that
    // margin over the month's spend, and the status from the ltv_to_cac thresholds.
    let joined = numbers(
        "select count(*), sum(case when now.new_customers = kpi.new_customers then 1 else 0 end), \
         count(distinct now.month_start), min(now.predicted_first_year_revenue_usd - now.revenue_to_date_usd), \
         sum(case when abs(now.predicted_ltv_to_cac - now.predicted_ltv_12m_margin_usd * now.new_customers / now.marketing_spend_usd) < 1e-9 then 1 else 0 end), \
         count(now.predicted_ltv_to_cac), \
         sum(case when (now.predicted_ltv_to_cac >= 4) = (now.predicted_ltv_to_cac_status = 'green') then 1 else 0 end), \
         sum(case when abs(now.predicted_ltv_12m_margin_usd - 0.3 * now.predicted_ltv_12m_usd) < 1e-9 then 1 else 0 end) \
         from now join kpi using (month_start, market, channel) where kpi.region = '(all)' or kpi.market <> '(all)'",
    )
    .await;
    let [rows, same, months, least_ahead, ratio, ratios, statuses, margins] = joined[0][..] else {
        panic!("{joined:?}")
    };
    assert!(rows > 100.0 && same == rows && margins == rows, "{joined:?}");
    assert_eq!(months, 12.0);
    assert!(least_ahead >= 0.0);
    assert!(
        ratios > 0.0 && ratio == ratios && statuses == ratios,
        "{joined:?}"
    );
}
