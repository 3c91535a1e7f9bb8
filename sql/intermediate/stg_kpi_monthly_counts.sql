-- The monthly counts the KPI formulas are computed from (stg_kpi_measures): one row per month,
-- market and channel with its roll-ups. Only counts and sums here; every ratio is written once,
-- in stg_kpi_measures, for both grains. Same columns, in the same order, as stg_kpi_daily_counts.
-- grain: one row per (month_start, region, market, channel), every month from the first order to the run date
-- materialized: table
-- columns:
--   period_start: first day of the calendar month (each market's in its own time zone, [time_zone])
--   region: the market's region (the config's [region]; its `default` for markets not named), or '(all)' on rows over every region
--   market: market (ISO 3166 alpha-2), or '(all)' on roll-up rows (a region's roll-up has its region and market '(all)')
--   channel: acquisition channel (customers) and spend channel (spend), or '(all)' on roll-up rows
--   period_complete: whether the month ended by the run date's end (false for the run date's month unless the run date is its last day)
--   days_in_period: days of the month up to the run date
--   new_customers: customers whose first purchase falls in the month
--   referred_new_customers: of those, referred customers (stg_customers.referred: a first purchase after an accepted invite)
--   self_grown_new_customers: of those, referred customers and customers acquired through an organic channel (organic_channels in sql/growth.toml)
--   growth_new_customers: new customers of the growth window: the month
--   growth_new_customers_prev: new customers of the window before: the month before
--   growth_new_customers_year_ago: new customers of the window a year before: the month 12 months before
--   total_customers: customers with a purchase by the end of the month (or the run date)
--   total_customers_prev: total_customers at the end of the month before
--   total_customers_year_ago: total_customers at the end of the month 12 months before
--   active_customers: distinct customers with at least one purchase in the month
--   repeat_buyers: of those, customers who had bought before the month or bought twice or more in it (returning buyers)
--   active_members: of the active customers, paid members
--   member_repeat_buyers: of the repeat buyers, paid members
--   buyers_window: distinct customers with a purchase in the repurchase window: the repurchase_window_months months ending with this one
--   repurchasers_window: of those, customers who bought on at least two different days in the window
--   member_buyers_window: of buyers_window, paid members
--   member_repurchasers_window: of repurchasers_window, paid members
--   buyers_window_prev: buyers_window of the window before, ending repurchase_window_months months before this month
--   orders: completed orders in the month
--   revenue_cents: revenue of those orders, US cents
--   placed_orders: orders placed in the month whatever their status (stg_kpi_day_events)
--   cancelled_orders: of those, cancelled
--   refunded_orders: of those, refunded
--   spend_cents: marketing spend in the month, US cents
--   clicks: ad clicks in the month; null when no spend row reports clicks
--   click_spend_cents: spend of the rows that report clicks, US cents
--   churn_base: customers with a purchase in the churn_lapse_months months before this month
--   churned: of those, customers whose last purchase was exactly churn_lapse_months months before this month (and none since)
--   cohort_6m_size: customers acquired 6 months before this month
--   cohort_6m_active: of those, customers with a purchase in this month (month 6 of the cohort)
--   cohort_6m_repeat: of those, customers with a second purchase by the end of this month
--   cohort_12m_size: customers acquired 12 months before this month
--   cohort_12m_revenue_cents: their revenue in their first 12 months (months 0 to 11), US cents
--   cohort_12m_margin_cents: that revenue times their market's margin_rate (sql/growth.toml), US cents
--   cohort_12m_spend_cents: marketing spend in their acquisition month, US cents
--   cohort_12m_size_year_ago: cohort_12m_size 12 months before: customers acquired 24 months before this month
--   cohort_12m_margin_cents_year_ago: cohort_12m_margin_cents 12 months before, that cohort's first-year margin
--   tier_customers: at the end of the latest complete month only, customers with a purchase by then (the customers rfm_segments would score); 0 in other months
--   high_value_customers: of those, the high value tier at that month's end (rfm_segments' rules: R, F and M all 4 or 5, scored against every such customer)
--   sessions: visits in the month, anonymous ones included, by the visit's market and channel
--   organic_sessions: of those, from an organic channel
--   traffic_orders: completed orders in the month by the order's own market and channel, compared with sessions
--   session_customer_days: (customer, day) pairs with a logged-in session in the month
--   mau: distinct logged-in customers with a session in the month, buyers or not
--   converting_visitors: of those, customers who also bought in the month
--   invites_sent: invites sent in the month, by the inviter's market and channel, inviters who never bought included (stg_invites)
--   invites_accepted: of those, accepted by the run date
--   converted_invites: of those, invites that brought a new buyer (stg_invites)
--   sharers: distinct customers who sent an invite in the month
--   active_sharers: distinct customers who sent an invite in the month and bought in it
--   delivery_known: completed orders placed in the month whose 7 days have passed by the run date's end
--   delivered_within_7d: of those, delivered within 7 days of the order
--   delivered: completed orders placed in the month and delivered by the run date
--   delivery_micros_sum: microseconds from order to delivery, summed over those delivered
with customers_in as (
    select
        stg_customers.customer_id,
        stg_customers.market,
        stg_customers.acquisition_channel as channel,
        stg_customers.acquisition_month_index,
        stg_customers.second_purchase_month_index,
        case when stg_customers.referred then 1 else 0 end as referred,
        case when organic.channel is not null then 1 else 0 end as organic
    from stg_customers
    left join (select distinct channel from organic_channels) as organic
        on stg_customers.acquisition_channel = organic.channel
    where stg_customers.first_purchase_ts is not null
),

customer_months as (
    select
        customer_id, market, acquisition_channel as channel, is_member, activity_month_index,
        next_activity_month_index, months_since, orders, revenue_cents
    from stg_customer_months
),

day_events as (
    select
        month_index,
        market,
        channel,
        sum(placed_orders) as placed_orders,
        sum(cancelled_orders) as cancelled_orders,
        sum(refunded_orders) as refunded_orders,
        sum(spend_cents) as spend_cents,
        sum(clicks) as clicks,
        sum(click_spend_cents) as click_spend_cents,
        sum(sessions) as sessions,
        sum(organic_sessions) as organic_sessions,
        sum(traffic_orders) as traffic_orders
    from stg_kpi_day_events
    group by month_index, market, channel
),

invites_in as (
    select inviter_customer_id, market, channel, month_index, accepted, converted from stg_invites
),

-- Purchase days with the next two: the repurchase window's counts are built from them.
purchase_days as (
    select customer_id, market, channel, is_member, month_index, next_month_index, after_next_month_index
    from stg_customer_days
),

margins as (
    select market, margin_rate from margin_rates
),

months as (
    select
        calendar_months.month_start,
        calendar_months.month_index,
        calendar_months.days_in_period,
        calendar_months.month_start + interval '1 month' <= run_context.run_date + interval '1 day' as period_complete
    from calendar_months
    cross join run_context
),

lapse as (
    select churn_lapse_months from settings
),

-- The plan's high-value share (3.4) at the end of the latest complete month: rfm_segments' value
-- tiers, scored as of that month's last day. Tiers are ranks among all customers at one moment,
-- so one month has them (earlier months' figures are in earlier runs' partitions): ranks at every
-- month's end would cost customers x months.
tier_month as (
    select month_index, cast(cast(month_start + interval '1 month' as date) as int) - 1 as last_day_number
    from months
    where period_complete
    order by month_index desc
    limit 1
),

tier_measures as (
    select
        stg_customer_days.customer_id,
        max(stg_customer_days.market) as market,
        max(stg_customer_days.channel) as channel,
        max(tier_month.last_day_number) - max(stg_customer_days.day_number) as recency_days,
        sum(stg_customer_days.orders) as frequency,
        sum(stg_customer_days.revenue_cents) as monetary_cents
    from tier_month
    cross join stg_customer_days
    where stg_customer_days.day_number <= tier_month.last_day_number
    group by stg_customer_days.customer_id
),

tier_counted as (
    select count(*) as customers from tier_measures
),

tiers as (
    select
        tier_measures.market,
        tier_measures.channel,
        case
            when least(5, 1 + floor(5 * case when tier_counted.customers > 1
                then (rank() over (order by tier_measures.recency_days desc) - 1) / cast(tier_counted.customers - 1 as double) else 0.0 end)) >= 4
                and least(5, 1 + floor(5 * case when tier_counted.customers > 1
                then (rank() over (order by tier_measures.frequency asc) - 1) / cast(tier_counted.customers - 1 as double) else 0.0 end)) >= 4
                and least(5, 1 + floor(5 * case when tier_counted.customers > 1
                then (rank() over (order by tier_measures.monetary_cents asc) - 1) / cast(tier_counted.customers - 1 as double) else 0.0 end)) >= 4
                then 1
            else 0
        end as high
    from tier_counted
    cross join tier_measures
),

high_value as (
    select tier_month.month_index, tiers.market, tiers.channel, count(*) as tier_customers, sum(tiers.high) as high_value_customers
    from tier_month
    cross join tiers
    group by tier_month.month_index, tiers.market, tiers.channel
),

repurchase_window as (
    select repurchase_window_months as months from settings
),

lapse_steps as (
    select numbers.n, lapse.churn_lapse_months
    from numbers
    cross join lapse
    where numbers.n between 1 and lapse.churn_lapse_months
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
    select
        months.month_start, months.month_index, months.days_in_period, months.period_complete,
        segments.market, segments.channel
    from months
    cross join segments
),

acquisitions as (
    select
        acquisition_month_index as month_index,
        market,
        channel,
        count(*) as new_customers,
        sum(referred) as referred_new_customers,
        sum(case when referred = 1 or organic = 1 then 1 else 0 end) as self_grown_new_customers
    from customers_in
    group by acquisition_month_index, market, channel
),

activity as (
    select
        activity_month_index as month_index,
        market,
        channel,
        count(*) as active_customers,
        sum(case when months_since > 0 or orders >= 2 then 1 else 0 end) as repeat_buyers,
        sum(case when is_member then 1 else 0 end) as active_members,
        sum(case when is_member and (months_since > 0 or orders >= 2) then 1 else 0 end) as member_repeat_buyers,
        sum(case when months_since = 6 then 1 else 0 end) as cohort_6m_active,
        sum(orders) as orders,
        sum(revenue_cents) as revenue_cents
    from customer_months
    group by activity_month_index, market, channel
),

-- A month with a purchase keeps the customer in the churn base for the lapse months after it,
-- until their next month with a purchase; they churn in the last of those months if no purchase came.
churn_coverage as (
    select
        customer_months.activity_month_index + lapse_steps.n as month_index,
        customer_months.market,
        customer_months.channel,
        case
            when lapse_steps.n = lapse_steps.churn_lapse_months
                and (customer_months.next_activity_month_index is null
                     or customer_months.next_activity_month_index > customer_months.activity_month_index + lapse_steps.n)
                then 1
            else 0
        end as churned
    -- lapse_steps first: a join with no equality holds its left side in memory, and here that
    -- must be the few steps, not the customer-months (47M rows and a 5.6 GiB peak under a 2 GiB
    -- cap at 10M customers)
    from lapse_steps
    cross join customer_months
    where customer_months.next_activity_month_index is null
        or customer_months.activity_month_index + lapse_steps.n <= customer_months.next_activity_month_index
),

churn as (
    select month_index, market, channel, count(*) as churn_base, sum(churned) as churned
    from churn_coverage
    group by month_index, market, channel
),

retention as (
    select
        acquisition_month_index + 6 as month_index,
        market,
        channel,
        count(*) as cohort_6m_size,
        sum(case when second_purchase_month_index <= acquisition_month_index + 6 then 1 else 0 end) as cohort_6m_repeat
    from customers_in
    group by 1, 2, 3
),

ltv as (
    select
        activity_month_index - months_since + 12 as month_index,
        market,
        channel,
        sum(revenue_cents) as cohort_12m_revenue_cents
    from customer_months
    where months_since <= 11
    group by 1, 2, 3
),

-- The repurchase window of month m is the `months` months m - months + 1 to m. A purchase day d
-- keeps its customer among the window's buyers from month M(d) until M(d) + months, or until the
-- month of their next purchase day, which takes over; two consecutive purchase days d1 < d2 make
-- the customer a repurchaser from M(d2) until M(d1) + months, or until the month of the day
-- after d2, which takes over with d2. The spans of one customer never overlap, so a running sum
-- of these +1/-1 changes counts each customer once per month.
window_changes as (
    select
        purchase_days.month_index,
        purchase_days.market,
        purchase_days.channel,
        1 as buyers_change,
        case when purchase_days.is_member then 1 else 0 end as member_buyers_change,
        0 as repurchasers_change,
        0 as member_repurchasers_change
    from purchase_days
    where purchase_days.next_month_index is null or purchase_days.next_month_index > purchase_days.month_index
    union all
    select
        least(purchase_days.month_index + repurchase_window.months, coalesce(purchase_days.next_month_index, purchase_days.month_index + repurchase_window.months)),
        purchase_days.market,
        purchase_days.channel,
        -1,
        case when purchase_days.is_member then -1 else 0 end,
        0,
        0
    from repurchase_window
    cross join purchase_days
    where purchase_days.next_month_index is null or purchase_days.next_month_index > purchase_days.month_index
    union all
    select
        purchase_days.next_month_index,
        purchase_days.market,
        purchase_days.channel,
        0,
        0,
        1,
        case when purchase_days.is_member then 1 else 0 end
    from repurchase_window
    cross join purchase_days
    where purchase_days.next_month_index < purchase_days.month_index + repurchase_window.months
        and (purchase_days.after_next_month_index is null
             or purchase_days.after_next_month_index > purchase_days.next_month_index)
    union all
    select
        least(purchase_days.month_index + repurchase_window.months, coalesce(purchase_days.after_next_month_index, purchase_days.month_index + repurchase_window.months)),
        purchase_days.market,
        purchase_days.channel,
        0,
        0,
        -1,
        case when purchase_days.is_member then -1 else 0 end
    from repurchase_window
    cross join purchase_days
    where purchase_days.next_month_index < purchase_days.month_index + repurchase_window.months
        and (purchase_days.after_next_month_index is null
             or purchase_days.after_next_month_index > purchase_days.next_month_index)
),

window_events as (
    select
        month_index, market, channel,
        sum(buyers_change) as buyers_change,
        sum(repurchasers_change) as repurchasers_change,
        sum(member_buyers_change) as member_buyers_change,
        sum(member_repurchasers_change) as member_repurchasers_change
    from window_changes
    group by month_index, market, channel
),

-- Logged-in visitors of the month who also bought in it: visitor conversion's numerator.
converting as (
    select visits.month_index, visits.market, visits.channel, count(*) as converting_visitors
    from (
        select distinct stg_session_days.customer_id, stg_session_days.market, stg_session_days.channel,
            calendar_days.month_index
        from stg_session_days
        join calendar_days on stg_session_days.day_number = calendar_days.day_number
    ) as visits
    join customer_months
        on visits.customer_id = customer_months.customer_id
        and visits.month_index = customer_months.activity_month_index
    group by 1, 2, 3
),

engagement as (
    select
        calendar_days.month_index,
        stg_session_days.market,
        stg_session_days.channel,
        count(*) as customer_days,
        count(distinct stg_session_days.customer_id) as mau
    from stg_session_days
    join calendar_days on stg_session_days.day_number = calendar_days.day_number
    group by 1, 2, 3
),

referrals as (
    select
        month_index,
        market,
        channel,
        count(*) as invites_sent,
        sum(case when accepted then 1 else 0 end) as invites_accepted,
        sum(case when converted then 1 else 0 end) as converted_invites,
        count(distinct inviter_customer_id) as sharers
    from invites_in
    group by 1, 2, 3
),

-- Sharers who also bought in the month: the numerator of the invite share rate, a subset of the
-- month's buyers.
buying_sharers as (
    select
        customer_months.activity_month_index as month_index,
        customer_months.market,
        customer_months.channel,
        count(*) as active_sharers
    from (select distinct inviter_customer_id, month_index from invites_in) as sent
    join customer_months
        on sent.inviter_customer_id = customer_months.customer_id
        and sent.month_index = customer_months.activity_month_index
    group by 1, 2, 3
),

delivery as (
    select
        order_month_index as month_index,
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
        grid.month_start,
        grid.month_index,
        grid.days_in_period,
        grid.period_complete,
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
        coalesce(activity.cohort_6m_active, 0) as cohort_6m_active,
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
        coalesce(churn.churn_base, 0) as churn_base,
        coalesce(churn.churned, 0) as churned,
        coalesce(retention.cohort_6m_size, 0) as cohort_6m_size,
        coalesce(retention.cohort_6m_repeat, 0) as cohort_6m_repeat,
        coalesce(ltv.cohort_12m_revenue_cents, 0) as cohort_12m_revenue_cents,
        -- whole cents, so the roll-ups' sums are exact whatever order rows meet in
        cast(round(coalesce(ltv.cohort_12m_revenue_cents, 0) * coalesce(margins.margin_rate, settings.margin_rate)) as bigint)
            as cohort_12m_margin_cents,
        coalesce(window_events.buyers_change, 0) as buyers_change,
        coalesce(window_events.repurchasers_change, 0) as repurchasers_change,
        coalesce(window_events.member_buyers_change, 0) as member_buyers_change,
        coalesce(window_events.member_repurchasers_change, 0) as member_repurchasers_change,
        coalesce(engagement.customer_days, 0) as customer_days,
        coalesce(engagement.mau, 0) as mau,
        coalesce(converting.converting_visitors, 0) as converting_visitors,
        coalesce(referrals.invites_sent, 0) as invites_sent,
        coalesce(referrals.invites_accepted, 0) as invites_accepted,
        coalesce(referrals.converted_invites, 0) as converted_invites,
        coalesce(referrals.sharers, 0) as sharers,
        coalesce(buying_sharers.active_sharers, 0) as active_sharers,
        coalesce(delivery.delivery_known, 0) as delivery_known,
        coalesce(delivery.delivered_within_7d, 0) as delivered_within_7d,
        coalesce(delivery.delivered, 0) as delivered,
        coalesce(delivery.delivery_micros_sum, 0) as delivery_micros_sum,
        coalesce(high_value.tier_customers, 0) as tier_customers,
        coalesce(high_value.high_value_customers, 0) as high_value_customers
    from grid
    cross join settings
    left join margins on grid.market = margins.market
    left join market_regions on grid.market = market_regions.market
    left join window_events
        on grid.month_index = window_events.month_index and grid.market = window_events.market
        and grid.channel = window_events.channel
    left join converting
        on grid.month_index = converting.month_index and grid.market = converting.market
        and grid.channel = converting.channel
    left join acquisitions
        on grid.month_index = acquisitions.month_index and grid.market = acquisitions.market and grid.channel = acquisitions.channel
    left join activity
        on grid.month_index = activity.month_index and grid.market = activity.market and grid.channel = activity.channel
    left join day_events
        on grid.month_index = day_events.month_index and grid.market = day_events.market
        and grid.channel = day_events.channel
    left join churn
        on grid.month_index = churn.month_index and grid.market = churn.market and grid.channel = churn.channel
    left join retention
        on grid.month_index = retention.month_index and grid.market = retention.market and grid.channel = retention.channel
    left join ltv
        on grid.month_index = ltv.month_index and grid.market = ltv.market and grid.channel = ltv.channel
    left join engagement
        on grid.month_index = engagement.month_index and grid.market = engagement.market and grid.channel = engagement.channel
    left join referrals
        on grid.month_index = referrals.month_index and grid.market = referrals.market and grid.channel = referrals.channel
    left join buying_sharers
        on grid.month_index = buying_sharers.month_index and grid.market = buying_sharers.market
        and grid.channel = buying_sharers.channel
    left join delivery
        on grid.month_index = delivery.month_index and grid.market = delivery.market and grid.channel = delivery.channel
    left join high_value
        on grid.month_index = high_value.month_index and grid.market = high_value.market
        and grid.channel = high_value.channel
),

rolled_up as (
    select
        month_start,
        month_index,
        days_in_period,
        period_complete,
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
        sum(cohort_6m_active) as cohort_6m_active,
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
        sum(churn_base) as churn_base,
        sum(churned) as churned,
        sum(cohort_6m_size) as cohort_6m_size,
        sum(cohort_6m_repeat) as cohort_6m_repeat,
        sum(cohort_12m_revenue_cents) as cohort_12m_revenue_cents,
        sum(cohort_12m_margin_cents) as cohort_12m_margin_cents,
        sum(buyers_change) as buyers_change,
        sum(repurchasers_change) as repurchasers_change,
        sum(member_buyers_change) as member_buyers_change,
        sum(member_repurchasers_change) as member_repurchasers_change,
        sum(customer_days) as customer_days,
        sum(mau) as mau,
        sum(converting_visitors) as converting_visitors,
        sum(invites_sent) as invites_sent,
        sum(invites_accepted) as invites_accepted,
        sum(converted_invites) as converted_invites,
        sum(sharers) as sharers,
        sum(active_sharers) as active_sharers,
        sum(delivery_known) as delivery_known,
        sum(delivered_within_7d) as delivered_within_7d,
        sum(delivered) as delivered,
        sum(delivery_micros_sum) as delivery_micros_sum,
        sum(tier_customers) as tier_customers,
        sum(high_value_customers) as high_value_customers
    from base
    -- A market has one region: grouping by both adds nothing but the region column.
    group by grouping sets (
        (month_start, month_index, days_in_period, period_complete, region, market, channel),
        (month_start, month_index, days_in_period, period_complete, region, market),
        (month_start, month_index, days_in_period, period_complete, region, channel),
        (month_start, month_index, days_in_period, period_complete, region),
        (month_start, month_index, days_in_period, period_complete, channel),
        (month_start, month_index, days_in_period, period_complete)
    )
),

with_totals as (
    select
        *,
        sum(new_customers) over to_date as total_customers,
        sum(buyers_change) over to_date as buyers_window,
        sum(repurchasers_change) over to_date as repurchasers_window,
        sum(member_buyers_change) over to_date as member_buyers_window,
        sum(member_repurchasers_change) over to_date as member_repurchasers_window
    from rolled_up
    window to_date as (partition by region, market, channel order by month_index rows between unbounded preceding and current row)
),

with_history as (
    select
        *,
        lag(new_customers, 12) over by_month as cohort_12m_size,
        lag(spend_cents, 12) over by_month as cohort_12m_spend_cents,
        lag(new_customers, 24) over by_month as cohort_12m_size_year_ago,
        lag(cohort_12m_margin_cents, 12) over by_month as cohort_12m_margin_cents_year_ago,
        lag(new_customers, 1) over by_month as growth_new_customers_prev,
        lag(new_customers, 12) over by_month as growth_new_customers_year_ago,
        lag(total_customers, 1) over by_month as total_customers_prev,
        lag(total_customers, 12) over by_month as total_customers_year_ago
    from with_totals
    window by_month as (partition by region, market, channel order by month_index)
)

select
    month_start as period_start,
    region,
    market,
    channel,
    period_complete,
    days_in_period,
    new_customers,
    referred_new_customers,
    self_grown_new_customers,
    new_customers as growth_new_customers,
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
    churn_base,
    churned,
    cohort_6m_size,
    cohort_6m_active,
    cohort_6m_repeat,
    cohort_12m_size,
    cohort_12m_revenue_cents,
    cohort_12m_margin_cents,
    cohort_12m_spend_cents,
    cohort_12m_size_year_ago,
    cohort_12m_margin_cents_year_ago,
    tier_customers,
    high_value_customers,
    sessions,
    organic_sessions,
    traffic_orders,
    customer_days as session_customer_days,
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
from with_history
left join (
    -- the window before: as many months back as the window is long (lag's offset is a constant)
    select
        with_totals.month_index + repurchase_window.months as month_index,
        with_totals.region as prev_region,
        with_totals.market as prev_market,
        with_totals.channel as prev_channel,
        with_totals.buyers_window as buyers_window_prev
    from repurchase_window
    cross join with_totals
) as window_before
    on with_history.month_index = window_before.month_index
    and with_history.region = window_before.prev_region
    and with_history.market = window_before.prev_market
    and with_history.channel = window_before.prev_channel
order by period_start, region, market, channel
