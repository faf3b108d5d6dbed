-- Records the tasks that `step_tasks_insert_batch.sql` just inserted for the
-- ready steps in ?2 (same array), found by run and step: a step that already
-- had a task keeps it (the insert skipped it), and should a run ever hold two
-- tasks of one step, the newest is linked (the numbering of the script
-- `RUN_ADVANCE`, see src/sql.rs).
INSERT INTO errand_run_steps (run_id, step, task_id)
SELECT t.run_id, t.step, t.id
FROM json_each(?2) AS a JOIN errand_tasks AS t ON t.run_id = a.value ->> 5 AND t.step = a.value ->> 6
WHERE true
ORDER BY t.id DESC
ON CONFLICT (run_id, step) DO NOTHING
