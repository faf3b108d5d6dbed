-- Workflow run $1, as `run_info` reads it.
SELECT id, workflow, queue, state, steps::text AS steps, error, created_at FROM __SCHEMA__.runs WHERE id = $1
