-- RFM: how recently, how often and how much each customer bought, scored 1 to 5 against all
-- customers, with a named segment from the R/F grid (utilities/rfm_segment_grid.sql) and the
-- plan's three value tiers.
-- Scores: score = least(5, 1 + floor(5 * percent_rank())), ordered by recency_days descending
-- for R (the most recent get 5), by frequency ascending for F, by monetary_usd ascending for M.
-- Ties share a score. With a single customer every score is 1.
-- Value tier, the plan's three (section 6.4): high when R, F and M are all 4 or 5 (recent,
-- frequent, high spend); mid when R and M are 3 or more but the customer is not high (recent,
-- at least medium spend, however often: a recent one-off big spender is mid); low otherwise
-- (long since a purchase, or low spend).
-- grain: one row per customer with at least one purchase by the run date
-- materialized: table
-- columns:
--   customer_id: the customer
--   last_order_date: day of their latest purchase, in market time (stg_customers)
--   recency_days: run date minus last_order_date, in days; 0 means a purchase on the run date
--   frequency: purchases (completed orders) by the run date
--   monetary_usd: sum of amount_usd of those purchases, USD
--   r_score: recency score, 1 to 5 (5 = most recent)
--   f_score: frequency score, 1 to 5 (5 = most purchases)
--   m_score: monetary score, 1 to 5 (5 = most spend)
--   rfm_cell: the three scores as text, R then F then M, e.g. '545'
--   segment: named segment of the (r_score, f_score) cell
--   value_tier: high, mid or low, by the rule above
with customers_in as (
    select customer_id, last_purchase_date, purchases, revenue_usd
    from stg_customers
    where purchases > 0
),

grid as (
    select r_from, r_to, f_from, f_to, segment
    from rfm_segment_grid
),

measures as (
    select
        customers_in.customer_id,
        customers_in.last_purchase_date as last_order_date,
        cast(run_context.run_date as int) - cast(customers_in.last_purchase_date as int) as recency_days,
        customers_in.purchases as frequency,
        customers_in.revenue_usd as monetary_usd
    -- the one-row sides first, here and below: a cross join holds its left side in memory
    from run_context
    cross join customers_in
),

counted as (
    select count(*) as customers from measures
),

-- Scores from percent_rank written as (rank - 1) / (customers - 1), which is how it is defined:
-- rank() streams through a sort that can spill to disk, where percent_rank() holds every
-- customer in one batch (800 MB at 10M customers, too much under a memory cap).
scored as (
    select
        customer_id,
        last_order_date,
        recency_days,
        frequency,
        monetary_usd,
        cast(least(5, 1 + floor(5 * case when customers > 1
            then (rank() over (order by recency_days desc) - 1) / cast(customers - 1 as double) else 0.0 end)) as int)
            as r_score,
        cast(least(5, 1 + floor(5 * case when customers > 1
            then (rank() over (order by frequency asc) - 1) / cast(customers - 1 as double) else 0.0 end)) as int)
            as f_score,
        cast(least(5, 1 + floor(5 * case when customers > 1
            then (rank() over (order by monetary_usd asc) - 1) / cast(customers - 1 as double) else 0.0 end)) as int)
            as m_score
    from counted
    cross join measures
)

select
    scored.customer_id,
    scored.last_order_date,
    scored.recency_days,
    scored.frequency,
    scored.monetary_usd,
    scored.r_score,
    scored.f_score,
    scored.m_score,
    concat(cast(scored.r_score as varchar), cast(scored.f_score as varchar), cast(scored.m_score as varchar))
        as rfm_cell,
    grid.segment,
    case
        when scored.r_score >= 4 and scored.f_score >= 4 and scored.m_score >= 4 then 'high'
        when scored.r_score >= 3 and scored.m_score >= 3 then 'mid'
        else 'low'
    end as value_tier
from scored
left join grid
    on scored.r_score between grid.r_from and grid.r_to
    and scored.f_score between grid.f_from and grid.f_to
order by scored.customer_id
