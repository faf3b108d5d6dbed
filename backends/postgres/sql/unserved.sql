-- Waiting tasks of queue $1 whose job no worker has served on that queue
-- within the last $2 ms by the server's clock (`served_jobs`, written by
-- heartbeat.sql), counted back from when the statement arrived, counted by
-- job, with the earliest run_at. The caller turns its `since` (a time by its
-- own clock) into that age, so the two clocks are never compared. The jobs are found with a loose index scan of
-- tasks_claim, and only the unserved ones are counted, so this stays cheap
-- however many tasks of served jobs wait.
WITH RECURSIVE jobs AS (
    (SELECT job FROM __SCHEMA__.tasks
     WHERE queue = $1 AND state IN ('pending', 'retry')
     ORDER BY job LIMIT 1)
    UNION ALL
    SELECT (SELECT t.job FROM __SCHEMA__.tasks AS t
            WHERE t.queue = $1 AND t.state IN ('pending', 'retry') AND t.job > j.job
            ORDER BY t.job LIMIT 1)
    FROM jobs AS j
    WHERE j.job IS NOT NULL
), unserved AS MATERIALIZED (
    SELECT j.job FROM jobs AS j
    WHERE j.job IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM __SCHEMA__.served_jobs AS s
        WHERE s.queue = $1 AND s.job = j.job
          AND s.last_seen >= (extract(epoch FROM statement_timestamp()) * 1000)::bigint - $2::bigint)
)
SELECT u.job, c.n, c.oldest
FROM unserved AS u
CROSS JOIN LATERAL (
    SELECT count(*) AS n, min(t.run_at) AS oldest FROM __SCHEMA__.tasks AS t
    WHERE t.queue = $1 AND t.job = u.job AND t.state IN ('pending', 'retry')
) AS c
