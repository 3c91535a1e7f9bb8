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
with run_end as (
    select run_end_ts from run_context
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
),

purchase_gaps as (
    select
        customer_id,
        cast(order_ts as bigint) / 1000000
        - lag(cast(order_ts as bigint) / 1000000) over (partition by customer_id order by order_ts, order_id)
            as gap_seconds
    from purchases
),

gap_summary as (
    select
        customer_id,
        count(gap_seconds) as gaps,
        sum(gap_seconds) as gap_seconds_sum,
        sum(gap_seconds * gap_seconds) as gap_seconds_squares
    from purchase_gaps
    where gap_seconds is not null
    group by customer_id
),

purchase_windows as (
    select
        purchases.customer_id,
        sum(case when purchases.discount_usd > 0 then 1 else 0 end) as discounted,
        sum(case when purchases.order_ts >= run_end.run_end_ts - interval '30 days' then 1 else 0 end)
            as purchases_30d,
        sum(case when purchases.order_ts >= run_end.run_end_ts - interval '90 days' then 1 else 0 end)
            as purchases_90d,
        sum(case when purchases.order_ts >= run_end.run_end_ts - interval '180 days' then 1 else 0 end)
            as purchases_180d
    from purchases
    cross join run_end
    group by purchases.customer_id
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
        sum(case when sessions_in.session_start_ts >= run_end.run_end_ts - interval '30 days' then 1 else 0 end)
            as sessions_30d,
        sum(case when sessions_in.session_start_ts >= run_end.run_end_ts - interval '90 days' then 1 else 0 end)
            as sessions_90d
    from sessions_in
    cross join run_end
    where sessions_in.session_start_ts >= run_end.run_end_ts - interval '90 days'
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
)

select
    customers_in.customer_id,
    customers_in.market,
    customers_in.acquisition_channel,
    customers_in.is_member,
    (cast(run_end.run_end_ts as bigint) - cast(customers_in.last_purchase_ts as bigint)) / 86400000000.0
        as recency_days,
    customers_in.purchases as frequency,
    customers_in.revenue_cents / 100.0 as monetary_usd,
    (cast(run_end.run_end_ts as bigint) - cast(customers_in.first_purchase_ts as bigint)) / 86400000000.0
        as tenure_days,
    gap_summary.gap_seconds_sum / 86400.0 / gap_summary.gaps as mean_days_between_purchases,
    sqrt(greatest(
        cast(gap_summary.gap_seconds_squares as double) / gap_summary.gaps
        - power(cast(gap_summary.gap_seconds_sum as double) / gap_summary.gaps, 2),
        0.0
    )) / 86400.0 as sd_days_between_purchases,
    customers_in.revenue_cents / 100.0 / customers_in.purchases as avg_order_value_usd,
    cast(purchase_windows.discounted as double) / customers_in.purchases as discount_share,
    coalesce(cast(order_outcomes.cancelled_or_refunded as double) / order_outcomes.orders_placed, 0.0)
        as cancel_refund_share,
    purchase_windows.purchases_30d,
    purchase_windows.purchases_90d,
    purchase_windows.purchases_180d,
    coalesce(session_windows.sessions_30d, 0) as sessions_30d,
    coalesce(session_windows.sessions_90d, 0) as sessions_90d,
    coalesce(invite_summary.invites_sent, 0) as invites_sent,
    coalesce(invite_summary.invites_accepted, 0) as invites_accepted,
    case
        when delivery_summary.delivered > 0
            then delivery_summary.delivery_micros / 86400000000.0 / delivery_summary.delivered
    end as avg_delivery_days,
    case
        when delivery_summary.outcome_known > 0
            then cast(delivery_summary.late as double) / delivery_summary.outcome_known
    end as late_delivery_share
from customers_in
cross join run_end
join purchase_windows on customers_in.customer_id = purchase_windows.customer_id
left join gap_summary on customers_in.customer_id = gap_summary.customer_id
left join order_outcomes on customers_in.customer_id = order_outcomes.customer_id
left join session_windows on customers_in.customer_id = session_windows.customer_id
left join invite_summary on customers_in.customer_id = invite_summary.customer_id
left join delivery_summary on customers_in.customer_id = delivery_summary.customer_id
order by customers_in.customer_id
