-- Puts back orphaned running tasks: ? a JSON array of [id, worker] (from
-- orphans.sql), ? now (ms), ? now (ms), ? orphan_after (ms). Each goes back
-- to pending (its attempt stays used) or, on its last attempt, dead, with an
-- error naming the lost worker, if it is still running for that worker and
-- the worker has still not been seen (by the server's clock). Workflow steps
-- on their last attempt are not in the array: they go dead in a transaction
-- that fails their runs (rescue_steps.sql).
UPDATE JSON_TABLE(?, '$[*]' COLUMNS (id BIGINT PATH '$[0]', worker VARCHAR(255) PATH '$[1]')) AS a
STRAIGHT_JOIN `__PREFIX__tasks` AS t ON t.id = a.id
SET t.last_error = CONCAT('worker `', a.worker, '` stopped heartbeating during ',
        IF(t.attempt >= t.max_attempts,
           CONCAT('the last attempt (', t.attempt, ' of ', t.max_attempts, ')'),
           CONCAT('attempt ', t.attempt, ' of ', t.max_attempts, '; the task was put back'))),
    t.finished_at = IF(t.attempt >= t.max_attempts, ?, NULL),
    t.run_at = IF(t.attempt >= t.max_attempts, t.run_at, ?),
    t.state = IF(t.attempt >= t.max_attempts, 'dead', 'pending'),
    t.worker = NULL,
    t.claim = NULL
WHERE t.state = 'running' AND t.worker = a.worker
  AND NOT EXISTS (SELECT 1 FROM `__PREFIX__workers` AS w
                  WHERE w.id = a.worker AND w.last_seen >= CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED) - ?);
