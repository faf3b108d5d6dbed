-- Registers worker $1 or records that it is alive at $6 (ms).
INSERT INTO __SCHEMA__.workers (id, queue, job, concurrency, started_at, last_seen)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (id) DO UPDATE SET last_seen = EXCLUDED.last_seen
