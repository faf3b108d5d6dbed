-- Running tasks whose worker has not beaten since $2 (ms) go back to pending,
-- or dead if that was their last attempt; workers not seen since $2 are
-- forgotten (and so are the cancelled tasks they ran). $1 now (ms), $3 NOTIFY channel. Rows another rescuer is already
-- updating are skipped. Returns (rescued, queues woken).
WITH lost AS (
    SELECT t.id FROM __SCHEMA__.tasks AS t
    WHERE t.state = 'running'
      AND NOT EXISTS (SELECT 1 FROM __SCHEMA__.workers AS w WHERE w.id = t.worker AND w.last_seen >= $2)
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
), gone AS (
    DELETE FROM __SCHEMA__.workers WHERE last_seen < $2
), forgotten AS (
    UPDATE __SCHEMA__.tasks AS t SET worker = NULL
    WHERE t.state = 'cancelled' AND t.worker IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM __SCHEMA__.workers AS w WHERE w.id = t.worker AND w.last_seen >= $2)
), woke AS (
    SELECT count(pg_notify($3, q.queue)) AS n
    FROM (SELECT DISTINCT queue FROM rescued WHERE state = 'pending') AS q
)
SELECT (SELECT count(*) FROM rescued), (SELECT n FROM woke)
