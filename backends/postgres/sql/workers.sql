-- Workers seen within the last $1 ms, by the server's clock (as heartbeat.sql writes it).
SELECT id, queue, job, concurrency, started_at, last_seen FROM __SCHEMA__.workers
WHERE last_seen >= (extract(epoch FROM clock_timestamp()) * 1000)::bigint - $1
ORDER BY id
