-- Claims $2 (tokens) of worker $1 that failed after reaching the server (the
-- connection broke before the reply): whatever they took was never run, so
-- it goes back to pending without using an attempt. $3 NOTIFY channel.
-- Returns (released, queues woken).
WITH released AS (
    UPDATE __SCHEMA__.tasks
    SET state = 'pending', attempt = greatest(attempt - 1, 0), worker = NULL, claim = NULL
    WHERE state = 'running' AND worker = $1 AND claim = ANY($2)
    RETURNING queue
), woke AS (
    SELECT count(pg_notify($3, q.queue)) AS n FROM (SELECT DISTINCT queue FROM released) AS q
)
SELECT (SELECT count(*) FROM released), (SELECT n FROM woke)
