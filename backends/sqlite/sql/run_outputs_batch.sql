-- The stored outputs of the runs in ?1 (a JSON array of ids).
SELECT run_id, step, output FROM errand_run_steps
WHERE run_id IN (SELECT value FROM json_each(?1)) AND output IS NOT NULL
