-- The days each known customer was seen logged in, with their next such day: what DAU and MAU are
-- built from, computed once. Customers who never bought count too: a logged-in visitor is an
-- active user. Anonymous sessions (no customer_id) carry no visitor id in the input contract, so
-- they cannot be counted as distinct users and are left out. A logged-in visitor no customers
-- row or order knows still counts, under market and channel 'unknown'.
-- grain: one row per (customer_id, day_number) with at least one logged-in session
-- materialized: table
-- columns:
--   customer_id: the customer
--   market: the customer's market (from stg_customers), else unknown
--   channel: the customer's acquisition channel (from stg_customers), else unknown
--   day_number: the session day in the visit's market time, in days since 1970-01-01
--   next_day_number: the customer's next session day; null if none yet
with sessions_in as (
    -- the day in the visit's market (see stg_purchases)
    select distinct
        customer_id,
        cast(cast(market_time(session_start_ts, market, settings.time_zones) as date) as int) as day_number
    -- the one-row side first: a cross join holds its left side in memory
    from settings
    cross join sessions
    where customer_id is not null
),

customers_in as (
    select customer_id, market, acquisition_channel as channel
    from stg_customers
)

select
    sessions_in.customer_id,
    coalesce(customers_in.market, 'unknown') as market,
    coalesce(customers_in.channel, 'unknown') as channel,
    sessions_in.day_number,
    lead(sessions_in.day_number) over (
        partition by sessions_in.customer_id order by sessions_in.day_number
    ) as next_day_number
from sessions_in
left join customers_in on sessions_in.customer_id = customers_in.customer_id
order by sessions_in.customer_id, sessions_in.day_number
