-- Inserts a batch of tasks that share everything but their payloads (the
-- usual bulk enqueue): ?1 a JSON array of payload hex strings, ?2 queue,
-- ?3 job, ?4 max_attempts, ?5 priority, ?6 run_at, ?7 created_at (ms),
-- ?8 trace (the enqueuing span's, the same for all).
-- Rows are inserted in array order, so their ids are ascending in that order.
INSERT INTO errand_tasks (queue, job, state, payload, max_attempts, priority, run_at, created_at, trace)
SELECT ?2, ?3, 'pending', unhex(t.value), ?4, ?5, ?6, ?7, ?8
FROM json_each(?1) AS t
ORDER BY t.key
RETURNING id
