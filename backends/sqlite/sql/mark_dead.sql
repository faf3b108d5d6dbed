-- A claimed task whose stored row cannot be read: ?1 id, ?2 error, ?3 finished_at, ?4 worker.
-- A workflow step's row comes back with its run and step, to fail the run.
UPDATE errand_tasks
SET state = 'dead', last_error = ?2, finished_at = ?3, worker = NULL
WHERE id = ?1 AND state = 'running' AND worker = ?4
RETURNING id, run_id, step, last_error
