-- Asynchronous commit (transaction-local set_config below): if the server
-- crashes, a claim or ack of the last moments may be lost, which only means
-- the task runs again (at-least-once). Enqueues stay fully durable.
-- Records a batch of outcomes in one statement, one UPDATE per outcome kind.
-- Each is guarded by `state = 'running' AND worker = $1`: the ack of a task
-- that was rescued, released or cancelled meanwhile changes nothing.
-- Parameters, for every program that runs this file (the bench harness too):
-- $1 worker id (text), $2 now (bigint ms); done: $3 ids (bigint[]), $4 results
-- (bytea[]); retry: $5 ids (bigint[]), $6 run_at (bigint[]), $7 errors
-- (text[]); dead: $8 ids (bigint[]), $9 errors (text[]); snooze: $10 ids
-- (bigint[]), $11 run_at (bigint[]). Returns the number of tasks changed.
-- step_ack.sql takes the same parameters.
WITH done AS (
    UPDATE __SCHEMA__.tasks AS t
    SET state = 'done', result = a.result, finished_at = $2, worker = NULL
    FROM UNNEST($3::bigint[], $4::bytea[]) AS a(id, result)
    WHERE t.id = a.id AND t.state = 'running' AND t.worker = $1
      AND set_config('synchronous_commit', 'off', true) IS NOT NULL
    RETURNING 1
), retried AS (
    UPDATE __SCHEMA__.tasks AS t
    SET state = 'retry', run_at = a.run_at, last_error = a.error, worker = NULL
    FROM UNNEST($5::bigint[], $6::bigint[], $7::text[]) AS a(id, run_at, error)
    WHERE t.id = a.id AND t.state = 'running' AND t.worker = $1
      AND set_config('synchronous_commit', 'off', true) IS NOT NULL
    RETURNING 1
), dead AS (
    UPDATE __SCHEMA__.tasks AS t
    SET state = 'dead', last_error = a.error, finished_at = $2, worker = NULL
    FROM UNNEST($8::bigint[], $9::text[]) AS a(id, error)
    WHERE t.id = a.id AND t.state = 'running' AND t.worker = $1
      AND set_config('synchronous_commit', 'off', true) IS NOT NULL
    RETURNING 1
), snoozed AS (
    UPDATE __SCHEMA__.tasks AS t
    SET state = 'pending', attempt = greatest(t.attempt - 1, 0), run_at = a.run_at, worker = NULL
    FROM UNNEST($10::bigint[], $11::bigint[]) AS a(id, run_at)
    WHERE t.id = a.id AND t.state = 'running' AND t.worker = $1
      AND set_config('synchronous_commit', 'off', true) IS NOT NULL
    RETURNING 1
)
SELECT (SELECT count(*) FROM done) + (SELECT count(*) FROM retried)
     + (SELECT count(*) FROM dead) + (SELECT count(*) FROM snoozed)
