-- Completes a batch of workflow step tasks, guarded like every ack.
-- ?1: JSON array of [id]; ?3: finished_at (ms); ?4: the acking worker (the
-- numbering of the script `STEP_ACK`, see src/sql.rs).
-- A step's output is stored once, with its run (errand_run_steps), not
-- again as the task's result: the caller hands it to the planner.
UPDATE errand_tasks AS t NOT INDEXED
SET state = 'done', finished_at = ?3, worker = NULL
FROM json_each(?1) AS a
WHERE t.id = a.value ->> 0 AND t.state = 'running' AND t.worker = ?4
RETURNING 'done' AS part, id, run_id, step -- RETURNING names the updated table, unaliased
