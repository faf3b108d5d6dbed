-- Enqueues workflow steps: one row per ($1 run, $2 step) with its task's
-- $3 queue, $4 job, $5 payload, $6 max_attempts, $7 priority; $8 now (ms),
-- $9 NOTIFY channel. A step gets a task only if its run_steps row does not
-- exist yet (ON CONFLICT DO NOTHING), so a step is never enqueued twice; the
-- task's id is drawn first so the run_steps row records it. Returns the
-- queues that got tasks (each notified on commit).
WITH input AS (
    SELECT *
    FROM UNNEST($1::bigint[], $2::integer[], $3::text[], $4::text[], $5::bytea[], $6::integer[], $7::smallint[])
        AS i(run_id, step, queue, job, payload, max_attempts, priority)
), slot AS (
    INSERT INTO __SCHEMA__.run_steps (run_id, step, task_id)
    SELECT run_id, step, nextval(pg_get_serial_sequence('__SCHEMA__.tasks', 'id')) FROM input
    ON CONFLICT (run_id, step) DO NOTHING
    RETURNING run_id, step, task_id
), ins AS (
    INSERT INTO __SCHEMA__.tasks (id, queue, job, payload, max_attempts, priority, run_at, created_at, run_id, step)
    SELECT s.task_id, i.queue, i.job, i.payload, i.max_attempts, i.priority, $8, $8, s.run_id, s.step
    FROM slot AS s JOIN input AS i ON i.run_id = s.run_id AND i.step = s.step
    ORDER BY s.task_id
    RETURNING queue
), queues AS (
    SELECT DISTINCT queue FROM ins
)
SELECT queue, pg_notify($9, queue)::text FROM queues
