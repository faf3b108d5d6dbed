-- Tasks held by workers not seen for ? ms by the server's clock: running
-- ones to rescue, cancelled ones to forget. Read without locking, through
-- tasks_held's ranges of rows held by a worker (bounded by the workers'
-- concurrency and buffers); the statements that change them check again.
-- At most 10,000 per round.
SELECT t.id, t.worker, t.state, t.run_id, t.attempt, t.max_attempts
FROM `__PREFIX__tasks` AS t
WHERE t.state IN ('running', 'cancelled') AND t.worker IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM `__PREFIX__workers` AS w
                  WHERE w.id = t.worker AND w.last_seen >= CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED) - ?)
LIMIT 10000;
