-- Completes one workflow step's task, guarded like every ack.
-- ?1 id, ?2 result, ?3 finished_at (ms), ?4 the acking worker.
UPDATE errand_tasks
SET state = 'done', result = ?2, finished_at = ?3, worker = NULL
WHERE id = ?1 AND state = 'running' AND worker = ?4
RETURNING run_id, step
