-- Wakes the listeners of channel $1 for the queues $2 (after the enqueue's
-- own commit). Asynchronous commit: a notification has nothing to make
-- durable, and this transaction must not wait for a WAL flush.
SELECT count(pg_notify($1, q.queue))
FROM (SELECT DISTINCT unnest($2::text[]) AS queue) AS q
WHERE set_config('synchronous_commit', 'off', true) IS NOT NULL
