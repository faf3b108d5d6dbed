-- Puts dead or cancelled task $1 back to pending with fresh attempts at $2 (ms).
WITH retried AS (
    UPDATE __SCHEMA__.tasks
    SET state = 'pending', attempt = 0, run_at = $2, finished_at = NULL, worker = NULL, result = NULL
    WHERE id = $1 AND state IN ('dead', 'cancelled')
    RETURNING queue
)
SELECT queue, pg_notify($3, queue)::text FROM retried
