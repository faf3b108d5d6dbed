COPY __SCHEMA__.tasks (id, queue, job, payload, run_at, priority, max_attempts, created_at, trace) FROM STDIN (FORMAT binary)
