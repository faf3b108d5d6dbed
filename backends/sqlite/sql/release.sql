-- Graceful stop of worker ?1: its running tasks go back to pending without using an attempt.
UPDATE errand_tasks
SET state = 'pending', attempt = MAX(attempt - 1, 0), worker = NULL
WHERE state = 'running' AND worker = ?1
RETURNING queue
