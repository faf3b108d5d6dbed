-- Inserts a batch of tasks given as one JSON array of
-- [queue, job, payload_hex, max_attempts, priority, run_at, unique_key, trace] rows.
-- ?1: the JSON array, ?2: created_at (ms).
-- Rows are inserted in array order, so their ids are ascending in that order.
INSERT INTO errand_tasks (queue, job, state, payload, max_attempts, priority, run_at, created_at, unique_key, trace)
SELECT t.value ->> 0, t.value ->> 1, 'pending', unhex(t.value ->> 2), t.value ->> 3, t.value ->> 4,
       t.value ->> 5, ?2, t.value ->> 6, t.value ->> 7
FROM json_each(?1) AS t
ORDER BY t.key
RETURNING id
