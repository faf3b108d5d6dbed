SELECT id, queue, job, concurrency, started_at, last_seen FROM __SCHEMA__.workers
WHERE last_seen >= $1
ORDER BY id
