-- What the segment and churn models learn from: one row of behaviour per buying customer, as of
-- the run date. Every input view already hides what happened after the end of the run date, so
-- the same query run for an earlier date gives the features as they were then (the churn job
-- does exactly that for its training and validation cut-offs). Windows (last 30/90/180 days)
-- end at the run date's end. Counts are exact; averages come from exact integer sums, so
-- reruns give identical bytes.
-- grain: one row per customer with at least one completed purchase by the run date
-- materialized: table
-- columns:
--   customer_id: the customer
--   market: the customer's market (ISO 3166 alpha-2, `unknown` when not known); one-hot encoded by the models
--   acquisition_channel: how the customer was acquired; one-hot encoded by the models
--   is_member: paid membership; null when unknown (the models read null as false)
--   recency_days: days from the latest purchase to the end of the run date
--   frequency: completed purchases
--   monetary_usd: revenue of completed purchases, USD
--   tenure_days: days from the first purchase to the end of the run date
--   mean_days_between_purchases: mean gap between consecutive purchases, days; null with fewer than 2 purchases
--   sd_days_between_purchases: population standard deviation of those gaps, days; null with fewer than 2 purchases
--   avg_order_value_usd: monetary_usd / frequency, USD
--   discount_share: share of completed purchases with a discount
--   cancel_refund_share: share of all orders placed (any status) that were cancelled or refunded
--   purchases_30d: completed purchases in the 30 days up to the end of the run date
--   purchases_90d: completed purchases in the 90 days up to the end of the run date
--   purchases_180d: completed purchases in the 180 days up to the end of the run date
--   sessions_30d: logged-in sessions in the 30 days up to the end of the run date
--   sessions_90d: logged-in sessions in the 90 days up to the end of the run date
--   invites_sent: invites the customer sent
--   invites_accepted: of those, invites accepted by the run date
--   avg_delivery_days: mean days from order to delivery over delivered purchases; null when none delivered
--   late_delivery_share: share of shipped purchases whose 7 days have passed that were not delivered within 7 days; null when none
-- The windows' first instants, computed once here rather than once per order row (interval
-- arithmetic on a UTC timestamp goes through the time-zone database for every value).
with run_end as (
    select
        run_end_ts,
        run_end_ts - interval '30 days' as since_30d_ts,
        run_end_ts - interval '90 days' as since_90d_ts,
        run_end_ts - interval '180 days' as since_180d_ts
    from run_context
),

customers_in as (
    select customer_id, market, acquisition_channel, is_member, first_purchase_ts, last_purchase_ts, purchases,
        revenue_cents
    from stg_customers
    where first_purchase_ts is not null
),

purchases as (
    select customer_id, order_id, order_ts, discount_usd
    from stg_purchases
),

orders_in as (
    select customer_id, status
    from orders
),

sessions_in as (
    select customer_id, session_start_ts
    from sessions
    where customer_id is not null
),

invites_in as (
    select inviter_customer_id as customer_id, accepted_ts
    from invites
),

deliveries as (
    select customer_id, outcome_known, delivered_within_7d, delivered, delivery_micros
    from stg_order_deliveries
    where shipped = 1
),

-- Each purchase with the gap since the customer's previous one, and what the counts below read:
-- one pass, sorted per customer for the gaps, feeds both the gap statistics and the window
-- counts (a separate aggregation of the purchases for the counts cost another pass over every
-- completed order).
purchase_gaps as (
    select
        customer_id,
        order_ts,
        discount_usd,
        cast(order_ts as bigint) / 1000000
        - lag(cast(order_ts as bigint) / 1000000) over (partition by customer_id order by order_ts, order_id)
            as gap_seconds
    from purchases
),

purchase_summary as (
    select
        purchase_gaps.customer_id,
        -- null with fewer than 2 purchases, as the statistics below
        case when count(gap_seconds) > 0 then count(gap_seconds) end as gaps,
        sum(gap_seconds) as gap_seconds_sum,
        sum(gap_seconds * gap_seconds) as gap_seconds_squares,
        sum(case when purchase_gaps.discount_usd > 0 then 1 else 0 end) as discounted,
        sum(case when purchase_gaps.order_ts >= run_end.since_30d_ts then 1 else 0 end)
            as purchases_30d,
        sum(case when purchase_gaps.order_ts >= run_end.since_90d_ts then 1 else 0 end)
            as purchases_90d,
        sum(case when purchase_gaps.order_ts >= run_end.since_180d_ts then 1 else 0 end)
            as purchases_180d
    from run_end
    cross join purchase_gaps
    group by purchase_gaps.customer_id
),

order_outcomes as (
    select
        customer_id,
        count(*) as orders_placed,
        sum(case when status in ('cancelled', 'refunded') then 1 else 0 end) as cancelled_or_refunded
    from orders_in
    group by customer_id
),

session_windows as (
    select
        sessions_in.customer_id,
        sum(case when sessions_in.session_start_ts >= run_end.since_30d_ts then 1 else 0 end)
            as sessions_30d,
        sum(case when sessions_in.session_start_ts >= run_end.since_90d_ts then 1 else 0 end)
            as sessions_90d
    from sessions_in
    cross join run_end
    where sessions_in.session_start_ts >= run_end.since_90d_ts
    group by sessions_in.customer_id
),

invite_summary as (
    select customer_id, count(*) as invites_sent, count(accepted_ts) as invites_accepted
    from invites_in
    group by customer_id
),

delivery_summary as (
    select
        customer_id,
        sum(delivered) as delivered,
        sum(delivery_micros) as delivery_micros,
        sum(outcome_known) as outcome_known,
        sum(outcome_known - delivered_within_7d) as late
    from deliveries
    group by customer_id
),

-- The sources above hold one row per customer each; they are combined by an aggregation over a
-- union rather than by six joins, because an aggregation spills to disk under a memory cap where
-- a hash join's build side cannot (10M customers). max() picks each source's one value; a
-- source without a row for the customer leaves its columns null, as a left join did.
facts as (
    select
        -- is_member as 0/1: max() over booleans has no grouped accumulator in DataFusion 55 and
        -- falls back to one boxed accumulator per customer
        customer_id, 1 as from_customers, 0 as from_purchase_summary, market, acquisition_channel,
        cast(is_member as int) as is_member, first_purchase_ts, last_purchase_ts, purchases,
        revenue_cents, null as discounted,
        null as purchases_30d, null as purchases_90d, null as purchases_180d, null as gaps,
        null as gap_seconds_sum, null as gap_seconds_squares, null as orders_placed,
        null as cancelled_or_refunded, null as sessions_30d, null as sessions_90d, null as invites_sent,
        null as invites_accepted, null as delivered, null as delivery_micros, null as outcome_known,
        null as late
    from customers_in
    union all
    select
        customer_id, 0, 1, null, null, null, null, null, null, null, discounted, purchases_30d,
        purchases_90d, purchases_180d, gaps, gap_seconds_sum, gap_seconds_squares, null, null, null, null,
        null, null, null, null, null, null
    from purchase_summary
    union all
    select
        customer_id, 0, 0, null, null, null, null, null, null, null, null, null, null, null, null, null,
        null, orders_placed, cancelled_or_refunded, null, null, null, null, null, null, null, null
    from order_outcomes
    union all
    select
        customer_id, 0, 0, null, null, null, null, null, null, null, null, null, null, null, null, null,
        null, null, null, sessions_30d, sessions_90d, null, null, null, null, null, null
    from session_windows
    union all
    select
        customer_id, 0, 0, null, null, null, null, null, null, null, null, null, null, null, null, null,
        null, null, null, null, null, invites_sent, invites_accepted, null, null, null, null
    from invite_summary
    union all
    select
        customer_id, 0, 0, null, null, null, null, null, null, null, null, null, null, null, null, null,
        null, null, null, null, null, null, null, delivered, delivery_micros, outcome_known, late
    from delivery_summary
),

combined as (
    select
        customer_id,
        max(market) as market,
        max(acquisition_channel) as acquisition_channel,
        max(is_member) = 1 as is_member,
        max(first_purchase_ts) as first_purchase_ts,
        max(last_purchase_ts) as last_purchase_ts,
        max(purchases) as purchases,
        max(revenue_cents) as revenue_cents,
        max(discounted) as discounted,
        max(purchases_30d) as purchases_30d,
        max(purchases_90d) as purchases_90d,
        max(purchases_180d) as purchases_180d,
        max(gaps) as gaps,
        max(gap_seconds_sum) as gap_seconds_sum,
        max(gap_seconds_squares) as gap_seconds_squares,
        max(orders_placed) as orders_placed,
        max(cancelled_or_refunded) as cancelled_or_refunded,
        max(sessions_30d) as sessions_30d,
        max(sessions_90d) as sessions_90d,
        max(invites_sent) as invites_sent,
        max(invites_accepted) as invites_accepted,
        max(delivered) as delivered,
        max(delivery_micros) as delivery_micros,
        max(outcome_known) as outcome_known,
        max(late) as late
    from facts
    group by customer_id
    having max(from_customers) = 1 and max(from_purchase_summary) = 1
)

select
    customer_id,
    -- every row has its customers_in values (see the having above); the coalesces only keep
    -- these columns non-nullable in the schema, as they were when read straight from stg_customers
    coalesce(market, 'unknown') as market,
    coalesce(acquisition_channel, 'unknown') as acquisition_channel,
    is_member,
    (cast(run_end_ts as bigint) - cast(last_purchase_ts as bigint)) / 86400000000.0 as recency_days,
    coalesce(purchases, 0) as frequency,
    coalesce(revenue_cents, 0) / 100.0 as monetary_usd,
    (cast(run_end_ts as bigint) - cast(first_purchase_ts as bigint)) / 86400000000.0 as tenure_days,
    gap_seconds_sum / 86400.0 / gaps as mean_days_between_purchases,
    sqrt(greatest(
        cast(gap_seconds_squares as double) / gaps
        - power(cast(gap_seconds_sum as double) / gaps, 2),
        0.0
    )) / 86400.0 as sd_days_between_purchases,
    coalesce(revenue_cents, 0) / 100.0 / coalesce(purchases, 0) as avg_order_value_usd,
    cast(discounted as double) / purchases as discount_share,
    coalesce(cast(cancelled_or_refunded as double) / orders_placed, 0.0) as cancel_refund_share,
    purchases_30d,
    purchases_90d,
    purchases_180d,
    coalesce(sessions_30d, 0) as sessions_30d,
    coalesce(sessions_90d, 0) as sessions_90d,
    coalesce(invites_sent, 0) as invites_sent,
    coalesce(invites_accepted, 0) as invites_accepted,
    case when delivered > 0 then delivery_micros / 86400000000.0 / delivered end as avg_delivery_days,
    case when outcome_known > 0 then cast(late as double) / outcome_known end as late_delivery_share
-- run_end first: a cross join holds its left side in memory, and here that must be the one row,
-- not the 8.6M combined rows (1.2 GB at 10M customers, which broke a 1.5 GiB cap)
from run_end
cross join combined
order by customer_id
