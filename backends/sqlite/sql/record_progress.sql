-- ?1: JSON array of [id, percent, message]; ?2: the reporting worker. Each
-- report lands only while its task is still running for that worker.
UPDATE errand_tasks AS t NOT INDEXED -- rowid lookups only: never walk the running index per JSON row
SET progress_percent = p.value ->> 1, progress_message = p.value ->> 2
FROM json_each(?1) AS p
WHERE t.id = p.value ->> 0 AND t.state = 'running' AND t.worker = ?2
