-- Waiting tasks of job $2 on queue $1 due at or before $3 (ms) go dead with
-- reason $4 at $5 (ms).
UPDATE __SCHEMA__.tasks
SET state = 'dead', last_error = $4, finished_at = $5
WHERE queue = $1 AND job = $2 AND state IN ('pending', 'retry') AND run_at <= $3
