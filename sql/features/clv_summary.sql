-- What the lifetime-value models (BG/NBD, Gamma-Gamma) learn from: each buying customer's
-- purchase days as of the run date, and as of the holdout cut-off (`clv_holdout_days` before
-- the run date) with the purchase days after it, for the nightly holdout check. A purchase day
-- is a calendar day (market time) with at least one completed order: several orders on one day are one
-- purchase, as in the models' papers (and in lifetimes' summaries of CDNOW). Spend sums whole
-- cents, so reruns give identical bytes.
-- grain: one row per customer with at least one completed purchase by the run date
-- materialized: table
-- columns:
--   customer_id: the customer
--   market: the customer's market (from stg_customers); the models are fitted per market
--   acquisition_channel: the customer's acquisition channel (from stg_customers)
--   first_purchase_day: the first purchase day, in days since 1970-01-01
--   repeat_days: purchase days after the first (the models' x)
--   recency_days: days from the first purchase day to the last (t_x)
--   age_days: days from the first purchase day to the run date (T)
--   repeat_spend_usd: mean revenue per repeat purchase day, USD; null without a repeat day
--   revenue_usd: revenue of every completed order to the run date, USD
--   calibration_repeat_days: repeat_days as of the holdout cut-off; null when the first purchase is after it
--   calibration_recency_days: recency_days as of the holdout cut-off; null when the first purchase is after it
--   calibration_age_days: age_days as of the holdout cut-off; null when the first purchase is after it
--   holdout_purchase_days: purchase days after the holdout cut-off, up to the run date; null when the first purchase is after the cut-off
--   backtest_repeat_days: repeat_days as of the backtest origin; null when the first purchase is after it
--   backtest_recency_days: recency_days as of the backtest origin; null when the first purchase is after it
--   backtest_age_days: age_days as of the backtest origin (so first_purchase_day + backtest_age_days is the origin); null when the first purchase is after it
--   backtest_repeat_spend_usd: repeat_spend_usd as of the backtest origin; null without a repeat day by then
with months as (
    -- the month index (year * 12 + month - 1) of the first month after the backtest origin
    select
        cast(date_part('year', run_date + interval '1 day') as int) * 12
        + cast(date_part('month', run_date + interval '1 day') as int) - 1 - clv_backtest_months as after_origin
    from run_context
    cross join settings
),

bounds as (
    select
        cast(run_date as int) as run_day,
        cast(run_date as int) - clv_holdout_days as cutoff_day,
        cast(make_date(months.after_origin / 12, months.after_origin % 12 + 1, 1) as int) - 1 as origin_day
    from run_context
    cross join settings
    cross join months
),

days as (
    select customer_id, market, channel, day_number, days_since, revenue_cents
    from stg_customer_days
),

summary as (
    select
        days.customer_id,
        days.market,
        days.channel,
        bounds.run_day,
        bounds.cutoff_day,
        bounds.origin_day,
        min(days.day_number) as first_day,
        max(days.day_number) as last_day,
        count(*) as purchase_days,
        sum(days.revenue_cents) as revenue_cents,
        sum(case when days.days_since = 0 then days.revenue_cents else 0 end) as first_day_cents,
        count(case when days.day_number <= bounds.cutoff_day then 1 end) as calibration_days,
        max(case when days.day_number <= bounds.cutoff_day then days.day_number end) as calibration_last_day,
        count(case when days.day_number <= bounds.origin_day then 1 end) as backtest_days,
        max(case when days.day_number <= bounds.origin_day then days.day_number end) as backtest_last_day,
        sum(case when days.day_number <= bounds.origin_day then days.revenue_cents else 0 end) as backtest_cents
    -- bounds first: a cross join holds its left side in memory, and that must be the one row
    from bounds
    cross join days
    group by days.customer_id, days.market, days.channel, bounds.run_day, bounds.cutoff_day, bounds.origin_day
)

select
    customer_id,
    market,
    channel as acquisition_channel,
    first_day as first_purchase_day,
    purchase_days - 1 as repeat_days,
    last_day - first_day as recency_days,
    run_day - first_day as age_days,
    cast(revenue_cents - first_day_cents as double) / 100.0 / nullif(purchase_days - 1, 0) as repeat_spend_usd,
    cast(revenue_cents as double) / 100.0 as revenue_usd,
    case when first_day <= cutoff_day then calibration_days - 1 end as calibration_repeat_days,
    calibration_last_day - first_day as calibration_recency_days,
    case when first_day <= cutoff_day then cutoff_day - first_day end as calibration_age_days,
    case when first_day <= cutoff_day then purchase_days - calibration_days end as holdout_purchase_days,
    case when first_day <= origin_day then backtest_days - 1 end as backtest_repeat_days,
    backtest_last_day - first_day as backtest_recency_days,
    case when first_day <= origin_day then origin_day - first_day end as backtest_age_days,
    cast(backtest_cents - first_day_cents as double) / 100.0 / nullif(backtest_days - 1, 0) as backtest_repeat_spend_usd
from summary
order by customer_id
