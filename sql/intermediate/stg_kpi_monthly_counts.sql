-- The monthly KPI measures of kpi_monthly, before statuses: computed once here and read by
-- kpi_monthly, which adds the red/yellow/green statuses. Definitions: see kpi_monthly.
-- grain: one row per (month_start, market, channel), every month from the first order to the run date
-- materialized: table
-- columns:
--   month_start: first day of the UTC calendar month
--   market: market (ISO 3166 alpha-2), or '(all)' on roll-up rows
--   channel: acquisition channel (customers) and spend channel (spend), or '(all)' on roll-up rows
--   new_customers: customers whose first purchase falls in the month
--   active_customers: distinct customers with at least one purchase in the month
--   orders: completed orders in the month
--   revenue_usd: revenue of those orders, USD
--   marketing_spend_usd: marketing spend in the month, USD; null when the marketing_spend input is absent
--   cac_usd: marketing_spend_usd / new_customers; null without new customers or without the marketing_spend input (on '(all)' rows: blended over every channel, organic included)
--   arpu_usd: revenue_usd / active_customers; null without active customers
--   repeat_purchase_rate: customers with two or more purchases by the month's end / customers with at least one
--   monthly_churn_rate: customers whose last purchase was exactly churn_lapse_months months before this month (and none since) / customers with a purchase in the churn_lapse_months months before this month
--   retention_6m: of the cohort acquired 6 months before this month, the share with a second purchase by the end of this month
--   ltv_12m_usd: of the cohort acquired 12 months before this month, revenue in its first 12 months (months 0 to 11) per customer, USD
--   ltv_to_cac: ltv_12m_usd / the CAC of that same cohort's month
--   dau: logged-in customers with a session, averaged over the days of the month up to the run date; null without the sessions input
--   mau: distinct logged-in customers with a session in the month; null without the sessions input
--   dau_mau: dau / mau
--   invite_share_rate: distinct customers who sent an invite in the month / active_customers; null without the invites input
--   invite_conversion: invites sent in the month and accepted by the run date / invites sent in the month
--   roas: revenue_usd / marketing_spend_usd (revenue of the month's buyers of that acquisition channel per dollar spent on it)
--   delivered_within_7d_share: of shipped orders placed in the month whose 7 days have passed by the run date's end, the share delivered within 7 days of the order; null while none has (counting only fast deliveries of recent orders would bias it up)
--   avg_delivery_days: average days from order to delivery over delivered orders placed in the month
with customers_in as (
    select
        customer_id, market, acquisition_channel as channel, acquisition_month_index, second_purchase_ts,
        first_purchase_ts
    from stg_customers
    where first_purchase_ts is not null
),

customer_months as (
    select
        customer_id, market, acquisition_channel as channel, activity_month_index, next_activity_month_index,
        months_since, orders, revenue_cents
    from stg_customer_months
),

spend_in as (
    select spend_date, market, channel, cast(round(spend_usd * 100) as bigint) as spend_cents
    from marketing_spend
),

invites_in as (
    select inviter_customer_id, sent_ts, accepted_ts from invites
),

months as (
    select month_start, month_index, days_in_period from calendar_months
),

lapse as (
    select churn_lapse_months from settings
),

lapse_steps as (
    select numbers.n, lapse.churn_lapse_months
    from numbers
    cross join lapse
    where numbers.n between 1 and lapse.churn_lapse_months
),

inputs_present as (
    select has_sessions, has_marketing_spend, has_invites, has_shipments from run_context
),

segments as (
    select distinct market, channel from customers_in
    union
    select distinct market, channel from spend_in
),

grid as (
    select months.month_start, months.month_index, months.days_in_period, segments.market, segments.channel
    from months
    cross join segments
),

acquisitions as (
    select acquisition_month_index as month_index, market, channel, count(*) as new_customers
    from customers_in
    group by acquisition_month_index, market, channel
),

second_purchases as (
    select
        cast(date_part('year', second_purchase_ts) as int) * 12 + cast(date_part('month', second_purchase_ts) as int) - 1
            as month_index,
        market,
        channel,
        count(*) as second_purchases
    from customers_in
    where second_purchase_ts is not null
    group by 1, 2, 3
),

activity as (
    select
        activity_month_index as month_index,
        market,
        channel,
        count(*) as active_customers,
        sum(orders) as orders,
        sum(revenue_cents) as revenue_cents
    from customer_months
    group by activity_month_index, market, channel
),

spend as (
    select
        cast(date_part('year', spend_date) as int) * 12 + cast(date_part('month', spend_date) as int) - 1 as month_index,
        market,
        channel,
        sum(spend_cents) as spend_cents
    from spend_in
    group by 1, 2, 3
),

-- A month with a purchase keeps the customer in the churn base for the lapse months after it,
-- until their next month with a purchase; they churn in the last of those months if no purchase came.
churn_coverage as (
    select
        customer_months.activity_month_index + lapse_steps.n as month_index,
        customer_months.market,
        customer_months.channel,
        case
            when lapse_steps.n = lapse_steps.churn_lapse_months
                and (customer_months.next_activity_month_index is null
                     or customer_months.next_activity_month_index > customer_months.activity_month_index + lapse_steps.n)
                then 1
            else 0
        end as churned
    from customer_months
    cross join lapse_steps
    where customer_months.next_activity_month_index is null
        or customer_months.activity_month_index + lapse_steps.n <= customer_months.next_activity_month_index
),

churn as (
    select month_index, market, channel, count(*) as churn_base, sum(churned) as churned
    from churn_coverage
    group by month_index, market, channel
),

retention as (
    select
        acquisition_month_index + 6 as month_index,
        market,
        channel,
        count(*) as cohort_6m_size,
        sum(
            case
                when second_purchase_ts is not null
                    and cast(date_part('year', second_purchase_ts) as int) * 12
                        + cast(date_part('month', second_purchase_ts) as int) - 1 <= acquisition_month_index + 6
                    then 1
                else 0
            end
        ) as cohort_6m_retained
    from customers_in
    group by 1, 2, 3
),

ltv as (
    select
        activity_month_index - months_since + 12 as month_index,
        market,
        channel,
        sum(revenue_cents) as cohort_12m_revenue_cents
    from customer_months
    where months_since <= 11
    group by 1, 2, 3
),

engagement as (
    select
        cast(date_part('year', session_day) as int) * 12 + cast(date_part('month', session_day) as int) - 1
            as month_index,
        market,
        channel,
        count(*) as customer_days,
        count(distinct customer_id) as mau
    from (
        select customer_id, cast(day_number as date) as session_day, market, channel from stg_session_days
    ) as customer_days
    group by 1, 2, 3
),

referrals as (
    select
        cast(date_part('year', invites_in.sent_ts) as int) * 12 + cast(date_part('month', invites_in.sent_ts) as int) - 1
            as month_index,
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
        order_month_index as month_index,
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
        grid.month_start,
        grid.month_index,
        grid.days_in_period,
        grid.market,
        grid.channel,
        coalesce(acquisitions.new_customers, 0) as new_customers,
        coalesce(second_purchases.second_purchases, 0) as second_purchases,
        coalesce(activity.active_customers, 0) as active_customers,
        coalesce(activity.orders, 0) as orders,
        coalesce(activity.revenue_cents, 0) as revenue_cents,
        coalesce(spend.spend_cents, 0) as spend_cents,
        coalesce(churn.churn_base, 0) as churn_base,
        coalesce(churn.churned, 0) as churned,
        coalesce(retention.cohort_6m_size, 0) as cohort_6m_size,
        coalesce(retention.cohort_6m_retained, 0) as cohort_6m_retained,
        coalesce(ltv.cohort_12m_revenue_cents, 0) as cohort_12m_revenue_cents,
        coalesce(engagement.customer_days, 0) as customer_days,
        coalesce(engagement.mau, 0) as mau,
        coalesce(referrals.invites_sent, 0) as invites_sent,
        coalesce(referrals.invites_accepted, 0) as invites_accepted,
        coalesce(referrals.sharers, 0) as sharers,
        coalesce(delivery.delivery_known, 0) as delivery_known,
        coalesce(delivery.delivered_within_7d, 0) as delivered_within_7d,
        coalesce(delivery.delivered, 0) as delivered,
        coalesce(delivery.delivery_micros_sum, 0) as delivery_micros_sum
    from grid
    left join acquisitions
        on grid.month_index = acquisitions.month_index and grid.market = acquisitions.market and grid.channel = acquisitions.channel
    left join second_purchases
        on grid.month_index = second_purchases.month_index and grid.market = second_purchases.market and grid.channel = second_purchases.channel
    left join activity
        on grid.month_index = activity.month_index and grid.market = activity.market and grid.channel = activity.channel
    left join spend
        on grid.month_index = spend.month_index and grid.market = spend.market and grid.channel = spend.channel
    left join churn
        on grid.month_index = churn.month_index and grid.market = churn.market and grid.channel = churn.channel
    left join retention
        on grid.month_index = retention.month_index and grid.market = retention.market and grid.channel = retention.channel
    left join ltv
        on grid.month_index = ltv.month_index and grid.market = ltv.market and grid.channel = ltv.channel
    left join engagement
        on grid.month_index = engagement.month_index and grid.market = engagement.market and grid.channel = engagement.channel
    left join referrals
        on grid.month_index = referrals.month_index and grid.market = referrals.market and grid.channel = referrals.channel
    left join delivery
        on grid.month_index = delivery.month_index and grid.market = delivery.market and grid.channel = delivery.channel
),

rolled_up as (
    select
        month_start,
        month_index,
        days_in_period,
        case when grouping(market) = 1 then '(all)' else market end as market,
        case when grouping(channel) = 1 then '(all)' else channel end as channel,
        sum(new_customers) as new_customers,
        sum(second_purchases) as second_purchases,
        sum(active_customers) as active_customers,
        sum(orders) as orders,
        sum(revenue_cents) as revenue_cents,
        sum(spend_cents) as spend_cents,
        sum(churn_base) as churn_base,
        sum(churned) as churned,
        sum(cohort_6m_size) as cohort_6m_size,
        sum(cohort_6m_retained) as cohort_6m_retained,
        sum(cohort_12m_revenue_cents) as cohort_12m_revenue_cents,
        sum(customer_days) as customer_days,
        sum(mau) as mau,
        sum(invites_sent) as invites_sent,
        sum(invites_accepted) as invites_accepted,
        sum(sharers) as sharers,
        sum(delivery_known) as delivery_known,
        sum(delivered_within_7d) as delivered_within_7d,
        sum(delivered) as delivered,
        sum(delivery_micros_sum) as delivery_micros_sum
    from base
    group by grouping sets (
        (month_start, month_index, days_in_period, market, channel),
        (month_start, month_index, days_in_period, market),
        (month_start, month_index, days_in_period, channel),
        (month_start, month_index, days_in_period)
    )
),

with_history as (
    select
        *,
        sum(new_customers) over to_date as customers_to_date,
        sum(second_purchases) over to_date as repeat_customers_to_date,
        lag(new_customers, 12) over by_month as cohort_12m_size,
        lag(spend_cents, 12) over by_month as cohort_12m_spend_cents
    from rolled_up
    window
        to_date as (partition by market, channel order by month_index rows between unbounded preceding and current row),
        by_month as (partition by market, channel order by month_index)
),

kpis as (
    select
        month_start,
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
        case when churn_base > 0 then cast(churned as double) / churn_base end as monthly_churn_rate,
        case when cohort_6m_size > 0 then cast(cohort_6m_retained as double) / cohort_6m_size end as retention_6m,
        case when cohort_12m_size > 0 then cohort_12m_revenue_cents / 100.0 / cohort_12m_size end as ltv_12m_usd,
        case
            when has_marketing_spend and cohort_12m_size > 0 and cohort_12m_spend_cents > 0
                then (cast(cohort_12m_revenue_cents as double) / cohort_12m_size)
                    / (cast(cohort_12m_spend_cents as double) / cohort_12m_size)
        end as ltv_to_cac,
        case when has_sessions then cast(customer_days as double) / days_in_period end as dau,
        case when has_sessions then mau end as mau,
        case when mau > 0 then cast(customer_days as double) / days_in_period / mau end as dau_mau,
        case when has_invites and active_customers > 0 then cast(sharers as double) / active_customers end
            as invite_share_rate,
        case when invites_sent > 0 then cast(invites_accepted as double) / invites_sent end as invite_conversion,
        case when spend_cents > 0 then cast(revenue_cents as double) / spend_cents end as roas,
        case when delivery_known > 0 then cast(delivered_within_7d as double) / delivery_known end
            as delivered_within_7d_share,
        case when delivered > 0 then delivery_micros_sum / 86400000000.0 / delivered end as avg_delivery_days
    from with_history
    cross join inputs_present
)

select * from kpis
order by month_start, market, channel
