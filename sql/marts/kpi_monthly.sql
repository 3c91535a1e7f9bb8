-- The monthly KPI scorecard of the growth plan, per market and channel, with roll-ups and a
-- red/yellow/green status for each KPI the plan targets (thresholds: sql/growth.toml, seen as
-- the table kpi_thresholds).
-- Customer measures use the customer's market and acquisition channel; spend uses the spend's
-- market and channel. Roll-up rows carry market and/or channel '(all)'; because each customer
-- has one market and one channel, their counts are sums of the detail rows. The month of the run
-- date is partial: it runs to the end of the run date.
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
--   cac_status: green, yellow or red against the cac_usd thresholds; null when cac_usd is null
--   ltv_to_cac_status: status of ltv_to_cac
--   monthly_churn_status: status of monthly_churn_rate
--   retention_6m_status: status of retention_6m
--   repeat_purchase_status: status of repeat_purchase_rate
--   dau_mau_status: status of dau_mau
--   invite_share_status: status of invite_share_rate
--   delivered_within_7d_status: status of delivered_within_7d_share
with kpis as (
    select * from stg_kpi_monthly_measures
),

statuses as (
    select * from stg_kpi_statuses where period_grain = 'month'
)

select
    kpis.*,
    statuses.cac_status,
    statuses.ltv_to_cac_status,
    statuses.monthly_churn_status,
    statuses.retention_6m_status,
    statuses.repeat_purchase_status,
    statuses.dau_mau_status,
    statuses.invite_share_status,
    statuses.delivered_within_7d_status
from kpis
left join statuses
    on kpis.month_start = statuses.period_start
    and kpis.market = statuses.market
    and kpis.channel = statuses.channel
order by kpis.month_start, kpis.market, kpis.channel
