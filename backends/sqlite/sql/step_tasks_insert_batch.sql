-- Inserts the tasks of steps that became ready, each only if its step has no
-- task yet. ?2: JSON array of [queue, job, payload_hex, max_attempts, priority,
-- run_id, step, trace] (trace: the run's); ?3: now (ms) (the numbering of the
-- script `RUN_ADVANCE`, see src/sql.rs).
INSERT INTO errand_tasks (queue, job, state, payload, max_attempts, priority, run_at, created_at, run_id, step,
                          trace)
SELECT a.value ->> 0, a.value ->> 1, 'pending', unhex(a.value ->> 2), a.value ->> 3, a.value ->> 4, ?3, ?3,
       a.value ->> 5, a.value ->> 6, a.value ->> 7
FROM json_each(?2) AS a
WHERE NOT EXISTS (
    SELECT 1 FROM errand_run_steps AS s WHERE s.run_id = a.value ->> 5 AND s.step = a.value ->> 6
)
ORDER BY a.key
