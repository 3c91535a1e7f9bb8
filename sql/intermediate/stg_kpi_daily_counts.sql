-- The daily counts the KPI formulas are computed from (stg_kpi_measures): one row per day,
-- market and channel with its roll-ups. Only counts and sums here; every ratio is written once,
-- in stg_kpi_measures, for both grains. Same columns, in the same order, as
-- stg_kpi_monthly_counts. Where the monthly count covers a calendar month, the daily one covers
-- the 30 days ending that day (churn, MAU) or the cohorts acquired in 30 days (retention, LTV),
-- so a daily figure is not the noise of one day's handful of customers.
-- grain: one row per (day, region, market, channel), every day from the first order to the run date
-- materialized: table
-- columns:
--   period_start: the calendar day (each market's in its own time zone, [time_zone])
--   region: the market's region (the config's [region]; its `default` for markets not named), or '(all)' on rows over every region
--   market: market (ISO 3166 alpha-2), or '(all)' on roll-up rows (a region's roll-up has its region and market '(all)')
--   channel: acquisition channel (customers) and spend channel (spend), or '(all)' on roll-up rows
--   period_complete: true (a day up to the run date is complete at the run date's end)
--   days_in_period: 1
--   new_customers: customers whose first purchase was that day
--   referred_new_customers: of those, referred customers (stg_customers.referred: a first purchase after an accepted invite)
--   self_grown_new_customers: of those, referred customers and customers acquired through an organic channel (organic_channels in sql/growth.toml)
--   growth_new_customers: new customers of the growth window: the 30 days ending that day
--   growth_new_customers_prev: new customers of the 30 days before those
--   growth_new_customers_year_ago: new customers of the 30 days ending 365 days before
--   total_customers: customers with a purchase by the end of the day
--   total_customers_prev: total_customers 30 days before
--   total_customers_year_ago: total_customers 365 days before
--   active_customers: distinct customers with a purchase that day
--   repeat_buyers: of those, customers who had bought on an earlier day or bought twice or more that day
--   active_members: of the active customers, paid members
--   member_repeat_buyers: of the repeat buyers, paid members
--   buyers_window: distinct customers with a purchase in the repurchase window: the round(repurchase_window_months * 365 / 12) days ending that day
--   repurchasers_window: of those, customers who bought on at least two different days in the window
--   member_buyers_window: of buyers_window, paid members
--   member_repurchasers_window: of repurchasers_window, paid members
--   buyers_window_prev: buyers_window of the window before, ending a window's length of days before
--   orders: completed orders that day
--   revenue_cents: revenue of those orders, US cents
--   placed_orders: orders placed that day whatever their status (stg_kpi_day_events)
--   cancelled_orders: of those, cancelled
--   refunded_orders: of those, refunded
--   spend_cents: marketing spend that day, US cents
--   clicks: ad clicks that day; null when no spend row reports clicks
--   click_spend_cents: spend of the rows that report clicks, US cents
--   churn_base: customers with a purchase in the lapse (churn_lapse_months * 30 days) before the 30 days ending that day began
--   churned: customers whose lapse completed in the 30 days ending that day
--   cohort_6m_size: customers acquired in the 30 days ending 182 days before
--   cohort_6m_active: of those, customers with a purchase in days 153 to 182 after their first (the 30 days ending at 6 months)
--   cohort_6m_repeat: of those, customers with a second purchase within 182 days of their first
--   cohort_12m_size: customers acquired in the 30 days ending 365 days before
--   cohort_12m_revenue_cents: their revenue in their first 365 days, US cents
--   cohort_12m_margin_cents: that revenue times their market's margin_rate (sql/growth.toml), US cents
--   cohort_12m_spend_cents: marketing spend on their acquisition days, US cents
--   cohort_12m_size_year_ago: cohort_12m_size 365 days before: customers acquired in the 30 days ending 730 days before
--   cohort_12m_margin_cents_year_ago: cohort_12m_margin_cents 365 days before, that cohort's first-year margin
--   tier_customers: 0: value tiers are scored at one month's end only (stg_kpi_monthly_counts)
--   high_value_customers: 0, as tier_customers
--   sessions: visits that day, anonymous ones included, by the visit's market and channel
--   organic_sessions: of those, from an organic channel
--   traffic_orders: completed orders that day by the order's own market and channel, compared with sessions
--   session_customer_days: distinct logged-in customers with a session that day, buyers or not
--   mau: distinct logged-in customers with a session in the 30 days ending that day, buyers or not
--   converting_visitors: distinct logged-in customers with a session that day who also bought that day
--   invites_sent: invites sent that day, by the inviter's market and channel, inviters who never bought included (stg_invites)
--   invites_accepted: of those, accepted by the run date
--   converted_invites: of those, invites that brought a new buyer (stg_invites)
--   sharers: distinct customers who sent an invite that day
--   active_sharers: distinct customers who sent an invite that day and bought that day
--   delivery_known: completed orders placed that day whose 7 days have passed by the run date's end
--   delivered_within_7d: of those, delivered within 7 days of the order
--   delivered: completed orders placed that day and delivered by the run date
--   delivery_micros_sum: microseconds from order to delivery, summed over those delivered
with customers_in as (
    select
        stg_customers.customer_id,
        stg_customers.market,
        stg_customers.acquisition_channel as channel,
        stg_customers.acquisition_day_number as acquisition_day,
        stg_customers.second_purchase_day_number as second_purchase_day,
        case when stg_customers.referred then 1 else 0 end as referred,
        case when organic.channel is not null then 1 else 0 end as organic
    from stg_customers
    left join (select distinct channel from organic_channels) as organic
        on stg_customers.acquisition_channel = organic.channel
    where stg_customers.first_purchase_ts is not null
),

day_events as (
    select
        day_number, market, channel, placed_orders, cancelled_orders, refunded_orders, spend_cents, clicks,
        click_spend_cents, sessions, organic_sessions, traffic_orders
    from stg_kpi_day_events
),

invites_in as (
    select inviter_customer_id, market, channel, day_number, accepted, converted from stg_invites
),

margins as (
    select market, margin_rate from margin_rates
),

repurchase_window as (
    select cast(round(repurchase_window_months * 365 / 12.0) as int) as days from settings
),

days as (
    select day, day_number from calendar_days
),

lapse as (
    select churn_lapse_months * 30 as lapse_days from settings
),

-- Every known customer's (market, channel), buyers or not (logged-in visitors count in MAU), and
-- every (market, channel) of spend and traffic.
segments as (
    select distinct market, acquisition_channel as channel from stg_customers
    union
    select distinct market, channel from day_events
    union
    select distinct market, channel from stg_session_days
    union
    select distinct market, channel from invites_in
),

grid as (
    select days.day, days.day_number, segments.market, segments.channel
    from days
    cross join segments
),

customer_days as (
    select customer_id, market, channel, is_member, day_number, next_day_number, after_next_day_number, days_since,
        orders, revenue_cents
    from stg_customer_days
),

-- As in stg_kpi_monthly_counts, in days: a purchase day d keeps its customer among the window's
-- buyers from d until d + days or their next purchase day; consecutive purchase days d1 < d2 make
-- them a repurchaser from d2 until d1 + days or the day after d2. The spans never overlap.
window_changes as (
    select customer_days.day_number, customer_days.market, customer_days.channel,
        1 as buyers_change, case when customer_days.is_member then 1 else 0 end as member_buyers_change,
        0 as repurchasers_change, 0 as member_repurchasers_change
    from customer_days
    union all
    select
        least(customer_days.day_number + repurchase_window.days,
              coalesce(customer_days.next_day_number, customer_days.day_number + repurchase_window.days)),
        customer_days.market, customer_days.channel,
        -1, case when customer_days.is_member then -1 else 0 end, 0, 0
    from repurchase_window
    cross join customer_days
    union all
    select customer_days.next_day_number, customer_days.market, customer_days.channel,
        0, 0, 1, case when customer_days.is_member then 1 else 0 end
    from repurchase_window
    cross join customer_days
    where customer_days.next_day_number < customer_days.day_number + repurchase_window.days
    union all
    select
        least(customer_days.day_number + repurchase_window.days,
              coalesce(customer_days.after_next_day_number, customer_days.day_number + repurchase_window.days)),
        customer_days.market, customer_days.channel,
        0, 0, -1, case when customer_days.is_member then -1 else 0 end
    from repurchase_window
    cross join customer_days
    where customer_days.next_day_number < customer_days.day_number + repurchase_window.days
),

window_events as (
    select
        day_number, market, channel,
        sum(buyers_change) as buyers_change,
        sum(repurchasers_change) as repurchasers_change,
        sum(member_buyers_change) as member_buyers_change,
        sum(member_repurchasers_change) as member_repurchasers_change
    from window_changes
    group by day_number, market, channel
),

-- Logged-in visitors of the day who also bought that day: visitor conversion's numerator.
converting as (
    select stg_session_days.day_number, stg_session_days.market, stg_session_days.channel,
        count(*) as converting_visitors
    from stg_session_days
    join customer_days
        on stg_session_days.customer_id = customer_days.customer_id
        and stg_session_days.day_number = customer_days.day_number
    group by 1, 2, 3
),

-- Each purchase day keeps the customer in the churn base for the lapse days after it, until the
-- next purchase day: +1 the day after, -1 the day after the coverage ends; a churn when the lapse
-- runs out before the next purchase.
purchase_spans as (
    select customer_days.market, customer_days.channel, customer_days.day_number, customer_days.next_day_number,
        lapse.lapse_days
    from customer_days
    cross join lapse
),

churn_events as (
    select day_number + 1 as day_number, market, channel, 1 as base_change, 0 as churned from purchase_spans
    union all
    select
        case
            when next_day_number is null or next_day_number > day_number + lapse_days then day_number + lapse_days
            else next_day_number
        end + 1,
        market, channel, -1, 0
    from purchase_spans
    union all
    select day_number + lapse_days, market, channel, 0, 1
    from purchase_spans
    where next_day_number is null or next_day_number > day_number + lapse_days
),

session_spans as (
    select market, channel, day_number, next_day_number from stg_session_days
),

-- A session day keeps the customer in MAU for 30 days, until their next session day.
mau_events as (
    select day_number, market, channel, 1 as mau_change, 1 as dau
    from session_spans
    union all
    select
        case
            when next_day_number is null or next_day_number > day_number + 30 then day_number + 30
            else next_day_number
        end,
        market, channel, -1, 0
    from session_spans
),

daily_events as (
    select day_number, market, channel,
        sum(base_change) as base_change, sum(churned) as churned, 0 as mau_change, 0 as dau
    from churn_events
    group by day_number, market, channel
    union all
    select day_number, market, channel, 0, 0, sum(mau_change), sum(dau)
    from mau_events
    group by day_number, market, channel
),

events as (
    select day_number, market, channel,
        sum(base_change) as base_change, sum(churned) as churned, sum(mau_change) as mau_change, sum(dau) as dau
    from daily_events
    group by day_number, market, channel
),

acquisitions as (
    select
        acquisition_day as day_number,
        market,
        channel,
        count(*) as new_customers,
        sum(referred) as referred_new_customers,
        sum(case when referred = 1 or organic = 1 then 1 else 0 end) as self_grown_new_customers
    from customers_in
    group by 1, 2, 3
),

activity as (
    select day_number, market, channel,
        count(*) as active_customers,
        sum(case when days_since > 0 or orders >= 2 then 1 else 0 end) as repeat_buyers,
        sum(case when is_member then 1 else 0 end) as active_members,
        sum(case when is_member and (days_since > 0 or orders >= 2) then 1 else 0 end) as member_repeat_buyers,
        sum(orders) as orders,
        sum(revenue_cents) as revenue_cents
    from customer_days
    group by 1, 2, 3
),

-- One day's cohort at 182 days: its size, who bought in days 153 to 182, who bought twice by then.
retention as (
    select
        acquisition_day + 182 as day_number,
        market,
        channel,
        count(*) as cohort_6m_size,
        sum(case when second_purchase_day <= acquisition_day + 182 then 1 else 0 end) as cohort_6m_repeat
    from customers_in
    group by 1, 2, 3
),

active_at_6m as (
    select day_number - days_since + 182 as day_number, market, channel, count(distinct customer_id) as cohort_6m_active
    from customer_days
    where days_since between 153 and 182
    group by 1, 2, 3
),

ltv as (
    select day_number - days_since + 365 as day_number, market, channel, sum(revenue_cents) as cohort_12m_revenue_cents
    from customer_days
    where days_since < 365
    group by 1, 2, 3
),

referrals as (
    select
        day_number,
        market,
        channel,
        count(*) as invites_sent,
        sum(case when accepted then 1 else 0 end) as invites_accepted,
        sum(case when converted then 1 else 0 end) as converted_invites,
        count(distinct inviter_customer_id) as sharers
    from invites_in
    group by 1, 2, 3
),

-- Sharers who also bought that day: the numerator of the invite share rate, a subset of the
-- day's buyers.
buying_sharers as (
    select customer_days.day_number, customer_days.market, customer_days.channel, count(*) as active_sharers
    from (select distinct inviter_customer_id, day_number from invites_in) as sent
    join customer_days
        on sent.inviter_customer_id = customer_days.customer_id
        and sent.day_number = customer_days.day_number
    group by 1, 2, 3
),

delivery as (
    select
        order_day_number as day_number,
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
        grid.day,
        grid.day_number,
        coalesce(market_regions.region, settings.default_region) as region,
        grid.market,
        grid.channel,
        coalesce(acquisitions.new_customers, 0) as new_customers,
        coalesce(acquisitions.referred_new_customers, 0) as referred_new_customers,
        coalesce(acquisitions.self_grown_new_customers, 0) as self_grown_new_customers,
        coalesce(activity.active_customers, 0) as active_customers,
        coalesce(activity.repeat_buyers, 0) as repeat_buyers,
        coalesce(activity.active_members, 0) as active_members,
        coalesce(activity.member_repeat_buyers, 0) as member_repeat_buyers,
        coalesce(activity.orders, 0) as orders,
        coalesce(activity.revenue_cents, 0) as revenue_cents,
        coalesce(day_events.placed_orders, 0) as placed_orders,
        coalesce(day_events.cancelled_orders, 0) as cancelled_orders,
        coalesce(day_events.refunded_orders, 0) as refunded_orders,
        coalesce(day_events.spend_cents, 0) as spend_cents,
        day_events.clicks,
        coalesce(day_events.click_spend_cents, 0) as click_spend_cents,
        coalesce(day_events.sessions, 0) as sessions,
        coalesce(day_events.organic_sessions, 0) as organic_sessions,
        coalesce(day_events.traffic_orders, 0) as traffic_orders,
        coalesce(events.base_change, 0) as base_change,
        coalesce(events.churned, 0) as churned,
        coalesce(events.mau_change, 0) as mau_change,
        coalesce(events.dau, 0) as dau,
        coalesce(retention.cohort_6m_size, 0) as cohort_6m_day_size,
        coalesce(active_at_6m.cohort_6m_active, 0) as cohort_6m_day_active,
        coalesce(retention.cohort_6m_repeat, 0) as cohort_6m_day_repeat,
        coalesce(ltv.cohort_12m_revenue_cents, 0) as cohort_12m_day_revenue_cents,
        -- whole cents, so the roll-ups' sums are exact whatever order rows meet in
        cast(round(coalesce(ltv.cohort_12m_revenue_cents, 0) * coalesce(margins.margin_rate, settings.margin_rate)) as bigint)
            as cohort_12m_day_margin_cents,
        coalesce(window_events.buyers_change, 0) as buyers_change,
        coalesce(window_events.repurchasers_change, 0) as repurchasers_change,
        coalesce(window_events.member_buyers_change, 0) as member_buyers_change,
        coalesce(window_events.member_repurchasers_change, 0) as member_repurchasers_change,
        coalesce(converting.converting_visitors, 0) as converting_visitors,
        coalesce(referrals.invites_sent, 0) as invites_sent,
        coalesce(referrals.invites_accepted, 0) as invites_accepted,
        coalesce(referrals.converted_invites, 0) as converted_invites,
        coalesce(referrals.sharers, 0) as sharers,
        coalesce(buying_sharers.active_sharers, 0) as active_sharers,
        coalesce(delivery.delivery_known, 0) as delivery_known,
        coalesce(delivery.delivered_within_7d, 0) as delivered_within_7d,
        coalesce(delivery.delivered, 0) as delivered,
        coalesce(delivery.delivery_micros_sum, 0) as delivery_micros_sum
    from grid
    cross join settings
    left join margins on grid.market = margins.market
    left join market_regions on grid.market = market_regions.market
    left join window_events
        on grid.day_number = window_events.day_number and grid.market = window_events.market
        and grid.channel = window_events.channel
    left join converting
        on grid.day_number = converting.day_number and grid.market = converting.market
        and grid.channel = converting.channel
    left join acquisitions
        on grid.day_number = acquisitions.day_number and grid.market = acquisitions.market and grid.channel = acquisitions.channel
    left join activity
        on grid.day_number = activity.day_number and grid.market = activity.market and grid.channel = activity.channel
    left join day_events
        on grid.day_number = day_events.day_number and grid.market = day_events.market
        and grid.channel = day_events.channel
    left join events
        on grid.day_number = events.day_number and grid.market = events.market and grid.channel = events.channel
    left join retention
        on grid.day_number = retention.day_number and grid.market = retention.market and grid.channel = retention.channel
    left join active_at_6m
        on grid.day_number = active_at_6m.day_number and grid.market = active_at_6m.market
        and grid.channel = active_at_6m.channel
    left join ltv
        on grid.day_number = ltv.day_number and grid.market = ltv.market and grid.channel = ltv.channel
    left join referrals
        on grid.day_number = referrals.day_number and grid.market = referrals.market and grid.channel = referrals.channel
    left join buying_sharers
        on grid.day_number = buying_sharers.day_number and grid.market = buying_sharers.market
        and grid.channel = buying_sharers.channel
    left join delivery
        on grid.day_number = delivery.day_number and grid.market = delivery.market and grid.channel = delivery.channel
),

rolled_up as (
    select
        day,
        day_number,
        case when grouping(region) = 1 then '(all)' else region end as region,
        case when grouping(market) = 1 then '(all)' else market end as market,
        case when grouping(channel) = 1 then '(all)' else channel end as channel,
        sum(new_customers) as new_customers,
        sum(referred_new_customers) as referred_new_customers,
        sum(self_grown_new_customers) as self_grown_new_customers,
        sum(active_customers) as active_customers,
        sum(repeat_buyers) as repeat_buyers,
        sum(active_members) as active_members,
        sum(member_repeat_buyers) as member_repeat_buyers,
        sum(orders) as orders,
        sum(revenue_cents) as revenue_cents,
        sum(placed_orders) as placed_orders,
        sum(cancelled_orders) as cancelled_orders,
        sum(refunded_orders) as refunded_orders,
        sum(spend_cents) as spend_cents,
        sum(clicks) as clicks,
        sum(click_spend_cents) as click_spend_cents,
        sum(sessions) as sessions,
        sum(organic_sessions) as organic_sessions,
        sum(traffic_orders) as traffic_orders,
        sum(base_change) as base_change,
        sum(churned) as churned,
        sum(mau_change) as mau_change,
        sum(dau) as dau,
        sum(cohort_6m_day_size) as cohort_6m_day_size,
        sum(cohort_6m_day_active) as cohort_6m_day_active,
        sum(cohort_6m_day_repeat) as cohort_6m_day_repeat,
        sum(cohort_12m_day_revenue_cents) as cohort_12m_day_revenue_cents,
        sum(cohort_12m_day_margin_cents) as cohort_12m_day_margin_cents,
        sum(buyers_change) as buyers_change,
        sum(repurchasers_change) as repurchasers_change,
        sum(member_buyers_change) as member_buyers_change,
        sum(member_repurchasers_change) as member_repurchasers_change,
        sum(converting_visitors) as converting_visitors,
        sum(invites_sent) as invites_sent,
        sum(invites_accepted) as invites_accepted,
        sum(converted_invites) as converted_invites,
        sum(sharers) as sharers,
        sum(active_sharers) as active_sharers,
        sum(delivery_known) as delivery_known,
        sum(delivered_within_7d) as delivered_within_7d,
        sum(delivered) as delivered,
        sum(delivery_micros_sum) as delivery_micros_sum
    from base
    -- A market has one region: grouping by both adds nothing but the region column.
    group by grouping sets (
        (day, day_number, region, market, channel),
        (day, day_number, region, market),
        (day, day_number, region, channel),
        (day, day_number, region),
        (day, day_number, channel),
        (day, day_number)
    )
),

running as (
    select
        *,
        sum(base_change) over to_date as churn_base_today,
        sum(mau_change) over to_date as mau,
        sum(churned) over last_30_days as churned_30d,
        sum(new_customers) over to_date as total_customers,
        sum(buyers_change) over to_date as buyers_window,
        sum(repurchasers_change) over to_date as repurchasers_window,
        sum(member_buyers_change) over to_date as member_buyers_window,
        sum(member_repurchasers_change) over to_date as member_repurchasers_window,
        sum(new_customers) over last_30_days as growth_new_customers,
        lag(new_customers, 365) over by_day as cohort_12m_day_size,
        lag(spend_cents, 365) over by_day as cohort_12m_day_spend_cents,
        lag(new_customers, 730) over by_day as cohort_12m_day_size_year_ago,
        lag(cohort_12m_day_margin_cents, 365) over by_day as cohort_12m_day_margin_cents_year_ago
    from rolled_up
    window
        to_date as (partition by region, market, channel order by day_number rows between unbounded preceding and current row),
        last_30_days as (partition by region, market, channel order by day_number rows between 29 preceding and current row),
        by_day as (partition by region, market, channel order by day_number)
),

-- The churn base 30 days back, and the cohorts of 30 acquisition days summed.
with_base as (
    select
        *,
        lag(churn_base_today, 29) over by_day as churn_base_30d,
        lag(growth_new_customers, 30) over by_day as growth_new_customers_prev,
        lag(growth_new_customers, 365) over by_day as growth_new_customers_year_ago,
        lag(total_customers, 30) over by_day as total_customers_prev,
        lag(total_customers, 365) over by_day as total_customers_year_ago,
        sum(cohort_6m_day_size) over last_30_days as cohort_6m_size,
        sum(cohort_6m_day_active) over last_30_days as cohort_6m_active,
        sum(cohort_6m_day_repeat) over last_30_days as cohort_6m_repeat,
        sum(cohort_12m_day_size) over last_30_days as cohort_12m_size,
        sum(cohort_12m_day_revenue_cents) over last_30_days as cohort_12m_revenue_cents,
        sum(cohort_12m_day_margin_cents) over last_30_days as cohort_12m_margin_cents,
        sum(cohort_12m_day_spend_cents) over last_30_days as cohort_12m_spend_cents,
        sum(cohort_12m_day_size_year_ago) over last_30_days as cohort_12m_size_year_ago,
        sum(cohort_12m_day_margin_cents_year_ago) over last_30_days as cohort_12m_margin_cents_year_ago
    from running
    window
        last_30_days as (partition by region, market, channel order by day_number rows between 29 preceding and current row),
        by_day as (partition by region, market, channel order by day_number)
)

select
    day as period_start,
    region,
    market,
    channel,
    true as period_complete,
    cast(1 as int) as days_in_period,
    new_customers,
    referred_new_customers,
    self_grown_new_customers,
    growth_new_customers,
    growth_new_customers_prev,
    growth_new_customers_year_ago,
    total_customers,
    total_customers_prev,
    total_customers_year_ago,
    active_customers,
    repeat_buyers,
    active_members,
    member_repeat_buyers,
    buyers_window,
    repurchasers_window,
    member_buyers_window,
    member_repurchasers_window,
    buyers_window_prev,
    orders,
    revenue_cents,
    placed_orders,
    cancelled_orders,
    refunded_orders,
    spend_cents,
    clicks,
    click_spend_cents,
    churn_base_30d as churn_base,
    churned_30d as churned,
    cohort_6m_size,
    cohort_6m_active,
    cohort_6m_repeat,
    cohort_12m_size,
    cohort_12m_revenue_cents,
    cohort_12m_margin_cents,
    cohort_12m_spend_cents,
    cohort_12m_size_year_ago,
    cohort_12m_margin_cents_year_ago,
    cast(0 as bigint) as tier_customers,
    cast(0 as bigint) as high_value_customers,
    sessions,
    organic_sessions,
    traffic_orders,
    dau as session_customer_days,
    mau,
    converting_visitors,
    invites_sent,
    invites_accepted,
    converted_invites,
    sharers,
    active_sharers,
    delivery_known,
    delivered_within_7d,
    delivered,
    delivery_micros_sum
from with_base
left join (
    -- the window before: as many days back as the window is long (lag's offset is a constant)
    select
        running.day_number + repurchase_window.days as prev_day_number,
        running.region as prev_region,
        running.market as prev_market,
        running.channel as prev_channel,
        running.buyers_window as buyers_window_prev
    from repurchase_window
    cross join running
) as window_before
    on with_base.day_number = window_before.prev_day_number
    and with_base.region = window_before.prev_region
    and with_base.market = window_before.prev_market
    and with_base.channel = window_before.prev_channel
order by period_start, region, market, channel
