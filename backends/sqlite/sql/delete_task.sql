-- Deletes task ?1 if it finished (`done`, `dead` or `cancelled`) and is no
-- workflow step (a step's task goes with its run): its result, error and
-- progress are columns of its row, and so is its unique key, which is free
-- again. A live task, a step's task or an unknown id deletes nothing.
DELETE FROM errand_tasks
WHERE id = ?1 AND state IN ('done', 'dead', 'cancelled') AND run_id IS NULL
