-- Waiting tasks of job ?2 on queue ?1 due at or before ?3 (ms) go dead with
-- reason ?4; ?5: now (ms) — unless a worker served the job on the queue at or
-- after ?6 (ms), checked in the same write transaction as the burial.
-- Plain tasks only: workflow steps go through sql/bury_unserved_steps.sql,
-- which returns them.
UPDATE errand_tasks
SET state = 'dead', last_error = ?4, finished_at = ?5, worker = NULL
WHERE id IN (
    SELECT id FROM errand_tasks INDEXED BY errand_tasks_claim
    WHERE queue = ?1 AND job = ?2 AND state IN ('pending', 'retry') AND run_at <= ?3
) AND run_id IS NULL
  AND NOT EXISTS (SELECT 1 FROM errand_served_jobs WHERE queue = ?1 AND job = ?2 AND last_seen >= ?6)
