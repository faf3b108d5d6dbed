-- The ack of a worker of workflow steps (see src/workflow.rs): ack.sql's four
-- guarded UPDATEs, with the same parameters, in the transaction that holds
-- the locks of the tasks' runs (run_lock.sql). $1 worker id, $2 now (ms);
-- done: $3 ids, $4 results; retry: $5 ids, $6 run_at, $7 errors; dead: $8
-- ids, $9 errors; snooze: $10 ids, $11 run_at.
-- Returns one row per task actually changed (still running for $1): `id`,
-- `run_id` and `step` (NULL for a task that is no workflow step) and
-- `outcome`: 'done', 'dead', or 'requeued' (retried or snoozed). The outputs
-- are not stored here: the workflow planner decides which to store, in
-- `run_steps`; a step's task keeps no `result` of its own, so each output is
-- stored once (a task of a plain job in the batch keeps its result).
WITH done AS (
    UPDATE __SCHEMA__.tasks AS t
    SET state = 'done', result = CASE WHEN t.run_id IS NULL THEN a.result END, finished_at = $2, worker = NULL
    FROM UNNEST($3::bigint[], $4::bytea[]) AS a(id, result)
    WHERE t.id = a.id AND t.state = 'running' AND t.worker = $1
      AND set_config('synchronous_commit', 'off', true) IS NOT NULL
    RETURNING t.id, t.run_id, t.step
), retried AS (
    UPDATE __SCHEMA__.tasks AS t
    SET state = 'retry', run_at = a.run_at, last_error = a.error, worker = NULL
    FROM UNNEST($5::bigint[], $6::bigint[], $7::text[]) AS a(id, run_at, error)
    WHERE t.id = a.id AND t.state = 'running' AND t.worker = $1
      AND set_config('synchronous_commit', 'off', true) IS NOT NULL
    RETURNING t.id
), dead AS (
    UPDATE __SCHEMA__.tasks AS t
    SET state = 'dead', last_error = a.error, finished_at = $2, worker = NULL
    FROM UNNEST($8::bigint[], $9::text[]) AS a(id, error)
    WHERE t.id = a.id AND t.state = 'running' AND t.worker = $1
      AND set_config('synchronous_commit', 'off', true) IS NOT NULL
    RETURNING t.id, t.run_id, t.step
), snoozed AS (
    UPDATE __SCHEMA__.tasks AS t
    SET state = 'pending', attempt = greatest(t.attempt - 1, 0), run_at = a.run_at, worker = NULL
    FROM UNNEST($10::bigint[], $11::bigint[]) AS a(id, run_at)
    WHERE t.id = a.id AND t.state = 'running' AND t.worker = $1
      AND set_config('synchronous_commit', 'off', true) IS NOT NULL
    RETURNING t.id
)
SELECT id, run_id, step, 'done'::text AS outcome FROM done
UNION ALL
SELECT id, run_id, step, 'dead' FROM dead
UNION ALL
SELECT id, NULL::bigint, NULL::integer, 'requeued' FROM retried
UNION ALL
SELECT id, NULL::bigint, NULL::integer, 'requeued' FROM snoozed
