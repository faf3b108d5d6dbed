-- The steps of the runs of the JSON array ? of ids that have (or had) a
-- task, each with its output once done: with the graph, what the workflow
-- planner needs. Read after run_lock.sql, as a statement of its own (each
-- statement reads what was committed when it started, under READ
-- COMMITTED), so the last of two sibling steps to finish sees the other's
-- output.
SELECT s.run_id, s.step, s.output
FROM JSON_TABLE(?, '$[*]' COLUMNS (id BIGINT PATH '$')) AS a
STRAIGHT_JOIN `__PREFIX__run_steps` AS s ON s.run_id = a.id;
