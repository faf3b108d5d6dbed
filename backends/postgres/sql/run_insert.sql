-- A new workflow run. $1 workflow, $2 queue, $3 steps (JSON text), $4 created_at (ms),
-- $5 trace context (text, NULL: none), which every step task gets (run_apply.sql).
INSERT INTO __SCHEMA__.runs (workflow, queue, state, steps, created_at, trace)
VALUES ($1, $2, 'running', $3::text::jsonb, $4, $5)
RETURNING id
