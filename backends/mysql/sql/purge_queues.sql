-- The queues that have done tasks: a loose index scan of tasks_held (one
-- probe per queue; done tasks have no worker nor claim).
WITH RECURSIVE queues (queue) AS (
    SELECT MIN(queue) FROM `__PREFIX__tasks` WHERE state = 'done' AND worker IS NULL AND claim IS NULL
    UNION ALL
    SELECT (SELECT MIN(t.queue) FROM `__PREFIX__tasks` AS t WHERE t.state = 'done' AND t.worker IS NULL AND t.claim IS NULL
                                                          AND t.queue > queues.queue)
    FROM queues
    WHERE queues.queue IS NOT NULL
)
SELECT queue FROM queues WHERE queue IS NOT NULL;
