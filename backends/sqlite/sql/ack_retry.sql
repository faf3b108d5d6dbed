-- ?1: JSON array of [id, run_at, error]; ?2: the acking worker.
UPDATE errand_tasks AS t NOT INDEXED -- rowid lookups only: never walk the running index per JSON row
SET state = 'retry', run_at = a.value ->> 1, last_error = a.value ->> 2, worker = NULL
FROM json_each(?1) AS a
WHERE t.id = a.value ->> 0 AND t.state = 'running' AND t.worker = ?2
