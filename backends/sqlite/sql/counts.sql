-- Task counts per queue and state: a scan of the table, run on a reader
-- connection so it never holds up workers.
SELECT queue, state, COUNT(*) AS n FROM errand_tasks GROUP BY queue, state
