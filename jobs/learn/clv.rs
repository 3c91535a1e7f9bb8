//! The lifetime-value job: BG/NBD ([`crate::learn::bg_nbd`]) for how often each customer will
//! buy and whether they are still alive, Gamma-Gamma ([`crate::learn::gamma_gamma`]) for how
//! much, fitted on the published `clv_summary` of the run date, per market when the market has
//! enough buyers; every customer scored into `clv_scores`.
//!
//! Two streamed passes over `clv_summary`: the first tallies the distinct histories of each
//! market (a few hundred thousand at any customer count) and the repeat customers' spend, the
//! second scores customer by customer. Every night it also checks itself: BG/NBD fitted on the
//! history up to `clv.holdout_days` before the run date predicts each customer's purchase days
//! since, and the predicted and actual totals and the per-customer error go to
//! `model_metrics`.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::NaiveDate;
use datafusion::arrow::array::{AsArray, Float64Array, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use futures::TryStreamExt;
use rayon::prelude::*;
use serde::Serialize;
use serde_json::json;

use crate::config::{ClvConfig, Config};
use crate::error::{Error, Result};
use crate::learn::bg_nbd::{BgNbd, Histories, History, SeriesMemo};
use crate::learn::features::numeric_column;
use crate::learn::forecast::{self, Existing, Horizon};
use crate::learn::gamma_gamma::{self, GammaGamma, SpendModel};
use crate::learn::likelihood::{Bounds, Maximum};
use crate::learn::model_metrics::{self, MetricRow};
use crate::learn::outputs::{self, StageDraft};
use crate::learn::predicted_ltv::{self, Cohorts};
use crate::output::described;
use crate::output::manifest::StageReport;
use crate::output::publish::{Draft, DraftTable};
use crate::output::published::{self, PART_FILE};
use crate::storage::Root;

pub(crate) const JOB: &str = "clv";
/// The SQL model the job reads.
pub const SUMMARY: &str = "clv_summary";
/// The table it writes.
pub(crate) const SCORES: &str = "clv_scores";
/// The fit on every customer, used by markets too small for their own.
pub(crate) const ALL: &str = "all";
/// Days in the CLV's month: a twelfth of a mean Gregorian year.
pub(crate) const MONTH_DAYS: f64 = 365.25 / 12.0;

/// One customer's row of `clv_summary`, times in days.
struct Customer<'a> {
    id: &'a str,
    market: &'a str,
    channel: &'a str,
    /// Revenue of every completed order to the run date.
    revenue: f64,
    /// Days since 1970-01-01 of the first purchase.
    first_day: i32,
    x: u32,
    recency_days: f64,
    age_days: f64,
    /// Mean revenue per repeat purchase day; None without one.
    repeat_spend: Option<f64>,
    /// (x, t_x, T) in days at the holdout cut-off, and the purchase days since.
    calibration: Option<(History, u32)>,
    /// (x, t_x, T) in days at the forecast backtest's origin, and the repeat spend by then.
    backtest: Option<(History, Option<f64>)>,
}

/// The columns of a `clv_summary` batch, read once; [`Customers::get`] gives any row.
struct Customers {
    ids: StringArray,
    markets: StringArray,
    channels: StringArray,
    /// revenue, first purchase day, x, recency, age, repeat spend; then the calibration's x,
    /// recency, age and holdout purchase days; then the backtest's x, recency, age and spend.
    numbers: [Vec<Option<f64>>; 14],
}

impl Customers {
    fn of(batch: &RecordBatch) -> Result<Self> {
        let text = |name: &str| -> Result<StringArray> {
            Ok(forecast::column_as(batch, SUMMARY, name, &DataType::Utf8)?
                .as_string::<i32>()
                .clone())
        };
        let numbers = [
            "revenue_usd",
            "first_purchase_day",
            "repeat_days",
            "recency_days",
            "age_days",
            "repeat_spend_usd",
            "calibration_repeat_days",
            "calibration_recency_days",
            "calibration_age_days",
            "holdout_purchase_days",
            "backtest_repeat_days",
            "backtest_recency_days",
            "backtest_age_days",
            "backtest_repeat_spend_usd",
        ]
        .map(|name| numeric_column(batch, name));
        Ok(Customers {
            ids: text("customer_id")?,
            markets: text("market")?,
            channels: text("acquisition_channel")?,
            numbers: numbers
                .into_iter()
                .collect::<Result<Vec<_>>>()?
                .try_into()
                .expect("14 columns"),
        })
    }

    fn len(&self) -> usize {
        self.numbers[0].len()
    }

    fn get(&self, row: usize) -> Result<Customer<'_>> {
        let [
            revenue,
            first,
            x,
            recency,
            age,
            spend,
            cal_x,
            cal_recency,
            cal_age,
            holdout,
            back_x,
            back_recency,
            back_age,
            back_spend,
        ] = self.numbers.each_ref().map(|column| column[row]);
        let (Some(first_day), Some(xr), Some(recency_days), Some(age_days)) = (first, x, recency, age) else {
            return Err(bad_column("repeat_days", "has a null (the data tests forbid it)"));
        };
        let calibration = match (cal_x, cal_recency, cal_age, holdout) {
            (Some(x), Some(t_x), Some(t), Some(after)) => {
                Some((History { x: x as u32, t_x, t }, after as u32))
            }
            _ => None,
        };
        let backtest = match (back_x, back_recency, back_age) {
            (Some(x), Some(t_x), Some(t)) => Some((History { x: x as u32, t_x, t }, back_spend)),
            _ => None,
        };
        Ok(Customer {
            id: self.ids.value(row),
            market: self.markets.value(row),
            channel: self.channels.value(row),
            revenue: revenue.unwrap_or(0.0),
            first_day: first_day as i32,
            x: xr as u32,
            recency_days,
            age_days,
            repeat_spend: spend,
            calibration,
            backtest,
        })
    }
}

fn bad_column(column: &str, problem: &str) -> Error {
    Error::BadColumn {
        table: SUMMARY.into(),
        column: column.into(),
        problem: problem.into(),
    }
}

/// What the first pass gathers for one scope (a market, or all customers).
#[derive(Default)]
struct Tally {
    histories: Histories,
    /// (repeat purchase days, mean revenue per repeat day) of the repeat customers.
    repeat: Vec<(u32, f64)>,
}

/// The fitted models of one scope.
#[derive(Clone, Debug, Serialize)]
pub struct ScopeFit {
    pub bg_nbd: BgNbd,
    pub spend: SpendModel,
    pub customers: u64,
    pub repeat_customers: usize,
    /// Repeat customers whose mean spend is zero or less: left out of the Gamma-Gamma fit.
    pub non_positive_spend: usize,
    pub mean_log_likelihood: f64,
    pub iterations: u64,
    /// Pearson correlation of repeat purchase days and mean spend: Gamma-Gamma assumes none.
    pub frequency_spend_correlation: f64,
}

fn cannot_train(reason: String) -> Error {
    Error::CannotTrain {
        job: JOB.into(),
        reason,
    }
}

/// The bounds of every likelihood fit (`clv.fit_max_evaluations`, `clv.fit_max_seconds`).
pub(crate) fn fit_bounds(config: &ClvConfig) -> Bounds {
    Bounds {
        evaluations: config.fit_max_evaluations,
        seconds: config.fit_max_seconds,
    }
}

/// Fits one scope's models; `at` names the cut-off in the debug log. BG/NBD must fit; where
/// Gamma-Gamma does not, the scope's spend is its observed mean ([`SpendModel::ObservedMean`]).
fn fit_scope(scope: &str, tally: &Tally, at: &str, config: &ClvConfig) -> Result<ScopeFit> {
    let _span = tracing::debug_span!("fit", at, scope).entered();
    let (
        bg_nbd,
        Maximum {
            mean_log_likelihood,
            iterations,
            ..
        },
    ) = BgNbd::fit(&tally.histories, &fit_bounds(config))
        .map_err(|e| cannot_train(format!("BG/NBD on {scope}: {e}")))?;
    let spend = gamma_gamma::fit_spend(&tally.repeat, &fit_bounds(config), config.spend_prior_days);
    if let SpendModel::ObservedMean { reason, .. } = &spend {
        tracing::warn!(scope, at, %reason, "Gamma-Gamma could not be fitted: spend is each customer's observed mean shrunk toward the scope's");
    }
    Ok(ScopeFit {
        bg_nbd,
        spend,
        customers: tally.histories.customers(),
        repeat_customers: tally.repeat.len(),
        non_positive_spend: gamma_gamma::non_positive_spend(&tally.repeat),
        mean_log_likelihood,
        iterations,
        frequency_spend_correlation: gamma_gamma::frequency_spend_correlation(&tally.repeat),
    })
}

/// A customer's history in the models' unit.
fn history(x: u32, recency_days: f64, age_days: f64, unit_days: f64) -> History {
    History {
        x,
        t_x: recency_days / unit_days,
        t: age_days / unit_days,
    }
}

/// The models the night fitted: per scope, and the holdout check's.
#[derive(Clone, Debug, Serialize)]
pub struct Fitted {
    pub run_date: NaiveDate,
    pub time_unit_days: f64,
    pub monthly_discount_rate: f64,
    /// The bounds every fit ran under.
    pub bounds: Bounds,
    /// `all`, and each market with at least `clv.min_market_customers` buyers.
    pub scopes: BTreeMap<String, ScopeFit>,
    pub holdout: Holdout,
    /// The same fits as of the forecast backtest's origin (empty without a backtest).
    #[serde(skip)]
    pub backtest_scopes: BTreeMap<String, ScopeFit>,
}

/// The fit a market's customers are scored with: their market's, else `all`'s.
fn scope_of<'a>(scopes: &'a BTreeMap<String, ScopeFit>, market: &str) -> (&'a str, &'a ScopeFit) {
    match scopes.get_key_value(market) {
        Some((name, fit)) if name != ALL => (name, fit),
        _ => (ALL, &scopes[ALL]),
    }
}

/// The holdout check: BG/NBD fitted as of the cut-off, against the purchase days since.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Holdout {
    pub days: u32,
    pub bg_nbd: Option<BgNbd>,
    pub customers: u64,
    pub predicted_purchase_days: f64,
    pub actual_purchase_days: f64,
    pub mean_absolute_error: f64,
    /// The same error of predicting each customer's calibration-period rate carried forward:
    /// what the model is to beat.
    pub naive_mean_absolute_error: f64,
}

/// The 12-month CLV: each month's expected purchase days times the expected spend per day,
/// discounted monthly.
pub(crate) fn clv_12m(
    model: &BgNbd,
    h: History,
    spend: f64,
    unit_days: f64,
    discount: f64,
    memo: &SeriesMemo,
) -> f64 {
    let horizons: Vec<f64> = (1..=12)
        .map(|month| f64::from(month) * MONTH_DAYS / unit_days)
        .collect();
    let mut previous = 0.0;
    let mut total = 0.0;
    for (month, cumulative) in (1..=12).zip(model.expected_purchases_at(h, &horizons, memo)) {
        total += (cumulative - previous) * spend / (1.0 + discount).powi(month);
        previous = cumulative;
    }
    total
}

/// The published schema of `clv_scores`, with its descriptions.
pub fn scores_schema() -> SchemaRef {
    let f =
        |name: &str, data_type: DataType, comment: &str| described::field(name, data_type, false, comment);
    described::schema(
        "One row per buying customer: BG/NBD and Gamma-Gamma expectations as of the end of the run \
         date, fitted per market (or on all customers) by the lifetime-value stage.",
        vec![
            f("customer_id", DataType::Utf8, "The customer."),
            f("market", DataType::Utf8, "The customer's market."),
            f(
                "model_scope",
                DataType::Utf8,
                "The fit that scored the customer: the market, or all.",
            ),
            f(
                "repeat_days",
                DataType::Int64,
                "Purchase days after the first (BG/NBD's x).",
            ),
            f(
                "recency_days",
                DataType::Int64,
                "Days from the first to the latest purchase day (BG/NBD's t_x).",
            ),
            f(
                "age_days",
                DataType::Int64,
                "Days from the first purchase to the run date (BG/NBD's T).",
            ),
            f(
                "p_alive",
                DataType::Float64,
                "P(still buying) at the end of the run date.",
            ),
            f(
                "expected_purchases_90d",
                DataType::Float64,
                "Expected purchase days in the next 90 days.",
            ),
            f(
                "expected_purchases_365d",
                DataType::Float64,
                "Expected purchase days in the next 365 days.",
            ),
            f(
                "expected_order_value_usd",
                DataType::Float64,
                "Gamma-Gamma's expected spend per purchase day, USD: the customer's mean shrunk \
                 toward the population's.",
            ),
            f(
                "clv_12m_usd",
                DataType::Float64,
                "Expected spend in the next 12 months of 365.25/12 days, USD, discounted monthly at \
                 [clv] monthly_discount_rate (1%).",
            ),
        ],
    )
}

/// What the scoring pass adds up besides the scores: the holdout check's sums and the
/// existing customers' part of the growth forecast and of its backtest.
struct Sums {
    holdout_horizon: f64,
    predicted: f64,
    actual: f64,
    error: f64,
    naive: f64,
    holdout_customers: u64,
    forecast: Option<Existing>,
    backtest: Option<Existing>,
    cohorts: Cohorts,
}

impl Sums {
    /// Adds one customer's holdout figures: predicted against actual purchase days after the
    /// cut-off, and the naive forecast's (the customer's repeat rate so far, carried forward).
    fn add_holdout(&mut self, expected: f64, h: History, after: u32) {
        let rate = if h.t > 0.0 { f64::from(h.x) / h.t } else { 0.0 };
        self.predicted += expected;
        self.actual += f64::from(after);
        self.error += (expected - f64::from(after)).abs();
        self.naive += (rate * self.holdout_horizon - f64::from(after)).abs();
        self.holdout_customers += 1;
    }
}

/// One customer's scores and what they add to the night's sums: the costly part of scoring
/// (some forty expected-purchase series per customer), computed on every core.
struct Scored<'f> {
    scope: &'f str,
    /// p_alive, expected purchases in 90 and 365 days, expected spend, 12-month CLV.
    scores: [f64; 5],
    forecast: Option<Vec<[f64; 3]>>,
    first_year: Option<(i32, f64)>,
    backtest: Option<Vec<[f64; 3]>>,
    holdout: Option<(f64, History, u32)>,
}

fn score_customer<'f>(fitted: &'f Fitted, sums: &Sums, memo: &SeriesMemo, c: &Customer<'_>) -> Scored<'f> {
    let unit = fitted.time_unit_days;
    let (scope, fit) = scope_of(&fitted.scopes, c.market);
    let model = &fit.bg_nbd;
    let h = history(c.x, c.recency_days, c.age_days, unit);
    let spend = fit.spend.expected_spend(c.x, c.repeat_spend.unwrap_or(0.0));
    let backtest = match (&sums.backtest, c.backtest) {
        (Some(existing), Some((then, spend_then))) => {
            let (_, fit) = scope_of(&fitted.backtest_scopes, c.market);
            let spend = fit.spend.expected_spend(then.x, spend_then.unwrap_or(0.0));
            let h = history(then.x, then.t_x, then.t, unit);
            Some(existing.windows_of(&fit.bg_nbd, h, spend, memo))
        }
        _ => None,
    };
    let holdout = match (fitted.holdout.bg_nbd, c.calibration) {
        (Some(model), Some((then, after))) => {
            let h = history(then.x, then.t_x, then.t, unit);
            Some((
                model.expected_purchases_at(h, &[sums.holdout_horizon], memo)[0],
                h,
                after,
            ))
        }
        _ => None,
    };
    let ahead = model.expected_purchases_at(h, &[90.0 / unit, 365.0 / unit], memo);
    Scored {
        scope,
        scores: [
            model.p_alive(h),
            ahead[0],
            ahead[1],
            spend,
            clv_12m(model, h, spend, unit, fitted.monthly_discount_rate, memo),
        ],
        forecast: sums
            .forecast
            .as_ref()
            .map(|e| e.windows_of(model, h, spend, memo)),
        first_year: sums
            .cohorts
            .first_year(c.first_day, model, h, c.revenue, spend, memo),
        backtest,
        holdout,
    }
}

/// Scores one `clv_summary` batch, adding each customer to `sums` on the way: the customers
/// are scored on every core, then added to the sums one by one in the batch's order, so the
/// sums are the same bits whatever the number of cores.
fn score_batch(
    fitted: &Fitted,
    batch: &RecordBatch,
    sums: &mut Sums,
    memo: &SeriesMemo,
) -> Result<RecordBatch> {
    let customers = Customers::of(batch)?;
    let n = customers.len();
    let scored: Vec<(Customer<'_>, Scored<'_>)> = {
        let sums = &*sums;
        (0..n)
            .into_par_iter()
            .map(|row| {
                let c = customers.get(row)?;
                let scored = score_customer(fitted, sums, memo, &c);
                Ok((c, scored))
            })
            .collect::<Result<_>>()?
    };
    let (mut ids, mut markets, mut scopes) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let mut ints: [Vec<i64>; 3] = Default::default();
    let mut floats: [Vec<f64>; 5] = Default::default();
    for (c, scored) in scored {
        ids.push(c.id.to_string());
        markets.push(c.market.to_string());
        scopes.push(scored.scope.to_string());
        ints[0].push(i64::from(c.x));
        ints[1].push(c.recency_days as i64);
        ints[2].push(c.age_days as i64);
        for (column, value) in floats.iter_mut().zip(scored.scores) {
            column.push(value);
        }
        if let (Some(existing), Some(windows)) = (sums.forecast.as_mut(), &scored.forecast) {
            existing.add_windows(c.market, windows);
        }
        if let Some(first_year) = scored.first_year {
            sums.cohorts
                .add_first_year(c.market, c.channel, c.revenue, first_year);
        }
        if let (Some(existing), Some(windows)) = (sums.backtest.as_mut(), &scored.backtest) {
            existing.add_windows(c.market, windows);
        }
        if let Some((expected, h, after)) = scored.holdout {
            sums.add_holdout(expected, h, after);
        }
    }
    let [x, recency, age] = ints.map(|v| Arc::new(Int64Array::from(v)) as _);
    let [alive, e90, e365, spend, clv] = floats.map(|v| Arc::new(Float64Array::from(v)) as _);
    RecordBatch::try_new(
        scores_schema(),
        vec![
            Arc::new(StringArray::from(ids)),
            Arc::new(StringArray::from(markets)),
            Arc::new(StringArray::from(scopes)),
            x,
            recency,
            age,
            alive,
            e90,
            e365,
            spend,
            clv,
        ],
    )
    .map_err(Error::arrow(format!("building {SCORES}")))
}

/// What the first pass gathers.
#[derive(Default)]
struct Tallies {
    /// Per scope (every market, and `all`), as of the run date.
    now: BTreeMap<String, Tally>,
    /// Per scope, as of the growth forecast's backtest origin.
    backtest: BTreeMap<String, Tally>,
    /// The backtest origin, read from the data like the holdout's length.
    backtest_origin: Option<NaiveDate>,
    /// The histories at the holdout cut-off.
    calibration: Histories,
    /// The holdout's length in days.
    holdout_days: u32,
}

impl Tallies {
    fn add(scopes: &mut BTreeMap<String, Tally>, market: &str, h: History, spend: Option<f64>) {
        for scope in [ALL, market] {
            let tally = scopes.entry(scope.to_string()).or_default();
            tally.histories.add(h);
            if let (true, Some(m)) = (h.x > 0, spend) {
                tally.repeat.push((h.x, m));
            }
        }
    }
}

/// First pass: the tallies of every market and of all customers at the run date and at the
/// backtest origin, the holdout's, and the holdout's length in days (read from the data, so it
/// is the one `clv_summary` was built with, whatever the config says now).
async fn tally(output: &Root, run_date: NaiveDate, unit: f64) -> Result<Tallies> {
    let mut tallies = Tallies::default();
    let mut stream = published::read(output, SUMMARY, run_date).await?;
    while let Some(batch) = stream
        .try_next()
        .await
        .map_err(Error::engine(format!("reading {SUMMARY}")))?
    {
        let customers = Customers::of(&batch)?;
        for row in 0..customers.len() {
            let c = customers.get(row)?;
            let h = history(c.x, c.recency_days, c.age_days, unit);
            Tallies::add(&mut tallies.now, c.market, h, c.repeat_spend);
            if let Some((h, spend)) = c.backtest {
                Tallies::add(
                    &mut tallies.backtest,
                    c.market,
                    history(h.x, h.t_x, h.t, unit),
                    spend,
                );
                tallies.backtest_origin = forecast::epoch_day(c.first_day + h.t as i32);
            }
            if let Some((h, _)) = c.calibration {
                tallies.calibration.add(history(h.x, h.t_x, h.t, unit));
                tallies.holdout_days = (c.age_days - h.t) as u32;
            }
        }
    }
    Ok(tallies)
}

/// Fits `all` and every market with enough buyers; `all` must have enough repeat customers.
fn fit_scopes(
    tallies: &BTreeMap<String, Tally>,
    config: &ClvConfig,
    at: &str,
) -> Result<BTreeMap<String, ScopeFit>> {
    let all = tallies
        .get(ALL)
        .ok_or_else(|| cannot_train(format!("{SUMMARY} has no customers")))?;
    if all.repeat.len() < config.min_repeat_customers {
        return Err(cannot_train(format!(
            "{} customers with a repeat purchase day in {SUMMARY}; the spend model needs at least \
             {} (clv.min_repeat_customers)",
            all.repeat.len(),
            config.min_repeat_customers
        )));
    }
    let own = tallies.iter().filter(|(scope, tally)| {
        *scope == ALL
            || (tally.histories.customers() >= config.min_market_customers as u64
                && tally.repeat.len() >= config.min_repeat_customers)
    });
    // Each scope's fit on its own thread: independent, so the same parameters on any core count.
    // A market whose fit fails is scored with `all`'s, as a market too small for its own;
    // only `all` failing stops the stage.
    std::thread::scope(|threads| {
        let fits: Vec<_> = own
            .map(|(scope, tally)| (scope, threads.spawn(|| fit_scope(scope, tally, at, config))))
            .collect();
        let mut fitted = BTreeMap::new();
        for (scope, fit) in fits {
            match fit.join().expect("a fitting thread panicked") {
                Ok(fit) => {
                    fitted.insert(scope.clone(), fit);
                }
                Err(error) if scope != ALL => {
                    tracing::warn!(market = scope, %error, "the market's customers are scored with the fit on all");
                }
                Err(error) => return Err(error),
            }
        }
        Ok(fitted)
    })
}

/// Second pass: scores every customer into `clv_scores`, measures the holdout model against
/// the purchase days each customer made since the cut-off, and sums the existing customers'
/// part of the forecasts (`sums` says which).
async fn score_all(
    fitted: &mut Fitted,
    output: &Root,
    draft: &Draft,
    mut sums: Sums,
) -> Result<(DraftTable, Sums)> {
    let mut writer = draft.writer(SCORES, PART_FILE, scores_schema())?;
    let mut stream = published::read(output, SUMMARY, fitted.run_date).await?;
    let memo = SeriesMemo::default();
    while let Some(batch) = stream
        .try_next()
        .await
        .map_err(Error::engine(format!("reading {SUMMARY}")))?
    {
        writer
            .write(&score_batch(fitted, &batch, &mut sums, &memo)?)
            .await?;
    }
    tracing::debug!(
        series = memo.summed(),
        "hypergeometric series summed for the scores"
    );
    let holdout = &mut fitted.holdout;
    let customers = sums.holdout_customers;
    holdout.customers = customers;
    holdout.predicted_purchase_days = sums.predicted;
    holdout.actual_purchase_days = sums.actual;
    holdout.mean_absolute_error = sums.error / customers.max(1) as f64;
    holdout.naive_mean_absolute_error = sums.naive / customers.max(1) as f64;
    Ok((writer.finish(draft).await?, sums))
}

fn metric_rows(fitted: &Fitted) -> Vec<MetricRow> {
    let mut rows = Vec::new();
    let row = |model: &str, scope: &str, on: &str, metric: &str, value: f64| {
        let mut row = MetricRow::new(JOB, model, on, metric, value).with_parameter(scope);
        row.chosen = true;
        row
    };
    for (scope, fit) in &fitted.scopes {
        let BgNbd { r, alpha, a, b } = fit.bg_nbd;
        for (metric, value) in [
            ("r", r),
            ("alpha", alpha),
            ("a", a),
            ("b", b),
            ("customers", fit.customers as f64),
            ("mean_log_likelihood", fit.mean_log_likelihood),
            ("iterations", fit.iterations as f64),
        ] {
            rows.push(row("bg_nbd", scope, "fitting", metric, value));
        }
        let spend: Vec<(&str, f64)> = match &fit.spend {
            SpendModel::GammaGamma {
                parameters: GammaGamma { p, q, v },
                mean_log_likelihood,
            } => vec![
                ("p", *p),
                ("q", *q),
                ("v", *v),
                ("mean_log_likelihood", *mean_log_likelihood),
                ("fallback", 0.0),
            ],
            SpendModel::ObservedMean {
                mean_usd, prior_days, ..
            } => vec![
                ("fallback", 1.0),
                ("observed_mean_spend_usd", *mean_usd),
                ("spend_prior_days", *prior_days),
            ],
        };
        for (metric, value) in spend.into_iter().chain([
            ("repeat_customers", fit.repeat_customers as f64),
            ("non_positive_spend_customers", fit.non_positive_spend as f64),
            ("frequency_spend_correlation", fit.frequency_spend_correlation),
        ]) {
            rows.push(row("gamma_gamma", scope, "fitting", metric, value));
        }
    }
    let h = &fitted.holdout;
    if let Some(BgNbd { r, alpha, a, b }) = h.bg_nbd {
        for (metric, value) in [
            ("r", r),
            ("alpha", alpha),
            ("a", a),
            ("b", b),
            ("holdout_days", f64::from(h.days)),
            ("customers", h.customers as f64),
            ("predicted_purchase_days", h.predicted_purchase_days),
            ("actual_purchase_days", h.actual_purchase_days),
            ("mean_absolute_error", h.mean_absolute_error),
            ("naive_mean_absolute_error", h.naive_mean_absolute_error),
        ] {
            rows.push(row("bg_nbd", ALL, "holdout", metric, value));
        }
    }
    rows
}

/// The model card: what the models are, how they were fitted and checked, and their limits.
pub fn model_card(fitted: &Fitted) -> serde_json::Value {
    let all = &fitted.scopes[ALL];
    json!({
        "job": JOB,
        "run_date": fitted.run_date,
        "purpose": "expected purchases, P(alive), expected order value and 12-month CLV of every buying customer",
        "models": {
            "bg_nbd": "Fader, Hardie and Lee (2005): Poisson purchases while alive, Gamma(r, alpha) rates, Beta(a, b) dropout after each purchase; fitted by maximum likelihood (L-BFGS on log-parameters)",
            "gamma_gamma": "Fader, Hardie and Lee (2005) / Colombo and Jiang (1999): Gamma(p, nu) spend per purchase day, nu ~ Gamma(q, v); fitted on repeat customers with a positive mean spend",
            "spend_fallback": "where Gamma-Gamma cannot be fitted in a scope (a fit bound reached, no convergence, or q <= 1: an infinite mean spend under the model), a customer's expected spend is (x m + k M) / (x + k): their observed mean m over x repeat days and the scope's mean spend per repeat day M, weighted as k days (clv.spend_prior_days); the scope's spend_model says which was used and why",
        },
        "fit_bounds": {
            "max_passes_over_the_data": fitted.bounds.evaluations,
            "max_seconds": fitted.bounds.seconds,
            "at_a_bound": "the fit counts as failed: a market's BG/NBD falls back to the fit on all customers, all's BG/NBD stops the stage (exit 3), any scope's Gamma-Gamma falls back to the observed mean",
        },
        "time_unit_days": fitted.time_unit_days,
        "purchase": "a UTC day with at least one completed order",
        "clv_12m": format!(
            "sum over 12 months of {MONTH_DAYS} days of expected purchase days times expected order value, discounted at {} a month",
            fitted.monthly_discount_rate
        ),
        "scopes": fitted.scopes,
        "holdout": fitted.holdout,
        "checks": {
            "frequency_spend_correlation": all.frequency_spend_correlation,
            "frequency_spend_independent": all.frequency_spend_correlation.abs() < 0.3,
        },
        "limits": [
            "non-contractual, continuous-time buying: a subscription or a fixed purchase calendar breaks the model",
            "Gamma-Gamma assumes a customer's spend does not depend on how often they buy; the correlation above says how far that holds",
            "customers acquired after the holdout cut-off are not in the holdout check",
        ],
    })
}

/// Runs the lifetime-value job for a run date from the published `clv_summary`.
pub async fn run(output: &Root, run_date: NaiveDate, config: &Config) -> Result<StageReport> {
    let (margins, thresholds) = (&config.margin_rate, &config.kpi_thresholds);
    let config = &config.clv;
    published::require(output, SUMMARY, run_date).await?;
    let unit = config.time_unit.days();
    let stage = StageDraft::begin(JOB, output, run_date);
    stage
        .run(async |draft: &Draft| {
            let tallies = tally(output, run_date, unit).await?;
            let history = forecast::read_history(output, run_date).await?;
            let backtest_wanted = history.is_some() && tallies.backtest_origin.is_some();
            // The run date's fits, the holdout check's and the backtest's are independent: each
            // on threads of its own, so the long ones overlap (the same parameters on any core
            // count; a panic in one is re-raised as it was). The holdout check and the backtest
            // are reports: a history too short to fit at their cut-offs leaves them out, and says
            // so, rather than failing the night.
            let (scopes, holdout_model, backtest_scopes) = std::thread::scope(|threads| {
                let holdout = threads.spawn(|| {
                    let _span = tracing::debug_span!("fit", at = "holdout cut-off").entered();
                    if tallies.calibration.customers() == 0 {
                        return None;
                    }
                    match BgNbd::fit(&tallies.calibration, &fit_bounds(config)) {
                        Ok((model, _)) => Some(model),
                        Err(reason) => {
                            tracing::warn!(%reason, "no holdout check: BG/NBD could not be fitted at the cut-off");
                            None
                        }
                    }
                });
                let backtest = threads.spawn(|| {
                    if !backtest_wanted {
                        return BTreeMap::new();
                    }
                    fit_scopes(&tallies.backtest, config, "backtest origin").unwrap_or_else(|reason| {
                        tracing::warn!(%reason, "no forecast backtest: the models could not be fitted at its origin");
                        BTreeMap::new()
                    })
                });
                let scopes = fit_scopes(&tallies.now, config, "run date");
                let holdout = holdout.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                let backtest = backtest.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                (scopes, holdout, backtest)
            });
            let scopes = scopes?;
            let mut fitted = Fitted {
                run_date,
                time_unit_days: unit,
                monthly_discount_rate: config.monthly_discount_rate,
                bounds: fit_bounds(config),
                scopes,
                holdout: Holdout {
                    days: tallies.holdout_days,
                    bg_nbd: holdout_model,
                    ..Holdout::default()
                },
                backtest_scopes,
            };
            let forecast_horizon = Horizon::new(run_date, config.forecast_months as usize);
            let backtest_horizon = tallies.backtest_origin.map(|origin| {
                let months = Horizon::new(run_date, 0).last_complete_month() - forecast::month_index(origin);
                Horizon::new(origin, months.max(0) as usize)
            });
            drop(tallies);
            let sums = Sums {
                holdout_horizon: f64::from(fitted.holdout.days) / unit,
                predicted: 0.0,
                actual: 0.0,
                error: 0.0,
                naive: 0.0,
                holdout_customers: 0,
                forecast: history.as_ref().map(|_| Existing::new(&forecast_horizon, unit)),
                backtest: backtest_horizon
                    .filter(|_| !fitted.backtest_scopes.is_empty())
                    .map(|horizon| Existing::new(&horizon, unit)),
                cohorts: Cohorts::new(run_date, unit),
            };
            let (scores, sums) = score_all(&mut fitted, output, draft, sums).await?;
            let threshold = thresholds.get(predicted_ltv::KPI);
            let cohorts = predicted_ltv::batch(&sums.cohorts, output, threshold, margins).await?;
            let mut tables = vec![
                scores,
                draft.write_batch(predicted_ltv::TABLE, PART_FILE, &cohorts).await?,
            ];
            let mut metrics = metric_rows(&fitted);
            if let (Some(history), Some(existing)) = (&history, &sums.forecast) {
                let settings = forecast::Settings {
                    trend_months: config.trend_months as usize,
                    model_error: model_error(&fitted.holdout),
                };
                let mut rows = forecast::forecast("forecast", &forecast_horizon, existing, history, &settings, false);
                if let (Some(horizon), Some(existing)) = (&backtest_horizon, &sums.backtest) {
                    let backtest = forecast::forecast("backtest", horizon, existing, history, &settings, true);
                    metrics.extend(forecast::backtest_metrics(JOB, &backtest));
                    rows.extend(backtest);
                }
                tables.push(
                    draft
                        .write_batch(forecast::TABLE, PART_FILE, &forecast::batch(&rows)?)
                        .await?,
                );
            }
            tables.push(
                draft
                    .write_batch(
                        model_metrics::TABLE,
                        &model_metrics::part_file(JOB),
                        &model_metrics::batch(&metrics)?,
                    )
                    .await?,
            );
            let card = model_card(&fitted);
            let files = outputs::save_model(draft, JOB, run_date, &fitted, &card).await?;
            let all = &fitted.scopes[ALL];
            let summary = json!({
                "scored_customers": tables[0].rows,
                "scopes": fitted.scopes.keys().collect::<Vec<_>>(),
                "r": all.bg_nbd.r, "alpha": all.bg_nbd.alpha, "a": all.bg_nbd.a, "b": all.bg_nbd.b,
                "spend_model": &all.spend,
                "holdout_predicted_purchase_days": fitted.holdout.predicted_purchase_days,
                "holdout_actual_purchase_days": fitted.holdout.actual_purchase_days,
                "growth_forecast": history.is_some(),
            });
            tracing::info!(
                scopes = fitted.scopes.len(),
                holdout_predicted = format!("{:.0}", fitted.holdout.predicted_purchase_days),
                holdout_actual = format!("{:.0}", fitted.holdout.actual_purchase_days),
                "lifetime value fitted"
            );
            Ok((tables, files, summary))
        })
        .await
}

/// The existing customers' relative error the forecast's intervals use: the holdout check's
/// (predicted against actual purchase days), at least [`forecast::MIN_MODEL_ERROR`]; without a
/// check, [`forecast::UNCHECKED_MODEL_ERROR`].
fn model_error(holdout: &Holdout) -> f64 {
    if holdout.bg_nbd.is_none() || holdout.actual_purchase_days <= 0.0 {
        return forecast::UNCHECKED_MODEL_ERROR;
    }
    (holdout.predicted_purchase_days / holdout.actual_purchase_days - 1.0)
        .abs()
        .max(forecast::MIN_MODEL_ERROR)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::learn::bg_nbd::tests::CDNOW;

    #[test]
    fn undiscounted_clv_is_a_years_expected_purchases_times_spend() {
        // The monthly increments telescope: with no discount, the 12 months sum to the
        // expected purchase days over 365.25 days times the spend per day.
        let h = History {
            x: 3,
            t_x: 20.0,
            t: 30.0,
        };
        let year = CDNOW.expected_purchases(h, 365.25 / 7.0);
        let clv = clv_12m(&CDNOW, h, 40.0, 7.0, 0.0, &SeriesMemo::default());
        assert!((clv - 40.0 * year).abs() < 1e-9, "{clv} against {}", 40.0 * year);
        // Discounting takes something off, and never more than a year at the 12th month's rate.
        let discounted = clv_12m(&CDNOW, h, 40.0, 7.0, 0.01, &SeriesMemo::default());
        assert!(discounted < clv && discounted > clv / 1.01_f64.powi(12));
        // The same customer in days gives the same money (alpha scales with the unit).
        let in_days = BgNbd {
            alpha: CDNOW.alpha * 7.0,
            ..CDNOW
        };
        let h_days = History {
            x: 3,
            t_x: 140.0,
            t: 210.0,
        };
        assert!(
            (clv_12m(&in_days, h_days, 40.0, 1.0, 0.01, &SeriesMemo::default()) - discounted).abs() < 1e-9
        );
    }
}
