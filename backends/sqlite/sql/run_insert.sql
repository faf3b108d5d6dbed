-- ?1 workflow, ?2 queue, ?3 steps (JSON), ?4 created_at (ms), ?5 trace.
INSERT INTO errand_runs (workflow, queue, state, steps, created_at, trace) VALUES (?1, ?2, 'running', ?3, ?4, ?5)
RETURNING id
