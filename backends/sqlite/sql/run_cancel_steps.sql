-- Cancels the live steps of failed run ?1; ?2: now (ms). Running ones keep
-- their worker, so it is told (their cancellation token fires) and their ack
-- is ignored.
UPDATE errand_tasks SET state = 'cancelled', finished_at = ?2
WHERE run_id = ?1 AND state IN ('pending', 'retry', 'running')
