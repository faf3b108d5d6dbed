-- The task a new task of job ?3 with unique key ?1 would duplicate (keys are
-- scoped to the job): a live one, or (with a window) one created at or after
-- ?2 (ms), whatever its state.
SELECT id FROM errand_tasks
WHERE unique_key = ?1 AND job = ?3
  AND (state IN ('pending', 'running', 'retry') OR created_at >= ?2)
ORDER BY id DESC
LIMIT 1
