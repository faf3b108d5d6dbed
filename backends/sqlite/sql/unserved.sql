-- Waiting tasks of queue ?1, by job, of the jobs that no worker has served on
-- that queue at or after ?2 (ms): how many and the earliest run_at.
-- The jobs that have waiting tasks are found by a loose scan of the claim
-- index (one seek per job), and only the entries of the unserved ones are
-- counted (CROSS JOIN fixes that order): the backlog of a served job is never
-- read.
WITH RECURSIVE jobs (job) AS (
    SELECT (SELECT min(job) FROM errand_tasks INDEXED BY errand_tasks_claim
            WHERE queue = ?1 AND state IN ('pending', 'retry'))
    UNION ALL
    SELECT (SELECT min(t.job) FROM errand_tasks AS t INDEXED BY errand_tasks_claim
            WHERE t.queue = ?1 AND t.state IN ('pending', 'retry') AND t.job > j.job)
    FROM jobs AS j
    WHERE j.job IS NOT NULL
), unserved (job) AS (
    SELECT j.job FROM jobs AS j
    WHERE j.job IS NOT NULL
      AND NOT EXISTS (
          SELECT 1 FROM errand_served_jobs AS s WHERE s.queue = ?1 AND s.job = j.job AND s.last_seen >= ?2
      )
)
SELECT u.job, count(*) AS n, min(t.run_at) AS oldest
FROM unserved AS u
CROSS JOIN errand_tasks AS t INDEXED BY errand_tasks_claim
WHERE t.queue = ?1 AND t.job = u.job AND t.state IN ('pending', 'retry')
GROUP BY u.job
