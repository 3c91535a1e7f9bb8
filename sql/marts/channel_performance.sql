-- Paid-channel performance: what each channel cost, the customers it brought, what those
-- customers spent in their first 90 days, and how much budget should move where.
-- Budget rule (settings in sql/growth.toml), within a (month, market): a channel whose roi is
-- under roi_threshold gives budget_shift_share of its spend ('decrease'). Of the budget so freed,
-- budget_reserve_share is held in reserve (the plan keeps 30%) and the rest goes to the preferred
-- channels, those whose roi is at or above preferred_roi (plan 2.4.1 and 8.3: ROI above 4), in
-- proportion to their spend ('increase'). With no preferred channel all of it is reserve. Others
-- 'keep'. So per (month, market) the proposed spends plus the reserve equal the spend judged.
-- The month judged is a month whose 90-day window has closed; read the latest such month's
-- proposal as next month's plan. No recommendation without spend, nor while the month's 90-day
-- revenue window is open: a recent month's revenue is not all in yet, and judging it early would
-- push every recent month toward 'decrease'.
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
--   preferred_channel: whether roi is at or above preferred_roi; null where budget_recommendation is null
--   budget_recommendation: increase, keep or decrease by the rule above; null without spend or while revenue_window_complete is false
--   budget_shift_usd: the change of spend the rule proposes, USD: negative for decrease, positive for increase, 0 for keep; null where budget_recommendation is null
--   proposed_spend_usd: spend_usd + budget_shift_usd, the spend the rule proposes for a month like this one
--   market_reserve_usd: the budget freed in the (month, market) and held in reserve, USD, the same on each of its rows; null where budget_recommendation is null
with customers_in as (
    select
        customer_id, market, acquisition_channel as channel, acquisition_month,
        -- once per customer here, not once per purchase in the join below
        first_purchase_ts + interval '90 days' as window_end_ts
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
    select roi_threshold, preferred_roi, budget_shift_share, budget_reserve_share from settings
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
        and purchases.order_ts < customers_in.window_end_ts
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
        combined.spend_cents,
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
        settings_in.roi_threshold,
        settings_in.preferred_roi,
        settings_in.budget_shift_share,
        settings_in.budget_reserve_share
    from combined
    cross join settings_in
    cross join run_end
),

judged as (
    select
        *,
        case
            when roi is null or not revenue_window_complete then null
            when roi < roi_threshold then 'decrease'
            when roi >= preferred_roi then 'preferred'
            else 'keep'
        end as standing
    from measured
),

-- What each (month, market) frees from its channels under the threshold, and the spend of its
-- preferred channels that the freed budget is shared out by.
market_budget as (
    select
        month_start,
        market,
        sum(case when standing = 'decrease' then spend_cents else 0 end) / 100.0 * max(budget_shift_share) as freed_usd,
        sum(case when standing = 'preferred' then spend_cents else 0 end) as preferred_spend_cents,
        max(budget_reserve_share) as reserve_share
    from judged
    where standing is not null
    group by month_start, market
),

moves as (
    select
        judged.*,
        case when market_budget.preferred_spend_cents > 0 then market_budget.freed_usd * market_budget.reserve_share
            else market_budget.freed_usd
        end as market_reserve_usd,
        case
            when judged.standing = 'decrease' then -judged.spend_cents / 100.0 * judged.budget_shift_share
            when judged.standing = 'preferred'
                then market_budget.freed_usd * (1 - market_budget.reserve_share)
                    * judged.spend_cents / market_budget.preferred_spend_cents
            when judged.standing = 'keep' then 0.0
        end as budget_shift_usd,
        market_budget.freed_usd
    from judged
    left join market_budget on judged.month_start = market_budget.month_start and judged.market = market_budget.market
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
    case when standing is not null then standing = 'preferred' end as preferred_channel,
    case
        when standing = 'preferred' and freed_usd > 0 then 'increase'
        when standing = 'preferred' then 'keep'
        else standing
    end as budget_recommendation,
    budget_shift_usd,
    spend_usd + budget_shift_usd as proposed_spend_usd,
    case when standing is not null then market_reserve_usd end as market_reserve_usd
from moves
order by month_start, market, channel
