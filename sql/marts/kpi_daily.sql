-- The daily KPI scorecard: the same KPIs as kpi_monthly, per day, market and channel, with
-- roll-ups and statuses (thresholds: sql/growth.toml). Flows (customers, orders, revenue, spend,
-- invites, deliveries) are those of the day; rates that need history look back from the day:
-- churn over the 30 days ending that day, retention of the customers acquired 182 days before,
-- LTV of those acquired 365 days before, MAU over the 30 days ending that day. Customer measures
-- use the customer's market and acquisition channel; spend uses the spend's. Roll-up rows carry
-- market and/or channel '(all)'.
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
--   cac_status: green, yellow or red against the cac_usd thresholds; null when cac_usd is null
--   ltv_to_cac_status: status of ltv_to_cac
--   monthly_churn_status: status of monthly_churn_rate
--   retention_6m_status: status of retention_6m
--   repeat_purchase_status: status of repeat_purchase_rate
--   dau_mau_status: status of dau_mau
--   invite_share_status: status of invite_share_rate
--   delivered_within_7d_status: status of delivered_within_7d_share
with kpis as (
    select * from stg_kpi_daily_measures
),

statuses as (
    select * from stg_kpi_statuses where period_grain = 'day'
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
    on kpis.day = statuses.period_start
    and kpis.market = statuses.market
    and kpis.channel = statuses.channel
order by kpis.day, kpis.market, kpis.channel
