-- Every UTC calendar day from the day of the first order to the run date.
-- grain: one row per day
-- materialized: ephemeral
-- columns:
--   day: the UTC calendar day (Date32)
--   day_number: days since 1970-01-01, for day arithmetic
with bounds as (
    select
        cast(cast(min(orders.order_ts) as date) as int) as first_day,
        cast(max(run_context.run_date) as int) as last_day
    from orders
    cross join run_context
)

select
    cast(bounds.first_day + numbers.n as date) as day,
    bounds.first_day + numbers.n as day_number
from bounds
cross join numbers
where numbers.n <= bounds.last_day - bounds.first_day
