-- Tasks per queue and state, each group through its own partial index:
-- waiting rows (tasks_claim), running rows (tasks_running), finished rows
-- (tasks_finished). No index covers every row (see migration 3). Then one
-- row per paused queue, with `state` and `n` NULL.
SELECT queue, state, count(*) AS n FROM __SCHEMA__.tasks WHERE state IN ('pending', 'retry') GROUP BY queue, state
UNION ALL
SELECT queue, state, count(*) AS n FROM __SCHEMA__.tasks WHERE state = 'running' GROUP BY queue, state
UNION ALL
SELECT queue, state, count(*) AS n FROM __SCHEMA__.tasks WHERE state IN ('done', 'dead', 'cancelled') GROUP BY queue, state
UNION ALL
SELECT queue, NULL, NULL FROM __SCHEMA__.paused_queues
