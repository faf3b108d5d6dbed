-- A new workflow run. $1 workflow, $2 queue, $3 steps (JSON text), $4 created_at (ms).
INSERT INTO __SCHEMA__.runs (workflow, queue, state, steps, created_at)
VALUES ($1, $2, 'running', $3::text::jsonb, $4)
RETURNING id
