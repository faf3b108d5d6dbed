-- Runs of worker ?1 cancelled while running (index errand_tasks_cancelled).
SELECT id FROM errand_tasks
WHERE state = 'cancelled' AND worker IS NOT NULL AND worker = ?1
ORDER BY id
