-- Every KPI formula of the two scorecards, written once for both grains: kpi_monthly reads the
-- 'month' rows, kpi_daily the 'day' rows, and stg_kpi_statuses colours them. The counts come from
-- stg_kpi_monthly_counts and stg_kpi_daily_counts, whose headers say what each count covers at
-- each grain (a calendar month; a day, or the 30 days or 30 cohorts ending that day). A measure
-- whose input table is absent is null, not zero; so is a ratio without a denominator.
-- grain: one row per (period_grain, period_start, region, market, channel)
-- materialized: table
-- columns:
--   period_grain: month (a kpi_monthly row) or day (a kpi_daily row)
--   period_start: the month_start or the day
--   region: the market's region (the config's [region]), or '(all)' on rows over every region
--   market: market (ISO 3166 alpha-2), or '(all)' on roll-up rows
--   channel: acquisition channel (customers) and spend channel (spend), or '(all)' on roll-up rows
--   period_complete: whether the period ended by the run date's end
--   new_customers: customers whose first purchase falls in the period
--   active_customers: distinct customers with a purchase in the period
--   orders: completed orders in the period
--   revenue_usd: revenue_cents / 100
--   marketing_spend_usd: spend_cents / 100; null without the marketing_spend input
--   cac_usd: marketing_spend_usd / new_customers; null without spend (a channel with no paid acquisition has no CAC) or without new customers; on '(all)' rows the blended CAC, all spend over all new customers, organic included (plan: at most $5, alarm at $10)
--   arpu_usd: revenue_usd / active_customers
--   returning_buyer_share: repeat_buyers / active_customers, the share of the period's buyers who had bought before or bought twice in it (no threshold: near 1 on any mature base)
--   repurchase_rate: repurchasers_window / buyers_window, of the customers who bought in the repurchase window (repurchase_window_months, 12 by default, ending with the period), the share who bought on two or more different days in it (plan 3.4: at least 40%)
--   monthly_churn_rate: churned / churn_base; null for a month not yet complete, whose late buyers would count as churned (plan: at most 12%)
--   retention_6m: cohort_6m_active / cohort_6m_size, the share of the cohort acquired 6 months before still buying in month 6, as in cohort_retention (plan: at least 65%)
--   repeat_within_6m: cohort_6m_repeat / cohort_6m_size, the share of that cohort with a second purchase within 6 months
--   ltv_12m_usd: cohort_12m_revenue_cents / 100 / cohort_12m_size, first-year revenue per customer of the cohort acquired 12 months before
--   ltv_12m_margin_usd: cohort_12m_margin_cents / 100 / cohort_12m_size, that cohort's first-year gross margin per customer (revenue times its market's margin_rate)
--   ltv_12m_growth: ltv_12m_margin_usd / that of the cohort acquired a year earlier (cohort_12m_margin_cents_year_ago / cohort_12m_size_year_ago) - 1: the growth of first-year value per customer over 12 months (plan 2.3.2: +35%)
--   high_value_share: high_value_customers / tier_customers, the share of customers in rfm_segments' high value tier at the end of the latest complete month; null in other periods and on day rows (plan 3.4: 35%)
--   ltv_to_cac: gross-margin LTV over CAC, ltv_12m_margin_usd / that cohort's CAC, which is cohort_12m_margin_cents / cohort_12m_spend_cents; null without spend (plan: at least 4)
--   dau: session_customer_days / days_in_period, logged-in customers per day, buyers or not; null without the sessions input, and null without the customers input, whose absence would leave only buyers known
--   mau: logged-in customers in the month (day rows: the 30 days ending that day); null as dau
--   dau_mau: dau / mau (plan: at least 30%)
--   invite_share_rate: active_sharers / active_customers, the share of the period's buyers who sent an invite in it; null without the invites input (plan: at least 15%)
--   invite_conversion: converted_invites / invites_sent, invites that brought a new buyer (stg_invites), as in referral_funnel (plan 5.3: act below 5%)
--   blended_roas: revenue_cents / spend_cents, the revenue of all the period's buyers (every cohort) per dollar spent; channel_performance's roas_90d is the per-cohort one
--   delivered_within_7d_share: delivered_within_7d / delivery_known over completed orders whose 7 days have passed, an order not shipped by then counting as late; null without the shipments input (plan: at least 50%)
--   avg_delivery_days: delivery_micros_sum in days / delivered; null without the shipments input
--   total_customers: customers with a purchase by the period's end (a running count of new_customers)
--   new_customers_mom: growth_new_customers / growth_new_customers_prev - 1: the month's new customers against the month before's (day rows: the 30 days ending that day against the 30 days before); null while the period is partial or without a prior period
--   new_customers_yoy: growth_new_customers / growth_new_customers_year_ago - 1: against the same window a year before
--   total_customers_mom: total_customers / total_customers_prev - 1, the customer base's growth over a month (day rows: 30 days); null while the period is partial
--   total_customers_yoy: total_customers / total_customers_year_ago - 1, over 12 months (day rows: 365 days) (plan: user growth at least 25% a year); a running count, it never falls
--   active_buyers_growth: buyers_window / buyers_window_prev - 1, buyers of the repurchase window against those of the window before; can fall below 0; null while the period is partial
--   aov_usd: revenue_usd / orders, the average completed order's value
--   cancellation_rate: cancelled_orders / placed_orders, of orders placed in the period whatever their status
--   refund_rate: refunded_orders / placed_orders
--   member_share: active_members / active_customers, the share of the period's buyers who are paid members; null without the customers input
--   member_returning_buyer_share: member_repeat_buyers / active_members, returning_buyer_share of members
--   member_repurchase_rate: member_repurchasers_window / member_buyers_window, repurchase_rate of members (plan 3.4: at least 45%); null without the customers input
--   referred_share_of_new: referred_new_customers / new_customers
--   self_growth_ratio: self_grown_new_customers / new_customers, the share of new customers no one paid for: referred, or acquired through an organic channel (plan: over 10%)
--   sessions: visits in the period, anonymous ones included, by the visit's market and channel (the traffic mix; '(all)' rows are the totals to divide by); null without the sessions input
--   organic_session_share: organic_sessions / sessions, visits from an organic channel (plan: at least 25%)
--   visit_to_purchase_rate: converting_visitors / logged-in visitors of the period (month rows: mau; day rows: that day's), the share of visitors who bought in the period, at most 1; anonymous visits have no visitor and are left out; null without the sessions input
--   cpc_usd: click_spend_cents / 100 / clicks, spend per ad click over spend rows that report clicks (plan: at most $0.80)
with counts as (
    select 'month' as period_grain, * from stg_kpi_monthly_counts
    union all
    select 'day', * from stg_kpi_daily_counts
),

inputs_present as (
    select has_customers, has_sessions, has_marketing_spend, has_invites, has_shipments from run_context
)

select
    period_grain,
    period_start,
    region,
    market,
    channel,
    period_complete,
    new_customers,
    active_customers,
    orders,
    revenue_cents / 100.0 as revenue_usd,
    case when has_marketing_spend then spend_cents / 100.0 end as marketing_spend_usd,
    case when has_marketing_spend and spend_cents > 0 and new_customers > 0 then spend_cents / 100.0 / new_customers end
        as cac_usd,
    case when active_customers > 0 then revenue_cents / 100.0 / active_customers end as arpu_usd,
    case when active_customers > 0 then cast(repeat_buyers as double) / active_customers end as returning_buyer_share,
    case when buyers_window > 0 then cast(repurchasers_window as double) / buyers_window end as repurchase_rate,
    case when period_complete and churn_base > 0 then cast(churned as double) / churn_base end as monthly_churn_rate,
    case when cohort_6m_size > 0 then cast(cohort_6m_active as double) / cohort_6m_size end as retention_6m,
    case when cohort_6m_size > 0 then cast(cohort_6m_repeat as double) / cohort_6m_size end as repeat_within_6m,
    case when cohort_12m_size > 0 then cohort_12m_revenue_cents / 100.0 / cohort_12m_size end as ltv_12m_usd,
    case when cohort_12m_size > 0 then cohort_12m_margin_cents / 100.0 / cohort_12m_size end as ltv_12m_margin_usd,
    case
        when cohort_12m_size > 0 and cohort_12m_size_year_ago > 0 and cohort_12m_margin_cents_year_ago > 0
            then (cast(cohort_12m_margin_cents as double) / cohort_12m_size)
                / (cast(cohort_12m_margin_cents_year_ago as double) / cohort_12m_size_year_ago) - 1
    end as ltv_12m_growth,
    case when tier_customers > 0 then cast(high_value_customers as double) / tier_customers end as high_value_share,
    case
        when has_marketing_spend and cohort_12m_size > 0 and cohort_12m_spend_cents > 0
            then cast(cohort_12m_margin_cents as double) / cohort_12m_spend_cents
    end as ltv_to_cac,
    case when has_sessions and has_customers then cast(session_customer_days as double) / days_in_period end as dau,
    case when has_sessions and has_customers then mau end as mau,
    case when has_sessions and has_customers and mau > 0 then cast(session_customer_days as double) / days_in_period / mau end
        as dau_mau,
    case when has_invites and active_customers > 0 then cast(active_sharers as double) / active_customers end
        as invite_share_rate,
    case when invites_sent > 0 then cast(converted_invites as double) / invites_sent end as invite_conversion,
    case when spend_cents > 0 then cast(revenue_cents as double) / spend_cents end as blended_roas,
    case when has_shipments and delivery_known > 0 then cast(delivered_within_7d as double) / delivery_known end
        as delivered_within_7d_share,
    case when has_shipments and delivered > 0 then delivery_micros_sum / 86400000000.0 / delivered end
        as avg_delivery_days,
    total_customers,
    case when period_complete and growth_new_customers_prev > 0
        then cast(growth_new_customers as double) / growth_new_customers_prev - 1 end as new_customers_mom,
    case when period_complete and growth_new_customers_year_ago > 0
        then cast(growth_new_customers as double) / growth_new_customers_year_ago - 1 end as new_customers_yoy,
    case when period_complete and total_customers_prev > 0
        then cast(total_customers as double) / total_customers_prev - 1 end as total_customers_mom,
    case when period_complete and total_customers_year_ago > 0
        then cast(total_customers as double) / total_customers_year_ago - 1 end as total_customers_yoy,
    case when period_complete and buyers_window_prev > 0
        then cast(buyers_window as double) / buyers_window_prev - 1 end as active_buyers_growth,
    case when orders > 0 then revenue_cents / 100.0 / orders end as aov_usd,
    case when placed_orders > 0 then cast(cancelled_orders as double) / placed_orders end as cancellation_rate,
    case when placed_orders > 0 then cast(refunded_orders as double) / placed_orders end as refund_rate,
    case when has_customers and active_customers > 0 then cast(active_members as double) / active_customers end
        as member_share,
    case when has_customers and active_members > 0 then cast(member_repeat_buyers as double) / active_members end
        as member_returning_buyer_share,
    case when has_customers and member_buyers_window > 0 then cast(member_repurchasers_window as double) / member_buyers_window end
        as member_repurchase_rate,
    case when new_customers > 0 then cast(referred_new_customers as double) / new_customers end as referred_share_of_new,
    case when new_customers > 0 then cast(self_grown_new_customers as double) / new_customers end as self_growth_ratio,
    case when has_sessions then sessions end as sessions,
    case when has_sessions and sessions > 0 then cast(organic_sessions as double) / sessions end as organic_session_share,
    case
        when has_sessions and (case when period_grain = 'month' then mau else session_customer_days end) > 0
            then cast(converting_visitors as double) / (case when period_grain = 'month' then mau else session_customer_days end)
    end as visit_to_purchase_rate,
    case when clicks > 0 then click_spend_cents / 100.0 / clicks end as cpc_usd
from counts
cross join inputs_present
order by period_grain, period_start, region, market, channel
