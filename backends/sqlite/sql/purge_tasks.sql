-- Retention: deletes up to ?2 `done` tasks that finished before ?1 (ms).
-- The queues that hold finished tasks are found by a loose scan of the
-- finished index (one seek per queue), and each queue's expired `done` tasks
-- by a range of the same index (queue, 'done', finished_at < ?1): dead and
-- cancelled tasks, which are kept, are never read. (CROSS JOIN fixes the
-- order: queues outside, the index range inside.)
WITH RECURSIVE queues (queue) AS (
    SELECT (SELECT min(queue) FROM errand_tasks INDEXED BY errand_tasks_finished
            WHERE state IN ('done', 'dead', 'cancelled'))
    UNION ALL
    SELECT (SELECT min(t.queue) FROM errand_tasks AS t INDEXED BY errand_tasks_finished
            WHERE t.state IN ('done', 'dead', 'cancelled') AND t.queue > q.queue)
    FROM queues AS q
    WHERE q.queue IS NOT NULL
)
DELETE FROM errand_tasks
WHERE id IN (
    SELECT t.id FROM queues AS q
    CROSS JOIN errand_tasks AS t INDEXED BY errand_tasks_finished
    WHERE q.queue IS NOT NULL AND t.queue = q.queue AND t.state IN ('done', 'dead', 'cancelled')
      AND t.state = 'done' AND t.finished_at < ?1
    LIMIT ?2
)
