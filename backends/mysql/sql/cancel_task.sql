-- Cancels task ? if it is pending, running or waiting to retry.
-- 1. Locks it: ? id. Columns: run_id, step (NULL unless it is a workflow
--    step, whose run then fails: run_lock.sql locked it first).
SELECT run_id, step FROM `__PREFIX__tasks` WHERE id = ? AND state IN ('pending', 'running', 'retry') FOR UPDATE;
-- 2. ? now (ms), ? id. A running task keeps its worker, which is told (see
--    cancelled_tasks.sql) and whose ack will be ignored. `worker` and
--    `claim` are assigned before `state`: MySQL assigns left to right, so
--    they read the state the row had.
UPDATE `__PREFIX__tasks`
SET worker = IF(state = 'running', worker, NULL), claim = IF(state = 'running', claim, NULL), finished_at = ?,
    state = 'cancelled'
WHERE id = ? AND state IN ('pending', 'running', 'retry');
