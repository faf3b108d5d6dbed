-- Registers worker $1 or records that it is alive, and records that job $3
-- is served on queue $2, at the server's time (ms): liveness is judged by
-- one clock, the server's (see rescue.sql and unserved.sql). One statement,
-- so a beat is one round trip. $4 concurrency, $5 started_at (ms).
-- `served_jobs` only moves forward: a beat that waited for another's row
-- lock does not set the time back.
WITH beat AS (
    INSERT INTO __SCHEMA__.workers (id, queue, job, concurrency, started_at, last_seen)
    VALUES ($1, $2, $3, $4, $5, (extract(epoch FROM clock_timestamp()) * 1000)::bigint)
    ON CONFLICT (id) DO UPDATE SET last_seen = EXCLUDED.last_seen
    RETURNING last_seen
)
INSERT INTO __SCHEMA__.served_jobs AS s (queue, job, last_seen)
SELECT $2, $3, beat.last_seen FROM beat
ON CONFLICT (queue, job) DO UPDATE SET last_seen = EXCLUDED.last_seen
WHERE s.last_seen IS NULL OR s.last_seen < EXCLUDED.last_seen
