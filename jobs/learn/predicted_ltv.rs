//! `predicted_ltv`: the scorecard's LTV/CAC before a cohort's year is over.
//!
//! `kpi_monthly.ltv_to_cac` is observed: in month M it is the first-year gross margin (revenue
//! times the market's `margin_rate`) of the cohort acquired in M - 12 over that cohort's
//! acquisition spend, so it speaks of customers acquired a year ago. This table gives every cohort whose first year is not over (acquired in the run
//! date's month or the 11 before) the same ratio with the rest of the year predicted: revenue
//! to date plus, per customer, BG/NBD's expected purchase days from the run date to the end of
//! the cohort's month 11 times Gamma-Gamma's expected spend, undiscounted like the observed one.
//! Keyed like `kpi_monthly` (`month_start` = the acquisition month, `market`, `channel`, with
//! the same `(all)` roll-ups), so the two join row for row.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::NaiveDate;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Date32Array, Float64Array, Int64Array, RecordBatch, StringArray,
};
use datafusion::arrow::datatypes::{DataType, Date32Type, Float64Type, SchemaRef};
use futures::TryStreamExt;

use crate::config::{DEFAULT_MARKET_KEY, Threshold};
use crate::error::{Error, Result};
use crate::learn::bg_nbd::{BgNbd, History, SeriesMemo};
use crate::learn::forecast::{self, ALL_MARKETS, KPI_TABLE, column_as, month_index, month_start};
use crate::output::described;
use crate::output::published;
use crate::storage::Root;

/// The published table.
pub(crate) const TABLE: &str = "predicted_ltv";
/// The KPI whose thresholds the status uses.
pub const KPI: &str = "ltv_to_cac";

/// (acquisition month index, market, channel).
type Key = (i32, String, String);

/// One cohort cell's sums.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Sums {
    customers: f64,
    revenue_to_date: f64,
    predicted_first_year: f64,
    /// predicted_first_year times the market's margin rate, summed cell by cell.
    predicted_first_year_margin: f64,
}

/// The cohorts of the year before the run date, summed customer by customer.
#[derive(Clone, Debug)]
pub struct Cohorts {
    run_date: NaiveDate,
    /// The first acquisition month whose first year is not over.
    first_month: i32,
    unit_days: f64,
    cells: BTreeMap<Key, Sums>,
}

impl Cohorts {
    pub fn new(run_date: NaiveDate, unit_days: f64) -> Self {
        Cohorts {
            run_date,
            first_month: month_index(run_date) - 11,
            unit_days,
            cells: BTreeMap::new(),
        }
    }

    /// Adds a customer first buying on `first_day` (days since 1970-01-01), with history `h`
    /// in the model's unit, `revenue` to date and expected spend per purchase day `spend`.
    #[allow(clippy::too_many_arguments)]
    pub fn add(
        &mut self,
        market: &str,
        channel: &str,
        first_day: i32,
        model: &BgNbd,
        h: History,
        revenue: f64,
        spend: f64,
    ) {
        if let Some(first_year) = self.first_year(first_day, model, h, revenue, spend, &SeriesMemo::default())
        {
            self.add_first_year(market, channel, revenue, first_year);
        }
    }

    /// A customer's cohort month and predicted first-year revenue, None when the cohort's first
    /// year is over: the arithmetic of [`Cohorts::add`] without the sums, so customers can be
    /// computed on any core and added in their order (the same sums, bit for bit).
    pub(crate) fn first_year(
        &self,
        first_day: i32,
        model: &BgNbd,
        h: History,
        revenue: f64,
        spend: f64,
        memo: &SeriesMemo,
    ) -> Option<(i32, f64)> {
        let first = forecast::epoch_day(first_day)?;
        let cohort = month_index(first);
        if cohort < self.first_month {
            return None;
        }
        // The first year ends with the cohort's month 11, as kpi_monthly's ltv_12m_usd.
        let year_end = month_start(cohort + 12) - chrono::Days::new(1);
        let remaining = (year_end - self.run_date).num_days() as f64 / self.unit_days;
        Some((
            cohort,
            revenue + model.expected_purchases_at(h, &[remaining], memo)[0] * spend,
        ))
    }

    /// Adds one customer's [`Cohorts::first_year`] to their cell.
    pub(crate) fn add_first_year(
        &mut self,
        market: &str,
        channel: &str,
        revenue: f64,
        (cohort, predicted): (i32, f64),
    ) {
        let sums = self
            .cells
            .entry((cohort, market.to_string(), channel.to_string()))
            .or_default();
        sums.customers += 1.0;
        sums.revenue_to_date += revenue;
        sums.predicted_first_year += predicted;
    }

    /// The cells with their `(all)` roll-ups over markets, channels and both, with each cell's
    /// gross margin at its market's rate (`margins`, `default` for markets not named).
    fn rolled_up(&self, margins: &BTreeMap<String, f64>) -> BTreeMap<Key, Sums> {
        let mut all = BTreeMap::new();
        for ((month, market, channel), sums) in &self.cells {
            let rate = margins
                .get(market)
                .or_else(|| margins.get(DEFAULT_MARKET_KEY))
                .copied()
                .unwrap_or(1.0);
            for key in [
                (*month, market.clone(), channel.clone()),
                (*month, market.clone(), ALL_MARKETS.to_string()),
                (*month, ALL_MARKETS.to_string(), channel.clone()),
                (*month, ALL_MARKETS.to_string(), ALL_MARKETS.to_string()),
            ] {
                let total: &mut Sums = all.entry(key).or_default();
                total.customers += sums.customers;
                total.revenue_to_date += sums.revenue_to_date;
                total.predicted_first_year += sums.predicted_first_year;
                total.predicted_first_year_margin += sums.predicted_first_year * rate;
            }
        }
        all
    }
}

/// The published schema.
pub fn schema() -> SchemaRef {
    let f = described::field;
    described::schema(
        "Predicted first-year LTV and LTV/CAC of every cohort whose first year is not over \
         (acquired in the run date's month or the 11 before), keyed like kpi_monthly.",
        vec![
            f(
                "month_start",
                DataType::Date32,
                false,
                "The acquisition month's first day.",
            ),
            f("market", DataType::Utf8, false, "The market, or (all)."),
            f(
                "channel",
                DataType::Utf8,
                false,
                "The acquisition channel, or (all).",
            ),
            f(
                "new_customers",
                DataType::Int64,
                false,
                "Customers acquired in the month (kpi_monthly's).",
            ),
            f(
                "revenue_to_date_usd",
                DataType::Float64,
                false,
                "The cohort's net revenue from acquisition to the run date, USD.",
            ),
            f(
                "predicted_first_year_revenue_usd",
                DataType::Float64,
                false,
                "Revenue to date plus the expected revenue to the end of the cohort's month 11, USD.",
            ),
            f(
                "predicted_ltv_12m_usd",
                DataType::Float64,
                false,
                "Predicted first-year revenue per customer, USD (against kpi_monthly.ltv_12m_usd).",
            ),
            f(
                "predicted_ltv_12m_margin_usd",
                DataType::Float64,
                false,
                "The same times each market's margin_rate, USD (against ltv_12m_margin_usd).",
            ),
            f(
                "marketing_spend_usd",
                DataType::Float64,
                true,
                "The month's acquisition spend from kpi_monthly, USD; null without marketing_spend.",
            ),
            f(
                "predicted_ltv_to_cac",
                DataType::Float64,
                true,
                "Predicted first-year gross margin over the spend, as kpi_monthly.ltv_to_cac; null \
                 without spend.",
            ),
            f(
                "predicted_ltv_to_cac_status",
                DataType::Utf8,
                true,
                "green, yellow or red against the ltv_to_cac thresholds.",
            ),
        ],
    )
}

/// The table's rows, in key order, with each cell's acquisition spend from the run date's
/// published `kpi_monthly` (None: not published, every spend and ratio null). LTV/CAC is on
/// gross margin (`margins`: the config's `margin_rate`), as `kpi_monthly.ltv_to_cac`.
pub async fn batch(
    cohorts: &Cohorts,
    output: &Root,
    threshold: Option<&Threshold>,
    margins: &BTreeMap<String, f64>,
) -> Result<RecordBatch> {
    let spend = acquisition_spend(output, cohorts.run_date, cohorts.first_month).await?;
    let rows = cohorts.rolled_up(margins);
    let day = |month: i32| (month_start(month) - NaiveDate::default()).num_days() as i32;
    let spends: Vec<Option<f64>> = rows.keys().map(|key| spend.get(key).copied().flatten()).collect();
    let ratios: Vec<Option<f64>> = rows
        .values()
        .zip(&spends)
        .map(|(sums, spend)| {
            spend
                .filter(|s| *s > 0.0)
                .map(|s| sums.predicted_first_year_margin / s)
        })
        .collect();
    let statuses: Vec<Option<&str>> = ratios
        .iter()
        .map(|ratio| ratio.and_then(|r| threshold.map(|t| t.status(r))))
        .collect();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Date32Array::from_iter_values(rows.keys().map(|(m, ..)| day(*m)))),
        Arc::new(StringArray::from_iter_values(
            rows.keys().map(|(_, market, _)| market),
        )),
        Arc::new(StringArray::from_iter_values(
            rows.keys().map(|(_, _, channel)| channel),
        )),
        Arc::new(Int64Array::from_iter_values(
            rows.values().map(|s| s.customers as i64),
        )),
        Arc::new(Float64Array::from_iter_values(
            rows.values().map(|s| s.revenue_to_date),
        )),
        Arc::new(Float64Array::from_iter_values(
            rows.values().map(|s| s.predicted_first_year),
        )),
        Arc::new(Float64Array::from_iter_values(
            rows.values().map(|s| s.predicted_first_year / s.customers),
        )),
        Arc::new(Float64Array::from_iter_values(
            rows.values().map(|s| s.predicted_first_year_margin / s.customers),
        )),
        Arc::new(Float64Array::from(spends)),
        Arc::new(Float64Array::from(ratios)),
        Arc::new(StringArray::from(statuses)),
    ];
    RecordBatch::try_new(schema(), columns).map_err(Error::arrow(format!("building {TABLE}")))
}

/// `kpi_monthly.marketing_spend_usd` per (month, market, channel) from `first_month` on,
/// roll-ups over markets included but not those of a single region; empty when `kpi_monthly`
/// is not published for the run date.
async fn acquisition_spend(
    output: &Root,
    run_date: NaiveDate,
    first_month: i32,
) -> Result<BTreeMap<Key, Option<f64>>> {
    let mut spend = BTreeMap::new();
    if published::require(output, KPI_TABLE, run_date).await.is_err() {
        tracing::warn!("no acquisition spend for {TABLE}: {KPI_TABLE} is not published for the run date");
        return Ok(spend);
    }
    let mut stream = published::read(output, KPI_TABLE, run_date).await?;
    while let Some(batch) = stream
        .try_next()
        .await
        .map_err(Error::engine(format!("reading {KPI_TABLE}")))?
    {
        let months = column_as(&batch, KPI_TABLE, "month_start", &DataType::Date32)?;
        let markets = column_as(&batch, KPI_TABLE, "market", &DataType::Utf8)?;
        let regions = column_as(&batch, KPI_TABLE, "region", &DataType::Utf8)?;
        let channels = column_as(&batch, KPI_TABLE, "channel", &DataType::Utf8)?;
        let spent = column_as(&batch, KPI_TABLE, "marketing_spend_usd", &DataType::Float64)?;
        let (months, spent) = (
            months.as_primitive::<Date32Type>(),
            spent.as_primitive::<Float64Type>(),
        );
        for row in 0..batch.num_rows() {
            let month = forecast::month_of_day(months.value(row));
            let market = markets.as_string::<i32>().value(row);
            let one_region = market == ALL_MARKETS && regions.as_string::<i32>().value(row) != ALL_MARKETS;
            if month >= first_month && !one_region {
                spend.insert(
                    (
                        month,
                        market.to_string(),
                        channels.as_string::<i32>().value(row).to_string(),
                    ),
                    (!spent.is_null(row)).then(|| spent.value(row)),
                );
            }
        }
    }
    Ok(spend)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::learn::bg_nbd::tests::CDNOW;

    #[test]
    fn a_cohorts_year_is_what_it_spent_plus_what_the_model_expects_until_its_month_11() {
        let run_date: NaiveDate = "2026-06-30".parse().unwrap();
        let mut cohorts = Cohorts::new(run_date, 7.0);
        let day = |text: &str| (text.parse::<NaiveDate>().unwrap() - NaiveDate::default()).num_days() as i32;
        let h = History {
            x: 1,
            t_x: 2.0,
            t: 10.0,
        };
        // Acquired in March 2026: its year runs to the end of February 2027, 243 days on.
        cohorts.add("US", "search", day("2026-03-05"), &CDNOW, h, 50.0, 20.0);
        cohorts.add("US", "social", day("2026-03-20"), &CDNOW, h, 30.0, 20.0);
        // Acquired in June 2025: its year ended with May 2026, observed in kpi_monthly.
        cohorts.add("US", "search", day("2025-06-10"), &CDNOW, h, 99.0, 20.0);
        let margins = [("US".to_string(), 0.5), (DEFAULT_MARKET_KEY.to_string(), 0.3)].into();
        let rows = cohorts.rolled_up(&margins);
        let march = month_index("2026-03-01".parse().unwrap());
        let cell = |market: &str, channel: &str| rows[&(march, market.to_string(), channel.to_string())];
        let ahead = CDNOW.expected_purchases(h, 243.0 / 7.0) * 20.0;
        assert!((cell("US", "search").predicted_first_year - (50.0 + ahead)).abs() < 1e-9);
        let all = cell(ALL_MARKETS, ALL_MARKETS);
        assert_eq!((all.customers, all.revenue_to_date), (2.0, 80.0));
        assert!((all.predicted_first_year - (80.0 + 2.0 * ahead)).abs() < 1e-9);
        assert!((all.predicted_first_year_margin - 0.5 * (80.0 + 2.0 * ahead)).abs() < 1e-9);
        assert_eq!(cell("US", ALL_MARKETS), all);
        assert_eq!(
            rows.len(),
            2 * 4 - 2,
            "two channels, their roll-ups, no June 2025"
        );
    }
}
