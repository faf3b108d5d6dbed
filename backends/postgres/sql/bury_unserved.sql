-- Waiting tasks of job $2 on queue $1 due at or before $3 (ms) go dead with
-- reason $4 at $5 (ms). The first row counts them (`n`); the next ones are
-- the workflow steps among them (`id`, `run_id`, `step`), whose runs fail
-- with them (run_lock_waiting.sql locked them first).
WITH buried AS (
    UPDATE __SCHEMA__.tasks
    SET state = 'dead', last_error = $4, finished_at = $5
    WHERE queue = $1 AND job = $2 AND state IN ('pending', 'retry') AND run_at <= $3
    RETURNING id, run_id, step
)
SELECT NULL::bigint AS id, NULL::bigint AS run_id, NULL::integer AS step, count(*) AS n FROM buried
UNION ALL
SELECT id, run_id, step, NULL FROM buried WHERE run_id IS NOT NULL
