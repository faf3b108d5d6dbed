-- Like push.sql, but a task whose unique key matches a live task of the same
-- job (or one created since its `unique_since`) is not inserted: the existing
-- id comes back with the task's position (`ord`). Inserted ids come back with
-- a NULL ord, in input order once sorted. The caller holds an advisory lock
-- per (job, key) for the transaction, so two enqueues of one key serialise.
-- $1 created_at, $2 channel, $3.. arrays as push.sql's ($3 queues .. $9 trace
-- contexts), then $10 unique_key, $11 unique_since.
WITH input AS (
    SELECT *
    FROM UNNEST($3::text[], $4::text[], $5::bytea[], $6::bigint[], $7::smallint[], $8::integer[], $9::text[],
                $10::text[], $11::bigint[])
        WITH ORDINALITY AS i(queue, job, payload, run_at, priority, max_attempts, trace, unique_key, unique_since, ord)
), existing AS (
    SELECT i.ord, (
        SELECT t.id FROM __SCHEMA__.tasks AS t
        WHERE t.job = i.job AND t.unique_key = i.unique_key AND t.unique_key IS NOT NULL
          AND (t.state IN ('pending', 'running', 'retry') OR t.created_at >= i.unique_since)
        ORDER BY t.id DESC
        LIMIT 1
    ) AS id
    FROM input AS i
    WHERE i.unique_key IS NOT NULL
), ins AS (
    INSERT INTO __SCHEMA__.tasks (queue, job, payload, run_at, priority, max_attempts, created_at, unique_key, trace)
    SELECT i.queue, i.job, i.payload, i.run_at, i.priority, i.max_attempts, $1, i.unique_key, i.trace
    FROM input AS i
    WHERE NOT EXISTS (SELECT 1 FROM existing AS e WHERE e.ord = i.ord AND e.id IS NOT NULL)
    ORDER BY i.ord
    RETURNING id, queue
), woke AS (
    -- Only inside a caller's transaction (enqueue_in); otherwise $2 is NULL
    -- and the backend announces the queues after its own commit.
    SELECT count(pg_notify($2, q.queue)) AS n FROM (SELECT DISTINCT queue FROM ins) AS q WHERE $2::text IS NOT NULL
)
SELECT e.ord, e.id FROM existing AS e WHERE e.id IS NOT NULL
UNION ALL
SELECT NULL::bigint, ins.id FROM ins CROSS JOIN woke
