-- Waiting tasks of queue ?1 by job: how many and the earliest run_at
-- (a scan of the claim index's entries for that queue).
SELECT job, COUNT(*) AS n, MIN(run_at) AS oldest FROM errand_tasks INDEXED BY errand_tasks_claim
WHERE queue = ?1 AND state IN ('pending', 'retry')
GROUP BY job
