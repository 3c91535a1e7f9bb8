-- Paid-channel performance: what each channel cost, the customers it brought, what those
-- customers spent in their first 90 days, and how the plan's budget rule would move the budget.
-- Budget rule (settings in sql/growth.toml), within a (month, market) whose 90-day window has
-- closed: the budget is the market-month's spend. budget_reserve_share of it is held in reserve
-- (plan 7.3: 30%) and each channel's base is its spend times (1 - budget_reserve_share). A
-- channel that spent and acquired no one, or whose CAC is above the cac_usd red bound
-- (kpi_thresholds), gives up cac_red_cut_share of its base (plan 6.1: above $10, the
-- cost-control plan); one whose CAC is above the green bound gives up cac_cut_share (plan 4.3 and
-- 8.2: cut the channel above $5) ('decrease'). What is cut goes to the market's preferred
-- channels, those not cut whose roi is at or above preferred_roi (plan 2.4.1: ROI above 4), in
-- proportion to their spend ('increase'); with no preferred channel it joins the reserve. Others
-- 'keep' their base. So per (month, market) the proposed spends plus the reserve equal the
-- budget (a data test). Read the latest judged month's proposal as next month's plan. No
-- recommendation without spend, nor while the month's 90-day revenue window is open: a recent
-- month's revenue is not all in yet.
-- grain: one row per (month_start, market, channel) with spend or new customers
-- materialized: table
-- columns:
--   month_start: first day of the calendar month (each market's in its own time zone, [time_zone])
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
--   preferred_channel: whether the channel receives cut budget: not cut and roi at or above preferred_roi; null where budget_recommendation is null
--   budget_recommendation: increase, keep or decrease by the rule above; null without spend or while revenue_window_complete is false
--   budget_reason: why: cac_above_red (or spend_without_customers) and cac_above_green for decrease, roi_at_or_above_preferred for a preferred channel, within_bounds otherwise; null where budget_recommendation is null
--   budget_shift_usd: the change the rule makes to the channel's base (spend_usd times 1 - budget_reserve_share), USD: negative for decrease, positive for increase, 0 for keep; null where budget_recommendation is null
--   proposed_spend_usd: base + budget_shift_usd, the spend the rule proposes for a month like this one
--   market_budget_usd: the (month, market)'s spend over the channels judged, USD, the same on each of its rows
--   market_proposed_usd: the sum of proposed_spend_usd over the (month, market), USD
--   market_reserve_usd: the (month, market)'s reserve, USD: budget_reserve_share of its budget, plus what was cut where no channel is preferred; null where budget_recommendation is null
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
    select
        settings.preferred_roi, settings.cac_cut_share, settings.cac_red_cut_share, settings.budget_reserve_share,
        cac_bounds.green as cac_green_usd, cac_bounds.red as cac_red_usd
    from settings
    cross join (select green, red from kpi_thresholds where kpi = 'cac_usd') as cac_bounds
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
        settings_in.preferred_roi,
        settings_in.cac_cut_share,
        settings_in.cac_red_cut_share,
        settings_in.budget_reserve_share,
        settings_in.cac_green_usd,
        settings_in.cac_red_usd
    from combined
    cross join settings_in
    cross join run_end
),

judged as (
    select
        *,
        case
            when roi is null or not revenue_window_complete then null
            when new_customers = 0 then 'spend_without_customers'
            when cac_usd > cac_red_usd then 'cac_above_red'
            when cac_usd > cac_green_usd then 'cac_above_green'
            when roi >= preferred_roi then 'roi_at_or_above_preferred'
            else 'within_bounds'
        end as budget_reason
    from measured
),

shares as (
    select
        *,
        spend_cents * (1 - budget_reserve_share) / 100.0 as base_usd,
        case
            when budget_reason in ('spend_without_customers', 'cac_above_red') then cac_red_cut_share
            when budget_reason = 'cac_above_green' then cac_cut_share
            else 0.0
        end as cut_share
    from judged
),

-- What each judged (month, market) spent, what its cut channels give up, and the spend of its
-- preferred channels that the cut budget is shared out by.
market_budget as (
    select
        month_start,
        market,
        sum(spend_cents) / 100.0 as budget_usd,
        -- to the micro-dollar: a float sum's last bits depend on the order rows meet in, which a
        -- memory cap changes, and a published table must not
        round(sum(base_usd * cut_share), 6) as cut_usd,
        sum(case when budget_reason = 'roi_at_or_above_preferred' then spend_cents else 0 end) as preferred_spend_cents,
        max(budget_reserve_share) as reserve_share
    from shares
    where budget_reason is not null
    group by month_start, market
),

moves as (
    select
        shares.*,
        market_budget.budget_usd as market_budget_usd,
        market_budget.budget_usd * market_budget.reserve_share
        + case when market_budget.preferred_spend_cents > 0 then 0.0 else market_budget.cut_usd end
            as market_reserve_usd,
        case
            when shares.cut_share > 0 then -shares.base_usd * shares.cut_share
            when shares.budget_reason = 'roi_at_or_above_preferred'
                then market_budget.cut_usd * shares.spend_cents / market_budget.preferred_spend_cents
            when shares.budget_reason is not null then 0.0
        end as budget_shift_usd,
        market_budget.cut_usd
    from shares
    left join market_budget on shares.month_start = market_budget.month_start and shares.market = market_budget.market
),

proposals as (
    select
        *,
        base_usd + budget_shift_usd as proposed_spend_usd,
        round(sum(base_usd + budget_shift_usd) over (partition by month_start, market), 6) as market_proposed_usd
    from moves
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
    case when budget_reason is not null then budget_reason = 'roi_at_or_above_preferred' end as preferred_channel,
    case
        when budget_reason is null then null
        when cut_share > 0 then 'decrease'
        when budget_shift_usd > 0 then 'increase'
        else 'keep'
    end as budget_recommendation,
    budget_reason,
    budget_shift_usd,
    proposed_spend_usd,
    case when budget_reason is not null then market_budget_usd end as market_budget_usd,
    case when budget_reason is not null then market_proposed_usd end as market_proposed_usd,
    case when budget_reason is not null then market_reserve_usd end as market_reserve_usd
from proposals
order by month_start, market, channel
