-- Worker ?1 finished (acked) or gave back its cancelled runs: forget them.
UPDATE errand_tasks SET worker = NULL
WHERE state = 'cancelled' AND worker IS NOT NULL AND worker = ?1
