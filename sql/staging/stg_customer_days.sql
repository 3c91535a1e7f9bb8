-- Each customer's purchases per day (market time), with their next purchase day: what daily churn, LTV and
-- activity are built from, computed once.
-- grain: one row per (customer_id, day_number) with at least one purchase
-- materialized: table
-- columns:
--   customer_id: the customer
--   market: the customer's market (from stg_customers)
--   channel: the customer's acquisition channel (from stg_customers)
--   is_member: paid membership (from stg_customers); null when unknown
--   day_number: the purchase day, in days since 1970-01-01
--   next_day_number: the customer's next purchase day; null if none yet
--   after_next_day_number: the purchase day after next_day_number; null if none yet
--   month_index: months since year 0 of the purchase day's month
--   next_month_index: month_index of next_day_number; null if none yet
--   after_next_month_index: month_index of after_next_day_number; null if none yet
--   days_since: days since the customer's first purchase day (0 on that day)
--   orders: completed orders that day
--   revenue_cents: revenue of those orders, US cents (exact)
with purchases as (
    select customer_id, cast(order_date as int) as day_number, amount_cents from stg_purchases
),

customers_in as (
    select customer_id, market, acquisition_channel as channel, is_member,
        acquisition_day_number as first_day_number
    from stg_customers
    where first_purchase_ts is not null
),

daily as (
    select customer_id, day_number, count(*) as orders, sum(amount_cents) as revenue_cents
    from purchases
    group by customer_id, day_number
),

-- The next two purchase days: the trailing-window repurchase counts in the KPI models need the
-- pair of days that makes a customer a repeat buyer and the day that takes over from it.
spans as (
    select
        daily.customer_id,
        customers_in.market,
        customers_in.channel,
        customers_in.is_member,
        daily.day_number,
        lead(daily.day_number) over by_customer as next_day_number,
        lead(daily.day_number, 2) over by_customer as after_next_day_number,
        -- from the customer's first purchase, not a min() over the partition: same values, and
        -- one window instead of two
        daily.day_number - customers_in.first_day_number as days_since,
        daily.orders,
        daily.revenue_cents
    from daily
    join customers_in on daily.customer_id = customers_in.customer_id
    window by_customer as (partition by daily.customer_id order by daily.day_number)
)

select
    customer_id,
    market,
    channel,
    is_member,
    day_number,
    next_day_number,
    after_next_day_number,
    cast(date_part('year', cast(day_number as date)) as int) * 12
    + cast(date_part('month', cast(day_number as date)) as int) - 1 as month_index,
    cast(date_part('year', cast(next_day_number as date)) as int) * 12
    + cast(date_part('month', cast(next_day_number as date)) as int) - 1 as next_month_index,
    cast(date_part('year', cast(after_next_day_number as date)) as int) * 12
    + cast(date_part('month', cast(after_next_day_number as date)) as int) - 1 as after_next_month_index,
    days_since,
    orders,
    revenue_cents
from spans
order by customer_id, day_number
