-- Claims up to ?5 due tasks of job ?4 on queue ?3 for worker ?1 at time ?2 (ms),
-- clearing their progress (each attempt starts from none). Nothing while the
-- queue is paused: one primary-key lookup in errand_paused_queues, evaluated
-- once per statement.
-- The inner SELECT walks the partial index errand_tasks_claim, which holds only
-- waiting rows, in (priority DESC, run_at, id) order and stops at the limit
-- (INDEXED BY: a plan that sorts every due row must never be chosen).
UPDATE errand_tasks
SET state = 'running', attempt = attempt + 1, worker = ?1, started_at = ?2,
    progress_percent = NULL, progress_message = NULL
WHERE id IN (
    SELECT id FROM errand_tasks INDEXED BY errand_tasks_claim
    WHERE queue = ?3 AND job = ?4 AND state IN ('pending', 'retry') AND run_at <= ?2
      AND NOT EXISTS (SELECT 1 FROM errand_paused_queues WHERE queue = ?3)
    ORDER BY priority DESC, run_at, id
    LIMIT ?5
)
RETURNING id, attempt, max_attempts, run_at, priority, payload, trace
