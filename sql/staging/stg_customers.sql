-- Customers with their acquisition: the first purchase. Market and acquisition channel come
-- from `customers`, else from the first purchase, else `unknown`.
-- grain: one row per customer known by the run date (signed up or ordered)
-- materialized: table
-- columns:
--   customer_id: the customer
--   signup_ts: when they signed up (UTC); their first order when `customers` is absent
--   market: market (ISO 3166 alpha-2) from customers, else the first purchase, else unknown
--   acquisition_channel: channel from customers, else the first purchase's channel, else unknown
--   referrer_customer_id: who invited them; null when not referred
--   is_member: paid membership; null when unknown
--   first_purchase_ts: their first completed order (UTC); null if they never bought
--   acquisition_month: first day of the UTC month of first_purchase_ts
--   acquisition_month_index: months since year 0 of acquisition_month (year * 12 + month - 1)
--   second_purchase_ts: their second completed order (UTC), the first repeat purchase; null if none
--   last_purchase_ts: their latest completed order (UTC)
--   purchases: completed orders
--   revenue_cents: sum of amount_cents over completed orders, US cents (exact)
--   revenue_usd: revenue_cents / 100, USD
with customers_in as (
    select customer_id, signup_ts, market, acquisition_channel, referrer_customer_id, is_member
    from customers
),

purchases as (
    select customer_id, order_id, order_ts, amount_cents, market, channel
    from stg_purchases
),

ranked_purchases as (
    select
        customer_id,
        order_ts,
        row_number() over (partition by customer_id order by order_ts, order_id) as purchase_number
    from purchases
),

second_purchases as (
    select customer_id, order_ts as second_purchase_ts
    from ranked_purchases
    where purchase_number = 2
),

purchase_summary as (
    select
        customer_id,
        min(order_ts) as first_purchase_ts,
        max(order_ts) as last_purchase_ts,
        count(*) as purchases,
        sum(amount_cents) as revenue_cents,
        first_value(market order by order_ts, order_id) as first_market,
        first_value(channel order by order_ts, order_id) as first_channel
    from purchases
    group by customer_id
),

all_customers as (
    select customer_id from customers_in
    union
    select customer_id from purchase_summary
)

select
    all_customers.customer_id,
    coalesce(customers_in.signup_ts, purchase_summary.first_purchase_ts) as signup_ts,
    coalesce(nullif(customers_in.market, 'unknown'), purchase_summary.first_market, 'unknown') as market,
    coalesce(
        nullif(customers_in.acquisition_channel, 'unknown'), purchase_summary.first_channel, 'unknown'
    ) as acquisition_channel,
    customers_in.referrer_customer_id,
    customers_in.is_member,
    purchase_summary.first_purchase_ts,
    cast(date_trunc('month', purchase_summary.first_purchase_ts) as date) as acquisition_month,
    cast(date_part('year', purchase_summary.first_purchase_ts) as int) * 12
    + cast(date_part('month', purchase_summary.first_purchase_ts) as int) - 1 as acquisition_month_index,
    second_purchases.second_purchase_ts,
    purchase_summary.last_purchase_ts,
    coalesce(purchase_summary.purchases, 0) as purchases,
    coalesce(purchase_summary.revenue_cents, 0) as revenue_cents,
    coalesce(purchase_summary.revenue_cents, 0) / 100.0 as revenue_usd
from all_customers
left join customers_in on all_customers.customer_id = customers_in.customer_id
left join purchase_summary on all_customers.customer_id = purchase_summary.customer_id
left join second_purchases on all_customers.customer_id = second_purchases.customer_id
order by all_customers.customer_id
