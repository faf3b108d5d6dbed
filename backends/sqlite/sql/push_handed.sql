-- One due task without a unique key, written already claimed by a worker of
-- this backend value that waits for its job (see the kit's `Handoffs`):
-- `running` for worker ?9 under claim token ?10, attempt 1, started at ?7,
-- as a claim would leave it; `pending`, as any enqueue, while its queue is
-- paused (the claim's check of errand_paused_queues). Returns its id and the
-- state it was written in.
-- ?1 queue, ?2 job, ?3 payload, ?4 max_attempts, ?5 priority, ?6 run_at (ms),
-- ?7 created_at (ms), ?8 trace, ?9 worker, ?10 token.
INSERT INTO errand_tasks
    (queue, job, state, payload, max_attempts, priority, run_at, created_at, trace, attempt, worker, claim, started_at)
SELECT ?1, ?2, IIF(p.paused, 'pending', 'running'), ?3, ?4, ?5, ?6, ?7, ?8,
       IIF(p.paused, 0, 1), IIF(p.paused, NULL, ?9), IIF(p.paused, NULL, ?10), IIF(p.paused, NULL, ?7)
FROM (SELECT EXISTS (SELECT 1 FROM errand_paused_queues WHERE queue = ?1) AS paused) AS p
RETURNING id, state
