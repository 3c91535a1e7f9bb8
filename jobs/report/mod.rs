//! The morning report: one self-contained HTML page per run date,
//! `<output>/_reports/run_date=D/report.html`, published atomically like the tables (through the
//! stage's draft). Every number on it is read from the tables published for that run date (and,
//! for what changed, from the previous run's `kpi_monthly` and last month's `rfm_segments`);
//! charts are inline SVG ([`charts`]), so the page fetches nothing when opened.

pub mod charts;
pub mod page;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Datelike, NaiveDate};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::compute::{cast, concat_batches};
use datafusion::arrow::datatypes::{DataType, Float64Type};
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use object_store::ObjectStoreExt;
use serde_json::json;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::learn::outputs::StageDraft;
use crate::output::manifest::{Manifest, StageReport};
use crate::output::publish::Draft;
use crate::output::published::{self, PART_FILE, report_parts};
use crate::storage::Root;
use charts::{Axes, Series};
use maud::{Markup, Render, html};
use page::{count, join, paragraph, percent, ratio, section, status, table, usd};

/// The stage's name in the manifest.
pub(crate) const JOB: &str = "report";
/// The table whose latest partition dates the report when no date is given.
pub(crate) const DATED_BY: &str = "kpi_monthly";
/// The months of history the scorecard's trends show.
const TREND_MONTHS: usize = 13;
/// The market and channel of the marts' roll-up rows.
const ALL: &str = "(all)";

/// The published tables the report reads, registered under their own names.
const TABLES: [&str; 10] = [
    "kpi_monthly",
    "cohort_retention",
    "rfm_segments",
    "segment_profiles",
    "channel_performance",
    "referral_funnel",
    "growth_forecast",
    "predicted_ltv",
    "churn_scores",
    "clv_scores",
];

/// The tables of one run date (and the two earlier ones the page compares with), queryable.
struct Published {
    ctx: SessionContext,
    present: BTreeSet<String>,
    previous_run: Option<NaiveDate>,
    last_month_run: Option<NaiveDate>,
}

/// A query's rows, read by (row, column): each column cast once to text and to a number
/// (None where it has no numeric reading).
struct Rows {
    rows: usize,
    texts: Vec<ArrayRef>,
    numbers: Vec<Option<ArrayRef>>,
}

impl Rows {
    fn new(batch: Option<RecordBatch>) -> Self {
        let Some(batch) = batch else {
            return Rows {
                rows: 0,
                texts: Vec::new(),
                numbers: Vec::new(),
            };
        };
        Rows {
            rows: batch.num_rows(),
            texts: batch
                .columns()
                .iter()
                .map(|c| cast(c, &DataType::Utf8).expect("any column casts to text"))
                .collect(),
            numbers: batch
                .columns()
                .iter()
                .map(|c| cast(c, &DataType::Float64).ok())
                .collect(),
        }
    }

    fn len(&self) -> usize {
        self.rows
    }

    fn text(&self, row: usize, column: usize) -> String {
        match self.texts.get(column) {
            Some(values) if !values.is_null(row) => values.as_string::<i32>().value(row).to_string(),
            _ => String::new(),
        }
    }

    fn number(&self, row: usize, column: usize) -> Option<f64> {
        let values = self.numbers.get(column)?.as_ref()?.as_primitive::<Float64Type>();
        (!values.is_null(row)).then(|| values.value(row))
    }

    fn num(&self, row: usize, column: usize) -> f64 {
        self.number(row, column).unwrap_or(f64::NAN)
    }
}

impl Published {
    async fn open(output: &Root, run_date: NaiveDate) -> Result<Self> {
        let ctx = crate::engine::new_session();
        output.register(&ctx);
        let mut present = BTreeSet::new();
        let register = async |name: &str, table: &str, date: NaiveDate, file: &str| -> Result<bool> {
            let path = published::table_file(output, table, date, file);
            if output.store.head(&path).await.is_err() {
                return Ok(false);
            }
            ctx.register_parquet(name, output.url_of(&path), ParquetReadOptions::default())
                .await
                .map_err(Error::engine(format!("reading {}", output.describe(&path))))?;
            Ok(true)
        };
        for table in TABLES {
            if register(table, table, run_date, PART_FILE).await? {
                present.insert(table.to_string());
            }
        }
        for job in ["churn", "clv", "segment"] {
            let file = crate::learn::model_metrics::part_file(job);
            if register(
                &format!("{job}_metrics"),
                crate::learn::model_metrics::TABLE,
                run_date,
                &file,
            )
            .await?
            {
                present.insert(format!("{job}_metrics"));
            }
        }
        let earlier =
            |dates: Vec<NaiveDate>, before: NaiveDate| dates.into_iter().filter(|d| *d < before).max();
        let previous_run = earlier(published::partitions(output, "kpi_monthly").await, run_date);
        if let Some(date) = previous_run
            && register("previous_kpi_monthly", "kpi_monthly", date, PART_FILE).await?
        {
            present.insert("previous_kpi_monthly".into());
            // A scorecard published before region roll-ups: its rows are over every region.
            let schema = ctx
                .table("previous_kpi_monthly")
                .await
                .map_err(Error::engine("reading the previous kpi_monthly"))?
                .schema()
                .clone();
            if !schema.has_column_with_unqualified_name("region") {
                let view = ctx
                    .sql("select '(all)' as region, * from previous_kpi_monthly")
                    .await
                    .map_err(Error::engine("reading the previous kpi_monthly"))?
                    .into_view();
                ctx.deregister_table("previous_kpi_monthly")
                    .and_then(|_| ctx.register_table("previous_kpi_monthly", view))
                    .map_err(Error::engine("reading the previous kpi_monthly"))?;
            }
        }
        // Last month's run: the latest before the run date's month began.
        let month_began = run_date.with_day(1).unwrap_or(run_date);
        let last_month_run = earlier(published::partitions(output, "rfm_segments").await, month_began);
        if let Some(date) = last_month_run
            && register("last_month_rfm", "rfm_segments", date, PART_FILE).await?
        {
            present.insert("last_month_rfm".into());
        }
        Ok(Published {
            ctx,
            present,
            previous_run,
            last_month_run,
        })
    }

    fn has(&self, tables: &[&str]) -> bool {
        tables.iter().all(|t| self.present.contains(*t))
    }

    async fn rows(&self, sql: &str) -> Result<Rows> {
        let batches = self
            .ctx
            .sql(sql)
            .await
            .map_err(Error::engine("planning a report query"))?
            .collect()
            .await
            .map_err(Error::engine("running a report query"))?;
        let batch = match batches.first() {
            Some(first) => Some(
                concat_batches(&first.schema(), &batches)
                    .map_err(Error::arrow("collecting a report query"))?,
            ),
            None => None,
        };
        Ok(Rows::new(batch))
    }
}

/// Month labels such as `2026-06` for month-start dates as text.
fn month_label(date: &str) -> String {
    date.get(..7).unwrap_or(date).to_string()
}

/// The scorecard: each KPI with thresholds at the latest complete month for every market and
/// channel together, its status in words, the month before, and its 13-month trend.
async fn scorecard(
    data: &Published,
    config: &Config,
    warnings: &[String],
) -> Result<(Markup, Option<String>)> {
    let title = "KPI scorecard";
    if !data.has(&["kpi_monthly"]) {
        return Ok((page::missing("scorecard", title, "kpi_monthly"), None));
    }
    let kpis: Vec<&String> = config.kpi_thresholds.keys().collect();
    let columns: Vec<String> = kpis.iter().map(|k| format!("cast({k} as double)")).collect();
    let rows = data
        .rows(&format!(
            "select cast(month_start as varchar) as month_text, {} from kpi_monthly \
             where region = '{ALL}' and market = '{ALL}' and channel = '{ALL}' and period_complete order by month_start",
            columns.join(", ")
        ))
        .await?;
    let n = rows.len();
    if n == 0 {
        return Ok((
            section("scorecard", title, paragraph("No complete month yet.")),
            None,
        ));
    }
    let latest = rows.text(n - 1, 0);
    let first = n.saturating_sub(TREND_MONTHS);
    // The month under way, shown for what it is: its figures so far, with no colour.
    let partial = data
        .rows(&format!(
            "select cast(month_start as varchar) as month_text, {} from kpi_monthly \
             where region = '{ALL}' and market = '{ALL}' and channel = '{ALL}' and not period_complete order by month_start",
            columns.join(", ")
        ))
        .await?;
    let partial_row = partial.len().checked_sub(1);
    let partial_month = partial_row.map(|r| month_label(&partial.text(r, 0)));
    let mut body = vec![paragraph(&format!(
        "Every market and channel together, {} (the latest complete month). Status words stand beside the colours; thresholds from the config ([kpi_thresholds]). The month under way shows its figures so far, without a status: a month is judged when it ends.",
        month_label(&latest)
    ))];
    for warning in warnings {
        body.push(html! { p.warning { "Warning: " (warning) "." } });
    }
    let mut cells = Vec::new();
    let mut trends = Vec::new();
    for (k, kpi) in kpis.iter().enumerate() {
        let threshold = &config.kpi_thresholds[*kpi];
        let format = page::kpi_format(kpi);
        let value = rows.number(n - 1, k + 1);
        let before = if n > 1 { rows.number(n - 2, k + 1) } else { None };
        let shown = value.map_or("n/a".to_string(), format);
        let so_far = partial_row
            .and_then(|r| partial.number(r, k + 1))
            .map_or("n/a".to_string(), format);
        cells.push(vec![
            kpi.render(),
            html! {
                span data-kpi=(kpi) data-value=(value.map_or(String::new(), |v| format!("{v:?}"))) { (shown) }
            },
            status(value.map(|v| threshold.status(v))),
            before.map_or("n/a".to_string(), format).render(),
            html! {
                (so_far) " "
                @if partial_row.is_some() { (status(Some("partial"))) }
            },
            (format!(
                "{} {} / red {}",
                match threshold.direction {
                    crate::config::Direction::AtMost => "at most",
                    crate::config::Direction::AtLeast => "at least",
                },
                format(threshold.green),
                format(threshold.red)
            ))
            .render(),
        ]);
        let points: Vec<(f64, f64)> = (first..n)
            .filter_map(|row| rows.number(row, k + 1).map(|v| ((row - first) as f64, v)))
            .collect();
        if points.is_empty() {
            continue;
        }
        let axes = Axes {
            x_ticks: [first, n - 1]
                .iter()
                .map(|&row| ((row - first) as f64, month_label(&rows.text(row, 0))))
                .collect(),
            x_label: "month".into(),
            y_label: kpi.to_string(),
            y_range: None,
            x_range: Some((0.0, (n - 1 - first) as f64)),
            y_format: format,
        };
        let green = Series {
            name: "green bound".into(),
            points: vec![(0.0, threshold.green), ((n - 1 - first) as f64, threshold.green)],
            dashed: true,
            ..Series::default()
        };
        let series = Series {
            name: kpi.to_string(),
            points,
            ..Series::default()
        };
        trends.push(html! {
            figure {
                figcaption { (kpi) ": last " (n - first) " months" }
                (charts::lines(&format!("trend-{kpi}"), &format!("{kpi} by month"), &axes, &[series, green]))
            }
        });
    }
    body.push(table(
        "KPIs at the latest complete month",
        &[
            "KPI",
            "value",
            "status",
            "month before",
            partial_month.as_deref().unwrap_or("month under way"),
            "threshold",
        ],
        &cells,
    ));
    body.push(html! { div.trends { (join(trends)) } });
    Ok((section("scorecard", title, join(body)), Some(latest)))
}

/// The scorecard by region ([region] in the config) at the latest complete month: every region's
/// roll-up over its markets and channels, a column each.
async fn regions(data: &Published, config: &Config) -> Result<Markup> {
    let title = "Regions";
    if !data.has(&["kpi_monthly"]) {
        return Ok(page::missing("regions", title, "kpi_monthly"));
    }
    let kpis: Vec<&str> = ["new_customers", "revenue_usd"]
        .into_iter()
        .chain(config.kpi_thresholds.keys().map(String::as_str))
        .collect();
    let columns: Vec<String> = kpis.iter().map(|k| format!("cast({k} as double)")).collect();
    let rows = data
        .rows(&format!(
            "select region, cast(month_start as varchar) as month_text, {} from kpi_monthly \
             where region <> '{ALL}' and market = '{ALL}' and channel = '{ALL}' and period_complete \
             and month_start = (select max(month_start) from kpi_monthly where period_complete) \
             order by region",
            columns.join(", ")
        ))
        .await?;
    if rows.len() == 0 {
        return Ok(section("regions", title, paragraph("No complete month yet.")));
    }
    let regions: Vec<String> = (0..rows.len()).map(|r| rows.text(r, 0)).collect();
    let mut header = vec!["KPI"];
    header.extend(regions.iter().map(String::as_str));
    let cells: Vec<Vec<Markup>> = kpis
        .iter()
        .enumerate()
        .map(|(k, kpi)| {
            let threshold = config.kpi_thresholds.get(*kpi);
            let format = page::kpi_format(kpi);
            let mut row = vec![kpi.render()];
            for (r, region) in regions.iter().enumerate() {
                let value = rows.number(r, k + 2);
                row.push(html! {
                    span data-region=(region) data-region-kpi=(kpi) { (value.map_or("n/a".to_string(), format)) }
                    @if let Some(t) = threshold { " " (status(value.map(|v| t.status(v)))) }
                });
            }
            row
        })
        .collect();
    let body = html! {
        (paragraph(&format!(
            "Each region's markets and channels together, {} (the markets of each region: [region] in the config).",
            month_label(&rows.text(0, 1))
        )))
        (table("KPIs by region at the latest complete month", &header, &cells))
    };
    Ok(section("regions", title, body))
}

/// A kpi_monthly row's place: its market, or on roll-ups over markets its region ('(all)' over
/// every region).
const AREA: &str = "case when market = '(all)' then region else market end";

/// KPIs red at the latest complete month that were not red in the previous run's scorecard.
async fn alerts(data: &Published, config: &Config) -> Result<Markup> {
    let title = "Alerts turned red since the previous run";
    if !data.has(&["kpi_monthly", "previous_kpi_monthly"]) {
        return Ok(section(
            "alerts",
            title,
            paragraph("No earlier run to compare with: every red status in the scorecard is new."),
        ));
    }
    let mut found = Vec::new();
    for (kpi, threshold) in &config.kpi_thresholds {
        let sql = format!(
            "with now as (select {AREA} as market, channel, cast({kpi} as double) as value from kpi_monthly \
               where period_complete and month_start = (select max(month_start) from kpi_monthly where period_complete)), \
             before as (select {AREA} as market, channel, cast({kpi} as double) as value from previous_kpi_monthly \
               where period_complete and month_start = (select max(month_start) from previous_kpi_monthly where period_complete)) \
             select now.market, now.channel, now.value, before.value from now left join before \
               on now.market = before.market and now.channel = before.channel \
             where now.value is not null and (now.channel = '{ALL}' or now.market = '{ALL}') order by 1, 2"
        );
        let rows = data.rows(&sql).await?;
        let format = page::kpi_format(kpi);
        for row in 0..rows.len() {
            let now = rows.num(row, 2);
            let before = rows.number(row, 3);
            if threshold.status(now) == "red" && before.is_none_or(|b| threshold.status(b) != "red") {
                found.push(vec![
                    rows.text(row, 0).render(),
                    rows.text(row, 1).render(),
                    kpi.render(),
                    before.map_or("n/a".into(), format).render(),
                    status(before.map(|b| threshold.status(b))),
                    format(now).render(),
                    status(Some("red")),
                ]);
            }
        }
    }
    let since = data.previous_run.map_or(String::new(), |d| d.to_string());
    let body = if found.is_empty() {
        paragraph(&format!("None: no KPI turned red since the run of {since}."))
    } else {
        table(
            &format!("{} KPI rows red now and not in the run of {since}", found.len()),
            &[
                "market or region",
                "channel",
                "KPI",
                "before",
                "status before",
                "now",
                "status now",
            ],
            &found,
        )
    };
    Ok(section("alerts", title, body))
}

/// The cohort retention heatmap of the last 12 cohorts, and LTV curves by channel.
async fn cohorts(data: &Published) -> Result<Markup> {
    let title = "Cohorts: retention and lifetime value";
    if !data.has(&["cohort_retention"]) {
        return Ok(page::missing("cohorts", title, "cohort_retention"));
    }
    let rows = data
        .rows(&format!(
            "select cast(cohort_month as varchar) as month_text, months_since, retention_rate from cohort_retention \
             where market = '{ALL}' and acquisition_channel = '{ALL}' and months_since <= 12 \
             and cohort_month >= (select max(cohort_month) from cohort_retention) - interval '11 months' \
             order by cohort_month, months_since"
        ))
        .await?;
    let mut grid: BTreeMap<String, Vec<Option<f64>>> = BTreeMap::new();
    for row in 0..rows.len() {
        let cells = grid
            .entry(month_label(&rows.text(row, 0)))
            .or_insert_with(|| vec![None; 13]);
        let age = rows.num(row, 1) as usize;
        if age < 13 {
            cells[age] = rows.number(row, 2);
        }
    }
    let labels: Vec<String> = grid.keys().cloned().collect();
    let values: Vec<Vec<Option<f64>>> = grid.into_values().collect();
    let columns: Vec<String> = (0..13).map(|m| format!("m{m}")).collect();
    let mut body = vec![paragraph(
        "Share of each monthly cohort (every market and channel) buying again in each month since its first purchase (m0 is the acquisition month).",
    )];
    body.push(charts::heatmap(
        "cohort-heatmap",
        "Cohort retention by months since acquisition",
        &labels,
        &columns,
        &values,
        0.6,
        percent,
    ));
    let curves = data
        .rows(&format!(
            "select acquisition_channel, months_since, \
             sum(cumulative_revenue_per_customer * cohort_size) / sum(cohort_size) \
             from cohort_retention where market = '{ALL}' and acquisition_channel <> '{ALL}' and months_since <= 12 \
             group by 1, 2 order by 1, 2"
        ))
        .await?;
    let mut series: BTreeMap<String, Series> = BTreeMap::new();
    for row in 0..curves.len() {
        let channel = curves.text(row, 0);
        series
            .entry(channel.clone())
            .or_insert_with(|| Series {
                name: channel,
                ..Series::default()
            })
            .points
            .push((curves.num(row, 1), curves.num(row, 2)));
    }
    let axes = Axes {
        x_ticks: (0..=12)
            .step_by(3)
            .map(|m| (f64::from(m), format!("m{m}")))
            .collect(),
        x_label: "months since acquisition".into(),
        y_label: "revenue per customer".into(),
        y_range: None,
        x_range: Some((0.0, 12.0)),
        y_format: usd,
    };
    let series: Vec<Series> = series.into_values().collect();
    body.push(html! { h3 { "Observed LTV by acquisition channel" } });
    body.push(charts::lines(
        "ltv-curves",
        "Cumulative revenue per acquired customer by channel",
        &axes,
        &series,
    ));
    Ok(section("cohorts", title, join(body)))
}

/// RFM segment sizes and how customers moved between segments since last month's run.
async fn rfm(data: &Published) -> Result<Markup> {
    let title = "RFM segments";
    if !data.has(&["rfm_segments"]) {
        return Ok(page::missing("rfm", title, "rfm_segments"));
    }
    let sizes = data
        .rows("select segment, count(*) from rfm_segments group by 1 order by 2 desc, 1")
        .await?;
    let bars: Vec<(String, f64)> = (0..sizes.len())
        .map(|r| (sizes.text(r, 0), sizes.num(r, 1)))
        .collect();
    let cells = data
        .rows("select r_score, f_score, count(*), sum(monetary_usd) from rfm_segments group by 1, 2 order by 1 desc, 2")
        .await?;
    let mut grid: BTreeMap<i64, Vec<Option<f64>>> = BTreeMap::new();
    for row in 0..cells.len() {
        let f = cells.num(row, 1) as usize;
        let line = grid
            .entry(-(cells.num(row, 0) as i64))
            .or_insert_with(|| vec![None; 5]);
        if (1..=5).contains(&f) {
            line[f - 1] = cells.number(row, 2);
        }
    }
    let most = grid.values().flatten().flatten().fold(1.0_f64, |m, v| m.max(*v));
    let mut body = vec![charts::bars(
        "rfm-sizes",
        "Customers per RFM segment",
        &bars,
        count,
    )];
    body.push(charts::heatmap(
        "rfm-grid",
        "Customers per recency score (rows, 5 = most recent) and frequency score (columns)",
        &grid.keys().map(|r| format!("R{}", -r)).collect::<Vec<_>>(),
        &(1..=5).map(|f| format!("F{f}")).collect::<Vec<_>>(),
        &grid.into_values().collect::<Vec<_>>(),
        most,
        count,
    ));
    if data.has(&["last_month_rfm"]) {
        let moves = data
            .rows(
                "select last_month_rfm.segment, rfm_segments.segment, count(*) from rfm_segments \
                 join last_month_rfm on rfm_segments.customer_id = last_month_rfm.customer_id \
                 where rfm_segments.segment <> last_month_rfm.segment group by 1, 2 order by 3 desc, 1, 2 limit 15",
            )
            .await?;
        let since = data.last_month_run.map_or(String::new(), |d| d.to_string());
        let rows: Vec<Vec<Markup>> = (0..moves.len())
            .map(|r| {
                vec![
                    moves.text(r, 0).render(),
                    moves.text(r, 1).render(),
                    count(moves.num(r, 2)).render(),
                ]
            })
            .collect();
        body.push(table(
            &format!("The 15 largest moves between segments since the run of {since}"),
            &["from", "to", "customers"],
            &rows,
        ));
    } else {
        body.push(paragraph("No run before this month's: no migration to show yet."));
    }
    Ok(section("rfm", title, join(body)))
}

/// The learned clusters' profiles.
async fn clusters(data: &Published) -> Result<Markup> {
    let title = "Customer clusters";
    if !data.has(&["segment_profiles"]) {
        return Ok(page::missing("clusters", title, "segment_profiles"));
    }
    let rows = data
        .rows(
            "select cluster_label, customers, customer_share, revenue_share, mean_recency_days, mean_frequency, \
             mean_monetary_usd, mean_avg_order_value_usd from segment_profiles order by revenue_share desc",
        )
        .await?;
    let bars: Vec<(String, f64)> = (0..rows.len())
        .map(|r| (rows.text(r, 0), rows.num(r, 3)))
        .collect();
    let chart = charts::bars("cluster-revenue", "Share of revenue per cluster", &bars, percent);
    let cells: Vec<Vec<Markup>> = (0..rows.len())
        .map(|r| {
            [
                rows.text(r, 0),
                count(rows.num(r, 1)),
                percent(rows.num(r, 2)),
                percent(rows.num(r, 3)),
                page::grouped(rows.num(r, 4), 0),
                page::grouped(rows.num(r, 5), 1),
                usd(rows.num(r, 6)),
                usd(rows.num(r, 7)),
            ]
            .iter()
            .map(Render::render)
            .collect()
        })
        .collect();
    let profiles = table(
        "Cluster profiles (means per customer)",
        &[
            "cluster",
            "customers",
            "share",
            "revenue share",
            "recency (days)",
            "orders",
            "revenue",
            "order value",
        ],
        &cells,
    );
    Ok(section("clusters", title, join(vec![chart, profiles])))
}

/// The churn model card: chosen model, base rate, ROC curve, lift and calibration.
async fn churn(data: &Published) -> Result<Markup> {
    let title = "Churn model";
    if !data.has(&["churn_metrics"]) {
        return Ok(page::missing("churn", title, "model_metrics (churn)"));
    }
    let metric = async |name: &str| -> Result<Rows> {
        data.rows(&format!(
            "select parameter, value from churn_metrics where chosen and evaluated_on = 'validation' \
             and metric = '{name}' order by parameter"
        ))
        .await
    };
    let model = data
        .rows("select distinct model from churn_metrics where chosen")
        .await?;
    let model = if model.len() > 0 {
        model.text(0, 0)
    } else {
        String::new()
    };
    let mut facts = Vec::new();
    for (name, format) in [
        ("roc_auc", ratio as fn(f64) -> String),
        ("base_rate", percent),
        ("accuracy", percent),
        ("majority_accuracy", percent),
        ("top_decile_lift", ratio),
        ("customers", count),
    ] {
        let rows = metric(name).await?;
        if rows.len() > 0 {
            facts.push(vec![name.render(), format(rows.num(0, 1)).render()]);
        }
    }
    let mut body = if facts.is_empty() {
        vec![html! {
            p { "Model: " strong { (model) } ". No labelled window could be trained on yet (a history shorter than two churn horizons, or a window of one class): churn is BG/NBD's chance of no purchase in the horizon, and there are no validation figures (the model card says why)." }
        }]
    } else {
        vec![html! {
            p { "Chosen model: " strong { (model) } ", measured on the validation window (customers active before its cut-off, labelled by what they did after)." }
        }]
    };
    if !facts.is_empty() {
        body.push(validation_charts(data, &model, facts).await?);
    }
    if data.has(&["churn_scores"]) {
        let tiers = data
            .rows("select risk_tier, count(*) from churn_scores group by 1 order by 2 desc")
            .await?;
        let rows: Vec<Vec<Markup>> = (0..tiers.len())
            .map(|r| vec![tiers.text(r, 0).render(), count(tiers.num(r, 1)).render()])
            .collect();
        body.push(table(
            "Customers scored per risk tier",
            &["risk tier", "customers"],
            &rows,
        ));
    }
    Ok(section("churn", title, join(body)))
}

/// The two models the plan sets an accuracy for, judged against `[model_thresholds]`: the chosen
/// churn model's validation accuracy and the forecast's backtest (1 - revenue MAPE over every
/// market). A churn model without a validation window has no accuracy, and so no status.
async fn model_accuracy(data: &Published, config: &Config) -> Result<Markup> {
    let title = "Model accuracy";
    let mut cells = Vec::new();
    let mut judge = |name: &str, what: &str, value: Option<f64>| {
        let threshold = config.model_thresholds.get(name);
        cells.push(vec![
            name.render(),
            what.render(),
            value.map_or("n/a".to_string(), percent).render(),
            status(value.zip(threshold).map(|(v, t)| t.status(v))),
            threshold
                .map_or(String::new(), |t| {
                    format!("green from {} / red under {}", percent(t.green), percent(t.red))
                })
                .render(),
        ]);
    };
    let churn = if data.has(&["churn_metrics"]) {
        let rows = data
            .rows(
                "select value from churn_metrics where chosen and evaluated_on = 'validation' \
                 and metric = 'accuracy'",
            )
            .await?;
        (rows.len() > 0).then(|| rows.num(0, 0))
    } else {
        None
    };
    judge("churn_accuracy", "chosen churn model, validation window", churn);
    let forecast = if data.has(&["clv_metrics"]) {
        let rows = data
            .rows(&format!(
                "select value from clv_metrics where evaluated_on = 'backtest' \
                 and metric = 'mape_revenue' and parameter = '{ALL}'"
            ))
            .await?;
        (rows.len() > 0).then(|| 1.0 - rows.num(0, 0))
    } else {
        None
    };
    judge(
        "forecast_accuracy",
        "12-month forecast, backtest revenue (1 - MAPE)",
        forecast,
    );
    Ok(section(
        "accuracy",
        title,
        table(
            "The models' accuracy against the plan",
            &["measure", "of", "value", "status", "threshold"],
            &cells,
        ),
    ))
}

/// The chosen churn model's validation figures, ROC curve, lift and calibration.
async fn validation_charts(data: &Published, model: &str, facts: Vec<Vec<Markup>>) -> Result<Markup> {
    let metric = async |name: &str| -> Result<Rows> {
        data.rows(&format!(
            "select parameter, value from churn_metrics where chosen and evaluated_on = 'validation' \
             and metric = '{name}' order by parameter"
        ))
        .await
    };
    let mut body = vec![table("Validation figures", &["figure", "value"], &facts)];
    let (fpr, tpr, lift) = (
        metric("roc_false_positive_rate").await?,
        metric("roc_true_positive_rate").await?,
        metric("cumulative_lift").await?,
    );
    let mut roc = vec![(0.0, 0.0)];
    roc.extend((0..fpr.len().min(tpr.len())).map(|r| (fpr.num(r, 1), tpr.num(r, 1))));
    let unit = |label: &str| Axes {
        x_ticks: [0.0, 0.5, 1.0].iter().map(|x| (*x, format!("{x}"))).collect(),
        x_label: label.into(),
        y_label: String::new(),
        y_range: Some((0.0, 1.0)),
        x_range: Some((0.0, 1.0)),
        y_format: ratio,
    };
    let diagonal = Series {
        name: "chance".into(),
        points: vec![(0.0, 0.0), (1.0, 1.0)],
        dashed: true,
        ..Series::default()
    };
    let mut roc_axes = unit("false positive rate (by tenths of the ranking)");
    roc_axes.y_label = "true positive rate".into();
    body.push(charts::lines(
        "churn-roc",
        "ROC curve",
        &roc_axes,
        &[
            Series {
                name: model.to_string(),
                points: roc,
                ..Series::default()
            },
            diagonal.clone(),
        ],
    ));
    let lift_bars: Vec<(String, f64)> = (0..lift.len())
        .map(|r| {
            (
                format!(
                    "top {}",
                    percent(lift.text(r, 0).parse::<f64>().unwrap_or(f64::NAN))
                ),
                lift.num(r, 1),
            )
        })
        .collect();
    body.push(charts::bars(
        "churn-lift",
        "Cumulative lift: churn rate of the top-scored over the base rate",
        &lift_bars,
        ratio,
    ));
    let calibration = data
        .rows(
            "select m.value, o.value from churn_metrics m join churn_metrics o \
             on m.parameter = o.parameter and m.model = o.model and m.evaluated_on = o.evaluated_on \
             where m.chosen and m.evaluated_on = 'validation' and m.metric = 'calibration_mean_probability' \
             and o.metric = 'calibration_observed_churn_rate' order by m.parameter",
        )
        .await?;
    let mut cal_axes = unit("mean predicted churn probability");
    cal_axes.y_label = "observed churn rate".into();
    let observed: Vec<(f64, f64)> = (0..calibration.len())
        .map(|r| (calibration.num(r, 0), calibration.num(r, 1)))
        .collect();
    body.push(charts::lines(
        "churn-calibration",
        "Calibration: predicted against observed churn, by tenths of probability",
        &cal_axes,
        &[
            Series {
                name: "observed".into(),
                points: observed,
                ..Series::default()
            },
            Series {
                name: "perfect".into(),
                ..diagonal
            },
        ],
    ));
    Ok(join(body))
}

/// Channel ROI of the latest month whose 90-day window has closed, with the budget proposal.
async fn channels(data: &Published) -> Result<Markup> {
    let title = "Channel ROI and budget proposal";
    if !data.has(&["channel_performance"]) {
        return Ok(page::missing("channels", title, "channel_performance"));
    }
    let rows = data
        .rows(
            "with judged as (select max(month_start) as month from channel_performance where budget_recommendation is not null), \
             sums as (select cast(judged.month as varchar) as month_text, channel, sum(spend_usd) as spend, \
               sum(new_customers) as acquired, sum(revenue_90d_usd) as revenue, sum(proposed_spend_usd) as proposed, \
               sum(case when budget_recommendation = 'increase' then 1 else 0 end) as ups, \
               sum(case when budget_recommendation = 'decrease' then 1 else 0 end) as downs, \
               sum(case when budget_shift_usd < 0 then -budget_shift_usd else 0 end) as cut, \
               sum(case when budget_shift_usd > 0 then budget_shift_usd else 0 end) as added \
               from channel_performance join judged on channel_performance.month_start = judged.month \
               where spend_usd > 0 group by 1, 2) \
             select month_text, channel, spend, acquired, revenue, (revenue - spend) / spend as roi, proposed, ups, downs, \
               cut, added \
             from sums order by roi desc, channel",
        )
        .await?;
    if rows.len() == 0 {
        return Ok(section(
            "channels",
            title,
            paragraph("No month with spend whose 90-day revenue window has closed yet."),
        ));
    }
    let month = month_label(&rows.text(0, 0));
    let budget = data
        .rows(
            "with judged as (select max(month_start) as month from channel_performance where budget_recommendation is not null), \
             markets as (select distinct market, market_budget_usd, market_reserve_usd from channel_performance \
               join judged on channel_performance.month_start = judged.month where budget_recommendation is not null) \
             select sum(market_budget_usd), sum(market_reserve_usd) from markets",
        )
        .await?;
    let (total, reserve) = (budget.num(0, 0), budget.num(0, 1));
    let (cut, added): (f64, f64) =
        (0..rows.len()).fold((0.0, 0.0), |(c, a), r| (c + rows.num(r, 9), a + rows.num(r, 10)));
    let bars: Vec<(String, f64)> = (0..rows.len())
        .map(|r| (rows.text(r, 1), rows.num(r, 5)))
        .collect();
    let mut body = vec![paragraph(&format!(
        "{month}, the latest month whose customers' first 90 days are over, every market together. ROI = (90-day revenue - spend) / spend."
    ))];
    body.push(paragraph(&format!(
        "The plan's budget rule (docs/methods/kpis.md): of the {} budget, {} is held in reserve ({} of it cuts no preferred channel could take); {} is cut from channels whose CAC is over its bounds or that acquired no one, and {} goes to channels with ROI at or above the preferred bar.",
        usd(total),
        usd(reserve),
        usd(cut - added),
        usd(cut),
        usd(added)
    )));
    body.push(charts::bars(
        "channel-roi",
        &format!("ROI per channel, {month}"),
        &bars,
        ratio,
    ));
    let cells: Vec<Vec<Markup>> = (0..rows.len())
        .map(|r| {
            [
                rows.text(r, 1),
                usd(rows.num(r, 2)),
                count(rows.num(r, 3)),
                usd(rows.num(r, 4)),
                ratio(rows.num(r, 5)),
                usd(rows.num(r, 6)),
                usd(-rows.num(r, 9)),
                usd(rows.num(r, 10)),
                format!("{} up, {} down", rows.num(r, 7), rows.num(r, 8)),
            ]
            .iter()
            .map(Render::render)
            .collect()
        })
        .collect();
    body.push(table(
        "Spend, 90-day revenue, ROI and the proposed spend (summed over markets)",
        &[
            "channel",
            "spend",
            "new customers",
            "90-day revenue",
            "ROI",
            "proposed spend",
            "cut",
            "added",
            "markets moved",
        ],
        &cells,
    ));
    Ok(section("channels", title, join(body)))
}

/// The referral funnel of the last six months.
async fn referrals(data: &Published) -> Result<Markup> {
    let title = "Referral funnel";
    if !data.has(&["referral_funnel"]) {
        return Ok(page::missing("referrals", title, "referral_funnel"));
    }
    let rows = data
        .rows(
            "select cast(month_start as varchar) as month_text, sum(invites_sent), sum(invites_accepted), sum(referred_new_customers), \
             sum(sharers), sum(buying_sharers) from referral_funnel \
             where month_start >= (select max(month_start) from referral_funnel) - interval '5 months' \
             group by 1 order by 1",
        )
        .await?;
    if rows.len() == 0 {
        return Ok(section("referrals", title, paragraph("No invites yet.")));
    }
    let last = rows.len() - 1;
    let funnel = vec![
        ("invites sent".to_string(), rows.num(last, 1)),
        ("accepted".to_string(), rows.num(last, 2)),
        ("new customers".to_string(), rows.num(last, 3)),
    ];
    let month = month_label(&rows.text(last, 0));
    let chart = charts::bars(
        "referral-funnel",
        &format!("Referral funnel, {month}"),
        &funnel,
        count,
    );
    let cells: Vec<Vec<Markup>> = (0..rows.len())
        .map(|r| {
            [
                month_label(&rows.text(r, 0)),
                count(rows.num(r, 4)),
                count(rows.num(r, 1)),
                count(rows.num(r, 2)),
                percent(rows.num(r, 2) / rows.num(r, 1)),
                count(rows.num(r, 3)),
            ]
            .iter()
            .map(Render::render)
            .collect()
        })
        .collect();
    let months = table(
        "The last six months, every market and share channel",
        &[
            "month",
            "sharers",
            "invites sent",
            "accepted",
            "acceptance",
            "referred new customers",
        ],
        &cells,
    );
    Ok(section("referrals", title, join(vec![chart, months])))
}

/// The 12-month forecast with its intervals, the backtest's error, and the predicted LTV/CAC.
async fn forecast(data: &Published) -> Result<Markup> {
    let title = "Forecast";
    if !data.has(&["growth_forecast"]) {
        return Ok(page::missing("forecast", title, "growth_forecast"));
    }
    let mut body = vec![paragraph(
        "Every market together. Existing customers from BG/NBD and Gamma-Gamma, new ones from the acquisition trend and the cohorts' curves; the band is the 80% interval.",
    )];
    for (measure, label, format) in [
        ("revenue_usd", "Revenue", usd as fn(f64) -> String),
        ("active_customers", "Active customers", count),
        ("new_customers", "New customers", count),
    ] {
        let history = if data.has(&["kpi_monthly"]) {
            data.rows(&format!(
                "select cast(month_start as varchar) as month_text, cast({measure} as double) from kpi_monthly \
                 where region = '{ALL}' and market = '{ALL}' and channel = '{ALL}' and period_complete \
                 order by month_start desc limit 12"
            ))
            .await?
        } else {
            Rows::new(None)
        };
        let ahead = data
            .rows(&format!(
                "select cast(month_start as varchar) as month_text, {measure}, {measure}_lower, {measure}_upper from growth_forecast \
                 where kind = 'forecast' and market = '{ALL}' order by month_start"
            ))
            .await?;
        let past = history.len();
        let actual: Vec<(f64, f64)> = (0..past)
            .map(|r| ((past - 1 - r) as f64, history.num(r, 1)))
            .collect();
        let start = past as f64;
        let forecast: Vec<(f64, f64)> = (0..ahead.len())
            .map(|r| (start + r as f64, ahead.num(r, 1)))
            .collect();
        let band: Vec<(f64, f64, f64)> = (0..ahead.len())
            .map(|r| (start + r as f64, ahead.num(r, 2), ahead.num(r, 3)))
            .collect();
        let mut ticks = Vec::new();
        if past > 0 {
            ticks.push((0.0, month_label(&history.text(past - 1, 0))));
        }
        if ahead.len() > 0 {
            ticks.push((start, month_label(&ahead.text(0, 0))));
            ticks.push((
                start + (ahead.len() - 1) as f64,
                month_label(&ahead.text(ahead.len() - 1, 0)),
            ));
        }
        let axes = Axes {
            x_ticks: ticks,
            x_label: "month".into(),
            y_label: label.into(),
            y_range: None,
            x_range: None,
            y_format: format,
        };
        body.push(charts::lines(
            &format!("forecast-{measure}"),
            &format!("{label}: the last 12 months and the forecast"),
            &axes,
            &[
                Series {
                    name: "actual".into(),
                    points: actual,
                    ..Series::default()
                },
                Series {
                    name: "forecast (80% interval)".into(),
                    points: forecast,
                    band,
                    dashed: true,
                },
            ],
        ));
    }
    if data.has(&["clv_metrics"]) {
        let backtest = data
            .rows(&format!(
                "select metric, value from clv_metrics where model = 'growth_forecast' and parameter = '{ALL}' order by metric"
            ))
            .await?;
        let rows: Vec<Vec<Markup>> = (0..backtest.len())
            .map(|r| vec![backtest.text(r, 0).render(), percent(backtest.num(r, 1)).render()])
            .collect();
        body.push(table(
            "Backtest: the same forecast made six months earlier, against what happened",
            &["figure", "value"],
            &rows,
        ));
    }
    if data.has(&["predicted_ltv"]) {
        let rows = data
            .rows(&format!(
                "select cast(month_start as varchar) as month_text, new_customers, predicted_ltv_12m_usd, predicted_ltv_to_cac, \
                 predicted_ltv_to_cac_status from predicted_ltv where market = '{ALL}' and channel = '{ALL}' order by month_start"
            ))
            .await?;
        let cells: Vec<Vec<Markup>> = (0..rows.len())
            .map(|r| {
                let status_word = rows.text(r, 4);
                vec![
                    month_label(&rows.text(r, 0)).render(),
                    count(rows.num(r, 1)).render(),
                    usd(rows.num(r, 2)).render(),
                    ratio(rows.num(r, 3)).render(),
                    status((!status_word.is_empty()).then_some(status_word.as_str())),
                ]
            })
            .collect();
        body.push(table(
            "Predicted first-year LTV and LTV/CAC of the cohorts still in their first year",
            &["cohort", "customers", "predicted LTV", "LTV/CAC", "status"],
            &cells,
        ));
    }
    Ok(section("forecast", title, join(body)))
}

/// Builds the page of a run date from its published tables.
pub async fn build(output: &Root, run_date: NaiveDate, config: &Config) -> Result<String> {
    let data = Published::open(output, run_date).await?;
    // What the SQL stage noticed and did not stop for (the manifest's warnings), said once there.
    let warnings = Manifest::read(output, run_date)
        .await?
        .map(|m| m.warnings)
        .unwrap_or_default();
    let (scorecard, month) = scorecard(&data, config, &warnings).await?;
    let parts = [
        scorecard,
        regions(&data, config).await?,
        alerts(&data, config).await?,
        cohorts(&data).await?,
        rfm(&data).await?,
        clusters(&data).await?,
        churn(&data).await?,
        model_accuracy(&data, config).await?,
        channels(&data).await?,
        referrals(&data).await?,
        forecast(&data).await?,
    ];
    let nav = [
        ("scorecard", "KPI scorecard"),
        ("regions", "Regions"),
        ("alerts", "Alerts"),
        ("cohorts", "Cohorts"),
        ("rfm", "RFM segments"),
        ("clusters", "Clusters"),
        ("churn", "Churn model"),
        ("accuracy", "Model accuracy"),
        ("channels", "Channel ROI"),
        ("referrals", "Referrals"),
        ("forecast", "Forecast"),
    ];
    let intro = html! {
        p.note {
            "Run date " (run_date)
            @if let Some(m) = month { "; latest complete month " (month_label(&m)) }
            ". Every figure is read from the tables published for this run date under the output folder; nothing on this page is fetched when it is opened."
        }
    };
    Ok(page::frame(
        &format!("Growth report, {run_date}"),
        &nav,
        html! { (intro) (join(parts.into())) },
    ))
}

/// Builds and publishes the report of a run date as a stage (atomic, recorded in the manifest).
pub async fn run(output: &Root, run_date: NaiveDate, config: &Config) -> Result<StageReport> {
    let stage = StageDraft::begin(JOB, output, run_date);
    stage
        .run(async |draft: &Draft| {
            let html = build(output, run_date, config).await?;
            let bytes = html.len();
            let parts = report_parts(run_date);
            let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
            let file = draft.put(&parts, html.into_bytes()).await?;
            tracing::info!(bytes, "report built");
            Ok((vec![], vec![file], json!({ "bytes": bytes })))
        })
        .await
}
