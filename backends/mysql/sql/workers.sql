-- Workers seen within the last ? ms, by the server's clock (as heartbeat.sql
-- writes it).
SELECT id, queue, job, concurrency, started_at, last_seen FROM `__PREFIX__workers`
WHERE last_seen >= CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED) - ?
ORDER BY id;
