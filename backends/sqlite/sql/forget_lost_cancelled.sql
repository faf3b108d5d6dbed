-- Cancelled runs of workers not seen since ?1 (ms): nobody is left to tell.
UPDATE errand_tasks SET worker = NULL
WHERE state = 'cancelled' AND worker IS NOT NULL
  AND worker NOT IN (SELECT id FROM errand_workers WHERE last_seen >= ?1)
