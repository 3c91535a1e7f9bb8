-- Every UTC calendar month from the month of the first order to the month of the run date.
-- grain: one row per month
-- materialized: ephemeral
-- columns:
--   month_start: first day of the month (Date32)
--   month_index: months since year 0 (year * 12 + month - 1), for month arithmetic
--   days_in_period: days of the month up to and including the run date
with bounds as (
    select
        cast(date_part('year', min(order_ts)) as int) * 12 + cast(date_part('month', min(order_ts)) as int) - 1
            as first_index,
        cast(date_part('year', max(run_context.run_date)) as int) * 12
        + cast(date_part('month', max(run_context.run_date)) as int) - 1 as last_index,
        max(run_context.run_date) as run_date
    from orders
    cross join run_context
),

months as (
    select
        bounds.first_index + numbers.n as month_index,
        bounds.run_date
    from bounds
    cross join numbers
    where numbers.n <= bounds.last_index - bounds.first_index
)

select
    make_date(month_index / 12, month_index % 12 + 1, 1) as month_start,
    month_index,
    case
        when month_index = cast(date_part('year', run_date) as int) * 12 + cast(date_part('month', run_date) as int) - 1
            then cast(date_part('day', run_date) as int)
        else cast(date_part('day', make_date((month_index + 1) / 12, (month_index + 1) % 12 + 1, 1) - interval '1 day') as int)
    end as days_in_period
from months
