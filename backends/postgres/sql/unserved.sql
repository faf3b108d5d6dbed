-- Waiting tasks of queue $1 whose job is not in $2, counted by job, with the
-- earliest run_at. The jobs are found with a loose index scan of tasks_claim,
-- so this stays cheap however many tasks of served jobs wait.
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
)
SELECT j.job, c.n, c.oldest
FROM jobs AS j
CROSS JOIN LATERAL (
    SELECT count(*) AS n, min(t.run_at) AS oldest FROM __SCHEMA__.tasks AS t
    WHERE t.queue = $1 AND t.job = j.job AND t.state IN ('pending', 'retry')
) AS c
WHERE j.job IS NOT NULL AND NOT (j.job = ANY($2::text[]))
