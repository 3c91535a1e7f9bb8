-- The daily KPI measures of kpi_daily, before statuses: computed once here and read by
-- kpi_daily, which adds the red/yellow/green statuses. Definitions: see kpi_daily.
-- grain: one row per (day, market, channel), every day from the first order to the run date
-- materialized: table
-- columns:
--   day: the UTC calendar day
--   market: market (ISO 3166 alpha-2), or '(all)' on roll-up rows
--   channel: acquisition channel (customers) and spend channel (spend), or '(all)' on roll-up rows
--   new_customers: customers whose first purchase was that day
--   active_customers: distinct customers with a purchase that day
--   orders: completed orders that day
--   revenue_usd: revenue of those orders, USD
--   marketing_spend_usd: marketing spend that day, USD; null when the marketing_spend input is absent
--   cac_usd: marketing_spend_usd / new_customers; null without new customers or without the marketing_spend input
--   arpu_usd: revenue_usd / active_customers; null without active customers
--   repeat_purchase_rate: customers with two or more purchases by the day's end / customers with at least one
--   monthly_churn_rate: customers whose lapse (churn_lapse_months * 30 days without a purchase) completed in the 30 days ending that day / customers with a purchase in the lapse before those 30 days began
--   retention_6m: of the customers acquired 182 days before, the share with a second purchase by the end of the day
--   ltv_12m_usd: of the customers acquired 365 days before, revenue in their first 365 days per customer, USD
--   ltv_to_cac: ltv_12m_usd / the CAC of that same acquisition day
--   dau: distinct logged-in customers with a session that day; null without the sessions input
--   mau: distinct logged-in customers with a session in the 30 days ending that day; null without the sessions input
--   dau_mau: dau / mau
--   invite_share_rate: distinct customers who sent an invite that day / active_customers; null without the invites input
--   invite_conversion: invites sent that day and accepted by the run date / invites sent that day
--   roas: revenue_usd / marketing_spend_usd
--   delivered_within_7d_share: of shipped orders placed that day whose 7 days have passed by the run date's end, the share delivered within 7 days of the order; null while none has (counting only fast deliveries of recent orders would bias it up)
--   avg_delivery_days: average days from order to delivery over delivered orders placed that day
with customers_in as (
    select
        customer_id,
        market,
        acquisition_channel as channel,
        cast(cast(first_purchase_ts as date) as int) as acquisition_day,
        cast(cast(second_purchase_ts as date) as int) as second_purchase_day
    from stg_customers
    where first_purchase_ts is not null
),

spend_in as (
    select cast(spend_date as int) as day_number, market, channel, cast(round(spend_usd * 100) as bigint) as spend_cents
    from marketing_spend
),

invites_in as (
    select inviter_customer_id, cast(cast(sent_ts as date) as int) as day_number, accepted_ts from invites
),

days as (
    select day, day_number from calendar_days
),

lapse as (
    select churn_lapse_months * 30 as lapse_days from settings
),

context as (
    select has_sessions, has_marketing_spend, has_invites from run_context
),

segments as (
    select distinct market, channel from customers_in
    union
    select distinct market, channel from spend_in
),

grid as (
    select days.day, days.day_number, segments.market, segments.channel
    from days
    cross join segments
),

customer_days as (
    select customer_id, market, channel, day_number, next_day_number, orders, revenue_cents
    from stg_customer_days
),

-- Each purchase day keeps the customer in the churn base for the lapse days after it, until the
-- next purchase day: +1 the day after, -1 the day after the coverage ends; a churn when the lapse
-- runs out before the next purchase.
purchase_spans as (
    select customer_days.market, customer_days.channel, customer_days.day_number, customer_days.next_day_number,
        lapse.lapse_days
    from customer_days
    cross join lapse
),

churn_events as (
    select day_number + 1 as day_number, market, channel, 1 as base_change, 0 as churned from purchase_spans
    union all
    select
        case
            when next_day_number is null or next_day_number > day_number + lapse_days then day_number + lapse_days
            else next_day_number
        end + 1,
        market, channel, -1, 0
    from purchase_spans
    union all
    select day_number + lapse_days, market, channel, 0, 1
    from purchase_spans
    where next_day_number is null or next_day_number > day_number + lapse_days
),

session_spans as (
    select market, channel, day_number, next_day_number from stg_session_days
),

-- A session day keeps the customer in MAU for 30 days, until their next session day.
mau_events as (
    select day_number, market, channel, 1 as mau_change, 1 as dau
    from session_spans
    union all
    select
        case
            when next_day_number is null or next_day_number > day_number + 30 then day_number + 30
            else next_day_number
        end,
        market, channel, -1, 0
    from session_spans
),

daily_events as (
    select day_number, market, channel,
        sum(base_change) as base_change, sum(churned) as churned, 0 as mau_change, 0 as dau
    from churn_events
    group by day_number, market, channel
    union all
    select day_number, market, channel, 0, 0, sum(mau_change), sum(dau)
    from mau_events
    group by day_number, market, channel
),

events as (
    select day_number, market, channel,
        sum(base_change) as base_change, sum(churned) as churned, sum(mau_change) as mau_change, sum(dau) as dau
    from daily_events
    group by day_number, market, channel
),

acquisitions as (
    select acquisition_day as day_number, market, channel, count(*) as new_customers
    from customers_in
    group by 1, 2, 3
),

second_purchases as (
    select second_purchase_day as day_number, market, channel, count(*) as second_purchases
    from customers_in
    where second_purchase_day is not null
    group by 1, 2, 3
),

activity as (
    select day_number, market, channel,
        count(*) as active_customers, sum(orders) as orders, sum(revenue_cents) as revenue_cents
    from customer_days
    group by 1, 2, 3
),

spend as (
    select day_number, market, channel, sum(spend_cents) as spend_cents
    from spend_in
    group by 1, 2, 3
),

retention as (
    select
        acquisition_day + 182 as day_number,
        market,
        channel,
        count(*) as cohort_6m_size,
        sum(case when second_purchase_day <= acquisition_day + 182 then 1 else 0 end) as cohort_6m_retained
    from customers_in
    group by 1, 2, 3
),

ltv as (
    select
        customers_in.acquisition_day + 365 as day_number,
        customers_in.market,
        customers_in.channel,
        sum(customer_days.revenue_cents) as cohort_12m_revenue_cents
    from customers_in
    join customer_days
        on customers_in.customer_id = customer_days.customer_id
        and customer_days.day_number < customers_in.acquisition_day + 365
    group by 1, 2, 3
),

referrals as (
    select
        invites_in.day_number,
        customers_in.market,
        customers_in.channel,
        count(*) as invites_sent,
        count(invites_in.accepted_ts) as invites_accepted,
        count(distinct invites_in.inviter_customer_id) as sharers
    from invites_in
    join customers_in on invites_in.inviter_customer_id = customers_in.customer_id
    group by 1, 2, 3
),

delivery as (
    select
        order_day_number as day_number,
        market,
        channel,
        sum(outcome_known) as delivery_known,
        sum(delivered_within_7d) as delivered_within_7d,
        sum(delivered) as delivered,
        sum(delivery_micros) as delivery_micros_sum
    from stg_order_deliveries
    group by 1, 2, 3
),

base as (
    select
        grid.day,
        grid.day_number,
        grid.market,
        grid.channel,
        coalesce(acquisitions.new_customers, 0) as new_customers,
        coalesce(second_purchases.second_purchases, 0) as second_purchases,
        coalesce(activity.active_customers, 0) as active_customers,
        coalesce(activity.orders, 0) as orders,
        coalesce(activity.revenue_cents, 0) as revenue_cents,
        coalesce(spend.spend_cents, 0) as spend_cents,
        coalesce(events.base_change, 0) as base_change,
        coalesce(events.churned, 0) as churned,
        coalesce(events.mau_change, 0) as mau_change,
        coalesce(events.dau, 0) as dau,
        coalesce(retention.cohort_6m_size, 0) as cohort_6m_size,
        coalesce(retention.cohort_6m_retained, 0) as cohort_6m_retained,
        coalesce(ltv.cohort_12m_revenue_cents, 0) as cohort_12m_revenue_cents,
        coalesce(referrals.invites_sent, 0) as invites_sent,
        coalesce(referrals.invites_accepted, 0) as invites_accepted,
        coalesce(referrals.sharers, 0) as sharers,
        coalesce(delivery.delivery_known, 0) as delivery_known,
        coalesce(delivery.delivered_within_7d, 0) as delivered_within_7d,
        coalesce(delivery.delivered, 0) as delivered,
        coalesce(delivery.delivery_micros_sum, 0) as delivery_micros_sum
    from grid
    left join acquisitions
        on grid.day_number = acquisitions.day_number and grid.market = acquisitions.market and grid.channel = acquisitions.channel
    left join second_purchases
        on grid.day_number = second_purchases.day_number and grid.market = second_purchases.market
        and grid.channel = second_purchases.channel
    left join activity
        on grid.day_number = activity.day_number and grid.market = activity.market and grid.channel = activity.channel
    left join spend
        on grid.day_number = spend.day_number and grid.market = spend.market and grid.channel = spend.channel
    left join events
        on grid.day_number = events.day_number and grid.market = events.market and grid.channel = events.channel
    left join retention
        on grid.day_number = retention.day_number and grid.market = retention.market and grid.channel = retention.channel
    left join ltv
        on grid.day_number = ltv.day_number and grid.market = ltv.market and grid.channel = ltv.channel
    left join referrals
        on grid.day_number = referrals.day_number and grid.market = referrals.market and grid.channel = referrals.channel
    left join delivery
        on grid.day_number = delivery.day_number and grid.market = delivery.market and grid.channel = delivery.channel
),

rolled_up as (
    select
        day,
        day_number,
        case when grouping(market) = 1 then '(all)' else market end as market,
        case when grouping(channel) = 1 then '(all)' else channel end as channel,
        sum(new_customers) as new_customers,
        sum(second_purchases) as second_purchases,
        sum(active_customers) as active_customers,
        sum(orders) as orders,
        sum(revenue_cents) as revenue_cents,
        sum(spend_cents) as spend_cents,
        sum(base_change) as base_change,
        sum(churned) as churned,
        sum(mau_change) as mau_change,
        sum(dau) as dau,
        sum(cohort_6m_size) as cohort_6m_size,
        sum(cohort_6m_retained) as cohort_6m_retained,
        sum(cohort_12m_revenue_cents) as cohort_12m_revenue_cents,
        sum(invites_sent) as invites_sent,
        sum(invites_accepted) as invites_accepted,
        sum(sharers) as sharers,
        sum(delivery_known) as delivery_known,
        sum(delivered_within_7d) as delivered_within_7d,
        sum(delivered) as delivered,
        sum(delivery_micros_sum) as delivery_micros_sum
    from base
    group by grouping sets (
        (day, day_number, market, channel),
        (day, day_number, market),
        (day, day_number, channel),
        (day, day_number)
    )
),

running as (
    select
        *,
        sum(new_customers) over to_date as customers_to_date,
        sum(second_purchases) over to_date as repeat_customers_to_date,
        sum(base_change) over to_date as churn_base_today,
        sum(mau_change) over to_date as mau,
        sum(churned) over last_30_days as churned_30d,
        lag(new_customers, 365) over by_day as cohort_12m_size,
        lag(spend_cents, 365) over by_day as cohort_12m_spend_cents
    from rolled_up
    window
        to_date as (partition by market, channel order by day_number rows between unbounded preceding and current row),
        last_30_days as (partition by market, channel order by day_number rows between 29 preceding and current row),
        by_day as (partition by market, channel order by day_number)
),

with_base as (
    select
        *,
        lag(churn_base_today, 29) over (partition by market, channel order by day_number) as churn_base_30d
    from running
),

kpis as (
    select
        day,
        market,
        channel,
        new_customers,
        active_customers,
        orders,
        revenue_cents / 100.0 as revenue_usd,
        case when has_marketing_spend then spend_cents / 100.0 end as marketing_spend_usd,
        case when has_marketing_spend and new_customers > 0 then spend_cents / 100.0 / new_customers end as cac_usd,
        case when active_customers > 0 then revenue_cents / 100.0 / active_customers end as arpu_usd,
        case when customers_to_date > 0 then cast(repeat_customers_to_date as double) / customers_to_date end
            as repeat_purchase_rate,
        case when churn_base_30d > 0 then cast(churned_30d as double) / churn_base_30d end as monthly_churn_rate,
        case when cohort_6m_size > 0 then cast(cohort_6m_retained as double) / cohort_6m_size end as retention_6m,
        case when cohort_12m_size > 0 then cohort_12m_revenue_cents / 100.0 / cohort_12m_size end as ltv_12m_usd,
        case
            when has_marketing_spend and cohort_12m_size > 0 and cohort_12m_spend_cents > 0
                then cast(cohort_12m_revenue_cents as double) / cohort_12m_spend_cents
        end as ltv_to_cac,
        case when has_sessions then dau end as dau,
        case when has_sessions then mau end as mau,
        case when mau > 0 then cast(dau as double) / mau end as dau_mau,
        case when has_invites and active_customers > 0 then cast(sharers as double) / active_customers end
            as invite_share_rate,
        case when invites_sent > 0 then cast(invites_accepted as double) / invites_sent end as invite_conversion,
        case when spend_cents > 0 then cast(revenue_cents as double) / spend_cents end as roas,
        case when delivery_known > 0 then cast(delivered_within_7d as double) / delivery_known end
            as delivered_within_7d_share,
        case when delivered > 0 then delivery_micros_sum / 86400000000.0 / delivered end as avg_delivery_days
    from with_base
    cross join context
)

select * from kpis
order by day, market, channel
