-- Asynchronous commit (transaction-local set_config below): if the server
-- crashes, a claim or ack of the last moments may be lost, which only means
-- the task runs again (at-least-once). Enqueues stay fully durable.
-- Claims up to $5 due tasks of job $4 on queue $3 for worker $1 at time $2 (ms),
-- under the claim's token $6 (see release_claims.sql).
-- The SELECT walks the partial index tasks_claim (waiting rows only) in
-- (priority DESC, run_at, id) order, skips rows other workers are claiming,
-- and stops at the limit. When nothing was claimed, one extra row carries the
-- earliest future run_at of the queue/job (id NULL): per distinct priority,
-- the first future run_at in tasks_claim.
-- A paused queue (a row in paused_queues, one primary-key probe, evaluated
-- once as the SELECT's one-time filter) claims nothing and has no next due
-- time: the probe gates `picked`, and `priorities` when nothing was claimed.
-- Claiming clears the progress of the task's previous attempt.
-- Parameters, for every program that runs this file (the bench harness too):
-- $1 worker id (text), $2 now (bigint ms), $3 queue (text), $4 job (text),
-- $5 limit (bigint), $6 claim token (bigint). Columns: id, attempt,
-- max_attempts, run_at, priority, payload, trace (the task's trace context,
-- NULL when it has none).
WITH RECURSIVE picked AS (
    SELECT id FROM __SCHEMA__.tasks
    WHERE queue = $3 AND job = $4 AND state IN ('pending', 'retry') AND run_at <= $2
      AND NOT EXISTS (SELECT 1 FROM __SCHEMA__.paused_queues WHERE queue = $3)
    ORDER BY priority DESC, run_at, id
    LIMIT $5
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE __SCHEMA__.tasks AS t
    SET state = 'running', attempt = t.attempt + 1, worker = $1, started_at = $2, claim = $6,
        progress_percent = NULL, progress_message = NULL
    FROM picked
    WHERE t.id = picked.id AND set_config('synchronous_commit', 'off', true) IS NOT NULL
    RETURNING t.id, t.attempt, t.max_attempts, t.run_at, t.priority, t.payload, t.trace
), priorities AS (
    -- The distinct priorities of waiting tasks (a loose scan of tasks_claim),
    -- only evaluated when nothing was claimed.
    (SELECT priority FROM __SCHEMA__.tasks
     WHERE queue = $3 AND job = $4 AND state IN ('pending', 'retry')
       AND NOT EXISTS (SELECT 1 FROM __SCHEMA__.paused_queues WHERE queue = $3)
     ORDER BY priority DESC LIMIT 1)
    UNION ALL
    SELECT (SELECT t.priority FROM __SCHEMA__.tasks AS t
            WHERE t.queue = $3 AND t.job = $4 AND t.state IN ('pending', 'retry') AND t.priority < p.priority
            ORDER BY t.priority DESC LIMIT 1)
    FROM priorities AS p
    WHERE p.priority IS NOT NULL
)
SELECT id, attempt, max_attempts, run_at, priority, payload, trace FROM claimed
UNION ALL
SELECT NULL::bigint, NULL::integer, NULL::integer, d.next_due, NULL::smallint, NULL::bytea, NULL::text
FROM (
    SELECT min((
        SELECT t.run_at FROM __SCHEMA__.tasks AS t
        WHERE t.queue = $3 AND t.job = $4 AND t.state IN ('pending', 'retry')
          AND t.priority = p.priority AND t.run_at > $2
        ORDER BY t.run_at
        LIMIT 1
    )) AS next_due
    FROM priorities AS p
    WHERE p.priority IS NOT NULL
) AS d
WHERE d.next_due IS NOT NULL AND NOT EXISTS (SELECT 1 FROM claimed)
