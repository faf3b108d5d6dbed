-- ?1: JSON array of [id, run_at]; ?2: the acking worker.
-- A snooze gives the attempt back: the task runs again as the same attempt.
UPDATE errand_tasks AS t NOT INDEXED -- rowid lookups only: never walk the running index per JSON row
SET state = 'pending', run_at = a.value ->> 1, attempt = MAX(t.attempt - 1, 0), worker = NULL
FROM json_each(?1) AS a
WHERE t.id = a.value ->> 0 AND t.state = 'running' AND t.worker = ?2
