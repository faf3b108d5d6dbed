-- Graceful stop of worker $1: its running tasks go back to pending without
-- using an attempt, and it is deregistered. $2 NOTIFY channel.
WITH released AS (
    UPDATE __SCHEMA__.tasks
    SET state = 'pending', attempt = greatest(attempt - 1, 0), worker = NULL
    WHERE state = 'running' AND worker = $1
    RETURNING queue
), gone AS (
    DELETE FROM __SCHEMA__.workers WHERE id = $1
), forgotten AS (
    UPDATE __SCHEMA__.tasks SET worker = NULL WHERE state = 'cancelled' AND worker = $1
), woke AS (
    SELECT count(pg_notify($2, q.queue)) AS n FROM (SELECT DISTINCT queue FROM released) AS q
)
SELECT (SELECT count(*) FROM released), (SELECT n FROM woke)
