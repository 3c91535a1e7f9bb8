//! CDNOW's master file, the best-known public purchase history (23,570 customers who first
//! bought at CDNOW in the first quarter of 1997, 69,659 purchases to June 1998; the data of
//! Fader, Hardie and Lee's BG/NBD paper, shipped in PyPI's `lifetimes` package), as a test and
//! benchmark input: its conversion to the input contract, and the month-end benchmark
//! (`bench --cdnow`): the whole night at every month-end with its stages' times, the churn
//! model scored against what each customer did next, and the forecast backtest's coverage.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use chrono::NaiveDate;
use datafusion::arrow::array::{
    ArrayRef, AsArray, Float64Array, Int32Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::Float64Type;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::prelude::{ParquetReadOptions, SessionContext};

use crate::benchmark::{measure, sibling};
use crate::error::{Error, Result};
use crate::learn::evaluation;

/// The first and last month-end a night is run for: from the end of the quarter in which every
/// CDNOW customer made their first purchase to the end of the history.
pub(crate) const FIRST_MONTH_END: (i32, u32) = (1997, 3);
pub(crate) const LAST_MONTH_END: (i32, u32) = (1998, 6);

/// Every month-end from [`FIRST_MONTH_END`] to [`LAST_MONTH_END`].
pub fn month_ends() -> Vec<NaiveDate> {
    let (mut year, mut month) = FIRST_MONTH_END;
    let mut ends = Vec::new();
    while (year, month) <= LAST_MONTH_END {
        let next = if month == 12 {
            (year + 1, 1)
        } else {
            (year, month + 1)
        };
        let first_of_next = NaiveDate::from_ymd_opt(next.0, next.1, 1).expect("a valid month");
        ends.push(first_of_next.pred_opt().expect("a day before"));
        (year, month) = next;
    }
    ends
}

/// One purchase line of the master file.
struct Purchase {
    customer: String,
    day: NaiveDate,
    cds: i32,
    dollars: f64,
}

/// Reads the master file: a header, then `customer_id date(YYYYMMDD) number_of_cds
/// dollar_value` per line, separated by spaces.
fn read_master(master: &Path) -> Result<Vec<Purchase>> {
    let text = std::fs::read_to_string(master).map_err(Error::io(format!("reading {}", master.display())))?;
    let bad = |line: usize, what: &str| Error::BadFile {
        table: "orders".into(),
        file: master.display().to_string(),
        reason: format!(
            "line {}: {what}; expected `customer_id YYYYMMDD cds dollars`",
            line + 1
        ),
    };
    let mut purchases = Vec::new();
    for (line, row) in text.lines().enumerate().skip(1) {
        let fields: Vec<&str> = row.split_whitespace().collect();
        let [customer, day, cds, dollars] = fields[..] else {
            return Err(bad(line, "not four fields"));
        };
        purchases.push(Purchase {
            customer: format!("c{customer}"),
            day: NaiveDate::parse_from_str(day, "%Y%m%d").map_err(|_| bad(line, "not a date"))?,
            cds: cds.parse().map_err(|_| bad(line, "not a count of CDs"))?,
            dollars: dollars.parse().map_err(|_| bad(line, "not an amount"))?,
        });
    }
    Ok(purchases)
}

/// Writes the master file as the `orders` table under `input` (`orders/cdnow.parquet`): one
/// completed order per line, placed at midnight UTC of its day, `c<id>` as the customer, the
/// CDs as items. Returns the orders written.
pub fn write_orders(master: &Path, input: &Path) -> Result<usize> {
    let purchases = read_master(master)?;
    let column = |values: Vec<String>| Arc::new(StringArray::from(values)) as ArrayRef;
    let micros = |day: NaiveDate| {
        day.and_hms_opt(0, 0, 0)
            .expect("midnight exists")
            .and_utc()
            .timestamp_micros()
    };
    let batch = RecordBatch::try_from_iter([
        (
            "order_id",
            column((0..purchases.len()).map(|i| format!("o{i}")).collect()),
        ),
        (
            "customer_id",
            column(purchases.iter().map(|p| p.customer.clone()).collect()),
        ),
        (
            "order_ts",
            Arc::new(
                TimestampMicrosecondArray::from_iter_values(purchases.iter().map(|p| micros(p.day)))
                    .with_timezone("UTC"),
            ) as ArrayRef,
        ),
        (
            "amount_usd",
            Arc::new(Float64Array::from_iter_values(
                purchases.iter().map(|p| p.dollars),
            )),
        ),
        (
            "items",
            Arc::new(Int32Array::from_iter_values(purchases.iter().map(|p| p.cds))),
        ),
    ])
    .map_err(Error::arrow("building the CDNOW orders"))?;
    let folder = input.join("orders");
    std::fs::create_dir_all(&folder).map_err(Error::io(format!("creating {}", folder.display())))?;
    let path = folder.join("cdnow.parquet");
    let file = std::fs::File::create(&path).map_err(Error::io(format!("creating {}", path.display())))?;
    let context = format!("writing {}", path.display());
    let mut writer =
        ArrowWriter::try_new(file, batch.schema(), None).map_err(Error::parquet(context.clone()))?;
    writer.write(&batch).map_err(Error::parquet(context.clone()))?;
    writer.close().map_err(Error::parquet(context))?;
    Ok(purchases.len())
}

/// What `bench --cdnow` runs.
#[derive(Clone, Debug)]
pub struct CdnowOptions {
    /// `CDNOW_master.txt`.
    pub master: PathBuf,
    /// Where the input and the outputs go.
    pub work_dir: PathBuf,
    pub models_dir: PathBuf,
    /// `--set` overrides for every night.
    pub sets: Vec<String>,
    /// The run date whose churn scores are held against the 90 days after it.
    pub churn_date: NaiveDate,
}

/// The stages of a night as the manifest times them, in the table's order.
const STAGES: [&str; 6] = ["validate", "models", "segment", "churn", "clv", "report"];

/// Runs the night at every month-end, printing a Markdown row per night as it ends, then the
/// churn model's out-of-time ROC AUC and the forecast backtest's coverage.
pub async fn run(options: &CdnowOptions) -> Result<()> {
    let input = options.work_dir.join("input");
    let output = options.work_dir.join("output");
    let _ = std::fs::remove_dir_all(&output);
    let orders = write_orders(&options.master, &input)?;
    println!(
        "CDNOW master: {orders} orders from {}\n",
        options.master.display()
    );
    println!(
        "| run date | night s | {} s | peak RSS MiB | clv scopes falling back |",
        STAGES.join(" s | ")
    );
    println!("|---|---|{}---|---|", "---|".repeat(STAGES.len()));
    for date in month_ends() {
        let mut command = Command::new(sibling("nightly")?);
        command
            .arg("--input")
            .arg(&input)
            .arg("--output")
            .arg(&output)
            .arg("--models")
            .arg(&options.models_dir)
            .args(["--date", &date.to_string()])
            .env("RUST_LOG", "warn")
            .env_remove("GROWTH_SET")
            .stdout(std::process::Stdio::null());
        for set in &options.sets {
            command.args(["--set", set]);
        }
        let measurement = measure(&mut command)?;
        let seconds = stage_seconds(&output, date)?;
        let fallbacks = clv_fallbacks(&output, date).await?;
        println!(
            "| {date} | {:.1} | {} | {:.0} | {} |",
            measurement.seconds,
            STAGES
                .iter()
                .map(|s| seconds.get(*s).map_or("-".into(), |v| format!("{v:.1}")))
                .collect::<Vec<_>>()
                .join(" | "),
            measurement.peak_rss_bytes as f64 / (1024.0 * 1024.0),
            fallbacks,
        );
    }
    let auc = churn_roc_auc(&options.master, &output, options.churn_date).await?;
    println!(
        "\nchurn at {}: ROC AUC {:.4} against who bought in the 90 days after ({} customers scored, churn rate {:.3})",
        options.churn_date, auc.0, auc.1, auc.2
    );
    coverage(&output).await
}

/// Seconds per stage of a night, from its manifest.
fn stage_seconds(output: &Path, date: NaiveDate) -> Result<HashMap<String, f64>> {
    let path = output.join(crate::output::published::manifest_parts(date).join("/"));
    let text = std::fs::read_to_string(&path).map_err(Error::io(format!("reading {}", path.display())))?;
    let manifest: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Error::Internal(format!("parsing {}: {e}", path.display())))?;
    Ok(["stages", "jobs"]
        .iter()
        .flat_map(|key| manifest[key].as_array().into_iter().flatten())
        .filter_map(|s| Some((s["stage"].as_str()?.to_string(), s["seconds"].as_f64()?)))
        .collect())
}

/// Rows of a query over one published Parquet file (registered as `t`).
async fn query(file: &Path, sql: &str) -> Result<Vec<RecordBatch>> {
    let ctx = SessionContext::new();
    let context = format!("reading {}", file.display());
    ctx.register_parquet(
        "t",
        file.to_string_lossy().as_ref(),
        ParquetReadOptions::default(),
    )
    .await
    .map_err(Error::engine(context.clone()))?;
    ctx.sql(sql)
        .await
        .map_err(Error::engine(context.clone()))?
        .collect()
        .await
        .map_err(Error::engine(context))
}

/// The clv scopes whose Gamma-Gamma fit fell back to the observed mean, comma-separated.
async fn clv_fallbacks(output: &Path, date: NaiveDate) -> Result<String> {
    let file = output.join(format!(
        "{}/{}/{}",
        crate::learn::model_metrics::TABLE,
        crate::output::published::partition(date),
        crate::learn::model_metrics::part_file(crate::learn::clv::JOB)
    ));
    let batches = query(
        &file,
        "select arrow_cast(parameter, 'Utf8') from t \
         where model = 'gamma_gamma' and metric = 'fallback' and value = 1 order by 1",
    )
    .await?;
    let scopes: Vec<String> = batches
        .iter()
        .flat_map(|b| {
            b.column(0)
                .as_string::<i32>()
                .iter()
                .flatten()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    Ok(if scopes.is_empty() {
        "none".into()
    } else {
        scopes.join(", ")
    })
}

/// The churn scores of `date` against what happened: churned = no purchase in the 90 days
/// after it. ROC AUC, customers scored, churn rate.
pub async fn churn_roc_auc(master: &Path, output: &Path, date: NaiveDate) -> Result<(f64, usize, f64)> {
    let horizon_end = date + chrono::Days::new(90);
    let bought_after: std::collections::HashSet<String> = read_master(master)?
        .into_iter()
        .filter(|p| p.day > date && p.day <= horizon_end)
        .map(|p| p.customer)
        .collect();
    let file = output.join(format!(
        "churn_scores/{}/{}",
        crate::output::published::partition(date),
        crate::output::published::PART_FILE
    ));
    let batches = query(
        &file,
        "select arrow_cast(customer_id, 'Utf8'), churn_probability from t order by 1",
    )
    .await?;
    let (mut probability, mut churned) = (Vec::new(), Vec::new());
    for batch in &batches {
        let ids = batch.column(0).as_string::<i32>();
        let p = batch.column(1).as_primitive::<Float64Type>();
        for row in 0..batch.num_rows() {
            probability.push(p.value(row));
            churned.push(!bought_after.contains(ids.value(row)));
        }
    }
    Ok((
        evaluation::roc_auc(&probability, &churned),
        churned.len(),
        evaluation::base_rate(&churned),
    ))
}

/// The backtest's coverage of its 80% intervals at `(all)`: per run date that has a backtest,
/// the share of its months whose interval held what happened, per measure in
/// [`crate::learn::forecast::MEASURES`] order.
pub async fn backtest_coverage(output: &Path) -> Result<Vec<(NaiveDate, [f64; 4])>> {
    let mut rows = Vec::new();
    for date in month_ends() {
        let file = output.join(format!(
            "{}/{}/{}",
            crate::learn::model_metrics::TABLE,
            crate::output::published::partition(date),
            crate::learn::model_metrics::part_file(crate::learn::clv::JOB)
        ));
        let batches = query(
            &file,
            "select arrow_cast(metric, 'Utf8'), value from t \
             where evaluated_on = 'backtest' and parameter = '(all)' and metric like 'coverage_%'",
        )
        .await?;
        let found: HashMap<String, f64> = batches
            .iter()
            .flat_map(|b| {
                let (names, values) = (
                    b.column(0).as_string::<i32>(),
                    b.column(1).as_primitive::<Float64Type>(),
                );
                (0..b.num_rows())
                    .map(|r| (names.value(r).to_string(), values.value(r)))
                    .collect::<Vec<_>>()
            })
            .collect();
        if found.is_empty() {
            continue;
        }
        let measures = crate::learn::forecast::MEASURES
            .map(|m| found.get(&format!("coverage_{m}")).copied().unwrap_or(f64::NAN));
        rows.push((date, measures));
    }
    Ok(rows)
}

/// The mean of each measure's coverage over the run dates.
pub fn mean_coverage(rows: &[(NaiveDate, [f64; 4])]) -> [f64; 4] {
    let mut means = [0.0; 4];
    for (_, coverage) in rows {
        for (mean, value) in means.iter_mut().zip(coverage) {
            *mean += value / rows.len() as f64;
        }
    }
    means
}

/// Prints [`backtest_coverage`] per run date and its mean per measure.
async fn coverage(output: &Path) -> Result<()> {
    println!("\nForecast backtest at (all): share of months whose 80% interval held what happened\n");
    println!(
        "| run date | {} |\n|---|---|---|---|---|",
        crate::learn::forecast::MEASURES.join(" | ")
    );
    let rows = backtest_coverage(output).await?;
    let cells = |values: &[f64; 4]| values.map(|v| format!("{v:.2}")).join(" | ");
    for (date, coverage) in &rows {
        println!("| {date} | {} |", cells(coverage));
    }
    println!("| mean | {} |", cells(&mean_coverage(&rows)));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Datelike;

    #[test]
    fn the_month_ends_run_from_march_1997_to_june_1998() {
        let ends = month_ends();
        assert_eq!(ends.len(), 16);
        assert_eq!(ends[0].to_string(), "1997-03-31");
        assert_eq!(ends[11].to_string(), "1998-02-28");
        assert_eq!(ends[15].to_string(), "1998-06-30");
        assert!(ends.iter().all(|d| d.succ_opt().unwrap().day() == 1));
    }
}
