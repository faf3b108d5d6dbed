-- Registers worker $1 or records that it is alive, at the server's time
-- (ms): liveness is judged by one clock, the server's (see rescue.sql).
-- $2 queue, $3 job, $4 concurrency, $5 started_at (ms).
INSERT INTO __SCHEMA__.workers (id, queue, job, concurrency, started_at, last_seen)
VALUES ($1, $2, $3, $4, $5, (extract(epoch FROM clock_timestamp()) * 1000)::bigint)
ON CONFLICT (id) DO UPDATE SET last_seen = EXCLUDED.last_seen
