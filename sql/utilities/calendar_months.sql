-- Every calendar month from the month of the earliest event to the month of the run date,
-- summed from calendar_days (which holds whole months up to the run date).
-- grain: one row per month
-- materialized: ephemeral
-- columns:
--   month_start: first day of the month (Date32)
--   month_index: months since year 0 (year * 12 + month - 1), for month arithmetic
--   days_in_period: days of the month up to and including the run date
select
    min(day) as month_start,
    month_index,
    cast(count(*) as int) as days_in_period
from calendar_days
group by month_index
