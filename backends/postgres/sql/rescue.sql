-- Running tasks whose worker has not beaten for $2 ms (by the server's
-- clock, so the clocks of the workers' hosts do not matter) go back to
-- pending, or dead if that was their last attempt; workers not seen for $2
-- ms are forgotten (and so are the cancelled tasks they ran). $1 now (ms,
-- the times stored), $3 NOTIFY channel. Rows another rescuer is already
-- updating are skipped. Workflow steps on their last attempt are left to
-- rescue_steps.sql, which fails their runs with them: this statement only
-- counts them. Returns (rescued, queues woken, steps left).
WITH cutoff AS (
    SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint - $2 AS seen
), lost AS (
    SELECT t.id FROM __SCHEMA__.tasks AS t
    WHERE t.state = 'running'
      AND NOT (t.run_id IS NOT NULL AND t.attempt >= t.max_attempts)
      AND NOT EXISTS (SELECT 1 FROM __SCHEMA__.workers AS w, cutoff
                      WHERE w.id = t.worker AND w.last_seen >= cutoff.seen)
    FOR UPDATE OF t SKIP LOCKED
), rescued AS (
    UPDATE __SCHEMA__.tasks AS t
    SET state = CASE WHEN t.attempt >= t.max_attempts THEN 'dead' ELSE 'pending' END,
        finished_at = CASE WHEN t.attempt >= t.max_attempts THEN $1 ELSE NULL END,
        run_at = CASE WHEN t.attempt >= t.max_attempts THEN t.run_at ELSE $1 END,
        last_error = 'worker `' || coalesce(t.worker, '?') || '` stopped heartbeating during '
            || CASE WHEN t.attempt >= t.max_attempts
                    THEN 'the last attempt (' || t.attempt || ' of ' || t.max_attempts || ')'
                    ELSE 'attempt ' || t.attempt || ' of ' || t.max_attempts || '; the task was put back'
               END,
        worker = NULL
    FROM lost
    WHERE t.id = lost.id
    RETURNING t.queue, t.state
), steps AS (
    SELECT count(*) AS n FROM __SCHEMA__.tasks AS t
    WHERE t.state = 'running' AND t.run_id IS NOT NULL AND t.attempt >= t.max_attempts
      AND NOT EXISTS (SELECT 1 FROM __SCHEMA__.workers AS w, cutoff
                      WHERE w.id = t.worker AND w.last_seen >= cutoff.seen)
), gone AS (
    DELETE FROM __SCHEMA__.workers USING cutoff WHERE last_seen < cutoff.seen
), forgotten AS (
    UPDATE __SCHEMA__.tasks AS t SET worker = NULL
    WHERE t.state = 'cancelled' AND t.worker IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM __SCHEMA__.workers AS w, cutoff
                      WHERE w.id = t.worker AND w.last_seen >= cutoff.seen)
), woke AS (
    SELECT count(pg_notify($3, q.queue)) AS n
    FROM (SELECT DISTINCT queue FROM rescued WHERE state = 'pending') AS q
)
SELECT (SELECT count(*) FROM rescued), (SELECT n FROM woke), (SELECT n FROM steps)
