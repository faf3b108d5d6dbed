-- A heartbeat, two statements at the server's time (ms): liveness is judged
-- by one clock, the server's (see orphans.sql).
-- 1. Registers worker ? or records that it is alive: ? queue, ? job,
--    ? concurrency, ? started_at (ms).
INSERT INTO `__PREFIX__workers` (id, queue, job, concurrency, started_at, last_seen)
VALUES (?, ?, ?, ?, ?, CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED))
ON DUPLICATE KEY UPDATE last_seen = CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED);
-- 2. Records that the worker's job was served on its queue (see
--    unserved.sql): ? queue, ? job.
INSERT INTO `__PREFIX__served_jobs` (queue, job, last_seen)
VALUES (?, ?, CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED))
ON DUPLICATE KEY UPDATE last_seen = GREATEST(last_seen, CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED));
