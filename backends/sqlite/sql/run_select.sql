SELECT id, workflow, queue, state, steps, error, created_at FROM errand_runs WHERE id = ?1
