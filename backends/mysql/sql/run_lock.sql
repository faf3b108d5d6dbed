-- Locks the workflow runs of the JSON array ? of ids (sorted) until the
-- transaction ends, in id order, and reads them. Taken before any task row
-- is touched: the ends of one run's steps serialise here, and two
-- transactions locking several runs take them in the same order, so they
-- never deadlock each other. Columns: id, workflow, queue, state, steps,
-- trace (the context the tasks of the steps it makes ready carry).
SELECT r.id, r.workflow, r.queue, r.state, r.steps, r.trace
FROM JSON_TABLE(?, '$[*]' COLUMNS (id BIGINT PATH '$')) AS a
STRAIGHT_JOIN `__PREFIX__runs` AS r ON r.id = a.id
ORDER BY r.id
FOR UPDATE;
