-- Retention: deletes `done` tasks finished before $1 (ms), looking at the $2
-- oldest done tasks (by id) of each queue at most, so one call is bounded.
-- The queues are found with a loose index scan of tasks_finished.
WITH RECURSIVE queues AS (
    (SELECT queue FROM __SCHEMA__.tasks WHERE state = 'done' ORDER BY queue LIMIT 1)
    UNION ALL
    SELECT (SELECT t.queue FROM __SCHEMA__.tasks AS t
            WHERE t.state = 'done' AND t.queue > q.queue ORDER BY t.queue LIMIT 1)
    FROM queues AS q
    WHERE q.queue IS NOT NULL
), old AS (
    SELECT o.id
    FROM queues AS q
    CROSS JOIN LATERAL (
        SELECT s.id FROM (
            SELECT id, finished_at FROM __SCHEMA__.tasks
            WHERE queue = q.queue AND state = 'done'
            ORDER BY id
            LIMIT $2
        ) AS s
        WHERE s.finished_at < $1
    ) AS o
    WHERE q.queue IS NOT NULL
)
DELETE FROM __SCHEMA__.tasks AS t USING old WHERE t.id = old.id AND t.state = 'done'
