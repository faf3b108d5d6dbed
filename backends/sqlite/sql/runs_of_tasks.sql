-- The runs of the step tasks in ?1 and ?2 (JSON arrays of [id, ...]) that are
-- still running, with the trace context their step tasks carry.
SELECT 'run' AS part, id, workflow, queue, steps, trace FROM errand_runs
WHERE id IN (
    SELECT run_id FROM errand_tasks
    WHERE id IN (SELECT value ->> 0 FROM json_each(?1) UNION ALL SELECT value ->> 0 FROM json_each(?2))
) AND state = 'running'
