-- Cancels task ?1 if it has not finished; ?2: now (ms). A running task keeps its
-- worker, which is told with its next heartbeat (sql/cancelled_tasks.sql) and
-- whose ack is then ignored. A workflow step comes back with its run and step,
-- to fail the run.
UPDATE errand_tasks
SET state = 'cancelled', finished_at = ?2, worker = CASE WHEN state = 'running' THEN worker ELSE NULL END
WHERE id = ?1 AND state IN ('pending', 'retry', 'running')
RETURNING id, run_id, step
