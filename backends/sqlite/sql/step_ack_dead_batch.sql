-- Buries a batch of workflow step tasks, guarded like every ack.
-- ?2: JSON array of [id, error]; ?3: finished_at (ms); ?4: the acking worker
-- (the numbering of the script `STEP_ACK`, see src/sql.rs).
UPDATE errand_tasks AS t NOT INDEXED
SET state = 'dead', last_error = a.value ->> 1, finished_at = ?3, worker = NULL
FROM json_each(?2) AS a
WHERE t.id = a.value ->> 0 AND t.state = 'running' AND t.worker = ?4
RETURNING 'dead' AS part, id, run_id, step, last_error -- RETURNING names the updated table, unaliased
