-- The queues that have tasks in state ? held by no worker: a loose index
-- scan of tasks_held (one probe per queue). Parameters: ? state, ? state.
-- At most 65.
WITH RECURSIVE queues (queue) AS (
    SELECT MIN(queue) FROM `__PREFIX__tasks` WHERE state = ? AND worker IS NULL AND claim IS NULL
    UNION ALL
    SELECT (SELECT MIN(t.queue) FROM `__PREFIX__tasks` AS t WHERE t.state = ? AND t.worker IS NULL AND t.claim IS NULL
                                                          AND t.queue > queues.queue)
    FROM queues
    WHERE queues.queue IS NOT NULL
)
SELECT queue FROM queues WHERE queue IS NOT NULL LIMIT 65;
