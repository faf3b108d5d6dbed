-- A claimed task whose stored row cannot be read: ?1 id, ?2 error, ?3 finished_at, ?4 worker.
UPDATE errand_tasks
SET state = 'dead', last_error = ?2, finished_at = ?3, worker = NULL
WHERE id = ?1 AND state = 'running' AND worker = ?4
