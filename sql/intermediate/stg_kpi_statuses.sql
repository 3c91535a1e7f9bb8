-- The red/yellow/green status of every KPI the plan targets, for kpi_monthly and kpi_daily: the
-- one place the status rule is written. at_most KPIs are green at or below `green`, yellow up to
-- `red`, red above it; at_least KPIs are green at or above `green`, yellow down to `red`, red
-- below it; null when the KPI is null. A period not yet over (the run date's month) is
-- 'partial' whatever its value: a month's first days say nothing of how it ends. Spend that
-- acquired no one has no CAC, and is the worst case: cac_status red. Thresholds:
-- sql/growth.toml (the table kpi_thresholds).
-- grain: one row per (period_grain, period_start, region, market, channel) of the two scorecards
-- materialized: table
-- columns:
--   period_grain: month (a kpi_monthly row) or day (a kpi_daily row)
--   period_start: the month_start or the day of that row
--   region: as in the scorecard
--   market: as in the scorecard
--   channel: as in the scorecard
--   cac_status: green, yellow or red against the cac_usd thresholds, partial while the period is; red where there was spend and no new customer; null when cac_usd is null otherwise
--   ltv_to_cac_status: status of ltv_to_cac
--   ltv_growth_status: status of ltv_12m_growth
--   high_value_status: status of high_value_share
--   monthly_churn_status: status of monthly_churn_rate
--   retention_6m_status: status of retention_6m
--   repurchase_status: status of repurchase_rate
--   dau_mau_status: status of dau_mau
--   invite_share_status: status of invite_share_rate
--   delivered_within_7d_status: status of delivered_within_7d_share
--   total_customers_yoy_status: status of total_customers_yoy
--   member_repurchase_status: status of member_repurchase_rate
--   self_growth_status: status of self_growth_ratio
--   organic_session_status: status of organic_session_share
--   cpc_status: status of cpc_usd
--   invite_conversion_status: status of invite_conversion (plan 5.3: flagged red under 5%)
with measures as (
    select period_grain, period_start, region, market, channel, period_complete,
        marketing_spend_usd > 0 and new_customers = 0 as spend_without_customers,
        cac_usd, ltv_to_cac, ltv_12m_growth, high_value_share, monthly_churn_rate, retention_6m, repurchase_rate, dau_mau, invite_share_rate,
        delivered_within_7d_share, total_customers_yoy, member_repurchase_rate, self_growth_ratio, organic_session_share,
        cpc_usd, invite_conversion
    from stg_kpi_measures
),

thresholds as (
    select kpi, direction, green, red from kpi_thresholds
),

-- One row per (period, region, market, channel, KPI): the status rule is written once, then pivoted back.
kpi_values as (
    select period_grain, period_start, region, market, channel, period_complete, spend_without_customers, 'cac_usd' as kpi, cac_usd as value from measures
    union all select period_grain, period_start, region, market, channel, period_complete, spend_without_customers, 'ltv_to_cac', ltv_to_cac from measures
    union all select period_grain, period_start, region, market, channel, period_complete, spend_without_customers, 'ltv_12m_growth', ltv_12m_growth from measures
    union all select period_grain, period_start, region, market, channel, period_complete, spend_without_customers, 'high_value_share', high_value_share from measures
    union all select period_grain, period_start, region, market, channel, period_complete, spend_without_customers, 'monthly_churn_rate', monthly_churn_rate from measures
    union all select period_grain, period_start, region, market, channel, period_complete, spend_without_customers, 'retention_6m', retention_6m from measures
    union all select period_grain, period_start, region, market, channel, period_complete, spend_without_customers, 'repurchase_rate', repurchase_rate from measures
    union all select period_grain, period_start, region, market, channel, period_complete, spend_without_customers, 'dau_mau', dau_mau from measures
    union all select period_grain, period_start, region, market, channel, period_complete, spend_without_customers, 'invite_share_rate', invite_share_rate from measures
    union all select period_grain, period_start, region, market, channel, period_complete, spend_without_customers, 'delivered_within_7d_share', delivered_within_7d_share from measures
    union all select period_grain, period_start, region, market, channel, period_complete, spend_without_customers, 'total_customers_yoy', total_customers_yoy from measures
    union all select period_grain, period_start, region, market, channel, period_complete, spend_without_customers, 'member_repurchase_rate', member_repurchase_rate from measures
    union all select period_grain, period_start, region, market, channel, period_complete, spend_without_customers, 'self_growth_ratio', self_growth_ratio from measures
    union all select period_grain, period_start, region, market, channel, period_complete, spend_without_customers, 'organic_session_share', organic_session_share from measures
    union all select period_grain, period_start, region, market, channel, period_complete, spend_without_customers, 'cpc_usd', cpc_usd from measures
    union all select period_grain, period_start, region, market, channel, period_complete, spend_without_customers, 'invite_conversion', invite_conversion from measures
),

kpi_statuses as (
    select
        kpi_values.period_grain,
        kpi_values.period_start,
        kpi_values.region,
        kpi_values.market,
        kpi_values.channel,
        kpi_values.kpi,
        case
            when kpi_values.kpi = 'cac_usd' and kpi_values.value is null and kpi_values.spend_without_customers
                then case when kpi_values.period_complete then 'red' else 'partial' end
            when kpi_values.value is null then null
            when not kpi_values.period_complete then 'partial'
            when thresholds.direction = 'at_most' and kpi_values.value <= thresholds.green then 'green'
            when thresholds.direction = 'at_most' and kpi_values.value <= thresholds.red then 'yellow'
            when thresholds.direction = 'at_most' then 'red'
            when kpi_values.value >= thresholds.green then 'green'
            when kpi_values.value >= thresholds.red then 'yellow'
            else 'red'
        end as status
    from kpi_values
    join thresholds on kpi_values.kpi = thresholds.kpi
),

statuses as (
    select
        period_grain,
        period_start,
        region,
        market,
        channel,
        max(case when kpi = 'cac_usd' then status end) as cac_status,
        max(case when kpi = 'ltv_to_cac' then status end) as ltv_to_cac_status,
        max(case when kpi = 'ltv_12m_growth' then status end) as ltv_growth_status,
        max(case when kpi = 'high_value_share' then status end) as high_value_status,
        max(case when kpi = 'monthly_churn_rate' then status end) as monthly_churn_status,
        max(case when kpi = 'retention_6m' then status end) as retention_6m_status,
        max(case when kpi = 'repurchase_rate' then status end) as repurchase_status,
        max(case when kpi = 'dau_mau' then status end) as dau_mau_status,
        max(case when kpi = 'invite_share_rate' then status end) as invite_share_status,
        max(case when kpi = 'delivered_within_7d_share' then status end) as delivered_within_7d_status,
        max(case when kpi = 'total_customers_yoy' then status end) as total_customers_yoy_status,
        max(case when kpi = 'member_repurchase_rate' then status end) as member_repurchase_status,
        max(case when kpi = 'self_growth_ratio' then status end) as self_growth_status,
        max(case when kpi = 'organic_session_share' then status end) as organic_session_status,
        max(case when kpi = 'cpc_usd' then status end) as cpc_status,
        max(case when kpi = 'invite_conversion' then status end) as invite_conversion_status
    from kpi_statuses
    group by period_grain, period_start, region, market, channel
)

select * from statuses
order by period_grain, period_start, region, market, channel
