//! The growth forecast (`growth_forecast`): per market and calendar month for the months after
//! the run date's month, new customers, active customers, orders and revenue, each with an 80%
//! interval, and the same forecast made from an origin months back (the backtest) set beside
//! what happened.
//!
//! Two parts add up. Customers who have bought by the origin follow their BG/NBD and
//! Gamma-Gamma expectations ([`Existing`], summed customer by customer in the clv stage's
//! scoring pass). Customers not yet acquired arrive at the market's recent acquisition trend (a
//! log-linear fit of the last `trend_months` complete months of `kpi_monthly.new_customers`)
//! and then buy as the market's recent cohorts did in the same month of their life
//! (`cohort_retention`): retention, orders and revenue per cohort customer.
//!
//! Intervals: a new-customer count's comes from the trend's prediction interval (Student t, on
//! the log scale). Active customers, orders and revenue add four variances: the cohorts' part
//! scaled by the trend's relative error, the existing customers' part scaled by the BG/NBD's
//! relative error in the night's holdout check (at least [`MIN_MODEL_ERROR`]), Poisson noise
//! on the existing customers' counts, and the measure's own month-to-month variation that no
//! model here explains (a promotion, a shipping delay, the calendar beyond the season factors):
//! the residual spread of a log-linear fit to its season-adjusted recent months
//! ([`month_noise`]). The `(all)` rows add the markets' bounds (errors taken as moving
//! together), so they are wider than independent markets would give.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{Datelike, NaiveDate};
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Date32Array, Float64Array, Int32Array, RecordBatch, StringArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Date32Type, Float64Type, SchemaRef};
use futures::TryStreamExt;
use statrs::distribution::{ContinuousCDF, StudentsT};

use crate::error::{Error, Result};
use crate::learn::bg_nbd::{BgNbd, History, SeriesMemo};
use crate::learn::model_metrics::MetricRow;
use crate::output::described;
use crate::output::published;
use crate::storage::Root;

/// The table the forecast is published as.
pub(crate) const TABLE: &str = "growth_forecast";
/// The market of the roll-up rows, as in the marts.
pub(crate) const ALL_MARKETS: &str = "(all)";
/// The forecast measures, in the table's column order.
pub(crate) const MEASURES: [&str; 4] = ["new_customers", "active_customers", "orders", "revenue_usd"];
/// The least relative error the existing customers' part is given, however well the holdout
/// check went: one check is one draw of the model's error.
pub(crate) const MIN_MODEL_ERROR: f64 = 0.05;
/// The relative error assumed when the night has no holdout check (a history too short).
pub(crate) const UNCHECKED_MODEL_ERROR: f64 = 0.25;
/// The interval's coverage.
pub(crate) const COVERAGE: f64 = 0.8;
/// The marts the forecast reads, besides `clv_summary`.
pub(crate) const KPI_TABLE: &str = "kpi_monthly";
pub(crate) const COHORT_TABLE: &str = "cohort_retention";

/// A calendar month as year * 12 + month - 1, as the marts' month indexes.
pub(crate) fn month_index(day: NaiveDate) -> i32 {
    day.year() * 12 + day.month0() as i32
}

/// A day number (days since 1970-01-01, as Arrow's Date32 and `clv_summary`) as a date.
pub(crate) fn epoch_day(day: i32) -> Option<NaiveDate> {
    NaiveDate::default().checked_add_signed(chrono::TimeDelta::days(i64::from(day)))
}

/// The month index of a day number.
pub(crate) fn month_of_day(day: i32) -> i32 {
    epoch_day(day).map_or(i32::MIN, month_index)
}

/// The first day of a month index.
pub fn month_start(index: i32) -> NaiveDate {
    NaiveDate::from_ymd_opt(index.div_euclid(12), index.rem_euclid(12) as u32 + 1, 1).expect("a valid month")
}

/// The last day of a month index.
fn month_end(index: i32) -> NaiveDate {
    month_start(index + 1).pred_opt().expect("a valid day")
}

/// Where a forecast starts and which months it covers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Horizon {
    /// The last day whose data the forecast sees (the run date, or the backtest's origin).
    pub origin: NaiveDate,
    /// The month index of the first forecast month: the month after the origin's.
    pub first_month: i32,
    pub months: usize,
}

impl Horizon {
    pub fn new(origin: NaiveDate, months: usize) -> Self {
        Horizon {
            origin,
            first_month: month_index(origin) + 1,
            months,
        }
    }

    /// The last month complete by the end of the origin: the origin's own when it is its last
    /// day, else the one before.
    pub(crate) fn last_complete_month(&self) -> i32 {
        let own = month_index(self.origin);
        if month_end(own) == self.origin {
            own
        } else {
            own - 1
        }
    }

    /// Month `k` (0 = the first forecast month) as (start, end] in days after the end of the
    /// origin. The days between the origin and the end of its month belong to no forecast
    /// month.
    pub(crate) fn window_days(&self, k: usize) -> (f64, f64) {
        let month = self.first_month + k as i32;
        let days = |day: NaiveDate| (day - self.origin).num_days() as f64;
        (days(month_end(month - 1)), days(month_end(month)))
    }
}

/// What the customers bought by the origin are expected to do in each forecast month, summed.
#[derive(Clone, Debug, PartialEq)]
pub struct Expected {
    pub purchase_days: Vec<f64>,
    /// Expected number of customers with a purchase in the month.
    pub active: Vec<f64>,
    pub revenue: Vec<f64>,
}

impl Expected {
    fn zeros(months: usize) -> Self {
        Expected {
            purchase_days: vec![0.0; months],
            active: vec![0.0; months],
            revenue: vec![0.0; months],
        }
    }
}

/// The existing customers' part of a forecast, per market.
#[derive(Clone, Debug)]
pub struct Existing {
    /// The month windows in the model's time unit.
    windows: Vec<(f64, f64)>,
    pub markets: BTreeMap<String, Expected>,
}

impl Existing {
    pub fn new(horizon: &Horizon, unit_days: f64) -> Self {
        let windows = (0..horizon.months)
            .map(|k| {
                let (start, end) = horizon.window_days(k);
                (start / unit_days, end / unit_days)
            })
            .collect();
        Existing {
            windows,
            markets: BTreeMap::new(),
        }
    }

    /// Adds one customer with history `h` (in the model's unit) as of the origin and expected
    /// spend per purchase day `spend` ([`Existing::windows_of`], then [`Existing::add_windows`]).
    pub fn add(&mut self, market: &str, model: &BgNbd, h: History, spend: f64) {
        let windows = self.windows_of(model, h, spend, &SeriesMemo::default());
        self.add_windows(market, &windows);
    }

    /// What one customer adds to each month window, as [purchase days, revenue, active]: the
    /// arithmetic apart from the sums, so customers can be computed on any core and added in
    /// their order (the same sums, bit for bit).
    ///
    /// Under BG/NBD a customer drops out only right after a purchase, so one alive at the start
    /// of a window buys in it with probability 1 - exp(-lambda * length), and is still alive
    /// at time s with probability exp(-lambda p s). Given the history and being alive at the
    /// origin, lambda ~ Gamma(r + x, alpha + T) and p ~ Beta(a, b + x); with p at its posterior
    /// mean, the chance of a purchase in (s, e] is
    /// P(alive) [(A / (A + p s))^(r+x) - (A / (A + p s + e - s))^(r+x)], A = alpha + T.
    pub(crate) fn windows_of(
        &self,
        model: &BgNbd,
        h: History,
        spend: f64,
        memo: &SeriesMemo,
    ) -> Vec<[f64; 3]> {
        let alive = model.p_alive(h);
        let x = f64::from(h.x);
        let (rate_scale, shape) = (model.alpha + h.t, model.r + x);
        let p = model.a / (model.a + model.b + x);
        let quiet = |time: f64| (rate_scale / (rate_scale + time)).powf(shape);
        // The first window's start, then every window's end.
        let horizons: Vec<f64> = self
            .windows
            .first()
            .map(|w| w.0)
            .into_iter()
            .chain(self.windows.iter().map(|w| w.1))
            .collect();
        let cumulatives = model.expected_purchases_at(h, &horizons, memo);
        let mut before = cumulatives.first().copied().unwrap_or(0.0);
        self.windows
            .iter()
            .zip(cumulatives.iter().skip(1))
            .map(|(&(start, end), &cumulative)| {
                let days = cumulative - before;
                before = cumulative;
                [
                    days,
                    days * spend,
                    alive * (quiet(p * start) - quiet(p * start + end - start)),
                ]
            })
            .collect()
    }

    /// Adds one customer's [`Existing::windows_of`] to their market.
    pub(crate) fn add_windows(&mut self, market: &str, windows: &[[f64; 3]]) {
        let months = self.windows.len();
        let expected = match self.markets.get_mut(market) {
            Some(expected) => expected,
            None => self
                .markets
                .entry(market.to_string())
                .or_insert(Expected::zeros(months)),
        };
        for (k, [days, revenue, active]) in windows.iter().enumerate() {
            expected.purchase_days[k] += days;
            expected.revenue[k] += revenue;
            expected.active[k] += active;
        }
    }
}

/// One market's complete months from `kpi_monthly` and its cohorts' cells from
/// `cohort_retention` (both on their channel `(all)` rows).
#[derive(Clone, Debug, Default)]
pub struct MarketHistory {
    /// Month index to [new customers, active customers, orders, revenue].
    pub months: BTreeMap<i32, [f64; 4]>,
    pub cohorts: Vec<CohortCell>,
}

/// One cell of a market's cohort triangle.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CohortCell {
    pub cohort: i32,
    pub age: i32,
    pub size: f64,
    /// Active customers, orders and revenue of the cohort in that month of its life.
    pub values: [f64; 3],
}

/// The log-linear acquisition trend: ln(new + 1/2) = intercept + slope * month.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Trend {
    intercept: f64,
    slope: f64,
    residual_sd: f64,
    points: usize,
    mean_month: f64,
    month_spread: f64,
    quantile: f64,
}

/// A forecast value with its interval.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Interval {
    pub value: f64,
    pub lower: f64,
    pub upper: f64,
}

impl Interval {
    fn scaled(self, by: f64) -> Interval {
        Interval {
            value: self.value * by,
            lower: self.lower * by,
            upper: self.upper * by,
        }
    }
}

/// Month-of-year factors of demand: what BG/NBD (a constant buying rate) and a log-linear
/// trend cannot see, such as the November and December peaks.
///
/// Measured on every market's new customers together, a flow that the customer base's own
/// growth does not bend (active customers, orders and revenue climb as the base fills up, and
/// a log-linear fit of them reads that climb as season), and applied to every measure: the
/// same calendar brings first and repeat purchases. Taken from the last [`SEASON_MONTHS`]
/// complete months when there are at least [`MIN_SEASON_MONTHS`] (each calendar month seen
/// once): the mean residual of each calendar month from a log-linear fit of the whole span,
/// centred so the factors' geometric mean is 1. With less history every factor is 1.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Season {
    /// Per calendar month, January first.
    factors: [f64; 12],
}

/// The most months the season is measured on.
pub(crate) const SEASON_MONTHS: i32 = 36;
/// The fewest: a year and a month, so each calendar month is seen and the trend has a slope.
pub(crate) const MIN_SEASON_MONTHS: usize = 13;

impl Season {
    pub fn of(history: &BTreeMap<String, MarketHistory>, last: i32) -> Season {
        let mut totals: BTreeMap<i32, f64> = BTreeMap::new();
        for past in history.values() {
            for (month, values) in past.months.range(last - SEASON_MONTHS + 1..=last) {
                *totals.entry(*month).or_default() += values[0];
            }
        }
        let points: Vec<(i32, f64)> = totals.into_iter().collect();
        let factors = if points.len() >= MIN_SEASON_MONTHS {
            month_of_year_factors(&points)
        } else {
            [1.0; 12]
        };
        Season { factors }
    }

    /// The factor of a month index.
    pub(crate) fn factor(&self, month: i32) -> f64 {
        self.factors[month.rem_euclid(12) as usize]
    }
}

/// Multiplicative month-of-year factors of a monthly series (at least a year of months):
/// exp of each calendar month's mean residual from the series' log-linear trend, centred.
pub(crate) fn month_of_year_factors(points: &[(i32, f64)]) -> [f64; 12] {
    let Some(trend) = Trend::fit(points) else {
        return [1.0; 12];
    };
    let (mut sums, mut counts) = ([0.0; 12], [0usize; 12]);
    for (month, y) in points {
        let j = month.rem_euclid(12) as usize;
        sums[j] += (y + 0.5).ln() - (trend.intercept + trend.slope * f64::from(*month));
        counts[j] += 1;
    }
    if counts.contains(&0) {
        return [1.0; 12];
    }
    let means: Vec<f64> = sums.iter().zip(counts).map(|(s, c)| s / c as f64).collect();
    let centre = means.iter().sum::<f64>() / 12.0;
    std::array::from_fn(|j| (means[j] - centre).exp())
}

impl Trend {
    /// Fits the trend on (month index, new customers); none under three months.
    pub fn fit(points: &[(i32, f64)]) -> Option<Trend> {
        let n = points.len();
        if n < 3 {
            return None;
        }
        let xs: Vec<f64> = points.iter().map(|(m, _)| f64::from(*m)).collect();
        let ys: Vec<f64> = points.iter().map(|(_, y)| (y + 0.5).ln()).collect();
        let mean_x = xs.iter().sum::<f64>() / n as f64;
        let mean_y = ys.iter().sum::<f64>() / n as f64;
        let sxx: f64 = xs.iter().map(|x| (x - mean_x).powi(2)).sum();
        let sxy: f64 = xs.iter().zip(&ys).map(|(x, y)| (x - mean_x) * (y - mean_y)).sum();
        let slope = sxy / sxx;
        let intercept = mean_y - slope * mean_x;
        let residual: f64 = xs
            .iter()
            .zip(&ys)
            .map(|(x, y)| (y - intercept - slope * x).powi(2))
            .sum();
        let freedom = (n - 2) as f64;
        let quantile = StudentsT::new(0.0, 1.0, freedom)
            .map(|t| t.inverse_cdf(0.5 + COVERAGE / 2.0))
            .ok()?;
        Some(Trend {
            intercept,
            slope,
            residual_sd: (residual / freedom).sqrt(),
            points: n,
            mean_month: mean_x,
            month_spread: sxx,
            quantile,
        })
    }

    /// New customers in a month: the median, its interval, and the log-scale standard error.
    pub fn predict(&self, month: i32) -> (Interval, f64) {
        let x = f64::from(month);
        let centre = self.intercept + self.slope * x;
        let error = self.residual_sd
            * (1.0 + 1.0 / self.points as f64 + (x - self.mean_month).powi(2) / self.month_spread).sqrt();
        let back = |log: f64| (log.exp() - 0.5).max(0.0);
        (
            Interval {
                value: back(centre),
                lower: back(centre - self.quantile * error),
                upper: back(centre + self.quantile * error),
            },
            error,
        )
    }
}

/// A measure's month-to-month variation that no model here explains, as a relative error: the
/// log-scale residual standard deviation of a log-linear fit to its season-adjusted values in
/// `recent` (`column` of [`MarketHistory`]'s months); 0 with fewer than three months.
pub(crate) fn month_noise(recent: &[(i32, [f64; 4])], season: &Season, column: usize) -> f64 {
    let adjusted: Vec<(i32, f64)> = recent
        .iter()
        .map(|(month, values)| (*month, values[column] / season.factor(*month)))
        .collect();
    Trend::fit(&adjusted).map_or(0.0, |trend| trend.residual_sd)
}

/// Per month of a cohort's life (0 = its acquisition month), its active customers, orders and
/// revenue per acquired customer, from the latest `cohorts` cohorts whose month is complete by
/// `last_complete`; an age no such cohort has reached repeats the last age that has one.
pub(crate) fn cohort_curves(
    cells: &[CohortCell],
    last_complete: i32,
    cohorts: usize,
    ages: usize,
) -> Option<Vec<[f64; 3]>> {
    let mut curves: Vec<[f64; 3]> = Vec::with_capacity(ages);
    for age in 0..ages as i32 {
        let mut reached: Vec<&CohortCell> = cells
            .iter()
            .filter(|c| c.age == age && c.cohort + age <= last_complete && c.size > 0.0)
            .collect();
        reached.sort_by_key(|c| std::cmp::Reverse(c.cohort));
        reached.truncate(cohorts);
        let size: f64 = reached.iter().map(|c| c.size).sum();
        if size > 0.0 {
            let mut per_customer = [0.0; 3];
            for (j, value) in per_customer.iter_mut().enumerate() {
                *value = reached.iter().map(|c| c.values[j]).sum::<f64>() / size;
            }
            curves.push(per_customer);
        } else {
            curves.push(*curves.last()?);
        }
    }
    Some(curves)
}

/// One row of `growth_forecast`.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub kind: &'static str,
    pub origin: NaiveDate,
    pub market: String,
    pub month: i32,
    pub months_ahead: i32,
    /// In [`MEASURES`] order.
    pub values: [Interval; 4],
    /// What happened, on backtest rows.
    pub actual: Option<[f64; 4]>,
}

/// What a forecast is made from besides the existing customers.
pub struct Settings {
    pub trend_months: usize,
    /// The existing customers' relative error (the holdout check's, at least
    /// [`MIN_MODEL_ERROR`]).
    pub model_error: f64,
}

/// Forecasts every market with at least three complete months before the origin, and their
/// `(all)` roll-up. `actuals` (the backtest's) fills each row's `actual` from the markets'
/// histories.
pub fn forecast(
    kind: &'static str,
    horizon: &Horizon,
    existing: &Existing,
    history: &BTreeMap<String, MarketHistory>,
    settings: &Settings,
    actuals: bool,
) -> Vec<Row> {
    let last = horizon.last_complete_month();
    let window = (last - settings.trend_months as i32 + 1)..=last;
    let season = Season::of(history, last);
    let mut rows = Vec::new();
    let mut totals: Vec<Row> = Vec::new();
    for (market, past) in history {
        let recent: Vec<(i32, [f64; 4])> = past.months.range(window.clone()).map(|(m, v)| (*m, *v)).collect();
        let adjusted: Vec<(i32, f64)> = recent
            .iter()
            .map(|(m, v)| (*m, v[0] / season.factor(*m)))
            .collect();
        let Some(trend) = Trend::fit(&adjusted) else {
            continue;
        };
        let [_, active, orders, revenue] = recent.iter().fold([0.0; 4], |mut sums, (_, v)| {
            for (s, v) in sums.iter_mut().zip(v) {
                *s += v;
            }
            sums
        });
        let order_value = if orders > 0.0 { revenue / orders } else { 0.0 };
        // Orders follow active customers at the market's recent orders per active customer.
        let orders_per_active = if active > 0.0 { orders / active } else { 0.0 };
        let [_, active_noise, orders_noise, revenue_noise] =
            [0, 1, 2, 3].map(|column| month_noise(&recent, &season, column));
        let curves = cohort_curves(&past.cohorts, last, settings.trend_months, horizon.months)
            .unwrap_or_else(|| vec![[0.0; 3]; horizon.months]);
        let new: Vec<(Interval, f64)> = (0..horizon.months)
            .map(|k| {
                let month = horizon.first_month + k as i32;
                let (arrivals, error) = trend.predict(month);
                (arrivals.scaled(season.factor(month)), error)
            })
            .collect();
        let zeros = Expected::zeros(horizon.months);
        let own = existing.markets.get(market).unwrap_or(&zeros);
        for k in 0..horizon.months {
            let month = horizon.first_month + k as i32;
            // Active customers and revenue (the cohort curves' columns 0 and 2): the cohorts
            // acquired in forecast months 0..=k, in month k, with their error, ...
            let [mut cohort_part, mut cohort_error] = [[0.0; 2]; 2];
            for (j, (arrivals, log_error)) in new.iter().enumerate().take(k + 1) {
                // A cohort's own month follows its arrivals, already seasonal; later ones, the season.
                let season = if j == k { 1.0 } else { season.factor(month) };
                for (m, column) in [0, 2].into_iter().enumerate() {
                    let part = arrivals.value * curves[k - j][column] * season;
                    cohort_part[m] += part;
                    cohort_error[m] += part * log_error;
                }
            }
            // ... and the customers bought by the origin, with Poisson noise on top of the
            // model's error: a count varies by its square root, revenue by the order value times.
            let existing_part = [own.active[k], own.revenue[k]].map(|v| v * season.factor(month));
            let noise = [existing_part[0], existing_part[1] * order_value];
            // The models' variance of active customers and revenue, then each measure's own
            // month-to-month variation on top; orders follow active customers.
            let [active, revenue] = [0, 1].map(|m| {
                let value = existing_part[m] + cohort_part[m];
                let variance =
                    (settings.model_error * existing_part[m]).powi(2) + noise[m] + cohort_error[m].powi(2);
                (value, variance)
            });
            let interval = |(value, variance): (f64, f64), month_noise: f64| {
                let spread = (variance + (month_noise * value).powi(2)).sqrt() * trend.quantile;
                Interval {
                    value,
                    lower: (value - spread).max(0.0),
                    upper: value + spread,
                }
            };
            let orders = (active.0 * orders_per_active, active.1 * orders_per_active.powi(2));
            let values = [
                new[k].0,
                interval(active, active_noise),
                interval(orders, orders_noise),
                interval(revenue, revenue_noise),
            ];
            let actual = actuals.then(|| past.months.get(&month).copied().unwrap_or([0.0; 4]));
            let row = Row {
                kind,
                origin: horizon.origin,
                market: market.clone(),
                month,
                months_ahead: k as i32 + 1,
                values,
                actual,
            };
            match totals.get_mut(k) {
                Some(total) => {
                    for (sum, v) in total.values.iter_mut().zip(&row.values) {
                        sum.value += v.value;
                        sum.lower += v.lower;
                        sum.upper += v.upper;
                    }
                    if let (Some(sum), Some(v)) = (total.actual.as_mut(), row.actual) {
                        for (s, v) in sum.iter_mut().zip(v) {
                            *s += v;
                        }
                    }
                }
                None => totals.push(Row {
                    market: ALL_MARKETS.into(),
                    ..row.clone()
                }),
            }
            rows.push(row);
        }
    }
    totals.extend(rows);
    totals
}

/// The backtest's error per market and measure: mean absolute percentage error over the
/// months with something to compare, and the share of months whose interval held the truth.
pub(crate) fn backtest_metrics(job: &str, rows: &[Row]) -> Vec<MetricRow> {
    let mut by_market: BTreeMap<&str, Vec<&Row>> = BTreeMap::new();
    for row in rows.iter().filter(|r| r.actual.is_some()) {
        by_market.entry(&row.market).or_default().push(row);
    }
    let mut metrics = Vec::new();
    for (market, rows) in by_market {
        for (m, measure) in MEASURES.iter().enumerate() {
            let (mut errors, mut covered, mut compared) = (0.0, 0usize, 0usize);
            for row in &rows {
                let actual = row.actual.expect("filtered")[m];
                let forecast = row.values[m];
                if actual > 0.0 {
                    errors += (forecast.value - actual).abs() / actual;
                    compared += 1;
                }
                covered += usize::from(forecast.lower <= actual && actual <= forecast.upper);
            }
            let mut push = |metric: String, value: f64| {
                let mut row = MetricRow::new(job, TABLE, "backtest", &metric, value).with_parameter(market);
                row.chosen = true;
                metrics.push(row);
            };
            if compared > 0 {
                push(format!("mape_{measure}"), errors / compared as f64);
            }
            push(format!("coverage_{measure}"), covered as f64 / rows.len() as f64);
        }
    }
    metrics
}

/// The published schema.
pub fn schema() -> SchemaRef {
    let mut fields = vec![
        described::field(
            "kind",
            DataType::Utf8,
            false,
            "forecast (the months after the run date's month) or backtest (the same forecast made \
             [clv] backtest_months earlier, against what happened).",
        ),
        described::field(
            "origin_date",
            DataType::Date32,
            false,
            "The date the forecast was made as of.",
        ),
        described::field(
            "market",
            DataType::Utf8,
            false,
            "The market, or (all) for every market together.",
        ),
        described::field(
            "month_start",
            DataType::Date32,
            false,
            "The forecast calendar month's first day.",
        ),
        described::field(
            "months_ahead",
            DataType::Int32,
            false,
            "Months from the origin's month to month_start (1 is the next month).",
        ),
    ];
    for measure in MEASURES {
        let defined = format!("{measure} as kpi_monthly defines it");
        fields.push(described::field(
            measure,
            DataType::Float64,
            false,
            &format!("Forecast {defined}."),
        ));
        fields.push(described::field(
            format!("{measure}_lower"),
            DataType::Float64,
            false,
            &format!("Lower bound of the 80% interval of {measure}."),
        ));
        fields.push(described::field(
            format!("{measure}_upper"),
            DataType::Float64,
            false,
            &format!("Upper bound of the 80% interval of {measure}."),
        ));
        fields.push(described::field(
            format!("{measure}_actual"),
            DataType::Float64,
            true,
            "What happened, from kpi_monthly (backtest rows; null on forecast rows).",
        ));
    }
    described::schema(
        "The 12-month growth forecast per market and for all markets: new customers, active \
         customers, orders and revenue with 80% intervals, and the backtest of the same forecast \
         made months earlier.",
        fields,
    )
}

/// The rows as one batch of [`schema`].
pub fn batch(rows: &[Row]) -> Result<RecordBatch> {
    let day = |d: NaiveDate| (d - NaiveDate::default()).num_days() as i32;
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.kind))),
        Arc::new(Date32Array::from_iter_values(rows.iter().map(|r| day(r.origin)))),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.market.as_str()),
        )),
        Arc::new(Date32Array::from_iter_values(
            rows.iter().map(|r| day(month_start(r.month))),
        )),
        Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.months_ahead))),
    ];
    for m in 0..MEASURES.len() {
        let floats = |f: fn(&Interval) -> f64| -> ArrayRef {
            Arc::new(Float64Array::from_iter_values(
                rows.iter().map(|r| f(&r.values[m])),
            ))
        };
        columns.push(floats(|i| i.value));
        columns.push(floats(|i| i.lower));
        columns.push(floats(|i| i.upper));
        columns.push(Arc::new(Float64Array::from_iter(
            rows.iter().map(|r| r.actual.map(|a| a[m])),
        )));
    }
    RecordBatch::try_new(schema(), columns).map_err(Error::arrow(format!("building {TABLE}")))
}

/// A column of a published table, cast to `to`.
pub(crate) fn column_as(batch: &RecordBatch, table: &str, name: &str, to: &DataType) -> Result<ArrayRef> {
    let column = batch.column_by_name(name).ok_or_else(|| Error::BadColumn {
        table: table.into(),
        column: name.into(),
        problem: "is missing".into(),
    })?;
    cast(column, to).map_err(Error::arrow(format!("reading {table}.{name}")))
}

/// Reads the markets' histories from the run date's published `kpi_monthly` and
/// `cohort_retention`; None (no forecast) when either is not published.
pub(crate) async fn read_history(
    output: &Root,
    run_date: NaiveDate,
) -> Result<Option<BTreeMap<String, MarketHistory>>> {
    for table in [KPI_TABLE, COHORT_TABLE] {
        if published::require(output, table, run_date).await.is_err() {
            tracing::warn!(
                table,
                "no growth forecast: the table is not published for the run date"
            );
            return Ok(None);
        }
    }
    let mut markets: BTreeMap<String, MarketHistory> = BTreeMap::new();
    for_each_row(
        output,
        run_date,
        KPI_TABLE,
        "channel",
        "month_start",
        |batch, keep, month| {
            let complete = column_as(batch, KPI_TABLE, "period_complete", &DataType::Boolean)?;
            let complete = complete.as_boolean();
            let values = MEASURES
                .iter()
                .map(|m| column_as(batch, KPI_TABLE, m, &DataType::Float64))
                .collect::<Result<Vec<_>>>()?;
            let markets_in = column_as(batch, KPI_TABLE, "market", &DataType::Utf8)?;
            for row in keep {
                if !complete.value(row) {
                    continue;
                }
                let value = |j: usize| {
                    let v = values[j].as_primitive::<Float64Type>();
                    if v.is_null(row) { 0.0 } else { v.value(row) }
                };
                markets
                    .entry(markets_in.as_string::<i32>().value(row).to_string())
                    .or_default()
                    .months
                    .insert(month[row], [value(0), value(1), value(2), value(3)]);
            }
            Ok(())
        },
    )
    .await?;
    for_each_row(
        output,
        run_date,
        COHORT_TABLE,
        "acquisition_channel",
        "cohort_month",
        |batch, keep, cohort| {
            let numbers = [
                "months_since",
                "cohort_size",
                "active_customers",
                "orders",
                "revenue_usd",
            ]
            .iter()
            .map(|m| column_as(batch, COHORT_TABLE, m, &DataType::Float64))
            .collect::<Result<Vec<_>>>()?;
            let markets_in = column_as(batch, COHORT_TABLE, "market", &DataType::Utf8)?;
            for row in keep {
                let value = |j: usize| numbers[j].as_primitive::<Float64Type>().value(row);
                markets
                    .entry(markets_in.as_string::<i32>().value(row).to_string())
                    .or_default()
                    .cohorts
                    .push(CohortCell {
                        cohort: cohort[row],
                        age: value(0) as i32,
                        size: value(1),
                        values: [value(2), value(3), value(4)],
                    });
            }
            Ok(())
        },
    )
    .await?;
    Ok(Some(markets))
}

/// Streams a published mart and hands each batch to `each` with its rows of channel `(all)`
/// and a single market, and the month column as month indexes.
async fn for_each_row(
    output: &Root,
    run_date: NaiveDate,
    table: &str,
    channel: &str,
    month: &str,
    mut each: impl FnMut(&RecordBatch, Vec<usize>, &[i32]) -> Result<()>,
) -> Result<()> {
    let mut stream = published::read(output, table, run_date).await?;
    while let Some(batch) = stream
        .try_next()
        .await
        .map_err(Error::engine(format!("reading {table}")))?
    {
        let channels = column_as(&batch, table, channel, &DataType::Utf8)?;
        let markets = column_as(&batch, table, "market", &DataType::Utf8)?;
        let (channels, markets) = (channels.as_string::<i32>(), markets.as_string::<i32>());
        let keep = (0..batch.num_rows())
            .filter(|&row| channels.value(row) == ALL_MARKETS && markets.value(row) != ALL_MARKETS)
            .collect();
        let days = column_as(&batch, table, month, &DataType::Date32)?;
        let months: Vec<i32> = days
            .as_primitive::<Date32Type>()
            .iter()
            .map(|d| d.map_or(i32::MIN, month_of_day))
            .collect();
        each(&batch, keep, &months)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::learn::bg_nbd::tests::CDNOW;

    fn day(text: &str) -> NaiveDate {
        text.parse().unwrap()
    }

    #[test]
    fn months_after_the_origin_are_calendar_months() {
        let mid = Horizon::new(day("2026-06-15"), 2);
        assert_eq!(month_start(mid.first_month), day("2026-07-01"));
        // The rest of June belongs to no month: July runs from day 15 to day 46 after the origin.
        assert_eq!(mid.window_days(0), (15.0, 46.0));
        assert_eq!(mid.window_days(1), (46.0, 77.0));
        assert_eq!(mid.last_complete_month(), month_index(day("2026-05-01")));
        let end = Horizon::new(day("2025-12-31"), 1);
        assert_eq!(end.window_days(0), (0.0, 31.0));
        assert_eq!(end.last_complete_month(), month_index(day("2025-12-01")));
        assert_eq!(month_start(month_index(day("2024-01-31")) - 1), day("2023-12-01"));
    }

    #[test]
    fn a_constant_trend_predicts_its_level_and_a_steady_one_its_growth() {
        let flat: Vec<(i32, f64)> = (0..12)
            .map(|m| (m, 100.0 + if m % 2 == 0 { 5.0 } else { -5.0 }))
            .collect();
        let trend = Trend::fit(&flat).unwrap();
        let (next, error) = trend.predict(12);
        assert!((next.value - 100.0).abs() < 3.0, "{next:?}");
        assert!(next.lower < 95.0 && next.upper > 105.0 && error > 0.0, "{next:?}");
        // 10% a month, exactly: the fit finds it and the interval collapses.
        let growing: Vec<(i32, f64)> = (0..6).map(|m| (m, 1000.0 * 1.1_f64.powi(m) - 0.5)).collect();
        let (in_a_year, _) = Trend::fit(&growing).unwrap().predict(17);
        let truth = 1000.0 * 1.1_f64.powi(17) - 0.5;
        assert!((in_a_year.value / truth - 1.0).abs() < 1e-9);
        assert!((in_a_year.upper - in_a_year.lower) < 1e-6 * truth);
        assert!(Trend::fit(&growing[..2]).is_none());
    }

    #[test]
    fn month_noise_is_the_spread_around_a_log_linear_path_after_the_season() {
        let season = Season { factors: [1.0; 12] };
        // Orders (column 2) growing 2% a month, alternately 10% over and under the path: a
        // log-scale residual of ln(1.1) and ln(0.9) each month.
        let recent: Vec<(i32, [f64; 4])> = (0..12)
            .map(|m| {
                let shock = if m % 2 == 0 { 1.1 } else { 0.9 };
                (m, [0.0, 0.0, 1000.0 * 1.02_f64.powi(m) * shock - 0.5, 0.0])
            })
            .collect();
        let noise = month_noise(&recent, &season, 2);
        // The fit absorbs a little of the alternation into its slope; the spread stays near
        // the shocks' own (a mean square of 0.0100 over 10 degrees of freedom).
        let shocks = (1.1_f64.ln().powi(2) + 0.9_f64.ln().powi(2)) / 2.0;
        assert!((noise - (shocks * 12.0 / 10.0).sqrt()).abs() < 0.01, "{noise}");
        // A steady path has none; too short a history, none measured.
        let steady: Vec<(i32, [f64; 4])> = (0..12)
            .map(|m| (m, [0.0, 0.0, 1000.0 * 1.02_f64.powi(m) - 0.5, 0.0]))
            .collect();
        assert!(month_noise(&steady, &season, 2) < 1e-9);
        assert_eq!(month_noise(&recent[..2], &season, 2), 0.0);
        // A calendar the season factors know is no noise.
        let mut factors = [1.0; 12];
        factors[11] = 1.5;
        let december: Vec<(i32, [f64; 4])> = (0..24)
            .map(|m| (m, [0.0, 0.0, if m % 12 == 11 { 1500.0 } else { 1000.0 }, 0.0]))
            .collect();
        assert!(month_noise(&december, &Season { factors }, 2) < 1e-3);
        assert!(month_noise(&december, &season, 2) > 0.1);
    }

    #[test]
    fn cohort_curves_use_the_latest_complete_cohorts_and_carry_the_last_age() {
        let cell = |cohort, age, size, active| CohortCell {
            cohort,
            age,
            size,
            values: [active, active * 2.0, active * 10.0],
        };
        let cells = [
            cell(10, 0, 100.0, 100.0),
            cell(11, 0, 300.0, 300.0),
            cell(12, 0, 50.0, 50.0), // not complete by month 11
            cell(10, 1, 100.0, 40.0),
            cell(11, 1, 300.0, 60.0), // month 12: not complete either
        ];
        let curves = cohort_curves(&cells, 11, 12, 3).unwrap();
        assert_eq!(curves[0], [1.0, 2.0, 10.0]);
        assert_eq!(curves[1], [0.4, 0.8, 4.0]);
        assert_eq!(curves[2], curves[1]);
        // Only the latest cohort when asked for one.
        assert_eq!(cohort_curves(&cells, 11, 1, 1).unwrap()[0], [1.0, 2.0, 10.0]);
        assert!(cohort_curves(&cells, 5, 12, 2).is_none());
    }

    #[test]
    fn existing_customers_expectations_add_up_to_the_models() {
        // A year of weekly-unit windows after an origin that ends its month.
        let horizon = Horizon::new(day("1997-09-30"), 12);
        let mut existing = Existing::new(&horizon, 7.0);
        let h = History {
            x: 2,
            t_x: 30.43,
            t: 38.86,
        };
        existing.add("US", &CDNOW, h, 20.0);
        let expected = &existing.markets["US"];
        let (_, year_end) = horizon.window_days(11);
        let total: f64 = expected.purchase_days.iter().sum();
        assert!((total - CDNOW.expected_purchases(h, year_end / 7.0)).abs() < 1e-12);
        assert!((expected.revenue.iter().sum::<f64>() - 20.0 * total).abs() < 1e-9);
        // The chance of buying in a month: between 0 and P(alive), at most the month's expected
        // purchases, and lower a year on than in the first month.
        let alive = CDNOW.p_alive(h);
        for k in 0..12 {
            let active = expected.active[k];
            assert!(active > 0.0 && active < alive, "{k}: {active}");
            assert!(active <= expected.purchase_days[k] + 1e-12, "{k}");
        }
        assert!(expected.active[11] < expected.active[0]);
        // A first month with no dropout time before it: exactly P(alive) (1 - E[exp(-lambda 31 days)]).
        let x = f64::from(h.x);
        let quiet = ((CDNOW.alpha + h.t) / (CDNOW.alpha + h.t + 31.0 / 7.0)).powf(CDNOW.r + x);
        assert!((expected.active[0] - alive * (1.0 - quiet)).abs() < 1e-12);
    }
}
