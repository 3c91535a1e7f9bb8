-- The scorecards' additive counts per day, counted once for both grains: stg_kpi_monthly_counts
-- sums them by month_index, stg_kpi_daily_counts reads them as they are. Each count belongs to
-- the market and channel of its own event: orders by status to the customer's market and
-- acquisition channel (as every customer measure); spend and clicks to the spend's; sessions,
-- and the completed orders they are compared with, to the visit's and the order's own market and
-- channel (the traffic source), so the traffic mix and conversion compare like with like.
-- grain: one row per (day_number, market, channel) with at least one event, days from the first order to the run date
-- materialized: table
-- columns:
--   day_number: the day in the event's market time (orders and visits by their own market's time zone), in days since 1970-01-01
--   month_index: months since year 0 of the day's month (from calendar_days)
--   market: market (ISO 3166 alpha-2) of the event, as above
--   channel: channel of the event, as above
--   placed_orders: orders placed that day, whatever their status (a customer never known but by cancelled orders counts under the order's market and channel)
--   cancelled_orders: of those, status cancelled
--   refunded_orders: of those, status refunded
--   spend_cents: marketing spend that day, US cents
--   clicks: ad clicks that day; null when no spend row of the day reports clicks
--   click_spend_cents: spend of the rows that report clicks, US cents: the numerator of CPC
--   sessions: visits that day, anonymous ones included, by the visit's market and channel
--   organic_sessions: of those, visits whose channel is one of the organic_channels (sql/growth.toml)
--   traffic_orders: completed orders placed that day, by the order's own market and channel
with days as (
    select day_number, month_index from calendar_days
),

customers_in as (
    select customer_id, market, acquisition_channel as channel from stg_customers
),

organic as (
    select distinct channel from organic_channels
),

order_statuses as (
    select
        -- the day in the order's market (see stg_purchases)
        cast(cast(market_time(orders.order_ts, orders.market, settings.time_zones) as date) as int) as day_number,
        coalesce(customers_in.market, orders.market) as market,
        coalesce(customers_in.channel, orders.channel) as channel,
        count(*) as placed_orders,
        sum(case when orders.status = 'cancelled' then 1 else 0 end) as cancelled_orders,
        sum(case when orders.status = 'refunded' then 1 else 0 end) as refunded_orders
    -- the one-row side first: a cross join holds its left side in memory
    from settings
    cross join orders
    left join customers_in on orders.customer_id = customers_in.customer_id
    group by 1, 2, 3
),

spend as (
    select
        cast(spend_date as int) as day_number,
        market,
        channel,
        sum(cast(round(spend_usd * 100) as bigint)) as spend_cents,
        sum(clicks) as clicks,
        sum(case when clicks is not null then cast(round(spend_usd * 100) as bigint) else 0 end) as click_spend_cents
    from marketing_spend
    group by 1, 2, 3
),

visits as (
    select
        cast(cast(market_time(sessions.session_start_ts, sessions.market, settings.time_zones) as date) as int)
            as day_number,
        sessions.market,
        sessions.channel,
        count(*) as sessions,
        count(organic.channel) as organic_sessions
    from settings
    cross join sessions
    left join organic on sessions.channel = organic.channel
    group by 1, 2, 3
),

traffic_orders as (
    select cast(order_date as int) as day_number, market, channel, count(*) as traffic_orders
    from stg_purchases
    group by 1, 2, 3
),

events as (
    select day_number, market, channel,
        placed_orders, cancelled_orders, refunded_orders,
        0 as spend_cents, cast(null as bigint) as clicks, 0 as click_spend_cents, 0 as sessions, 0 as organic_sessions, 0 as traffic_orders
    from order_statuses
    union all
    select day_number, market, channel, 0, 0, 0, spend_cents, clicks, click_spend_cents, 0, 0, 0 from spend
    union all
    select day_number, market, channel, 0, 0, 0, 0, null, 0, sessions, organic_sessions, 0 from visits
    union all
    select day_number, market, channel, 0, 0, 0, 0, null, 0, 0, 0, traffic_orders from traffic_orders
)

select
    events.day_number,
    days.month_index,
    events.market,
    events.channel,
    sum(events.placed_orders) as placed_orders,
    sum(events.cancelled_orders) as cancelled_orders,
    sum(events.refunded_orders) as refunded_orders,
    sum(events.spend_cents) as spend_cents,
    sum(events.clicks) as clicks,
    sum(events.click_spend_cents) as click_spend_cents,
    sum(events.sessions) as sessions,
    sum(events.organic_sessions) as organic_sessions,
    sum(events.traffic_orders) as traffic_orders
from events
join days on events.day_number = days.day_number
group by events.day_number, days.month_index, events.market, events.channel
order by events.day_number, events.market, events.channel
