-- Task counts per queue and state, each group of states read from its own
-- partial index alone (see migrations/0003), never from the table: waiting
-- rows from the claim index, running rows from the running index, finished
-- rows from the finished index, and rows in a state this version does not
-- know from an index that holds only those (so that they are reported as an
-- error, not missed), and then one row per paused queue (`paused` = 1, no
-- state), so a paused queue is listed even with no tasks. One statement: one
-- snapshot.
WITH waiting AS MATERIALIZED (
    SELECT queue, sum(state = 'pending') AS pending, sum(state = 'retry') AS retry
    FROM errand_tasks INDEXED BY errand_tasks_claim
    WHERE state IN ('pending', 'retry')
    GROUP BY queue
)
SELECT queue, 'pending' AS state, pending AS n, 0 AS paused FROM waiting WHERE pending > 0
UNION ALL
SELECT queue, 'retry', retry, 0 FROM waiting WHERE retry > 0
UNION ALL
SELECT queue, 'running', count(*), 0 FROM errand_tasks INDEXED BY errand_tasks_running
WHERE state = 'running'
GROUP BY queue
UNION ALL
SELECT queue, state, count(*), 0 FROM errand_tasks INDEXED BY errand_tasks_finished
WHERE state IN ('done', 'dead', 'cancelled')
GROUP BY queue, state
UNION ALL
SELECT queue, state, count(*), 0 FROM errand_tasks INDEXED BY errand_tasks_unknown_state
WHERE state NOT IN ('pending', 'running', 'retry', 'done', 'dead', 'cancelled')
GROUP BY queue, state
UNION ALL
SELECT queue, NULL, 0, 1 FROM errand_paused_queues
