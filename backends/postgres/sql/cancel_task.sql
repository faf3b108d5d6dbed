-- Cancels task $1 at $2 (ms) if it is pending, running or waiting to retry.
-- A running task keeps its worker (see cancelled_tasks.sql); its ack will be
-- ignored. Returns the task's run_id and step (NULL unless it is a workflow
-- step, whose run then fails: run_lock.sql locked it first).
UPDATE __SCHEMA__.tasks
SET state = 'cancelled', finished_at = $2, worker = CASE WHEN state = 'running' THEN worker END
WHERE id = $1 AND state IN ('pending', 'running', 'retry')
RETURNING run_id, step
