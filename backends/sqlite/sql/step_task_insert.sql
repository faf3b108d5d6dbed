-- The task of one workflow step. ?1 queue, ?2 job (the workflow), ?3 payload,
-- ?4 max_attempts, ?5 priority, ?6 run_at = created_at (ms), ?7 run_id, ?8 step.
INSERT INTO errand_tasks (queue, job, state, payload, max_attempts, priority, run_at, created_at, run_id, step)
VALUES (?1, ?2, 'pending', ?3, ?4, ?5, ?6, ?6, ?7, ?8)
RETURNING id
