-- Daily sales by market: what was ordered, what completed, and who bought for the first time.
-- grain: one row per (order_date, market) with at least one order
-- materialized: table
-- columns:
--   order_date: the calendar day (each market's in its own time zone, [time_zone])
--   market: the order's market (ISO 3166 alpha-2), `unknown` when absent
--   orders: orders placed, any status
--   purchases: completed orders
--   cancelled_orders: orders with status cancelled
--   refunded_orders: orders with status refunded
--   revenue_usd: sum of amount_usd over completed orders, USD
--   buyers: distinct customers with a completed order that day
--   new_customers: customers whose first completed order was that day (counted in the market of that order)
with orders_in as (
    select
        order_id, customer_id, order_ts, status, market,
        -- the day in the order's market (see stg_purchases)
        cast(market_time(order_ts, market, settings.time_zones) as date) as order_date,
        cast(round(amount_usd * 100) as bigint) as amount_cents
    -- the one-row side first: a cross join holds its left side in memory
    from settings
    cross join orders
),

first_orders as (
    -- Each customer's first purchase(s): every completed order at their earliest order time
    -- (stg_customers' first_purchase_ts), found by a join rather than by ranking every order.
    select orders_in.customer_id, orders_in.order_date, orders_in.market
    from orders_in
    join stg_customers
        on orders_in.customer_id = stg_customers.customer_id
        and orders_in.order_ts = stg_customers.first_purchase_ts
    where orders_in.status = 'completed'
),

orders_by_day as (
    select
        order_date,
        market,
        count(*) as orders,
        count(*) filter (where status = 'completed') as purchases,
        count(*) filter (where status = 'cancelled') as cancelled_orders,
        count(*) filter (where status = 'refunded') as refunded_orders,
        coalesce(sum(amount_cents) filter (where status = 'completed'), 0) / 100.0 as revenue_usd
    from orders_in
    group by order_date, market
),

buyer_days as (
    -- Distinct buyers by a group-by on (day, market, customer) and a count, not a count(distinct)
    -- per group: an aggregation over plain keys, which spills under a memory cap.
    select order_date, market, count(*) as buyers
    from (
        select order_date, market, customer_id
        from orders_in
        where status = 'completed'
        group by 1, 2, 3
    ) as buyer_day_markets
    group by order_date, market
),

first_purchases as (
    select
        order_date,
        market,
        count(distinct customer_id) as new_customers
    from first_orders
    group by order_date, market
)

select
    orders_by_day.order_date,
    orders_by_day.market,
    orders_by_day.orders,
    orders_by_day.purchases,
    orders_by_day.cancelled_orders,
    orders_by_day.refunded_orders,
    orders_by_day.revenue_usd,
    coalesce(buyer_days.buyers, 0) as buyers,
    coalesce(first_purchases.new_customers, 0) as new_customers
from orders_by_day
left join buyer_days
    on orders_by_day.order_date = buyer_days.order_date
    and orders_by_day.market = buyer_days.market
left join first_purchases
    on orders_by_day.order_date = first_purchases.order_date
    and orders_by_day.market = first_purchases.market
order by orders_by_day.order_date, orders_by_day.market
