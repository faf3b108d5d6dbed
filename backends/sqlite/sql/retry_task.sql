-- Puts dead or cancelled task ?1 back to pending with fresh attempts, due at ?2 (ms).
-- The last error is kept for reference.
UPDATE errand_tasks
SET state = 'pending', attempt = 0, run_at = ?2, finished_at = NULL, worker = NULL, result = NULL
WHERE id = ?1 AND state IN ('dead', 'cancelled')
RETURNING queue
