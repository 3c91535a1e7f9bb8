-- The input rows the row rules set aside (policy quarantine) for the run date: models never
-- saw them. The manifest counts them per table and rule; a table with more than
-- quality.max_reject_share of its rows set aside fails the run instead (docs/reference/input-contract.md: Row rules
-- and rejects).
-- grain: one row per input row set aside
-- materialized: table
-- columns:
--   table_name: the input table the row came from
--   rule: the first rule the row breaks (null_id, out_of_range_time, bad_amount, unknown_status, duplicate_key, orphan_customer, before_signup, orphan_order)
--   row_key: the row's key (order_id, customer_id, ...; several columns joined by |)
--   event_ts: the row's event time (order_ts, signup_ts, ...), UTC
--   row_values: every contract column of the row as name=value, comma-separated
select table_name, rule, row_key, event_ts, row_values
from quality_rejects
order by table_name, rule, row_key, row_values
