-- Stores the output of step ?2 of run ?1 (done by task ?3).
INSERT INTO errand_run_steps (run_id, step, task_id, output) VALUES (?1, ?2, ?3, ?4)
ON CONFLICT (run_id, step) DO UPDATE SET output = excluded.output
