-- One due task without a unique key, written already claimed by a worker of
-- this process that waits for its job (see the kit's `Handoffs`; MariaDB
-- only, for RETURNING): `running` for worker ? under claim token ?, attempt
-- 1, started now, as a claim would leave it; `pending`, as any enqueue, when
-- its queue is paused (the claim's check of paused_queues). Returns its id
-- and the state it was written in.
-- Parameters: ? queue, ? job, ? payload, ? max_attempts, ? priority,
-- ? run_at (ms), ? created_at (ms), ? trace, ? worker, ? token,
-- ? started_at (ms), ? queue (paused?).
INSERT INTO `__PREFIX__tasks`
    (queue, job, payload, max_attempts, priority, run_at, created_at, trace, state, attempt, worker, claim, started_at)
SELECT ?, ?, ?, ?, ?, ?, ?, ?,
       IF(p.paused, 'pending', 'running'), IF(p.paused, 0, 1),
       IF(p.paused, NULL, ?), IF(p.paused, NULL, ?), IF(p.paused, NULL, ?)
FROM (SELECT EXISTS (SELECT 1 FROM `__PREFIX__paused_queues` WHERE queue = ?) AS paused) AS p
RETURNING id, state;
