-- Completes a batch of workflow step tasks, guarded like every ack.
-- ?1: JSON array of [id, result_hex]; ?2: finished_at (ms); ?3: the acking worker.
UPDATE errand_tasks AS t NOT INDEXED
SET state = 'done', result = unhex(a.value ->> 1), finished_at = ?2, worker = NULL
FROM json_each(?1) AS a
WHERE t.id = a.value ->> 0 AND t.state = 'running' AND t.worker = ?3
RETURNING id, run_id, step, result -- RETURNING names the updated table, unaliased
