-- Locks runs $1 until the transaction ends, in id order (so two acks locking
-- several runs never deadlock), and reads them. Taken before the step tasks
-- are touched: the completions of one run's steps serialise here, so the
-- last of two siblings to finish sees the other's output and enqueues their
-- common dependent. Asynchronous commit, as claim.sql and ack.sql.
SELECT r.id, r.workflow, r.queue, r.state, r.steps::text
FROM __SCHEMA__.runs AS r
WHERE r.id = ANY($1::bigint[]) AND set_config('synchronous_commit', 'off', true) IS NOT NULL
ORDER BY r.id
FOR UPDATE OF r
