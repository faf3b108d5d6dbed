-- Whether job ? has been served on queue ? within the last ? ms (server
-- clock), with its served_jobs row locked until the transaction ends, so no
-- heartbeat of that job commits in between: burying unserved tasks checks
-- and buries in one transaction. The row is made first if missing (with
-- last_seen 0), so there is always a row to lock.
-- 1. ? queue, ? job.
INSERT IGNORE INTO `__PREFIX__served_jobs` (queue, job, last_seen) VALUES (?, ?, 0);
-- 2. ? age (ms), ? queue, ? job. Column: served (0 or 1).
SELECT CAST(last_seen >= CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED) - ? AS SIGNED) AS served
FROM `__PREFIX__served_jobs` WHERE queue = ? AND job = ?
FOR UPDATE;
