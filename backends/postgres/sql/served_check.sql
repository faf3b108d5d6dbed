-- The first statement of a burial (see bury_unserved.sql): locks the record
-- of job $2 on queue $1 in `served_jobs` until the transaction ends
-- (creating it, as never served, if missing), and tells whether a worker
-- served the job there within the last $3 ms by the server's clock, counted
-- back from when the statement arrived (the caller measured $3 then; a wait
-- for the row lock does not age the beat it waited for). A heartbeat of that
-- job waits for the lock, so no worker can start serving the job between
-- this check and the burial; the check reads the row's latest committed
-- version (ON CONFLICT DO UPDATE), not an older snapshot.
INSERT INTO __SCHEMA__.served_jobs AS s (queue, job, last_seen)
VALUES ($1, $2, NULL)
ON CONFLICT (queue, job) DO UPDATE SET last_seen = s.last_seen
RETURNING coalesce(s.last_seen >= (extract(epoch FROM statement_timestamp()) * 1000)::bigint - $3::bigint, false)
    AS served
