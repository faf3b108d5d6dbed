-- Stores step outputs: ?1 a JSON array of [run_id, step, task_id, output_hex]
-- (the numbering of the script `RUN_ADVANCE`, see src/sql.rs).
INSERT INTO errand_run_steps (run_id, step, task_id, output)
SELECT a.value ->> 0, a.value ->> 1, a.value ->> 2, unhex(a.value ->> 3) FROM json_each(?1) AS a WHERE true
ON CONFLICT (run_id, step) DO UPDATE SET output = excluded.output
