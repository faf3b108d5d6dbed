-- A claim, two statements run one after the other (autocommit each):
-- 1. Takes up to ? due tasks of job ? on queue ?: the derived table walks
--    tasks_claim's `waiting = 1` range in claim order (highest priority,
--    then earliest run_at, then id), skips rows other claims hold, and stops
--    at the limit; its rows are then marked running for the worker under
--    the claim's token (see release_claims.sql), with their progress
--    cleared (each attempt starts from none). Nothing is taken while the
--    queue is paused: one primary-key lookup in paused_queues, which the
--    optimizer evaluates once, before it reads any task.
--    Parameters: ? queue, ? job, ? now (ms), ? queue (paused?), ? limit,
--    ? worker, ? token, ? now (ms, started_at).
UPDATE (
    SELECT id FROM `__PREFIX__tasks`
    WHERE queue = ? AND job = ? AND waiting = 1 AND run_at <= ?
      AND NOT EXISTS (SELECT 1 FROM `__PREFIX__paused_queues` AS p WHERE p.queue = ?)
    ORDER BY neg_priority, run_at, id
    LIMIT ?
    FOR UPDATE SKIP LOCKED
) AS picked
STRAIGHT_JOIN `__PREFIX__tasks` AS t ON t.id = picked.id
SET t.state = 'running', t.attempt = t.attempt + 1, t.worker = ?, t.claim = ?, t.started_at = ?,
    t.progress_percent = NULL, t.progress_message = NULL;
-- 2. Reads the claimed rows back through tasks_held, in claim order.
--    Parameters: ? worker, ? token. Columns: id, attempt, max_attempts,
--    run_at, priority, payload, trace.
SELECT id, attempt, max_attempts, run_at, priority, payload, trace FROM `__PREFIX__tasks`
WHERE state = 'running' AND worker = ? AND claim = ?
ORDER BY neg_priority, run_at, id;
