-- Cohort retention: for each monthly acquisition cohort, how many customers came back to buy in
-- each month since, what they spent, and the observed lifetime-value curve. Every cell of the
-- triangle is present, empty months included, from months_since 0 to the month of the run date.
-- Roll-up rows, marked with market or acquisition_channel '(all)', sum the cells over markets,
-- channels or both (each customer has one market and one channel, so the counts add up).
-- grain: one row per (cohort_month, market, acquisition_channel, months_since)
-- materialized: table
-- columns:
--   cohort_month: first day of the month of the cohort's first purchases (acquisition), in market time
--   market: the customers' market, or '(all)' on roll-up rows
--   acquisition_channel: the customers' acquisition channel, or '(all)' on roll-up rows
--   months_since: whole months from cohort_month; 0 is the acquisition month itself
--   cohort_size: customers acquired in cohort_month
--   active_customers: customers of the cohort with at least one purchase in that month
--   retention_rate: active_customers / cohort_size
--   orders: completed orders of the cohort in that month
--   revenue_usd: revenue of those orders, USD
--   cumulative_revenue_per_customer: revenue of the cohort from month 0 to this month / cohort_size, USD (the observed LTV curve)
with customers_in as (
    select acquisition_month, acquisition_month_index, market, acquisition_channel
    from stg_customers
    where first_purchase_ts is not null
),

customer_months as (
    select cohort_month, market, acquisition_channel, months_since, orders, revenue_cents
    from stg_customer_months
),

run_month as (
    select calendar_days.month_index
    from calendar_days
    join run_context on calendar_days.day = run_context.run_date
),

cohorts as (
    select
        acquisition_month as cohort_month,
        acquisition_month_index as cohort_month_index,
        market,
        acquisition_channel,
        count(*) as cohort_size
    from customers_in
    group by acquisition_month, acquisition_month_index, market, acquisition_channel
),

cohort_ages as (
    select
        cohorts.cohort_month,
        cohorts.market,
        cohorts.acquisition_channel,
        cohorts.cohort_size,
        run_month.month_index - cohorts.cohort_month_index as age_months
    from cohorts
    cross join run_month
),

month_offsets as (
    select numbers.n as months_since
    from numbers
    where numbers.n <= (select max(age_months) from cohort_ages)
),

cells as (
    select
        cohort_ages.cohort_month,
        cohort_ages.market,
        cohort_ages.acquisition_channel,
        month_offsets.months_since,
        cohort_ages.cohort_size
    from cohort_ages
    cross join month_offsets
    where month_offsets.months_since <= cohort_ages.age_months
),

activity as (
    select
        cohort_month,
        market,
        acquisition_channel,
        months_since,
        count(*) as active_customers,
        sum(orders) as orders,
        sum(revenue_cents) as revenue_cents
    from customer_months
    group by cohort_month, market, acquisition_channel, months_since
),

filled as (
    select
        cells.cohort_month,
        cells.market,
        cells.acquisition_channel,
        cells.months_since,
        cells.cohort_size,
        coalesce(activity.active_customers, 0) as active_customers,
        coalesce(activity.orders, 0) as orders,
        coalesce(activity.revenue_cents, 0) as revenue_cents
    from cells
    left join activity
        on cells.cohort_month = activity.cohort_month
        and cells.market = activity.market
        and cells.acquisition_channel = activity.acquisition_channel
        and cells.months_since = activity.months_since
),

rolled_up as (
    select
        cohort_month,
        case when grouping(market) = 1 then '(all)' else market end as market,
        case when grouping(acquisition_channel) = 1 then '(all)' else acquisition_channel end
            as acquisition_channel,
        months_since,
        sum(cohort_size) as cohort_size,
        sum(active_customers) as active_customers,
        sum(orders) as orders,
        sum(revenue_cents) as revenue_cents
    from filled
    group by grouping sets (
        (cohort_month, months_since, market, acquisition_channel),
        (cohort_month, months_since, market),
        (cohort_month, months_since, acquisition_channel),
        (cohort_month, months_since)
    )
)

select
    cohort_month,
    market,
    acquisition_channel,
    months_since,
    cohort_size,
    active_customers,
    cast(active_customers as double) / cohort_size as retention_rate,
    orders,
    revenue_cents / 100.0 as revenue_usd,
    sum(revenue_cents) over (
        partition by cohort_month, market, acquisition_channel
        order by months_since
        rows between unbounded preceding and current row
    ) / 100.0 / cohort_size as cumulative_revenue_per_customer
from rolled_up
order by cohort_month, market, acquisition_channel, months_since
