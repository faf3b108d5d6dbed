-- Locks (in id order, as run_lock.sql) and reads the workflow runs of the
-- waiting tasks of job $2 on queue $1 due at or before $3 (ms): the runs
-- that burying those tasks (bury_unserved.sql) fails. The tasks are found
-- through tasks_claim, without locking them.
SELECT r.id, r.workflow, r.queue, r.state, r.steps::text AS steps, r.trace
FROM __SCHEMA__.runs AS r
WHERE r.id = ANY(ARRAY(
          SELECT DISTINCT t.run_id FROM __SCHEMA__.tasks AS t
          WHERE t.queue = $1 AND t.job = $2 AND t.state IN ('pending', 'retry') AND t.run_at <= $3
            AND t.run_id IS NOT NULL
      ))
ORDER BY r.id
FOR UPDATE OF r
