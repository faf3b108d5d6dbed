-- Run ?1, for `run_info`.
SELECT workflow, state, steps, error, created_at FROM errand_runs WHERE id = ?1
