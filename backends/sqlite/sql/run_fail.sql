-- ?1 run, ?2 error, ?3 finished_at (ms).
UPDATE errand_runs SET state = 'failed', error = ?2, finished_at = ?3 WHERE id = ?1 AND state = 'running'
