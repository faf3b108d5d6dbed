-- The runs in ?1 (a JSON array of ids) that are still running, with the
-- trace context their step tasks carry.
SELECT id, workflow, queue, steps, trace FROM errand_runs
WHERE id IN (SELECT value FROM json_each(?1)) AND state = 'running'
