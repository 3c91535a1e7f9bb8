-- The RFM segment grid: which named segment each (R score, F score) cell belongs to. The one
-- place to change the segment names or boundaries.
-- grain: one row per rectangle of the R/F grid; together they cover the 25 cells once
-- materialized: ephemeral
-- columns:
--   r_from: lowest R score of the rectangle (1 to 5)
--   r_to: highest R score of the rectangle
--   f_from: lowest F score of the rectangle (1 to 5)
--   f_to: highest F score of the rectangle
--   segment: the segment's name
select
    column1 as r_from,
    column2 as r_to,
    column3 as f_from,
    column4 as f_to,
    column5 as segment
from (
    values
        (1, 2, 1, 2, 'Hibernating'),
        (1, 2, 3, 4, 'At Risk'),
        (1, 2, 5, 5, 'Can''t Lose Them'),
        (3, 3, 1, 2, 'About to Sleep'),
        (3, 3, 3, 3, 'Need Attention'),
        (3, 3, 4, 5, 'Loyal Customers'),
        (4, 4, 1, 1, 'Promising'),
        (4, 4, 2, 3, 'Potential Loyalists'),
        (4, 4, 4, 5, 'Loyal Customers'),
        (5, 5, 1, 1, 'New Customers'),
        (5, 5, 2, 3, 'Potential Loyalists'),
        (5, 5, 4, 5, 'Champions')
)
