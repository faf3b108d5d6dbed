-- The earliest run_at of a waiting task of job ?2 on queue ?1 (NULL while the
-- queue is paused). Asked only after a claim found nothing due, so it reads the
-- (future) waiting rows of one queue/job in the claim index and nothing else.
SELECT MIN(run_at) FROM errand_tasks INDEXED BY errand_tasks_claim
WHERE queue = ?1 AND job = ?2 AND state IN ('pending', 'retry')
  AND NOT EXISTS (SELECT 1 FROM errand_paused_queues WHERE queue = ?1)
