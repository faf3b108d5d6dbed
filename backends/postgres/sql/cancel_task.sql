-- Cancels task $1 if it is pending, running or waiting to retry. A running
-- task keeps its worker (see cancelled_tasks.sql); its ack will be ignored.
UPDATE __SCHEMA__.tasks
SET state = 'cancelled', finished_at = $2, worker = CASE WHEN state = 'running' THEN worker END
WHERE id = $1 AND state IN ('pending', 'running', 'retry')
