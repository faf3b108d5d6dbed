-- Waiting tasks of queue ?, counted by job with the earliest run_at, of the
-- jobs that no worker has served on that queue for ? ms (by the server's
-- clock, see heartbeat.sql). The jobs of the queue are found with a loose
-- index scan of tasks_claim (one probe per job), and only the waiting range
-- of the unserved ones is read.
-- Parameters: ? queue, ? queue, ? queue, ? queue, ? age (ms).
WITH RECURSIVE jobs (job) AS (
    SELECT MIN(job) FROM `__PREFIX__tasks` WHERE queue = ?
    UNION ALL
    SELECT (SELECT MIN(t.job) FROM `__PREFIX__tasks` AS t WHERE t.queue = ? AND t.job > jobs.job)
    FROM jobs
    WHERE jobs.job IS NOT NULL
)
SELECT j.job, COUNT(*) AS n, MIN(t.run_at) AS oldest
FROM jobs AS j
STRAIGHT_JOIN `__PREFIX__tasks` AS t ON t.queue = ? AND t.job = j.job AND t.waiting = 1
WHERE j.job IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM `__PREFIX__served_jobs` AS s
                  WHERE s.queue = ? AND s.job = j.job AND s.last_seen >= CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED) - ?)
GROUP BY j.job;
