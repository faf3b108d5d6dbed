-- Runs $1 failed with errors $2 at $3 (ms): their live steps are cancelled
-- (locked in id order). Running ones keep their worker, so it is told (their
-- cancellation token fires) and their ack is ignored.
WITH failed AS (
    UPDATE __SCHEMA__.runs AS r
    SET state = 'failed', error = f.error, finished_at = $3
    FROM UNNEST($1::bigint[], $2::text[]) AS f(id, error)
    WHERE r.id = f.id AND r.state = 'running'
    RETURNING r.id
), live AS (
    SELECT id FROM __SCHEMA__.tasks
    WHERE run_id = ANY($1::bigint[]) AND state IN ('pending', 'retry', 'running')
    ORDER BY id
    FOR UPDATE
), cancelled AS (
    UPDATE __SCHEMA__.tasks AS t
    SET state = 'cancelled', finished_at = $3, worker = CASE WHEN t.state = 'running' THEN t.worker END
    FROM live
    WHERE t.id = live.id
    RETURNING t.id
)
SELECT (SELECT count(*) FROM failed), (SELECT count(*) FROM cancelled)
