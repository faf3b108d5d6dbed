-- Inserts a batch of tasks and, inside a caller's transaction, wakes every
-- listener of their queues (on
-- commit, when run inside the caller's transaction).
-- $1 created_at (ms), $2 NOTIFY channel (NULL: no NOTIFY), $3.. one array per column:
-- $3 queues, $4 jobs, $5 payloads, $6 run_at, $7 priorities, $8 max_attempts,
-- $9 trace contexts (NULL elements: none).
-- Ids are assigned in input order, so the sorted ids match the input.
WITH ins AS (
    INSERT INTO __SCHEMA__.tasks (queue, job, payload, run_at, priority, max_attempts, created_at, trace)
    SELECT i.queue, i.job, i.payload, i.run_at, i.priority, i.max_attempts, $1, i.trace
    FROM UNNEST($3::text[], $4::text[], $5::bytea[], $6::bigint[], $7::smallint[], $8::integer[], $9::text[])
        WITH ORDINALITY AS i(queue, job, payload, run_at, priority, max_attempts, trace, ord)
    ORDER BY i.ord
    RETURNING id, queue
), woke AS (
    -- Only inside a caller's transaction (enqueue_in); otherwise $2 is NULL
    -- and the backend announces the queues after its own commit.
    SELECT count(pg_notify($2, q.queue)) AS n FROM (SELECT DISTINCT queue FROM ins) AS q WHERE $2::text IS NOT NULL
)
SELECT ins.id FROM ins CROSS JOIN woke ORDER BY ins.id
