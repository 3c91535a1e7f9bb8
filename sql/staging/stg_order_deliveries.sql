-- Delivery outcome of each purchase: the one place the 7-day rule is written, read by both KPI
-- scorecards. An order's 7-day outcome is known once 7 days have passed since it was placed (by
-- the run date's end); only then does it count, so recent orders, of which only the fast
-- deliveries are visible yet, do not bias the share up. An order with no shipment 7 days on was
-- not delivered within 7 days: leaving it out would bias the share up too.
-- grain: one row per completed order (of a customer with a purchase)
-- materialized: table
-- columns:
--   order_id: the order
--   customer_id: who bought it
--   market: the customer's market (from stg_customers)
--   channel: the customer's acquisition channel (from stg_customers)
--   order_day_number: the day the order was placed in its market's time (see stg_purchases), in days since 1970-01-01
--   order_month_index: months since year 0 of the order's month (year * 12 + month - 1)
--   shipped: 1 when the shipments input holds the order, else 0
--   outcome_known: 1 when 7 days have passed since the order by the run date's end, else 0
--   delivered_within_7d: 1 when the outcome is known and it was delivered within 7 days of the order, else 0
--   delivered: 1 when delivered by the run date, else 0
--   delivery_micros: microseconds from order to delivery; null while not delivered
--   origin_market: the market it shipped from (shipments); null while not shipped
--   dest_market: the market it shipped to (shipments); null while not shipped
with completed_orders as (
    -- Without a shipments input, each completed order is its row as it stands: `orders` holds
    -- one row per order_id (the duplicate_key rule sets copies aside), so there is nothing to
    -- group. The optimizer drops whichever branch run_context's constant `has_shipments` rules
    -- out, so only one of the two runs (10M customers: grouping 159M orders by order_id for
    -- nothing took about half of this model).
    select
        order_id,
        customer_id,
        order_ts,
        market as order_market,
        arrow_cast(null, 'Timestamp(Microsecond, Some("UTC"))') as delivered_ts,
        arrow_cast(null, 'Utf8') as origin_market,
        arrow_cast(null, 'Utf8') as dest_market,
        -- 0, written as a nullable expression like the other branch's max(), so the
        -- published column's schema does not depend on whether shipments is present
        case when order_id is not null then cast(0 as bigint) end as shipped
    from run_context
    cross join orders
    where not run_context.has_shipments and orders.status = 'completed'
    union all
    -- With shipments, completed orders with their shipment, if any, joined on order_id as an
    -- aggregation over a union: both sides hold one row per order_id, and an aggregation spills
    -- to disk under a memory cap where a hash join's build side cannot (1.3 GB + 0.8 GB for 40M
    -- orders and shipments).
    select
        order_id,
        max(customer_id) as customer_id,
        max(order_ts) as order_ts,
        max(order_market) as order_market,
        max(delivered_ts) as delivered_ts,
        max(origin_market) as origin_market,
        max(dest_market) as dest_market,
        max(from_shipments) as shipped
    from run_context
    cross join (
        select
            order_id, customer_id, order_ts, market as order_market, null as delivered_ts, arrow_cast(null, 'Utf8') as origin_market,
            arrow_cast(null, 'Utf8') as dest_market, 1 as from_orders, 0 as from_shipments
        from orders
        where status = 'completed'
        union all
        select order_id, null, null, null, delivered_ts, origin_market, dest_market, 0, 1
        from shipments
    ) as both_sides
    where run_context.has_shipments
    group by order_id
    having max(from_orders) = 1
),

customers_in as (
    select customer_id, market, acquisition_channel as channel
    from stg_customers
    where first_purchase_ts is not null
),

-- An order's outcome is known when it was placed by this instant: computed once here, not per
-- order row (interval arithmetic on a UTC timestamp goes through the time-zone database for
-- every value).
run_end as (
    select run_end_ts - interval '7 days' as outcome_known_by_ts from run_context
)

select
    completed_orders.order_id,
    completed_orders.customer_id,
    customers_in.market,
    customers_in.channel,
    cast(cast(completed_orders.order_ts_local as date) as int) as order_day_number,
    cast(date_part('year', completed_orders.order_ts_local) as int) * 12
    + cast(date_part('month', completed_orders.order_ts_local) as int) - 1 as order_month_index,
    completed_orders.shipped,
    case when completed_orders.order_ts <= run_end.outcome_known_by_ts then 1 else 0 end as outcome_known,
    case
        when completed_orders.order_ts <= run_end.outcome_known_by_ts
            -- delivered at most 7 days (in microseconds) after it was placed: UTC has no
            -- daylight saving, so this is `delivered_ts <= order_ts + interval '7 days'`
            and cast(completed_orders.delivered_ts as bigint) - cast(completed_orders.order_ts as bigint)
                <= 7 * 86400 * 1000000
            then 1
        else 0
    end as delivered_within_7d,
    case when completed_orders.delivered_ts is not null then 1 else 0 end as delivered,
    -- whole microseconds, so sums are exact (a float sum would depend on row order)
    cast(completed_orders.delivered_ts as bigint) - cast(completed_orders.order_ts as bigint) as delivery_micros,
    completed_orders.origin_market,
    completed_orders.dest_market
from (
    -- the order's wall-clock time in its market, for its day and month (see stg_purchases)
    select completed_orders.*, market_time(completed_orders.order_ts, completed_orders.order_market, settings.time_zones) as order_ts_local
    from settings
    cross join completed_orders
) as completed_orders
join customers_in on completed_orders.customer_id = customers_in.customer_id
cross join run_end
order by completed_orders.order_id
