SELECT id, workflow, queue, state, steps::text, error, created_at FROM __SCHEMA__.runs WHERE id = $1
