-- Buries one workflow step's task, guarded like every ack.
-- ?1 id, ?2 error, ?3 finished_at (ms), ?4 the acking worker.
UPDATE errand_tasks
SET state = 'dead', last_error = ?2, finished_at = ?3, worker = NULL
WHERE id = ?1 AND state = 'running' AND worker = ?4
RETURNING run_id, step
