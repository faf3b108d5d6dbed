-- As sql/bury_unserved.sql, for the workflow step tasks among them: they come
-- back with their runs and steps, to fail the runs.
UPDATE errand_tasks
SET state = 'dead', last_error = ?4, finished_at = ?5, worker = NULL
WHERE id IN (
    SELECT id FROM errand_tasks INDEXED BY errand_tasks_claim
    WHERE queue = ?1 AND job = ?2 AND state IN ('pending', 'retry') AND run_at <= ?3
) AND run_id IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM errand_served_jobs WHERE queue = ?1 AND job = ?2 AND last_seen >= ?6)
RETURNING id, run_id, step, last_error
