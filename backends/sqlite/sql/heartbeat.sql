-- Registers or refreshes a worker. ?6: now (ms, this machine's clock).
-- Runs with sql/serve.sql in one transaction.
INSERT INTO errand_workers (id, queue, job, concurrency, started_at, last_seen)
VALUES (?1, ?2, ?3, ?4, ?5, ?6)
ON CONFLICT (id) DO UPDATE SET
    queue = excluded.queue, job = excluded.job, concurrency = excluded.concurrency,
    last_seen = excluded.last_seen
