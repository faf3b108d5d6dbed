-- ?1 run, ?2 state (done or failed), ?3 error, ?4 finished_at (ms).
UPDATE errand_runs SET state = ?2, error = ?3, finished_at = ?4 WHERE id = ?1 AND state = 'running'
