-- Records the task of step ?2 of run ?1; a step that already has one keeps it.
INSERT INTO errand_run_steps (run_id, step, task_id) VALUES (?1, ?2, ?3)
ON CONFLICT (run_id, step) DO NOTHING
