-- Delivery time by route, origin to destination market, per month of order: where the plan's
-- 7-day promise is kept and where it is not. The 7-day rule is stg_order_deliveries' (the one
-- place it is written, also read by the scorecards): an order counts once 7 days have passed since
-- it was placed. Only shipped orders have a route; an unshipped order counts as late in the
-- scorecards' delivered_within_7d_share but belongs to no route here.
-- grain: one row per (month_start, origin_market, dest_market) with a shipped completed order placed in the month
-- materialized: table
-- columns:
--   month_start: first day of the calendar month the orders were placed in (market time)
--   origin_market: market shipped from
--   dest_market: market shipped to
--   shipped_orders: completed orders placed in the month and shipped on this route
--   delivered_orders: of those, delivered by the run date
--   delivery_known: of those shipped, orders whose 7 days have passed by the run date's end
--   delivered_within_7d_share: of those, the share delivered within 7 days of the order; null without any
--   avg_delivery_days: average days from order to delivery over the delivered orders; null without any
--   median_delivery_days: the median of those days; null without any
with shipped as (
    select
        order_month_index,
        origin_market,
        dest_market,
        outcome_known,
        delivered_within_7d,
        delivered,
        delivery_micros
    from stg_order_deliveries
    where shipped = 1
)

select
    make_date(order_month_index / 12, order_month_index % 12 + 1, 1) as month_start,
    origin_market,
    dest_market,
    count(*) as shipped_orders,
    sum(delivered) as delivered_orders,
    sum(outcome_known) as delivery_known,
    case when sum(outcome_known) > 0 then cast(sum(delivered_within_7d) as double) / sum(outcome_known) end
        as delivered_within_7d_share,
    -- Summed in whole microseconds, then divided: a float average's last digit would depend on the
    -- order rows arrive in, which differs between runs (and under a memory cap).
    case when count(delivery_micros) > 0 then sum(delivery_micros) / 86400000000.0 / count(delivery_micros) end
        as avg_delivery_days,
    median(delivery_micros) / 86400000000.0 as median_delivery_days
from shipped
group by order_month_index, origin_market, dest_market
order by month_start, origin_market, dest_market
