-- Workflow run ?, as run_info reads it.
SELECT id, workflow, queue, state, steps, error, created_at FROM `__PREFIX__runs` WHERE id = ?;
