-- The earliest run_at after ? (ms) among the waiting tasks of job ? on queue
-- ?: one probe of tasks_claim per distinct priority (found by a loose index
-- scan), so it costs the same however many tasks wait. With "after" the
-- current time it is a claim's next due time; with the smallest BIGINT, the
-- idle poller's probe. A paused queue has none (one primary-key lookup in
-- paused_queues): its idle workers sleep until it is resumed, and the idle
-- pollers of other processes see its tasks due again once it is.
-- Parameters: ? queue, ? job, ? queue, ? job, ? queue, ? job, ? after,
-- ? queue (paused?).
WITH RECURSIVE bands (p) AS (
    SELECT MIN(neg_priority) FROM `__PREFIX__tasks` WHERE queue = ? AND job = ? AND waiting = 1
    UNION ALL
    SELECT (SELECT MIN(t.neg_priority) FROM `__PREFIX__tasks` AS t
            WHERE t.queue = ? AND t.job = ? AND t.waiting = 1 AND t.neg_priority > bands.p)
    FROM bands
    WHERE bands.p IS NOT NULL
)
SELECT MIN((SELECT MIN(t.run_at) FROM `__PREFIX__tasks` AS t
            WHERE t.queue = ? AND t.job = ? AND t.waiting = 1 AND t.neg_priority = bands.p AND t.run_at > ?)) AS next_due
FROM bands
WHERE bands.p IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM `__PREFIX__paused_queues` AS paused WHERE paused.queue = ?);
