-- Customers with their acquisition: the first purchase. Market and acquisition channel come
-- from `customers`, else from the first purchase, else `unknown`. A customer's purchase days and
-- months are read in the time zone of the market of their first purchase (else their market), so
-- their acquisition month is their first order's month in stg_purchases.
-- grain: one row per customer known by the run date (signed up or ordered)
-- materialized: table
-- columns:
--   customer_id: the customer
--   signup_ts: when they signed up (UTC); their first order when `customers` is absent
--   market: market (ISO 3166 alpha-2) from customers, else the first purchase, else unknown
--   acquisition_channel: channel from customers, else the first purchase's channel, else unknown
--   referrer_customer_id: who invited them, from customers; null when not given
--   first_accepted_invite_ts: when they first accepted an invite (invites.accepted_ts, UTC); null if never
--   referred: whether they were referred: they accepted an invite at or before their first purchase; without an accepted invite, a referrer_customer_id or the referral acquisition channel (an invite accepted only after the first purchase did not bring them, so does not count)
--   is_member: paid membership; null when unknown
--   first_purchase_ts: their first completed order (UTC); null if they never bought
--   acquisition_day_number: the day of first_purchase_ts in market time (see above), in days since 1970-01-01
--   acquisition_month: first day of the month of first_purchase_ts in market time
--   acquisition_month_index: months since year 0 of acquisition_month (year * 12 + month - 1)
--   second_purchase_ts: their second completed order (UTC), the first repeat purchase; null if none
--   second_purchase_day_number: the day of second_purchase_ts in market time; null if none
--   second_purchase_month_index: months since year 0 of second_purchase_ts's month in market time; null if none
--   last_purchase_ts: their latest completed order (UTC)
--   last_purchase_date: the day of last_purchase_ts in market time
--   purchases: completed orders
--   revenue_cents: sum of amount_cents over completed orders, US cents (exact)
--   revenue_usd: revenue_cents / 100, USD
with customers_in as (
    select customer_id, signup_ts, market, acquisition_channel, referrer_customer_id, is_member
    from customers
),

purchases as (
    select customer_id, order_id, order_ts, amount_cents, market, channel
    from stg_purchases
),

-- Each customer's first purchase time, the key the purchases are joined back on below.
first_purchases as (
    select customer_id, min(order_ts) as first_purchase_ts
    from purchases
    group by customer_id
),

-- Everything a customer's purchases say, in one aggregation: the first purchase's market and
-- channel (among purchases at the first time, the smallest order_id), which a customer without a
-- `customers` row falls back to, and the second purchase, the first repeat: the first time again
-- when two purchases share it, else the earliest later one. Numbering every customer's
-- purchases with a window sorted all of them (159M at 10M customers; 7.6 s -> 3.3 s for this
-- part at 1M, the same rows); the join's build side is one row per customer.
purchase_summary as (
    select
        purchases.customer_id,
        min(first_purchases.first_purchase_ts) as first_purchase_ts,
        max(purchases.order_ts) as last_purchase_ts,
        count(*) as purchases,
        sum(purchases.amount_cents) as revenue_cents,
        first_value(purchases.market order by purchases.order_id)
            filter (where purchases.order_ts = first_purchases.first_purchase_ts) as first_market,
        first_value(purchases.channel order by purchases.order_id)
            filter (where purchases.order_ts = first_purchases.first_purchase_ts) as first_channel,
        case
            when count(case when purchases.order_ts = first_purchases.first_purchase_ts then 1 end) >= 2
                then min(first_purchases.first_purchase_ts)
            else min(case when purchases.order_ts > first_purchases.first_purchase_ts then purchases.order_ts end)
        end as second_purchase_ts
    from first_purchases
    join purchases on purchases.customer_id = first_purchases.customer_id
    group by purchases.customer_id
),

-- One row per customer from each source, combined by an aggregation over a union rather than by
-- joins: every source holds at most one row per customer_id (the duplicate_key rule sets copies
-- aside), and an aggregation spills to disk under a memory cap where a hash join's build side
-- cannot (three build sides of 0.2 to 0.9 GB for 10M customers).
facts as (
    select
        customer_id, signup_ts, market, acquisition_channel, referrer_customer_id,
        -- 0/1: max() over booleans has no grouped accumulator in DataFusion 55 (one boxed
        -- accumulator per customer; 11.5 s instead of 16.7 s at 1M customers)
        cast(is_member as int) as is_member,
        -- typed nulls, so the union keeps purchase_summary's types (UTC timestamps, Utf8)
        arrow_cast(null, 'Timestamp(Microsecond, Some("UTC"))') as first_purchase_ts,
        arrow_cast(null, 'Timestamp(Microsecond, Some("UTC"))') as last_purchase_ts,
        cast(null as bigint) as purchases,
        cast(null as bigint) as revenue_cents,
        arrow_cast(null, 'Utf8') as first_market,
        arrow_cast(null, 'Utf8') as first_channel,
        arrow_cast(null, 'Timestamp(Microsecond, Some("UTC"))') as second_purchase_ts
    from customers_in
    union all
    select
        customer_id, null, null, null, null, null,
        first_purchase_ts, last_purchase_ts, purchases, revenue_cents, first_market, first_channel,
        second_purchase_ts
    from purchase_summary
),

combined as (
    select
        customer_id,
        max(signup_ts) as signup_ts,
        max(market) as market,
        max(acquisition_channel) as acquisition_channel,
        max(referrer_customer_id) as referrer_customer_id,
        max(is_member) = 1 as is_member,
        max(first_purchase_ts) as first_purchase_ts,
        max(last_purchase_ts) as last_purchase_ts,
        max(purchases) as purchases,
        max(revenue_cents) as revenue_cents,
        max(first_market) as first_market,
        max(first_channel) as first_channel,
        max(second_purchase_ts) as second_purchase_ts
    from facts
    group by customer_id
),

-- One row per invitee: an aggregation, so its join below is one row per customer at most.
acceptances as (
    select invitee_customer_id as customer_id, min(accepted_ts) as first_accepted_invite_ts
    from invites
    where accepted_ts is not null and invitee_customer_id is not null
    group by invitee_customer_id
),

resolved as (
    select
        combined.*,
        acceptances.first_accepted_invite_ts,
        coalesce(nullif(combined.acquisition_channel, 'unknown'), combined.first_channel, 'unknown') as channel
    from combined
    left join acceptances on combined.customer_id = acceptances.customer_id
)

select
    customer_id,
    coalesce(signup_ts, first_purchase_ts) as signup_ts,
    coalesce(nullif(market, 'unknown'), first_market, 'unknown') as market,
    channel as acquisition_channel,
    referrer_customer_id,
    first_accepted_invite_ts,
    case
        when first_accepted_invite_ts is not null
            then first_purchase_ts is null or first_accepted_invite_ts <= first_purchase_ts
        else referrer_customer_id is not null or channel = 'referral'
    end as referred,
    is_member,
    first_purchase_ts,
    cast(cast(first_local as date) as int) as acquisition_day_number,
    cast(date_trunc('month', first_local) as date) as acquisition_month,
    cast(date_part('year', first_local) as int) * 12
    + cast(date_part('month', first_local) as int) - 1 as acquisition_month_index,
    second_purchase_ts,
    cast(cast(second_local as date) as int) as second_purchase_day_number,
    cast(date_part('year', second_local) as int) * 12
    + cast(date_part('month', second_local) as int) - 1 as second_purchase_month_index,
    last_purchase_ts,
    cast(last_local as date) as last_purchase_date,
    coalesce(purchases, 0) as purchases,
    coalesce(revenue_cents, 0) as revenue_cents,
    coalesce(revenue_cents, 0) / 100.0 as revenue_usd
from (
    select
        resolved.*,
        market_time(resolved.first_purchase_ts, coalesce(resolved.first_market, resolved.market), settings.time_zones)
            as first_local,
        market_time(resolved.second_purchase_ts, coalesce(resolved.first_market, resolved.market), settings.time_zones)
            as second_local,
        market_time(resolved.last_purchase_ts, coalesce(resolved.first_market, resolved.market), settings.time_zones)
            as last_local
    -- the one-row side first: a cross join holds its left side in memory
    from settings
    cross join resolved
) as resolved
order by customer_id
