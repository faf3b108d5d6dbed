-- Inserts one task (the path for tasks with a unique key).
INSERT INTO errand_tasks (queue, job, state, payload, max_attempts, priority, run_at, created_at, unique_key)
VALUES (?1, ?2, 'pending', ?3, ?4, ?5, ?6, ?7, ?8)
RETURNING id
