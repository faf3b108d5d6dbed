-- Finishes the runs in ?1 (a JSON array of ids) whose sinks are all done; ?2: now (ms).
UPDATE errand_runs SET state = 'done', finished_at = ?2
WHERE id IN (SELECT value FROM json_each(?1)) AND state = 'running'
