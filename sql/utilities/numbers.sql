-- The whole numbers 0 to 99,999, for building calendars in plain SQL (no engine-specific
-- series functions, so the models also run on a Ballista cluster).
-- grain: one row per number
-- materialized: ephemeral
-- columns:
--   n: a whole number from 0 to 99,999
with digits as (
    select column1 as d from (values (0), (1), (2), (3), (4), (5), (6), (7), (8), (9))
)

select
    ones.d + 10 * tens.d + 100 * hundreds.d + 1000 * thousands.d + 10000 * ten_thousands.d as n
from digits as ones
cross join digits as tens
cross join digits as hundreds
cross join digits as thousands
cross join digits as ten_thousands
