-- Inserts one task (the path for tasks with a unique key).
-- ?1 queue, ?2 job, ?3 payload, ?4 max_attempts, ?5 priority, ?6 run_at (ms),
-- ?7 created_at (ms), ?8 unique_key, ?9 trace.
INSERT INTO errand_tasks (queue, job, state, payload, max_attempts, priority, run_at, created_at, unique_key, trace)
VALUES (?1, ?2, 'pending', ?3, ?4, ?5, ?6, ?7, ?8, ?9)
RETURNING id
