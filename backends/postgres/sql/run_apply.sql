-- Persists the workflow planner's plans for runs that this transaction
-- created or holds locked (see src/workflow.rs), in one statement:
-- $1 now (ms), $2 NOTIFY channel;
-- outputs to store: $3 run ids, $4 steps, $5 their task ids, $6 outputs;
-- steps to enqueue: $7 run ids, $8 steps, $9 queues, $10 jobs, $11 payloads,
-- $12 max_attempts, $13 priorities, $14 trace contexts (their run's, as the
-- caller read it from the run's row: NULL elements for none);
-- runs done: $15; runs failed: $16 ids, $17 errors.
-- A step gets a task only if its run_steps row does not exist yet (ON
-- CONFLICT DO NOTHING), so a step is never enqueued twice; the task's id is
-- drawn first so that the run_steps row records it. A failed run's live
-- steps are cancelled (locked in id order); running ones keep their worker,
-- so it is told (their cancellation token fires) and their ack is ignored.
-- Returns the queues that got step tasks, each NOTIFYed (heard on commit).
WITH outputs AS (
    INSERT INTO __SCHEMA__.run_steps (run_id, step, task_id, output)
    SELECT * FROM UNNEST($3::bigint[], $4::integer[], $5::bigint[], $6::bytea[])
    ON CONFLICT (run_id, step) DO UPDATE SET output = EXCLUDED.output
), input AS (
    SELECT *
    FROM UNNEST($7::bigint[], $8::integer[], $9::text[], $10::text[], $11::bytea[], $12::integer[], $13::smallint[],
                $14::text[])
        AS i(run_id, step, queue, job, payload, max_attempts, priority, trace)
), slot AS (
    INSERT INTO __SCHEMA__.run_steps (run_id, step, task_id)
    SELECT run_id, step, nextval(pg_get_serial_sequence('__SCHEMA__.tasks', 'id')) FROM input
    ON CONFLICT (run_id, step) DO NOTHING
    RETURNING run_id, step, task_id
), ins AS (
    INSERT INTO __SCHEMA__.tasks (id, queue, job, payload, max_attempts, priority, run_at, created_at, run_id, step,
                                  trace)
    SELECT s.task_id, i.queue, i.job, i.payload, i.max_attempts, i.priority, $1, $1, s.run_id, s.step, i.trace
    FROM slot AS s JOIN input AS i ON i.run_id = s.run_id AND i.step = s.step
    ORDER BY s.task_id
    RETURNING queue
), finished AS (
    UPDATE __SCHEMA__.runs SET state = 'done', finished_at = $1
    WHERE id = ANY($15::bigint[]) AND state = 'running'
), failed AS (
    UPDATE __SCHEMA__.runs AS r
    SET state = 'failed', error = f.error, finished_at = $1
    FROM UNNEST($16::bigint[], $17::text[]) AS f(id, error)
    WHERE r.id = f.id AND r.state = 'running'
), live AS (
    SELECT id FROM __SCHEMA__.tasks
    WHERE run_id = ANY($16::bigint[]) AND state IN ('pending', 'retry', 'running')
    ORDER BY id
    FOR UPDATE
), cancelled AS (
    UPDATE __SCHEMA__.tasks AS t
    SET state = 'cancelled', finished_at = $1, worker = CASE WHEN t.state = 'running' THEN t.worker END
    FROM live
    WHERE t.id = live.id
)
SELECT q.queue, pg_notify($2, q.queue)::text FROM (SELECT DISTINCT queue FROM ins) AS q
