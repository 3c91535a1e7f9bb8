-- Paid-channel performance: what each channel cost, the customers it brought, what those
-- customers spent in their first 90 days, and where the budget should move.
-- Budget rule: within a (month, market), a channel whose roi is under roi_threshold
-- (sql/growth.toml) is told 'decrease'; a channel at or over it is told 'increase' when some
-- channel of the same month and market is under it (there is budget to move), else 'keep'.
-- No recommendation without spend, nor while the month's 90-day revenue window is open: a recent
-- month's revenue is not all in yet, and judging it early would push every recent month toward
-- 'decrease'.
-- grain: one row per (month_start, market, channel) with spend or new customers
-- materialized: table
-- columns:
--   month_start: first day of the UTC calendar month
--   market: market (ISO 3166 alpha-2)
--   channel: acquisition channel
--   spend_usd: marketing spend in the month, USD; null when the marketing_spend input is absent
--   impressions: ad impressions in the month
--   clicks: ad clicks in the month
--   ctr: clicks / impressions; null without impressions
--   cpc_usd: spend_usd / clicks; null without clicks
--   new_customers: customers whose first purchase falls in the month, acquired through the channel
--   cac_usd: spend_usd / new_customers; null without spend (no paid acquisition) or without new customers
--   revenue_90d_usd: revenue of those new customers in the 90 days from their first purchase (as of the run date), USD
--   revenue_window_complete: whether 90 days have passed since the end of the month by the run date, so revenue_90d_usd is final
--   roas_90d: revenue_90d_usd / spend_usd, the ROAS of the month's cohort; null without spend (kpi_monthly.blended_roas is revenue of all buyers / spend)
--   roi: (revenue_90d_usd - spend_usd) / spend_usd; null without spend
--   budget_recommendation: increase, keep or decrease by the rule above; null without spend or while revenue_window_complete is false
with customers_in as (
    select customer_id, market, acquisition_channel as channel, acquisition_month, first_purchase_ts
    from stg_customers
    where first_purchase_ts is not null
),

purchases as (
    select customer_id, order_ts, amount_cents from stg_purchases
),

spend_in as (
    select
        cast(date_trunc('month', spend_date) as date) as month_start,
        market,
        channel,
        cast(round(spend_usd * 100) as bigint) as spend_cents,
        impressions,
        clicks
    from marketing_spend
),

settings_in as (
    select roi_threshold from settings
),

run_end as (
    select run_end_ts, has_marketing_spend from run_context
),

spend as (
    select
        month_start,
        market,
        channel,
        sum(spend_cents) as spend_cents,
        sum(impressions) as impressions,
        sum(clicks) as clicks
    from spend_in
    group by month_start, market, channel
),

first_90_days as (
    select
        customers_in.acquisition_month as month_start,
        customers_in.market,
        customers_in.channel,
        count(distinct customers_in.customer_id) as new_customers,
        coalesce(sum(purchases.amount_cents), 0) as revenue_90d_cents
    from customers_in
    left join purchases
        on customers_in.customer_id = purchases.customer_id
        and purchases.order_ts < customers_in.first_purchase_ts + interval '90 days'
    group by customers_in.acquisition_month, customers_in.market, customers_in.channel
),

combined as (
    select
        coalesce(spend.month_start, first_90_days.month_start) as month_start,
        coalesce(spend.market, first_90_days.market) as market,
        coalesce(spend.channel, first_90_days.channel) as channel,
        coalesce(spend.spend_cents, 0) as spend_cents,
        spend.impressions,
        spend.clicks,
        coalesce(first_90_days.new_customers, 0) as new_customers,
        coalesce(first_90_days.revenue_90d_cents, 0) as revenue_90d_cents
    from spend
    full outer join first_90_days
        on spend.month_start = first_90_days.month_start
        and spend.market = first_90_days.market
        and spend.channel = first_90_days.channel
),

measured as (
    select
        combined.month_start,
        combined.market,
        combined.channel,
        case when run_end.has_marketing_spend then combined.spend_cents / 100.0 end as spend_usd,
        combined.impressions,
        combined.clicks,
        case when combined.impressions > 0 then cast(combined.clicks as double) / combined.impressions end as ctr,
        case when combined.clicks > 0 then combined.spend_cents / 100.0 / combined.clicks end as cpc_usd,
        combined.new_customers,
        case
            when run_end.has_marketing_spend and combined.spend_cents > 0 and combined.new_customers > 0
                then combined.spend_cents / 100.0 / combined.new_customers
        end as cac_usd,
        combined.revenue_90d_cents / 100.0 as revenue_90d_usd,
        cast(combined.month_start + interval '1 month' + interval '90 days' as timestamp) <= run_end.run_end_ts
            as revenue_window_complete,
        case when combined.spend_cents > 0 then cast(combined.revenue_90d_cents as double) / combined.spend_cents end
            as roas_90d,
        case
            when combined.spend_cents > 0
                then cast(combined.revenue_90d_cents - combined.spend_cents as double) / combined.spend_cents
        end as roi,
        settings_in.roi_threshold
    from combined
    cross join settings_in
    cross join run_end
)

select
    month_start,
    market,
    channel,
    spend_usd,
    impressions,
    clicks,
    ctr,
    cpc_usd,
    new_customers,
    cac_usd,
    revenue_90d_usd,
    revenue_window_complete,
    roas_90d,
    roi,
    case
        when roi is null or not revenue_window_complete then null
        when roi < roi_threshold then 'decrease'
        when min(roi) over (partition by month_start, market) < roi_threshold then 'increase'
        else 'keep'
    end as budget_recommendation
from measured
order by month_start, market, channel
