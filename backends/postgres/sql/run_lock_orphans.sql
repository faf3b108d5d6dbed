-- Locks (in id order, as run_lock.sql) and reads the workflow runs of the
-- step tasks that rescue_steps.sql sends dead: running on their last
-- attempt for a worker not seen for $1 ms by the server's clock. The tasks
-- are found through tasks_running, without locking them.
SELECT r.id, r.workflow, r.queue, r.state, r.steps::text AS steps, r.trace
FROM __SCHEMA__.runs AS r
WHERE r.id = ANY(ARRAY(
          SELECT DISTINCT t.run_id FROM __SCHEMA__.tasks AS t
          WHERE t.state = 'running' AND t.run_id IS NOT NULL AND t.attempt >= t.max_attempts
            AND NOT EXISTS (
                SELECT 1 FROM __SCHEMA__.workers AS w
                WHERE w.id = t.worker
                  AND w.last_seen >= (extract(epoch FROM clock_timestamp()) * 1000)::bigint - $1)
      ))
ORDER BY r.id
FOR UPDATE OF r
