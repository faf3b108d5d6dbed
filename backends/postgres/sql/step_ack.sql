-- Completes ($3 ids, $4 results) or buries ($5 ids, $6 errors) workflow step
-- tasks of worker $1 at $2 (ms), guarded like every ack, and stores the
-- outputs of the completed ones in run_steps. Returns (id, run_id, step,
-- done) for each task actually acknowledged.
WITH done AS (
    UPDATE __SCHEMA__.tasks AS t
    SET state = 'done', result = a.result, finished_at = $2, worker = NULL
    FROM UNNEST($3::bigint[], $4::bytea[]) AS a(id, result)
    WHERE t.id = a.id AND t.state = 'running' AND t.worker = $1
      AND set_config('synchronous_commit', 'off', true) IS NOT NULL
    RETURNING t.id, t.run_id, t.step, a.result
), dead AS (
    UPDATE __SCHEMA__.tasks AS t
    SET state = 'dead', last_error = a.error, finished_at = $2, worker = NULL
    FROM UNNEST($5::bigint[], $6::text[]) AS a(id, error)
    WHERE t.id = a.id AND t.state = 'running' AND t.worker = $1
      AND set_config('synchronous_commit', 'off', true) IS NOT NULL
    RETURNING t.id, t.run_id, t.step
), stored AS (
    INSERT INTO __SCHEMA__.run_steps (run_id, step, task_id, output)
    SELECT run_id, step, id, result FROM done WHERE run_id IS NOT NULL AND step IS NOT NULL
    ON CONFLICT (run_id, step) DO UPDATE SET output = EXCLUDED.output
)
SELECT id, run_id, step, true AS done FROM done
UNION ALL
SELECT id, run_id, step, false FROM dead
