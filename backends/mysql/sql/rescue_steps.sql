-- The part of orphan rescue that ends workflow steps: the step tasks of the
-- JSON array ? of [id, worker], running on their last attempt for a worker
-- not seen for ? ms (server clock), locked in the transaction that holds
-- their runs' locks (run_lock.sql), so that their runs fail with them.
-- Columns: id, run_id, step, worker, attempt, max_attempts.
SELECT t.id, t.run_id, t.step, a.worker, t.attempt, t.max_attempts
FROM JSON_TABLE(?, '$[*]' COLUMNS (id BIGINT PATH '$[0]', worker VARCHAR(255) PATH '$[1]')) AS a
STRAIGHT_JOIN `__PREFIX__tasks` AS t ON t.id = a.id
WHERE t.state = 'running' AND t.worker = a.worker AND t.run_id IS NOT NULL AND t.attempt >= t.max_attempts
  AND NOT EXISTS (SELECT 1 FROM `__PREFIX__workers` AS w
                  WHERE w.id = a.worker AND w.last_seen >= CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED) - ?)
ORDER BY t.id
FOR UPDATE;
