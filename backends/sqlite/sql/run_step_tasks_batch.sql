-- Records the tasks of newly enqueued steps: ?1 a JSON array of [run_id, step, task_id].
INSERT INTO errand_run_steps (run_id, step, task_id)
SELECT a.value ->> 0, a.value ->> 1, a.value ->> 2 FROM json_each(?1) AS a WHERE true
ON CONFLICT (run_id, step) DO NOTHING
