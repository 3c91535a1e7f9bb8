-- The monthly KPI scorecard of the growth plan, per market and channel, with roll-ups and a
-- red/yellow/green status for each KPI the plan targets (thresholds: sql/growth.toml, seen as
-- the table kpi_thresholds).
-- Customer measures use the customer's market and acquisition channel; spend uses the spend's
-- market and channel. Roll-up rows carry market and/or channel '(all)'; a region's roll-ups carry
-- their region and market '(all)', and rows over every market region '(all)' too; because each customer
-- has one market and one channel, their counts are sums of the detail rows. The month of the run
-- date is partial: it runs to the end of the run date (period_complete false). Every formula is
-- written once, in intermediate/stg_kpi_measures.sql, for this scorecard and kpi_daily.
-- grain: one row per (month_start, region, market, channel), every month from the first order to the run date
-- materialized: table
-- columns:
--   month_start: first day of the calendar month (each market's in its own time zone, [time_zone])
--   region: the market's region ([region] in sql/growth.toml, `default` for markets not named), or '(all)' on rows over every region
--   market: market (ISO 3166 alpha-2), or '(all)' on roll-up rows; a region's roll-ups have their region and market '(all)'
--   channel: acquisition channel (customers) and spend channel (spend), or '(all)' on roll-up rows
--   period_complete: whether the month ended by the run date's end: the run date's month is partial
--   new_customers: customers whose first purchase falls in the month
--   active_customers: distinct customers with a purchase in the month
--   orders: completed orders in the month
--   revenue_usd: revenue of those orders, USD
--   marketing_spend_usd: marketing spend in the month, USD; null without the marketing_spend input
--   cac_usd: marketing spend / new customers; null where nothing was spent (no paid acquisition) or no one was acquired; '(all)' rows blend all spend over all new customers, organic included
--   arpu_usd: revenue_usd / active_customers
--   returning_buyer_share: share of the month's buyers who had bought before or bought twice in it (no threshold: near 1 on any mature base)
--   repurchase_rate: of the customers who bought in the repurchase window (the repurchase_window_months, 12 by default, ending with this month), the share who bought on two or more different days in it (plan 3.4: at least 40%)
--   monthly_churn_rate: customers whose last purchase was exactly churn_lapse_months months before this month (and none since) / customers with a purchase in the churn_lapse_months months before it; null while the month is partial
--   retention_6m: share of the cohort acquired 6 months before this month with a purchase in this month (its month 6, as in cohort_retention)
--   repeat_within_6m: share of that cohort with a second purchase within 6 months (no threshold)
--   ltv_12m_usd: revenue in their first 12 months per customer of the cohort acquired 12 months before, USD
--   ltv_12m_margin_usd: ltv_12m_usd times the cohort's market margin_rate (sql/growth.toml): first-year gross margin per customer, USD
--   ltv_12m_growth: ltv_12m_margin_usd against that of the cohort acquired 12 months earlier, - 1: the growth of first-year value per customer (plan 2.3.2: +35% in 12 months)
--   high_value_share: at the end of the latest complete month only, the share of the row's customers (with a purchase by then) in rfm_segments' high value tier, scored as of that day; null in other months (plan 3.4: 35%)
--   ltv_to_cac: that cohort's first-year gross margin (revenue times margin_rate) / the marketing spend of its acquisition months; null without spend (plan: at least 4)
--   dau: logged-in customers (buyers or not) with a session, averaged over the days of the month up to the run date; null without the sessions input or without the customers input (then only buyers would be known)
--   mau: distinct logged-in customers (buyers or not) with a session in the month; null without the sessions input or without the customers input (then only buyers would be known)
--   dau_mau: dau / mau
--   invite_share_rate: share of the month's buyers who sent an invite in it; null without the invites input
--   invite_conversion: invites sent in the month that brought a new buyer by the run date (the invitee's first accepted invite, their first purchase after accepting it) / invites sent in the month; the same figure as referral_funnel's (plan 5.3: act below 5%)
--   blended_roas: revenue of all the month's buyers / marketing spend of the month (channel_performance.roas_90d is the per-cohort ROAS)
--   delivered_within_7d_share: of completed orders placed in the month whose 7 days have passed, the share delivered within 7 days (an order not shipped by then counts as late); null without the shipments input
--   avg_delivery_days: average days from order to delivery over delivered orders placed in the month; null without the shipments input
--   total_customers: customers with a purchase by the end of the month (or the run date)
--   new_customers_mom: new customers of the month / those of the month before - 1; null while the month is partial
--   new_customers_yoy: new customers of the month / those of the same month a year before - 1; null while the month is partial
--   total_customers_mom: total_customers / total_customers at the end of the month before - 1; null while the month is partial
--   total_customers_yoy: total_customers / total_customers 12 months before - 1, the plan's user growth; null while the month is partial; a running count: it never falls
--   active_buyers_growth: buyers in the repurchase window ending with this month / buyers in the window before - 1: can fall below 0; null while the period is partial
--   aov_usd: revenue_usd / orders, the average completed order's value, USD
--   cancellation_rate: orders placed in the month and cancelled / orders placed in the month whatever their status
--   refund_rate: orders placed in the month and refunded / orders placed in the month whatever their status
--   member_share: share of the month's buyers who are paid members; null without the customers input
--   member_returning_buyer_share: returning_buyer_share of the members among the month's buyers
--   member_repurchase_rate: repurchase_rate of members (plan 3.4: at least 45%); null without the customers input
--   referred_share_of_new: share of the month's new customers who were referred (a referrer, or the referral channel)
--   self_growth_ratio: share of the month's new customers no one paid for: referred, or acquired through an organic channel (organic_channels in sql/growth.toml)
--   sessions: visits in the month, anonymous ones included, by the visit's market and traffic channel; null without the sessions input
--   organic_session_share: share of those visits from an organic channel
--   visit_to_purchase_rate: of the logged-in visitors of the month, the share who bought in it (at most 1; anonymous visits have no visitor id and are left out); null without the sessions input
--   cpc_usd: marketing spend / ad clicks, over spend rows that report clicks; null without clicks
--   cac_status: green, yellow or red against the cac_usd thresholds; red where money was spent and no one was acquired; partial while the period is; null otherwise when cac_usd is null
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
--   invite_conversion_status: status of invite_conversion (plan 5.3: red under 5%)
with kpis as (
    select
        period_start as month_start,
        region,
        market,
        channel,
        period_complete, new_customers, active_customers, orders, revenue_usd, marketing_spend_usd, cac_usd, arpu_usd,
        returning_buyer_share, repurchase_rate, monthly_churn_rate, retention_6m, repeat_within_6m, ltv_12m_usd,
        ltv_12m_margin_usd, ltv_12m_growth, high_value_share, ltv_to_cac, dau, mau, dau_mau,
        invite_share_rate, invite_conversion, blended_roas, delivered_within_7d_share, avg_delivery_days,
        total_customers, new_customers_mom, new_customers_yoy, total_customers_mom, total_customers_yoy, active_buyers_growth, aov_usd,
        cancellation_rate, refund_rate, member_share, member_returning_buyer_share, member_repurchase_rate, referred_share_of_new, self_growth_ratio,
        sessions, organic_session_share, visit_to_purchase_rate, cpc_usd
    from stg_kpi_measures
    where period_grain = 'month'
),

statuses as (
    select * from stg_kpi_statuses where period_grain = 'month'
)

select
    kpis.*,
    statuses.cac_status,
    statuses.ltv_to_cac_status,
    statuses.ltv_growth_status,
    statuses.high_value_status,
    statuses.monthly_churn_status,
    statuses.retention_6m_status,
    statuses.repurchase_status,
    statuses.dau_mau_status,
    statuses.invite_share_status,
    statuses.delivered_within_7d_status,
    statuses.total_customers_yoy_status,
    statuses.member_repurchase_status,
    statuses.self_growth_status,
    statuses.organic_session_status,
    statuses.cpc_status,
    statuses.invite_conversion_status
from kpis
left join statuses
    on kpis.month_start = statuses.period_start
    and kpis.region = statuses.region
    and kpis.market = statuses.market
    and kpis.channel = statuses.channel
order by kpis.month_start, kpis.region, kpis.market, kpis.channel
