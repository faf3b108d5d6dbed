-- Locks workflow runs until the transaction ends, in id order, and reads
-- them: the runs of the tasks $1 that are still running for worker $2 (the
-- steps a worker acknowledges) or, with $2 NULL, that are still live (a
-- task being cancelled), and the runs $3. Taken before any task row is
-- touched (the subquery reads task rows without locking them): the ends of
-- one run's steps serialise here, and two transactions locking several runs
-- take them in the same order, so they never deadlock. The ids are gathered
-- into one array first, so the runs are found through their primary key.
-- `trace` is the run's trace context, which the step tasks it makes ready
-- get (run_apply.sql): read here, it costs no statement of its own.
-- For an ack ($2 set), the transaction commits asynchronously, as claim.sql
-- and ack.sql; a cancellation stays durable.
SELECT r.id, r.workflow, r.queue, r.state, r.steps::text AS steps, r.trace
FROM __SCHEMA__.runs AS r
WHERE r.id = ANY(ARRAY(
          SELECT t.run_id FROM __SCHEMA__.tasks AS t
          WHERE t.id = ANY($1::bigint[]) AND t.run_id IS NOT NULL
            AND CASE WHEN $2::text IS NULL THEN t.state IN ('pending', 'retry', 'running')
                     ELSE t.state = 'running' AND t.worker = $2 END
      ) || $3::bigint[])
  AND ($2::text IS NULL OR set_config('synchronous_commit', 'off', true) IS NOT NULL)
ORDER BY r.id
FOR UPDATE OF r
