-- Every calendar day from the first day of the month of the earliest event (an order, a
-- spend, a visit or an invite: spend often starts before the first sale) to the run date. Whole
-- months, so calendar_months counts a month's days from here.
-- grain: one row per day
-- materialized: ephemeral
-- columns:
--   day: the calendar day (each market's in its own time zone, [time_zone]) (Date32)
--   day_number: days since 1970-01-01, for day arithmetic
--   month_index: months since year 0 of the day's month (year * 12 + month - 1): the one place a day's month index is computed
with first_events as (
    select cast(cast(min(order_ts) as date) as int) as day_number from orders
    union all
    select cast(min(spend_date) as int) from marketing_spend
    union all
    select cast(cast(min(session_start_ts) as date) as int) from sessions
    union all
    select cast(cast(min(sent_ts) as date) as int) from invites
),

bounds as (
    select
        -- in a market west of UTC the first event's day may be the UTC day before
        cast(date_trunc('month', cast(
            min(first_events.day_number) - max(case when settings.time_zones = '' then 0 else 1 end) as date
        )) as date) as first_day,
        max(run_context.run_date) as last_day
    from first_events
    cross join run_context
    cross join settings
),

days as (
    select cast(cast(bounds.first_day as int) + numbers.n as date) as day
    from bounds
    cross join numbers
    where numbers.n <= cast(bounds.last_day as int) - cast(bounds.first_day as int)
)

select
    day,
    cast(day as int) as day_number,
    cast(date_part('year', day) as int) * 12 + cast(date_part('month', day) as int) - 1 as month_index
from days
