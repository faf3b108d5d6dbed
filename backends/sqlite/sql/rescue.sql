-- Running tasks whose worker has not beaten since ?2 (ms) go back to pending,
-- due now, or dead if that was their last attempt. ?1: now (ms).
-- (Column references in SET read the row's old values, so `worker` below is the lost worker.)
-- A workflow step that goes dead comes back with its run and step, to fail the run.
UPDATE errand_tasks
SET state = CASE WHEN attempt >= max_attempts THEN 'dead' ELSE 'pending' END,
    finished_at = CASE WHEN attempt >= max_attempts THEN ?1 ELSE NULL END,
    run_at = CASE WHEN attempt >= max_attempts THEN run_at ELSE ?1 END,
    last_error = 'worker `' || coalesce(worker, '?') || '` stopped heartbeating during '
        || CASE WHEN attempt >= max_attempts
                THEN 'the last attempt (' || attempt || ' of ' || max_attempts || ')'
                ELSE 'attempt ' || attempt || ' of ' || max_attempts || '; the task was put back'
           END,
    worker = NULL
WHERE state = 'running'
  AND (worker IS NULL OR worker NOT IN (SELECT id FROM errand_workers WHERE last_seen >= ?2))
RETURNING id, queue, state, run_id, step, last_error
