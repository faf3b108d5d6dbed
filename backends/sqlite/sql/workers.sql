-- Workers seen at or after ?1 (ms).
SELECT id, queue, job, concurrency, started_at, last_seen FROM errand_workers
WHERE last_seen >= ?1
ORDER BY id
